/**
 * The news generator's configuration: what configs/data/news-*.yaml hold and what the dataset
 * manifest records. The CLI (cli/commands/gen-data-news.ts) adds its run-only flags on top.
 */
import { z } from "zod";
import { grammar } from "../spans.js";

const MiB = 1024 * 1024;

/** The config's fields; `newsConfigSchema` adds the cross-field check. */
export const newsConfigObject = z
  .object({
    input: z
      .union([z.string().min(1), z.array(z.string().min(1)).min(1)], {
        error: (issue) =>
          issue.input === undefined
            ? "required: a JSONL or HTML file, a folder of pages, or a glob (--input)"
            : "expected a path (or a list of paths) to JSONL or HTML input",
      })
      .describe("JSONL/HTML file, folder or glob"),
    summaries: z.string().min(1).optional().describe("JSONL of reference summaries for HTML pages, keyed by file name"),
    format: z.enum(["auto", "cnndm", "xsum", "html"]).default("auto"),
    fields: z
      .object({
        id: z.string().default("id"),
        article: z.string().optional().describe("default: article (cnndm), document (xsum)"),
        summary: z.string().optional().describe("default: highlights (cnndm), summary (xsum)"),
      })
      .strict()
      .default({ id: "id" }),
    header: z.string().min(1).default("Summarize the article."),
    align: z
      .object({
        maxSentences: z.number().int().min(1).max(grammar.max_refs_per_directive).default(3),
        neighbourWindow: z.number().int().min(0).max(4).default(0),
        attendPrevious: z.boolean().default(true),
      })
      .strict()
      .default({ maxSentences: 3, neighbourWindow: 0, attendPrevious: true }),
    truncate: z
      .object({
        maxSentences: z.number().int().min(1).max(grammar.max_segments - 2).default(100),
        maxChars: z.number().int().min(1).default(12_000),
        maxSummarySentences: z.number().int().min(1).max(16).default(8),
      })
      .strict()
      .default({ maxSentences: 100, maxChars: 12_000, maxSummarySentences: 8 }),
    splits: z
      .record(z.string().regex(/^[a-z][a-z0-9_-]*$/), z.number().min(0).max(1))
      .default({ train: 0.9, val: 0.05, test: 0.05 })
      .refine((s) => Object.keys(s).length > 0 && Math.abs(Object.values(s).reduce((a, b) => a + b, 0) - 1) < 1e-9, {
        message: "split fractions must sum to 1",
      }),
    seed: z.number().int().default(7),
    maxFileMiB: z.number().positive().default(64).describe("refuse input files larger than this"),
    concurrency: z.number().int().min(1).max(64).default(8),
  })
  .strict();

/** Selected sentences plus the -1 ref must fit one directive. */
export function checkRefBudget(config: { align: { maxSentences: number; attendPrevious: boolean } }, ctx: z.RefinementCtx): void {
  const refs = config.align.maxSentences + (config.align.attendPrevious ? 1 : 0);
  if (refs > grammar.max_refs_per_directive) {
    ctx.addIssue({
      code: "custom",
      path: ["align", "maxSentences"],
      message: `maxSentences + attendPrevious must fit ${grammar.max_refs_per_directive} refs per directive (got ${refs})`,
    });
  }
}

export const newsConfigSchema = newsConfigObject.superRefine(checkRefBudget);

export type NewsConfig = z.infer<typeof newsConfigSchema>;

export const maxFileBytes = (config: Pick<NewsConfig, "maxFileMiB">) => Math.floor(config.maxFileMiB * MiB);

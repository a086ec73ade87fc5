/**
 * `spanattn gen-data news`: span-annotated news-summary datasets from CNN/DM or XSum JSONL, or
 * from HTML pages (with optional reference summaries). Bad input is listed with file and line and
 * stops the run before anything is written, unless --skip-bad leaves it out.
 *
 *   spanattn gen-data news --config configs/data/news-cnndm.yaml --out datasets/news-cnndm
 *   spanattn gen-data news --input '../shared/data/news/html/*'/source.html --out datasets/news-html --json
 */
import { Command, InvalidArgumentError } from "commander";
import { z } from "zod";
import { checkRefBudget, newsConfigObject, type NewsConfig } from "../../datasets/news/config.js";
import { streamNewsSplits } from "../../datasets/news/generate.js";
import { countInputFiles } from "../../datasets/news/inputs.js";
import { checkOutput, writeDataset } from "../../datasets/writer.js";
import { loadOptions } from "../lib/config.js";
import { UsageError } from "../lib/errors.js";
import { createReporter, printResult } from "../lib/output.js";
import { packageVersion } from "../lib/paths.js";

export const genDataNewsOptionsSchema = newsConfigObject
  .extend({
    out: z.string().min(1).default("datasets/news"),
    force: z.boolean().default(false),
    json: z.boolean().default(false),
    skipBad: z.boolean().default(false).describe("leave bad input out instead of stopping"),
  })
  .superRefine(checkRefBudget);
export type GenDataNewsOptions = z.infer<typeof genDataNewsOptionsSchema>;

export interface GenDataNewsResult {
  out: string;
  counts: Record<string, number>;
  files: number;
  documents: number;
  skipped: { where: string; message: string }[];
  annotatedDensity: number;
  medianRouge1Recall: number | null;
  promptOnly: number;
  nonEnglish: number;
  truncated: number;
  unalignedResponses: number;
  seconds: number;
}

const SHOWN_PROBLEMS = 20;

export async function runGenDataNews(opts: GenDataNewsOptions): Promise<GenDataNewsResult> {
  const started = Date.now();
  const { out, force, json, skipBad, ...rest } = opts;
  const config = rest as NewsConfig;
  checkOutput(out, force);
  const reporter = createReporter({ json });
  // The manifest's notes are read when the last split is done, so the skip count can join them.
  const notes = [
    "prompt segment n is article sentence n: \"[n] sentence\"; responses attend to oracle-selected sentences (meta.alignment)",
    "reference = gold summary sentences joined by \"\\n\"",
  ];
  const streamed = streamNewsSplits(config, {
    onProgress: (stage, done, total) => reporter.progress(stage, done, total),
    // Bad input found anywhere aborts the write here, before the dataset folder is renamed into
    // place: nothing is written, and every problem is listed, not just the first.
    afterLastSplit: (problems, stats) => {
      const listed = problems.slice(0, SHOWN_PROBLEMS).map((p) => `- ${p.where}: ${p.message}`);
      if (problems.length > SHOWN_PROBLEMS) listed.push(`- … and ${problems.length - SHOWN_PROBLEMS} more`);
      if (problems.length && !skipBad) {
        throw new UsageError(
          `${problems.length} bad input${problems.length > 1 ? "s" : ""}; nothing was written`,
          "fix the input, or pass --skip-bad to leave these out",
          listed,
        );
      }
      if (stats.documents === 0) throw new UsageError("no records to write: every input was bad or empty", "check --input");
      for (const line of listed) reporter.log(`skipped ${line.slice(2)}`);
      if (problems.length) notes.push(`${problems.length} bad inputs skipped (--skip-bad)`);
    },
  });
  try {
    const { manifest } = await writeDataset({
      out,
      force,
      task: "news",
      generator: { name: "spanattn gen-data news", version: packageVersion() },
      config: config as Record<string, unknown>,
      seed: config.seed,
      splits: streamed.splits,
      notes,
      onProgress: ({ split, written }) => reporter.progress(`write ${split}`, written),
    });
    const stats = streamed.stats();
    return {
      out,
      counts: Object.fromEntries(Object.entries(manifest.splits).map(([name, split]) => [name, split.count])),
      files: await countInputFiles(config),
      documents: stats.documents,
      skipped: streamed.problems,
      annotatedDensity: manifest.annotatedDensity,
      medianRouge1Recall: stats.medianRouge1Recall,
      promptOnly: stats.promptOnly,
      nonEnglish: stats.nonEnglish,
      truncated: stats.truncated,
      unalignedResponses: stats.unaligned,
      seconds: Math.round((Date.now() - started) / 100) / 10,
    };
  } finally {
    reporter.close();
  }
}

function integer(value: string): number {
  const parsed = Number(value);
  if (!Number.isInteger(parsed)) throw new InvalidArgumentError(`expected an integer (got ${JSON.stringify(value)})`);
  return parsed;
}

function number(value: string): number {
  const parsed = Number(value);
  if (!Number.isFinite(parsed)) throw new InvalidArgumentError(`expected a number (got ${JSON.stringify(value)})`);
  return parsed;
}

export function genDataNewsCommand(): Command {
  return new Command("news")
    .description("generate a span-annotated news-summary dataset from JSONL (CNN/DM, XSum) or HTML pages")
    .option("--config <file.yaml>", "YAML config (configs/data/news-*.yaml); flags override it")
    .option("--input <path>", "JSONL file, HTML file, folder of *.html/*.htm, or a glob")
    .option("--summaries <file.jsonl>", 'reference summaries for HTML pages: {"file": …, "summary": …} per line')
    .option("--format <format>", "auto | cnndm | xsum | html (default: auto, by file and fields)")
    .option("--out <dir>", "dataset folder to write (default: datasets/news)")
    .option("--seed <n>", "seed of the split assignment (default: 7)", integer)
    .option("--header <text>", 'instruction in segment 0 (default: "Summarize the article.")')
    .option("--max-sentences <n>", "article sentence budget (default: 100)", integer)
    .option("--max-chars <n>", "article character budget (default: 12000)", integer)
    .option("--align-max <n>", "most article sentences per summary sentence (default: 3)", integer)
    .option("--window <n>", "also attend to neighbours within n sentences (default: 0)", integer)
    .option("--previous", "attend to the previous summary sentence with -1 (default)")
    .option("--no-previous", "do not attend to the previous summary sentence")
    .option("--max-file-mib <n>", "refuse input files larger than this (default: 64)", number)
    .option("--concurrency <n>", "HTML files read at once (default: 8)", integer)
    .option("--skip-bad", "leave malformed lines, empty articles and pages without a body out, and go on")
    .option("--set <key=value...>", "override any config key, e.g. --set truncate.maxSummarySentences=4")
    .option("--force", "replace an existing dataset folder")
    .option("--json", "print only the JSON result")
    .addHelpText(
      "after",
      "\nExamples:\n" +
        "  $ spanattn gen-data news --config configs/data/news-cnndm.yaml --out datasets/news-cnndm\n" +
        "  $ spanattn gen-data news --input ../shared/data/news/xsum-sample.jsonl --format xsum --out datasets/news-xsum\n" +
        "  $ spanattn gen-data news --input '../shared/data/news/html/**/source.html' --out datasets/news-html --skip-bad\n",
    )
    .action(async (flags) => {
      const opts = loadOptions({
        schema: genDataNewsOptionsSchema,
        flags,
        configPath: flags.config,
        overrides: flags.set,
        flagPaths: {
          maxSentences: "truncate.maxSentences",
          maxChars: "truncate.maxChars",
          alignMax: "align.maxSentences",
          window: "align.neighbourWindow",
          previous: "align.attendPrevious",
          maxFileMib: "maxFileMiB",
        },
      });
      const result = await runGenDataNews(opts);
      printResult(result, opts.json, () => {
        const counts = Object.entries(result.counts).map(([name, count]) => `${name} ${count}`).join(", ");
        const recall = result.medianRouge1Recall === null ? "n/a" : result.medianRouge1Recall.toFixed(3);
        return [
          `wrote ${result.out}: ${counts} (${result.documents} documents from ${result.files} files, ${result.seconds}s)`,
          `annotated density ${result.annotatedDensity.toFixed(3)}, median ROUGE-1 recall of a summary sentence vs its sentences ${recall}`,
          `${result.truncated} truncated, ${result.promptOnly} prompt-only, ${result.nonEnglish} non-English, ${result.unalignedResponses} unaligned responses` +
            (result.skipped.length ? `, ${result.skipped.length} bad inputs skipped` : ""),
          `Next: spanattn gen-data inspect ${result.out}`,
        ].join("\n");
      });
    });
}

/**
 * `spanattn gen-data arith`: a span-annotated arithmetic dataset (datasets/arith/), seeded
 * and byte-identical for a given config whatever the worker count.
 *
 *   spanattn gen-data arith --config configs/data/arith.yaml --n 2000 --out /tmp/arith-tiny
 */
import { availableParallelism } from "node:os";
import { Command } from "commander";
import { z } from "zod";
import { arithConfigShape, checkArithConfig, type ArithConfig } from "../../datasets/arith/config.js";
import { ARITH_GENERATOR, generateArithDataset } from "../../datasets/arith/dataset.js";
import { ArithGenerationError } from "../../datasets/arith/generate.js";
import type { Manifest } from "../../datasets/schema.js";
import { loadOptions } from "../lib/config.js";
import { ConfigError } from "../lib/errors.js";
import { createReporter, printResult, table } from "../lib/output.js";

export const genDataArithOptionsSchema = z
  .object({
    ...arithConfigShape,
    out: z.string().min(1).default("datasets/arith-default"),
    force: z.boolean().default(false),
    json: z.boolean().default(false),
    validate: z.enum(["all", "sample"], { error: "expected all or sample" }).default("sample"),
    workers: z.coerce.number().int("expected a whole number").min(1, "must be at least 1").max(256).default(() => availableParallelism()),
  })
  .strict()
  .superRefine(checkArithConfig);
export type GenDataArithOptions = z.infer<typeof genDataArithOptionsSchema>;

/** Config key -> the flag that sets it, so errors name what to type. */
const flagOf = (key: string) => `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;

export interface GenDataArithResult {
  out: string;
  generator: typeof ARITH_GENERATOR;
  seed: number;
  workers: number;
  seconds: number;
  annotatedDensity: number;
  splits: Record<string, { count: number; sha256: string; bytes: number }>;
}

export async function runGenDataArith(opts: GenDataArithOptions): Promise<{ result: GenDataArithResult; manifest: Manifest }> {
  const { out, force, json, workers, validate, ...config } = opts;
  const started = Date.now();
  const reporter = createReporter({ json });
  try {
    const { out: written, manifest } = await generateArithDataset(config as ArithConfig, {
      out,
      force,
      workers,
      validation: validate,
      onProgress: ({ split, written, total }) => reporter.progress(split, written, total),
    });
    for (const split of Object.keys(manifest.splits)) reporter.done(split, `${manifest.splits[split].count} records`);
    const splits = Object.fromEntries(Object.entries(manifest.splits).map(([k, s]) => [k, { count: s.count, sha256: s.sha256, bytes: s.bytes }]));
    const seconds = Math.round((Date.now() - started) / 100) / 10;
    return { result: { out: written, generator: ARITH_GENERATOR, seed: config.seed, workers, seconds, annotatedDensity: manifest.annotatedDensity, splits }, manifest };
  } catch (e) {
    if (e instanceof ArithGenerationError) {
      throw new ConfigError(e.message, [], `change ${e.options.map(flagOf).join(", ")} (or the same keys in --config)`);
    }
    throw e;
  } finally {
    reporter.close();
  }
}

function renderResult(r: GenDataArithResult, manifest: Manifest): string {
  const rows = Object.entries(manifest.splits).map(([name, s]) => [
    name,
    s.count,
    `${s.chars.median} / ${s.chars.max}`,
    `${s.segments.median} / ${s.segments.max}`,
    s.annotatedDensity.toFixed(3),
  ]);
  return [
    `wrote ${r.out} in ${r.seconds}s (${r.workers} worker${r.workers > 1 ? "s" : ""}, seed ${r.seed})`,
    "",
    table(["split", "records", "chars median / max", "segments median / max", "annotated density"], rows),
    "",
    `next: spanattn gen-data inspect ${r.out}`,
  ].join("\n");
}

export function genDataArithCommand(): Command {
  return new Command("arith")
    .description("generate a span-annotated step-by-step arithmetic dataset")
    .option("--config <file>", "YAML config (keys as below, e.g. ops: 2-10); flags override it")
    .option("--n <count>", "train records (default 200000)")
    .option("--val <count>", "val records (default 2000)")
    .option("--test <count>", "test records (default 2000)")
    .option("--test-ood <count>", "test-ood records: more operations than train (default 2000)")
    .option("--seed <n>", "seed; same config + seed = same bytes (default 7)")
    .option("--ops <range>", "operations per expression, e.g. 2-10")
    .option("--ood-ops <range>", "operations in test-ood (default: ops max+1 to 2*max)")
    .option("--depth <range>", "tree depth (operation levels), e.g. 3-5 (default: any)")
    .option("--operands <range>", "operand values, e.g. 0-9 or --operands=-9..9")
    .option("--operators <list>", "comma-separated subset of + - * // % (default +,-,*)")
    .option("--max-value <n>", "cap on |value| of every operand and intermediate result, or none (default 999)")
    .option("--strategy <name>", "leftmost (one operation per step) or parallel (all innermost per step)")
    .option("--span <mode>", "prev (attend [-1], default), none (no directives) or window:K")
    .option("--parens <style>", "minimal (default) or full")
    .option("--spaces", "spaces around operators")
    .option("--header <text>", 'the header segment (default "Evaluate step by step.")')
    .option("--out <dir>", "output folder (default datasets/arith-default)")
    .option("--force", "replace an existing dataset folder")
    .option("--workers <n>", "worker threads (default: all cores); the output does not depend on it")
    .option("--validate <which>", "train records checked against the zod schema on write: sample (1 in 64, default) or all")
    .option("--json", "print only the JSON result")
    .addHelpText(
      "after",
      "\nExamples:\n  $ spanattn gen-data arith --config configs/data/arith.yaml\n  $ spanattn gen-data arith --n 2000 --ops 2-12 --seed 1 --out datasets/arith-small\n  $ spanattn gen-data arith --config configs/data/arith-long.yaml --json\n",
    )
    .action(async (flags) => {
      let opts: GenDataArithOptions;
      try {
        opts = loadOptions({ schema: genDataArithOptionsSchema, flags, configPath: flags.config });
      } catch (e) {
        if (!(e instanceof ConfigError)) throw e;
        // "- ops: ..." -> "- ops (--ops): ..."
        const issues = e.issues.map((line) => line.replace(/^- ([A-Za-z]+):/, (_, key: string) => `- ${key} (${flagOf(key)}):`));
        throw new ConfigError(e.message, issues, "see `spanattn gen-data arith --help`");
      }
      const { result, manifest } = await runGenDataArith(opts);
      printResult(result, opts.json, () => renderResult(result, manifest));
    });
}

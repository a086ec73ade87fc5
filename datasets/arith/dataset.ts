/**
 * A whole arithmetic dataset folder: held-out splits first (small, sequential, deduplicated),
 * then train on every core, all streamed through the atomic writer (datasets/writer.ts).
 *
 *   spanattn gen-data arith --n 1000 --out /tmp/arith-tiny     # the CLI front end of this
 */
import type { Manifest } from "../schema.js";
import { checkOutput, writeDataset } from "../writer.js";
import { type ArithConfig, resolvedOodOps } from "./config.js";
import { SplitGenerator, type TrainValidation, heldOutSplits } from "./generate.js";
import { parallelTrainBatches } from "./parallel.js";
import { TASK } from "./record.js";

export { ArithConfigSchema } from "./config.js";

/** Bump when the same config and seed would give different bytes. */
export const ARITH_GENERATOR = { name: "spanattn-arith", version: "1.0.0" };

export interface GenerateArithOptions {
  out: string;
  force?: boolean;
  workers: number;
  chunkSize?: number;
  /** Train records checked against the zod schema: all, or a fixed sample (default). */
  validation?: TrainValidation;
  onProgress?: (p: { split: string; written: number; total: number }) => void;
}

export async function generateArithDataset(config: ArithConfig, opts: GenerateArithOptions): Promise<{ out: string; manifest: Manifest }> {
  checkOutput(opts.out, opts.force);
  // Fail on an unsatisfiable spec before any thread starts or any file is opened.
  new SplitGenerator(config, "train").expression(0);
  const { records, taken } = heldOutSplits(config);
  const totals: Record<string, number> = { train: config.n, val: config.val, test: config.test, "test-ood": config.testOod };
  return writeDataset({
    out: opts.out,
    force: opts.force,
    task: TASK,
    generator: ARITH_GENERATOR,
    config: { ...config, oodOps: resolvedOodOps(config) },
    seed: config.seed,
    splits: {
      train: parallelTrainBatches(config, taken, { workers: opts.workers, chunkSize: opts.chunkSize, validation: opts.validation }),
      val: records.val,
      test: records.test,
      "test-ood": records["test-ood"],
    },
    notes: [
      "// is floor division and % its remainder (sign of the divisor), as in Python",
      `every operand and intermediate value is within ±${config.maxValue ?? "∞"}`,
      "no expression (canonical form) appears in two splits; train may repeat an expression",
      `test-ood has ${resolvedOodOps(config).join("-")} operations, train/val/test ${config.ops.join("-")}`,
    ],
    onProgress: opts.onProgress && ((p) => opts.onProgress!({ ...p, total: totals[p.split] })),
    progressEvery: 5000,
  });
}

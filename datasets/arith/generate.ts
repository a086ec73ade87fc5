/**
 * Which record goes where, deterministically. Every random draw of record i of split s
 * comes from its own seedrandom stream keyed by (seed, split, i), so any worker can make
 * any record and the files do not depend on how the work is shared out.
 *
 * No expression appears in two splits: the held-out splits (test-ood, test, val) are made
 * first, sequentially, each skipping canonical forms already taken; a train record whose
 * expression is held out is redrawn from the next stream of its index. Within train,
 * repeats are allowed (over operands 0-9 and + - *, there are only ~18,000 two-operation
 * expressions).
 */
import seedrandom from "seedrandom";
import { type DatasetRecord, ValidRecordSchema, checkGrammar } from "../schema.js";
import { type PreparedBatch, prepareBatch } from "../writer.js";
import { type ArithConfig, type SplitName, exprSpec, splitSize } from "./config.js";
import type { Expr } from "./expr.js";
import { canonicalForm } from "./print.js";
import { ExpressionSampler } from "./random.js";
import { type RecordBuilder, recordBuilder } from "./record.js";

export const HELD_OUT_SPLITS = ["test-ood", "test", "val"] as const satisfies readonly SplitName[];

/** An expected failure the caller reports as a config problem; `options` names what to change. */
export class ArithGenerationError extends Error {
  constructor(message: string, readonly options: string[]) {
    super(message);
    this.name = "ArithGenerationError";
  }
}

export function recordId(config: ArithConfig, split: SplitName, index: number): string {
  const width = Math.max(6, String(splitSize(config, split)).length);
  return `arith-s${config.seed}-${split}-${String(index + 1).padStart(width, "0")}`;
}

function stream(seed: number, split: SplitName, index: number, attempt = 0) {
  return seedrandom.alea(attempt === 0 ? `${seed}/${split}/${index}` : `${seed}/${split}/${index}/${attempt}`);
}

/** Draws the expressions and records of one split. */
export class SplitGenerator {
  private readonly sampler: ExpressionSampler;
  private readonly build: RecordBuilder;

  constructor(readonly config: ArithConfig, readonly split: SplitName) {
    this.sampler = new ExpressionSampler(exprSpec(config, split));
    this.build = recordBuilder(config);
  }

  /** The expression of stream (index, attempt); throws when the spec cannot be met. */
  expression(index: number, attempt = 0): Expr {
    const expr = this.sampler.sample(stream(this.config.seed, this.split, index, attempt));
    if (expr == null) {
      const ops = this.split === "test-ood" ? "oodOps" : "ops";
      throw new ArithGenerationError(
        `no expression of split ${this.split} met the spec after 1000 tries: operands ${this.config.operands.join("..")}, ` +
          `operators ${this.config.operators.join(" ")}, maxValue ${this.config.maxValue ?? "none"}, ${ops} ${this.sampler.spec.ops.join("..")}` +
          (this.config.depth ? `, depth ${this.config.depth.join("..")}` : ""),
        ["operands", "operators", "maxValue", ops, ...(this.config.depth ? ["depth"] : [])],
      );
    }
    return expr;
  }

  record(expr: Expr, index: number, canonical?: string): DatasetRecord {
    return this.build(expr, recordId(this.config, this.split, index), canonical);
  }
}

/** The held-out splits, deduplicated against each other; `taken` holds their canonical forms. */
export function heldOutSplits(config: ArithConfig): { records: Record<string, DatasetRecord[]>; taken: Set<string> } {
  const taken = new Set<string>();
  const records: Record<string, DatasetRecord[]> = {};
  for (const split of HELD_OUT_SPLITS) {
    const gen = new SplitGenerator(config, split);
    const size = splitSize(config, split);
    const out: DatasetRecord[] = [];
    // Streams are indexed by candidate, records by acceptance; both deterministic.
    const maxCandidates = 20 * size + 10_000;
    for (let candidate = 0; out.length < size; candidate++) {
      if (candidate >= maxCandidates) {
        throw new ArithGenerationError(
          `split ${split}: found only ${out.length} of ${size} expressions not already used by another held-out split ` +
            `after ${maxCandidates} draws; the expression space is too small for this size`,
          [split === "test-ood" ? "testOod" : split, split === "test-ood" ? "oodOps" : "ops", "operands"],
        );
      }
      const expr = gen.expression(candidate);
      const key = canonicalForm(expr);
      if (taken.has(key)) continue;
      taken.add(key);
      out.push(gen.record(expr, out.length, key));
    }
    records[split] = out;
  }
  return { records, taken };
}

/** Train records [start, start + count): expressions held out elsewhere are redrawn. */
export function* trainRecords(config: ArithConfig, heldOut: ReadonlySet<string>, start: number, count: number): Generator<DatasetRecord> {
  const gen = new SplitGenerator(config, "train");
  for (let index = start; index < start + count; index++) {
    let expr = gen.expression(index);
    let key = canonicalForm(expr);
    for (let attempt = 1; heldOut.has(key); attempt++) {
      if (attempt > 1000) {
        throw new ArithGenerationError(`train record ${index + 1}: every draw is an expression of a held-out split`, ["ops", "operands", "val", "test"]);
      }
      expr = gen.expression(index, attempt);
      key = canonicalForm(expr);
    }
    yield gen.record(expr, index, key);
  }
}

/** How train records are checked on write: every one against the zod schema, or a sample. */
export type TrainValidation = "all" | "sample";

/** 1 in SAMPLE_EVERY train records (and the first of each batch) meet the full zod schema when sampling. */
export const SAMPLE_EVERY = 64;

/**
 * Train records [start, start + count), checked, serialised and measured for the writer.
 * The zod schema costs about as much as generating the record, so by default train
 * validates a fixed sample (every record has the same shape, made by the same code), and
 * checks every record's grammar; held-out splits and `gen-data inspect --verify` check all.
 */
export function trainBatch(config: ArithConfig, heldOut: ReadonlySet<string>, start: number, count: number, validation: TrainValidation = "sample"): PreparedBatch {
  return prepareBatch(checked(trainRecords(config, heldOut, start, count), start, validation), "train", "none");
}

/** Streams records through their checks, so a batch never holds its records, only their lines. */
function* checked(records: Iterable<DatasetRecord>, start: number, validation: TrainValidation): Generator<DatasetRecord> {
  let k = 0;
  for (const record of records) {
    const full = validation === "all" || k === 0 || (start + k) % SAMPLE_EVERY === 0;
    const problems = full ? zodProblems(record) : checkGrammar(record);
    if (problems.length > 0) throw new Error(`internal: generated record ${record.id} (split train) breaks the data contract:\n${problems.join("\n")}`);
    k++;
    yield record;
  }
}

function zodProblems(record: DatasetRecord): string[] {
  const parsed = ValidRecordSchema.safeParse(record);
  return parsed.success ? [] : parsed.error.issues.map((i) => `- ${i.path.join(".")}: ${i.message}`);
}

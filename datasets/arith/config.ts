/**
 * The arithmetic generator's configuration: one flat object, so a YAML key and a CLI flag
 * are the same name (`ops: 2-10` in a config file is `--ops 2-10` on the command line).
 * Parsing normalises every range to `[min, max]`; the normalised object is what the
 * manifest records and what a worker receives.
 */
import { z } from "zod";
import { grammar } from "../spans.js";
import { OPERATORS, type Operator } from "./expr.js";
import { type ExprSpec, depthRange, feasibleOpCounts } from "./random.js";
import { STRATEGIES } from "./reduce.js";

export type Range = [number, number];

const RANGE_TEXT = /^\s*(-?\d+)\s*(?:(?:\.\.|-)\s*(-?\d+))?\s*$/;

/** `7`, `2-10`, `-9..9`, `-9-9`, `[2, 10]` or `{min: 2, max: 10}` -> [min, max]. */
export function rangeSchema(bounds: { min?: number; max?: number } = {}) {
  const example = bounds.min != null && bounds.min >= 0 ? "2-10" : "-9..9";
  return z
    .union([
      z.number(),
      z.string(),
      z.tuple([z.number(), z.number()]),
      z.object({ min: z.number(), max: z.number() }).strict(),
    ])
    .transform((v, ctx): Range => {
      let range: Range;
      if (typeof v === "number") range = [v, v];
      else if (Array.isArray(v)) range = [v[0], v[1]];
      else if (typeof v === "object") range = [v.min, v.max];
      else {
        const m = RANGE_TEXT.exec(v);
        if (!m) {
          ctx.addIssue({ code: "custom", message: `expected a range like ${example} (got ${JSON.stringify(v)})` });
          return z.NEVER;
        }
        range = [Number(m[1]), Number(m[2] ?? m[1])];
      }
      const [lo, hi] = range;
      if (!Number.isSafeInteger(lo) || !Number.isSafeInteger(hi)) {
        ctx.addIssue({ code: "custom", message: `bounds must be integers (got ${lo}..${hi})` });
      } else if (lo > hi) {
        ctx.addIssue({ code: "custom", message: `the range is inverted, min ${lo} > max ${hi}` });
      } else if (bounds.min != null && lo < bounds.min) {
        ctx.addIssue({ code: "custom", message: `must be at least ${bounds.min} (got ${lo}..${hi})` });
      } else if (bounds.max != null && hi > bounds.max) {
        ctx.addIssue({ code: "custom", message: `must be at most ${bounds.max} (got ${lo}..${hi})` });
      }
      return range;
    });
}

const OperatorsSchema = z
  .union([z.string(), z.array(z.string())])
  .transform((v, ctx): Operator[] => {
    const list = (typeof v === "string" ? v.split(",") : v).map((s) => s.trim()).filter((s) => s.length > 0);
    if (list.length === 0) ctx.addIssue({ code: "custom", message: `the list is empty (choose from ${OPERATORS.join(" ")})` });
    for (const op of list) {
      if (!(OPERATORS as readonly string[]).includes(op)) {
        ctx.addIssue({ code: "custom", message: `unknown operator ${JSON.stringify(op)} (choose from ${OPERATORS.join(" ")})` });
      }
    }
    if (new Set(list).size !== list.length) ctx.addIssue({ code: "custom", message: `listed twice in ${list.join(",")}` });
    return list as Operator[];
  });

/** `prev` (attend [-1]), `none` (no directives: the dense baseline) or `window:K` (previous K segments). */
export type SpanMode = { kind: "prev" } | { kind: "none" } | { kind: "window"; k: number };

const SpanSchema = z.string().transform((v, ctx): string => {
  const m = /^window:(\d+)$/.exec(v);
  if (v === "prev" || v === "none") return v;
  const k = m ? Number(m[1]) : NaN;
  if (!m || k < 1 || k > grammar.max_relative_ref) {
    ctx.addIssue({ code: "custom", message: `expected prev, none or window:K with K in 1..${grammar.max_relative_ref} (got ${JSON.stringify(v)})` });
  }
  return v;
});

export function spanMode(span: string): SpanMode {
  if (span === "none") return { kind: "none" };
  if (span === "prev") return { kind: "prev" };
  return { kind: "window", k: Number(span.slice("window:".length)) };
}

const count = (min: number) =>
  z.coerce.number().int("expected a whole number").min(min, `must be at least ${min}`);

/** Responses = operations (leftmost) and 2 segments precede them, so this keeps records under the segment cap. */
const MAX_OPS = grammar.max_segments - 2;

/** The fields, for schemas that add their own (the CLI adds out, workers). */
export const arithConfigShape = {
  seed: z.coerce.number().int("expected an integer").min(0, "must be non-negative").default(7),
  header: z.string().min(1, "must not be empty").default("Evaluate step by step."),
  operators: OperatorsSchema.default(["+", "-", "*"]),
  operands: rangeSchema().default([0, 9]),
  /** Cap on |value| of every operand and intermediate result; null for none. */
  maxValue: z
    .preprocess((v) => (v === "none" ? null : v), z.coerce.number().int("expected an integer or none").positive("must be positive").nullable())
    .default(999),
  ops: rangeSchema({ min: 1, max: MAX_OPS }).default([2, 10]),
  depth: rangeSchema({ min: 1, max: MAX_OPS }).nullable().default(null),
  /** Operation counts of the test-ood split; null means [ops.max + 1, 2 * ops.max]. */
  oodOps: rangeSchema({ min: 1, max: MAX_OPS }).nullable().default(null),
  strategy: z.enum(STRATEGIES, { error: `expected one of ${STRATEGIES.join(", ")}` }).default("leftmost"),
  span: SpanSchema.default("prev"),
  parens: z.enum(["minimal", "full"], { error: "expected minimal or full" }).default("minimal"),
  spaces: z.boolean().default(false),
  n: count(1).default(200_000),
  val: count(0).default(2_000),
  test: count(0).default(2_000),
  testOod: count(0).default(2_000),
};

type ConfigFields = z.output<z.ZodObject<typeof arithConfigShape>>;

/** Cross-field rules: everything a single field's schema cannot see. */
export function checkArithConfig(c: ConfigFields, ctx: z.RefinementCtx): void {
  if (c.maxValue != null && (Math.abs(c.operands[0]) > c.maxValue || Math.abs(c.operands[1]) > c.maxValue)) {
    ctx.addIssue({ code: "custom", path: ["operands"], message: `${c.operands[0]}..${c.operands[1]} exceeds maxValue ${c.maxValue}` });
  }
  if (c.operands[0] === 0 && c.operands[1] === 0 && c.operators.every((op) => op === "//" || op === "%")) {
    ctx.addIssue({ code: "custom", path: ["operands"], message: "0..0 with only // and % would divide by zero" });
  }
  const ood = resolvedOodOps(c);
  if (ood[1] > MAX_OPS) {
    ctx.addIssue({ code: "custom", path: ["oodOps"], message: `the default ${ood[0]}..${ood[1]} exceeds ${MAX_OPS} operations; set oodOps explicitly` });
  } else if (ood[0] <= c.ops[1]) {
    ctx.addIssue({ code: "custom", path: ["oodOps"], message: `${ood[0]}..${ood[1]} must start above ops max ${c.ops[1]} (the OOD split has more operations)` });
  }
  for (const [key, ops] of [["ops", c.ops], ["oodOps", ood]] as const) {
    if (c.depth != null && feasibleOpCounts({ ops, depth: c.depth }).length === 0) {
      const reach = `${depthRange(ops[0], null)[0]}..${ops[1]}`;
      ctx.addIssue({ code: "custom", path: ["depth"], message: `${c.depth[0]}..${c.depth[1]} is impossible with ${key} ${ops[0]}..${ops[1]} (such trees have depth ${reach})` });
    }
  }
}

export const ArithConfigSchema = z.object(arithConfigShape).strict().superRefine(checkArithConfig);

export type ArithConfig = z.output<typeof ArithConfigSchema>;
export type ArithConfigInput = z.input<typeof ArithConfigSchema>;

export function resolvedOodOps(c: Pick<ArithConfig, "ops" | "oodOps">): Range {
  return c.oodOps ?? [c.ops[1] + 1, 2 * c.ops[1]];
}

export const SPLITS = ["train", "val", "test", "test-ood"] as const;
export type SplitName = (typeof SPLITS)[number];

export function splitSize(c: ArithConfig, split: SplitName): number {
  return split === "train" ? c.n : split === "val" ? c.val : split === "test" ? c.test : c.testOod;
}

export function exprSpec(c: ArithConfig, split: SplitName): ExprSpec {
  return {
    operators: c.operators,
    operands: c.operands,
    maxValue: c.maxValue == null ? null : BigInt(c.maxValue),
    ops: split === "test-ood" ? resolvedOodOps(c) : c.ops,
    depth: c.depth,
  };
}

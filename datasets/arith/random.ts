/**
 * Random expressions: a tree shape with the requested number of operations (and depth, when
 * asked), then operands and operators filled in bottom-up so that every subexpression obeys
 * the magnitude cap and no divisor is zero. Every intermediate value of a step-by-step
 * evaluation is the value of some subexpression, so the cap holds for every step.
 *
 * Distribution: ops uniform in its range; depth uniform over what is feasible for that
 * count when a depth range is given; the split of operations between left and right
 * subtrees uniform over feasible sizes; operands uniform; each operator drawn uniformly,
 * falling back to the others (in random order) when it would break the cap or divide by
 * zero, so large values see `+ -` more often than `*`.
 */
import { type Expr, type Operator, applyOp, num, opNode } from "./expr.js";

export type Rng = () => number;

export interface ExprSpec {
  operators: readonly Operator[];
  operands: readonly [number, number];
  /** Cap on |value| of every subexpression; null for none. */
  maxValue: bigint | null;
  ops: readonly [number, number];
  depth: readonly [number, number] | null;
}

type Shape = null | [Shape, Shape];

export const randInt = (rng: Rng, lo: number, hi: number): number => lo + Math.floor(rng() * (hi - lo + 1));

/** The smallest depth a tree with n operations can have. */
export const minDepth = (n: number): number => Math.ceil(Math.log2(n + 1));

/** Most operations a tree of depth at most d can hold, saturated so it never overflows. */
const capacity = (d: number): number => (d >= 30 ? Number.MAX_SAFE_INTEGER : (1 << d) - 1);

/** Depths a tree with n operations may take under the spec's depth range: [lo, hi], empty when lo > hi. */
export function depthRange(n: number, depthLimits: readonly [number, number] | null): [number, number] {
  if (depthLimits == null) return [minDepth(n), n];
  return [Math.max(depthLimits[0], minDepth(n)), Math.min(depthLimits[1], n)];
}

/** Operation counts of the spec's range that some allowed depth can realise. */
export function feasibleOpCounts(spec: Pick<ExprSpec, "ops" | "depth">): number[] {
  const counts: number[] = [];
  for (let n = spec.ops[0]; n <= spec.ops[1]; n++) {
    const [lo, hi] = depthRange(n, spec.depth);
    if (lo <= hi) counts.push(n);
  }
  return counts;
}

function shapeAtMost(rng: Rng, n: number, d: number): Shape {
  if (n === 0) return null;
  const sub = capacity(d - 1);
  const left = randInt(rng, Math.max(0, n - 1 - sub), Math.min(n - 1, sub));
  return [shapeAtMost(rng, left, d - 1), shapeAtMost(rng, n - 1 - left, d - 1)];
}

function shapeExact(rng: Rng, n: number, d: number): Shape {
  if (n === 0) return null;
  // One side carries depth exactly d-1; the other fits within d-1.
  const sub = capacity(d - 1);
  const deep = randInt(rng, Math.max(d - 1, n - 1 - sub), Math.min(n - 1, sub));
  const deepShape = shapeExact(rng, deep, d - 1);
  const otherShape = shapeAtMost(rng, n - 1 - deep, d - 1);
  return rng() < 0.5 ? [deepShape, otherShape] : [otherShape, deepShape];
}

/** A generator bound to one spec: the per-spec work (literal table, feasible counts) done once. */
export class ExpressionSampler {
  private readonly counts: number[];
  private readonly literals: Expr[] | null;
  private budget = 0;

  constructor(readonly spec: ExprSpec, private readonly nodeBudget = 400) {
    this.counts = feasibleOpCounts(spec);
    if (this.counts.length === 0) throw new RangeError("no operation count in the ops range can have a depth in the depth range");
    const [lo, hi] = spec.operands;
    this.literals = hi - lo < 4096 ? Array.from({ length: hi - lo + 1 }, (_, k) => num(lo + k)) : null;
  }

  private literal(rng: Rng): Expr {
    const [lo, hi] = this.spec.operands;
    return this.literals ? this.literals[Math.floor(rng() * this.literals.length)] : num(randInt(rng, lo, hi));
  }

  private admissible(v: bigint): boolean {
    const cap = this.spec.maxValue;
    return cap == null || (v <= cap && v >= -cap);
  }

  /** Fills a shape; null when the node budget runs out (the caller starts over). */
  private fill(rng: Rng, shape: Shape): { expr: Expr; value: bigint } | null {
    if (--this.budget < 0) return null;
    if (shape == null) {
      const expr = this.literal(rng);
      return { expr, value: (expr as { value: bigint }).value };
    }
    const left = this.fill(rng, shape[0]);
    if (left == null) return null;
    const operators = this.spec.operators;
    for (;;) {
      const right = this.fill(rng, shape[1]);
      if (right == null) return null;
      const first = Math.floor(rng() * operators.length);
      const op = this.pick(rng, operators, first, left.value, right.value);
      if (op != null) return { expr: opNode(op, left.expr, right.expr), value: applyOp(op, left.value, right.value) };
    }
  }

  private pick(rng: Rng, operators: readonly Operator[], first: number, a: bigint, b: bigint): Operator | null {
    if (this.fits(operators[first], a, b)) return operators[first];
    if (operators.length === 1) return null;
    const rest = operators.filter((_, k) => k !== first);
    for (let k = rest.length - 1; k > 0; k--) {
      const j = Math.floor(rng() * (k + 1));
      [rest[k], rest[j]] = [rest[j], rest[k]];
    }
    return rest.find((op) => this.fits(op, a, b)) ?? null;
  }

  private fits(op: Operator, a: bigint, b: bigint): boolean {
    if ((op === "//" || op === "%") && b === 0n) return false;
    return this.admissible(applyOp(op, a, b));
  }

  /** One expression, or null after `attempts` fresh starts all ran out of budget. */
  sample(rng: Rng, attempts = 1000): Expr | null {
    for (let a = 0; a < attempts; a++) {
      const n = this.counts[Math.floor(rng() * this.counts.length)];
      const [lo, hi] = depthRange(n, this.spec.depth);
      const shape = this.spec.depth == null ? shapeAtMost(rng, n, n) : shapeExact(rng, n, randInt(rng, lo, hi));
      this.budget = this.nodeBudget;
      const filled = this.fill(rng, shape);
      if (filled) return filled.expr;
    }
    return null;
  }
}

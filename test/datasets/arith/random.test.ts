import seedrandom from "seedrandom";
import { describe, expect, it } from "vitest";
import { type Expr, OPERATORS, type Operator, applyOp, countOps, depth as depthOf, evaluate } from "../../../datasets/arith/expr.js";
import { ExpressionSampler, type ExprSpec, depthRange, feasibleOpCounts, minDepth } from "../../../datasets/arith/random.js";

/** Every subexpression's value, every divisor and every operator, bottom-up. */
function walk(e: Expr, seen: { values: bigint[]; divisors: bigint[]; literals: bigint[]; operators: Set<string> }): bigint {
  if (e.kind === "num") {
    seen.literals.push(e.value);
    seen.values.push(e.value);
    return e.value;
  }
  const l = walk(e.left, seen);
  const r = walk(e.right, seen);
  if (e.op === "//" || e.op === "%") seen.divisors.push(r);
  seen.operators.add(e.op);
  const v = applyOp(e.op, l, r);
  seen.values.push(v);
  return v;
}

const spec = (over: Partial<ExprSpec>): ExprSpec => ({ operators: ["+", "-", "*"], operands: [0, 9], maxValue: 999n, ops: [2, 10], depth: null, ...over });

describe("ExpressionSampler", () => {
  it.each<[string, Partial<ExprSpec>]>([
    ["the default spec", {}],
    ["all five operators over signed operands", { operators: OPERATORS as unknown as Operator[], operands: [-9, 9], maxValue: 99n }],
    ["division only, zero among the operands", { operators: ["//", "%"], operands: [0, 5], maxValue: 5n, ops: [1, 6] }],
    ["a depth range", { ops: [5, 12], depth: [4, 5] }],
    ["chains: depth = ops", { ops: [6, 6], depth: [6, 6] }],
    ["no cap, large operands", { operands: [-1000, 1000], maxValue: null, ops: [3, 20] }],
  ])("%s: ops, depth, operands and cap are honoured and no divisor is zero", (_, over) => {
    const s = spec(over);
    const sampler = new ExpressionSampler(s);
    const rng = seedrandom.alea(_);
    const opsSeen = new Set<number>();
    const failures: string[] = [];
    for (let k = 0; k < 1500; k++) {
      const e = sampler.sample(rng);
      if (e == null) {
        failures.push("no expression");
        continue;
      }
      const n = countOps(e);
      const d = depthOf(e);
      opsSeen.add(n);
      const seen = { values: [] as bigint[], divisors: [] as bigint[], literals: [] as bigint[], operators: new Set<string>() };
      const value = walk(e, seen);
      const cap = s.maxValue;
      if (n < s.ops[0] || n > s.ops[1]) failures.push(`${n} operations`);
      if (s.depth && (d < s.depth[0] || d > s.depth[1])) failures.push(`depth ${d}`);
      if (value !== evaluate(e)) failures.push("value");
      if (seen.divisors.includes(0n)) failures.push("zero divisor");
      if (seen.literals.some((l) => l < BigInt(s.operands[0]) || l > BigInt(s.operands[1]))) failures.push("operand out of range");
      if (cap != null && seen.values.some((v) => v > cap || v < -cap)) failures.push("value over the cap");
      if ([...seen.operators].some((op) => !s.operators.includes(op as Operator))) failures.push("operator not allowed");
    }
    expect(failures).toEqual([]);
    expect(opsSeen.size).toBe(feasibleOpCounts(s).length);
  });

  it("uses every operator it is given", () => {
    const sampler = new ExpressionSampler(spec({ operators: [...OPERATORS], operands: [-9, 9], maxValue: 999n }));
    const rng = seedrandom.alea("ops");
    const seen = new Set<string>();
    const visit = (e: Expr): void => {
      if (e.kind === "op") {
        seen.add(e.op);
        visit(e.left);
        visit(e.right);
      }
    };
    for (let k = 0; k < 300; k++) visit(sampler.sample(rng)!);
    expect([...seen].sort()).toEqual([...OPERATORS].sort());
  });

  it("returns null when the spec cannot be met (products of 5..9 over 8 operations under a cap of 50)", () => {
    const sampler = new ExpressionSampler(spec({ operators: ["*"], operands: [5, 9], maxValue: 50n, ops: [8, 8] }));
    expect(sampler.sample(seedrandom.alea("x"), 50)).toBeNull();
  });

  it("knows which depths a number of operations allows", () => {
    expect(minDepth(1)).toBe(1);
    expect(minDepth(3)).toBe(2);
    expect(minDepth(4)).toBe(3);
    expect(depthRange(7, null)).toEqual([3, 7]);
    expect(depthRange(7, [1, 2])).toEqual([3, 2]); // empty
    expect(feasibleOpCounts({ ops: [2, 10], depth: [2, 2] })).toEqual([2, 3]);
    expect(() => new ExpressionSampler(spec({ ops: [5, 6], depth: [1, 2] }))).toThrow(RangeError);
  });
});

import seedrandom from "seedrandom";
import { describe, expect, it } from "vitest";
import { applyOp, countOps, depth, evaluate, floorDiv, floorMod, num, opNode } from "../../../datasets/arith/expr.js";

describe("floor division and its remainder", () => {
  it.each([
    [7n, 2n, 3n, 1n],
    [-7n, 2n, -4n, 1n],
    [7n, -2n, -4n, -1n],
    [-7n, -2n, 3n, -1n],
    [6n, 3n, 2n, 0n],
    [-6n, 3n, -2n, 0n],
    [0n, -5n, 0n, 0n],
  ])("%i // %i = %i and %i %% %i = %i", (a, b, q, r) => {
    expect(floorDiv(a, b)).toBe(q);
    expect(floorMod(a, b)).toBe(r);
  });

  it("matches Math.floor and a == (a // b) * b + a % b, with the remainder taking the divisor's sign", () => {
    const rng = seedrandom.alea("floor");
    for (let k = 0; k < 5000; k++) {
      const a = Math.floor(rng() * 2001) - 1000;
      let b = Math.floor(rng() * 41) - 20;
      if (b === 0) b = 7;
      const q = floorDiv(BigInt(a), BigInt(b));
      const r = floorMod(BigInt(a), BigInt(b));
      expect(q).toBe(BigInt(Math.floor(a / b)));
      expect(q * BigInt(b) + r).toBe(BigInt(a));
      expect(r === 0n || r < 0n === b < 0).toBe(true);
      expect(r < 0n ? -r : r).toBeLessThan(BigInt(Math.abs(b)));
    }
  });

  it("refuses a zero divisor", () => {
    expect(() => applyOp("//", 5n, 0n)).toThrow(/division by zero/);
    expect(() => applyOp("%", 5n, 0n)).toThrow(/modulo by zero/);
  });

  it("is exact beyond 2^53", () => {
    const big = 2n ** 80n + 1n;
    expect(applyOp("*", big, big)).toBe(big * big);
    expect(floorDiv(-big, 3n)).toBe(-((big + 2n) / 3n));
  });
});

describe("tree measures", () => {
  it("counts operations and depth", () => {
    const t = opNode("-", opNode("*", opNode("+", num(3), num(4)), opNode("-", num(5), num(2))), num(6));
    expect(countOps(t)).toBe(4);
    expect(depth(t)).toBe(3);
    expect(evaluate(t)).toBe(15n);
    expect(depth(num(1))).toBe(0);
  });
});

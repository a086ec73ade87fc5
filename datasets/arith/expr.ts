/**
 * Arithmetic expression trees and their exact (BigInt) semantics.
 *
 * Integer division is floor division, as in Python: `a // b = floor(a / b)`, and `%` is the
 * matching remainder, so `a == (a // b) * b + a % b` always holds and a non-zero remainder
 * has the sign of the divisor: `-7 // 2 = -4`, `-7 % 2 = 1`, `7 // -2 = -4`, `7 % -2 = -1`.
 * A divisor of zero is never generated (see random.ts); `applyOp` throws on one.
 */

export const OPERATORS = ["+", "-", "*", "//", "%"] as const;
export type Operator = (typeof OPERATORS)[number];

export type Expr = Literal | Operation;
export interface Literal {
  readonly kind: "num";
  readonly value: bigint;
  /** value.toString(), kept because every step prints every literal again. */
  readonly text: string;
}
export interface Operation {
  readonly kind: "op";
  readonly op: Operator;
  readonly left: Expr;
  readonly right: Expr;
}

export function num(value: bigint | number): Literal {
  const v = BigInt(value);
  return { kind: "num", value: v, text: v.toString() };
}
export const opNode = (op: Operator, left: Expr, right: Expr): Operation => ({ kind: "op", op, left, right });

/** Binding strength: `* // %` bind tighter than `+ -`; all five are left-associative. */
export const PRECEDENCE: Record<Operator, number> = { "+": 1, "-": 1, "*": 2, "//": 2, "%": 2 };

export function isOperator(s: string): s is Operator {
  return (OPERATORS as readonly string[]).includes(s);
}

export function floorDiv(a: bigint, b: bigint): bigint {
  const q = a / b; // BigInt division truncates toward zero
  return (a % b !== 0n) && ((a < 0n) !== (b < 0n)) ? q - 1n : q;
}

export function floorMod(a: bigint, b: bigint): bigint {
  return a - b * floorDiv(a, b);
}

export function applyOp(op: Operator, a: bigint, b: bigint): bigint {
  switch (op) {
    case "+":
      return a + b;
    case "-":
      return a - b;
    case "*":
      return a * b;
    case "//":
      if (b === 0n) throw new RangeError("division by zero");
      return floorDiv(a, b);
    case "%":
      if (b === 0n) throw new RangeError("modulo by zero");
      return floorMod(a, b);
  }
}

export function evaluate(e: Expr): bigint {
  return e.kind === "num" ? e.value : applyOp(e.op, evaluate(e.left), evaluate(e.right));
}

export function countOps(e: Expr): number {
  return e.kind === "num" ? 0 : 1 + countOps(e.left) + countOps(e.right);
}

/** Operation levels on the longest root-to-leaf path: a literal has depth 0, `1+2` depth 1. */
export function depth(e: Expr): number {
  return e.kind === "num" ? 0 : 1 + Math.max(depth(e.left), depth(e.right));
}

export function exprEquals(a: Expr, b: Expr): boolean {
  if (a.kind === "num" || b.kind === "num") return a.kind === b.kind && (a as Literal).value === (b as Literal).value;
  return a.op === b.op && exprEquals(a.left, b.left) && exprEquals(a.right, b.right);
}

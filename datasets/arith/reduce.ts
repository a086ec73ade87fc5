/**
 * Step-by-step evaluation. An innermost operation is one whose two operands are literals.
 * `leftmost` replaces the leftmost innermost operation by its value (one step per
 * operation); `parallel` replaces every innermost operation at once (one step per level of
 * depth). Each step keeps every value exact, so the last step is the answer.
 */
import { type Expr, applyOp, num, opNode } from "./expr.js";

export const STRATEGIES = ["leftmost", "parallel"] as const;
export type Strategy = (typeof STRATEGIES)[number];

function reduceLeftmost(e: Expr): Expr {
  if (e.kind === "num") return e;
  if (e.left.kind === "op") return opNode(e.op, reduceLeftmost(e.left), e.right);
  if (e.right.kind === "op") return opNode(e.op, e.left, reduceLeftmost(e.right));
  return num(applyOp(e.op, e.left.value, e.right.value));
}

function reduceParallel(e: Expr): Expr {
  if (e.kind === "num") return e;
  if (e.left.kind === "num" && e.right.kind === "num") return num(applyOp(e.op, e.left.value, e.right.value));
  return opNode(e.op, reduceParallel(e.left), reduceParallel(e.right));
}

export function reduceStep(e: Expr, strategy: Strategy): Expr {
  return strategy === "leftmost" ? reduceLeftmost(e) : reduceParallel(e);
}

/** The expressions after each step; the last one is the literal answer. Empty for a literal. */
export function reductionSteps(e: Expr, strategy: Strategy): Expr[] {
  const steps: Expr[] = [];
  for (let cur = e; cur.kind === "op"; ) {
    cur = reduceStep(cur, strategy);
    steps.push(cur);
  }
  return steps;
}

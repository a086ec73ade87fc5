/** Random expression trees for property tests: any shape, any operator, signed and large operands. */
import { type Expr, OPERATORS, type Operator, num, opNode } from "../../../datasets/arith/expr.js";

export function randomTree(rng: () => number, ops: number, operators: readonly Operator[] = OPERATORS, magnitude = 20): Expr {
  if (ops === 0) {
    const big = rng() < 0.05;
    const v = big ? BigInt(Math.floor(rng() * 1e15)) * 1000003n : BigInt(Math.floor(rng() * (2 * magnitude + 1)) - magnitude);
    return num(v);
  }
  const left = Math.floor(rng() * ops);
  const op = operators[Math.floor(rng() * operators.length)];
  return opNode(op, randomTree(rng, left, operators, magnitude), randomTree(rng, ops - 1 - left, operators, magnitude));
}

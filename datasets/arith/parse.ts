/**
 * Reading expressions back: the inverse of printExpr for either parenthesisation, with or
 * without spaces. Grammar (left-associative, `* // %` over `+ -`):
 *
 *   expr    := term (("+" | "-") term)*
 *   term    := operand (("*" | "//" | "%") operand)*
 *   operand := "-"? digits | "(" expr ")"
 *
 * A minus sign directly in operand position belongs to the literal: `-7*2` is `(-7)*2`.
 */
import { type Expr, type Operator, num, opNode } from "./expr.js";

export class ExprParseError extends Error {
  constructor(message: string, readonly source: string, readonly position: number) {
    super(`${message} at column ${position + 1} of ${JSON.stringify(source)}`);
    this.name = "ExprParseError";
  }
}

export function parseExpr(source: string): Expr {
  let i = 0;
  const skip = () => {
    while (i < source.length && source[i] === " ") i++;
  };
  const peekOp = (): Operator | null => {
    skip();
    const c = source[i];
    if (c === "+" || c === "-" || c === "*" || c === "%") return c;
    if (c === "/" && source[i + 1] === "/") return "//";
    return null;
  };
  const operand = (): Expr => {
    skip();
    if (source[i] === "(") {
      i++;
      const inner = expr();
      skip();
      if (source[i] !== ")") throw new ExprParseError("expected ')'", source, i);
      i++;
      return inner;
    }
    const start = i;
    if (source[i] === "-") i++;
    const digitsStart = i;
    while (i < source.length && source[i] >= "0" && source[i] <= "9") i++;
    if (i === digitsStart) throw new ExprParseError("expected a number or '('", source, start);
    return num(BigInt(source.slice(start, i)));
  };
  const term = (): Expr => {
    let left = operand();
    for (let op = peekOp(); op === "*" || op === "//" || op === "%"; op = peekOp()) {
      i += op.length;
      left = opNode(op, left, operand());
    }
    return left;
  };
  const expr = (): Expr => {
    let left = term();
    for (let op = peekOp(); op === "+" || op === "-"; op = peekOp()) {
      i += 1;
      left = opNode(op, left, term());
    }
    return left;
  };
  const tree = expr();
  skip();
  if (i !== source.length) throw new ExprParseError("unexpected character", source, i);
  return tree;
}

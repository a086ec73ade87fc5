/**
 * Printing expression trees.
 *
 * `minimal` parenthesisation writes exactly the parentheses the tree needs to be read back
 * as the same tree under the usual precedence (`* // %` over `+ -`, all left-associative):
 * a left operand is wrapped when its operator binds weaker than its parent's, a right
 * operand when it binds weaker or equally. So `(a*b)+c` prints `a*b+c`, `a-(b-c)` keeps
 * its parentheses, and so does `a+(b+c)`: dropping them would give the value but not the
 * tree (parse(print(t)) == t is the contract). `full` wraps every operation except the
 * outermost. A negative literal is written `-7`, and `(-7)` when it is a right operand, so
 * no two operator characters ever touch (`3-(-7)`, not `3--7`).
 */
import { type Expr, PRECEDENCE } from "./expr.js";

export interface PrintOptions {
  parens: "minimal" | "full";
  spaces: boolean;
}

export const DEFAULT_PRINT: PrintOptions = { parens: "minimal", spaces: false };

export function printExpr(e: Expr, options: PrintOptions = DEFAULT_PRINT): string {
  return printNode(e, 0, false, options.parens === "full", options.spaces ? " " : "");
}

function printNode(node: Expr, parentPrec: number, isRight: boolean, full: boolean, sep: string): string {
  if (node.kind === "num") return isRight && node.value < 0n ? `(${node.text})` : node.text;
  const prec = PRECEDENCE[node.op];
  const inner = printNode(node.left, prec, false, full, sep) + sep + node.op + sep + printNode(node.right, prec, true, full, sep);
  const wrap = parentPrec > 0 && (full || prec < parentPrec || (isRight && prec === parentPrec));
  return wrap ? `(${inner})` : inner;
}

/** The form used to decide whether two records hold the same expression, whatever the print options. */
export function canonicalForm(e: Expr): string {
  return printExpr(e, DEFAULT_PRINT);
}

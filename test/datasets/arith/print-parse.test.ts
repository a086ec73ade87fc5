import seedrandom from "seedrandom";
import { describe, expect, it } from "vitest";
import { type Expr, evaluate, exprEquals, num, opNode } from "../../../datasets/arith/expr.js";
import { ExprParseError, parseExpr } from "../../../datasets/arith/parse.js";
import { type PrintOptions, printExpr } from "../../../datasets/arith/print.js";
import { evalPostfix, toPostfix } from "../../../datasets/arith/verify.js";
import { randomTree } from "./helpers.js";

const [a, b, c] = [num(1), num(2), num(3)];
const ALL_OPTIONS: PrintOptions[] = [
  { parens: "minimal", spaces: false },
  { parens: "minimal", spaces: true },
  { parens: "full", spaces: false },
  { parens: "full", spaces: true },
];

describe("minimal parenthesisation", () => {
  it.each<[string, Expr, string]>([
    ["a-(b-c) keeps its parentheses", opNode("-", a, opNode("-", b, c)), "1-(2-3)"],
    ["(a-b)-c needs none", opNode("-", opNode("-", a, b), c), "1-2-3"],
    ["(a*b)+c drops them", opNode("+", opNode("*", a, b), c), "1*2+3"],
    ["a+(b*c) drops them", opNode("+", a, opNode("*", b, c)), "1+2*3"],
    ["(a+b)*c keeps them", opNode("*", opNode("+", a, b), c), "(1+2)*3"],
    ["a*(b+c) keeps them", opNode("*", a, opNode("+", b, c)), "1*(2+3)"],
    ["a+(b+c) keeps them: same value, different tree", opNode("+", a, opNode("+", b, c)), "1+(2+3)"],
    ["a//(b*c) keeps them", opNode("//", a, opNode("*", b, c)), "1//(2*3)"],
    ["(a%b)*c drops them", opNode("*", opNode("%", a, b), c), "1%2*3"],
    ["a negative right operand is wrapped", opNode("-", a, num(-7)), "1-(-7)"],
    ["a negative left operand is not", opNode("*", num(-7), b), "-7*2"],
  ])("%s", (_, tree, text) => {
    expect(printExpr(tree)).toBe(text);
    expect(exprEquals(parseExpr(text), tree)).toBe(true);
  });

  it("full parenthesisation wraps every operation but the outermost, spaces go around operators", () => {
    const t = opNode("-", opNode("*", opNode("+", num(3), num(4)), opNode("-", num(5), num(2))), num(6));
    expect(printExpr(t, { parens: "full", spaces: false })).toBe("((3+4)*(5-2))-6");
    expect(printExpr(t, { parens: "minimal", spaces: false })).toBe("(3+4)*(5-2)-6");
    expect(printExpr(t, { parens: "minimal", spaces: true })).toBe("(3 + 4) * (5 - 2) - 6");
    expect(printExpr(opNode("+", num(-1), num(-2)), { parens: "full", spaces: true })).toBe("-1 + (-2)");
  });

  it("parse(print(tree)) == tree for 4000 random trees under every print option", () => {
    const rng = seedrandom.alea("roundtrip");
    for (let k = 0; k < 4000; k++) {
      const tree = randomTree(rng, Math.floor(rng() * 14));
      for (const options of ALL_OPTIONS) {
        const text = printExpr(tree, options);
        expect(exprEquals(parseExpr(text), tree), text).toBe(true);
      }
    }
  });

  it("is correct: an independent evaluator of the printed text gives the tree's value", () => {
    const rng = seedrandom.alea("printed-value");
    let checked = 0;
    for (let k = 0; k < 3000; k++) {
      const tree = randomTree(rng, 1 + Math.floor(rng() * 10));
      let value: bigint;
      try {
        value = evaluate(tree);
      } catch {
        continue; // a random tree may divide by zero; generated ones never do
      }
      for (const options of ALL_OPTIONS) expect(evalPostfix(toPostfix(printExpr(tree, options)))).toBe(value);
      checked++;
    }
    expect(checked).toBeGreaterThan(2000);
  });

  it("is minimal: removing any pair of parentheses (other than around a negative literal) changes the tree", () => {
    const rng = seedrandom.alea("minimal");
    let pairs = 0;
    for (let k = 0; k < 1500; k++) {
      const tree = randomTree(rng, 2 + Math.floor(rng() * 10));
      const text = printExpr(tree);
      const stack: number[] = [];
      for (let i = 0; i < text.length; i++) {
        if (text[i] === "(") stack.push(i);
        else if (text[i] === ")") {
          const open = stack.pop()!;
          const inner = text.slice(open + 1, i);
          if (/^-\d+$/.test(inner)) continue; // style: no two operator characters touch
          const without = text.slice(0, open) + inner + text.slice(i + 1);
          let same = false;
          try {
            same = exprEquals(parseExpr(without), tree);
          } catch {
            same = false;
          }
          expect(same, `${text} -> ${without}`).toBe(false);
          pairs++;
        }
      }
    }
    expect(pairs).toBeGreaterThan(1000);
  });

  it("wraps a literal only when it is a negative right operand", () => {
    const rng = seedrandom.alea("literal-parens");
    for (let k = 0; k < 500; k++) {
      const text = printExpr(randomTree(rng, 1 + Math.floor(rng() * 8)));
      for (const m of text.matchAll(/\((-?\d+)\)/g)) {
        expect(m[1].startsWith("-")).toBe(true);
        const before = text[m.index! - 1];
        expect(["+", "-", "*", "/", "%"]).toContain(before);
      }
    }
  });
});

describe("parseExpr", () => {
  it("reads spaces, floor division and signed literals", () => {
    expect(printExpr(parseExpr(" -12 //  (3 % -2) "))).toBe("-12//(3%(-2))");
  });

  it.each(["", "1+", "(1+2", "1+2)", "1 2", "1+*2", "1/2", "--1", "-(1)", "a"])("rejects %j with its column", (text) => {
    expect(() => parseExpr(text)).toThrow(ExprParseError);
  });
});

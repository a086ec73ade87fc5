import { describe, expect, it } from "vitest";
import { ArithConfigSchema } from "../../../datasets/arith/config.js";
import { countOps, depth, evaluate, exprEquals } from "../../../datasets/arith/expr.js";
import { trainRecords } from "../../../datasets/arith/generate.js";
import { parseExpr } from "../../../datasets/arith/parse.js";
import { printExpr } from "../../../datasets/arith/print.js";
import { reduceStep, reductionSteps } from "../../../datasets/arith/reduce.js";
import { verifyArithRecord } from "../../../datasets/arith/verify.js";
import type { DatasetRecord } from "../../../datasets/schema.js";

const texts = (source: string, strategy: "leftmost" | "parallel") => reductionSteps(parseExpr(source), strategy).map((e) => printExpr(e));

describe("step-by-step reduction", () => {
  it("leftmost folds one innermost operation per step, left to right", () => {
    expect(texts("2*3+4*5", "leftmost")).toEqual(["6+4*5", "6+20", "26"]);
    expect(texts("(3+4)*(5-2)-6", "leftmost")).toEqual(["7*(5-2)-6", "7*3-6", "21-6", "15"]);
    expect(texts("1-(2-(3-4))", "leftmost")).toEqual(["1-(2-(-1))", "1-3", "-2"]);
  });

  it("parallel folds every innermost operation at once", () => {
    expect(texts("2*3+4*5", "parallel")).toEqual(["6+20", "26"]);
    expect(texts("(3+4)*(5-2)-6", "parallel")).toEqual(["7*3-6", "21-6", "15"]);
    expect(texts("-7//2+(-7)%2", "parallel")).toEqual(["-4+1", "-3"]);
  });

  for (const strategy of ["leftmost", "parallel"] as const) {
    it(`${strategy}: 3000 generated records, each step one exact reduction, the answer the prompt's value`, () => {
      const config = ArithConfigSchema.parse({ strategy, operators: "+,-,*,//,%", operands: "-9..9", ops: "1-14", maxValue: null, seed: 11 });
      let records = 0;
      for (const record of trainRecords(config, new Set(), 0, 3000)) {
        const [, prompt, ...responses] = record.segments.map((s) => s.text);
        const tree = parseExpr(prompt);
        expect(record.answer).toBe(evaluate(tree).toString());
        expect(verifyArithRecord(record, { strategy })).toEqual([]);
        let prev = tree;
        for (const text of responses) {
          const step = parseExpr(text);
          expect(exprEquals(step, reduceStep(prev, strategy)), `${printExpr(prev)} -> ${text}`).toBe(true);
          expect(evaluate(step)).toBe(evaluate(prev));
          if (strategy === "leftmost") expect(countOps(step)).toBe(countOps(prev) - 1);
          else expect(depth(step)).toBe(depth(prev) - 1);
          prev = step;
        }
        expect(prev.kind).toBe("num");
        expect(record.meta).toMatchObject({ ops: countOps(tree), depth: depth(tree), steps: responses.length, strategy });
        records++;
      }
      expect(records).toBe(3000);
    });
  }
});

describe("the independent verifier can fail", () => {
  const config = ArithConfigSchema.parse({ ops: "4-6", seed: 3 });
  const base = [...trainRecords(config, new Set(), 0, 50)];
  const mutate = (f: (r: DatasetRecord) => void) =>
    base.map((r) => {
      const copy = structuredClone(r);
      f(copy);
      return verifyArithRecord(copy, { strategy: "leftmost", span: "prev", maxValue: 999 });
    });

  it("accepts the records as generated", () => {
    for (const problems of mutate(() => {})) expect(problems).toEqual([]);
  });
  it("catches a wrong answer", () => {
    for (const problems of mutate((r) => (r.answer = String(Number(r.answer) + 1)))) expect(problems.join("\n")).toMatch(/answer/);
  });
  it("catches a skipped step", () => {
    for (const problems of mutate((r) => r.segments.splice(2, 1))) expect(problems.join("\n")).toMatch(/not one leftmost step|meta.steps/);
  });
  it("catches a step that folds the wrong operation", () => {
    let caught = 0;
    for (const r of base) {
      const copy = structuredClone(r);
      const steps = reductionSteps(parseExpr(copy.segments[1].text), "parallel");
      if (steps.length < 2 || countOps(parseExpr(copy.segments[1].text)) - countOps(steps[0]) < 2) continue;
      copy.segments[2].text = printExpr(steps[0]); // folds two at once
      expect(verifyArithRecord(copy, { strategy: "leftmost" }).join("\n")).toMatch(/not one leftmost step/);
      caught++;
    }
    expect(caught).toBeGreaterThan(5);
  });
  it("catches a broken directive and a value over the cap", () => {
    for (const problems of mutate((r) => (r.segments[2].attend = [-2]))) expect(problems.join("\n")).toMatch(/attend/);
    const capped = verifyArithRecord(base[0], { strategy: "leftmost", maxValue: 1 });
    expect(capped.join("\n")).toMatch(/exceeds maxValue 1/);
  });
});

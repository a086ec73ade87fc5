import { readFileSync } from "node:fs";
import { parse as parseYaml } from "yaml";
import { describe, expect, it } from "vitest";
import { ArithConfigSchema, resolvedOodOps } from "../../../datasets/arith/config.js";

const issues = (input: Record<string, unknown>) => {
  const r = ArithConfigSchema.safeParse(input);
  return r.success ? [] : r.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`);
};

describe("arith config", () => {
  it("defaults to the learnable spec", () => {
    const c = ArithConfigSchema.parse({});
    expect(c).toMatchObject({ operands: [0, 9], maxValue: 999, ops: [2, 10], operators: ["+", "-", "*"], strategy: "leftmost", span: "prev", seed: 7 });
    expect(resolvedOodOps(c)).toEqual([11, 20]);
    expect(resolvedOodOps(ArithConfigSchema.parse({ ops: "2-12" }))).toEqual([13, 24]);
  });

  it.each<[unknown, [number, number]]>([
    ["2-10", [2, 10]],
    ["7", [7, 7]],
    [7, [7, 7]],
    [[3, 4], [3, 4]],
    [{ min: 1, max: 5 }, [1, 5]],
    [" 2 .. 4 ", [2, 4]],
  ])("reads the ops range %j", (ops, want) => {
    expect(ArithConfigSchema.parse({ ops }).ops).toEqual(want);
  });

  it.each<[unknown, [number, number]]>([
    ["-9..9", [-9, 9]],
    ["-9-9", [-9, 9]],
    ["-9--1", [-9, -1]],
    ["0-99", [0, 99]],
  ])("reads the operand range %j", (operands, want) => {
    expect(ArithConfigSchema.parse({ operands, maxValue: null }).operands).toEqual(want);
  });

  it("reads operator lists, maxValue none and flag strings", () => {
    const c = ArithConfigSchema.parse({ operators: "+, //,%", maxValue: "none", n: "12", seed: "3", span: "window:4" });
    expect(c.operators).toEqual(["+", "//", "%"]);
    expect(c.maxValue).toBeNull();
    expect([c.n, c.seed, c.span]).toEqual([12, 3, "window:4"]);
  });

  it.each<[string, Record<string, unknown>, RegExp]>([
    ["an inverted range", { ops: "10-2" }, /^ops: the range is inverted, min 10 > max 2/],
    ["an empty range", { ops: "" }, /^ops: expected a range like 2-10/],
    ["a range of garbage", { operands: "a-b" }, /^operands: expected a range like -9..9/],
    ["zero operations", { ops: "0-3" }, /^ops: must be at least 1/],
    ["more operations than segments allow", { ops: "2-200" }, /^ops: must be at most 126/],
    ["--n 0", { n: 0 }, /^n: must be at least 1/],
    ["a negative split size", { val: -1 }, /^val: must be at least 0/],
    ["an unknown operator", { operators: "+,^" }, /^operators: unknown operator "\^"/],
    ["no operators", { operators: "" }, /^operators: the list is empty/],
    ["an operator twice", { operators: ["+", "+"] }, /^operators: listed twice/],
    ["an unknown strategy", { strategy: "random" }, /^strategy: expected one of leftmost, parallel/],
    ["a window beyond the relative refs", { span: "window:9" }, /^span: expected prev, none or window:K with K in 1..8/],
    ["an unknown span mode", { span: "all" }, /^span: /],
    ["operands beyond the cap", { operands: "-20..20", maxValue: 10 }, /^operands: -20..20 exceeds maxValue 10/],
    ["only division by zero", { operands: "0", operators: "//,%" }, /^operands: 0..0 with only/],
    ["a depth the operations cannot have", { ops: "2-5", depth: "9" }, /^depth: 9..9 is impossible with ops 2..5/],
    ["a depth too shallow for test-ood", { ops: "2-3", depth: "2" }, /^depth: 2..2 is impossible with oodOps 4..6/],
    ["test-ood not above train", { ops: "2-10", oodOps: "8-12" }, /^oodOps: 8..12 must start above ops max 10/],
    ["a default test-ood past the cap", { ops: "2-100" }, /^oodOps: the default 101..200 exceeds 126/],
    ["an unknown key", { opz: 3 }, /unrecognized|opz/i],
  ])("rejects %s, naming the option", (_, input, want) => {
    const found = issues(input);
    expect(found.length).toBeGreaterThan(0);
    expect(found.some((m) => want.test(m)), found.join("\n")).toBe(true);
  });

  it.each(["configs/data/arith.yaml", "configs/data/arith-long.yaml"])("%s is valid and opens with the command that uses it", (file) => {
    const text = readFileSync(new URL(`../../../${file}`, import.meta.url), "utf8");
    expect(text.split("\n")[0]).toBe(`# spanattn gen-data arith --config ${file}`);
    const { out, ...config } = parseYaml(text);
    expect(typeof out).toBe("string");
    expect(issues(config)).toEqual([]);
  });
});

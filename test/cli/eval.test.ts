import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { engineFlags, evalRunOptionsSchema, loadEvalOptions } from "../../cli/commands/eval.js";
import { cli, tempDir } from "../helpers.js";

describe("spanattn eval: bad input", () => {
  it("a bad config lists every offending path (exit 2)", async () => {
    const dir = tempDir();
    const config = join(dir, "eval.yaml");
    writeFileSync(config, "batch: fast\nbogus: 1\ndata: d\nrun: r\n");
    const r = await cli(["eval", "--config", config]);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain('- batch: expected number, got "fast"');
    expect(r.stderr).toContain('- (root): unknown key "bogus"');
  });

  it("--run is required unless --replay or --kernel", async () => {
    const r = await cli(["eval", "--data", "somewhere"]);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toMatch(/- run: --run .* is required/);
  });

  it("--checkpoint best needs the --run it belongs to", async () => {
    const r = await cli(["eval", "--checkpoint", "best", "--data", "somewhere"]);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toMatch(/- checkpoint: --checkpoint best needs --run/);
  });

  it("--kernel-schedule takes rows or balanced only", async () => {
    const r = await cli(["eval", "--run", "r", "--data", "d", "--kernel-schedule", "fastest"]);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toMatch(/- kernelSchedule: .*"rows".*"balanced"/);
  });

  it("--kernel-combine takes kernel or fused only", async () => {
    const r = await cli(["eval", "--run", "r", "--data", "d", "--kernel-combine", "both"]);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toMatch(/- kernelCombine: .*"kernel".*"fused"/);
  });

  it("--refill belongs to --continuous and takes decode or prefill", async () => {
    const alone = await cli(["eval", "--run", "r", "--data", "d", "--refill", "prefill"]);
    expect(alone.exitCode).toBe(2);
    expect(alone.stderr).toMatch(/- refill: --refill is a --continuous option/);
    const bad = await cli(["eval", "--run", "r", "--data", "d", "--continuous", "--refill", "later"]);
    expect(bad.exitCode).toBe(2);
    expect(bad.stderr).toMatch(/- refill: .*"decode".*"prefill"/);
  });

  it("a folder that is not a dataset is refused by the Python side, with its hint (exit 1)", async () => {
    const dir = tempDir();
    mkdirSync(join(dir, "run"));
    const r = await cli(["eval", "--run", join(dir, "run"), "--data", join(dir, "run"), "--device", "cpu"]);
    expect(r.exitCode).toBe(1);
    // the dataset is checked first: the run folder is not a dataset
    expect(r.stderr).toMatch(/error: .*is not a dataset folder \(no manifest\.json\)/);
    expect(r.stderr).toMatch(/hint: create it with `spanattn gen-data`/);
  });
});

describe("spanattn eval: engine flags", () => {
  it("the step plan is on unless --no-step-plan (or stepPlan: false); the combine is left to the library unless given", () => {
    const base = { run: "r", data: "d" };
    expect(engineFlags(evalRunOptionsSchema.parse(base))).toEqual([]);
    expect(engineFlags(evalRunOptionsSchema.parse({ ...base, stepPlan: false }))).toEqual(["--no-step-plan"]);
    expect(engineFlags(evalRunOptionsSchema.parse({ ...base, kernelCombine: "kernel", compileDecode: true }))).toEqual([
      "--compile-decode",
      "--kernel-combine",
      "kernel",
    ]);
  });

  it("a config file's stepPlan: false or noGraph: true is not overridden by commander's --no-x defaults", () => {
    const dir = tempDir();
    const config = join(dir, "eval.yaml");
    writeFileSync(config, "stepPlan: false\nnoGraph: true\ndata: d\nrun: r\n");
    const defaults = { graph: true, stepPlan: true };  // what commander gives when neither flag is used
    const fromFile = loadEvalOptions(defaults, config);
    expect([fromFile.stepPlan, fromFile.noGraph]).toEqual([false, true]);
    const plain = loadEvalOptions({ ...defaults, run: "r", data: "d" });
    expect([plain.stepPlan, plain.noGraph]).toEqual([true, false]);
    const given = loadEvalOptions({ graph: false, stepPlan: false, run: "r", data: "d" });
    expect([given.stepPlan, given.noGraph]).toEqual([false, true]);
  });
});

/** `spanattn gen-data arith` and `gen-data inspect`, end to end: the built CLI in temp folders. */
import { readFileSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ManifestSchema, ValidRecordSchema, type DatasetRecord } from "../../datasets/schema.js";
import { cli, tempDir } from "../helpers.js";

const SMALL = ["--n", "300", "--val", "60", "--test", "60", "--test-ood", "40"];
const readJsonl = (path: string): DatasetRecord[] => readFileSync(path, "utf8").trim().split("\n").map((l) => JSON.parse(l));

describe("spanattn gen-data arith", () => {
  it("writes the four splits and a manifest, prints a JSON result, and inspect --verify accepts it", async () => {
    const out = join(tempDir(), "arith");
    const r = await cli(["gen-data", "arith", ...SMALL, "--seed", "5", "--out", out, "--json"]);
    expect(r.exitCode, r.stderr).toBe(0);
    const result = JSON.parse(r.stdout);
    expect(result).toMatchObject({ seed: 5, splits: { train: { count: 300 }, val: { count: 60 }, test: { count: 60 }, "test-ood": { count: 40 } } });
    expect(readdirSync(out).sort()).toEqual(["manifest.json", "test-ood.jsonl", "test.jsonl", "train.jsonl", "val.jsonl"]);
    const manifest = ManifestSchema.parse(JSON.parse(readFileSync(join(out, "manifest.json"), "utf8")));
    expect(manifest).toMatchObject({ task: "arith", seed: 5, config: { ops: [2, 10], oodOps: [11, 20], span: "prev" } });
    expect(manifest.annotatedDensity).toBeGreaterThan(0);
    expect(manifest.annotatedDensity).toBeLessThan(1);
    const train = readJsonl(join(out, "train.jsonl"));
    expect(train[0].id).toBe("arith-s5-train-000001");
    for (const rec of train) expect(ValidRecordSchema.safeParse(rec).success).toBe(true);

    const v = await cli(["gen-data", "inspect", out, "--verify"]);
    expect(v.exitCode, v.stderr).toBe(0);
    expect(v.stdout).toMatch(/verify: ok/);
  });

  it("writes the same bytes with 1 and 2 workers", async () => {
    const [a, b] = [join(tempDir(), "ds"), join(tempDir(), "ds")];
    const ra = await cli(["gen-data", "arith", ...SMALL, "--n", "12000", "--workers", "1", "--out", a]);
    const rb = await cli(["gen-data", "arith", ...SMALL, "--n", "12000", "--workers", "2", "--out", b]);
    expect([ra.exitCode, rb.exitCode]).toEqual([0, 0]);
    for (const f of ["manifest.json", "train.jsonl", "val.jsonl", "test.jsonl", "test-ood.jsonl"]) {
      expect(readFileSync(join(b, f)).equals(readFileSync(join(a, f))), f).toBe(true);
    }
  });

  it("refuses an existing output without --force and leaves it alone; --force replaces it", async () => {
    const out = join(tempDir(), "ds");
    expect((await cli(["gen-data", "arith", ...SMALL, "--out", out])).exitCode).toBe(0);
    const before = readFileSync(join(out, "train.jsonl"));
    const again = await cli(["gen-data", "arith", ...SMALL, "--seed", "9", "--out", out]);
    expect(again.exitCode).toBe(2);
    expect(again.stderr).toMatch(/--out .* already exists/);
    expect(again.stderr).toMatch(/--force/);
    expect(readFileSync(join(out, "train.jsonl")).equals(before)).toBe(true);
    const forced = await cli(["gen-data", "arith", ...SMALL, "--seed", "9", "--out", out, "--force"]);
    expect(forced.exitCode, forced.stderr).toBe(0);
    expect(readFileSync(join(out, "train.jsonl")).equals(before)).toBe(false);
    expect(readdirSync(join(out, ".."))).toEqual(["ds"]); // no temp folder left behind
  });

  it.each<[string, string[], RegExp]>([
    ["--n 0", ["--n", "0"], /n \(--n\): must be at least 1/],
    ["an inverted range", ["--ops", "9-3"], /ops \(--ops\): the range is inverted, min 9 > max 3/],
    ["an empty range", ["--operands", ""], /operands \(--operands\): expected a range/],
    ["an unknown operator", ["--operators", "+,^"], /operators \(--operators\): unknown operator "\^"/],
    ["an impossible depth", ["--ops", "2-5", "--depth", "9"], /depth \(--depth\): 9..9 is impossible with ops 2..5/],
    ["operands beyond the cap", ["--operands=-50..50", "--max-value", "20"], /operands \(--operands\): -50..50 exceeds maxValue 20/],
    ["a spec no expression meets", ["--operators", "*", "--operands", "5-9", "--max-value", "50", "--ops", "8", "--ood-ops", "9"], /no expression of split train met the spec[\s\S]*--operands, --operators, --max-value, --ops/],
    ["a bad span mode", ["--span", "window:0"], /span \(--span\): expected prev, none or window:K/],
    ["a missing config file", ["--config", "/nonexistent/arith.yaml"], /config file not found/],
  ])("rejects %s: clear error naming the option, exit 2, nothing written", async (_, args, want) => {
    const dir = tempDir();
    const out = join(dir, "ds");
    const r = await cli(["gen-data", "arith", ...SMALL, "--out", out, ...args]);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toMatch(want);
    expect(r.stderr).not.toMatch(/internal error/);
    expect(readdirSync(dir)).toEqual([]);
  });

  it("reads a YAML config, flags override it, unknown keys are errors", async () => {
    const dir = tempDir();
    const config = join(dir, "c.yaml");
    writeFileSync(config, "ops: 3-4\noperators: ['+', '-']\nspan: none\nn: 50\nval: 10\ntest: 10\ntestOod: 10\n");
    const out = join(dir, "ds");
    const r = await cli(["gen-data", "arith", "--config", config, "--ops", "5", "--out", out, "--json"]);
    expect(r.exitCode, r.stderr).toBe(0);
    const train = readJsonl(join(out, "train.jsonl"));
    expect(train.length).toBe(50);
    expect(new Set(train.map((t) => t.meta!.ops))).toEqual(new Set([5]));
    expect(train.every((t) => t.segments.every((s) => s.attend === undefined))).toBe(true);
    expect(train.every((t) => !/\*/.test(t.segments[1].text))).toBe(true);

    writeFileSync(config, "opz: 3\n");
    const bad = await cli(["gen-data", "arith", "--config", config, "--out", join(dir, "other")]);
    expect(bad.exitCode).toBe(2);
    expect(bad.stderr).toMatch(/unknown key "opz"/);
  });

  it("configs/data/arith-long.yaml generates 1.5K-4K tokens per record", async () => {
    const out = join(tempDir(), "long");
    const r = await cli(["gen-data", "arith", "--config", "configs/data/arith-long.yaml", "--n", "60", "--val", "5", "--test", "5", "--test-ood", "5", "--out", out]);
    expect(r.exitCode, r.stderr).toBe(0);
    // generated tokens, character level: each response's <seg>, directive and text, and <eos>
    const gen = readJsonl(join(out, "train.jsonl"))
      .map((rec) => rec.segments.slice(2).reduce((n, s) => n + 1 + (s.attend ? 2 + s.attend.length : 0) + s.text.length, 1))
      .sort((x, y) => x - y);
    expect(gen[Math.floor(gen.length / 2)]).toBeGreaterThanOrEqual(1500);
    expect(gen[Math.floor(gen.length / 2)]).toBeLessThanOrEqual(4000);
    expect(gen[0]).toBeGreaterThan(1200);
    expect(gen[gen.length - 1]).toBeLessThan(4600);
  });
});

describe("spanattn gen-data inspect", () => {
  const makeDataset = async (extra: string[] = []) => {
    const out = join(tempDir(), "ds");
    const r = await cli(["gen-data", "arith", ...SMALL, "--out", out, ...extra]);
    expect(r.exitCode, r.stderr).toBe(0);
    return out;
  };

  it("prints the manifest summary and renders records with their directives and attended segments", async () => {
    const out = await makeDataset(["--span", "window:2"]);
    const r = await cli(["gen-data", "inspect", out, "--split", "test", "--records", "2"]);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/task arith, spanattn-arith/);
    expect(r.stdout).toMatch(/test-ood\s+40/);
    expect(r.stdout).toMatch(/annotated density/);
    expect(r.stdout).toMatch(/arith-s7-test-000001/);
    expect(r.stdout).toMatch(/\[2\] response <attend><ref-1><\/attend> /);
    expect(r.stdout).toMatch(/attends \[0\] \+ \[1\] "/);
    expect(r.stdout).toMatch(/\[3\] response <attend><ref-2><ref-1><\/attend> /);
    expect(r.stdout).toMatch(/attends \[0\] \+ \[1\] ".*"\s+\[2\] "/);
    expect(r.stdout).toMatch(/answer: -?\d+/);
    const j = await cli(["gen-data", "inspect", out, "--records", "1", "--json"]);
    expect(JSON.parse(j.stdout)).toMatchObject({ split: "train", records: [{ id: "arith-s7-train-000001" }] });
  });

  it("--verify finds a tampered step and a changed file, exits 1 and names the record", async () => {
    const out = await makeDataset();
    const path = join(out, "val.jsonl");
    const records = readJsonl(path);
    const victim = records.findIndex((rec) => rec.segments.length > 4);
    records[victim].segments[3].text = records[victim].segments[2].text; // a step that folds nothing
    writeFileSync(path, records.map((rec) => JSON.stringify(rec)).join("\n") + "\n");
    const r = await cli(["gen-data", "inspect", out, "--verify"]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`${records[victim].id}\\): segments.3: .* is not one leftmost step`));
    expect(r.stderr).toMatch(/val: sha256 [0-9a-f]+ but the manifest says/);
  });

  it("--verify finds an expression shared by two splits", async () => {
    const out = await makeDataset();
    const val = readJsonl(join(out, "val.jsonl"));
    const train = readJsonl(join(out, "train.jsonl"));
    train[0] = { ...val[0], id: train[0].id };
    writeFileSync(join(out, "train.jsonl"), train.map((rec) => JSON.stringify(rec)).join("\n") + "\n");
    const r = await cli(["gen-data", "inspect", out, "--verify"]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/train:1 \(arith-s7-train-000001\): expression ".*" is also in split val/);
  });

  it("refuses a folder that is not a dataset", async () => {
    const r = await cli(["gen-data", "inspect", tempDir()]);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toMatch(/is not a dataset folder \(no manifest.json\)/);
  });
});

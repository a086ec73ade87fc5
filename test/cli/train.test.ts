/** `spanattn train`, end to end: the built CLI on a tiny generated dataset, plus config validation. */
import { existsSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { execa } from "execa";
import { beforeAll, describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { TrainResultSchema, trainOptionsSchema } from "../../cli/commands/train.js";
import { venvPython } from "../../cli/lib/paths.js";
import { cli, cliPath, repoRoot, tempDir } from "../helpers.js";

const python = process.env.SPANATTN_PYTHON ?? venvPython;
const configDir = join(repoRoot, "configs", "train");
const shipped = readdirSync(configDir).filter((f) => f.endsWith(".yaml"));
const QUICK = ["--max-steps", "6", "--set", "val.exact_match_samples=4", "--set", "checkpoint.every=3", "--set", "log.every=2"];

/** Every key of a zod object schema, nested objects as subtrees (what Python's field_tree gives). */
function keyTree(schema: unknown): Record<string, unknown> | null {
  let s = schema as { def?: { type?: string; innerType?: unknown; shape?: Record<string, unknown> } };
  while (s?.def && (s.def.type === "optional" || s.def.type === "default" || s.def.type === "nullable")) s = s.def.innerType as typeof s;
  if (s?.def?.type !== "object" || !s.def.shape) return null;
  return Object.fromEntries(Object.entries(s.def.shape).map(([k, v]) => [k, keyTree(v)]));
}

describe("spanattn train config", () => {
  it.each(shipped)("%s validates and opens with the command that uses it", (file) => {
    const text = readFileSync(join(configDir, file), "utf8");
    expect(text.split("\n")[0]).toMatch(new RegExp(`^# spanattn train --config configs/train/${file}`));
    const parsed = trainOptionsSchema.safeParse(parseYaml(text));
    expect(parsed.success, JSON.stringify(parsed.error?.issues)).toBe(true);
  });

  it("mirrors the keys of the Python config (python/spanattn/train_config.py)", async () => {
    const r = await execa(python, ["-m", "spanattn.train_config", "--fields"], { env: { PYTHONPATH: join(repoRoot, "python") } });
    const py = JSON.parse(String(r.stdout));
    const ts = keyTree(trainOptionsSchema) as Record<string, unknown>;
    for (const k of ["out", "resume", "nproc", "python", "json", "force"]) delete ts[k];
    expect(ts).toEqual(py);
  });

  it("lists every bad key before anything starts (exit 2)", async () => {
    const dir = tempDir();
    const cfg = join(dir, "bad.yaml");
    writeFileSync(cfg, "train:\n  lr: fast\n  mask: half\nmodel:\n  colour: red\n");
    const r = await cli(["train", "--config", cfg, "--data", dir]);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toMatch(/- train\.lr: expected number, got "fast"/);
    expect(r.stderr).toMatch(/- train\.mask: /);
    expect(r.stderr).toMatch(/- model: unknown key "colour"/);
  });

  it("checkpoint.keep_best takes one of the metrics the validation computes", () => {
    expect(trainOptionsSchema.safeParse({ checkpoint: { keep_best: true, best_metric: "val_loss_dense" } }).success).toBe(true);
    const bad = trainOptionsSchema.safeParse({ checkpoint: { keep_best: "yes", best_metric: "lowest" } });
    expect(bad.success).toBe(false);
    expect(bad.error!.issues.map((i) => i.path.join(".")).sort()).toEqual(["checkpoint.best_metric", "checkpoint.keep_best"]);
  });

  it("refuses a --data folder that is not a dataset (exit 2)", async () => {
    const r = await cli(["train", "--config", join(configDir, "arith-tiny.yaml"), "--data", tempDir()]);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toMatch(/is not a dataset folder \(no manifest.json\)/);
  });
});

describe("spanattn train (runs Python)", () => {
  let data: string;
  beforeAll(async () => {
    data = join(tempDir(), "arith");
    const r = await cli(["gen-data", "arith", "--n", "300", "--val", "20", "--test", "20", "--test-ood", "10", "--ops", "1-2", "--out", data]);
    expect(r.exitCode, r.stderr).toBe(0);
  }, 120_000);

  it("train.mix entries name dataset folders, with positive weights (exit 2 before Python starts)", async () => {
    expect(trainOptionsSchema.safeParse({ train: { mix: [{ data: "datasets/a", weight: 0.5 }, { data: "datasets/b" }] } }).success).toBe(true);
    const bad = trainOptionsSchema.safeParse({ train: { mix: [{ data: "", weight: -1, colour: 1 }] } });
    expect(bad.success).toBe(false);
    const dir = tempDir();
    const cfg = join(dir, "mix.yaml");
    writeFileSync(cfg, `train:\n  mix:\n    - data: ${join(dir, "nowhere")}\n      weight: 0.5\n`);
    const r = await cli(["train", "--config", cfg, "--data", data, "--out", join(dir, "run")]);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toMatch(/train\.mix\.0\.data: .*nowhere is not a dataset folder \(no manifest\.json\)/);
  });

  it("trains, checkpoints in HF format, writes metrics and result.json; --resume picks up the run", async () => {
    const out = join(tempDir(), "run");
    const r = await cli(["train", "--config", "configs/train/arith-tiny.yaml", "--data", data, "--out", out, ...QUICK, "--json"], { timeout: 300_000 });
    expect(r.exitCode, r.stderr).toBe(0);
    const result = TrainResultSchema.parse(JSON.parse(r.stdout));
    expect(result).toMatchObject({ status: "ok", steps: 6, max_steps: 6 });
    expect(result.final_loss).toBeLessThan(6);
    for (const f of ["config.json", "config.resolved.json", "metrics.jsonl", "result.json"]) expect(existsSync(join(out, f)), f).toBe(true);
    const ckpt = join(out, "checkpoints", "step-000006");
    for (const f of ["config.json", "model.safetensors", "tokenizer.json", "spanattn.json", "trainer_state.pt"]) expect(existsSync(join(ckpt, f)), f).toBe(true);
    expect(readdirSync(join(out, "checkpoints")).sort()).toEqual(["step-000003", "step-000006"]);
    const metrics = readFileSync(join(out, "metrics.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l));
    expect(metrics.filter((m) => m.loss !== undefined).map((m) => m.step)).toEqual([1, 2, 4, 6]);
    expect(JSON.parse(readFileSync(join(out, "config.json"), "utf8")).train.max_steps).toBe(6);

    const again = await cli(["train", "--config", "configs/train/arith-tiny.yaml", "--data", data, "--out", out]);
    expect(again.exitCode).toBe(2);
    expect(again.stderr).toMatch(/already exists/);
    const resumed = await cli(["train", "--out", out, "--resume", "--json"], { timeout: 300_000 });
    expect(resumed.exitCode, resumed.stderr).toBe(0);
    expect(JSON.parse(resumed.stdout)).toMatchObject({ status: "ok", steps: 6 });
  }, 600_000);

  it("--time-limit stops with a final validation and checkpoint; SIGTERM to the CLI checkpoints the current step", async () => {
    const out = join(tempDir(), "limited");
    const r = await cli(["train", "--config", "configs/train/arith-tiny.yaml", "--data", data, "--out", out, "--max-steps", "50", "--time-limit", "0.001", "--json"], { timeout: 300_000 });
    expect(r.exitCode, r.stderr).toBe(0);
    const result = TrainResultSchema.parse(JSON.parse(r.stdout));
    expect(result).toMatchObject({ status: "ok", stopped: "time_limit", steps: 1, max_steps: 50 });
    expect(result.message).toMatch(/stopped by train\.time_limit_s \(0\.001 s\) at step 1 of 50/);
    expect(result.checkpoint).toMatch(/step-000001$/);

    // the whole CLI, signalled as a time box would: it forwards SIGTERM, the run saves its step
    const termed = join(tempDir(), "termed");
    const child = execa(process.execPath, [cliPath, "train", "--config", "configs/train/arith-tiny.yaml", "--data", data, "--out", termed, "--max-steps", "400", "--set", "log.every=1"], { reject: false, cwd: repoRoot, env: { CI: "true" }, timeout: 300_000 });
    const metrics = join(termed, "metrics.jsonl");
    const steps = () => (existsSync(metrics) ? readFileSync(metrics, "utf8").trim().split("\n").filter(Boolean).length : 0);
    for (let i = 0; i < 600 && steps() < 3; i++) await new Promise((res) => setTimeout(res, 200));
    expect(steps()).toBeGreaterThanOrEqual(3);
    child.kill("SIGTERM");
    const done = await child;
    expect(done.exitCode).toBe(130);
    const stderr = String(done.stderr);
    const m = stderr.match(/interrupted \(SIGTERM\): stopped by SIGTERM at step (\d+) of 400; checkpoint (\S+) \(continue with --resume\)/);
    expect(m, stderr).not.toBeNull();
    expect(m![2]).toMatch(new RegExp(`step-${m![1].padStart(6, "0")}$`));
    expect(existsSync(join(m![2], "trainer_state.pt"))).toBe(true);
  }, 600_000);

  it("names the first bad line of a dataset that breaks the schema (exit 1)", async () => {
    const bad = join(tempDir(), "bad");
    const r0 = await cli(["gen-data", "arith", "--n", "20", "--val", "4", "--test", "4", "--test-ood", "2", "--out", bad]);
    expect(r0.exitCode, r0.stderr).toBe(0);
    // Break line 3 and keep the manifest's hash true to the file, so the schema check is what fails.
    const file = join(bad, "train.jsonl");
    const lines = readFileSync(file, "utf8").split("\n");
    lines[2] = lines[2].replace('"role":"prompt"', '"role":"question"');
    writeFileSync(file, lines.join("\n"));
    const manifestPath = join(bad, "manifest.json");
    const manifest = JSON.parse(readFileSync(manifestPath, "utf8"));
    const { createHash } = await import("node:crypto");
    manifest.splits.train.sha256 = createHash("sha256").update(readFileSync(file)).digest("hex");
    writeFileSync(manifestPath, JSON.stringify(manifest, null, 2));
    const r = await cli(["train", "--config", "configs/train/arith-tiny.yaml", "--data", bad, "--out", join(tempDir(), "run")], { timeout: 300_000 });
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/train\.jsonl:3: record breaks the data contract: segments\.1\.role/);
  }, 300_000);
});

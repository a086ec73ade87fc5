import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { widenSummary } from "../../cli/commands/widen.js";
import { cli, tempDir } from "../helpers.js";

describe("spanattn widen", () => {
  it("--checkpoint and --out are required (exit 2, before any Python)", async () => {
    const r = await cli(["widen", "--factor", "2"]);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain("--checkpoint <dir> is required");
    expect(r.stderr).toContain("--out <dir> is required");
  });

  it("--factor must be a positive integer", async () => {
    const r = await cli(["widen", "--checkpoint", "c", "--out", "o", "--factor", "1.5"]);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toMatch(/- factor: /);
  });

  it("a folder that is not a checkpoint is refused by the Python side, with its hint", async () => {
    const dir = tempDir();
    mkdirSync(join(dir, "empty"));
    const r = await cli(["widen", "--checkpoint", join(dir, "empty"), "--out", join(dir, "out")], { timeout: 300_000 });
    expect(r.exitCode).not.toBe(0);
    expect(r.stderr).toContain("not a checkpoint folder");
    expect(r.stderr).toContain("checkpoints/step-N");
  }, 300_000);

  it("the summary says how to train on from the widened checkpoint", () => {
    const text = widenSummary({ checkpoint: "a", out: "b", factor: 2, noise: 0.001, params: 38_236_160, params_before: 25_653_248, heads: [16, 16], kv_bytes_per_token_bf16: 49_152 });
    expect(text).toContain("25.7M -> 38.2M parameters");
    expect(text).toContain("48 KB a token");
    expect(text).toContain("--set model.path=b --set model.config=null");
  });
});

/** README command 1's main job, `spanattn quickstart`, whole, on the CPU: data, training, eval. */
import { existsSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { cli } from "../helpers.js";

describe("spanattn quickstart (runs Python, ~6 minutes on 2 cores)", () => {
  it("generates data, trains the embedded default, evaluates dense vs sparse and writes the report, inside 10 minutes", async () => {
    const r = await cli(["quickstart", "--device", "cpu", "--fresh", "--json"], { timeout: 900_000 });
    expect(r.exitCode, r.stderr.slice(-3000)).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.device).toBe("cpu");
    expect(out.seconds).toBeLessThan(600); // the bound for the 2-core machine
    expect(existsSync(out.report)).toBe(true);
    for (const mode of ["dense", "sparse"]) {
      const m = out.eval.modes[mode];
      expect(m.generated_tokens).toBeGreaterThan(0);
      // the tiny model learns: ~37% exact match after its 1500 steps (0% untrained)
      expect(m.accuracy.exact_match, mode).toBeGreaterThan(0.1);
    }
    expect(out.eval.modes.sparse.attended_fraction).toBeLessThan(1);
    expect(out.eval.attention).toBe("reference");
  }, 900_000);
});

import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { loadOptions, parseRange } from "../../cli/lib/config.js";
import { ConfigError, UsageError, reportError } from "../../cli/lib/errors.js";

const schema = z
  .object({
    data: z.string(),
    train: z.object({ lr: z.number().positive(), steps: z.number().int().default(10) }).strict(),
    json: z.boolean().default(false),
  })
  .strict();

function yaml(text: string): string {
  const dir = mkdtempSync(join(tmpdir(), "spanattn-config-"));
  const path = join(dir, "c.yaml");
  writeFileSync(path, text);
  return path;
}

describe("loadOptions: YAML config + flags through zod", () => {
  it("flags override config keys, dotted flag paths reach nested keys, defaults apply", () => {
    const configPath = yaml("data: a\ntrain:\n  lr: 0.1\n");
    const opts = loadOptions({ schema, configPath, flags: { data: "b", lr: 0.5 }, flagPaths: { lr: "train.lr" } });
    expect(opts).toEqual({ data: "b", train: { lr: 0.5, steps: 10 }, json: false });
  });

  it("--set overrides parse YAML scalars", () => {
    const opts = loadOptions({ schema, flags: { data: "x" }, overrides: ["train.lr=3e-4", "train.steps=5"] });
    expect(opts.train).toEqual({ lr: 3e-4, steps: 5 });
  });

  it("lists every offending path, with what was expected and what was given", () => {
    const configPath = yaml('data: 3\ntrain:\n  lr: fast\n  warmup: 10\nbogus: true\n');
    let err: unknown;
    try {
      loadOptions({ schema, configPath, flags: {} });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const issues = (err as ConfigError).issues;
    expect(issues).toContain('- train.lr: expected number, got "fast"');
    expect(issues).toContain("- data: expected string, got 3");
    expect(issues).toContain('- train: unknown key "warmup"');
    expect(issues).toContain('- (root): unknown key "bogus"');
    const report = reportError(err);
    expect(report.exitCode).toBe(2);
    expect(report.text).toMatch(/invalid options \(from .*c\.yaml and flags\)/);
  });

  it("a missing or malformed config file is a clear error", () => {
    expect(() => loadOptions({ schema, configPath: "/nonexistent/x.yaml", flags: {} })).toThrow(UsageError);
    expect(() => loadOptions({ schema, configPath: yaml("a: [1, 2"), flags: {} })).toThrow(/not valid YAML/);
    expect(() => loadOptions({ schema, configPath: yaml("- 1\n- 2\n"), flags: {} })).toThrow(/must be a mapping/);
    expect(() => loadOptions({ schema, flags: {}, overrides: ["nokey"] })).toThrow(/--set expects key.path=value/);
  });

  it("parseRange reads 2-12 and single values, rejects garbage", () => {
    expect(parseRange("2-12", "--ops")).toEqual([2, 12]);
    expect(parseRange("7", "--ops")).toEqual([7, 7]);
    expect(() => parseRange("two", "--ops")).toThrow(/--ops expects a range/);
  });
});

describe("error funnel", () => {
  it("internal errors say they are bugs; expected ones print message, details and hint", () => {
    expect(reportError(new TypeError("boom")).text).toMatch(/internal error \(this is a bug in spanattn/);
    expect(reportError(new TypeError("boom")).exitCode).toBe(70);
    const r = reportError(new UsageError("--out x already exists", "pass --force"));
    expect(r).toEqual({ exitCode: 2, text: "error: --out x already exists\nhint: pass --force" });
  });
});

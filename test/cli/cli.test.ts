import { describe, expect, it } from "vitest";
import { DoctorResultSchema } from "../../cli/commands/doctor.js";
import { cli } from "../helpers.js";

const COMMANDS = ["setup", "doctor", "gen-data", "train", "widen", "build-kernel", "eval"];

describe("spanattn CLI frame", () => {
  it("--help lists every command", async () => {
    const r = await cli(["--help"]);
    expect(r.exitCode).toBe(0);
    for (const c of COMMANDS) expect(r.stdout).toMatch(new RegExp(`^  ${c}\\b`, "m"));
  });

  it.each(COMMANDS)("%s --help shows an example", async (command) => {
    const r = await cli([command, "--help"]);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toMatch(/Examples?(?: \(once it is built\))?:\n\s+\$ spanattn /);
  });

  it("an unknown command is a usage error (exit 2) with a suggestion", async () => {
    const r = await cli(["doctr"]);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toMatch(/unknown command 'doctr'/);
    expect(r.stderr).toMatch(/Did you mean doctor\?/);
  });

  it("an unknown flag is a usage error (exit 2)", async () => {
    const r = await cli(["doctor", "--bogus"]);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toMatch(/unknown option '--bogus'/);
  });

  it("no arguments prints help and exits 2", async () => {
    const r = await cli([]);
    expect(r.exitCode).toBe(2);
    expect(r.stdout + r.stderr).toMatch(/Usage: spanattn/);
  });

  it("commands that are not built yet say so plainly and exit 3", async () => {
    const help = await cli(["--help"]);
    const gen = await cli(["gen-data", "--help"]);
    const pending = [
      ...[...help.stdout.matchAll(/^  ([\w-]+)(?: \[options\])?\s+.*\(not built yet\)/gm)].map((m) => [m[1]]),
      ...[...gen.stdout.matchAll(/^  ([\w-]+)(?: \[options\])?\s+.*\(not built yet\)/gm)].map((m) => ["gen-data", m[1]]),
    ];
    for (const args of pending) {
      const r = await cli(args);
      expect(r.exitCode, args.join(" ")).toBe(3);
      expect(r.stderr).toMatch(/is not built yet/);
    }
  });
});

describe("doctor", () => {
  it("--json reports the environment and, per command, whether it runs here", async () => {
    const r = await cli(["doctor", "--json"]);
    expect(r.exitCode).toBe(0);
    const report = DoctorResultSchema.parse(JSON.parse(r.stdout));
    expect(report.node).toBe(process.version);
    expect(report.torch.version).toMatch(/^2\.\d+/);
    expect(report.commands["gen-data"].ok).toBe(true);
    expect(report.commands.train.ok).toBe(true);
    expect(report.commands.widen.ok).toBe(true);
  });

  it("without a usable Python it still reports, and says how to fix it", async () => {
    const r = await cli(["doctor", "--json"], { env: { SPANATTN_PYTHON: "/nonexistent/python3" } });
    expect(r.exitCode).toBe(0);
    const report = DoctorResultSchema.parse(JSON.parse(r.stdout));
    expect(report.torch.version).toBeNull();
    expect(report.commands.train.ok).toBe(false);
    expect(report.commands.widen.ok).toBe(false);
    expect(report.commands["gen-data"].ok).toBe(true);
  });

  it("prints a human table by default", async () => {
    const r = await cli(["doctor"]);
    expect(r.stdout).toMatch(/^component\s+found/m);
    expect(r.stdout).toMatch(/^build-kernel\s+(yes|no)\s+/m);
  });
});

describe("setup", () => {
  it("is idempotent: with .venv up to date it does nothing and says so", async () => {
    const r = await cli(["setup", "--json"]);
    expect(r.exitCode).toBe(0);
    const res = JSON.parse(r.stdout);
    expect(res.status).toBe("up-to-date");
    expect(res.seconds).toBeLessThan(5);
    const human = await cli(["setup"]);
    expect(human.stdout).toMatch(/up to date .*nothing to do/);
  });

  it("an interpreter without torch is refused with the fix", async () => {
    const r = await cli(["setup"], { env: { SPANATTN_PYTHON: "python3", PYTHONPATH: "" } });
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/torch is not installed for python3 \(from SPANATTN_PYTHON\)/);
    expect(r.stderr).toMatch(/hint: run `spanattn setup`/);
  });

  it("a missing interpreter is refused with the fix", async () => {
    const r = await cli(["setup", "--python", "/nonexistent/python3"]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/Python interpreter not found: \/nonexistent\/python3 \(from --python\)/);
  });
});

describe("doctor: kernel status", () => {
  it("reads the build manifest (library path relative to the project) and checks the library exists", async () => {
    const { kernelStatus } = await import("../../cli/commands/doctor.js");
    const { mkdirSync, writeFileSync } = await import("node:fs");
    const { join } = await import("node:path");
    const { tempDir } = await import("../helpers.js");
    const root = tempDir();
    const build = join(root, "cuda", "build");
    expect(kernelStatus(build, root)).toEqual({ built: false, library: null, archs: null });
    mkdirSync(build, { recursive: true });
    writeFileSync(join(build, "manifest.json"), JSON.stringify({ library: "cuda/build/libspanattn.so", archs: ["sm_90a"] }));
    expect(kernelStatus(build, root).built).toBe(false);
    writeFileSync(join(build, "libspanattn.so"), "");
    expect(kernelStatus(build, root)).toEqual({ built: true, library: join(build, "libspanattn.so"), archs: ["sm_90a"] });
  });
});

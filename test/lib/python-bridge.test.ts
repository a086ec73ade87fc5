import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { ChildProcessError, InterruptedError } from "../../cli/lib/errors.js";
import { runPython, type PythonEvent } from "../../cli/lib/python.js";
import { DoctorResultSchema } from "../../cli/commands/doctor.js";

const child = fileURLToPath(new URL("../fixtures/bridge/child.py", import.meta.url));
const fixture = (name: string) => fileURLToPath(new URL(`../fixtures/bridge/${name}`, import.meta.url));
const python = "python3";
const Result = z.object({ status: z.string(), steps: z.number() });

function run(mode: string, extra: string[] = [], onEvent?: (e: PythonEvent) => void, result: z.ZodType = Result) {
  return runPython({ python, module: "unused", command: { file: python, args: [child, mode, ...extra] }, result, onEvent });
}

describe("python bridge", () => {
  it("streams events and returns the validated final result", async () => {
    const events: PythonEvent[] = [];
    const r = await run("ok", [], (e) => events.push(e));
    expect(r.result).toEqual({ status: "ok", steps: 3 });
    expect(events.map((e) => e.event)).toEqual(["progress", "progress", "progress", "log"]);
    expect(r.stderrTail).toEqual(["starting"]);
  });

  it("a crashing child reports its exit code and the tail of its stderr", async () => {
    const err = await run("crash").catch((e) => e);
    expect(err).toBeInstanceOf(ChildProcessError);
    expect(err.message).toMatch(/exited with code 1/);
    expect(err.details.join("\n")).toMatch(/RuntimeError: shape mismatch in layer 3/);
  });

  it("a result line that is not JSON is reported with the line", async () => {
    const err = await run("badjson").catch((e) => e);
    expect(err).toBeInstanceOf(ChildProcessError);
    expect(err.message).toMatch(/not valid JSON/);
    expect(err.details[0]).toContain("result: {not json");
  });

  it("no result line, or an event as the last line, is an error", async () => {
    await expect(run("noresult")).rejects.toThrow(/no result line/);
    await expect(run("eventlast")).rejects.toThrow(/event, not a result/);
  });

  it("a result that breaks the contract lists the offending paths", async () => {
    const err = await run("wrongshape").catch((e) => e);
    expect(err.details.join("\n")).toMatch(/- status: expected string, got 3/);
  });

  it("SIGINT is forwarded to the child; the bridge waits for it and reports the interruption", async () => {
    let started!: () => void;
    const running = new Promise<void>((r) => (started = r));
    const p = run("slow", [], () => started()).catch((e) => e);
    await running;
    process.emit("SIGINT", "SIGINT");
    const err = await p;
    expect(err).toBeInstanceOf(InterruptedError);
    expect(err.exitCode).toBe(130);
    expect(err.message).toMatch(/exited with code 130/);
  });

  describe("recorded real subprocess output", () => {
    it("spanattn.doctor's real output parses under the doctor contract", async () => {
      const r = await runPython({
        python,
        module: "unused",
        command: { file: python, args: [child, "replay", fixture("doctor.json")] },
        result: z.object({ torch: z.string().nullable(), gpus: z.array(z.unknown()) }).passthrough(),
      });
      expect(r.result.torch).toMatch(/^2\.\d+/);
      expect(DoctorResultSchema.shape.python).toBeDefined();
    });

    it("a real torch traceback is surfaced as the error's details", async () => {
      const err = await runPython({ python, module: "unused", command: { file: python, args: [child, "replay", fixture("torch-crash.json")] }, result: Result }).catch((e) => e);
      expect(err).toBeInstanceOf(ChildProcessError);
      expect(err.details.join("\n")).toMatch(/mat1 and mat2 shapes cannot be multiplied/);
    });

    it("a missing module (python -m) is an error with Python's own message", async () => {
      const err = await runPython({ python, module: "unused", command: { file: python, args: [child, "replay", fixture("missing-module.json")] }, result: Result }).catch((e) => e);
      expect(err.details.join("\n")).toMatch(/No module named spanattn.no_such_module/);
    });
  });
});

/**
 * The Python bridge (DESIGN §3): `python -m spanattn.<module> args…` through execa with an
 * argument array (never a shell string). The child's stdout is JSON lines: events
 * (`{"event":"progress",...}`, `{"event":"log",...}`, `{"event":"step",...}`) and, as the
 * final line, one JSON result object, validated here with zod. Human log lines go to
 * stderr; its tail is kept and shown when the child fails. Ctrl-C / SIGTERM are forwarded
 * to the child; we wait for it to exit and then report the interruption.
 */
import { execa } from "execa";
import { z } from "zod";
import { ChildProcessError, InterruptedError, formatZodIssues } from "./errors.js";
import { pythonSourceDir } from "./paths.js";

export const EventSchema = z
  .object({ event: z.string() })
  .catchall(z.unknown());
export type PythonEvent = z.infer<typeof EventSchema>;

/**
 * The result line of a child that failed on purpose (bad input it detected itself):
 * `{"status": "error", "error": {"kind": "...", "message": "...", "hint": "..."}}`.
 */
export const ExpectedFailure = z
  .object({
    status: z.literal("error"),
    error: z.object({ kind: z.string().optional(), message: z.string(), hint: z.string().nullable().optional() }).passthrough(),
  })
  .passthrough();

function safeJson(line: string): unknown {
  try {
    return JSON.parse(line);
  } catch {
    return undefined;
  }
}

export interface RunPythonOptions<R extends z.ZodType> {
  python: string;
  /** Module under python/spanattn, e.g. "spanattn.doctor". */
  module: string;
  args?: string[];
  result: R;
  onEvent?: (event: PythonEvent) => void;
  /** Each stderr line as it arrives (human logs). */
  onStderr?: (line: string) => void;
  env?: Record<string, string>;
  cwd?: string;
  /** Lines of stderr kept for error reports. */
  stderrTail?: number;
  /** Launch something other than `python -m module` (e.g. torchrun); args follow it. */
  command?: { file: string; args: string[] };
}

export interface PythonRun<T> {
  result: T;
  stderrTail: string[];
  events: number;
}

/** Signals we forward to a running child, with the exit code a shell would show. */
const FORWARDED = ["SIGINT", "SIGTERM"] as const;

export function pythonEnv(extra: Record<string, string> = {}): Record<string, string> {
  const path = process.env.PYTHONPATH ? `${pythonSourceDir}:${process.env.PYTHONPATH}` : pythonSourceDir;
  return { PYTHONPATH: path, PYTHONUNBUFFERED: "1", PYTHONDONTWRITEBYTECODE: "1", ...extra };
}

export async function runPython<R extends z.ZodType>(opts: RunPythonOptions<R>): Promise<PythonRun<z.infer<R>>> {
  const file = opts.command?.file ?? opts.python;
  const args = opts.command ? [...opts.command.args, ...(opts.args ?? [])] : ["-m", opts.module, ...(opts.args ?? [])];
  const keep = opts.stderrTail ?? 40;
  const tail: string[] = [];
  let lastLine: string | undefined;
  let events = 0;
  let interruptedBy: string | undefined;

  const child = execa(file, args, {
    env: pythonEnv(opts.env),
    cwd: opts.cwd,
    reject: false,
    stdin: "ignore",
    buffer: false,
    cleanup: true,
    // The child gets our signal (below) and time to save a checkpoint before SIGKILL.
    forceKillAfterDelay: 30_000,
  });

  const forward = (signal: NodeJS.Signals) => {
    interruptedBy ??= signal;
    child.kill(signal);
  };
  const handlers = FORWARDED.map((sig) => {
    const h = () => forward(sig);
    process.on(sig, h);
    return [sig, h] as const;
  });

  const readLines = async (stream: NodeJS.ReadableStream | null, onLine: (l: string) => void) => {
    if (!stream) return;
    let buf = "";
    for await (const chunk of stream) {
      buf += chunk.toString();
      let nl;
      while ((nl = buf.indexOf("\n")) >= 0) {
        onLine(buf.slice(0, nl).replace(/\r$/, ""));
        buf = buf.slice(nl + 1);
      }
    }
    if (buf.length) onLine(buf);
  };

  // Events are handled as they arrive (live progress); the last line is kept: it must be
  // the result object.
  const onStdout = (line: string) => {
    if (!line.trim()) return;
    lastLine = line;
    let parsed: unknown;
    try {
      parsed = JSON.parse(line);
    } catch {
      opts.onStderr?.(`[stdout] ${line}`);
      return;
    }
    const ev = EventSchema.safeParse(parsed);
    if (ev.success) {
      events++;
      opts.onEvent?.(ev.data);
    }
  };
  const onStderr = (line: string) => {
    tail.push(line);
    if (tail.length > keep) tail.shift();
    opts.onStderr?.(line);
  };

  try {
    await Promise.all([readLines(child.stdout, onStdout), readLines(child.stderr, onStderr)]);
    const done = await child;
    if (interruptedBy) {
      // a child that stopped cleanly says what it kept (train: the checkpoint to --resume from)
      const said = lastLine ? (safeJson(lastLine) as { message?: unknown } | undefined)?.message : undefined;
      throw new InterruptedError(
        typeof said === "string" ? `interrupted (${interruptedBy}): ${said}` : `interrupted (${interruptedBy}); the Python child exited${done.exitCode != null ? ` with code ${done.exitCode}` : ""}`,
      );
    }
    const cmd = `${file} ${args.slice(0, 2).join(" ")}`;
    if (done.exitCode !== 0) {
      // An expected failure: the child's last line says what was wrong (ExpectedFailure).
      const expected = lastLine ? ExpectedFailure.safeParse(safeJson(lastLine)) : undefined;
      if (expected?.success) throw new ChildProcessError(expected.data.error.message, expected.data.error.hint ?? undefined, 1);
      const how = done.signal ? `was killed by ${done.signal}` : `exited with code ${done.exitCode}`;
      throw new ChildProcessError(`${cmd} ${how}`, undefined, 1, tail.length ? ["last stderr lines:", ...tail.map((l) => `  ${l}`)] : ["(no stderr output)"]);
    }
    if (lastLine === undefined) throw new ChildProcessError(`${cmd} printed no result line on stdout`, undefined, 1, tail.map((l) => `  ${l}`));
    let value: unknown;
    try {
      value = JSON.parse(lastLine);
    } catch {
      throw new ChildProcessError(`${cmd}: its result line is not valid JSON`, undefined, 1, [`line: ${lastLine.slice(0, 500)}`]);
    }
    if (EventSchema.safeParse(value).success) {
      throw new ChildProcessError(`${cmd}: its last stdout line is an event, not a result object`, undefined, 1, [`line: ${lastLine.slice(0, 500)}`]);
    }
    const result = opts.result.safeParse(value);
    if (!result.success) throw new ChildProcessError(`${cmd}: its result object does not match the contract`, undefined, 1, formatZodIssues(result.error, [], value));
    return { result: result.data, stderrTail: tail, events };
  } finally {
    for (const [sig, h] of handlers) process.off(sig, h);
  }
}

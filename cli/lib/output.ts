/**
 * How a command talks to the person running it. In a TTY (and not CI) progress is an ink
 * view; otherwise plain, throttled lines on stderr; with --json nothing but the result,
 * one JSON document on stdout.
 */
import { render } from "ink";
import { createElement } from "react";
import { ProgressView, type ProgressTask } from "../ui/progress.js";

export interface Reporter {
  readonly json: boolean;
  /** Update (or create) a task's progress. */
  progress(label: string, current: number, total?: number, detail?: string): void;
  /** Mark a task finished. */
  done(label: string, detail?: string): void;
  /** A human log line (stderr; kept above the live view in a TTY). */
  log(message: string): void;
  /** Stop live rendering (call before printing the result). */
  close(): void;
}

export interface ReporterOptions {
  json?: boolean;
  /** Force plain output even in a TTY (tests, CI=true). */
  plain?: boolean;
  stream?: NodeJS.WriteStream;
}

export function isInteractive(stream: NodeJS.WriteStream = process.stderr): boolean {
  return Boolean(stream.isTTY) && !process.env.CI && process.env.TERM !== "dumb";
}

export function createReporter(opts: ReporterOptions = {}): Reporter {
  const stream = opts.stream ?? process.stderr;
  if (opts.json) return new SilentReporter();
  if (!opts.plain && isInteractive(stream)) return new InkReporter(stream);
  return new PlainReporter(stream);
}

class SilentReporter implements Reporter {
  readonly json = true;
  progress() {}
  done() {}
  log() {}
  close() {}
}

function formatLine(t: ProgressTask): string {
  const count = t.total !== undefined ? `${t.current}/${t.total} (${t.total ? Math.floor((100 * t.current) / t.total) : 100}%)` : `${t.current}`;
  return `${t.label}: ${count}${t.detail ? `  ${t.detail}` : ""}`;
}

export class PlainReporter implements Reporter {
  readonly json = false;
  private last = new Map<string, { at: number; pct: number }>();
  constructor(private stream: NodeJS.WritableStream, private intervalMs = 2000) {}
  progress(label: string, current: number, total?: number, detail?: string) {
    const now = Date.now();
    const pct = total ? Math.floor((10 * current) / total) : -1;
    const prev = this.last.get(label);
    // A line every 10% or every intervalMs, whichever comes first: readable logs in CI.
    if (prev && now - prev.at < this.intervalMs && pct === prev.pct) return;
    this.last.set(label, { at: now, pct });
    this.stream.write(formatLine({ label, current, total, detail }) + "\n");
  }
  done(label: string, detail?: string) {
    this.last.delete(label);
    this.stream.write(`${label}: done${detail ? `  ${detail}` : ""}\n`);
  }
  log(message: string) {
    this.stream.write(message + "\n");
  }
  close() {}
}

class InkReporter implements Reporter {
  readonly json = false;
  private tasks = new Map<string, ProgressTask>();
  private logs: string[] = [];
  private tick = 0;
  private instance: ReturnType<typeof render>;
  private timer: NodeJS.Timeout;

  constructor(stream: NodeJS.WriteStream) {
    this.instance = render(this.view(), { stdout: stream, patchConsole: false, exitOnCtrlC: false });
    this.timer = setInterval(() => {
      this.tick++;
      this.redraw();
    }, 120);
    this.timer.unref();
  }
  private view() {
    return createElement(ProgressView, { tasks: [...this.tasks.values()], tick: this.tick, logs: this.logs.slice(-8) });
  }
  private redraw() {
    this.instance.rerender(this.view());
  }
  progress(label: string, current: number, total?: number, detail?: string) {
    this.tasks.set(label, { label, current, total, detail });
    this.redraw();
  }
  done(label: string, detail?: string) {
    const t = this.tasks.get(label) ?? { label, current: 0 };
    this.tasks.set(label, { ...t, current: t.total ?? t.current, done: true, detail: detail ?? t.detail });
    this.redraw();
  }
  log(message: string) {
    this.logs.push(message);
    this.redraw();
  }
  close() {
    clearInterval(this.timer);
    this.redraw();
    this.instance.unmount();
  }
}

/** Print a command's result: JSON with --json, otherwise the human text. */
export function printResult(result: unknown, json: boolean, human: () => string): void {
  if (json) process.stdout.write(JSON.stringify(result, null, 2) + "\n");
  else process.stdout.write(human().replace(/\n?$/, "\n"));
}

/** A fixed-width text table for terminal reports. */
export function table(headers: string[], rows: Array<Array<string | number>>): string {
  const cells = [headers, ...rows.map((r) => r.map(String))];
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? "").length)));
  const line = (r: string[]) => r.map((c, i) => (c ?? "").padEnd(widths[i])).join("  ").trimEnd();
  return [line(headers), widths.map((w) => "─".repeat(w)).join("  "), ...cells.slice(1).map(line)].join("\n");
}

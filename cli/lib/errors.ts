/**
 * One error funnel (shadcn style). Expected failures are `SpanattnError`s: they print a
 * message, optional details (e.g. flattened zod issues) and a suggestion, and exit with
 * their code. Anything else is an internal bug and says so.
 */
import type { z } from "zod";

export class SpanattnError extends Error {
  constructor(
    message: string,
    public readonly suggestion?: string,
    public readonly exitCode = 1,
    public readonly details: string[] = [],
  ) {
    super(message);
    this.name = new.target.name;
  }
}

/** Bad flags, arguments or paths: exit 2 like commander's own usage errors. */
export class UsageError extends SpanattnError {
  constructor(message: string, suggestion?: string, details: string[] = []) {
    super(message, suggestion, 2, details);
  }
}

/** A config (file + flags) that fails its zod schema; lists every offending path. */
export class ConfigError extends SpanattnError {
  constructor(message: string, public readonly issues: string[], suggestion?: string) {
    super(message, suggestion, 2, issues);
  }
}

/** Something the environment lacks (python, torch, nvcc, a GPU, a built kernel). */
export class EnvironmentError extends SpanattnError {}

/** A child process that crashed or broke the bridge contract. */
export class ChildProcessError extends SpanattnError {}

/** The user interrupted (Ctrl-C / SIGTERM); exit 130 as shells expect. */
export class InterruptedError extends SpanattnError {
  constructor(message = "interrupted") {
    super(message, undefined, 130);
  }
}

/** A command whose issue has not landed yet: says so plainly, exits non-zero. */
export class NotBuiltError extends SpanattnError {
  constructor(what: string) {
    super(`${what} is not built yet`, "see README.md (Status) for what works today", 3);
  }
}

function describeReceived(input: unknown): string {
  if (input === undefined) return "nothing";
  if (typeof input === "string") return JSON.stringify(input);
  if (input === null || typeof input !== "object") return String(input);
  return Array.isArray(input) ? "an array" : "an object";
}

/** `- train.lr: expected number, got "fast"` for every issue. */
export function formatZodIssues(error: z.ZodError, prefix: string[] = [], root?: unknown): string[] {
  return error.issues.map((issue) => {
    const path = [...prefix, ...issue.path.map(String)].join(".") || "(root)";
    let message = issue.message;
    if (issue.code === "invalid_type" && root !== undefined) {
      let value: unknown = root;
      for (const key of issue.path) value = value == null ? undefined : (value as Record<PropertyKey, unknown>)[key as PropertyKey];
      message = `expected ${issue.expected}, got ${describeReceived(value)}`;
    } else if (issue.code === "unrecognized_keys") {
      message = `unknown key${issue.keys.length > 1 ? "s" : ""} ${issue.keys.map((k) => JSON.stringify(k)).join(", ")}`;
    }
    return `- ${path}: ${message}`;
  });
}

export interface ErrorReport {
  exitCode: number;
  text: string;
}

export function reportError(err: unknown): ErrorReport {
  if (err instanceof SpanattnError) {
    const lines = [`error: ${err.message}`];
    for (const d of err.details) lines.push(`  ${d}`);
    if (err.suggestion) lines.push(`hint: ${err.suggestion}`);
    return { exitCode: err.exitCode, text: lines.join("\n") };
  }
  const e = err instanceof Error ? err : new Error(String(err));
  return {
    exitCode: 70,
    text: `internal error (this is a bug in spanattn, please report it):\n${e.stack ?? e.message}`,
  };
}

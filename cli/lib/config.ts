/**
 * Options from a YAML config (`--config`) and flags, flags overriding config keys, validated
 * by the command's zod schema. Every offending path is listed:
 *   - train.lr: expected number, got "fast"
 */
import { readFileSync, existsSync } from "node:fs";
import { parse as parseYaml } from "yaml";
import type { z } from "zod";
import { ConfigError, UsageError, formatZodIssues } from "./errors.js";

export type Plain = Record<string, unknown>;

export function readYamlConfig(path: string): Plain {
  if (!existsSync(path)) throw new UsageError(`config file not found: ${path}`, "check the path given to --config");
  let doc: unknown;
  try {
    doc = parseYaml(readFileSync(path, "utf8"));
  } catch (e) {
    throw new ConfigError(`config file ${path} is not valid YAML`, [`- ${(e as Error).message.split("\n")[0]}`]);
  }
  if (doc == null) return {};
  if (typeof doc !== "object" || Array.isArray(doc)) throw new ConfigError(`config file ${path} must be a mapping of keys to values`, []);
  return doc as Plain;
}

/** Set `a.b.c` in a nested object, creating mappings on the way. */
export function setPath(target: Plain, path: string, value: unknown): void {
  const keys = path.split(".");
  let node = target;
  for (const key of keys.slice(0, -1)) {
    if (node[key] == null || typeof node[key] !== "object") node[key] = {};
    node = node[key] as Plain;
  }
  node[keys[keys.length - 1]] = value;
}

/** `--set train.lr=3e-4` style overrides; values are parsed as YAML scalars. */
export function parseOverrides(pairs: string[] | undefined): Array<[string, unknown]> {
  return (pairs ?? []).map((pair) => {
    const eq = pair.indexOf("=");
    if (eq <= 0) throw new UsageError(`--set expects key.path=value (got ${JSON.stringify(pair)})`);
    return [pair.slice(0, eq), parseYaml(pair.slice(eq + 1))] as [string, unknown];
  });
}

export interface LoadOptionsArgs<S extends z.ZodType> {
  schema: S;
  /** Flags as commander gives them; undefined values do not override. */
  flags: Plain;
  /** Map flag name -> dotted config path; flags not listed map to their own name. */
  flagPaths?: Record<string, string>;
  /** Flags that are not options of the schema (e.g. config, json, force). */
  ignoreFlags?: string[];
  configPath?: string;
  overrides?: string[];
}

export function loadOptions<S extends z.ZodType>(args: LoadOptionsArgs<S>): z.infer<S> {
  const merged: Plain = args.configPath ? structuredClone(readYamlConfig(args.configPath)) : {};
  const ignore = new Set(["config", "set", ...(args.ignoreFlags ?? [])]);
  for (const [flag, value] of Object.entries(args.flags)) {
    if (value === undefined || ignore.has(flag)) continue;
    setPath(merged, args.flagPaths?.[flag] ?? flag, value);
  }
  for (const [path, value] of parseOverrides(args.overrides)) setPath(merged, path, value);
  const parsed = args.schema.safeParse(merged);
  if (!parsed.success) {
    const where = args.configPath ? `${args.configPath} and flags` : "flags";
    throw new ConfigError(`invalid options (from ${where})`, formatZodIssues(parsed.error, [], merged));
  }
  return parsed.data;
}

/** Parse "2-12" or "7" into an inclusive integer range. */
export function parseRange(text: string, option: string): [number, number] {
  const m = /^\s*(-?\d+)\s*(?:(?:-|\.\.)\s*(-?\d+))?\s*$/.exec(text);
  if (!m) throw new UsageError(`${option} expects a range like 2-12 (got ${JSON.stringify(text)})`);
  const lo = Number(m[1]);
  const hi = m[2] === undefined ? lo : Number(m[2]);
  return [lo, hi];
}

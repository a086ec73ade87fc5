/**
 * `spanattn gen-data inspect <dir>`: any dataset folder, for a human. Prints the manifest
 * summary and renders a few records: every segment, and for each response its directive,
 * the segments it attends and a truncated view of them. `--verify` re-reads every file:
 * sha256, counts and annotated density against the manifest, every record against the
 * schema and the span grammar, ids unique, and per task: arith answers and steps against
 * an independent evaluator (datasets/arith/verify.ts) and no expression in two splits.
 *
 *   spanattn gen-data inspect datasets/arith-default --records 2 --split test
 *   spanattn gen-data inspect datasets/arith-default --verify --json
 */
import { createHash } from "node:crypto";
import { createReadStream, existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { Command } from "commander";
import { z } from "zod";
import { postfixKey, verifyArithRecord } from "../../datasets/arith/verify.js";
import { type DatasetRecord, type Manifest, ManifestSchema, ValidRecordSchema } from "../../datasets/schema.js";
import { densityCounts } from "../../datasets/spans.js";
import { loadOptions } from "../lib/config.js";
import { ConfigError, SpanattnError, UsageError, formatZodIssues } from "../lib/errors.js";
import { createReporter, printResult, table } from "../lib/output.js";

export const genDataInspectOptionsSchema = z
  .object({
    dir: z.string().min(1),
    split: z.string().optional().describe("split to render records from (default: the first)"),
    records: z.coerce.number().int("expected a whole number").min(0, "must be at least 0").default(3),
    width: z.coerce.number().int().min(20, "must be at least 20").default(72),
    verify: z.boolean().default(false),
    json: z.boolean().default(false),
  })
  .strict();
export type GenDataInspectOptions = z.infer<typeof genDataInspectOptionsSchema>;

/** A per-task check of one record beyond schema and grammar; splits arrive held-out first, train last. */
type TaskVerifier = (record: DatasetRecord, split: string) => string[];

function arithVerifier(config: Record<string, unknown>): TaskVerifier {
  const expect = { strategy: config.strategy as string | undefined, span: config.span as string | undefined, maxValue: config.maxValue as number | null | undefined };
  const heldOut = new Map<string, string>(); // postfix key -> split, for every split but train
  return (record, split) => {
    const problems = verifyArithRecord(record, expect);
    if (problems.length > 0) return problems;
    const prompt = record.segments[1].text;
    const key = postfixKey(prompt);
    const seen = heldOut.get(key);
    if (seen != null && seen !== split) problems.push(`expression ${JSON.stringify(prompt)} is also in split ${seen}`);
    else if (seen == null && split !== "train") heldOut.set(key, split);
    return problems;
  };
}

const TASK_VERIFIERS: Record<string, (config: Record<string, unknown>) => TaskVerifier> = { arith: arithVerifier };

export function readManifest(dir: string): Manifest {
  const path = join(dir, "manifest.json");
  if (!existsSync(path)) throw new UsageError(`${dir} is not a dataset folder (no manifest.json)`, "pass the folder that gen-data wrote (its --out)");
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, "utf8"));
  } catch (e) {
    throw new ConfigError(`${path} is not valid JSON`, [`- ${(e as Error).message}`]);
  }
  const parsed = ManifestSchema.safeParse(raw);
  if (!parsed.success) throw new ConfigError(`${path} does not match the manifest schema`, formatZodIssues(parsed.error, [], raw));
  return parsed.data;
}

async function* lines(path: string): AsyncGenerator<string> {
  const rl = createInterface({ input: createReadStream(path), crlfDelay: Infinity });
  for await (const line of rl) yield line;
}

async function firstRecords(path: string, n: number): Promise<DatasetRecord[]> {
  const out: DatasetRecord[] = [];
  if (n === 0) return out;
  for await (const line of lines(path)) {
    if (line.trim()) out.push(JSON.parse(line));
    if (out.length >= n) break;
  }
  return out;
}

const clip = (text: string, width: number) => (text.length <= width ? text : `${text.slice(0, Math.max(1, width - 1))}…`);

/** Absolute segment indices of a directive at segment `i` (relative refs resolved). */
const resolveRefs = (attend: number[], i: number) => attend.map((r) => (r < 0 ? i + r : r));

export function renderRecord(record: DatasetRecord, width = 72): string {
  const meta = Object.entries(record.meta ?? {}).map(([k, v]) => `${k}=${clip(typeof v === "object" ? JSON.stringify(v) : String(v), 40)}`);
  const out = [`${record.id}  (${record.task}${meta.length ? `; ${meta.join(" ")}` : ""})`];
  const indexWidth = String(record.segments.length - 1).length + 2;
  const indent = " ".repeat(indexWidth + 12);
  record.segments.forEach((seg, i) => {
    const directive = seg.attend ? `<attend>${seg.attend.map((r) => `<ref${r}>`).join("")}</attend> ` : "";
    out.push(`  ${`[${i}]`.padEnd(indexWidth)} ${seg.role.padEnd(8)} ${clip(directive + seg.text, width)}`);
    if (seg.role === "response") {
      if (!seg.attend) out.push(`${indent}attends everything (no directive)`);
      else {
        const refs = resolveRefs(seg.attend, i);
        const views = refs.map((r) => `[${r}] ${JSON.stringify(clip(record.segments[r]?.text ?? "?", Math.max(10, Math.floor(width / Math.max(1, refs.length)) - 8)))}`);
        out.push(`${indent}attends [0] + ${views.length ? views.join("  ") : "nothing else"} + itself`);
      }
    }
  });
  if (record.answer != null) out.push(`  answer: ${record.answer}`);
  if (record.reference != null) out.push(`  reference: ${clip(record.reference, width)}`);
  return out.join("\n");
}

export function renderManifest(dir: string, m: Manifest): string {
  const rows = Object.entries(m.splits).map(([name, s]) => [
    name,
    s.count,
    `${(s.bytes / 1e6).toFixed(1)} MB`,
    `${s.chars.median} / ${s.chars.max}`,
    `${s.responseChars.median} / ${s.responseChars.max}`,
    `${s.segments.median} / ${s.segments.max}`,
    `${s.tokens.median} / ${s.tokens.max}`,
    s.annotatedDensity.toFixed(3),
  ]);
  const config = Object.entries(m.config).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(" ");
  return [
    `${dir}: ${m.name} (task ${m.task}, ${m.generator.name} ${m.generator.version}, seed ${m.seed ?? "none"})`,
    `config: ${config}`,
    "",
    table(["split", "records", "size", "chars med/max", "response chars med/max", "segments med/max", "tokens med/max", "density"], rows),
    "",
    `annotated density (kept / causal attention pairs, all splits): ${m.annotatedDensity.toFixed(4)}`,
    ...(m.notes ?? []).map((n) => `note: ${n}`),
  ].join("\n");
}

export interface SplitVerification {
  records: number;
  problems: number;
  sha256: string;
}

export interface VerifyResult {
  ok: boolean;
  splits: Record<string, SplitVerification>;
  problems: string[];
  problemCount: number;
}

const MAX_LISTED = 50;

export async function verifyDataset(dir: string, m: Manifest, onProgress?: (split: string, done: number, total: number) => void): Promise<VerifyResult> {
  const problems: string[] = [];
  let problemCount = 0;
  const report = (p: string) => {
    problemCount++;
    if (problems.length < MAX_LISTED) problems.push(p);
  };
  const verifier = TASK_VERIFIERS[m.task]?.(m.config);
  const ids = new Set<string>();
  const splits: Record<string, SplitVerification> = {};
  // Held-out splits first, so each train record can be checked against their expressions as it streams.
  const order = Object.keys(m.splits).sort((a, b) => Number(a === "train") - Number(b === "train"));
  for (const split of order) {
    const s = m.splits[split];
    const path = join(dir, s.file);
    if (!existsSync(path)) {
      report(`${split}: ${s.file} is missing`);
      continue;
    }
    const hash = createHash("sha256");
    let count = 0;
    let bytes = 0;
    let kept = 0;
    let total = 0;
    let splitProblems = 0;
    const local = (p: string) => {
      splitProblems++;
      report(p);
    };
    for await (const line of lines(path)) {
      const text = line + "\n";
      hash.update(text);
      bytes += Buffer.byteLength(text);
      count++;
      const where = `${split}:${count}`;
      let raw: unknown;
      try {
        raw = JSON.parse(line);
      } catch {
        local(`${where}: not valid JSON`);
        continue;
      }
      const parsed = ValidRecordSchema.safeParse(raw);
      if (!parsed.success) {
        for (const issue of formatZodIssues(parsed.error, [], raw)) local(`${where}: ${issue.slice(2)}`);
        continue;
      }
      const record = raw as DatasetRecord;
      if (ids.has(record.id)) local(`${where}: id ${record.id} appears twice`);
      ids.add(record.id);
      if (record.task !== m.task) local(`${where}: task ${record.task} but the manifest says ${m.task}`);
      const d = densityCounts(record);
      kept += d.kept;
      total += d.total;
      for (const p of verifier?.(record, split) ?? []) local(`${where} (${record.id}): ${p}`);
      if (onProgress && count % 10_000 === 0) onProgress(split, count, s.count);
    }
    onProgress?.(split, count, s.count);
    const sha256 = hash.digest("hex");
    if (sha256 !== s.sha256) local(`${split}: sha256 ${sha256} but the manifest says ${s.sha256}`);
    if (count !== s.count) local(`${split}: ${count} records but the manifest says ${s.count}`);
    if (bytes !== s.bytes) local(`${split}: ${bytes} bytes but the manifest says ${s.bytes}`);
    const density = total ? kept / total : 1;
    if (Math.abs(density - s.annotatedDensity) > 1e-9) local(`${split}: annotated density ${density} but the manifest says ${s.annotatedDensity}`);
    splits[split] = { records: count, problems: splitProblems, sha256 };
  }
  return { ok: problemCount === 0, splits, problems, problemCount };
}

export interface InspectResult {
  dir: string;
  manifest: Manifest;
  split: string | null;
  records: DatasetRecord[];
  verify?: VerifyResult;
}

export async function runGenDataInspect(opts: GenDataInspectOptions): Promise<InspectResult> {
  const manifest = readManifest(opts.dir);
  const names = Object.keys(manifest.splits);
  const split = opts.split ?? names[0] ?? null;
  if (opts.split && !manifest.splits[opts.split]) throw new UsageError(`--split ${opts.split}: no such split in ${opts.dir}`, `choose one of ${names.join(", ")}`);
  const records = split ? await firstRecords(join(opts.dir, manifest.splits[split].file), opts.records) : [];
  if (!opts.verify) return { dir: opts.dir, manifest, split, records };
  const reporter = createReporter({ json: opts.json });
  try {
    const verify = await verifyDataset(opts.dir, manifest, (s, done, total) => reporter.progress(`verify ${s}`, done, total));
    return { dir: opts.dir, manifest, split, records, verify };
  } finally {
    reporter.close();
  }
}

export function genDataInspectCommand(): Command {
  return new Command("inspect")
    .description("summarise a dataset folder and render a few records with their directives; --verify re-checks every record")
    .argument("<dir>", "a dataset folder (with manifest.json)")
    .option("--split <name>", "split to show records from (default: the first in the manifest)")
    .option("--records <n>", "records to render (default 3)")
    .option("--width <n>", "characters of segment text shown (default 72)")
    .option("--verify", "re-check every file and record; exit 1 if anything is wrong")
    .option("--json", "print only the JSON result")
    .addHelpText("after", "\nExamples:\n  $ spanattn gen-data inspect datasets/arith-default\n  $ spanattn gen-data inspect datasets/arith-default --split test-ood --records 1\n  $ spanattn gen-data inspect datasets/arith-default --verify\n")
    .action(async (dir: string, flags) => {
      const opts = loadOptions({ schema: genDataInspectOptionsSchema, flags: { ...flags, dir } });
      const result = await runGenDataInspect(opts);
      printResult(result, opts.json, () => {
        const parts = [renderManifest(opts.dir, result.manifest)];
        if (result.records.length) parts.push(`\nfirst ${result.records.length} record(s) of ${result.split}:\n`, result.records.map((r) => renderRecord(r, opts.width)).join("\n\n"));
        if (result.verify) {
          const v = result.verify;
          const counts = Object.entries(v.splits).map(([s, x]) => `${s} ${x.records}`).join(", ");
          parts.push(v.ok ? `\nverify: ok (${counts} records; sha256, counts, density, schema, grammar${result.manifest.task in TASK_VERIFIERS ? `, ${result.manifest.task} checks` : ""})` : `\nverify: ${v.problemCount} problem(s)`);
        }
        return parts.join("\n");
      });
      if (result.verify && !result.verify.ok) {
        const listed = result.verify.problems.map((p) => `- ${p}`);
        if (result.verify.problemCount > listed.length) listed.push(`- … and ${result.verify.problemCount - listed.length} more`);
        throw new SpanattnError(`${opts.dir} failed verification: ${result.verify.problemCount} problem(s)`, undefined, 1, listed);
      }
    });
}

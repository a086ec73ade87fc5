/**
 * Streaming, atomic dataset writer: `<out>/{<split>.jsonl...,manifest.json}`.
 *
 * Records stream into a sibling temp folder (`<out>.tmp-<pid>-<n>`), hashed and summarised
 * on the way; only when every split is complete is the folder renamed into place, so an
 * interrupted or failed run leaves no partial dataset. `--force` replaces an existing
 * dataset folder, never a folder that is not a dataset (no manifest.json), so a typo
 * cannot wipe source code.
 */
import { createHash } from "node:crypto";
import { once } from "node:events";
import { createWriteStream, existsSync, readdirSync, rmSync } from "node:fs";
import { mkdir, rename, rm, writeFile } from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";
import { ManifestSchema, ValidRecordSchema, type DatasetRecord, type Manifest, type SplitManifest } from "./schema.js";
import { densityCounts, grammar } from "./spans.js";
import { registerCleanup } from "../cli/lib/cleanup.js";
import { UsageError } from "../cli/lib/errors.js";

/**
 * Records already serialised and measured (e.g. by a worker thread, see prepareBatch), in
 * order: the writer only hashes and appends `text`, so the expensive per-record work can
 * run on every core while the output stays one ordered stream.
 */
export interface PreparedBatch {
  kind: "prepared";
  /** The JSON lines, each ending in "\n", UTF-8 encoded once (a worker can transfer it without a copy). */
  data: Uint8Array;
  count: number;
  chars: number[];
  responseChars: number[];
  segments: number[];
  tokens: number[];
  kept: number;
  total: number;
}

export type RecordSource = Iterable<DatasetRecord | PreparedBatch> | AsyncIterable<DatasetRecord | PreparedBatch>;

/** Validate (unless "none"), serialise and measure records: the writer's per-record work, pure. */
export function prepareBatch(records: Iterable<DatasetRecord>, split: string, validate: "all" | "none" = "all"): PreparedBatch {
  const batch: PreparedBatch = { kind: "prepared", data: new Uint8Array(0), count: 0, chars: [], responseChars: [], segments: [], tokens: [], kept: 0, total: 0 };
  const lines: string[] = [];
  for (const record of records) {
    if (validate !== "none") {
      const parsed = ValidRecordSchema.safeParse(record);
      if (!parsed.success) {
        const issues = parsed.error.issues.map((i) => `- ${i.path.join(".")}: ${i.message}`).join("\n");
        throw new Error(`internal: generated record ${record.id} (split ${split}) breaks the data contract:\n${issues}`);
      }
    }
    lines.push(JSON.stringify(record));
    let c = 0;
    let rc = 0;
    for (const s of record.segments) {
      c += s.text.length;
      if (s.role === "response") rc += s.text.length;
    }
    batch.chars.push(c);
    batch.responseChars.push(rc);
    batch.segments.push(record.segments.length);
    const d = densityCounts(record);
    batch.tokens.push(d.tokens);
    batch.kept += d.kept;
    batch.total += d.total;
    batch.count++;
  }
  if (lines.length) batch.data = Buffer.from(lines.join("\n") + "\n");
  return batch;
}

const isPrepared = (item: DatasetRecord | PreparedBatch): item is PreparedBatch => (item as PreparedBatch).kind === "prepared";

export interface WriteDatasetOptions {
  out: string;
  force?: boolean;
  name?: string;
  task: string;
  generator: { name: string; version: string };
  config: Record<string, unknown>;
  seed: number | null;
  /** Split name -> records, written in the order given. */
  splits: Record<string, RecordSource>;
  notes?: string[];
  /** "all" validates every record against the schema and grammar (default). */
  validate?: "all" | "none";
  onProgress?: (p: { split: string; written: number }) => void;
  /** Called every `progressEvery` records (default 1000). */
  progressEvery?: number;
}

/** Refuse before any work starts: nothing is written when this throws. */
export function checkOutput(out: string, force: boolean | undefined, option = "--out"): void {
  const dir = resolve(out);
  if (!existsSync(dir)) return;
  const entries = readdirSync(dir);
  if (entries.length === 0) return;
  if (!force) throw new UsageError(`${option} ${out} already exists`, "pass --force to replace it, or choose another --out");
  if (!entries.includes("manifest.json"))
    throw new UsageError(`${option} ${out} exists and is not a dataset folder (no manifest.json); refusing to replace it even with --force`, "choose another --out");
}

class Summariser {
  private values = new Float64Array(1024);
  private n = 0;
  add(v: number) {
    if (this.n === this.values.length) {
      const grown = new Float64Array(2 * this.n);
      grown.set(this.values);
      this.values = grown;
    }
    this.values[this.n++] = v;
  }
  summary() {
    const v = this.values.subarray(0, this.n).sort();
    if (v.length === 0) return { min: 0, median: 0, mean: 0, max: 0 };
    const mid = v.length >> 1;
    const median = v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
    let sum = 0;
    for (const x of v) sum += x;
    return { min: v[0], median, mean: Math.round((sum / v.length) * 1000) / 1000, max: v[v.length - 1] };
  }
}

let tmpCounter = 0;

export async function writeDataset(opts: WriteDatasetOptions): Promise<{ out: string; manifest: Manifest }> {
  checkOutput(opts.out, opts.force);
  const out = resolve(opts.out);
  const tmp = join(dirname(out), `${basename(out)}.tmp-${process.pid}-${tmpCounter++}`);
  await mkdir(tmp, { recursive: true });
  const unregister = registerCleanup(() => rmSync(tmp, { recursive: true, force: true }));
  try {
    const splits: Record<string, SplitManifest> = {};
    let keptAll = 0;
    let totalAll = 0;
    const every = opts.progressEvery ?? 1000;
    for (const [split, source] of Object.entries(opts.splits)) {
      const file = `${split}.jsonl`;
      const stream = createWriteStream(join(tmp, file));
      const hash = createHash("sha256");
      let bytes = 0;
      let count = 0;
      let kept = 0;
      let total = 0;
      const chars = new Summariser();
      const responseChars = new Summariser();
      const segments = new Summariser();
      const tokens = new Summariser();
      for await (const item of source as AsyncIterable<DatasetRecord | PreparedBatch>) {
        const batch = isPrepared(item) ? item : prepareBatch([item], split, opts.validate);
        hash.update(batch.data);
        bytes += batch.data.byteLength;
        if (!stream.write(batch.data)) await once(stream, "drain");
        const before = count;
        count += batch.count;
        for (let i = 0; i < batch.count; i++) {
          chars.add(batch.chars[i]);
          responseChars.add(batch.responseChars[i]);
          segments.add(batch.segments[i]);
          tokens.add(batch.tokens[i]);
        }
        kept += batch.kept;
        total += batch.total;
        if (opts.onProgress && Math.floor(count / every) > Math.floor(before / every)) opts.onProgress({ split, written: count });
      }
      stream.end();
      await once(stream, "finish");
      opts.onProgress?.({ split, written: count });
      keptAll += kept;
      totalAll += total;
      splits[split] = {
        file,
        count,
        bytes,
        sha256: hash.digest("hex"),
        chars: chars.summary(),
        responseChars: responseChars.summary(),
        segments: segments.summary(),
        tokens: tokens.summary(),
        annotatedDensity: total ? kept / total : 1,
      };
    }
    const manifest: Manifest = ManifestSchema.parse({
      name: opts.name ?? basename(out),
      task: opts.task,
      generator: opts.generator,
      grammar,
      seed: opts.seed,
      config: opts.config,
      splits,
      annotatedDensity: totalAll ? keptAll / totalAll : 1,
      notes: opts.notes ?? [],
    });
    await writeFile(join(tmp, "manifest.json"), JSON.stringify(manifest, null, 2) + "\n");
    if (existsSync(out)) {
      const old = `${tmp}.old`;
      await rename(out, old);
      await rename(tmp, out);
      await rm(old, { recursive: true, force: true });
    } else {
      await rename(tmp, out);
    }
    return { out, manifest };
  } finally {
    unregister();
    await rm(tmp, { recursive: true, force: true });
  }
}

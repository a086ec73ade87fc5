import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ManifestSchema, type DatasetRecord } from "../../datasets/schema.js";
import { writeDataset } from "../../datasets/writer.js";
import { UsageError } from "../../cli/lib/errors.js";
import { tempDir } from "../helpers.js";

function record(i: number, attend: number[] | undefined = [-1]): DatasetRecord {
  return {
    id: `t-${i}`,
    task: "arith",
    segments: [
      { role: "header", text: "Evaluate." },
      { role: "prompt", text: `${i}+1` },
      { role: "response", ...(attend ? { attend } : {}), text: String(i + 1) },
    ],
    answer: String(i + 1),
    meta: {},
  };
}

const base = { task: "arith", generator: { name: "test", version: "0" }, config: { n: 3 }, seed: 1 };

describe("writeDataset", () => {
  it("writes every split, and a manifest whose hashes, counts and density are right", async () => {
    const out = join(tempDir(), "ds");
    const { manifest } = await writeDataset({ ...base, out, splits: { train: [record(1, [0]), record(2, [0])], test: [record(3, undefined)] } });
    expect(readdirSync(out).sort()).toEqual(["manifest.json", "test.jsonl", "train.jsonl"]);
    const parsed = ManifestSchema.parse(JSON.parse(readFileSync(join(out, "manifest.json"), "utf8")));
    expect(parsed).toEqual(manifest);
    const train = readFileSync(join(out, "train.jsonl"));
    expect(manifest.splits.train.sha256).toBe(createHash("sha256").update(train).digest("hex"));
    expect(manifest.splits.train.count).toBe(2);
    expect(manifest.splits.train.bytes).toBe(train.length);
    // the dense-baseline split (no directives) keeps everything; the annotated one less
    expect(manifest.splits.test.annotatedDensity).toBe(1);
    expect(manifest.splits.train.annotatedDensity).toBeLessThan(1);
    expect(manifest.grammar).toHaveProperty("max_segments", 128);
  });

  it("a failure midway leaves no dataset and no temp folder", async () => {
    const parent = tempDir();
    const out = join(parent, "ds");
    function* failing() {
      yield record(1);
      throw new Error("generator broke");
    }
    await expect(writeDataset({ ...base, out, splits: { train: failing() } })).rejects.toThrow("generator broke");
    expect(readdirSync(parent)).toEqual([]);
  });

  it("a record that breaks the data contract is an internal error and nothing is written", async () => {
    const parent = tempDir();
    const bad = { ...record(1), segments: [{ role: "prompt", text: "x" }, { role: "response", attend: [5], text: "y" }] } as DatasetRecord;
    await expect(writeDataset({ ...base, out: join(parent, "ds"), splits: { train: [bad] } })).rejects.toThrow(/breaks the data contract[\s\S]*segments\.1\.attend/);
    expect(readdirSync(parent)).toEqual([]);
  });

  it("refuses an existing output without --force, replaces a dataset with it", async () => {
    const out = join(tempDir(), "ds");
    await writeDataset({ ...base, out, splits: { train: [record(1)] } });
    await expect(writeDataset({ ...base, out, splits: { train: [record(2)] } })).rejects.toThrow(UsageError);
    await writeDataset({ ...base, out, force: true, splits: { val: [record(2)] } });
    expect(readdirSync(out).sort()).toEqual(["manifest.json", "val.jsonl"]);
  });

  it("never replaces a folder that is not a dataset, even with --force", async () => {
    const out = join(tempDir(), "src");
    mkdirSync(out);
    writeFileSync(join(out, "index.ts"), "// precious");
    await expect(writeDataset({ ...base, out, force: true, splits: { train: [record(1)] } })).rejects.toThrow(/not a dataset folder/);
    expect(existsSync(join(out, "index.ts"))).toBe(true);
  });

  it("the same records give byte-identical files and manifest", async () => {
    const a = join(tempDir(), "a");
    const b = join(tempDir(), "a");
    const recs = () => ({ train: [record(1), record(2), record(3)] });
    await writeDataset({ ...base, out: a, splits: recs() });
    await writeDataset({ ...base, out: b, splits: recs() });
    for (const f of ["train.jsonl", "manifest.json"]) expect(readFileSync(join(a, f))).toEqual(readFileSync(join(b, f)));
  });
});

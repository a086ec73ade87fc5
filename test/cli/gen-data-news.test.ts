import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import { parse as parseYaml } from "yaml";
import { genDataNewsCommand, genDataNewsOptionsSchema, type GenDataNewsResult } from "../../cli/commands/gen-data-news.js";
import { UsageError } from "../../cli/lib/errors.js";
import { ManifestSchema, ValidRecordSchema } from "../../datasets/schema.js";
import { cli, repoRoot, tempDir } from "../helpers.js";

const fixtures = join(repoRoot, "test", "fixtures", "news");

async function run(args: string[]): Promise<GenDataNewsResult> {
  const chunks: string[] = [];
  const spy = vi.spyOn(process.stdout, "write").mockImplementation((chunk) => {
    chunks.push(String(chunk));
    return true;
  });
  try {
    await genDataNewsCommand().exitOverride().parseAsync([...args, "--json"], { from: "user" });
  } finally {
    spy.mockRestore();
  }
  return JSON.parse(chunks.join(""));
}

const readSplit = (out: string, split: string) =>
  readFileSync(join(out, `${split}.jsonl`), "utf8").split("\n").filter(Boolean).map((line) => JSON.parse(line));

afterEach(() => vi.restoreAllMocks());

describe("gen-data news", () => {
  it("writes a CNN/DM dataset whose records keep the data contract and point at real sentences", async () => {
    const out = join(tempDir(), "news");
    const result = await run(["--input", join(fixtures, "cnndm-5.jsonl"), "--out", out, "--set", "splits={train: 0.6, val: 0.2, test: 0.2}"]);
    expect(result.documents).toBe(5);
    expect(Object.values(result.counts).reduce((a, b) => a + b, 0)).toBe(5);
    const manifest = ManifestSchema.parse(JSON.parse(readFileSync(join(out, "manifest.json"), "utf8")));
    expect(manifest.task).toBe("news");
    expect(manifest.config).toMatchObject({ format: "auto", align: { maxSentences: 3 } });
    expect(manifest.annotatedDensity).toBeGreaterThan(0);
    expect(manifest.annotatedDensity).toBeLessThan(1);
    for (const split of Object.keys(result.counts)) {
      for (const record of readSplit(out, split)) {
        expect(ValidRecordSchema.safeParse(record).success).toBe(true);
        const prompts = record.segments.filter((s: { role: string }) => s.role === "prompt");
        prompts.forEach((s: { text: string }, i: number) => expect(s.text.startsWith(`[${i + 1}] `)).toBe(true));
        for (const s of record.segments.filter((s: { role: string }) => s.role === "response")) {
          for (const ref of s.attend ?? []) expect(ref === -1 || (ref >= 1 && ref <= prompts.length)).toBe(true);
        }
        expect(record.reference.split("\n")).toHaveLength(record.meta.truncation.summarySentences);
      }
    }
  });

  it("is byte-identical for the same seed, and the seed moves records between splits", async () => {
    const base = tempDir();
    const args = (out: string, seed: string) => ["--input", join(fixtures, "xsum-5.jsonl"), "--out", join(base, out), "--seed", seed, "--set", "splits={a: 0.5, b: 0.5}"];
    await run(args("one", "1"));
    await run(args("two", "1"));
    await run(args("three", "2"));
    const manifest = (name: string) => JSON.parse(readFileSync(join(base, name, "manifest.json"), "utf8"));
    expect(manifest("one").splits).toEqual(manifest("two").splits);
    const ids = (name: string) => readSplit(join(base, name), "a").map((r) => r.id);
    expect(ids("three")).not.toEqual(ids("one"));
  });

  it("stops before writing anything on bad input, listing line numbers; --skip-bad goes on", async () => {
    const dir = tempDir();
    const input = join(dir, "mixed.jsonl");
    writeFileSync(input, readFileSync(join(fixtures, "cnndm-5.jsonl"), "utf8").trim() + "\n{broken\n" + JSON.stringify({ id: "x", article: "", highlights: "h" }) + "\n");
    const out = join(dir, "out");
    const failure = await genDataNewsCommand().exitOverride().parseAsync(["--input", input, "--out", out, "--json"], { from: "user" }).catch((e) => e);
    expect(failure).toBeInstanceOf(UsageError);
    expect(failure.message).toBe("2 bad inputs; nothing was written");
    expect(failure.details).toHaveLength(2);
    expect(failure.details[0]).toMatch(/^- mixed\.jsonl:6: not valid JSON \(/);
    expect(failure.details[1]).toBe('- mixed.jsonl:7: empty article ("article")');
    expect(existsSync(out)).toBe(false);
    expect(readdirSync(dir)).toEqual(["mixed.jsonl"]);

    const result = await run(["--input", input, "--out", out, "--skip-bad"]);
    expect(result.documents).toBe(5);
    expect(result.skipped.map((p) => p.where)).toEqual(["mixed.jsonl:6", "mixed.jsonl:7"]);
    expect(JSON.parse(readFileSync(join(out, "manifest.json"), "utf8")).notes).toContain("2 bad inputs skipped (--skip-bad)");
  });

  it("turns HTML pages into records: with a summary when one is given, prompt-only otherwise", async () => {
    const dir = tempDir();
    const summaries = join(dir, "summaries.jsonl");
    writeFileSync(summaries, JSON.stringify({ file: "ars-1/source.html", summary: ["A two-year-old Minecraft bug lets attackers crash game servers.", "A fix has not shipped."] }) + "\n");
    const out = join(dir, "html");
    const result = await run(["--input", join(fixtures, "html", "*", "source.html"), "--summaries", summaries, "--out", out, "--set", "splits={all: 1}"]);
    expect(result).toMatchObject({ documents: 3, promptOnly: 2, nonEnglish: 1, counts: { all: 3 } });
    const [ars, heise, simplyfound] = readSplit(out, "all");
    expect(ars.id).toBe("ars-1/source");
    expect(ars.reference).toBe("A two-year-old Minecraft bug lets attackers crash game servers.\nA fix has not shipped.");
    expect(ars.segments.filter((s: { role: string }) => s.role === "response")).toHaveLength(2);
    expect(ars.meta).toMatchObject({ source: "html", title: "Just-released Minecraft exploit makes it easy to crash game servers", english: true });
    expect(heise.meta).toMatchObject({ lang: "de", english: false });
    expect(heise).not.toHaveProperty("reference");
    expect(simplyfound.segments.every((s: { role: string }) => s.role !== "response")).toBe(true);
  });

  it("refuses a page without a body unless --skip-bad", async () => {
    const dir = tempDir();
    mkdirSync(join(dir, "pages"));
    writeFileSync(join(dir, "pages", "empty.html"), "<html><body><nav><a href='/'>Home</a></nav></body></html>");
    const failure = await genDataNewsCommand().exitOverride().parseAsync(["--input", join(dir, "pages"), "--out", join(dir, "out"), "--json"], { from: "user" }).catch((e) => e);
    expect(failure.details).toEqual([`- ${join(dir, "pages", "empty.html")}: no article body found in the page`]);
    const skipped = await genDataNewsCommand().exitOverride().parseAsync(["--input", join(dir, "pages"), "--out", join(dir, "out"), "--json", "--skip-bad"], { from: "user" }).catch((e) => e);
    expect(skipped.message).toBe("no records to write: every input was bad or empty");
    expect(existsSync(join(dir, "out"))).toBe(false);
  });

  it("validates its options: flag values and the refs budget", async () => {
    const failure = await genDataNewsCommand().exitOverride().parseAsync(["--input", "x.jsonl", "--align-max", "8", "--json"], { from: "user" }).catch((e) => e);
    expect(failure.message).toBe("invalid options (from flags)");
    expect(failure.details).toEqual(["- align.maxSentences: maxSentences + attendPrevious must fit 8 refs per directive (got 9)"]);
    const missing = await genDataNewsCommand().exitOverride().parseAsync(["--json"], { from: "user" }).catch((e) => e);
    expect(missing.details).toEqual(["- input: required: a JSONL or HTML file, a folder of pages, or a glob (--input)"]);
  });

  it.each(["news-cnndm.yaml", "news-xsum.yaml"])("configs/data/%s is valid and opens with the command that uses it", (file) => {
    const text = readFileSync(join(repoRoot, "configs", "data", file), "utf8");
    expect(text.split("\n")[0]).toMatch(new RegExp(`^# spanattn gen-data news --config configs/data/${file} --out datasets/\\S+$`));
    expect(genDataNewsOptionsSchema.safeParse(parseYaml(text)).success).toBe(true);
  });

  it("runs through the built CLI: exit 2 and a readable message on bad input", async () => {
    const dir = tempDir();
    writeFileSync(join(dir, "bad.jsonl"), "not json\n");
    const run = await cli(["gen-data", "news", "--input", join(dir, "bad.jsonl"), "--out", join(dir, "out")]);
    expect(run.exitCode).toBe(2);
    expect(run.stderr).toContain("error: 1 bad input; nothing was written");
    expect(run.stderr).toContain("- bad.jsonl:1: not valid JSON");
    expect(run.stderr).toContain("hint: fix the input, or pass --skip-bad to leave these out");
  });
});

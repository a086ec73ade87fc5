import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { newsConfigSchema } from "../../../datasets/news/config.js";
import { decodeHtml, expandInput, readDocuments } from "../../../datasets/news/inputs.js";

const dir = mkdtempSync(join(tmpdir(), "news-inputs-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const fixtures = new URL("../../fixtures/news/", import.meta.url).pathname;
const write = (name: string, content: string | Buffer) => {
  const path = join(dir, name);
  mkdirSync(join(path, ".."), { recursive: true });
  writeFileSync(path, content);
  return path;
};
const config = (input: string | string[], extra: Record<string, unknown> = {}) => newsConfigSchema.parse({ input, ...extra });
const story = (n: number) => `<p>Paragraph ${n} of a story with enough words, commas, and clauses to be prose in any scoring.</p>`;
const page = (lang = "en", body = [1, 2, 3].map(story).join("")) => `<html lang="${lang}"><head><title>T</title></head><body><article>${body}</article></body></html>`;

describe("readDocuments: JSONL", () => {
  it("reads CNN/DM and XSum records with their ids, highlights as sentences", async () => {
    const { documents, problems } = await readDocuments(config([join(fixtures, "cnndm-5.jsonl"), join(fixtures, "xsum-5.jsonl")]));
    expect(problems).toEqual([]);
    expect(documents.map((d) => d.source)).toEqual(["cnndm", "cnndm", "cnndm", "cnndm", "cnndm", "xsum", "xsum", "xsum", "xsum", "xsum"]);
    expect(documents[0].id).toBe("dm-test-008aa71f64621995d749aff42be822b1b6ca7bc9");
    expect(documents[0].summary).toEqual({ sentences: [
      "Gary Locke will be confirmed as Kilmarnock boss on Friday.",
      "The club went unbeaten during Locke's first six games in charge.",
      "The 39-year-old former Killie defender has paid tribute to his players.",
    ] });
    expect(documents[5].summary).toHaveProperty("text");
    expect(documents[0].origin).toBe("cnndm-5.jsonl:1");
  });

  it("reports malformed lines, missing fields, empty articles and bad UTF-8 with line numbers", async () => {
    const good = JSON.stringify({ id: "a", article: "Some text here. More text.", highlights: "Text." });
    const lines = [
      good,
      "{not json",
      JSON.stringify({ id: "b", article: "Text without highlights." }),
      JSON.stringify({ id: "c", article: "   ", highlights: "x" }),
      JSON.stringify(["an", "array"]),
      "",
      JSON.stringify({ id: "d", article: 5, highlights: "x" }),
      JSON.stringify({ id: "e", document: "Text.", summary: "" }),
    ];
    const path = write("bad.jsonl", Buffer.concat([Buffer.from(lines.join("\n") + "\n"), Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x7d, 0x0a])]));
    const { documents, problems } = await readDocuments(config(path));
    expect(documents.map((d) => d.id)).toEqual(["a"]);
    expect(problems.map((p) => p.where)).toEqual(["bad.jsonl:2", "bad.jsonl:3", "bad.jsonl:4", "bad.jsonl:5", "bad.jsonl:7", "bad.jsonl:8", "bad.jsonl:9"]);
    expect(problems[0].message).toMatch(/not valid JSON/);
    expect(problems[1].message).toBe('missing or non-string field "highlights"');
    expect(problems[2].message).toBe('empty article ("article")');
    expect(problems[4].message).toBe('missing or non-string field "article"');
    expect(problems[5].message).toBe('empty summary ("summary")');
    expect(problems[6].message).toBe("line is not valid UTF-8");
  });

  it("uses configured field names and reports duplicate ids", async () => {
    const path = write("custom.jsonl", [
      JSON.stringify({ key: "x", body: "One. Two.", abstract: "One." }),
      JSON.stringify({ key: "x", body: "Three.", abstract: "Three." }),
    ].join("\n"));
    const { documents, problems } = await readDocuments(config(path, { format: "xsum", fields: { id: "key", article: "body", summary: "abstract" } }));
    expect(documents).toHaveLength(1);
    expect(problems).toEqual([{ where: "custom.jsonl:2", message: 'duplicate id "x" (first at custom.jsonl:1)' }]);
  });

  it("refuses files over the size cap with a clear message", async () => {
    const path = write("big.jsonl", "x".repeat(3000));
    const { documents, problems } = await readDocuments(config(path, { maxFileMiB: 0.001 }));
    expect(documents).toEqual([]);
    expect(problems[0].message).toBe("file is 0.0 MiB, over the 0.001 MiB cap; split it or raise maxFileMiB (--max-file-mib)");
  });

  it("reports a missing input and files of unknown type", async () => {
    expect((await readDocuments(config(join(dir, "nope.jsonl")))).problems[0].message).toBe("no such file or folder");
    expect((await readDocuments(config(write("notes.txt", "hi")))).problems[0].message).toMatch(/not a \.jsonl, \.html or \.htm file/);
  });
});

describe("readDocuments: HTML", () => {
  it("reads a folder (ids are paths below it), matches summaries by file name, and keeps non-English pages flagged", async () => {
    write("site/world/one.html", page());
    write("site/world/two.htm", page("fr", [1, 2, 3].map((n) => `<p>Le paragraphe ${n} de cette histoire est assez long pour compter, avec des virgules, et des mots.</p>`).join("")));
    write("site/nobody.html", `<html><body><nav><a href="/">Home</a></nav></body></html>`);
    const summaries = write("summaries.jsonl", [JSON.stringify({ file: "one.html", summary: "Paragraph one says things." }), "garbage", JSON.stringify({ file: "two.htm" })].join("\n"));
    const { documents, problems } = await readDocuments(config(join(dir, "site"), { summaries }));
    expect(documents.map((d) => d.id)).toEqual(["world/one", "world/two"]);
    expect(documents[0].summary).toEqual({ text: "Paragraph one says things." });
    expect(documents[1].summary).toBeNull();
    expect(documents[1].meta).toMatchObject({ lang: "fr", english: false });
    expect(problems.map((p) => `${p.where.replace(dir, "")}: ${p.message}`)).toEqual([
      "summaries.jsonl:2: not valid JSON (Unexpected token 'g', \"garbage\" is not valid JSON)",
      'summaries.jsonl:3: expected {"file": <page file name>, "summary": <string or array of sentences>}',
      "/site/nobody.html: no article body found in the page",
    ]);
  });

  it("expands globs relative to their static prefix", async () => {
    const expanded = await expandInput(join(dir, "site/**/*.htm"));
    expect("files" in expanded && expanded.files.map((f) => f.slice(dir.length))).toEqual(["/site/world/two.htm"]);
    expect(await expandInput(join(dir, "site/*.xml"))).toMatchObject({ message: "the glob matches no files" });
  });

  it("decodes UTF-8, then the declared charset, then UTF-8 with replacement characters", () => {
    expect(decodeHtml(Buffer.from("<p>café</p>"))).toEqual({ html: "<p>café</p>", encoding: "utf-8", invalidBytes: 0 });
    const latin1 = Buffer.concat([Buffer.from('<meta charset="windows-1252"><p>caf'), Buffer.from([0xe9]), Buffer.from("</p>")]);
    expect(decodeHtml(latin1)).toMatchObject({ html: '<meta charset="windows-1252"><p>café</p>', encoding: "windows-1252" });
    const broken = Buffer.concat([Buffer.from("<p>caf"), Buffer.from([0xe9, 0xff]), Buffer.from("</p>")]);
    expect(decodeHtml(broken)).toMatchObject({ encoding: "utf-8 (lossy)", invalidBytes: 2 });
  });

  it("keeps a page with invalid bytes, recording how many", async () => {
    const path = write("lossy/page.html", Buffer.concat([Buffer.from(page().replace("</article>", "<p>Bad byte ")), Buffer.from([0xff]), Buffer.from(" here.</p></article>")]));
    const { documents } = await readDocuments(config(path));
    expect(documents[0].meta).toMatchObject({ encoding: "utf-8 (lossy)", invalidBytes: 1 });
  });

  it("refuses pages over the size cap", async () => {
    const path = write("huge/page.html", page() + " ".repeat(4000));
    const { problems } = await readDocuments(config(path, { maxFileMiB: 0.002 }));
    expect(problems[0].message).toMatch(/over the 0.002 MiB cap/);
  });

  it("reads the fixture pages with their metadata", async () => {
    const { documents } = await readDocuments(config(join(fixtures, "html/*/source.html")));
    expect(documents.map((d) => d.id)).toEqual(["ars-1/source", "heise/source", "simplyfound-1/source"]);
    expect(documents.map((d) => d.meta.english)).toEqual([true, false, true]);
  });
});

describe("newsConfigSchema", () => {
  it("rejects a ref budget the grammar cannot hold, and splits that do not sum to 1", () => {
    expect(newsConfigSchema.safeParse({ input: "x", align: { maxSentences: 8 } }).success).toBe(false);
    expect(newsConfigSchema.safeParse({ input: "x", align: { maxSentences: 8, attendPrevious: false } }).success).toBe(true);
    expect(newsConfigSchema.safeParse({ input: "x", splits: { train: 0.5, test: 0.4 } }).success).toBe(false);
  });

  it("reads the fixture text as UTF-8", () => {
    expect(readFileSync(join(fixtures, "xsum-5.jsonl"), "utf8")).toContain("Share this with");
  });
});

describe("readDocuments: pathological pages", () => {
  it("survives a page nested thousands of levels deep, in reasonable time", async () => {
    const prose = "<p>Deep paragraph with enough text, commas, and words to count as prose in the scoring.</p>";
    const path = write("deep/page.html", "<div>".repeat(3000) + prose.repeat(3) + "</div>".repeat(3000));
    const started = Date.now();
    const { documents, problems } = await readDocuments(config(path));
    expect(documents.length + problems.length).toBe(1);
    expect(Date.now() - started).toBeLessThan(20_000);
  });
});

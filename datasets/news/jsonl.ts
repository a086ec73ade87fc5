/**
 * JSONL inputs: CNN/DM- and XSum-style article files, and the summaries file for HTML pages.
 * Lines are read as raw bytes so that invalid UTF-8 is reported per line; every bad line becomes
 * an InputProblem with "file:line".
 */
import { createReadStream, existsSync, statSync } from "node:fs";
import { basename } from "node:path";
import type { NewsConfig } from "./config.js";
import { sizeProblem, utf8, type InputProblem, type NewsDocument, type Pass } from "./documents.js";
import { classifyLanguage } from "./language.js";

/** JSONL lines as raw bytes, so invalid UTF-8 is caught per line (readline would hide it). */
async function* rawLines(path: string): AsyncGenerator<{ line: number; bytes: Buffer }> {
  let pending: Buffer = Buffer.alloc(0);
  let line = 0;
  for await (const chunk of createReadStream(path) as AsyncIterable<Buffer>) {
    let data = pending.length ? Buffer.concat([pending, chunk]) : chunk;
    let start = 0;
    for (let i = data.indexOf(10, start); i !== -1; i = data.indexOf(10, start)) {
      yield { line: ++line, bytes: data.subarray(start, i) };
      start = i + 1;
    }
    pending = Buffer.from(data.subarray(start));
    data = Buffer.alloc(0);
  }
  if (pending.length) yield { line: ++line, bytes: pending };
}

function stringField(row: Record<string, unknown>, name: string): string | undefined {
  const value = row[name];
  return typeof value === "string" ? value : undefined;
}

/** Which JSONL layout a row has, by its fields (format "auto"). */
function rowFormat(row: Record<string, unknown>, config: NewsConfig): "cnndm" | "xsum" | null {
  if (config.format === "cnndm" || config.format === "xsum") return config.format;
  if (config.fields.article && config.fields.summary) return "highlights" in row ? "cnndm" : "xsum";
  if ("highlights" in row) return "cnndm";
  if ("document" in row || "summary" in row) return "xsum";
  if ("article" in row) return "cnndm";
  return null;
}

const DEFAULT_FIELDS = {
  cnndm: { article: "article", summary: "highlights" },
  xsum: { article: "document", summary: "summary" },
} as const;

/** Documents of one CNN/DM- or XSum-style JSONL file, in line order; bad lines go to `problems`. */
export async function* jsonlDocuments(path: string, config: NewsConfig, pass: Pass, problems: InputProblem[]): AsyncGenerator<NewsDocument> {
  const unidentified = (problem: InputProblem) => {
    if (pass.reportsUnidentified) problems.push(problem);
  };
  const tooBig = sizeProblem(path, statSync(path).size, config);
  if (tooBig) {
    unidentified(tooBig);
    return;
  }
  const name = basename(path);
  for await (const { line, bytes } of rawLines(path)) {
    const where = `${name}:${line}`;
    let text: string;
    try {
      text = utf8.decode(bytes);
    } catch {
      unidentified({ where, message: "line is not valid UTF-8" });
      continue;
    }
    if (!text.trim()) continue;
    let row: unknown;
    try {
      row = JSON.parse(text);
    } catch (error) {
      unidentified({ where, message: `not valid JSON (${(error as Error).message})` });
      continue;
    }
    if (!row || typeof row !== "object" || Array.isArray(row)) {
      unidentified({ where, message: "a line must be a JSON object" });
      continue;
    }
    const record = row as Record<string, unknown>;
    const format = rowFormat(record, config);
    if (!format) {
      unidentified({ where, message: 'no article field: expected "article"+"highlights" (cnndm) or "document"+"summary" (xsum)' });
      continue;
    }
    const articleField = config.fields.article ?? DEFAULT_FIELDS[format].article;
    const summaryField = config.fields.summary ?? DEFAULT_FIELDS[format].summary;
    const article = stringField(record, articleField);
    const summary = stringField(record, summaryField);
    const rawId = record[config.fields.id];
    const missing = [
      article === undefined ? articleField : null,
      summary === undefined ? summaryField : null,
      typeof rawId !== "string" && typeof rawId !== "number" ? config.fields.id : null,
    ].filter((field): field is string => field !== null);
    const id = typeof rawId === "string" || typeof rawId === "number" ? String(rawId) : null;
    if (id !== null && !pass.owns(id)) continue;
    const report = (problem: InputProblem) => (id === null ? unidentified(problem) : problems.push(problem));
    if (missing.length) {
      report({ where, message: `missing or non-string field${missing.length > 1 ? "s" : ""} ${missing.map((f) => `"${f}"`).join(", ")}` });
      continue;
    }
    if (!article!.trim()) {
      report({ where, message: `empty article ("${articleField}")` });
      continue;
    }
    if (!summary!.trim()) {
      report({ where, message: `empty summary ("${summaryField}")` });
      continue;
    }
    const paragraphs = article!.split(/\n+/).map((p) => p.trim()).filter(Boolean);
    yield {
      id: id!,
      source: format,
      origin: where,
      paragraphs,
      summary: format === "cnndm" ? { sentences: summary!.split("\n").map((s) => s.trim()).filter(Boolean) } : { text: summary! },
      meta: {
        title: stringField(record, "title") ?? null,
        byline: null,
        date: null,
        lang: null,
        english: classifyLanguage(article!, "en").english,
        ...(stringField(record, "url") ? { url: stringField(record, "url") } : {}),
      },
    };
  }
}

export type SummaryIndex = Map<string, string | string[]>;

export async function readSummaries(path: string, config: NewsConfig, problems: InputProblem[]): Promise<SummaryIndex> {
  const index: SummaryIndex = new Map();
  if (!existsSync(path)) {
    problems.push({ where: path, message: "summaries file not found" });
    return index;
  }
  const tooBig = sizeProblem(path, statSync(path).size, config);
  if (tooBig) {
    problems.push(tooBig);
    return index;
  }
  const name = basename(path);
  for await (const { line, bytes } of rawLines(path)) {
    const where = `${name}:${line}`;
    let row: Record<string, unknown>;
    try {
      const text = utf8.decode(bytes);
      if (!text.trim()) continue;
      row = JSON.parse(text);
    } catch (error) {
      problems.push({ where, message: error instanceof SyntaxError ? `not valid JSON (${error.message})` : "line is not valid UTF-8" });
      continue;
    }
    const key = [row?.file, row?.name, row?.id].find((value) => typeof value === "string" && value) as string | undefined;
    const summary = row?.summary ?? row?.highlights ?? row?.reference;
    const valid = typeof summary === "string" ? summary.trim() !== "" : Array.isArray(summary) && summary.length > 0 && summary.every((s) => typeof s === "string");
    if (!key || !valid) {
      problems.push({ where, message: 'expected {"file": <page file name>, "summary": <string or array of sentences>}' });
      continue;
    }
    index.set(key, summary as string | string[]);
  }
  return index;
}


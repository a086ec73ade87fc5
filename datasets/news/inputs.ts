/**
 * Reading news inputs into documents: CNN/DM- and XSum-style JSONL, and HTML pages (a file, a
 * folder searched for *.html / *.htm, or a glob) with an optional JSONL of summaries keyed by
 * file name. Nothing here throws on bad input: every problem becomes an `InputProblem` with the
 * file and line, and the caller decides (stop before writing, or `--skip-bad`).
 *
 *   const { documents, problems } = await readDocuments(config)
 */
import { createReadStream, existsSync, statSync } from "node:fs";
import { readdir, readFile } from "node:fs/promises";
import { basename, extname, join, relative, resolve, sep } from "node:path";
import pLimit from "p-limit";
import { maxFileBytes, type NewsConfig } from "./config.js";
import { extractArticle } from "./extract.js";
import { classifyLanguage } from "./language.js";

export type NewsSource = "cnndm" | "xsum" | "html";

export interface NewsDocument {
  id: string;
  source: NewsSource;
  /** Where it came from: "file.jsonl:12" or the HTML path. */
  origin: string;
  /** Article text, one paragraph (or one line of the source) per entry. */
  paragraphs: string[];
  /** Gold summary: sentences (CNN/DM highlights are one per line), or a text to segment; null if none. */
  summary: { sentences: string[] } | { text: string } | null;
  meta: {
    title: string | null;
    byline: string | null;
    date: string | null;
    lang: string | null;
    english: boolean;
    url?: string;
    bodySource?: string;
    encoding?: string;
    invalidBytes?: number;
  };
}

export interface InputProblem {
  where: string;
  message: string;
}

export interface ReadResult {
  documents: NewsDocument[];
  problems: InputProblem[];
  files: number;
}

const utf8 = new TextDecoder("utf-8", { fatal: true });
const MiB = 1024 * 1024;

function sizeProblem(path: string, bytes: number, config: NewsConfig): InputProblem | null {
  if (bytes <= maxFileBytes(config)) return null;
  return {
    where: path,
    message: `file is ${(bytes / MiB).toFixed(1)} MiB, over the ${config.maxFileMiB} MiB cap; split it or raise maxFileMiB (--max-file-mib)`,
  };
}

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

async function readJsonl(path: string, config: NewsConfig, out: ReadResult): Promise<void> {
  const tooBig = sizeProblem(path, statSync(path).size, config);
  if (tooBig) {
    out.problems.push(tooBig);
    return;
  }
  const name = basename(path);
  for await (const { line, bytes } of rawLines(path)) {
    const where = `${name}:${line}`;
    let text: string;
    try {
      text = utf8.decode(bytes);
    } catch {
      out.problems.push({ where, message: "line is not valid UTF-8" });
      continue;
    }
    if (!text.trim()) continue;
    let row: unknown;
    try {
      row = JSON.parse(text);
    } catch (error) {
      out.problems.push({ where, message: `not valid JSON (${(error as Error).message})` });
      continue;
    }
    if (!row || typeof row !== "object" || Array.isArray(row)) {
      out.problems.push({ where, message: "a line must be a JSON object" });
      continue;
    }
    const record = row as Record<string, unknown>;
    const format = rowFormat(record, config);
    if (!format) {
      out.problems.push({ where, message: 'no article field: expected "article"+"highlights" (cnndm) or "document"+"summary" (xsum)' });
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
    if (missing.length) {
      out.problems.push({ where, message: `missing or non-string field${missing.length > 1 ? "s" : ""} ${missing.map((f) => `"${f}"`).join(", ")}` });
      continue;
    }
    if (!article!.trim()) {
      out.problems.push({ where, message: `empty article ("${articleField}")` });
      continue;
    }
    if (!summary!.trim()) {
      out.problems.push({ where, message: `empty summary ("${summaryField}")` });
      continue;
    }
    const paragraphs = article!.split(/\n+/).map((p) => p.trim()).filter(Boolean);
    out.documents.push({
      id: String(rawId),
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
    });
  }
}

/** The charset a page declares in its first bytes (`<meta charset>` or http-equiv). */
function declaredCharset(bytes: Buffer): string | null {
  const head = bytes.subarray(0, 4096).toString("latin1");
  const match = /<meta[^>]+charset\s*=\s*["']?\s*([\w-]+)/i.exec(head);
  return match ? match[1].toLowerCase() : null;
}

/** Decode a page: UTF-8 if valid, else its declared charset, else UTF-8 with replacement characters. */
export function decodeHtml(bytes: Buffer): { html: string; encoding: string; invalidBytes: number } {
  try {
    return { html: utf8.decode(bytes), encoding: "utf-8", invalidBytes: 0 };
  } catch {
    // fall through: not UTF-8
  }
  const declared = declaredCharset(bytes);
  if (declared && !/^utf-?8$/.test(declared)) {
    try {
      return { html: new TextDecoder(declared, { fatal: true }).decode(bytes), encoding: declared, invalidBytes: 0 };
    } catch {
      // unknown label or bytes that are not that charset either
    }
  }
  const html = new TextDecoder("utf-8").decode(bytes);
  const invalidBytes = (html.match(/\uFFFD/g) ?? []).length;
  return { html, encoding: "utf-8 (lossy)", invalidBytes };
}

function globToRegExp(pattern: string): RegExp {
  let source = "";
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === "*" && pattern[i + 1] === "*") {
      source += pattern[i + 2] === "/" ? "(?:.*/)?" : ".*";
      i += pattern[i + 2] === "/" ? 2 : 1;
    } else if (c === "*") source += "[^/]*";
    else if (c === "?") source += "[^/]";
    else source += c.replace(/[.+^${}()|[\]\\]/g, "\\$&");
  }
  return new RegExp(`^${source}$`);
}

async function walk(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of (await readdir(dir, { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : 1))) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await walk(path)));
    else if (entry.isFile()) out.push(path);
  }
  return out;
}

const isHtml = (path: string) => /\.html?$/i.test(path);
const isJsonl = (path: string) => /\.jsonl$/i.test(path);

/** Expand one --input into files, each with the root its id is taken relative to. */
export async function expandInput(input: string): Promise<{ files: string[]; root: string } | InputProblem> {
  if (/[*?]/.test(input)) {
    const parts = input.split("/");
    const firstGlob = parts.findIndex((part) => /[*?]/.test(part));
    const root = parts.slice(0, firstGlob).join("/") || ".";
    if (!existsSync(root)) return { where: input, message: `no such folder: ${root}` };
    const pattern = globToRegExp(parts.slice(firstGlob).join("/"));
    const files = (await walk(root)).filter((file) => pattern.test(relative(root, file).split(sep).join("/")));
    if (files.length === 0) return { where: input, message: "the glob matches no files" };
    return { files, root };
  }
  if (!existsSync(input)) return { where: input, message: "no such file or folder" };
  if (statSync(input).isDirectory()) {
    const files = (await walk(input)).filter(isHtml);
    if (files.length === 0) return { where: input, message: "the folder holds no *.html or *.htm files" };
    return { files, root: input };
  }
  return { files: [input], root: resolve(input, "..") };
}

/** Record id of a page: its path below the input root, without the extension ("bbc-1/source"). */
export function htmlId(file: string, root: string): string {
  const rel = relative(root, file).split(sep).join("/");
  return rel.slice(0, rel.length - extname(rel).length);
}

type SummaryIndex = Map<string, string | string[]>;

async function readSummaries(path: string, config: NewsConfig, problems: InputProblem[]): Promise<SummaryIndex> {
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

/** The summary for a page: keyed by id, relative path, file name, or file name without extension. */
function findSummary(index: SummaryIndex, id: string, file: string, root: string): string | string[] | undefined {
  const rel = relative(root, file).split(sep).join("/");
  for (const key of [id, rel, basename(file), basename(file, extname(file))]) {
    const found = index.get(key);
    if (found !== undefined) return found;
  }
  return undefined;
}

async function readPage(file: string, root: string, summaries: SummaryIndex | null, config: NewsConfig): Promise<NewsDocument | InputProblem> {
  let bytes: Buffer;
  try {
    const tooBig = sizeProblem(file, statSync(file).size, config);
    if (tooBig) return tooBig;
    bytes = await readFile(file);
  } catch (error) {
    return { where: file, message: `cannot read: ${(error as Error).message}` };
  }
  try {
    const { html, encoding, invalidBytes } = decodeHtml(bytes);
    const article = extractArticle(html);
    if (article.paragraphs.length === 0) return { where: file, message: "no article body found in the page" };
    const id = htmlId(file, root);
    const summary = summaries ? findSummary(summaries, id, file, root) : undefined;
    return {
      id,
      source: "html",
      origin: file,
      paragraphs: article.paragraphs,
      summary: summary === undefined ? null : Array.isArray(summary) ? { sentences: summary } : { text: summary },
      meta: {
        title: article.title,
        byline: article.byline,
        date: article.date,
        lang: article.lang,
        english: article.english,
        bodySource: article.bodySource,
        encoding,
        ...(invalidBytes ? { invalidBytes } : {}),
      },
    };
  } catch (error) {
    // e.g. a page nested so deep that walking it overflows the stack
    return { where: file, message: `cannot extract the page: ${(error as Error).message}` };
  }
}

async function readHtmlFiles(
  files: { file: string; root: string }[],
  summaries: SummaryIndex | null,
  config: NewsConfig,
  out: ReadResult,
  onFile?: (done: number, total: number) => void,
): Promise<void> {
  const limit = pLimit(config.concurrency);
  let done = 0;
  const results = await Promise.all(
    files.map(({ file, root }) =>
      limit(async () => {
        const result = await readPage(file, root, summaries, config);
        onFile?.(++done, files.length);
        return result;
      }),
    ),
  );
  for (const result of results) {
    if ("where" in result) out.problems.push(result);
    else out.documents.push(result);
  }
}

/** Read every input of the config into documents (in input order) and problems. */
export async function readDocuments(
  config: NewsConfig,
  onFile?: (done: number, total: number) => void,
): Promise<ReadResult> {
  const out: ReadResult = { documents: [], problems: [], files: 0 };
  const inputs = Array.isArray(config.input) ? config.input : [config.input];
  const html: { file: string; root: string }[] = [];
  for (const input of inputs) {
    const expanded = await expandInput(input);
    if ("message" in expanded) {
      out.problems.push(expanded);
      continue;
    }
    for (const file of expanded.files) {
      out.files++;
      if (config.format === "html" || isHtml(file)) html.push({ file, root: expanded.root });
      else if (isJsonl(file) || config.format === "cnndm" || config.format === "xsum") await readJsonl(file, config, out);
      else out.problems.push({ where: file, message: "not a .jsonl, .html or .htm file (pass --format to say what it is)" });
    }
  }
  if (html.length) {
    const summaries = config.summaries ? await readSummaries(config.summaries, config, out.problems) : null;
    await readHtmlFiles(html, summaries, config, out, onFile);
  }
  const seen = new Map<string, string>();
  out.documents = out.documents.filter((document) => {
    const first = seen.get(document.id);
    if (first === undefined) {
      seen.set(document.id, document.origin);
      return true;
    }
    out.problems.push({ where: document.origin, message: `duplicate id "${document.id}" (first at ${first})` });
    return false;
  });
  return out;
}

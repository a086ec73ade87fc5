/**
 * Reading news inputs into documents: CNN/DM- and XSum-style JSONL, and HTML pages (a file, a
 * folder searched for *.html / *.htm, or a glob) with an optional JSONL of summaries keyed by
 * file name. Nothing here throws on bad input: every problem becomes an `InputProblem` with the
 * file and line, and the caller decides (stop before writing, or `--skip-bad`).
 *
 *   const { documents, problems } = await readDocuments(config)
 */
import { existsSync, statSync } from "node:fs";
import { readdir, readFile } from "node:fs/promises";
import { basename, extname, join, relative, resolve, sep } from "node:path";
import pLimit from "p-limit";
import type { NewsConfig } from "./config.js";
import { EVERY_DOCUMENT, sizeProblem, utf8, type InputProblem, type NewsDocument, type Pass, type ReadResult } from "./documents.js";
import { extractArticle } from "./extract.js";
import { jsonlDocuments, readSummaries, type SummaryIndex } from "./jsonl.js";

export type { InputProblem, NewsDocument, NewsSource, Pass, ReadResult } from "./documents.js";
export { EVERY_DOCUMENT } from "./documents.js";

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

/**
 * Documents of HTML pages, in file order: pages the pass does not own are not even read; the
 * others are read and extracted `concurrency` at a time, a bounded window ahead of the consumer.
 */
async function* htmlDocuments(
  files: { file: string; root: string }[],
  summaries: SummaryIndex | null,
  config: NewsConfig,
  pass: Pass,
  problems: InputProblem[],
  onFile?: (done: number, total: number) => void,
): AsyncGenerator<NewsDocument> {
  const owned = files.filter(({ file, root }) => pass.owns(htmlId(file, root)));
  let done = 0;
  const limit = pLimit(config.concurrency);
  const window = config.concurrency * 2;
  for (let start = 0; start < owned.length; start += window) {
    const results = await Promise.all(
      owned.slice(start, start + window).map(({ file, root }) =>
        limit(async () => {
          const result = await readPage(file, root, summaries, config);
          onFile?.(++done, owned.length);
          return result;
        }),
      ),
    );
    for (const result of results) {
      if ("where" in result) problems.push(result);
      else yield result;
    }
  }
}

/**
 * The documents of one pass over every input, in input order; problems (bad lines, pages without
 * a body, duplicate ids, missing files) are appended to `problems` as they are found.
 */
export async function* iterateDocuments(
  config: NewsConfig,
  pass: Pass,
  problems: InputProblem[],
  onFile?: (done: number, total: number) => void,
): AsyncGenerator<NewsDocument> {
  const unidentified = (problem: InputProblem) => {
    if (pass.reportsUnidentified) problems.push(problem);
  };
  const inputs = Array.isArray(config.input) ? config.input : [config.input];
  const groups: Array<{ kind: "jsonl"; file: string } | { kind: "html"; files: { file: string; root: string }[] }> = [];
  let htmlFiles = 0;
  for (const input of inputs) {
    const expanded = await expandInput(input);
    if ("message" in expanded) {
      unidentified(expanded);
      continue;
    }
    for (const file of expanded.files) {
      if (config.format === "html" || isHtml(file)) {
        const last = groups[groups.length - 1];
        if (last?.kind === "html") last.files.push({ file, root: expanded.root });
        else groups.push({ kind: "html", files: [{ file, root: expanded.root }] });
        htmlFiles++;
      } else if (isJsonl(file) || config.format === "cnndm" || config.format === "xsum") {
        groups.push({ kind: "jsonl", file });
      } else {
        unidentified({ where: file, message: "not a .jsonl, .html or .htm file (pass --format to say what it is)" });
      }
    }
  }
  const summaries =
    htmlFiles && config.summaries
      ? await readSummaries(config.summaries, config, pass.reportsUnidentified ? problems : [])
      : null;
  const seen = new Map<string, string>();
  for (const group of groups) {
    const documents =
      group.kind === "jsonl"
        ? jsonlDocuments(group.file, config, pass, problems)
        : htmlDocuments(group.files, summaries, config, pass, problems, onFile);
    for await (const document of documents) {
      const first = seen.get(document.id);
      if (first !== undefined) {
        problems.push({ where: document.origin, message: `duplicate id "${document.id}" (first at ${first})` });
        continue;
      }
      seen.set(document.id, document.origin);
      yield document;
    }
  }
}

/** How many input files the config names (for reports). */
export async function countInputFiles(config: NewsConfig): Promise<number> {
  let files = 0;
  for (const input of Array.isArray(config.input) ? config.input : [config.input]) {
    const expanded = await expandInput(input);
    if (!("message" in expanded)) files += expanded.files.length;
  }
  return files;
}

/** Read every input of the config into documents (in input order) and problems: one pass, all kept. */
export async function readDocuments(config: NewsConfig, onFile?: (done: number, total: number) => void): Promise<ReadResult> {
  const out: ReadResult = { documents: [], problems: [], files: await countInputFiles(config) };
  for await (const document of iterateDocuments(config, EVERY_DOCUMENT, out.problems, onFile)) out.documents.push(document);
  return out;
}

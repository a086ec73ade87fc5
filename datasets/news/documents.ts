/** What the news inputs are read into: documents, and problems for the bad ones. */
import { maxFileBytes, type NewsConfig } from "./config.js";

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

/**
 * Which documents one pass over the inputs takes, by id, and whether it reports the problems that
 * have no id (a line that is not JSON, a missing file). The command makes one pass per split, so
 * each document is built once and only one split's records are in memory at a time.
 */
export interface Pass {
  owns(id: string): boolean;
  reportsUnidentified: boolean;
}

export const EVERY_DOCUMENT: Pass = { owns: () => true, reportsUnidentified: true };

/** Strict UTF-8: invalid bytes throw, so they can be reported instead of silently replaced. */
export const utf8 = new TextDecoder("utf-8", { fatal: true });
const MiB = 1024 * 1024;

/** The problem of a file over the size cap, or null. */
export function sizeProblem(path: string, bytes: number, config: NewsConfig): InputProblem | null {
  if (bytes <= maxFileBytes(config)) return null;
  return {
    where: path,
    message: `file is ${(bytes / MiB).toFixed(1)} MiB, over the ${config.maxFileMiB} MiB cap; split it or raise maxFileMiB (--max-file-mib)`,
  };
}


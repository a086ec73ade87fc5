/**
 * The news pipeline without the CLI: read documents, build records, assign splits. Pure apart
 * from reading the inputs; the command writes the result with datasets/writer.ts.
 *
 *   const result = await generateNews(newsConfigSchema.parse({ input: "../shared/data/news/xsum-sample.jsonl" }))
 *   result.splits.train.length  // 222 (seed 7, 90/5/5 of 251)
 */
import { createHash } from "node:crypto";
import type { DatasetRecord } from "../schema.js";
import type { NewsConfig } from "./config.js";
import { readDocuments, type InputProblem } from "./inputs.js";
import { buildNewsRecord, DocumentProblem } from "./records.js";

export interface NewsGeneration {
  splits: Record<string, DatasetRecord[]>;
  problems: InputProblem[];
  files: number;
  documents: number;
  stats: {
    promptOnly: number;
    nonEnglish: number;
    truncated: number;
    responses: number;
    /** Responses without a directive (no overlap with the article). */
    unaligned: number;
    /** Median ROUGE-1 recall of a summary sentence against the sentences it attends to. */
    medianRouge1Recall: number | null;
  };
}

/** Split of a record: a hash of seed and id against the cumulative fractions (order-free, stable). */
export function assignSplit(id: string, seed: number, fractions: Record<string, number>): string {
  const draw = createHash("sha256").update(`${seed}:${id}`).digest().readUInt32BE(0) / 2 ** 32;
  const names = Object.keys(fractions);
  let cumulative = 0;
  for (const name of names) {
    cumulative += fractions[name];
    if (draw < cumulative) return name;
  }
  return names[names.length - 1];
}

function median(values: number[]): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

export async function generateNews(
  config: NewsConfig,
  onProgress?: (stage: string, done: number, total?: number) => void,
): Promise<NewsGeneration> {
  const read = await readDocuments(config, (done, total) => onProgress?.("pages", done, total));
  const splits: Record<string, DatasetRecord[]> = Object.fromEntries(Object.keys(config.splits).map((name) => [name, []]));
  const problems = [...read.problems];
  const recalls: number[] = [];
  const stats = { promptOnly: 0, nonEnglish: 0, truncated: 0, responses: 0, unaligned: 0 };
  read.documents.forEach((document, i) => {
    let built;
    try {
      built = buildNewsRecord(document, config);
    } catch (error) {
      if (!(error instanceof DocumentProblem)) throw error;
      problems.push({ where: document.origin, message: error.message });
      return;
    }
    const { record, rouge1Recall } = built;
    splits[assignSplit(record.id, config.seed, config.splits)].push(record);
    const responses = record.segments.filter((segment) => segment.role === "response");
    stats.responses += responses.length;
    stats.unaligned += responses.filter((segment) => !segment.attend).length;
    if (responses.length === 0) stats.promptOnly++;
    if (!document.meta.english) stats.nonEnglish++;
    if ((record.meta as { truncation: { cutBy: string | null } }).truncation.cutBy) stats.truncated++;
    recalls.push(...rouge1Recall);
    if ((i + 1) % 50 === 0 || i + 1 === read.documents.length) onProgress?.("records", i + 1, read.documents.length);
  });
  return {
    splits,
    problems,
    files: read.files,
    documents: read.documents.length,
    stats: { ...stats, medianRouge1Recall: median(recalls) },
  };
}

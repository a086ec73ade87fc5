/**
 * The news pipeline without the CLI: documents -> records -> splits.
 *
 * `streamNewsSplits` is what the command writes: one lazy record source per split, each a pass
 * over the inputs that builds only the documents hashed to its split, so memory holds one
 * document at a time (plus a window of HTML pages), not the dataset; datasets/writer.ts consumes
 * the splits one after the other. `generateNews` collects everything in one pass (tests,
 * benchmarks).
 *
 *   const result = await generateNews(newsConfigSchema.parse({ input: "../shared/data/news/xsum-sample.jsonl" }))
 *   result.splits.train.length  // 222 (seed 7, 90/5/5 of 251)
 */
import { createHash } from "node:crypto";
import type { DatasetRecord } from "../schema.js";
import type { NewsConfig } from "./config.js";
import { countInputFiles, EVERY_DOCUMENT, iterateDocuments, type InputProblem, type NewsDocument, type Pass } from "./inputs.js";
import { buildNewsRecord, DocumentProblem } from "./records.js";

export interface NewsStats {
  documents: number;
  promptOnly: number;
  nonEnglish: number;
  truncated: number;
  responses: number;
  /** Responses without a directive (no overlap with the article). */
  unaligned: number;
  /** Median ROUGE-1 recall of a summary sentence against the sentences it attends to. */
  medianRouge1Recall: number | null;
}

export interface NewsGeneration {
  splits: Record<string, DatasetRecord[]>;
  problems: InputProblem[];
  files: number;
  documents: number;
  stats: NewsStats;
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
  const sorted = Float64Array.from(values).sort();
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** Running totals over the records built so far. */
class StatsCollector {
  private readonly recalls: number[] = [];
  private readonly counts = { documents: 0, promptOnly: 0, nonEnglish: 0, truncated: 0, responses: 0, unaligned: 0 };

  add(document: NewsDocument, record: DatasetRecord, rouge1Recall: number[]): void {
    const responses = record.segments.filter((segment) => segment.role === "response");
    this.counts.documents++;
    this.counts.responses += responses.length;
    this.counts.unaligned += responses.filter((segment) => !segment.attend).length;
    if (responses.length === 0) this.counts.promptOnly++;
    if (!document.meta.english) this.counts.nonEnglish++;
    if ((record.meta as { truncation: { cutBy: string | null } }).truncation.cutBy) this.counts.truncated++;
    this.recalls.push(...rouge1Recall);
  }

  stats(): NewsStats {
    return { ...this.counts, medianRouge1Recall: median(this.recalls) };
  }
}

/** Records of one pass over the inputs; documents that cannot become records join `problems`. */
async function* passRecords(
  config: NewsConfig,
  pass: Pass,
  problems: InputProblem[],
  stats: StatsCollector,
  onRecord?: (built: number) => void,
  onFile?: (done: number, total: number) => void,
): AsyncGenerator<DatasetRecord> {
  let built = 0;
  for await (const document of iterateDocuments(config, pass, problems, onFile)) {
    let result;
    try {
      result = buildNewsRecord(document, config);
    } catch (error) {
      if (!(error instanceof DocumentProblem)) throw error;
      problems.push({ where: document.origin, message: error.message });
      continue;
    }
    stats.add(document, result.record, result.rouge1Recall);
    onRecord?.(++built);
    yield result.record;
  }
}

export interface StreamedNews {
  /** One lazy source per split, in the config's order: consume them in that order, once. */
  splits: Record<string, AsyncIterable<DatasetRecord>>;
  /** Filled while the splits are consumed. */
  problems: InputProblem[];
  stats: () => NewsStats;
}

export function streamNewsSplits(
  config: NewsConfig,
  hooks: {
    onProgress?: (stage: string, done: number, total?: number) => void;
    /** Runs when the last split is exhausted, before the writer finishes: may throw to abort it. */
    afterLastSplit?: (problems: InputProblem[], stats: NewsStats) => void;
  } = {},
): StreamedNews {
  const problems: InputProblem[] = [];
  const stats = new StatsCollector();
  const names = Object.keys(config.splits);
  const splits: Record<string, AsyncIterable<DatasetRecord>> = {};
  names.forEach((name, index) => {
    const pass: Pass = {
      owns: (id) => assignSplit(id, config.seed, config.splits) === name,
      // Problems without an id would otherwise be reported once per split.
      reportsUnidentified: index === 0,
    };
    splits[name] = (async function* () {
      yield* passRecords(
        config,
        pass,
        problems,
        stats,
        (built) => hooks.onProgress?.(`records ${name}`, built),
        (done, total) => hooks.onProgress?.(`pages ${name}`, done, total),
      );
      if (index === names.length - 1) hooks.afterLastSplit?.(problems, stats.stats());
    })();
  });
  return { splits, problems, stats: () => stats.stats() };
}

/** Everything in memory, in one pass over the inputs. */
export async function generateNews(
  config: NewsConfig,
  onProgress?: (stage: string, done: number, total?: number) => void,
): Promise<NewsGeneration> {
  const splits: Record<string, DatasetRecord[]> = Object.fromEntries(Object.keys(config.splits).map((name) => [name, []]));
  const problems: InputProblem[] = [];
  const stats = new StatsCollector();
  const records = passRecords(
    config,
    EVERY_DOCUMENT,
    problems,
    stats,
    (built) => onProgress?.("records", built),
    (done, total) => onProgress?.("pages", done, total),
  );
  for await (const record of records) splits[assignSplit(record.id, config.seed, config.splits)].push(record);
  const summary = stats.stats();
  return { splits, problems, files: await countInputFiles(config), documents: summary.documents, stats: summary };
}

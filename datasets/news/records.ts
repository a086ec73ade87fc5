/**
 * One news document -> one span-annotated record (DESIGN §2):
 *
 *   segment 0          header            "Summarize the article."
 *   segments 1..N      prompt            "[n] <article sentence n>"   (sentence n is segment n)
 *   segments N+1..N+M  response          "<summary sentence>", attend = oracle-selected sentences
 *                                         (+ neighbours) and -1 (the previous summary sentence)
 *   reference          the gold summary, its sentences joined by "\n" (rouge-score's ROUGE-Lsum
 *                      convention), all of them even when the responses were truncated
 *
 * Long articles are cut to the sentence/character budget and to what the grammar's segment cap
 * leaves after the summary; what was cut is recorded in meta.truncation. A document without a
 * summary (an HTML page with no entry in --summaries) becomes a prompt-only record.
 */
import type { DatasetRecord } from "../schema.js";
import { grammar } from "../spans.js";
import { alignSummary } from "./align.js";
import type { NewsConfig } from "./config.js";
import type { NewsDocument } from "./inputs.js";
import { splitSentences } from "./segment.js";

// Boilerplate the datasets kept in their article text: XSum's BBC share bar glued to the first
// sentence ("Share this withEmail…Copy this link"), and Daily Mail's "Scroll down for video"
// (67 of the 250 CNN/DM sample articles).
const BOILERPLATE: Array<[name: string, pattern: RegExp]> = [
  ["share-bar", /^Share this with(?:Email|Facebook|Messenger|Twitter|Pinterest|WhatsApp|Linkedin|LinkedIn)*Copy this link\s*/],
  ["scroll-down-for-video", /\s*\bScroll down for videos?\b\s*/g],
];

export interface Truncation {
  articleSentences: number;
  keptSentences: number;
  articleChars: number;
  keptChars: number;
  summarySentences: number;
  keptSummarySentences: number;
  /** Which limit cut the article (or the summary): null when nothing was cut. */
  cutBy: "maxSentences" | "maxChars" | "segmentCap" | "maxSummarySentences" | null;
}

export interface BuiltRecord {
  record: DatasetRecord;
  /** ROUGE-1 recall of each response against the sentences it attends to (benchmarks use it). */
  rouge1Recall: number[];
}

/** A document that cannot become a record (reported like any other bad input). */
export class DocumentProblem extends Error {}

const round = (value: number) => Math.round(value * 1e4) / 1e4;

function articleSentences(document: NewsDocument, cleaned: string[]): string[] {
  const lang = document.meta.lang ?? "en";
  const paragraphs = document.paragraphs.map((paragraph) => {
    let text = paragraph;
    for (const [name, pattern] of BOILERPLATE) {
      const next = text.replace(pattern, " ").trim();
      if (next !== text.trim() && !cleaned.includes(name)) cleaned.push(name);
      text = next;
    }
    return text;
  });
  return paragraphs.flatMap((paragraph) => splitSentences(paragraph, lang));
}

function summarySentences(document: NewsDocument): string[] | null {
  if (!document.summary) return null;
  const sentences = "sentences" in document.summary ? document.summary.sentences : splitSentences(document.summary.text);
  return sentences.map((s) => s.replace(/\s+/g, " ").trim()).filter(Boolean);
}

/** Build the record of one document; null summary sentences mean a prompt-only record. */
export function buildNewsRecord(document: NewsDocument, config: NewsConfig): BuiltRecord {
  const cleaned: string[] = [];
  const sentences = articleSentences(document, cleaned);
  const summary = summarySentences(document);
  const keptSummary = summary ? summary.slice(0, config.truncate.maxSummarySentences) : [];

  // Segment budget: header + article + responses <= max_segments.
  const segmentRoom = grammar.max_segments - 1 - keptSummary.length;
  const sentenceLimit = Math.min(config.truncate.maxSentences, segmentRoom);
  let cutBy: Truncation["cutBy"] = null;
  const kept: string[] = [];
  let chars = 0;
  for (const sentence of sentences) {
    if (kept.length >= sentenceLimit) {
      cutBy = sentenceLimit === segmentRoom && segmentRoom < config.truncate.maxSentences ? "segmentCap" : "maxSentences";
      break;
    }
    if (chars + sentence.length > config.truncate.maxChars) {
      cutBy = "maxChars";
      // A first "sentence" longer than the whole budget (a page without punctuation) is cut at a
      // word boundary rather than dropped.
      if (kept.length === 0) {
        const head = sentence.slice(0, config.truncate.maxChars);
        const cut = head.replace(/\s+\S*$/, "") || head;
        kept.push(cut);
        chars += cut.length;
      }
      break;
    }
    kept.push(sentence);
    chars += sentence.length;
  }
  if (!cutBy && summary && keptSummary.length < summary.length) cutBy = "maxSummarySentences";
  if (kept.length === 0) throw new DocumentProblem("the article has no sentences (no letters or digits)");
  if (summary && keptSummary.length === 0) throw new DocumentProblem("the summary has no sentences");

  const alignment = summary
    ? alignSummary(kept, keptSummary, { ...config.align, maxRefs: grammar.max_refs_per_directive })
    : [];
  const segments: DatasetRecord["segments"] = [
    { role: "header", text: config.header },
    ...kept.map((sentence, i) => ({ role: "prompt" as const, text: `[${i + 1}] ${sentence}` })),
    ...keptSummary.map((sentence, i) => {
      const { attend } = alignment[i];
      // Nothing in the article overlaps this sentence: leave it global rather than hide the article.
      return attend.length ? { role: "response" as const, attend, text: sentence } : { role: "response" as const, text: sentence };
    }),
  ];
  const truncation: Truncation = {
    articleSentences: sentences.length,
    keptSentences: kept.length,
    articleChars: sentences.reduce((sum, s) => sum + s.length, 0),
    keptChars: chars,
    summarySentences: summary?.length ?? 0,
    keptSummarySentences: keptSummary.length,
    cutBy,
  };
  const record: DatasetRecord = {
    id: document.id,
    task: "news",
    segments,
    ...(summary ? { reference: summary.join("\n") } : {}),
    meta: {
      source: document.source,
      origin: document.origin,
      title: document.meta.title,
      byline: document.meta.byline,
      date: document.meta.date,
      lang: document.meta.lang,
      english: document.meta.english,
      ...(document.meta.url ? { url: document.meta.url } : {}),
      ...(document.meta.bodySource ? { bodySource: document.meta.bodySource } : {}),
      ...(document.meta.encoding && document.meta.encoding !== "utf-8" ? { encoding: document.meta.encoding } : {}),
      ...(document.meta.invalidBytes ? { invalidBytes: document.meta.invalidBytes } : {}),
      ...(cleaned.length ? { cleaned } : {}),
      truncation,
      alignment: alignment.map((a) => ({ sentences: a.sentences, score: round(a.score), rouge1Recall: round(a.rouge1Recall) })),
    },
  };
  return { record, rouge1Recall: alignment.map((a) => a.rouge1Recall) };
}

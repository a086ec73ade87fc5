/**
 * Span alignment: which article sentences each summary sentence draws on.
 *
 * The greedy extractive oracle (Nallapati et al. 2017; Liu & Lapata 2019's `greedy_selection`),
 * run once per summary sentence: start from no sentences, repeatedly add the article sentence that
 * most increases ROUGE-1 F + ROUGE-2 F (averaged) of the selection against the summary sentence,
 * stop when nothing increases it or `maxSentences` are chosen. The selection is then widened by an
 * optional neighbour window and the previous summary sentence (`-1`), within the grammar's cap on
 * refs per directive.
 *
 *   const article = ["Obama visited Kenya on Friday.", "The weather was fine.", "He met the president of Kenya."];
 *   alignSummary(article, ["Obama visited Kenya and met the president.", "The weather was fine."],
 *                { maxSentences: 3, neighbourWindow: 0, attendPrevious: true, maxRefs: 8 })
 *   // => [{ sentences: [1, 3], attend: [1, 3], score: 0.6, … }, { sentences: [2], attend: [2, -1], score: 1, … }]
 */
import { rougeN, rougeTokens } from "./rouge.js";

export interface AlignOptions {
  /** Most article sentences the oracle selects per summary sentence. */
  maxSentences: number;
  /** Also attend to article sentences within this distance of a selected one (0 = off). */
  neighbourWindow: number;
  /** Also attend to the previous summary sentence (`-1`) from the second summary sentence on. */
  attendPrevious: boolean;
  /** Cap on refs per directive (the span grammar's). */
  maxRefs: number;
}

export interface SentenceAlignment {
  /** Oracle-selected article sentence numbers (1-based, ascending). */
  sentences: number[];
  /** Oracle objective of the selection: (ROUGE-1 F + ROUGE-2 F) / 2. */
  score: number;
  /** ROUGE-1 recall of the summary sentence against the selected sentences. */
  rouge1Recall: number;
  /** The directive's refs: selected + neighbours (absolute segment numbers), then -1 if on. */
  attend: number[];
}

type Counts = Map<string, number>;

function gramCounts(tokens: readonly string[], n: number): Counts {
  const counts: Counts = new Map();
  for (let i = 0; i + n <= tokens.length; i++) {
    const gram = n === 1 ? tokens[i] : tokens.slice(i, i + n).join(" ");
    counts.set(gram, (counts.get(gram) ?? 0) + 1);
  }
  return counts;
}

function total(counts: Counts): number {
  let sum = 0;
  for (const count of counts.values()) sum += count;
  return sum;
}

/**
 * Clipped n-gram matches of a growing selection against one summary sentence. The selection's
 * n-grams are the sum of its sentences' own n-grams (no n-gram spans two article sentences), so
 * adding a sentence changes the match count only through that sentence's grams: an O(sentence)
 * update instead of re-scoring the whole selection with rouge.ts for every candidate, which made the
 * oracle the slowest stage (4.7 s for the 250 CNN/DM articles). For a single sentence the result is
 * exactly rouge.ts's ROUGE-N F (test/datasets/news/align.test.ts checks it).
 */
class NGramMatcher {
  private readonly selected: Counts = new Map();
  private readonly referenceLength: number;
  private matches = 0;
  private selectedLength = 0;

  constructor(private readonly reference: Counts) {
    this.referenceLength = total(reference);
  }

  /** How many more matches the selection would have with `grams` added. */
  private gain(grams: Counts): number {
    let delta = 0;
    for (const [gram, count] of grams) {
      const wanted = this.reference.get(gram);
      if (wanted === undefined) continue;
      const had = this.selected.get(gram) ?? 0;
      delta += Math.min(had + count, wanted) - Math.min(had, wanted);
    }
    return delta;
  }

  /** F-measure of the selection plus `grams` (rouge-score's: 0 when either side is empty). */
  fWith(grams: Counts, length: number): number {
    const matches = this.matches + this.gain(grams);
    const candidateLength = this.selectedLength + length;
    if (matches === 0 || candidateLength === 0 || this.referenceLength === 0) return 0;
    const precision = matches / candidateLength;
    const recall = matches / this.referenceLength;
    return (2 * precision * recall) / (precision + recall);
  }

  add(grams: Counts, length: number): void {
    this.matches += this.gain(grams);
    this.selectedLength += length;
    for (const [gram, count] of grams) this.selected.set(gram, (this.selected.get(gram) ?? 0) + count);
  }
}

/**
 * Greedy oracle selection for one summary sentence. Objective: (ROUGE-1 F + ROUGE-2 F) / 2 of the
 * selection against the sentence. Returns 1-based sentence numbers, ascending.
 */
export function greedyOracle(
  summarySentence: string,
  articleSentences: readonly string[],
  maxSentences: number,
): { sentences: number[]; score: number } {
  const summaryTokens = rougeTokens(summarySentence);
  const unigrams = new NGramMatcher(gramCounts(summaryTokens, 1));
  const bigrams = new NGramMatcher(gramCounts(summaryTokens, 2));
  const candidates = articleSentences.map((sentence) => {
    const tokens = rougeTokens(sentence);
    const one = gramCounts(tokens, 1);
    const two = gramCounts(tokens, 2);
    return { one, two, length1: tokens.length, length2: Math.max(0, tokens.length - 1) };
  });
  const selected: number[] = [];
  let best = 0;
  while (selected.length < maxSentences) {
    let bestIndex = -1;
    let bestScore = best;
    for (let index = 0; index < candidates.length; index++) {
      const candidate = candidates[index];
      if (candidate.length1 === 0 || selected.includes(index)) continue;
      const score =
        (unigrams.fWith(candidate.one, candidate.length1) + bigrams.fWith(candidate.two, candidate.length2)) / 2;
      if (score > bestScore) {
        bestScore = score;
        bestIndex = index;
      }
    }
    if (bestIndex < 0) break;
    const chosen = candidates[bestIndex];
    unigrams.add(chosen.one, chosen.length1);
    bigrams.add(chosen.two, chosen.length2);
    selected.push(bestIndex);
    best = bestScore;
  }
  return { sentences: selected.map((index) => index + 1).sort((a, b) => a - b), score: best };
}

/** Neighbours of the selection by increasing distance, never a selected one, inside 1..count. */
function neighbours(selected: readonly number[], window: number, count: number): number[] {
  const out: number[] = [];
  for (let distance = 1; distance <= window; distance++) {
    for (const sentence of selected) {
      for (const candidate of [sentence - distance, sentence + distance]) {
        if (candidate >= 1 && candidate <= count && !selected.includes(candidate) && !out.includes(candidate)) {
          out.push(candidate);
        }
      }
    }
  }
  return out;
}

/** Align every summary sentence; article sentence n is segment n of the record. */
export function alignSummary(
  articleSentences: readonly string[],
  summarySentences: readonly string[],
  options: AlignOptions,
): SentenceAlignment[] {
  return summarySentences.map((summarySentence, position) => {
    const previous = options.attendPrevious && position > 0 ? [-1] : [];
    const limit = Math.min(options.maxSentences, options.maxRefs - previous.length);
    const { sentences, score } = greedyOracle(summarySentence, articleSentences, limit);
    const room = Math.max(0, options.maxRefs - sentences.length - previous.length);
    const extra = neighbours(sentences, options.neighbourWindow, articleSentences.length).slice(0, room);
    const attend = [...[...sentences, ...extra].sort((a, b) => a - b), ...previous];
    const selectedText = sentences.map((n) => articleSentences[n - 1]).join(" ");
    return {
      sentences,
      score,
      rouge1Recall: sentences.length ? rougeN(selectedText, summarySentence, 1).recall : 0,
      attend,
    };
  });
}

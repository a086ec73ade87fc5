import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { alignSummary, greedyOracle } from "../../../datasets/news/align.js";
import { rougeN } from "../../../datasets/news/rouge.js";
import { splitSentences } from "../../../datasets/news/segment.js";

const options = { maxSentences: 3, neighbourWindow: 0, attendPrevious: true, maxRefs: 8 };

describe("greedyOracle (hand-checked)", () => {
  it("stops when another sentence would lower (R1 F + R2 F) / 2", () => {
    // [1] alone: R1 F = 12/13 (P 6/6, R 6/7), R2 F = 8/11 (4 of 5 vs 6 bigrams) -> 0.8252.
    // Adding [3] brings "red" (R1 F 0.8235) but no bigram (R2 F 0.5714): 0.6975 < 0.8252.
    const article = ["The cat sat on the mat.", "Dogs bark loudly at night.", "The mat was red."];
    const { sentences, score } = greedyOracle("The cat sat on the red mat.", article, 3);
    expect(sentences).toEqual([1]);
    expect(score).toBeCloseTo((12 / 13 + 8 / 11) / 2, 10);
  });

  it("combines two sentences when together they cover the summary sentence better", () => {
    // First pick [3] (0.4895 vs 0.45 for [1]); adding [1] gives R1 F 2/3, R2 F 8/15 -> 0.6.
    const article = ["Obama visited Kenya on Friday.", "The weather was fine.", "He met the president of Kenya."];
    const { sentences, score } = greedyOracle("Obama visited Kenya and met the president.", article, 3);
    expect(sentences).toEqual([1, 3]);
    expect(score).toBeCloseTo((2 / 3 + 8 / 15) / 2, 10);
    expect(greedyOracle("Obama visited Kenya and met the president.", article, 1).sentences).toEqual([3]);
  });

  it("selects nothing when nothing overlaps", () => {
    expect(greedyOracle("Zebras graze.", ["Markets fell today.", "Oil rose."], 3)).toEqual({ sentences: [], score: 0 });
  });

  it("scores a single sentence exactly as rouge.ts does, and picks the rouge.ts argmax, on CNN/DM", () => {
    const rows = readFileSync(new URL("../../fixtures/news/cnndm-5.jsonl", import.meta.url), "utf8").trim().split("\n").map((l) => JSON.parse(l));
    for (const row of rows) {
      const article = splitSentences(row.article);
      for (const highlight of row.highlights.split("\n")) {
        const objective = (s: string) => (rougeN(s, highlight, 1).f + rougeN(s, highlight, 2).f) / 2;
        const { sentences, score } = greedyOracle(highlight, article, 1);
        const best = Math.max(...article.map(objective));
        expect(score).toBeCloseTo(best, 12);
        expect(objective(article[sentences[0] - 1])).toBeCloseTo(score, 12);
      }
    }
  });
});

describe("alignSummary", () => {
  const article = ["One alpha.", "Two beta.", "Three gamma delta.", "Four epsilon.", "Five zeta."];

  it("adds -1 from the second summary sentence on, and records the score and ROUGE-1 recall", () => {
    const aligned = alignSummary(article, ["Gamma delta.", "Zeta."], options);
    expect(aligned.map((a) => a.attend)).toEqual([[3], [5, -1]]);
    expect(aligned[0].rouge1Recall).toBe(1);
    expect(aligned[1].sentences).toEqual([5]);
    expect(aligned[0].score).toBeGreaterThan(0);
  });

  it("widens the selection by the neighbour window, inside the article", () => {
    const aligned = alignSummary(article, ["Gamma delta.", "Zeta."], { ...options, neighbourWindow: 1, attendPrevious: false });
    expect(aligned.map((a) => a.attend)).toEqual([[2, 3, 4], [4, 5]]);
    expect(aligned.map((a) => a.sentences)).toEqual([[3], [5]]);
  });

  it("never exceeds the refs cap, counting -1", () => {
    const words = Array.from({ length: 12 }, (_, i) => `word${i}`);
    const many = words.map((w) => `${w} filler.`);
    const summary = ["intro.", words.join(" ")];
    const aligned = alignSummary(many, summary, { maxSentences: 8, neighbourWindow: 2, attendPrevious: true, maxRefs: 8 });
    expect(aligned[1].attend).toHaveLength(8);
    expect(aligned[1].attend.at(-1)).toBe(-1);
    expect(aligned[1].sentences).toHaveLength(7);
  });

  it("leaves a sentence with no overlap without refs", () => {
    expect(alignSummary(article, ["Nothing here matches."], options)[0]).toMatchObject({ sentences: [], attend: [], rouge1Recall: 0 });
  });
});

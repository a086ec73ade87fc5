import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { rouge, rougeTokens, type RougeScores } from "../../../datasets/news/rouge.js";

interface ReferenceCase {
  source: string;
  candidate: string;
  reference: string;
  expected: RougeScores;
  expectedStemmed: RougeScores;
}
const fixture = JSON.parse(
  readFileSync(new URL("../../fixtures/news/rouge-reference.json", import.meta.url), "utf8"),
) as { cases: ReferenceCase[] };

describe("rouge", () => {
  it("tokenises like rouge-score: lowercase, non-[a-z0-9] runs are separators", () => {
    expect(rougeTokens("The U.S. spent $1.5bn -- on Café!")).toEqual(["the", "u", "s", "spent", "1", "5bn", "on", "caf"]);
    expect(rougeTokens(" ... ")).toEqual([]);
  });

  it("matches the rouge-score README example (published values)", () => {
    const scores = rouge("The quick brown dog jumps on the log.", "The quick brown fox jumps over the lazy dog");
    expect(scores.rouge1.precision).toBeCloseTo(0.75, 12);
    expect(scores.rouge1.recall).toBeCloseTo(0.6666666666666666, 12);
    expect(scores.rouge1.f).toBeCloseTo(0.7058823529411765, 12);
    expect(scores.rougeL.precision).toBeCloseTo(0.625, 12);
    expect(scores.rougeL.recall).toBeCloseTo(0.5555555555555556, 12);
    expect(scores.rougeL.f).toBeCloseTo(0.5882352941176471, 12);
  });

  it.each(fixture.cases.map((c) => [c.source, c] as const))("matches torchmetrics on %s", (_source, c) => {
    for (const [stem, expected] of [[false, c.expected], [true, c.expectedStemmed]] as const) {
      const scores = rouge(c.candidate, c.reference, { stem });
      for (const key of ["rouge1", "rouge2", "rougeL", "rougeLsum"] as const) {
        for (const stat of ["precision", "recall", "f"] as const) {
          expect(Math.abs(scores[key][stat] - expected[key][stat]), `stem=${stem} ${key}.${stat}`).toBeLessThan(1e-6);
        }
      }
    }
  });

  it("stemming changes scores where it should", () => {
    const plain = rouge("hospitals relating", "hospital relates").rouge1.f;
    const stemmed = rouge("hospitals relating", "hospital relates", { stem: true }).rouge1.f;
    expect(plain).toBe(0);
    expect(stemmed).toBe(1);
  });
});

import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { porterStem } from "../../../datasets/news/porter.js";

const { stems } = JSON.parse(readFileSync(new URL("../../fixtures/news/porter-reference.json", import.meta.url), "utf8")) as { stems: Record<string, string> };

describe("porterStem", () => {
  it("matches NLTK's PorterStemmer on every word of the recorded vocabulary", () => {
    const wrong = Object.entries(stems).filter(([word, stem]) => porterStem(word) !== stem).map(([word, stem]) => `${word}: ${porterStem(word)} (NLTK ${stem})`);
    expect(Object.keys(stems).length).toBeGreaterThan(3000);
    expect(wrong).toEqual([]);
  });

  it("handles the paper's examples", () => {
    expect(["caresses", "ponies", "hopping", "relational", "generalization"].map(porterStem)).toEqual(["caress", "poni", "hop", "relat", "gener"]);
  });
});

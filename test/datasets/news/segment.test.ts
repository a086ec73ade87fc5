import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { continuesAfter, icuSentences, splitSentences } from "../../../datasets/news/segment.js";

interface Case {
  kind: string;
  text: string;
  sentences: string[];
}
const { cases } = JSON.parse(readFileSync(new URL("../../fixtures/news/sentences.json", import.meta.url), "utf8")) as { cases: Case[] };

describe("splitSentences", () => {
  it.each(cases.map((c) => [c.kind, c.text, c] as const))("%s: %s", (_kind, _text, c) => {
    expect(splitSentences(c.text)).toEqual(c.sentences);
  });

  it("does better than raw Intl.Segmenter on the fixture (which it starts from)", () => {
    const ours = cases.filter((c) => JSON.stringify(splitSentences(c.text)) === JSON.stringify(c.sentences)).length;
    const icu = cases.filter((c) => JSON.stringify(icuSentences(c.text)) === JSON.stringify(c.sentences)).length;
    expect(ours).toBe(cases.length);
    expect(icu).toBeLessThan(ours);
  });

  it("returns nothing for text without letters or digits", () => {
    expect(splitSentences(" ... \n -- ")).toEqual([]);
    expect(splitSentences("")).toEqual([]);
  });

  it("accepts any lang tag a page declares", () => {
    expect(splitSentences("Das ist gut. Wir gehen.", "de")).toEqual(["Das ist gut.", "Wir gehen."]);
    expect(splitSentences("One. Two.", "not a locale!")).toEqual(["One.", "Two."]);
  });

  it("keeps lowercase (XSum-style) summaries whole", () => {
    expect(splitSentences("school lunches can tempt fussy eaters to try new foods, a survey for the school food trust has suggested.")).toHaveLength(1);
  });
});

describe("continuesAfter", () => {
  it("joins titles before names but not ordinary words", () => {
    expect(continuesAfter("Mr.", "Smith went home.")).toBe(true);
    expect(continuesAfter("He went home.", "Smith followed.")).toBe(false);
  });
  it("joins a month only before a day number", () => {
    expect(continuesAfter("On Jan.", "5 it rained.")).toBe(true);
    expect(continuesAfter("It was cold in Jan.", "The spring was warm.")).toBe(false);
  });
});

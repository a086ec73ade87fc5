/**
 * densityCounts is a closed form; here it is checked against the definition: count, for
 * every token of the rendered record, the keys its query intervals cover.
 */
import seedrandom from "seedrandom";
import { describe, expect, it } from "vitest";
import type { DatasetSegment } from "../../datasets/schema.js";
import { densityCounts, grammar, parseTokens, queryIntervals, renderSymbolic } from "../../datasets/spans.js";

function byTokens(segments: DatasetSegment[]) {
  const p = parseTokens(renderSymbolic({ segments }));
  let kept = 0;
  for (let t = 0; t < p.length; t++) for (const [a, b] of queryIntervals(p, t)) kept += b - a;
  return { kept, total: (p.length * (p.length + 1)) / 2, tokens: p.length };
}

const TEXTS = ["", "7", "12+3*4", "(1-2)", "naïve", "emoji \u{1F600}!", "lone \ud800 surrogate", "<seg> is text here"];

function randomSegments(rng: () => number): DatasetSegment[] {
  const pick = <T,>(xs: readonly T[]) => xs[Math.floor(rng() * xs.length)];
  const n = rng() < 0.05 ? grammar.max_segments + 2 : 2 + Math.floor(rng() * 12);
  const segs: DatasetSegment[] = [{ role: "header", text: pick(TEXTS) }];
  const prompts = 1 + Math.floor(rng() * 3);
  for (let i = 1; i < n; i++) {
    const role = i <= prompts ? "prompt" : rng() < 0.1 ? "prompt" : "response";
    const seg: DatasetSegment = { role, text: pick(TEXTS) };
    const kind = rng();
    if (kind < 0.2) seg.attend = [];
    else if (kind < 0.8) {
      const refs: number[] = [];
      const count = Math.floor(rng() * (grammar.max_refs_per_directive + 2));
      for (let k = 0; k < count; k++) {
        // valid and invalid alike: earlier, future and self absolute refs, relative refs past segment 0
        refs.push(rng() < 0.5 ? -1 - Math.floor(rng() * grammar.max_relative_ref) : Math.floor(rng() * Math.min(i + 3, grammar.max_segments)));
      }
      seg.attend = refs;
    }
    segs.push(seg);
  }
  return segs;
}

describe("densityCounts", () => {
  it("equals the token-level count on 3000 random records, malformed directives included", () => {
    const rng = seedrandom.alea("density");
    for (let k = 0; k < 3000; k++) {
      const segments = randomSegments(rng);
      expect(densityCounts({ segments }), JSON.stringify(segments)).toEqual(byTokens(segments));
    }
  });

  it("a record without responses has no <eos>, so every pair is kept", () => {
    const segments: DatasetSegment[] = [{ role: "header", text: "ab" }, { role: "prompt", text: "xyz" }];
    expect(densityCounts({ segments })).toEqual({ kept: 28, total: 28, tokens: 7 });
  });

  it("throws on a ref that has no token, as rendering does", () => {
    const segments: DatasetSegment[] = [{ role: "header", text: "h" }, { role: "prompt", text: "p" }, { role: "response", attend: [-(grammar.max_relative_ref + 1)], text: "r" }];
    expect(() => densityCounts({ segments })).toThrow(RangeError);
  });
});

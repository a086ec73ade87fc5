import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { densityCounts, grammar, maskRows, mergeIntervals, parseTokens, queryIntervals, refToken, renderSymbolic } from "../../datasets/spans.js";

const vectors = JSON.parse(readFileSync(new URL("../fixtures/spans/vectors.json", import.meta.url), "utf8"));

describe("span grammar: shared vectors (also checked by pytest)", () => {
  it("uses the same grammar as the vectors", () => {
    expect(vectors.grammar).toEqual(grammar);
  });

  for (const v of vectors.token_vectors) {
    it(`${v.name}: ${v.description}`, () => {
      const p = parseTokens(v.tokens);
      expect(p.segmentIds).toEqual(v.expected.segment_ids);
      expect(p.segmentStarts).toEqual(v.expected.segment_starts);
      expect(p.statuses).toEqual(v.expected.statuses);
      expect(p.refs).toEqual(v.expected.refs);
      expect(p.sparse.map((s) => (s ? "1" : "0")).join("")).toBe(v.expected.sparse);
      expect(p.directiveAttempts).toBe(v.expected.directive_attempts);
      expect(p.malformed).toBe(v.expected.malformed);
      expect(p.sparse.map((_, t) => queryIntervals(p, t))).toEqual(v.expected.intervals);
      expect(maskRows(p)).toEqual(v.expected.mask);
    });
  }

  for (const v of vectors.record_vectors) {
    it(`record ${v.record.id}: symbolic rendering and annotated density`, () => {
      expect(renderSymbolic(v.record)).toEqual(v.tokens);
      const d = densityCounts(v.record);
      expect([d.kept, d.total, d.tokens]).toEqual([v.kept, v.total, v.tokens.length]);
    });
  }
});

describe("span grammar: properties", () => {
  it("a malformed directive never hides context: every row of a non-sparse token is fully causal", () => {
    for (const v of vectors.token_vectors) {
      const p = parseTokens(v.tokens);
      const rows = maskRows(p);
      p.sparse.forEach((s, t) => {
        if (!s) expect(rows[t]).toBe("1".repeat(t + 1) + "0".repeat(p.length - t - 1));
      });
    }
  });

  it("never throws on random token soup", () => {
    const alphabet = ["<bos>", "<seg>", "<attend>", "</attend>", "<ref-1>", "<ref-8>", "<ref0>", "<ref3>", "<ref127>", "<eos>", "a", "b"];
    let seed = 7;
    const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    for (let n = 0; n < 300; n++) {
      const toks = Array.from({ length: 1 + Math.floor(rand() * 40) }, () => alphabet[Math.floor(rand() * alphabet.length)]);
      const p = parseTokens(toks);
      expect(p.length).toBe(toks.length);
      for (let t = 0; t < p.length; t++) {
        for (const [a, b] of queryIntervals(p, t)) {
          expect(a).toBeGreaterThanOrEqual(0);
          expect(b).toBeLessThanOrEqual(t + 1);
        }
      }
    }
  });

  it("refToken spells refs and rejects what the grammar cannot express", () => {
    expect(refToken(-1)).toBe("<ref-1>");
    expect(refToken(7)).toBe("<ref7>");
    expect(() => refToken(-9)).toThrow(/-1\.\.-8/);
    expect(() => refToken(128)).toThrow(/0\.\.127/);
  });

  it("mergeIntervals sorts, drops empty and merges touching ranges", () => {
    expect(mergeIntervals([[5, 7], [0, 2], [2, 3], [4, 4], [6, 9]])).toEqual([[0, 3], [5, 9]]);
  });
});

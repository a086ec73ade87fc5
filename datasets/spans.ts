/**
 * The span grammar of DESIGN §1, TypeScript side: token spellings and caps (read from the
 * one definition, python/spanattn/grammar.json), the same left-to-right parser as
 * python/spanattn/spans.py, and the annotated density of a record.
 *
 * Both implementations are checked against the shared vectors in test/fixtures/spans/.
 * The TypeScript side has no model tokenizer, so it renders records one token per
 * character (`renderSymbolic`); for the character-level arithmetic tokenizer that is exact.
 */
import grammarJson from "../python/spanattn/grammar.json" with { type: "json" };
import type { DatasetRecord } from "./schema.js";

export interface Grammar {
  version: number;
  tokens: { bos: string; eos: string; pad: string; seg: string; attend_open: string; attend_close: string };
  absolute_ref_format: string;
  relative_ref_format: string;
  max_segments: number;
  max_relative_ref: number;
  max_refs_per_directive: number;
}

export const grammar: Grammar = grammarJson as Grammar;

export function refToken(ref: number, g: Grammar = grammar): string {
  if (!Number.isInteger(ref)) throw new RangeError(`ref must be an integer (got ${ref})`);
  if (ref < 0) {
    if (-ref > g.max_relative_ref) throw new RangeError(`relative ref must be in -1..-${g.max_relative_ref} (got ${ref})`);
    return g.relative_ref_format.replace("{k}", String(-ref));
  }
  if (ref >= g.max_segments) throw new RangeError(`absolute ref must be in 0..${g.max_segments - 1} (got ${ref})`);
  return g.absolute_ref_format.replace("{n}", String(ref));
}

const enum Kind { Text, Bos, Eos, Pad, Seg, Open, Close, Abs, Rel }
const enum Mode { Global, Expect, Directive, Sparse }

export type SegmentStatus =
  | "none"
  | "sparse"
  | "ref_not_earlier"
  | "unknown_ref"
  | "too_many_refs"
  | "unterminated"
  | "stray_directive_token"
  | "too_many_segments";

export interface SpanParse {
  length: number;
  segmentIds: number[];
  segmentStarts: number[];
  sparse: boolean[];
  statuses: SegmentStatus[];
  refs: number[][];
  directiveAttempts: number;
  malformed: number;
}

function kindTable(g: Grammar): Map<string, [Kind, number]> {
  const t = new Map<string, [Kind, number]>([
    [g.tokens.bos, [Kind.Bos, 0]], [g.tokens.eos, [Kind.Eos, 0]], [g.tokens.pad, [Kind.Pad, 0]],
    [g.tokens.seg, [Kind.Seg, 0]], [g.tokens.attend_open, [Kind.Open, 0]], [g.tokens.attend_close, [Kind.Close, 0]],
  ]);
  for (let n = 0; n < g.max_segments; n++) t.set(refToken(n, g), [Kind.Abs, n]);
  for (let k = 1; k <= g.max_relative_ref; k++) t.set(refToken(-k, g), [Kind.Rel, k]);
  return t;
}

const defaultTable = kindTable(grammar);

/** The state machine of DESIGN §1 (mirror of spans.parse_kinds). Never throws. */
export function parseTokens(tokens: readonly string[], g: Grammar = grammar): SpanParse {
  const table = g === grammar ? defaultTable : kindTable(g);
  const segmentIds: number[] = [];
  const segmentStarts = [0];
  const sparse: boolean[] = [];
  const statuses: SegmentStatus[] = ["none"];
  const refs: number[][] = [[]];
  let mode = Mode.Global;
  let cur = 0;
  let nref = 0;
  let attempts = 0;
  let malformed = 0;

  const fail = (reason: SegmentStatus) => {
    if (statuses[cur] !== "none" && statuses[cur] !== "sparse") return;
    statuses[cur] = reason;
    malformed++;
    mode = Mode.Global;
  };

  for (let t = 0; t < tokens.length; t++) {
    const [k, v] = table.get(tokens[t]) ?? [Kind.Text, 0];
    if (k === Kind.Seg) {
      if (mode === Mode.Directive) fail("unterminated");
      cur++;
      segmentStarts.push(t);
      statuses.push("none");
      refs.push([]);
      if (cur >= g.max_segments) {
        attempts++;
        fail("too_many_segments");
      } else {
        mode = Mode.Expect;
      }
      segmentIds.push(cur);
      sparse.push(false);
      continue;
    }
    segmentIds.push(cur);
    let isSparse = false;
    if (mode === Mode.Expect) {
      if (k === Kind.Open) {
        mode = Mode.Directive;
        nref = 0;
        attempts++;
      } else {
        mode = Mode.Global;
        if (k === Kind.Close || k === Kind.Abs || k === Kind.Rel) {
          attempts++;
          fail("stray_directive_token");
        }
      }
    } else if (mode === Mode.Directive) {
      if (k === Kind.Abs || k === Kind.Rel) {
        const target = k === Kind.Abs ? v : cur - v;
        nref++;
        if (nref > g.max_refs_per_directive) fail("too_many_refs");
        else if (k === Kind.Abs && target >= cur) fail("ref_not_earlier");
        else if (target < 0) fail("unknown_ref");
        else if (!refs[cur].includes(target)) refs[cur].push(target);
      } else if (k === Kind.Close) {
        mode = Mode.Sparse;
        statuses[cur] = "sparse";
        refs[cur].sort((a, b) => a - b);
      } else {
        fail("unterminated");
      }
    } else if (mode === Mode.Sparse) {
      if (k === Kind.Open || k === Kind.Close || k === Kind.Abs || k === Kind.Rel || k === Kind.Bos) fail("stray_directive_token");
      else isSparse = true;
    }
    sparse.push(isSparse);
  }
  if (mode === Mode.Directive) fail("unterminated");
  return { length: segmentIds.length, segmentIds, segmentStarts, sparse, statuses, refs, directiveAttempts: attempts, malformed };
}

function segmentEnd(p: SpanParse, s: number): number {
  return s + 1 < p.segmentStarts.length ? p.segmentStarts[s + 1] : p.length;
}

/** Sort, drop empty ranges, merge overlapping or touching ones. */
export function mergeIntervals(intervals: Array<[number, number]>): Array<[number, number]> {
  const sorted = intervals.filter(([a, b]) => b > a).sort((x, y) => x[0] - y[0] || x[1] - y[1]);
  const out: Array<[number, number]> = [];
  for (const [a, b] of sorted) {
    const last = out[out.length - 1];
    if (last && a <= last[1]) last[1] = Math.max(last[1], b);
    else out.push([a, b]);
  }
  return out;
}

/** Token ranges [start, end) that query t reads. */
export function queryIntervals(p: SpanParse, t: number): Array<[number, number]> {
  if (!p.sparse[t]) return [[0, t + 1]];
  const s = p.segmentIds[t];
  const raw: Array<[number, number]> = [[0, segmentEnd(p, 0)]];
  for (const r of p.refs[s]) if (r !== 0) raw.push([p.segmentStarts[r], segmentEnd(p, r)]);
  raw.push([p.segmentStarts[s], t + 1]);
  return mergeIntervals(raw);
}

/** Rows of the (T, T) mask as "0"/"1" strings; used by the shared test vectors. */
export function maskRows(p: SpanParse): string[] {
  const rows: string[] = [];
  for (let t = 0; t < p.length; t++) {
    const row = new Array<string>(p.length).fill("0");
    for (const [a, b] of queryIntervals(p, t)) for (let j = a; j < b; j++) row[j] = "1";
    rows.push(row.join(""));
  }
  return rows;
}

/** One token per character, special tokens as in the model (mirror of spans.render_symbolic). */
export function renderSymbolic(record: Pick<DatasetRecord, "segments">, g: Grammar = grammar): string[] {
  const [header, ...rest] = record.segments;
  const out = [g.tokens.bos, ...Array.from(header.text)];
  for (const seg of rest) {
    out.push(g.tokens.seg);
    if (seg.attend != null) out.push(g.tokens.attend_open, ...seg.attend.map((r) => refToken(r, g)), g.tokens.attend_close);
    out.push(...Array.from(seg.text));
  }
  if (rest.some((s) => s.role === "response")) out.push(g.tokens.eos);
  return out;
}

/** Code points, as Array.from counts them (a lone surrogate is one). */
function codePointLength(text: string): number {
  let n = text.length;
  for (let i = 0; i + 1 < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff) {
      const d = text.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        n--;
        i++;
      }
    }
  }
  return n;
}

/**
 * Kept and total causal attention pairs of a record (character-level tokens): kept/total
 * is the annotated density. Closed form per segment, no token array and no T×T matrix:
 * it is what parseTokens(renderSymbolic(record)) gives (the state machine's verdicts for a
 * rendered record, where text characters are never special tokens), and the tests check
 * it against that token-level computation on random and malformed records.
 */
export function densityCounts(record: Pick<DatasetRecord, "segments">, g: Grammar = grammar): { kept: number; total: number; tokens: number } {
  const segs = record.segments;
  const n = segs.length;
  const lens = new Array<number>(n);
  let length = 0;
  for (let i = 0; i < n; i++) {
    const attend = i > 0 ? segs[i].attend : undefined;
    if (attend != null) for (const r of attend) if (!Number.isInteger(r) || r < -g.max_relative_ref || r >= g.max_segments) refToken(r, g);
    // <bos> or <seg>, then <attend> refs </attend> when there is a directive, then the text.
    lens[i] = 1 + (attend != null ? 2 + attend.length : 0) + codePointLength(segs[i].text);
    length += lens[i];
  }
  if (segs.some((s, i) => i > 0 && s.role === "response")) {
    lens[n - 1]++; // <eos> belongs to the last segment
    length++;
  }
  const seg0 = lens[0];
  const globalSum = (start: number, len: number) => len * start + (len * (len + 1)) / 2; // sum of (t + 1)
  let kept = globalSum(0, seg0);
  let start = seg0;
  for (let i = 1; i < n; i++) {
    const len = lens[i];
    const attend = segs[i].attend;
    let refLength = -1; // -1: the segment is global
    if (attend != null && i < g.max_segments && attend.length <= g.max_refs_per_directive) {
      const targets: number[] = []; // at most max_refs_per_directive: a list beats a Set
      let valid = true;
      for (const r of attend) {
        const target = r >= 0 ? r : i + r;
        if (r >= i || target < 0) valid = false;
        else if (!targets.includes(target)) targets.push(target);
      }
      if (valid) {
        refLength = 0;
        for (const t of targets) if (t !== 0) refLength += lens[t];
      }
    }
    if (refLength < 0) {
      kept += globalSum(start, len);
    } else {
      // The segment token and the directive attend globally; what follows reads
      // segment 0 + the refs + its own segment up to itself (u = t - start + 1).
      const d = 3 + attend!.length;
      kept += globalSum(start, d) + (len - d) * (seg0 + refLength) + (len * (len + 1) - d * (d + 1)) / 2;
    }
    start += len;
  }
  return { kept, total: (length * (length + 1)) / 2, tokens: length };
}

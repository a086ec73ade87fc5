/**
 * ROUGE (Lin, 2004) with google-research `rouge-score` semantics, computed by js-rouge.
 *
 * js-rouge (a maintained npm package) does the counting: clipped n-gram matches for ROUGE-N, LCS for
 * ROUGE-L and the union-LCS summary-level score for ROUGE-Lsum. What it does not share with
 * rouge-score is tokenisation, so we pass rouge-score's tokeniser: lowercase, every run of
 * characters outside [a-z0-9] becomes a space, split on spaces (no stemming). ROUGE-L treats each
 * text as one sequence; ROUGE-Lsum splits both texts on "\n" as rouge-score does. The scores are
 * checked against torchmetrics 1.9 `ROUGEScore` (a port of rouge-score) by
 * test/datasets/news/rouge.test.ts on values recorded in test/fixtures/news/rouge-reference.json.
 *
 *   rouge("the cat sat", "the cat sat on the mat").rouge1  // { precision: 1, recall: 0.5, f: 0.667 }
 */
import { l as jsRougeL, n as jsRougeN } from "js-rouge";

export interface PRF {
  precision: number;
  recall: number;
  f: number;
}

export interface RougeScores {
  rouge1: PRF;
  rouge2: PRF;
  rougeL: PRF;
  rougeLsum: PRF;
}

/** rouge-score's tokeniser (`tokenize.tokenize` with `stemmer=None`). */
export function rougeTokens(text: string): string[] {
  return text
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, " ")
    .split(" ")
    .filter((token) => token.length > 0);
}

const ZERO: PRF = { precision: 0, recall: 0, f: 0 };
const wholeText = (text: string) => [text];
const lines = (text: string) => text.split("\n");

type Scorer = (candidate: string, reference: string, beta: number) => number;

function prf(candidate: string, reference: string, scorer: Scorer): PRF {
  // rouge-score returns zeros when either side has no tokens; js-rouge throws on blank input.
  if (rougeTokens(candidate).length === 0 || rougeTokens(reference).length === 0) return ZERO;
  // js-rouge's fMeasure: beta = 0 gives precision, beta = Infinity gives recall.
  return {
    precision: scorer(candidate, reference, 0),
    recall: scorer(candidate, reference, Number.POSITIVE_INFINITY),
    f: scorer(candidate, reference, 1),
  };
}

export function rougeN(candidate: string, reference: string, n: number): PRF {
  return prf(candidate, reference, (c, r, beta) => jsRougeN(c, r, { n, beta, tokenizer: rougeTokens }));
}

export function rougeL(candidate: string, reference: string): PRF {
  return prf(candidate, reference, (c, r, beta) =>
    jsRougeL(c, r, { beta, tokenizer: rougeTokens, segmenter: wholeText }),
  );
}

/** Summary-level ROUGE-L: both texts are split into sentences on "\n". */
export function rougeLsum(candidate: string, reference: string): PRF {
  return prf(candidate, reference, (c, r, beta) =>
    jsRougeL(c, r, { beta, tokenizer: rougeTokens, segmenter: lines }),
  );
}

/** ROUGE-1/2/L/Lsum of `candidate` against `reference` (rouge-score's `score(target, prediction)`). */
export function rouge(candidate: string, reference: string): RougeScores {
  return {
    rouge1: rougeN(candidate, reference, 1),
    rouge2: rougeN(candidate, reference, 2),
    rougeL: rougeL(candidate, reference),
    rougeLsum: rougeLsum(candidate, reference),
  };
}

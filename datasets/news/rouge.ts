/**
 * ROUGE (Lin, 2004) with google-research `rouge-score` semantics, computed by js-rouge.
 *
 * js-rouge (a maintained npm package) does the counting: clipped n-gram matches for ROUGE-N, LCS for
 * ROUGE-L and the union-LCS summary-level score for ROUGE-Lsum. What it does not share with
 * rouge-score is tokenisation, so we pass rouge-score's tokeniser: lowercase, every run of
 * characters outside [a-z0-9] becomes a space, split on spaces (no stemming). ROUGE-L treats each
 * text as one sequence; ROUGE-Lsum splits both texts on "\n" as rouge-score does. `stem: true` is
 * rouge-score's `use_stemmer=True`: NLTK's Porter stemmer (porter.ts) on tokens longer than 3
 * characters. The scores are checked against torchmetrics 1.9 `rouge_score` (a port of
 * rouge-score), with and without stemming, by test/datasets/news/rouge.test.ts on values recorded
 * in test/fixtures/news/rouge-reference.json.
 *
 *   rouge("the cat sat", "the cat sat on the mat").rouge1  // { precision: 1, recall: 0.5, f: 0.667 }
 */
import { l as jsRougeL, n as jsRougeN } from "js-rouge";
import { porterStem } from "./porter.js";

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

export interface RougeOptions {
  /** Porter-stem tokens longer than 3 characters (rouge-score's use_stemmer). Default false. */
  stem?: boolean;
}

/** rouge-score's tokeniser (`tokenize.tokenize`), with its stemmer when `stem` is set. */
export function rougeTokens(text: string, stem = false): string[] {
  const tokens = text
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, " ")
    .split(" ")
    .filter((token) => token.length > 0);
  return stem ? tokens.map((token) => (token.length > 3 ? porterStem(token) : token)) : tokens;
}

const stemmedTokens = (text: string) => rougeTokens(text, true);
const tokenizer = (options?: RougeOptions) => (options?.stem ? stemmedTokens : rougeTokens);

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

export function rougeN(candidate: string, reference: string, n: number, options?: RougeOptions): PRF {
  return prf(candidate, reference, (c, r, beta) => jsRougeN(c, r, { n, beta, tokenizer: tokenizer(options) }));
}

export function rougeL(candidate: string, reference: string, options?: RougeOptions): PRF {
  return prf(candidate, reference, (c, r, beta) =>
    jsRougeL(c, r, { beta, tokenizer: tokenizer(options), segmenter: wholeText }),
  );
}

/** Summary-level ROUGE-L: both texts are split into sentences on "\n". */
export function rougeLsum(candidate: string, reference: string, options?: RougeOptions): PRF {
  return prf(candidate, reference, (c, r, beta) =>
    jsRougeL(c, r, { beta, tokenizer: tokenizer(options), segmenter: lines }),
  );
}

/** ROUGE-1/2/L/Lsum of `candidate` against `reference` (rouge-score's `score(target, prediction)`). */
export function rouge(candidate: string, reference: string, options?: RougeOptions): RougeScores {
  return {
    rouge1: rougeN(candidate, reference, 1, options),
    rouge2: rougeN(candidate, reference, 2, options),
    rougeL: rougeL(candidate, reference, options),
    rougeLsum: rougeLsum(candidate, reference, options),
  };
}

/**
 * Is this text English? A page's declared language is often missing or wrong (templates say
 * lang="en" on every edition), so we look at the words: in English prose roughly 40-50% of word
 * tokens are among the commonest function words below; in French, German, Spanish, Czech or
 * Portuguese prose it is under 10%, and CJK text has almost no space-separated tokens at all.
 * The threshold 0.2 sits between; the declared language decides only when there is too little
 * text (< 20 words) to judge.
 *
 *   classifyLanguage("The cat sat on the mat and it was happy.", null)  // { english: true, … }
 */
const FUNCTION_WORDS = new Set(
  (
    "the of and to a in is that for it was on with as he she at by be this are from his her have has " +
    "had not but or an they were which you we their its been will would said there who all one can " +
    "more if about also after than when what so up out into no them could our other only new some " +
    "my i me do did does just over those these how then him any most because while where before " +
    "should between such"
  ).split(" "),
);

export interface LanguageGuess {
  english: boolean;
  /** Share of word tokens that are common English function words. */
  functionWordShare: number;
  words: number;
}

export function classifyLanguage(text: string, declared: string | null): LanguageGuess {
  const words = text.toLowerCase().match(/\p{L}+/gu) ?? [];
  let hits = 0;
  for (const word of words) if (FUNCTION_WORDS.has(word)) hits++;
  const functionWordShare = words.length ? hits / words.length : 0;
  const english = words.length >= 20 ? functionWordShare >= 0.2 : (declared ?? "").startsWith("en");
  return { english, functionWordShare, words: words.length };
}

/**
 * Is this text English? A page's declared language is often missing or wrong (templates say
 * lang="en" on every edition), so we look at the words. In English news prose 30-50% of word
 * tokens are among the commonest English function words below; in the French, German, Spanish,
 * Portuguese, Czech and Welsh texts of ../shared/data/news it is 0.4-8%, and CJK text has almost
 * no space-separated words at all. Stats-heavy English (cricket scorecards) can fall to ~10%, so
 * the rule is: English share >= 0.09 and above the share of common function words of other
 * European languages. The declared language decides only for very short text (under 20 words
 * and under 40 letters).
 *
 *   classifyLanguage("The council said on Monday that it would vote on the plan after the summer, and that the mayor had agreed.", null)
 *   // => { english: true, functionWordShare: 0.667, … }
 */
const ENGLISH = new Set(
  (
    "the of and to a in is that for it was on with as he she at by be this are from his her have has " +
    "had not but or an they were which you we their its been will would said there who all one can " +
    "more if about also after than when what so up out into no them could our other only new some " +
    "my i me do did does just over those these how then him any most because while where before " +
    "should between such"
  ).split(" "),
);
// Frequent words of French, Spanish, Portuguese, Italian, German, Dutch, Czech and Welsh that are
// not English words.
const OTHER = new Set(
  (
    "de la le les et des du une est que qui dans pour pas sur au aux el los las del por con para una " +
    "es se lo su al da dos das em não uma com os ao na il di che per della der die und das ist nicht " +
    "ein eine zu mit von den dem sich auf het een van en je na se že ve pro jsou yn mae ar ac gan wedi " +
    "bod ei hyn"
  ).split(" "),
);

export interface LanguageGuess {
  english: boolean;
  /** Share of word tokens that are common English function words. */
  functionWordShare: number;
  /** Share of word tokens that are common function words of other European languages. */
  otherShare: number;
  words: number;
}

export function classifyLanguage(text: string, declared: string | null): LanguageGuess {
  const words = text.toLowerCase().match(/\p{L}+/gu) ?? [];
  let english = 0;
  let other = 0;
  for (const word of words) {
    if (ENGLISH.has(word)) english++;
    else if (OTHER.has(word)) other++;
  }
  const functionWordShare = words.length ? english / words.length : 0;
  const otherShare = words.length ? other / words.length : 0;
  // Chinese or Japanese text is a few long "words": count its letters instead.
  const enoughText = words.length >= 20 || words.reduce((sum, word) => sum + word.length, 0) >= 40;
  const isEnglish = enoughText ? functionWordShare >= 0.09 && functionWordShare > otherShare : (declared ?? "").startsWith("en");
  return { english: isEnglish, functionWordShare, otherShare, words: words.length };
}

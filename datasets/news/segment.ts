/**
 * Sentence segmentation for news text.
 *
 * Starts from `Intl.Segmenter` (ICU's sentence rules: decimals, "p.m. when", "?" inside quotes are
 * already right) and repairs the cases ICU gets wrong on news copy, measured on
 * test/fixtures/news/sentences.json by `npx tsx benchmarks/news-quality.ts`:
 *   - titles and honorifics before a name ("Mr. Smith", "Dr. No", "The Rev. Jesse Jackson");
 *   - single initials ("J. K. Rowling") and acronyms before a proper noun ("the U.S. President");
 *   - month and number abbreviations before a digit ("Sept. 15", "No. 10");
 *   - the attribution after a quoted question ('"Why?" he said.', '"Who?" Rothman recalls.');
 *   - fragments with no letters or digits (a stray "." or "|"), which join the sentence before.
 * Paragraph breaks (newlines) always end a sentence. Datelines ("LONDON, England (CNN) --") stay
 * attached to the first sentence because nothing here ever splits before a lowercase/digit token
 * that ICU kept together.
 *
 *   splitSentences("Mr. Smith went to the U.S. President. He left.")
 *   // => ["Mr. Smith went to the U.S. President.", "He left."]
 */

const TITLES = new Set(
  (
    "mr mrs ms messrs mme mlle dr prof rev revd fr sr sra jr st gen lt col maj capt cmdr cdr adm sgt cpl " +
    "pte pvt gov sen rep pres supt det insp hon rt atty judge sec amb brig gov'r"
  ).split(" "),
);
const MONTHS = new Set("jan feb mar apr jun jul aug sep sept oct nov dec".split(" "));
const BEFORE_NUMBER = new Set("no nos vol vols pp p fig figs art sec ch ca approx op".split(" "));
const ALWAYS_JOIN = new Set(["vs", "v", "cf", "viz", "e.g", "i.e", "approx"]);
// A capitalised word after an acronym ("in the U.S. The ...") usually does start a sentence when it
// is one of these; any other capitalised word is taken as part of a name ("U.S. President").
const SENTENCE_STARTERS = new Set(
  (
    "the a an he she it they we i you his her its their our my this that these those there here " +
    "but and or so yet if when while after before as in on at for from with by to of however " +
    "meanwhile now then still also last next this one two three some many most all no not officials " +
    "police"
  ).split(" "),
);

const SPEECH_VERB =
  /\b(?:said|says|asked|asks|recalls|recalled|added|adds|told|tells|wrote|writes|replied|replies|explained|explains|shouted|insisted|continued|admitted|wondered)\b/;

const segmenters = new Map<string, Intl.Segmenter>();
function icuSegmenter(lang: string): Intl.Segmenter {
  let segmenter = segmenters.get(lang);
  if (!segmenter) {
    try {
      segmenter = new Intl.Segmenter(lang, { granularity: "sentence" });
    } catch {
      // A page's lang attribute can be anything ("utf-8", "x"); ICU's root rules still apply.
      segmenter = new Intl.Segmenter("en", { granularity: "sentence" });
    }
    segmenters.set(lang, segmenter);
  }
  return segmenter;
}

/** ICU's raw sentence split of one paragraph, trimmed, without empty pieces: the baseline we measure. */
export function icuSentences(text: string, lang = "en"): string[] {
  const out: string[] = [];
  for (const paragraph of text.split(/\n+/)) {
    for (const { segment } of icuSegmenter(lang).segment(paragraph)) {
      const trimmed = segment.trim();
      if (trimmed) out.push(trimmed);
    }
  }
  return out;
}

function lastWord(sentence: string): string {
  const match = /(\S+)$/.exec(sentence);
  return match ? match[1] : "";
}

function firstWord(sentence: string): string {
  const match = /^\S+/.exec(sentence);
  return match ? match[0] : "";
}

/** Whether `previous` (an ICU sentence) ends with an abbreviation that `next` continues. */
export function continuesAfter(previous: string, next: string): boolean {
  if (!/[\p{L}\p{N}]/u.test(next)) return true;
  const word = lastWord(previous);
  const head = firstWord(next).replace(/^[\p{Ps}\p{Pi}"'‘“]+/u, "");
  const startsUpper = /^\p{Lu}/u.test(head);
  const startsLower = /^\p{Ll}/u.test(head);
  const startsDigit = /^\p{N}/u.test(head);

  // A quoted question or exclamation followed by its attribution: '"Why?" he said.',
  // '"Who is Ellen Fetter?" Rothman recalls thinking.'
  if (/[?!]["'’”)\]]*$/.test(previous)) {
    if (startsLower) return true;
    if (/["'’”]$/.test(previous) && SPEECH_VERB.test(next.split(/\s+/).slice(0, 4).join(" "))) return true;
  }

  if (!word.endsWith(".")) return false;
  const bare = word.replace(/^[\p{Ps}\p{Pi}"'‘“]+/u, "").slice(0, -1).toLowerCase();
  if (ALWAYS_JOIN.has(bare)) return true;
  if (TITLES.has(bare)) return startsUpper || startsDigit;
  if (MONTHS.has(bare) || BEFORE_NUMBER.has(bare)) return startsDigit;
  // A single initial: "J. K. Rowling", "George W. Bush".
  if (/^\p{Lu}$/u.test(word.slice(0, -1))) return startsUpper;
  // An acronym with inner dots: "U.S.", "N.Y.", "D.C.".
  if (/^(?:\p{Lu}\.){2,}$/u.test(word)) {
    return startsUpper && !SENTENCE_STARTERS.has(head.toLowerCase().replace(/[^\p{L}]/gu, ""));
  }
  return false;
}

/** Split news text into sentences (trimmed, non-empty, in order). */
export function splitSentences(text: string, lang = "en"): string[] {
  const out: string[] = [];
  for (const paragraph of text.split(/\n+/)) {
    let current = "";
    for (const { segment } of icuSegmenter(lang).segment(paragraph)) {
      const piece = segment.trim();
      if (!piece) continue;
      if (current && continuesAfter(current, piece)) {
        current = `${current} ${piece}`;
      } else {
        if (current) out.push(current);
        current = piece;
      }
    }
    if (current) out.push(current);
  }
  // A leading fragment with no letters or digits has nothing to join; drop it.
  return out.filter((sentence) => /[\p{L}\p{N}]/u.test(sentence));
}

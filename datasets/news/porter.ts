/**
 * The Porter stemmer as NLTK implements it (`nltk.stem.porter.PorterStemmer()`, default mode
 * NLTK_EXTENSIONS), which is what google-research rouge-score and torchmetrics use for
 * `use_stemmer=True`. A port rule for rule of Porter (1980) plus NLTK's extensions (irregular
 * forms, "ies"/"ied" on 4-letter words, y -> i only after a consonant, "fulli", "logi", and the
 * two-letter *o condition); test/datasets/news/porter.test.ts checks it word for word against
 * NLTK on a vocabulary taken from ../shared/data/news.
 *
 *   porterStem("generously")  // "gener"
 */

const IRREGULAR = new Map<string, string>([
  ["sky", "sky"], ["skies", "sky"], ["dying", "die"], ["lying", "lie"], ["tying", "tie"], ["news", "news"],
  ["innings", "inning"], ["inning", "inning"], ["outings", "outing"], ["outing", "outing"],
  ["cannings", "canning"], ["canning", "canning"], ["howe", "howe"], ["proceed", "proceed"],
  ["exceed", "exceed"], ["succeed", "succeed"],
]);

const isVowel = (c: string) => c === "a" || c === "e" || c === "i" || c === "o" || c === "u";

/** Consonant flags in one pass: "y" is a consonant at the start or after a vowel. */
function consonantFlags(word: string): boolean[] {
  const flags: boolean[] = [];
  for (let i = 0; i < word.length; i++) {
    const c = word[i];
    flags.push(isVowel(c) ? false : c === "y" ? (i === 0 ? true : !flags[i - 1]) : true);
  }
  return flags;
}

const isConsonant = (word: string, i: number) => consonantFlags(word)[i];

/** m in [C](VC){m}[V]. */
function measure(stem: string): number {
  const flags = consonantFlags(stem);
  let m = 0;
  for (let i = 1; i < flags.length; i++) if (!flags[i - 1] && flags[i]) m++;
  return m;
}

const positiveMeasure = (stem: string) => measure(stem) > 0;
const containsVowel = (stem: string) => consonantFlags(stem).some((consonant) => !consonant);

function endsDoubleConsonant(word: string): boolean {
  return word.length >= 2 && word[word.length - 1] === word[word.length - 2] && isConsonant(word, word.length - 1);
}

/** Condition *o: ends consonant-vowel-consonant, the last not w, x or y (NLTK: also a 2-letter vc). */
function endsCvc(word: string): boolean {
  const n = word.length;
  if (n >= 3) {
    const flags = consonantFlags(word);
    if (flags[n - 3] && !flags[n - 2] && flags[n - 1] && !"wxy".includes(word[n - 1])) return true;
  }
  return n === 2 && !isConsonant(word, 0) && isConsonant(word, 1);
}

type Rule = [suffix: string, replacement: string, condition: ((stem: string) => boolean) | null];

/** The first rule whose suffix matches decides: replaced if its condition holds, else unchanged. */
function applyRules(word: string, rules: Rule[]): string {
  for (const [suffix, replacement, condition] of rules) {
    if (suffix === "*d" && endsDoubleConsonant(word)) {
      const stem = word.slice(0, -2);
      return condition === null || condition(stem) ? stem + replacement : word;
    }
    if (word.endsWith(suffix)) {
      const stem = suffix ? word.slice(0, -suffix.length) : word;
      return condition === null || condition(stem) ? stem + replacement : word;
    }
  }
  return word;
}

function step1a(word: string): string {
  if (word.endsWith("ies") && word.length === 4) return word.slice(0, -3) + "ie";
  return applyRules(word, [["sses", "ss", null], ["ies", "i", null], ["ss", "ss", null], ["s", "", null]]);
}

function step1b(word: string): string {
  if (word.endsWith("ied")) return word.slice(0, -3) + (word.length === 4 ? "ie" : "i");
  if (word.endsWith("eed")) {
    const stem = word.slice(0, -3);
    return measure(stem) > 0 ? stem + "ee" : word;
  }
  let intermediate: string | null = null;
  for (const suffix of ["ed", "ing"]) {
    if (word.endsWith(suffix)) {
      const stem = word.slice(0, -suffix.length);
      if (containsVowel(stem)) {
        intermediate = stem;
        break;
      }
    }
  }
  if (intermediate === null) return word;
  const last = intermediate[intermediate.length - 1];
  return applyRules(intermediate, [
    ["at", "ate", null],
    ["bl", "ble", null],
    ["iz", "ize", null],
    ["*d", last, () => !"lsz".includes(last)],
    ["", "e", (stem) => measure(stem) === 1 && endsCvc(stem)],
  ]);
}

function step1c(word: string): string {
  return applyRules(word, [["y", "i", (stem) => stem.length > 1 && isConsonant(stem, stem.length - 1)]]);
}

function step2(word: string): string {
  if (word.endsWith("alli") && positiveMeasure(word.slice(0, -4))) return step2(word.slice(0, -4) + "al");
  const rules: Rule[] = [
    ["ational", "ate", positiveMeasure], ["tional", "tion", positiveMeasure], ["enci", "ence", positiveMeasure],
    ["anci", "ance", positiveMeasure], ["izer", "ize", positiveMeasure], ["bli", "ble", positiveMeasure],
    ["alli", "al", positiveMeasure], ["entli", "ent", positiveMeasure], ["eli", "e", positiveMeasure],
    ["ousli", "ous", positiveMeasure], ["ization", "ize", positiveMeasure], ["ation", "ate", positiveMeasure],
    ["ator", "ate", positiveMeasure], ["alism", "al", positiveMeasure], ["iveness", "ive", positiveMeasure],
    ["fulness", "ful", positiveMeasure], ["ousness", "ous", positiveMeasure], ["aliti", "al", positiveMeasure],
    ["iviti", "ive", positiveMeasure], ["biliti", "ble", positiveMeasure], ["fulli", "ful", positiveMeasure],
    ["logi", "log", () => positiveMeasure(word.slice(0, -3))],
  ];
  return applyRules(word, rules);
}

function step3(word: string): string {
  return applyRules(word, [
    ["icate", "ic", positiveMeasure], ["ative", "", positiveMeasure], ["alize", "al", positiveMeasure],
    ["iciti", "ic", positiveMeasure], ["ical", "ic", positiveMeasure], ["ful", "", positiveMeasure],
    ["ness", "", positiveMeasure],
  ]);
}

function step4(word: string): string {
  const gt1 = (stem: string) => measure(stem) > 1;
  return applyRules(word, [
    ["al", "", gt1], ["ance", "", gt1], ["ence", "", gt1], ["er", "", gt1], ["ic", "", gt1], ["able", "", gt1],
    ["ible", "", gt1], ["ant", "", gt1], ["ement", "", gt1], ["ment", "", gt1], ["ent", "", gt1],
    ["ion", "", (stem) => measure(stem) > 1 && (stem.endsWith("s") || stem.endsWith("t"))],
    ["ou", "", gt1], ["ism", "", gt1], ["ate", "", gt1], ["iti", "", gt1], ["ous", "", gt1], ["ive", "", gt1],
    ["ize", "", gt1],
  ]);
}

function step5a(word: string): string {
  if (!word.endsWith("e")) return word;
  const stem = word.slice(0, -1);
  const m = measure(stem);
  return m > 1 || (m === 1 && !endsCvc(stem)) ? stem : word;
}

function step5b(word: string): string {
  return applyRules(word, [["ll", "l", () => measure(word.slice(0, -1)) > 1]]);
}

/** Stem one lowercase word. */
export function porterStem(word: string): string {
  const lower = word.toLowerCase();
  const irregular = IRREGULAR.get(lower);
  if (irregular !== undefined) return irregular;
  if (word.length <= 2) return lower;
  return step5b(step5a(step4(step3(step2(step1c(step1b(step1a(lower))))))));
}

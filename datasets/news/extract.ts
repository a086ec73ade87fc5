/**
 * Article extraction from one HTML page with cheerio: title, byline, date, language and body text.
 *
 * The page is only parsed (parse5 through cheerio): no script runs, and nothing it links to
 * (images, frames, stylesheets) is fetched. Order of preference for the body:
 *   1. the DOM: a readability-style score over text blocks (Arc90 / Mozilla Readability's idea:
 *      paragraphs vote for their ancestors by length and commas, class/id names and link density
 *      weigh the votes), where `<article>` and schema.org `itemprop="articleBody"` containers get a
 *      head start so the structured container wins whenever it holds the story; the winner is
 *      widened to an ancestor holding 30% more story prose (stories cut into sections around
 *      images) and joined by its numbered sibling parts ("story-body-1", "story-body-2");
 *   2. schema.org JSON-LD `articleBody`, when the DOM result is much shorter than it (pages whose
 *      story is rendered by script).
 * Navigation, ads, share bars, captions, forms, scripts and styles are removed before scoring.
 * Title, byline, date and language come from metadata.ts.
 *
 *   extractArticle(readFileSync("page.html", "utf8")).paragraphs  // ["First paragraph…", …]
 */
import * as cheerio from "cheerio";
import type { AnyNode, Element } from "domhandler";
import { classifyLanguage } from "./language.js";
import { collapse, pageMetadata } from "./metadata.js";

export interface ExtractedArticle {
  title: string | null;
  byline: string | null;
  date: string | null;
  /** Declared language (html[lang], content-language or og:locale), lowercased, or null. */
  lang: string | null;
  /** Whether the body text reads as English (see language.ts), whatever `lang` says. */
  english: boolean;
  /** Body text, one block (paragraph, heading, list item) per entry. */
  paragraphs: string[];
  /** Which route produced the body. */
  bodySource: "article" | "itemprop" | "scored" | "json-ld" | "none";
}

type CheerioRoot = cheerio.CheerioAPI;

// Elements never part of an article body.
const JUNK_SELECTOR = [
  "script", "style", "noscript", "template", "iframe", "object", "embed", "svg", "canvas", "form",
  "button", "input", "select", "textarea", "nav", "aside", "footer", "figcaption", "figure", "picture",
  "video", "audio", "source", "map", "dialog", "link", "meta",
  "[hidden]", "[aria-hidden=true]", "[role=navigation]", "[role=complementary]", "[role=banner]",
  "[role=contentinfo]", "[role=dialog]", "[role=alert]",
].join(",");

// Class/id fragments of boilerplate blocks (share bars, ads, related links, comments…).
const UNLIKELY =
  /-ad-|^ad-|-ad$|\bads?\b|adsense|advert|agegate|banner|breadcrumb|byline|caption|combx|comment|community|cookie|cover-wrap|credit|disqus|dateline|extra|foot|gdpr|header|hidden|legends|masthead|menu|meta|modal|newsletter|outbrain|pager|pagination|popup|promo|recirc|related|remark|replies|rss|share|sharing|shoutbox|sidebar|skyscraper|social|sponsor|subscri|supplemental|taboola|tags|toolbar|tools|widget|wp-caption/i;
// Never the story, even when named like content ("comment-body", "c-article-most-popular").
const ALWAYS_OUT = /comment|disqus|replies|respond|popular|trending|most-?read|recommended/i;
const MAYBE = /and|article|body|column|content|main|shadow/i;
const POSITIVE =
  /article|body|content|entry|hentry|h-entry|main|page|post|text|blog|story|prose|paragraph/i;
const NEGATIVE =
  /-ad-|hidden|^hid$| hid$| hid |^hid |banner|combx|comment|com-|contact|foot|footer|footnote|gdpr|masthead|media|meta|outbrain|promo|related|scroll|share|shoutbox|sidebar|skyscraper|sponsor|shopping|tags|tool|widget|caption|credit|byline|newsletter/i;

const BLOCK_TAGS = new Set([
  "p", "div", "section", "article", "main", "header", "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol",
  "li", "dl", "dt", "dd", "blockquote", "pre", "table", "tr", "td", "th", "tbody", "thead", "br", "hr",
  "address", "center", "details", "summary",
]);
const MAX_CLIMB = 12;
const PARAGRAPH_LIKE = new Set(["p", "pre", "td", "blockquote", "li", "h2", "h3", "h4", "h5", "h6"]);

function isElement(node: AnyNode): node is Element {
  return node.type === "tag" || node.type === "script" || node.type === "style";
}

/** Text of a subtree, one entry per block element (inline text is joined). Iterative: pages nest deep. */
export function blockTexts(root: AnyNode): string[] {
  const blocks: string[] = [];
  let current = "";
  const flush = () => {
    const text = collapse(current);
    if (text) blocks.push(text);
    current = "";
  };
  // A block element is visited twice: on entry (flush before) and on exit (flush after).
  const stack: Array<{ node: AnyNode; exit: boolean }> = [{ node: root, exit: false }];
  while (stack.length) {
    const { node, exit } = stack.pop()!;
    if (exit) {
      flush();
      continue;
    }
    if (node.type === "text") {
      current += (node as unknown as { data: string }).data;
      continue;
    }
    if (!isElement(node)) continue;
    const block = BLOCK_TAGS.has(node.name);
    if (block) {
      flush();
      stack.push({ node, exit: true });
    }
    for (let i = node.children.length - 1; i >= 0; i--) stack.push({ node: node.children[i], exit: false });
  }
  flush();
  return blocks;
}

function classAndId(element: Element): string {
  return `${element.attribs.class ?? ""} ${element.attribs.id ?? ""}`;
}

function removeBoilerplate($: CheerioRoot): void {
  $(JUNK_SELECTOR).remove();
  $("*").each((_, element) => {
    if (!isElement(element)) return;
    const name = element.name;
    if (name === "html" || name === "body" || element.attribs.itemprop === "articleBody") return;
    const label = classAndId(element);
    if (!label.trim()) return;
    // Comment threads and "most popular" lists go even when built of <article>s.
    const junk = ALWAYS_OUT.test(label);
    if (!junk && (name === "article" || name === "main")) return;
    if (!junk && (!UNLIKELY.test(label) || MAYBE.test(label))) return;
    // A wrapper named "site_header" or "page-…-facebook-…" may still hold the story.
    const story = $(element)
      .find("main, [itemprop=articleBody], article")
      .toArray()
      .some((inner) => isElement(inner) && !ALWAYS_OUT.test(classAndId(inner)));
    if (!story) $(element).remove();
  });
}

/**
 * Text and link-text lengths per element, memoised: scoring asks for the same subtrees many times
 * (every ancestor level re-reads its paragraphs). Valid while the tree is not changed, so each
 * phase that mutates the tree takes a fresh one.
 */
class TextMeasure {
  private readonly lengths = new Map<Element, number>();
  private readonly densities = new Map<Element, number>();
  constructor(private readonly $: CheerioRoot) {}

  length(element: Element): number {
    let length = this.lengths.get(element);
    if (length === undefined) {
      length = collapse(this.$(element).text()).length;
      this.lengths.set(element, length);
    }
    return length;
  }

  linkDensity(element: Element): number {
    let density = this.densities.get(element);
    if (density === undefined) {
      const length = this.length(element);
      let linked = 0;
      if (length > 0) {
        this.$(element)
          .find("a")
          .each((_, a) => {
            if (isElement(a)) linked += this.length(a);
          });
      }
      density = length > 0 ? linked / length : 0;
      this.densities.set(element, density);
    }
    return density;
  }
}

function classWeight(element: Element): number {
  let weight = 0;
  for (const value of [element.attribs.class, element.attribs.id]) {
    if (!value) continue;
    if (NEGATIVE.test(value)) weight -= 25;
    if (POSITIVE.test(value)) weight += 25;
  }
  return weight;
}

function initialScore(element: Element): number {
  let score = classWeight(element);
  switch (element.name) {
    case "article":
      score += 30;
      break;
    case "div":
    case "main":
    case "section":
      score += 5;
      break;
    case "pre":
    case "td":
    case "blockquote":
      score += 3;
      break;
    case "ol":
    case "ul":
    case "dl":
    case "form":
    case "li":
      score -= 3;
      break;
    case "h1":
    case "h2":
    case "h3":
    case "th":
      score -= 5;
      break;
  }
  if (element.attribs.itemprop === "articleBody") score += 30;
  return score;
}

/** Readability-style selection: the best container and the siblings that join it, in page order. */
function scoreCandidates($: CheerioRoot): Element[] {
  const scores = new Map<Element, number>();
  $("p, pre, td, blockquote, div, section").each((_, element) => {
    if (!isElement(element)) return;
    // A div/section counts as a paragraph only when it holds no block children of its own.
    if (
      (element.name === "div" || element.name === "section") &&
      $(element).children("p, div, section, article, ul, ol, table, blockquote, pre, h1, h2, h3, h4").length > 0
    ) {
      return;
    }
    const text = collapse($(element).text());
    if (text.length < 25) return;
    const vote = 1 + (text.match(/[,，、]/g)?.length ?? 0) + Math.min(Math.floor(text.length / 100), 3);
    let ancestor = element.parent;
    for (let level = 0; level < 5 && ancestor && isElement(ancestor) && ancestor.name !== "html"; level++) {
      if (!scores.has(ancestor)) scores.set(ancestor, initialScore(ancestor));
      const divider = level === 0 ? 1 : level === 1 ? 2 : level * 3;
      scores.set(ancestor, (scores.get(ancestor) ?? 0) + vote / divider);
      ancestor = ancestor.parent;
    }
  });
  const measure = new TextMeasure($);
  const ranked = [...scores]
    .map(([element, score]) => ({ element, score: score * (1 - measure.linkDensity(element)) }))
    .sort((x, y) => y.score - x.score);
  if (ranked.length === 0) return [];
  let container = ranked[0].element;
  // Climb while the parent scores close to the candidate...
  for (let parent = container.parent; parent && isElement(parent) && parent.name !== "body"; parent = parent.parent) {
    const parentScore = scores.get(parent);
    if (parentScore === undefined || parentScore < (scores.get(container) ?? 0) * 0.75) break;
    container = parent;
  }
  // ...and while it holds much more story prose: stories split into sections around images or
  // pull quotes, whose paragraphs sit too deep to vote for the common ancestor.
  // At most MAX_CLIMB levels: each level re-measures its subtree, quadratic on freakishly deep pages.
  let prose = proseLength($, measure, container);
  let level = 0;
  for (let parent = container.parent; parent && isElement(parent) && parent.name !== "body" && level++ < MAX_CLIMB; parent = parent.parent) {
    const parentProse = proseLength($, measure, parent);
    if (parentProse < prose * 1.3) continue;
    container = parent;
    prose = parentProse;
  }
  return [...splitStoryParts($, measure, container)].sort(documentOrder);
}

/**
 * The other parts of a story split into numbered blocks ("story-body-1", "story-body-2" around an
 * ad slot): elements sharing the container's content-like class, outside it, holding prose.
 */
function splitStoryParts($: CheerioRoot, measure: TextMeasure, container: Element): Set<Element> {
  const parts = new Set<Element>([container]);
  const shared = (container.attribs.class ?? "").split(/\s+/).filter((name) => /^[A-Za-z_][\w-]*$/.test(name) && POSITIVE.test(name));
  for (const name of shared) {
    $(`${container.name}.${name}`).each((_, element) => {
      if (!isElement(element) || element === container || contains(container, element) || contains(element, container)) return;
      if (proseLength($, measure, element) >= 200) parts.add(element);
    });
  }
  return parts;
}

function contains(ancestor: AnyNode, node: AnyNode): boolean {
  for (let current = node.parent; current; current = current.parent) if (current === ancestor) return true;
  return false;
}

function documentOrder(a: Element, b: Element): number {
  const path = (node: AnyNode) => {
    const indices: number[] = [];
    for (let current: AnyNode | null = node; current?.parent; current = current.parent) indices.unshift(current.parent.children.indexOf(current as never));
    return indices;
  };
  const pa = path(a);
  const pb = path(b);
  for (let i = 0; i < Math.min(pa.length, pb.length); i++) if (pa[i] !== pb[i]) return pa[i] - pb[i];
  return pa.length - pb.length;
}

/** Characters of paragraph text in `element` that reads like prose (long, few links). */
function proseLength($: CheerioRoot, measure: TextMeasure, element: Element): number {
  let total = 0;
  $(element)
    .find("p")
    .each((_, paragraph) => {
      if (!isElement(paragraph)) return;
      const length = measure.length(paragraph);
      if (length >= 40 && measure.linkDensity(paragraph) < 0.3) total += length;
    });
  return total;
}

/** Body paragraphs of the chosen containers: their blocks, without link lists. */
function bodyParagraphs($: CheerioRoot, containers: Element[]): string[] {
  const measure = new TextMeasure($);
  $(containers)
    .find("*")
    .each((_, element) => {
      if (!isElement(element) || !BLOCK_TAGS.has(element.name) || PARAGRAPH_LIKE.has(element.name)) return;
      const text = collapse($(element).text());
      // Link lists (related stories, tag clouds) inside the story container.
      if (text.length > 0 && measure.linkDensity(element) > 0.5 && text.length < 600) $(element).remove();
    });
  return containers.flatMap((container) => blockTexts(container)).filter((block) => /[\p{L}\p{N}]/u.test(block));
}

/** Extract title, byline, date, language and body paragraphs from an HTML document. */
export function extractArticle(html: string): ExtractedArticle {
  const $ = cheerio.load(html);
  const { title, byline, date, lang, articleBody: ldBody } = pageMetadata($);

  removeBoilerplate($);
  let paragraphs: string[] = [];
  let bodySource: ExtractedArticle["bodySource"] = "none";
  const containers = scoreCandidates($);
  if (containers.length > 0) {
    paragraphs = bodyParagraphs($, containers);
    const main = containers.find((element) => element.attribs.itemprop === "articleBody" || element.name === "article");
    bodySource = main?.attribs.itemprop === "articleBody" ? "itemprop" : main ? "article" : "scored";
  }
  const domLength = paragraphs.join(" ").length;
  if (ldBody && collapse(ldBody).length > 2 * domLength) {
    paragraphs = ldBody
      .split(/\n+/)
      .map(collapse)
      .filter((block) => block.length > 0);
    bodySource = "json-ld";
  }
  if (paragraphs.length === 0) bodySource = "none";
  return {
    title,
    byline,
    date,
    lang,
    english: classifyLanguage(paragraphs.join(" "), lang).english,
    paragraphs,
    bodySource,
  };
}

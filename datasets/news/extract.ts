/**
 * Article extraction from one HTML page with cheerio: title, byline, date, language and body text.
 *
 * The page is only parsed (parse5 through cheerio): no script runs, and nothing it links to
 * (images, frames, stylesheets) is fetched. Order of preference for the body:
 *   1. the DOM: a readability-style score over text blocks (Arc90 / Mozilla Readability's idea:
 *      paragraphs vote for their ancestors by length and commas, class/id names and link density
 *      weigh the votes), where `<article>` and schema.org `itemprop="articleBody"` containers get a
 *      head start so the structured container wins whenever it holds the story;
 *   2. schema.org JSON-LD `articleBody`, when the DOM result is much shorter than it (pages whose
 *      story is rendered by script).
 * Navigation, ads, share bars, captions, forms, scripts and styles are removed before scoring.
 * Title/byline/date prefer JSON-LD and `og:`/`article:` meta, then the DOM.
 *
 *   extractArticle(readFileSync("page.html", "utf8")).paragraphs  // ["First paragraph…", …]
 */
import * as cheerio from "cheerio";
import type { AnyNode, Element } from "domhandler";
import { classifyLanguage } from "./language.js";

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
const COMMENTS = /comment|disqus|replies|respond/i;
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
const PARAGRAPH_LIKE = new Set(["p", "pre", "td", "blockquote", "li", "h2", "h3", "h4", "h5", "h6"]);

function isElement(node: AnyNode): node is Element {
  return node.type === "tag" || node.type === "script" || node.type === "style";
}

function collapse(text: string): string {
  return text.replace(/[\s\u00a0\u200b]+/g, " ").trim();
}

/** Text of a subtree, one entry per block element (inline text is joined). */
export function blockTexts(root: AnyNode): string[] {
  const blocks: string[] = [];
  let current = "";
  const flush = () => {
    const text = collapse(current);
    if (text) blocks.push(text);
    current = "";
  };
  const walk = (node: AnyNode) => {
    if (node.type === "text") {
      current += (node as unknown as { data: string }).data;
      return;
    }
    if (!isElement(node)) return;
    const block = BLOCK_TAGS.has(node.name);
    if (block) flush();
    for (const child of node.children) walk(child);
    if (block) flush();
  };
  walk(root);
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
    // Comment threads go even when named like content ("comment-body") or built of <article>s.
    const comments = COMMENTS.test(label);
    if (!comments && (name === "article" || name === "main")) return;
    if (!comments && (!UNLIKELY.test(label) || MAYBE.test(label))) return;
    // A wrapper named "site_header" or "page-…-facebook-…" may still hold the story.
    const story = $(element)
      .find("main, [itemprop=articleBody], article")
      .toArray()
      .some((inner) => isElement(inner) && !COMMENTS.test(classAndId(inner)));
    if (!story) $(element).remove();
  });
}

function textLength($: CheerioRoot, element: Element): number {
  return collapse($(element).text()).length;
}

function linkDensity($: CheerioRoot, element: Element): number {
  const length = textLength($, element);
  if (length === 0) return 0;
  let linked = 0;
  $(element)
    .find("a")
    .each((_, a) => {
      linked += collapse($(a).text()).length;
    });
  return linked / length;
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
  const ranked = [...scores]
    .map(([element, score]) => ({ element, score: score * (1 - linkDensity($, element)) }))
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
  let prose = proseLength($, container);
  for (let parent = container.parent; parent && isElement(parent) && parent.name !== "body"; parent = parent.parent) {
    const parentProse = proseLength($, parent);
    if (parentProse < prose * 1.3) continue;
    container = parent;
    prose = parentProse;
  }
  return [container];
}

/** Characters of paragraph text in `element` that reads like prose (long, few links). */
function proseLength($: CheerioRoot, element: Element): number {
  let total = 0;
  $(element)
    .find("p")
    .each((_, paragraph) => {
      const length = textLength($, paragraph);
      if (length >= 40 && linkDensity($, paragraph) < 0.3) total += length;
    });
  return total;
}

/** Body paragraphs of the chosen containers: their blocks, without link lists. */
function bodyParagraphs($: CheerioRoot, containers: Element[]): string[] {
  $(containers)
    .find("*")
    .each((_, element) => {
      if (!isElement(element) || !BLOCK_TAGS.has(element.name) || PARAGRAPH_LIKE.has(element.name)) return;
      const text = collapse($(element).text());
      // Link lists (related stories, tag clouds) inside the story container.
      if (text.length > 0 && linkDensity($, element) > 0.5 && text.length < 600) $(element).remove();
    });
  return containers.flatMap((container) => blockTexts(container)).filter((block) => /[\p{L}\p{N}]/u.test(block));
}

interface JsonLdArticle {
  headline?: string;
  articleBody?: string;
  author?: unknown;
  datePublished?: string;
}

function jsonLdArticles($: CheerioRoot): JsonLdArticle[] {
  const out: JsonLdArticle[] = [];
  const visit = (value: unknown) => {
    if (Array.isArray(value)) {
      value.forEach(visit);
    } else if (value && typeof value === "object") {
      const record = value as Record<string, unknown>;
      if ("articleBody" in record || "headline" in record || "datePublished" in record) out.push(record as JsonLdArticle);
      if (record["@graph"]) visit(record["@graph"]);
    }
  };
  $('script[type="application/ld+json"]').each((_, script) => {
    try {
      visit(JSON.parse($(script).text()));
    } catch {
      // Broken JSON-LD is common on real pages; it only means this source gives nothing.
    }
  });
  return out;
}

function authorNames(author: unknown): string | null {
  const names: string[] = [];
  const visit = (value: unknown) => {
    if (typeof value === "string") names.push(value);
    else if (Array.isArray(value)) value.forEach(visit);
    else if (value && typeof value === "object" && typeof (value as { name?: unknown }).name === "string") {
      names.push((value as { name: string }).name);
    }
  };
  visit(author);
  const clean = names.map(collapse).filter((name) => name && !/^https?:/.test(name));
  return clean.length ? clean.join(", ") : null;
}

function meta($: CheerioRoot, ...keys: string[]): string | null {
  for (const key of keys) {
    const value = $(`meta[property="${key}"], meta[name="${key}"], meta[itemprop="${key}"]`).first().attr("content");
    if (value && collapse(value)) return collapse(value);
  }
  return null;
}

function firstText($: CheerioRoot, selector: string): string | null {
  const text = collapse($(selector).first().text());
  return text || null;
}

/** Extract title, byline, date, language and body paragraphs from an HTML document. */
export function extractArticle(html: string): ExtractedArticle {
  const $ = cheerio.load(html);
  const ld = jsonLdArticles($);
  const ldBody = ld.map((item) => item.articleBody).find((body): body is string => typeof body === "string");
  const title =
    meta($, "og:title", "twitter:title") ??
    ld.map((item) => item.headline).find((headline): headline is string => typeof headline === "string") ??
    firstText($, "title") ??
    firstText($, "h1");
  const byline =
    ld.map((item) => authorNames(item.author)).find((name) => name !== null) ??
    meta($, "author", "article:author", "byl", "sailthru.author") ??
    firstText($, '[rel="author"], [itemprop="author"] [itemprop="name"], [itemprop="author"], .byline, .author');
  const date =
    meta($, "article:published_time", "datePublished", "date", "pubdate", "publishdate", "DC.date.issued", "sailthru.date") ??
    ld.map((item) => item.datePublished).find((value): value is string => typeof value === "string") ??
    ($("time[datetime]").first().attr("datetime") || null);
  const lang =
    (
      $("html").attr("lang") ??
      $('meta[http-equiv="content-language" i]').attr("content") ??
      meta($, "og:locale") ??
      ""
    )
      .trim()
      .toLowerCase()
      .replace(/_/g, "-") || null;

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

/**
 * Page metadata for extract.ts: title, byline, date and declared language, from schema.org
 * JSON-LD and `og:` / `article:` meta first, then the DOM. Also the JSON-LD `articleBody`, the
 * body of last resort for pages whose story is rendered by script.
 */
import type * as cheerio from "cheerio";

export interface PageMetadata {
  title: string | null;
  byline: string | null;
  date: string | null;
  /** Declared language, lowercased, "_" as "-" ("en-gb"), or null. */
  lang: string | null;
  articleBody: string | undefined;
}

export function collapse(text: string): string {
  return text.replace(/[\s\u00a0\u200b]+/g, " ").trim();
}

type CheerioRoot = cheerio.CheerioAPI;

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

export function pageMetadata($: CheerioRoot): PageMetadata {
  const ld = jsonLdArticles($);
  const articleBody = ld.map((item) => item.articleBody).find((body): body is string => typeof body === "string");
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

  return { title, byline, date, lang, articleBody };
}

import { readFileSync } from "node:fs";
import { afterEach, describe, expect, it, vi } from "vitest";
import { extractArticle } from "../../../datasets/news/extract.js";
import { rougeN } from "../../../datasets/news/rouge.js";

const fixture = (name: string, file: string) => readFileSync(new URL(`../../fixtures/news/html/${name}/${file}`, import.meta.url), "utf8");
const para = (n: number) =>
  `<p>Paragraph ${n} of the story, long enough to count as prose, with a comma, and another clause about the council vote.</p>`;

describe("extractArticle on real pages (token F1 against Readability's expected text)", () => {
  it.each([
    ["ars-1", 0.95],
    ["simplyfound-1", 0.9],
  ])("%s: F1 >= %s", (name, floor) => {
    const article = extractArticle(fixture(name, "source.html"));
    const f1 = rougeN(article.paragraphs.join("\n"), fixture(name, "expected.txt"), 1).f;
    expect(f1).toBeGreaterThanOrEqual(floor);
    expect(article.english).toBe(true);
  });

  it("ars-1: title, byline and date from meta / JSON-LD", () => {
    const article = extractArticle(fixture("ars-1", "source.html"));
    expect(article.title).toBe("Just-released Minecraft exploit makes it easy to crash game servers");
    expect(article.byline).toContain("Dan Goodin");
    expect(article.date).toMatch(/^2015-04-16/);
  });

  it("heise: a German page is kept and flagged not English", () => {
    const article = extractArticle(fixture("heise", "source.html"));
    expect(article.lang).toBe("de");
    expect(article.english).toBe(false);
    expect(article.paragraphs.join(" ")).toContain("1Password");
  });
});

describe("extractArticle on made-up pages", () => {
  afterEach(() => vi.restoreAllMocks());

  const page = `<!doctype html><html lang="en-GB"><head>
    <title>Council votes - Example News</title>
    <meta property="og:title" content="Council votes on the new bridge">
    <meta name="author" content="Jane Reporter">
    <meta property="article:published_time" content="2024-03-01T09:00:00Z">
    <style>p { color: red }</style>
    <script>document.write("<p>INJECTED BY SCRIPT, which must never run, no matter how long this paragraph is.</p>")</script>
  </head><body>
    <nav><ul><li><a href="/">Home</a></li><li><a href="/news">News, sport, weather and much more to read</a></li></ul></nav>
    <div class="share-bar">Share this with Email, Facebook, Twitter, and everyone you have ever met in your life</div>
    <article>
      <h1>Council votes on the new bridge</h1>
      ${para(1)}
      <figure><img src="http://images.example.invalid/bridge.jpg"><figcaption>The bridge, seen from the river, at dawn, in a long caption.</figcaption></figure>
      ${para(2)}
      <div class="advert">Buy our product today, it is great, really great, you will love it, trust us.</div>
      ${para(3)}
      <iframe src="http://frames.example.invalid/"></iframe>
    </article>
    <div id="comments" class="comments-area"><article class="comment-body"><p>First comment, which is long enough to be prose, and has commas, too many.</p></article></div>
    <footer><p>Copyright Example News, all rights reserved, since forever and a day.</p></footer>
  </body></html>`;

  it("takes the story and drops navigation, share bar, captions, ads, comments, footer and scripts", () => {
    const article = extractArticle(page);
    const body = article.paragraphs.join("\n");
    expect(article.paragraphs.filter((p) => p.startsWith("Paragraph"))).toHaveLength(3);
    for (const junk of ["INJECTED", "Share this", "caption", "Buy our product", "First comment", "Copyright", "Home", "color: red"]) {
      expect(body).not.toContain(junk);
    }
    expect(article).toMatchObject({ title: "Council votes on the new bridge", byline: "Jane Reporter", date: "2024-03-01T09:00:00Z", lang: "en-gb", english: true, bodySource: "article" });
  });

  it("never fetches what the page links to", () => {
    const fetchSpy = vi.spyOn(globalThis, "fetch");
    extractArticle(page);
    expect(fetchSpy).not.toHaveBeenCalled();
  });

  it("falls back to JSON-LD articleBody when the DOM holds no story", () => {
    const body = "The first paragraph of a story rendered by script.\nThe second paragraph says more, and more.";
    const html = `<html><head><script type="application/ld+json">${JSON.stringify({
      "@context": "https://schema.org",
      "@graph": [{ "@type": "NewsArticle", headline: "Rendered later", articleBody: body, author: [{ "@type": "Person", name: "A. Writer" }], datePublished: "2020-01-02" }],
    })}</script></head><body><div id="app">Loading…</div></body></html>`;
    const article = extractArticle(html);
    expect(article.bodySource).toBe("json-ld");
    expect(article.paragraphs).toEqual(body.split("\n"));
    expect(article).toMatchObject({ title: "Rendered later", byline: "A. Writer", date: "2020-01-02" });
  });

  it("ignores broken JSON-LD", () => {
    const html = `<html><head><script type="application/ld+json">{ not json</script></head><body><article>${para(1)}${para(2)}</article></body></html>`;
    expect(extractArticle(html).paragraphs).toHaveLength(2);
  });

  it("finds no body in a page of navigation only, and in an empty document", () => {
    const nav = `<html><body><nav><a href="/a">A</a> <a href="/b">B</a></nav><footer>Footer text</footer></body></html>`;
    expect(extractArticle(nav)).toMatchObject({ paragraphs: [], bodySource: "none" });
    expect(extractArticle("")).toMatchObject({ paragraphs: [], bodySource: "none", title: null });
  });

  it("joins story sections split around images (readability's scoring alone keeps one)", () => {
    const section = (from: number) => `<section class="outer"><div><div><div><div>${para(from)}${para(from + 1)}${para(from + 2)}</div></div></div></div></section>`;
    const html = `<html><body><div class="post"><div class="wrap">${section(1)}<img src="x.jpg">${section(4)}${section(7)}</div></div></body></html>`;
    expect(extractArticle(html).paragraphs).toHaveLength(9);
  });

  it("joins a story split into numbered blocks around an ad slot", () => {
    const html = `<html><body><article id="story">
      <div class="story-body-supplemental"><div class="story-body story-body-1">${para(1)}${para(2)}</div></div>
      <div class="ad">Advertisement</div>
      <div class="story-body-supplemental"><div class="story-body story-body-2">${[3, 4, 5, 6, 7, 8, 9, 10, 11].map(para).join("")}</div></div>
      <ul><li><article class="teaser"><div class="story-body"><a href="/x">Another story entirely</a></div></article></li></ul>
    </article></body></html>`;
    const paragraphs = extractArticle(html).paragraphs;
    expect(paragraphs.map((p) => p.split(" ")[1])).toEqual(["1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11"]);
  });
});

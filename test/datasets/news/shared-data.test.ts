// Regression guards on the full ../shared/data/news (present beside the clone, in CI too).
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { newsConfigSchema } from "../../../datasets/news/config.js";
import { extractArticle } from "../../../datasets/news/extract.js";
import { generateNews } from "../../../datasets/news/generate.js";
import { rougeN } from "../../../datasets/news/rouge.js";
import { ValidRecordSchema } from "../../../datasets/schema.js";
import { repoRoot } from "../../helpers.js";

const shared = join(repoRoot, "..", "shared", "data", "news");

describe("the shared news data", () => {
  it("extraction: median token F1 >= 0.95 on the 35 English pages, none below 0.5, language flags right", () => {
    const index = readFileSync(join(shared, "html", "index.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l));
    const f1s: number[] = [];
    for (const page of index) {
      const article = extractArticle(readFileSync(join(shared, "html", page.name, "source.html"), "utf8"));
      expect(article.english, page.name).toBe(page.english);
      if (!page.english) continue;
      f1s.push(rougeN(article.paragraphs.join("\n"), readFileSync(join(shared, "html", page.name, "expected.txt"), "utf8"), 1).f);
    }
    f1s.sort((a, b) => a - b);
    expect(f1s).toHaveLength(35);
    expect(f1s[17]).toBeGreaterThanOrEqual(0.95);
    expect(f1s[0]).toBeGreaterThanOrEqual(0.5);
  });

  it("CNN/DM: 250 valid records, every highlight aligned, median ROUGE-1 recall > 0.5", async () => {
    const generated = await generateNews(newsConfigSchema.parse({ input: join(shared, "cnndm-sample.jsonl") }));
    const records = Object.values(generated.splits).flat();
    expect(generated.problems).toEqual([]);
    expect(records).toHaveLength(250);
    for (const record of records) expect(ValidRecordSchema.safeParse(record).success).toBe(true);
    expect(generated.stats.unaligned).toBe(0);
    expect(generated.stats.medianRouge1Recall).toBeGreaterThan(0.5);
  });
});

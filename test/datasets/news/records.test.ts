import { describe, expect, it } from "vitest";
import { newsConfigSchema } from "../../../datasets/news/config.js";
import type { NewsDocument } from "../../../datasets/news/inputs.js";
import { buildNewsRecord, DocumentProblem } from "../../../datasets/news/records.js";
import { ValidRecordSchema } from "../../../datasets/schema.js";
import { grammar } from "../../../datasets/spans.js";

const config = (extra: Record<string, unknown> = {}) => newsConfigSchema.parse({ input: "unused", ...extra });
const doc = (paragraphs: string[], summary: NewsDocument["summary"], extra: Partial<NewsDocument> = {}): NewsDocument => ({
  id: "doc-1",
  source: "cnndm",
  origin: "test.jsonl:1",
  paragraphs,
  summary,
  meta: { title: "A title", byline: null, date: null, lang: null, english: true },
  ...extra,
});

describe("buildNewsRecord", () => {
  it("numbers prompt segments so that article sentence n is segment n, and attends by absolute index", () => {
    const { record } = buildNewsRecord(
      doc(["The mayor opened the bridge on Monday. Crowds cheered.", "Traffic was heavy. The bridge cost $2.5 million."], {
        sentences: ["The mayor opened the bridge.", "It cost $2.5 million."],
      }),
      config(),
    );
    expect(ValidRecordSchema.safeParse(record).success).toBe(true);
    expect(record.segments.map((s) => s.role)).toEqual(["header", "prompt", "prompt", "prompt", "prompt", "response", "response"]);
    expect(record.segments[0].text).toBe("Summarize the article.");
    expect(record.segments[4].text).toBe("[4] The bridge cost $2.5 million.");
    expect(record.segments[5]).toEqual({ role: "response", attend: [1], text: "The mayor opened the bridge." });
    expect(record.segments[6]).toEqual({ role: "response", attend: [4, -1], text: "It cost $2.5 million." });
    expect(record.reference).toBe("The mayor opened the bridge.\nIt cost $2.5 million.");
    expect(record.meta).toMatchObject({ source: "cnndm", title: "A title", english: true, alignment: [{ sentences: [1] }, { sentences: [4] }] });
  });

  it("truncates to the sentence budget and records it", () => {
    const paragraphs = Array.from({ length: 30 }, (_, i) => `Sentence number ${i + 1} is here.`);
    const { record } = buildNewsRecord(doc(paragraphs, { sentences: ["Sentence number 29 is here."] }), config({ truncate: { maxSentences: 10 } }));
    expect(record.segments.filter((s) => s.role === "prompt")).toHaveLength(10);
    expect(record.meta!.truncation).toEqual({ articleSentences: 30, keptSentences: 10, articleChars: 30 * 27 - 9, keptChars: 10 * 27 - 9, summarySentences: 1, keptSummarySentences: 1, cutBy: "maxSentences" });
  });

  it("truncates to the character budget, keeping at least one sentence", () => {
    const { record } = buildNewsRecord(doc(["A".repeat(50) + ".", "B b b.", "C c c."], null), config({ truncate: { maxChars: 20 } }));
    expect(record.segments).toHaveLength(2);
    expect(record.meta!.truncation).toMatchObject({ keptSentences: 1, cutBy: "maxChars" });
  });

  it("cuts a first sentence longer than the whole character budget at a word boundary", () => {
    const { record } = buildNewsRecord(doc(["word ".repeat(100).trim()], null), config({ truncate: { maxChars: 23 } }));
    expect(record.segments[1].text).toBe("[1] word word word word");
    expect(record.meta!.truncation).toMatchObject({ keptSentences: 1, keptChars: 19, cutBy: "maxChars" });
  });

  it("keeps header + prompt + responses within the grammar's segment cap", () => {
    const paragraphs = Array.from({ length: 300 }, (_, i) => `Line ${i + 1} ends.`);
    const summary = { sentences: Array.from({ length: 8 }, (_, i) => `Line ${i * 30 + 1} ends.`) };
    const { record } = buildNewsRecord(doc(paragraphs, summary), config({ truncate: { maxSentences: 126, maxChars: 1e6 } }));
    expect(record.segments).toHaveLength(grammar.max_segments);
    expect(record.meta!.truncation).toMatchObject({ keptSentences: grammar.max_segments - 1 - 8, cutBy: "segmentCap" });
    expect(ValidRecordSchema.safeParse(record).success).toBe(true);
  });

  it("caps summary sentences and says so", () => {
    const summary = { sentences: ["One ends.", "Two ends.", "Three ends."] };
    const { record } = buildNewsRecord(doc(["One ends. Two ends. Three ends."], summary), config({ truncate: { maxSummarySentences: 2 } }));
    expect(record.segments.filter((s) => s.role === "response")).toHaveLength(2);
    expect(record.reference).toBe("One ends.\nTwo ends.\nThree ends.");
    expect(record.meta!.truncation).toMatchObject({ summarySentences: 3, keptSummarySentences: 2, cutBy: "maxSummarySentences" });
  });

  it("makes a prompt-only record when there is no summary", () => {
    const { record } = buildNewsRecord(doc(["Only an article. Nothing else."], null, { source: "html" }), config());
    expect(record.segments.map((s) => s.role)).toEqual(["header", "prompt", "prompt"]);
    expect(record).not.toHaveProperty("reference");
    expect(ValidRecordSchema.safeParse(record).success).toBe(true);
  });

  it("segments an XSum summary text and leaves an unrelated sentence global", () => {
    const { record } = buildNewsRecord(doc(["Markets fell. Oil rose."], { text: "zebras graze quietly." }, { source: "xsum" }), config());
    expect(record.segments.at(-1)).toEqual({ role: "response", text: "zebras graze quietly." });
  });

  it("removes XSum's glued BBC share bar and records that", () => {
    const { record } = buildNewsRecord(
      doc(["Share this withEmailFacebookMessengerMessengerTwitterPinterestWhatsAppLinkedinCopy this linkResearchers found things."], { text: "things were found." }),
      config(),
    );
    expect(record.segments[1].text).toBe("[1] Researchers found things.");
    expect(record.meta!.cleaned).toEqual(["share-bar"]);
  });

  it("removes Daily Mail's 'Scroll down for video' wherever it sits", () => {
    const { record } = buildNewsRecord(doc(["The star arrived. Scroll down for video She waved to fans."], { sentences: ["She waved."] }), config());
    expect(record.segments.filter((s) => s.role === "prompt").map((s) => s.text)).toEqual(["[1] The star arrived.", "[2] She waved to fans."]);
    expect(record.meta!.cleaned).toEqual(["scroll-down-for-video"]);
  });

  it("refuses an article or a summary with no sentences", () => {
    expect(() => buildNewsRecord(doc([" ... "], { sentences: ["x."] }), config())).toThrow(DocumentProblem);
    expect(() => buildNewsRecord(doc(["Fine."], { text: " -- " }), config())).toThrow(DocumentProblem);
  });

  it("uses the configured header, window and -1 option", () => {
    const { record } = buildNewsRecord(
      doc(["Alpha one. Beta two. Gamma three. Delta four."], { sentences: ["Gamma three.", "Alpha one."] }),
      config({ header: "Summarise.", align: { neighbourWindow: 1, attendPrevious: false } }),
    );
    expect(record.segments[0].text).toBe("Summarise.");
    expect(record.segments.slice(-2).map((s) => s.attend)).toEqual([[2, 3, 4], [1, 2]]);
  });
});

import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { classifyLanguage } from "../../../datasets/news/language.js";

const xsum = readFileSync(new URL("../../fixtures/news/xsum-5.jsonl", import.meta.url), "utf8").trim().split("\n").map((l) => JSON.parse(l));

describe("classifyLanguage", () => {
  it("takes English news prose as English", () => {
    for (const row of xsum) expect(classifyLanguage(row.document, null).english).toBe(true);
  });

  it("takes a stats-heavy English scorecard as English", () => {
    const scorecard =
      "The competition finishes on 29 May in the same stadium. There are eight teams taking part, facing each other twice. " +
      "Leading run-scorers: Warner (294) Kohli (267), De Villiers (249), Most sixes: Warner (12) De Villiers (12), Kohli (8) " +
      "Highest score in an innings: De Kock (108), Warner (90), Gambhir (90) Most wickets: McClenaghan (9), Kumar (8), Rahman (7)";
    expect(classifyLanguage(scorecard, null).english).toBe(true);
  });

  it.each([
    ["French", "Le projet de loi sur le renseignement est examiné par les députés. Il prévoit la mise en place de boîtes noires chez les opérateurs pour détecter des comportements suspects."],
    ["Welsh", "Fe gafodd criwiau eu galw i stad ddiwydiannol ar Rodfa Llanelwy. Mae'r heddlu yn dweud bod dyn wedi cael ei anafu yn y digwyddiad ac mae ymchwiliad ar y gweill."],
    ["Portuguese", "O técnico da seleção disse que errou ao levar o time para a Copa. Ele afirmou que a decisão foi tomada com a comissão e que não se arrepende do trabalho feito."],
    ["German", "Der Passwortmanager generiert Einmal-Passwörter für die Zwei-Faktor-Authentifizierung und ist nicht mehr auf eine zusätzliche App angewiesen, wie der Hersteller mitteilt."],
    ["Chinese", "宇航员在太空中喝酒会怎么样？后果很严重。国际空间站上禁止饮酒，因为酒精会影响宇航员的判断力和身体机能。"],
  ])("takes %s as not English", (_name, text) => {
    expect(classifyLanguage(text, "en").english).toBe(false);
  });

  it("falls back to the declared language for very short text", () => {
    expect(classifyLanguage("Breaking news", "en-US").english).toBe(true);
    expect(classifyLanguage("Breaking news", "fr").english).toBe(false);
    expect(classifyLanguage("", null).english).toBe(false);
  });
});

/**
 * One expression -> one dataset record (DESIGN §2): the header, the expression as the
 * prompt, one response per reduction step (the last is the integer answer), each with
 * the span directive of the chosen mode.
 */
import type { DatasetRecord, DatasetSegment } from "../schema.js";
import { type ArithConfig, type SpanMode, spanMode } from "./config.js";
import { type Expr, countOps, depth } from "./expr.js";
import { grammar } from "../spans.js";
import { DEFAULT_PRINT, type PrintOptions, printExpr } from "./print.js";
import { reductionSteps } from "./reduce.js";

export const TASK = "arith";

/** Refs of the response at segment `index` (prompt = 1): the previous K segments, oldest first, never the header. */
export function directive(mode: SpanMode, index: number): number[] | undefined {
  if (mode.kind === "none") return undefined;
  if (mode.kind === "prev") return [-1];
  const k = Math.min(mode.k, index - 1);
  return Array.from({ length: k }, (_, j) => j - k);
}

export interface RecordBuilder {
  /** `canonical`, when the caller has it, is canonicalForm(expr): reused as the prompt under default print options. */
  (expr: Expr, id: string, canonical?: string): DatasetRecord;
}

export function recordBuilder(config: ArithConfig): RecordBuilder {
  const mode = spanMode(config.span);
  const print: PrintOptions = { parens: config.parens, spaces: config.spaces };
  const canonicalPrompt = print.parens === DEFAULT_PRINT.parens && print.spaces === DEFAULT_PRINT.spaces;
  const header: DatasetSegment = { role: "header", text: config.header };
  // One frozen directive per segment index, shared by every record (they are never mutated).
  const directives = Array.from({ length: grammar.max_segments }, (_, i) => {
    const refs = directive(mode, i);
    return refs && (Object.freeze(refs) as number[]);
  });
  return (expr, id, canonical) => {
    const steps = reductionSteps(expr, config.strategy);
    const prompt = canonical != null && canonicalPrompt ? canonical : printExpr(expr, print);
    const segments: DatasetSegment[] = [header, { role: "prompt", text: prompt }];
    for (const step of steps) {
      const attend = directives[segments.length];
      segments.push(attend ? { role: "response", attend, text: printExpr(step, print) } : { role: "response", text: printExpr(step, print) });
    }
    const answer = segments[segments.length - 1].text;
    return {
      id,
      task: TASK,
      segments,
      answer,
      meta: { ops: countOps(expr), depth: depth(expr), steps: steps.length, strategy: config.strategy },
    };
  };
}

/**
 * One expression -> one dataset record (DESIGN §2): the header, the expression as the
 * prompt, one response per reduction step (the last is the integer answer), each with
 * the span directive of the chosen mode.
 */
import type { DatasetRecord, DatasetSegment } from "../schema.js";
import { type ArithConfig, type SpanMode, spanMode } from "./config.js";
import { type Expr, countOps, depth } from "./expr.js";
import { type PrintOptions, printExpr } from "./print.js";
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
  (expr: Expr, id: string): DatasetRecord;
}

export function recordBuilder(config: ArithConfig): RecordBuilder {
  const mode = spanMode(config.span);
  const print: PrintOptions = { parens: config.parens, spaces: config.spaces };
  const header: DatasetSegment = { role: "header", text: config.header };
  return (expr, id) => {
    const steps = reductionSteps(expr, config.strategy);
    const segments: DatasetSegment[] = [header, { role: "prompt", text: printExpr(expr, print) }];
    for (const step of steps) {
      const attend = directive(mode, segments.length);
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

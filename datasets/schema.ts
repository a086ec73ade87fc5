/**
 * The data contract of DESIGN §2: zod schemas for dataset records and manifests. Types
 * come from z.infer. `npm run build` exports these schemas as JSON Schema to
 * datasets/record.schema.json and datasets/manifest.schema.json, which the Python loader
 * (python/spanattn/data.py) validates against: one definition for both languages.
 *
 * JSON Schema cannot express the grammar rules (refs point to earlier segments, caps), so
 * both sides also check those in code: `checkGrammar` here, `data.check_grammar` there.
 */
import { z } from "zod";
import { grammar } from "./spans.js";

export const SegmentSchema = z
  .object({
    role: z.enum(["header", "prompt", "response"]),
    text: z.string(),
    attend: z.array(z.number().int()).max(grammar.max_refs_per_directive).optional(),
  })
  .strict();

export const RecordSchema = z
  .object({
    id: z.string().min(1),
    task: z.string().min(1),
    segments: z.array(SegmentSchema).min(2).max(grammar.max_segments),
    answer: z.string().optional(),
    reference: z.string().optional(),
    meta: z.record(z.string(), z.unknown()).default({}),
  })
  .strict();

export type DatasetSegment = z.infer<typeof SegmentSchema>;
export type DatasetRecord = z.input<typeof RecordSchema>;

/** Grammar rules JSON Schema cannot state; returns human-readable problems (empty = fine). */
export function checkGrammar(record: Pick<DatasetRecord, "segments">): string[] {
  const problems: string[] = [];
  const segs = record.segments;
  if (segs[0]?.role !== "header") problems.push("segments.0.role: the first segment must be the header");
  let seenResponse = false;
  segs.forEach((seg, i) => {
    if (i > 0 && seg.role === "header") problems.push(`segments.${i}.role: only segment 0 may be the header`);
    if (seg.role === "response") seenResponse = true;
    if (seg.role === "prompt" && seenResponse) problems.push(`segments.${i}.role: prompt segments must come before responses`);
    if (seg.attend == null) return;
    if (seg.role !== "response") problems.push(`segments.${i}.attend: only response segments carry a directive`);
    for (const ref of seg.attend) {
      if (ref < 0 && -ref > grammar.max_relative_ref) problems.push(`segments.${i}.attend: relative ref ${ref} is beyond -${grammar.max_relative_ref}`);
      else if (ref < 0 && i + ref < 0) problems.push(`segments.${i}.attend: relative ref ${ref} points before segment 0`);
      else if (ref >= i) problems.push(`segments.${i}.attend: ref ${ref} must point to an earlier segment`);
    }
  });
  return problems;
}

/** RecordSchema plus the grammar rules, as one zod schema (used on write). */
export const ValidRecordSchema = RecordSchema.superRefine((rec, ctx) => {
  for (const problem of checkGrammar(rec)) {
    const [path, message] = problem.split(": ", 2);
    ctx.addIssue({ code: "custom", path: path.split(".").map((p) => (/^\d+$/.test(p) ? Number(p) : p)), message });
  }
});

const Summary = z
  .object({ min: z.number(), median: z.number(), mean: z.number(), max: z.number() })
  .strict();

export const SplitManifestSchema = z
  .object({
    file: z.string(),
    count: z.number().int().nonnegative(),
    bytes: z.number().int().nonnegative(),
    sha256: z.string().regex(/^[0-9a-f]{64}$/),
    chars: Summary.describe("characters per record, all segments"),
    responseChars: Summary.describe("characters per record in response segments"),
    segments: Summary.describe("segments per record"),
    tokens: Summary.describe("character-level tokens per record, special tokens included"),
    annotatedDensity: z.number().min(0).max(1).describe("kept / total causal attention pairs"),
  })
  .strict();

export const ManifestSchema = z
  .object({
    name: z.string(),
    task: z.string(),
    generator: z.object({ name: z.string(), version: z.string() }).strict(),
    grammar: z.record(z.string(), z.unknown()),
    seed: z.number().int().nullable(),
    config: z.record(z.string(), z.unknown()),
    splits: z.record(z.string(), SplitManifestSchema),
    annotatedDensity: z.number().min(0).max(1),
    notes: z.array(z.string()).default([]),
  })
  .strict();

export type SplitManifest = z.infer<typeof SplitManifestSchema>;
export type Manifest = z.input<typeof ManifestSchema>;

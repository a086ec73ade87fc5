/** The JSON Schema documents exported from the zod data contract (see scripts/build.mjs). */
import { z } from "zod";
import { ManifestSchema, RecordSchema } from "../datasets/schema.js";

export function exportSchemas(): Record<string, unknown> {
  return {
    "datasets/record.schema.json": z.toJSONSchema(RecordSchema, { io: "input" }),
    "datasets/manifest.schema.json": z.toJSONSchema(ManifestSchema, { io: "input" }),
  };
}

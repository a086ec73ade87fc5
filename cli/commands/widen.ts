/**
 * `spanattn widen`: F times a trained Llama checkpoint's attention heads, query and KV, with
 * the same function (python/spanattn/widen.py): a KV-heavier model of the same quality to
 * train on from, without training one from scratch.
 */
import { Command } from "commander";
import { z } from "zod";
import { loadOptions } from "../lib/config.js";
import { printResult } from "../lib/output.js";
import { runPython } from "../lib/python.js";
import { requirePython } from "../preflight/python.js";

export const widenOptionsSchema = z
  .object({
    checkpoint: z.string().optional(),
    out: z.string().optional(),
    factor: z.number().int().min(1).default(2),
    noise: z.number().min(0).default(1e-3),
    seed: z.number().int().default(0),
    force: z.boolean().default(false),
    python: z.string().optional(),
    json: z.boolean().default(false),
  })
  .strict()
  .superRefine((o, ctx) => {
    if (!o.checkpoint) ctx.addIssue({ code: "custom", path: ["checkpoint"], message: "--checkpoint <dir> is required (a checkpoint folder)" });
    if (!o.out) ctx.addIssue({ code: "custom", path: ["out"], message: "--out <dir> is required (the new checkpoint folder)" });
  });
export type WidenOptions = z.infer<typeof widenOptionsSchema>;

export const WidenResultSchema = z
  .object({
    checkpoint: z.string(),
    out: z.string(),
    factor: z.number(),
    noise: z.number(),
    params: z.number(),
    params_before: z.number(),
    heads: z.tuple([z.number(), z.number()]),
    kv_bytes_per_token_bf16: z.number(),
  })
  .passthrough();
export type WidenResult = z.infer<typeof WidenResultSchema>;

export function widenSummary(r: WidenResult): string {
  const m = (n: number) => `${(n / 1e6).toFixed(1)}M`;
  return [
    `widened ${r.checkpoint} -> ${r.out}`,
    `  ${r.factor}x the attention heads: ${r.heads[0]} query, ${r.heads[1]} KV; ${m(r.params_before)} -> ${m(r.params)} parameters`,
    `  KV cache: ${(r.kv_bytes_per_token_bf16 / 1024).toFixed(0)} KB a token in bf16; noise ${r.noise} on the copies`,
    `  train on from it: spanattn train --config <config> --set model.path=${r.out} --set model.config=null --set model.tokenizer=auto`,
  ].join("\n");
}

export async function runWiden(opts: WidenOptions): Promise<WidenResult> {
  const python = await requirePython(opts.python);
  const args = ["--checkpoint", opts.checkpoint!, "--out", opts.out!, "--factor", String(opts.factor), "--noise", String(opts.noise), "--seed", String(opts.seed)];
  if (opts.force) args.push("--force");
  const r = await runPython({ python: python.python, module: "spanattn.widen", args, result: WidenResultSchema });
  return r.result;
}

export function widenCommand(): Command {
  return new Command("widen")
    .description("F times a trained Llama checkpoint's attention heads (query and KV), the same function: a KV-heavier model to train on from")
    .option("--config <file>", "YAML file with these options")
    .option("--checkpoint <dir>", "a checkpoint folder (config.json, *.safetensors, tokenizer), e.g. runs/<id>/checkpoints/step-N")
    .option("--out <dir>", "the new checkpoint folder")
    .option("--factor <n>", "how many times the heads (default: 2; the hidden size must stay a multiple of the query heads)", Number)
    .option("--noise <x>", "perturbation of the copies, a fraction of each matrix's std (default: 0.001; 0 keeps the logits equal)", Number)
    .option("--seed <n>", "seed of the noise (default: 0)", Number)
    .option("--force", "replace --out if it exists")
    .option("--python <path>", "interpreter to use (default: SPANATTN_PYTHON or .venv)")
    .option("--json", "print only the JSON result")
    .addHelpText("after", "\nExample:\n  $ spanattn widen --checkpoint runs/arith-long/checkpoints/step-002770 --factor 2 --out runs/arith-long-kv16-init\n")
    .action(async (flags) => {
      const { config, ...rest } = flags as Record<string, unknown>;
      const opts = loadOptions({ schema: widenOptionsSchema, flags: rest, configPath: config as string | undefined });
      const r = await runWiden(opts);
      printResult(r, opts.json, () => widenSummary(r));
    });
}

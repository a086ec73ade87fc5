/**
 * `spanattn eval`: accuracy and decode throughput, sparse vs dense, side by side
 * (python/spanattn/evaluate.py); `--replay` drives a large random-weight model shape
 * through a dataset's own spans (python/spanattn/replay.py); `--kernel` runs the attention
 * kernel benchmark (benchmarks/kernel_bench.py). Results: result.json (zod-validated
 * here), a terminal table and a self-contained report.html.
 */
import { existsSync, writeFileSync, renameSync } from "node:fs";
import { basename, join, resolve } from "node:path";
import { Command } from "commander";
import { z } from "zod";
import { loadOptions } from "../lib/config.js";
import { UsageError } from "../lib/errors.js";
import { EvalResultSchema, ReplayResultSchema, evalReport, evalTable, replayReport, replayTable } from "../lib/eval-report.js";
import { createReporter, printResult } from "../lib/output.js";
import { projectRoot } from "../lib/paths.js";
import { runPython } from "../lib/python.js";
import { requirePython } from "../preflight/python.js";

const csvInts = z.union([z.string(), z.array(z.number())]).transform((v, ctx) => {
  const items = Array.isArray(v) ? v : v.split(",").filter(Boolean).map(Number);
  if (items.some((x) => !Number.isInteger(x) || x <= 0)) {
    ctx.addIssue({ code: "custom", message: `expected comma-separated positive integers, got ${JSON.stringify(v)}` });
    return z.NEVER;
  }
  return items;
});

export const evalRunOptionsSchema = z
  .object({
    run: z.string().optional(),
    checkpoint: z.string().optional(),
    data: z.string().optional(),
    split: z.string().default("test"),
    batch: z.number().int().positive().default(64),
    maxNewTokens: z.number().int().positive().optional(),
    limit: z.number().int().positive().optional(),
    modes: z.enum(["dense,sparse", "dense", "sparse"]).default("dense,sparse"),
    throughput: z.boolean().default(false),
    sweepBatches: csvInts.default([1, 8, 32, 128]),
    sweepLengths: csvInts.default([32, 128, 512, 2048]),
    hfLimit: z.number().int().nonnegative().optional(),
    replay: z.boolean().default(false),
    shape: z.enum(["llama-1b", "llama-8b", "llama-long", "llama-long-kv16", "tiny"]).default("llama-8b"),
    contexts: csvInts.default([2048, 8192, 32768]),
    batches: csvInts.default([1, 8, 32]),
    gen: z.number().int().positive().default(128),
    kernel: z.boolean().default(false),
    device: z.enum(["auto", "cpu", "cuda"]).default("auto"),
    allowReference: z.boolean().default(false),
    noGraph: z.boolean().default(false),
    compileState: z.boolean().default(false),
    compileDecode: z.boolean().default(false),
    stepPlan: z.boolean().default(true),
    kernelSchedule: z.enum(["rows", "balanced"]).optional(),
    kernelCombine: z.enum(["kernel", "fused"]).optional(),
    continuous: z.boolean().default(false),
    refill: z.enum(["decode", "prefill"]).optional(),
    python: z.string().optional(),
    out: z.string().optional(),
    json: z.boolean().default(false),
  })
  .strict()
  .superRefine((o, ctx) => {
    const modesChosen = [o.replay, o.kernel].filter(Boolean).length;
    if (modesChosen > 1) ctx.addIssue({ code: "custom", path: ["replay"], message: "choose one of --replay and --kernel" });
    if (!o.kernel && !o.data) ctx.addIssue({ code: "custom", path: ["data"], message: "--data is required (a dataset folder)" });
    if (!o.kernel && !o.replay && !o.run && !o.checkpoint) ctx.addIssue({ code: "custom", path: ["run"], message: "--run (a run folder from `spanattn train`) is required" });
    if (o.refill && !o.continuous) ctx.addIssue({ code: "custom", path: ["refill"], message: "--refill is a --continuous option: add --continuous, or leave --refill out" });
    if (o.checkpoint === "best" && !o.run) ctx.addIssue({ code: "custom", path: ["checkpoint"], message: "--checkpoint best needs --run (the run whose checkpoints/best to read)" });
  });
export type EvalRunOptions = z.infer<typeof evalRunOptionsSchema>;

function stamp(): string {
  return new Date().toISOString().replace(/[:.]/g, "-").replace(/-\d\dZ$/, "Z");
}

function writeAtomic(path: string, text: string): void {
  writeFileSync(`${path}.tmp`, text);
  renameSync(`${path}.tmp`, path);
}

/** The decode-engine switches that eval and replay both take. */
export function engineFlags(opts: EvalRunOptions): string[] {
  return [
    ...(opts.allowReference ? ["--allow-reference"] : []),
    ...(opts.noGraph ? ["--no-graph"] : []),
    ...(opts.compileState ? ["--compile-state"] : []),
    ...(opts.compileDecode ? ["--compile-decode"] : []),
    ...(opts.stepPlan ? [] : ["--no-step-plan"]),
    ...(opts.kernelSchedule ? ["--kernel-schedule", opts.kernelSchedule] : []),
    ...(opts.kernelCombine ? ["--kernel-combine", opts.kernelCombine] : []),
  ];
}

export async function runEval(opts: EvalRunOptions) {
  const python = await requirePython(opts.python);
  const reporter = createReporter({ json: opts.json });
  const onEvent = (e: Record<string, unknown>) => {
    if (e.event === "progress") reporter.progress(String(e.task), Number(e.current), e.total != null ? Number(e.total) : undefined, e.detail ? String(e.detail) : undefined);
    else if (e.event === "log") reporter.log(String(e.message));
  };
  const onStderr = (line: string) => {
    if (!opts.json && line.trim()) reporter.log(line);
  };
  try {
    if (opts.kernel) {
      const out = resolve(opts.out ?? join(projectRoot, "runs", "kernel-bench", stamp()));
      const r = await runPython({
        python: python.python,
        module: "benchmarks.kernel_bench",
        command: { file: python.python, args: [join(projectRoot, "benchmarks", "kernel_bench.py"), "--out", out, "--batches", opts.batches.join(",")] },
        result: z.record(z.string(), z.unknown()),
        onEvent,
        onStderr,
      });
      return { kind: "kernel" as const, result: r.result, out };
    }
    if (opts.replay) {
      const out = resolve(opts.out ?? join(projectRoot, "runs", `replay-${opts.shape}`, stamp()));
      const args = ["--data", opts.data!, "--split", opts.split, "--shape", opts.shape, "--contexts", opts.contexts.join(","), "--batches", opts.batches.join(","), "--gen", String(opts.gen), "--device", opts.device, "--out", out];
      if (opts.limit) args.push("--limit", String(opts.limit));
      args.push(...engineFlags(opts));
      const r = await runPython({ python: python.python, module: "spanattn.replay", args, result: ReplayResultSchema, onEvent, onStderr });
      writeAtomic(join(out, "report.html"), replayReport(r.result));
      return { kind: "replay" as const, result: r.result, out };
    }
    const runDir = opts.run ?? (opts.checkpoint ? resolve(opts.checkpoint, "..", "..") : undefined)!;
    if (opts.run && !existsSync(opts.run)) throw new UsageError(`--run ${opts.run} does not exist`, "train a run first: spanattn train --config configs/train/arith-tiny.yaml");
    const out = resolve(opts.out ?? join(runDir, "eval", stamp()));
    const args = ["--run", runDir, "--data", opts.data!, "--split", opts.split, "--batch", String(opts.batch), "--modes", opts.modes, "--device", opts.device, "--out", out];
    if (opts.checkpoint) args.push("--checkpoint", opts.checkpoint);
    if (opts.maxNewTokens) args.push("--max-new-tokens", String(opts.maxNewTokens));
    if (opts.limit) args.push("--limit", String(opts.limit));
    if (opts.throughput) args.push("--throughput", "--sweep-batches", opts.sweepBatches.join(","), "--sweep-lengths", opts.sweepLengths.join(","));
    if (opts.throughput && opts.hfLimit !== undefined) args.push("--hf-limit", String(opts.hfLimit));
    if (opts.continuous) args.push("--continuous");
    if (opts.refill) args.push("--refill", opts.refill);
    args.push(...engineFlags(opts));
    const r = await runPython({ python: python.python, module: "spanattn.evaluate", args, result: EvalResultSchema, onEvent, onStderr });
    writeAtomic(join(out, "report.html"), evalReport(r.result));
    return { kind: "eval" as const, result: r.result, out };
  } finally {
    reporter.close();
  }
}

/** The options of `spanattn eval` from commander's flags and an optional config file. Commander
 * gives each --no-x flag a default (x: true): those pass on only when given, so that a config
 * file's value stands. */
export function loadEvalOptions(flags: Record<string, unknown>, configPath?: string): EvalRunOptions {
  const { graph, stepPlan, ...rest } = flags;
  const negated = { noGraph: graph === false ? true : undefined, stepPlan: stepPlan === false ? false : undefined };
  return loadOptions({ schema: evalRunOptionsSchema, flags: { ...rest, ...negated }, configPath });
}

export function evalRunCommand(): Command {
  return new Command("eval")
    .description("accuracy and decode throughput of a trained run, sparse vs dense, side by side")
    .option("--config <file>", "YAML file with these options")
    .option("--run <dir>", "run folder from `spanattn train` (its newest checkpoint is used)")
    .option("--checkpoint <dir>", "a specific checkpoint folder instead, or `best` (the run's checkpoints/best, from checkpoint.keep_best)")
    .option("--data <dir>", "dataset folder")
    .option("--split <name>", "split to evaluate (default: test)")
    .option("--batch <n>", "sequences decoded together (default: 64)", Number)
    .option("--max-new-tokens <n>", "generation cap (default: 1.25x the longest reference)", Number)
    .option("--limit <n>", "first N records only", Number)
    .option("--modes <list>", "dense,sparse (default), dense or sparse")
    .option("--throughput", "add a sweep over batch sizes and a transformers generate baseline")
    .option("--sweep-batches <list>", "batch sizes of the sweep (default: 1,8,32,128)")
    .option("--sweep-lengths <list>", "generation lengths of the sweep, at --batch (default: 32,128,512,2048; those below --max-new-tokens)")
    .option("--hf-limit <n>", "records for the transformers generate baseline of --throughput (default: all; 0 skips it)", Number)
    .option("--replay", "random-weight model of --shape driven through the dataset's spans")
    .option("--shape <name>", "replay shape: llama-1b, llama-8b (default), llama-long (the arith-long model), llama-long-kv16 (its twice-the-KV-heads variant) or tiny")
    .option("--contexts <list>", "replay context lengths (default: 2048,8192,32768)")
    .option("--batches <list>", "replay / kernel batch sizes (default: 1,8,32)")
    .option("--gen <n>", "replay: decoded tokens per configuration (default: 128)", Number)
    .option("--kernel", "run the attention-kernel benchmark (benchmarks/kernel_bench.py)")
    .option("--device <name>", "auto (default), cpu or cuda")
    .option("--allow-reference", "on a GPU without the built kernel, use the slow PyTorch op")
    .option("--no-graph", "do not capture the decode step in a CUDA graph")
    .option("--compile-state", "torch.compile the span state machine and the decode step's bookkeeping (fewer kernel launches per step)")
    .option("--compile-decode", "torch.compile the model's decode forward too: norms, rotary, KV-cache writes and activations fused around the GEMMs and the span kernel")
    .option("--no-step-plan", "plan the span kernel's balanced schedule in every layer (default: once a decode step, one plan kernel a step)")
    .option("--kernel-schedule <name>", "the span kernel's work split: balanced (default: splits per sequence in proportion to what it keeps) or rows")
    .option("--kernel-combine <how>", "how the balanced schedule merges a sequence's splits: fused (default: the split kernel's last block merges; one launch fewer a layer) or kernel (a combine kernel)")
    .option("--continuous", "continuous batching: refill a finished sequence's slot with the next prompt")
    .option("--refill <how>", "with --continuous: decode (default: the new prompt goes through the decode steps, no prefill forward) or prefill")
    .option("--python <path>", "interpreter to use (default: SPANATTN_PYTHON or .venv)")
    .option("--out <dir>", "output folder (default: <run>/eval/<timestamp>)")
    .option("--json", "print only the JSON result")
    .addHelpText(
      "after",
      "\nExamples:\n  $ spanattn eval --run runs/arith-tiny --data datasets/arith-small --limit 64\n  $ spanattn eval --run runs/arith-long --data datasets/arith-long --batch 128 --throughput\n  $ spanattn eval --replay --shape llama-8b --data datasets/arith-long --contexts 2048,8192 --batches 1,8,32\n",
    )
    .action(async (flags) => {
      const { config, ...rest } = flags as Record<string, unknown>;
      const opts = loadEvalOptions(rest, config as string | undefined);
      const res = await runEval(opts);
      printResult({ ...res.result, out: res.out }, opts.json, () => {
        if (res.kind === "kernel") return `kernel benchmark written to ${res.out}`;
        const text = res.kind === "replay" ? replayTable(res.result as never) : evalTable(res.result as never);
        return `${text}\n\nreport: ${join(res.out, "report.html")}  (result.json beside it; ${basename(res.out)})`;
      });
    });
}

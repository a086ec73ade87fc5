/**
 * `spanattn train`: fine-tune a causal LM on span-annotated data (DESIGN §3).
 *
 * The YAML config plus flags is validated here (zod, every offending key listed) before
 * anything starts; the run folder gets the config as `config.json`, and
 * `python -m spanattn.train` (or torchrun with --nproc) trains on it, streaming events into
 * the progress view. Defaults live on the Python side (python/spanattn/train_config.py);
 * the schema below mirrors its keys, and test/cli/train.test.ts keeps the two in step.
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { basename, extname, join, resolve } from "node:path";
import { Command } from "commander";
import { z } from "zod";
import { loadOptions } from "../lib/config.js";
import { InterruptedError, SpanattnError, UsageError } from "../lib/errors.js";
import { createReporter, printResult, table } from "../lib/output.js";
import { projectRoot } from "../lib/paths.js";
import { runPython } from "../lib/python.js";
import { requirePython } from "../preflight/python.js";

const int = (min = 0) => z.number().int().min(min);
const pos = () => z.number().int().positive();
const num = () => z.number();

const ModelSchema = z
  .object({
    path: z.string().min(1).nullable(),
    config: z.union([z.string().min(1), z.record(z.string(), z.union([z.number(), z.boolean()]))]),
    tokenizer: z.enum(["auto", "char", "bpe"]),
    bpe_vocab_size: pos(),
    dtype: z.enum(["float32", "bfloat16"]),
    attention: z.enum(["auto", "sdpa", "flex", "eager"]),
    compile: z.boolean(),
  })
  .partial()
  .strict();

const LoraSchema = z
  .object({
    enabled: z.boolean(),
    r: pos(),
    alpha: pos(),
    dropout: num().min(0).max(1),
    target_modules: z.array(z.string().min(1)).min(1),
    train_new_tokens: z.boolean(),
  })
  .partial()
  .strict();

const TrainSectionSchema = z
  .object({
    max_steps: pos(),
    micro_batch_size: pos(),
    grad_accum: pos(),
    seq_len: pos(),
    packing: z.boolean(),
    lr: num().positive(),
    min_lr_ratio: num().min(0).max(1),
    warmup_steps: int(),
    weight_decay: num().min(0),
    beta1: num().min(0).max(1),
    beta2: num().min(0).max(1),
    grad_clip: num().positive(),
    mask: z.enum(["mixed", "sparse", "dense"]),
    mixed_sparse_ratio: num().min(0).max(1),
    loss_on: z.enum(["response", "all"]),
    precision: z.enum(["auto", "bf16", "fp32"]),
    device: z.enum(["auto", "cpu", "cuda"]),
    cpu_threads: int(),
    long_records: z.enum(["error", "skip"]),
    peak_tflops: num().positive().nullable(),
    time_limit_s: num().positive().nullable(),
    mix: z.array(z.object({ data: z.string().min(1), weight: num().positive().default(1) }).strict()),
  })
  .partial()
  .strict();

const ValSchema = z
  .object({
    every: int(),
    loss_batches: int(),
    exact_match_samples: int(),
    exact_match_modes: z.array(z.enum(["sparse", "dense"])),
    max_new_tokens: pos().nullable(),
    decode_batch_size: pos(),
    test_exact_match_samples: z.number().int().min(-1),
  })
  .partial()
  .strict();

/** The training config proper: what python/spanattn/train_config.py reads. */
export const trainConfigSchema = z
  .object({
    data: z.string().min(1),
    seed: int(),
    model: ModelSchema,
    lora: LoraSchema,
    train: TrainSectionSchema,
    val: ValSchema,
    checkpoint: z
      .object({
        every: int(),
        keep_last: pos(),
        keep_best: z.boolean(),
        best_metric: z.enum(["val_loss", "val_loss_sparse", "val_loss_dense", "exact_match_sparse", "exact_match_dense"]),
      })
      .partial()
      .strict(),
    log: z.object({ every: pos(), tensorboard: z.boolean() }).partial().strict(),
  })
  .partial()
  .strict();

/** CLI-only keys, not part of the saved training config. */
const CLI_KEYS = ["out", "resume", "nproc", "python", "json", "force"] as const;

export const trainOptionsSchema = trainConfigSchema
  .extend({
    out: z.string().min(1).optional(),
    resume: z.boolean().default(false),
    nproc: pos().default(1),
    python: z.string().optional(),
    json: z.boolean().default(false),
    force: z.boolean().default(false),
  })
  .strict();
export type TrainOptions = z.infer<typeof trainOptionsSchema>;

export const TrainResultSchema = z
  .object({
    status: z.enum(["ok", "nan", "error", "interrupted"]),
    run_dir: z.string(),
    message: z.string().nullable().optional(),
    error: z.object({ kind: z.string(), message: z.string(), hint: z.string().nullable().optional() }).optional(),
    steps: z.number().optional(),
    max_steps: z.number().optional(),
    final_loss: z.number().nullable().optional(),
    val: z.record(z.string(), z.unknown()).optional(),
    test: z.record(z.string(), z.unknown()).optional(),
    checkpoint: z.string().nullable().optional(),
    best: z.object({ step: z.number(), metric: z.string(), value: z.number(), checkpoint: z.string() }).nullable().optional(),
    stopped: z.enum(["signal", "time_limit"]).nullable().optional(),
    tokens_per_s: z.number().nullable().optional(),
    mfu: z.number().nullable().optional(),
    train_s: z.number().optional(),
    params: z.number().optional(),
  })
  .passthrough();
export type TrainResult = z.infer<typeof TrainResultSchema>;

const FLAG_PATHS: Record<string, string> = { maxSteps: "train.max_steps", timeLimit: "train.time_limit_s", mask: "train.mask", model: "model.path", seed: "seed" };

function timestamp(): string {
  return new Date().toISOString().replace(/[-:]/g, "").replace("T", "-").slice(0, 15);
}

/** Resolve the run folder and the config to train on; refuse before Python starts. */
export function prepareRun(opts: TrainOptions, configPath: string | undefined, hasTrainingFlags: boolean): { runDir: string; configFile: string } {
  if (opts.resume) {
    if (!opts.out) throw new UsageError("--resume needs --out, the run folder to continue");
    const runDir = resolve(opts.out);
    const configFile = join(runDir, "config.json");
    if (!existsSync(configFile)) throw new UsageError(`--resume: ${opts.out} is not a run folder (no config.json)`, "start it without --resume");
    if (hasTrainingFlags) throw new UsageError("--resume continues with the run's saved config; drop --config, --set and training flags", `the config is ${configFile}`);
    return { runDir, configFile };
  }
  const config = Object.fromEntries(Object.entries(opts).filter(([k]) => !(CLI_KEYS as readonly string[]).includes(k)));
  if (!config.data) throw new UsageError("no dataset given", "pass --data datasets/<name> (or set data: in the config)");
  const data = resolve(String(config.data));
  if (!existsSync(join(data, "manifest.json")))
    throw new UsageError(`--data ${config.data} is not a dataset folder (no manifest.json)`, "create one with `spanattn gen-data arith --out datasets/<name>`");
  config.data = data;
  const section = config.train as { mix?: Array<{ data: string; weight?: number }> } | undefined;
  for (const [i, m] of (section?.mix ?? []).entries()) {
    const dir = resolve(m.data);
    if (!existsSync(join(dir, "manifest.json")))
      throw new UsageError(`train.mix.${i}.data: ${m.data} is not a dataset folder (no manifest.json)`, "create one with `spanattn gen-data`, or fix the path");
    m.data = dir;
  }
  const model = config.model as Record<string, unknown> | undefined;
  if (model && typeof model.path === "string" && existsSync(model.path)) model.path = resolve(model.path);
  if (model && typeof model.config === "string" && existsSync(model.config)) model.config = resolve(model.config);
  const name = configPath ? basename(configPath, extname(configPath)) : "train";
  const runDir = resolve(opts.out ?? join(projectRoot, "runs", `${name}-${timestamp()}`));
  if (existsSync(runDir) && readdirSync(runDir).length > 0) {
    if (!existsSync(join(runDir, "config.json"))) throw new UsageError(`--out ${runDir} exists and is not a run folder; refusing to use it`, "choose another --out");
    if (!opts.force) throw new UsageError(`run folder ${runDir} already exists`, "pass --resume to continue it, --force to start it over, or another --out");
    rmSync(runDir, { recursive: true, force: true });
  }
  mkdirSync(runDir, { recursive: true });
  const configFile = join(runDir, "config.json");
  writeFileSync(configFile, JSON.stringify(config, null, 2) + "\n");
  return { runDir, configFile };
}

function fmt(n: number | null | undefined, digits = 4): string {
  return n == null ? "-" : Number.isInteger(n) ? String(n) : n.toFixed(digits);
}

export function renderTrainResult(r: TrainResult): string {
  const rows: Array<[string, string]> = [
    ["run", r.run_dir],
    ["steps", `${r.steps}/${r.max_steps}`],
    ["final train loss", fmt(r.final_loss)],
    ...Object.entries(r.val ?? {}).map(([k, v]) => [k, fmt(v as number)] as [string, string]),
    ...Object.entries(r.test ?? {}).map(([k, v]) => [`test ${k}`, fmt(v as number)] as [string, string]),
    ["tokens/s", r.tokens_per_s ? Math.round(r.tokens_per_s).toLocaleString("en-US") : "-"],
    ["MFU", r.mfu != null ? `${(100 * r.mfu).toFixed(1)}%` : "- (no known GPU peak)"],
    ["checkpoint", r.checkpoint ?? "-"],
    ...(r.stopped && r.message ? [["stopped early", r.message] as [string, string]] : []),
    ...(r.best ? [["best checkpoint", `${r.best.checkpoint} (${r.best.metric} ${fmt(r.best.value)} at step ${r.best.step})`] as [string, string]] : []),
  ];
  return table(["", ""], rows).split("\n").slice(2).join("\n");
}

export async function runTrain(opts: TrainOptions, configPath: string | undefined, hasTrainingFlags: boolean): Promise<TrainResult> {
  const py = await requirePython(opts.python);
  const { runDir, configFile } = prepareRun(opts, configPath, hasTrainingFlags);
  const args = ["--config", configFile, "--out", runDir, "--bridge", ...(opts.resume ? ["--resume"] : [])];
  const command = opts.nproc > 1 ? { file: py.python, args: ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", String(opts.nproc), "-m", "spanattn.train"] } : undefined;
  const reporter = createReporter({ json: opts.json });
  let run;
  try {
    run = await runPython({
      python: py.python,
      module: "spanattn.train",
      args,
      command,
      cwd: projectRoot,
      result: TrainResultSchema,
      onEvent: (ev) => {
        if (ev.event === "step") {
          const e = ev as Record<string, number>;
          reporter.progress("train", e.step, e.total, `loss ${fmt(e.loss)}  lr ${e.lr.toExponential(2)}  ${Math.round(e.tokens_per_s).toLocaleString("en-US")} tok/s  eta ${Math.round(e.eta_s)}s`);
        } else if (ev.event === "val" || ev.event === "test") {
          const { event, ...rest } = ev;
          reporter.log(`${event}: ${Object.entries(rest).map(([k, v]) => `${k} ${typeof v === "number" ? fmt(v) : v}`).join("  ")}`);
        } else if (ev.event === "checkpoint") reporter.log(`checkpoint: ${ev.path}`);
        else if (ev.event === "best") reporter.log(`best ${ev.metric} so far: ${fmt(ev.value as number)} at step ${ev.step}`);
        else if (ev.event === "start") reporter.log(`training ${ev.params} parameters on ${ev.device} x${ev.world_size} (attention ${ev.attention}, mask ${ev.mask}) -> ${runDir}`);
      },
      onStderr: (line) => {
        if (!/^(step |val @ |best |tokenizer: |\d|error: |hint: )/.test(line) && line.trim()) reporter.log(line);
      },
    });
  } finally {
    reporter.close();
  }
  const result = run.result;
  if (result.status === "error") {
    const e = result.error!;
    throw new SpanattnError(e.message, e.hint ?? undefined, e.kind === "config" ? 2 : 1);
  }
  // stopped by a signal sent to the Python child itself (one sent to us is an InterruptedError above)
  if (result.status === "interrupted") throw new InterruptedError(result.message ?? "training interrupted");
  if (result.status === "nan") throw new SpanattnError(result.message ?? "the loss became NaN", "lower train.lr or raise train.warmup_steps, then --resume or start over", 1);
  return result;
}

export function trainCommand(): Command {
  return new Command("train")
    .description("fine-tune a causal LM on span-annotated data (mask-aware training, HF checkpoints)")
    .option("--config <yaml>", "training config (configs/train/*.yaml)")
    .option("--data <dir>", "dataset folder from `spanattn gen-data`")
    .option("--out <dir>", "run folder (default runs/<config>-<time>)")
    .option("--max-steps <n>", "training steps (train.max_steps)", (v) => Number(v))
    .option("--time-limit <seconds>", "stop after this much wall time, with a final validation and checkpoint (train.time_limit_s)", (v) => Number(v))
    .option("--mask <mode>", "mixed | sparse | dense (train.mask)")
    .option("--model <dir>", "HF causal-LM folder to fine-tune (model.path)")
    .option("--seed <n>", "seed", (v) => Number(v))
    .option("--resume", "continue the run in --out from its newest checkpoint")
    .option("--nproc <n>", "processes (GPUs) through torchrun; gloo on CPU", (v) => Number(v))
    .option("--set <key=value...>", "override any config key, e.g. --set train.lr=3e-4")
    .option("--force", "replace an existing run folder")
    .option("--python <path>", "interpreter with torch (default SPANATTN_PYTHON or .venv)")
    .option("--json", "print only the JSON result")
    .addHelpText(
      "after",
      "\nExamples:\n  $ spanattn gen-data arith --ops 1-3 --n 4000 --out datasets/arith-tiny\n  $ spanattn train --config configs/train/arith-tiny.yaml --data datasets/arith-tiny --out runs/arith-tiny\n  $ spanattn train --out runs/arith-tiny --resume\n  $ spanattn train --config configs/train/arith-small.yaml --data datasets/arith-default --nproc 8\n",
    )
    .action(async (flags) => {
      const training = ["config", "set", "data", "maxSteps", "timeLimit", "mask", "model", "seed", "force"].some((k) => flags[k] !== undefined);
      const opts = loadOptions({ schema: trainOptionsSchema, flags: flags.resume ? { out: flags.out, resume: true, nproc: flags.nproc, python: flags.python, json: flags.json } : flags, flagPaths: FLAG_PATHS, configPath: flags.resume ? undefined : flags.config, overrides: flags.resume ? undefined : flags.set });
      const result = await runTrain(opts, flags.config, Boolean(flags.resume) && training);
      printResult(result, opts.json, () => renderTrainResult(result));
    });
}

/** The config a finished or running run trains on (for eval and tests). */
export function readRunConfig(runDir: string): Record<string, unknown> {
  return JSON.parse(readFileSync(join(runDir, "config.json"), "utf8"));
}

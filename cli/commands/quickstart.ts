/**
 * `spanattn quickstart` (README command 1, after the install): generate a small arithmetic
 * dataset, train the embedded default model on it (CPU-sized without a GPU, GPU-sized with
 * one), evaluate dense vs sparse decoding, print the table and the report's path.
 * Steps already done are reused (say --fresh to redo them).
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { Command } from "commander";
import { z } from "zod";
import { loadOptions } from "../lib/config.js";
import { evalTable } from "../lib/eval-report.js";
import { printResult } from "../lib/output.js";
import { projectRoot } from "../lib/paths.js";
import { detectGpus } from "../preflight/nvcc.js";
import { requirePython } from "../preflight/python.js";
import { buildKernelOptionsSchema, runBuildKernel } from "./build-kernel.js";
import { evalRunOptionsSchema, runEval } from "./eval.js";
import { genDataArithOptionsSchema, runGenDataArith } from "./gen-data-arith.js";
import { runTrain, trainOptionsSchema } from "./train.js";

export const quickstartOptionsSchema = z
  .object({
    device: z.enum(["auto", "cpu", "cuda"]).default("auto"),
    fresh: z.boolean().default(false),
    python: z.string().optional(),
    json: z.boolean().default(false),
  })
  .strict();
export type QuickstartOptions = z.infer<typeof quickstartOptionsSchema>;

/** What runs where: small enough for 2 CPU cores in minutes, larger on a GPU. */
export const PLANS = {
  cpu: {
    data: { config: "configs/data/arith.yaml", flags: { ops: "1-3", n: 4000 }, out: "datasets/quickstart-arith-cpu" },
    // 1500 steps of 16 rows: ~5 minutes on 2 cores, ~35% exact match on val (347 s for the whole, 2026-12-01).
    // A slower or busier machine stops at 6 minutes, checkpointed, so the whole stays under 10.
    train: { config: "configs/train/arith-tiny.yaml", out: "runs/quickstart-cpu", set: ["train.max_steps=1500", "train.micro_batch_size=16", "val.every=500", "checkpoint.every=500", "train.time_limit_s=360"] },
    eval: { limit: 128, batch: 32, throughput: false },
  },
  cuda: {
    data: { config: "configs/data/arith.yaml", flags: {}, out: "datasets/quickstart-arith" },
    train: { config: "configs/train/arith-small.yaml", out: "runs/quickstart-gpu", set: [] as string[] },
    eval: { limit: undefined, batch: 128, throughput: true },
  },
} as const;

function say(json: boolean, text: string) {
  if (!json) process.stderr.write(`\n── ${text}\n`);
}

export async function runQuickstart(opts: QuickstartOptions) {
  const python = await requirePython(opts.python);
  const gpus = opts.device === "cpu" ? [] : await detectGpus();
  const device = opts.device === "auto" ? (gpus.length ? "cuda" : "cpu") : opts.device;
  const plan = PLANS[device];
  const started = Date.now();
  const root = (p: string) => join(projectRoot, p);

  say(opts.json, `1/4 dataset: ${plan.data.out} (${plan.data.config})`);
  if (opts.fresh || !existsSync(join(root(plan.data.out), "manifest.json"))) {
    await runGenDataArith(loadOptions({ schema: genDataArithOptionsSchema, configPath: root(plan.data.config), flags: { ...plan.data.flags, out: root(plan.data.out), force: true, json: opts.json } }));
  } else say(opts.json, "   reusing the dataset from an earlier quickstart (--fresh to regenerate)");

  say(opts.json, `2/4 kernel: ${device === "cuda" ? "spanattn build-kernel" : "not needed on the CPU (the PyTorch reference op runs there)"}`);
  if (device === "cuda") await runBuildKernel(loadOptions({ schema: buildKernelOptionsSchema, flags: { json: opts.json } }));

  say(opts.json, `3/4 train the embedded default model: ${plan.train.config} -> ${plan.train.out}`);
  const runDir = root(plan.train.out);
  if (opts.fresh || !existsSync(join(runDir, "result.json"))) {
    const trainOpts = loadOptions({ schema: trainOptionsSchema, configPath: root(plan.train.config), overrides: [...plan.train.set], flags: { data: root(plan.data.out), out: runDir, force: true, python: python.python, json: opts.json } });
    await runTrain(trainOpts, root(plan.train.config), false);
  } else say(opts.json, "   reusing the trained run from an earlier quickstart (--fresh to retrain)");

  say(opts.json, "4/4 evaluate: the same weights decoded dense and sparse, side by side");
  const res = await runEval(loadOptions({ schema: evalRunOptionsSchema, flags: { run: runDir, data: root(plan.data.out), limit: plan.eval.limit, batch: plan.eval.batch, throughput: plan.eval.throughput, python: python.python, json: opts.json, allowReference: false } }));
  return { device, seconds: Math.round((Date.now() - started) / 1000), dataset: root(plan.data.out), run: runDir, eval: res.result, report: join(res.out, "report.html") };
}

export function quickstartCommand(): Command {
  return new Command("quickstart")
    .description("generate data, train the embedded default model, evaluate dense vs sparse (README command 1)")
    .option("--device <name>", "auto (default: GPU if there is one), cpu or cuda")
    .option("--fresh", "redo every step instead of reusing an earlier quickstart's outputs")
    .option("--python <path>", "interpreter with torch (default SPANATTN_PYTHON or .venv)")
    .option("--json", "print only the JSON result")
    .addHelpText("after", "\nExamples:\n  $ spanattn quickstart\n  $ spanattn quickstart --fresh --device cpu\n")
    .action(async (flags) => {
      const opts = loadOptions({ schema: quickstartOptionsSchema, flags });
      const r = await runQuickstart(opts);
      printResult(r, opts.json, () =>
        [
          evalTable(r.eval as never),
          "",
          `quickstart done in ${r.seconds}s on ${r.device}: dataset ${r.dataset}, run ${r.run}`,
          `report: ${r.report}`,
          r.device === "cpu" ? "note: on the CPU the attention op is the PyTorch reference and the model is tiny: tokens/s here say nothing about GPU speed; run it on a GPU machine for those." : "",
        ].join("\n"),
      );
    });
}

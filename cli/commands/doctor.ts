/**
 * `spanattn doctor`: what this machine has (node, python, torch, transformers, nvcc, GPU,
 * kernel) and, for each command, whether it can run here and why not.
 */
import { existsSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { Command } from "commander";
import { z } from "zod";
import { loadOptions } from "../lib/config.js";
import { SpanattnError } from "../lib/errors.js";
import { printResult, table } from "../lib/output.js";
import { kernelBuildDir, projectRoot } from "../lib/paths.js";
import { runPython } from "../lib/python.js";
import { detectGpus, findNvcc } from "../preflight/nvcc.js";
import { choosePython } from "../preflight/python.js";

export const doctorOptionsSchema = z
  .object({
    python: z.string().optional(),
    json: z.boolean().default(false),
  })
  .strict();

const PythonReport = z
  .object({
    python: z.string(),
    executable: z.string(),
    torch: z.string().nullable(),
    transformers: z.string().nullable(),
    peft: z.string().nullable(),
    tokenizers: z.string().nullable(),
    jsonschema: z.string().nullable(),
    cuda: z.string().nullable(),
    torch_cuda_build: z.string().nullable().optional(),
    gpus: z.array(z.object({ name: z.string(), computeCapability: z.string(), memoryMiB: z.number() })),
  })
  .passthrough();

export const DoctorResultSchema = z.object({
  node: z.string(),
  python: z.object({ path: z.string().nullable(), source: z.string().nullable(), version: z.string().nullable(), error: z.string().nullable() }),
  torch: z.object({ version: z.string().nullable(), cuda: z.string().nullable() }),
  transformers: z.string().nullable(),
  nvcc: z.object({ path: z.string(), version: z.string() }).nullable(),
  gpus: z.array(z.object({ name: z.string(), computeCapability: z.string(), memoryMiB: z.number().optional() })),
  kernel: z.object({ built: z.boolean(), library: z.string().nullable(), archs: z.array(z.string()).nullable() }),
  commands: z.record(z.string(), z.object({ ok: z.boolean(), why: z.string() })),
});
export type DoctorResult = z.infer<typeof DoctorResultSchema>;

/** Whether `spanattn build-kernel` left a library behind (its manifest names it, repo-relative). */
export function kernelStatus(buildDir = kernelBuildDir, root = projectRoot): DoctorResult["kernel"] {
  const manifest = join(buildDir, "manifest.json");
  if (!existsSync(manifest)) return { built: false, library: null, archs: null };
  try {
    const m = JSON.parse(readFileSync(manifest, "utf8"));
    const lib = typeof m.library === "string" ? resolve(root, m.library) : join(buildDir, "libspanattn.so");
    return { built: existsSync(lib), library: lib, archs: Array.isArray(m.archs) ? m.archs : null };
  } catch {
    return { built: false, library: null, archs: null };
  }
}

export async function runDoctor(opts: z.infer<typeof doctorOptionsSchema>): Promise<DoctorResult> {
  const [nvcc, smiGpus] = await Promise.all([findNvcc(), detectGpus()]);
  let py: z.infer<typeof PythonReport> | null = null;
  let pyPath: string | null = null;
  let pySource: string | null = null;
  let pyError: string | null = null;
  try {
    const choice = choosePython(opts.python);
    pyPath = choice.python;
    pySource = choice.source;
    py = (await runPython({ python: choice.python, module: "spanattn.doctor", result: PythonReport })).result;
  } catch (e) {
    pyError = e instanceof SpanattnError ? e.message : String(e);
  }
  const gpus = py && py.gpus.length ? py.gpus : smiGpus;
  const kernel = kernelStatus();
  const hasTorch = Boolean(py?.torch);
  const torchWhy = hasTorch ? `torch ${py!.torch}` : pyError ?? "torch is not installed: run `spanattn setup`";
  const commands: DoctorResult["commands"] = {
    "gen-data": { ok: true, why: "needs only node" },
    train: { ok: hasTorch, why: hasTorch ? `${torchWhy}${py!.cuda ? ` on ${gpus.length} GPU(s)` : " on CPU"}` : torchWhy },
    widen: { ok: hasTorch, why: hasTorch ? `${torchWhy} (CPU is enough)` : torchWhy },
    "build-kernel": { ok: Boolean(nvcc), why: nvcc ? `nvcc ${nvcc.version}${gpus.length ? "" : " (no GPU: compiles, cannot run)"}` : "nvcc not found: install the CUDA toolkit or set CUDA_HOME" },
    eval: {
      ok: hasTorch,
      why: !hasTorch ? torchWhy : py!.cuda && kernel.built ? "GPU with the span kernel" : py!.cuda ? "GPU found but the kernel is not built: run `spanattn build-kernel`" : "CPU only: the PyTorch reference op (throughput numbers are not GPU numbers)",
    },
  };
  return {
    node: process.version,
    python: { path: pyPath, source: pySource, version: py?.python ?? null, error: pyError },
    torch: { version: py?.torch ?? null, cuda: py?.cuda ?? null },
    transformers: py?.transformers ?? null,
    nvcc,
    gpus,
    kernel,
    commands,
  };
}

export function renderDoctor(r: DoctorResult): string {
  const rows: Array<[string, string]> = [
    ["node", r.node],
    ["python", r.python.path ? `${r.python.version ?? "?"} (${r.python.path}, from ${r.python.source})` : `missing: ${r.python.error}`],
    ["torch", r.torch.version ? `${r.torch.version}${r.torch.cuda ? ` (CUDA ${r.torch.cuda})` : " (CPU)"}` : "missing"],
    ["transformers", r.transformers ?? "missing"],
    ["nvcc", r.nvcc ? `${r.nvcc.version} (${r.nvcc.path})` : "missing"],
    ["GPU", r.gpus.length ? r.gpus.map((g) => `${g.name} (sm ${g.computeCapability})`).join(", ") : "none"],
    ["kernel", r.kernel.built ? `built (${r.kernel.archs?.join(",") ?? "?"})` : "not built (spanattn build-kernel)"],
  ];
  const cmds = Object.entries(r.commands).map(([name, c]) => [name, c.ok ? "yes" : "no", c.why]);
  return `${table(["component", "found"], rows)}\n\n${table(["command", "runs here", "why"], cmds)}`;
}

export function doctorCommand(): Command {
  return new Command("doctor")
    .description("report what this machine has and which commands can run here")
    .option("--python <path>", "check this interpreter instead of SPANATTN_PYTHON / .venv")
    .option("--json", "print the report as JSON")
    .addHelpText("after", "\nExamples:\n  $ spanattn doctor\n  $ spanattn doctor --json | jq .commands\n")
    .action(async (flags) => {
      const opts = loadOptions({ schema: doctorOptionsSchema, flags });
      const result = await runDoctor(opts);
      printResult(result, opts.json, () => renderDoctor(result));
    });
}

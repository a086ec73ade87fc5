/**
 * `spanattn build-kernel`: compile cuda/span_decode.cu with nvcc into cuda/build/libspanattn.so
 * (a plain C-ABI shared library that python/spanattn/kernel.py loads with ctypes) and write
 * cuda/build/manifest.json (nvcc version, archs, flags, sha256 of the sources, build time).
 * A rebuild is skipped when sources, flags, archs and nvcc are unchanged. Works without a
 * GPU (CI compiles it); with one, its compute capability is added to the archs if missing.
 * Flags live in cuda/build.json, which cuda/build.py (for machines without Node) reads too.
 */
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { Command } from "commander";
import { execa } from "execa";
import { z } from "zod";
import { loadOptions } from "../lib/config.js";
import { ChildProcessError, EnvironmentError } from "../lib/errors.js";
import { createReporter, printResult } from "../lib/output.js";
import { projectRoot } from "../lib/paths.js";
import { detectGpus, requireNvcc, type Gpu, type Nvcc } from "../preflight/nvcc.js";

const ARCH = /^sm_\d{2,3}a?$/;

export const buildKernelOptionsSchema = z
  .object({
    arch: z
      .array(z.string().regex(ARCH, "expected an arch like sm_90a or sm_80"))
      .min(1)
      .optional()
      .describe("target archs; default: cuda/build.json's plus the local GPU's"),
    debug: z.boolean().default(false).describe("-G -O0 device code, for cuda-gdb"),
    force: z.boolean().default(false).describe("rebuild even if nothing changed"),
    json: z.boolean().default(false),
  })
  .strict();
export type BuildKernelOptions = z.infer<typeof buildKernelOptionsSchema>;

export const kernelBuildConfigSchema = z.object({
  library: z.string(),
  manifest: z.string(),
  sources: z.array(z.string()).min(1),
  compile: z.array(z.string()).min(1),
  defaultArchs: z.array(z.string().regex(ARCH)).min(1),
  flags: z.array(z.string()),
  debugFlags: z.array(z.string()),
});
export type KernelBuildConfig = z.infer<typeof kernelBuildConfigSchema>;

export const kernelManifestSchema = z.object({
  library: z.string(),
  nvcc: z.object({ path: z.string(), version: z.string() }),
  archs: z.array(z.string()),
  debug: z.boolean(),
  command: z.array(z.string()),
  sources: z.record(z.string(), z.string()),
  sourceHash: z.string(),
  builtAt: z.string(),
  seconds: z.number(),
  gpu: z.object({ name: z.string(), computeCapability: z.string() }).nullable(),
});
export type KernelManifest = z.infer<typeof kernelManifestSchema>;

export interface BuildKernelResult {
  status: "built" | "up-to-date";
  library: string;
  manifest: string;
  nvcc: Nvcc;
  archs: string[];
  debug: boolean;
  gpu: Gpu | null;
  sourceHash: string;
  seconds: number;
}

/** `-gencode` for an arch: arch-specific targets (sm_90a) are SASS only, others SASS + PTX. */
export function gencode(arch: string): string {
  const num = arch.slice("sm_".length);
  return num.endsWith("a") ? `-gencode=arch=compute_${num},code=sm_${num}` : `-gencode=arch=compute_${num},code=[sm_${num},compute_${num}]`;
}

/** Requested archs, else the defaults plus the GPU's own arch when no default runs natively on it. */
export function resolveArchs(defaults: string[], requested: string[] | undefined, gpus: Gpu[]): string[] {
  if (requested) return [...new Set(requested)];
  const archs = [...defaults];
  for (const gpu of gpus) {
    const m = /^(\d+)\.(\d+)$/.exec(gpu.computeCapability);
    if (!m) continue;
    const native = `sm_${m[1]}${m[2]}`;
    if (!archs.some((a) => a.replace(/a$/, "") === native)) archs.push(native);
  }
  return [...new Set(archs)];
}

export function readBuildConfig(root: string): KernelBuildConfig {
  const path = join(root, "cuda", "build.json");
  if (!existsSync(path)) throw new EnvironmentError(`${relative(root, path)} is missing`, "run from a complete spanattn checkout");
  return kernelBuildConfigSchema.parse(JSON.parse(readFileSync(path, "utf8")));
}

export function hashSources(root: string, sources: string[]): { files: Record<string, string>; combined: string } {
  const files: Record<string, string> = {};
  const combined = createHash("sha256");
  for (const source of sources) {
    const bytes = readFileSync(join(root, "cuda", source));
    files[source] = createHash("sha256").update(bytes).digest("hex");
    combined.update(`${source}\0${files[source]}\0`);
  }
  return { files, combined: combined.digest("hex") };
}

function readManifest(path: string): KernelManifest | null {
  try {
    return kernelManifestSchema.parse(JSON.parse(readFileSync(path, "utf8")));
  } catch {
    return null;
  }
}

function writeAtomic(path: string, text: string): void {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, text);
  renameSync(tmp, path);
}

export interface BuildKernelDeps {
  root?: string;
  findNvcc?: () => Promise<Nvcc>;
  detectGpus?: () => Promise<Gpu[]>;
}

export async function runBuildKernel(opts: BuildKernelOptions, deps: BuildKernelDeps = {}): Promise<BuildKernelResult> {
  const started = Date.now();
  const root = deps.root ?? projectRoot;
  const cfg = readBuildConfig(root);
  const [nvcc, gpus] = await Promise.all([(deps.findNvcc ?? requireNvcc)(), (deps.detectGpus ?? detectGpus)()]);
  const archs = resolveArchs(cfg.defaultArchs, opts.arch, gpus);
  const library = join(root, "cuda", cfg.library);
  const manifestPath = join(root, "cuda", cfg.manifest);
  const { files, combined } = hashSources(root, cfg.sources);
  const tmpLibrary = `${library}.tmp-${process.pid}`;
  const command = [nvcc.path, ...(opts.debug ? cfg.debugFlags : cfg.flags), ...archs.map(gencode), "-o", relative(root, library), ...cfg.compile.map((c) => join("cuda", c))];
  const gpu = gpus[0] ? { name: gpus[0].name, computeCapability: gpus[0].computeCapability } : null;
  const base = { library: relative(root, library), manifest: relative(root, manifestPath), nvcc, archs, debug: opts.debug, gpu, sourceHash: combined };

  const previous = readManifest(manifestPath);
  const unchanged =
    previous !== null &&
    existsSync(library) &&
    previous.sourceHash === combined &&
    previous.nvcc.version === nvcc.version &&
    JSON.stringify(previous.command) === JSON.stringify(command);
  if (unchanged && !opts.force) return { status: "up-to-date", ...base, seconds: (Date.now() - started) / 1000 };

  mkdirSync(dirname(library), { recursive: true });
  const reporter = createReporter({ json: opts.json });
  const tick = setInterval(() => reporter.progress("nvcc", Math.round((Date.now() - started) / 1000), undefined, `compiling for ${archs.join(", ")} (s elapsed)`), 1000);
  tick.unref();
  try {
    reporter.progress("nvcc", 0, undefined, `compiling for ${archs.join(", ")}`);
    const argv = command.slice(1).map((a) => (a === relative(root, library) ? relative(root, tmpLibrary) : a));
    const r = await execa(nvcc.path, argv, { cwd: root, reject: false, all: true });
    if (r.exitCode !== 0) {
      rmSync(tmpLibrary, { force: true });
      const tail = String(r.all ?? "").trim().split("\n").filter(Boolean).slice(-12);
      throw new ChildProcessError(`nvcc failed (exit ${r.exitCode ?? "?"}) building ${relative(root, library)}`, "an arch this nvcc does not know? pass --arch (e.g. --arch sm_80) or update the CUDA toolkit", 1, tail);
    }
    renameSync(tmpLibrary, library);
    const seconds = Math.round((Date.now() - started) / 100) / 10;
    const manifest: KernelManifest = { library: base.library, nvcc, archs, debug: opts.debug, command, sources: files, sourceHash: combined, builtAt: new Date().toISOString(), seconds, gpu };
    writeAtomic(manifestPath, JSON.stringify(manifest, null, 2) + "\n");
    reporter.done("nvcc", `${seconds}s`);
    return { status: "built", ...base, seconds };
  } finally {
    clearInterval(tick);
    reporter.close();
  }
}

function splitArchs(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), ...value.split(",").map((s) => s.trim()).filter(Boolean)];
}

export function buildKernelCommand(deps: BuildKernelDeps = {}): Command {
  return new Command("build-kernel")
    .description("compile the span decode-attention CUDA kernel (cuda/) into cuda/build/libspanattn.so")
    .option("--arch <list>", "comma-separated target archs (default: sm_90a,sm_80 plus the local GPU's)", splitArchs)
    .option("--debug", "build device code with -G -O0 (for cuda-gdb)")
    .option("--force", "rebuild even if sources, flags and nvcc are unchanged")
    .option("--json", "print only the JSON result")
    .addHelpText("after", "\nExamples:\n  $ spanattn build-kernel\n  $ spanattn build-kernel --arch sm_90a --force\n  $ SPANATTN_PYTHON=python3 PYTHONPATH=python python3 -m pytest test/python/test_kernel_gpu.py   # then, on a GPU\n")
    .action(async (flags) => {
      const opts = loadOptions({ schema: buildKernelOptionsSchema, flags });
      const result = await runBuildKernel(opts, deps);
      printResult(result, opts.json, () => {
        const where = `${result.library} (${result.archs.join(", ")}${result.debug ? ", debug" : ""}; nvcc ${result.nvcc.version})`;
        if (result.status === "up-to-date") return `${where} is up to date; nothing to do. Use --force to rebuild.`;
        const gpu = result.gpu ? `GPU: ${result.gpu.name} (compute ${result.gpu.computeCapability})` : "no GPU here: built, not run";
        return `built ${where} in ${result.seconds}s; ${gpu}. Manifest: ${result.manifest}`;
      });
    });
}

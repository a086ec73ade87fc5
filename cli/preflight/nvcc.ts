/** Finding nvcc and the GPU (if any) without Python: PATH, CUDA_HOME, CUDA_PATH, /usr/local/cuda. */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { execa } from "execa";
import { EnvironmentError } from "../lib/errors.js";

export interface Nvcc {
  path: string;
  version: string;
}

export function nvccCandidates(): string[] {
  const out = ["nvcc"];
  for (const home of [process.env.CUDA_HOME, process.env.CUDA_PATH, "/usr/local/cuda"]) {
    if (home) out.push(join(home, "bin", "nvcc"));
  }
  return out;
}

export async function findNvcc(candidates: string[] = nvccCandidates()): Promise<Nvcc | null> {
  for (const candidate of candidates) {
    if (candidate !== "nvcc" && !existsSync(candidate)) continue;
    const r = await execa(candidate, ["--version"], { reject: false, timeout: 30_000 });
    if (r.exitCode === 0) {
      const m = /release (\d+\.\d+)/.exec(String(r.stdout));
      return { path: candidate, version: m ? m[1] : String(r.stdout).trim().split("\n").pop() ?? "unknown" };
    }
  }
  return null;
}

/** nvcc or an EnvironmentError that says where it looked and how to fix it. */
export async function requireNvcc(candidates: string[] = nvccCandidates()): Promise<Nvcc> {
  const nvcc = await findNvcc(candidates);
  if (nvcc) return nvcc;
  throw new EnvironmentError(
    "nvcc (the CUDA compiler) was not found",
    "install the CUDA toolkit (12.4 or newer; 13.0 is tested) or set CUDA_HOME to its folder",
    1,
    [`looked for: ${candidates.join(", ")}`],
  );
}

export interface Gpu {
  name: string;
  computeCapability: string;
  memoryMiB?: number;
}

/** GPUs as nvidia-smi reports them; [] when there is no driver or no GPU. */
export async function detectGpus(): Promise<Gpu[]> {
  const r = await execa("nvidia-smi", ["--query-gpu=name,compute_cap,memory.total", "--format=csv,noheader,nounits"], { reject: false, timeout: 30_000 });
  if (r.exitCode !== 0) return [];
  return String(r.stdout)
    .trim()
    .split("\n")
    .filter(Boolean)
    .map((line) => {
      const [name, cap, mem] = line.split(",").map((s) => s.trim());
      return { name, computeCapability: cap, memoryMiB: Number(mem) || undefined };
    });
}

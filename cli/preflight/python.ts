/**
 * Which Python runs the work: `--python`, else SPANATTN_PYTHON, else the project's .venv
 * made by `spanattn setup`. Each failure says how to fix it.
 */
import { existsSync } from "node:fs";
import { execa } from "execa";
import { EnvironmentError } from "../lib/errors.js";
import { venvPython } from "../lib/paths.js";
import { pythonEnv } from "../lib/python.js";

export interface PythonChoice {
  python: string;
  source: "--python" | "SPANATTN_PYTHON" | ".venv";
}

const FIX = "run `spanattn setup` to create .venv, or point SPANATTN_PYTHON (or --python) at an interpreter that has torch";

export function choosePython(flag?: string): PythonChoice {
  if (flag) return { python: flag, source: "--python" };
  if (process.env.SPANATTN_PYTHON) return { python: process.env.SPANATTN_PYTHON, source: "SPANATTN_PYTHON" };
  if (existsSync(venvPython)) return { python: venvPython, source: ".venv" };
  throw new EnvironmentError("no Python environment found (no --python, no SPANATTN_PYTHON, no .venv)", FIX);
}

/** The chosen interpreter, checked to start and to import torch. */
export async function requirePython(flag?: string): Promise<PythonChoice & { torch: string }> {
  const choice = choosePython(flag);
  const probe = await execa(choice.python, ["-c", "import torch, sys; print(torch.__version__)"], {
    reject: false,
    env: pythonEnv(),
    timeout: 120_000,
  });
  if (probe.failed && (probe as { code?: string }).code === "ENOENT")
    throw new EnvironmentError(`Python interpreter not found: ${choice.python} (from ${choice.source})`, FIX);
  if (probe.exitCode !== 0) {
    const noTorch = /No module named ['"]?torch/.test(String(probe.stderr));
    throw new EnvironmentError(
      noTorch ? `torch is not installed for ${choice.python} (from ${choice.source})` : `${choice.python} (from ${choice.source}) failed to start: ${String(probe.stderr).trim().split("\n").pop()}`,
      FIX,
    );
  }
  return { ...choice, torch: String(probe.stdout).trim() };
}

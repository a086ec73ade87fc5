/**
 * `spanattn setup`: create .venv from the pinned python/requirements.txt (CPU torch).
 * Idempotent: a stamp records the requirements' hash, and a second run does nothing.
 * With SPANATTN_PYTHON (or --python) set, it checks that interpreter instead.
 */
import { createHash } from "node:crypto";
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Command } from "commander";
import { execa } from "execa";
import { z } from "zod";
import { loadOptions } from "../lib/config.js";
import { EnvironmentError } from "../lib/errors.js";
import { createReporter, printResult } from "../lib/output.js";
import { projectRoot, venvDir, venvPython } from "../lib/paths.js";
import { requirePython } from "../preflight/python.js";

export const setupOptionsSchema = z
  .object({
    basePython: z.string().default("python3").describe("interpreter used to create .venv"),
    python: z.string().optional().describe("use this interpreter instead of creating .venv"),
    force: z.boolean().default(false),
    json: z.boolean().default(false),
    pipTimeout: z.number().int().positive().default(30),
  })
  .strict();
export type SetupOptions = z.infer<typeof setupOptionsSchema>;

const requirementsPath = join(projectRoot, "python", "requirements.txt");
const stampPath = join(venvDir, ".spanattn-setup.json");
const IMPORTS = ["torch", "transformers", "peft", "tokenizers", "safetensors", "jsonschema", "yaml", "tensorboard", "pytest"];

function requirementsHash(): string {
  return createHash("sha256").update(readFileSync(requirementsPath)).digest("hex");
}

export interface SetupResult {
  status: "created" | "up-to-date" | "external";
  python: string;
  torch?: string;
  seconds: number;
}

export async function runSetup(opts: SetupOptions): Promise<SetupResult> {
  const started = Date.now();
  const seconds = () => Math.round((Date.now() - started) / 100) / 10;
  const external = opts.python ?? process.env.SPANATTN_PYTHON;
  if (external) {
    const p = await requirePython(opts.python);
    return { status: "external", python: p.python, torch: p.torch, seconds: seconds() };
  }
  const hash = requirementsHash();
  if (!opts.force && existsSync(venvPython) && existsSync(stampPath)) {
    const stamp = JSON.parse(readFileSync(stampPath, "utf8"));
    if (stamp.requirements === hash) return { status: "up-to-date", python: venvPython, torch: stamp.torch, seconds: seconds() };
  }

  const reporter = createReporter({ json: opts.json });
  try {
    if (opts.force && existsSync(venvDir)) rmSync(venvDir, { recursive: true, force: true });
    reporter.progress("venv", 0, undefined, `${opts.basePython} -m venv .venv`);
    const venv = await execa(opts.basePython, ["-m", "venv", venvDir], { reject: false });
    if ((venv as { code?: string }).code === "ENOENT") throw new EnvironmentError(`${opts.basePython} not found`, "install Python 3.10+ or pass --base-python");
    if (venv.exitCode !== 0) throw new EnvironmentError(`creating .venv failed: ${String(venv.stderr).trim().split("\n").pop()}`, "install the venv module (e.g. python3-venv)");
    reporter.done("venv");

    // --retries 0: an unreachable index fails at once instead of retrying for minutes.
    const pip = execa(
      venvPython,
      ["-m", "pip", "install", "--retries", "0", "--timeout", String(opts.pipTimeout), "--progress-bar", "off", "--disable-pip-version-check", "-r", requirementsPath],
      { reject: false, all: true, env: { PIP_NO_INPUT: "1" } },
    );
    let collected = 0;
    const tail: string[] = [];
    for await (const line of pip.iterable({ from: "all" })) {
      const text = String(line);
      tail.push(text);
      if (tail.length > 30) tail.shift();
      const m = /^(?:Collecting|Requirement already satisfied:|Processing)\s+(\S+)/.exec(text);
      if (m) reporter.progress("pip install", ++collected, undefined, m[1]);
      else if (text.startsWith("Installing collected packages")) reporter.progress("pip install", collected, undefined, "installing…");
    }
    const done = await pip;
    if (done.exitCode !== 0)
      throw new EnvironmentError("pip install -r python/requirements.txt failed", "check that pip can reach a package index or local wheel mirror, then rerun `spanattn setup --force`", 1, ["last pip output:", ...tail.map((l) => `  ${l}`)]);
    reporter.done("pip install", `${collected} packages`);

    reporter.progress("verify", 0, undefined, IMPORTS.join(", "));
    const check = await execa(venvPython, ["-c", `import ${IMPORTS.join(", ")}; print(torch.__version__)`], { reject: false });
    if (check.exitCode !== 0) throw new EnvironmentError("the new environment cannot import its packages", "rerun `spanattn setup --force`", 1, String(check.stderr).trim().split("\n").slice(-5));
    const torch = String(check.stdout).trim();
    reporter.done("verify", `torch ${torch}`);
    writeFileSync(stampPath, JSON.stringify({ requirements: hash, torch, created: new Date().toISOString() }, null, 2) + "\n");
    return { status: "created", python: venvPython, torch, seconds: seconds() };
  } finally {
    reporter.close();
  }
}

export function setupCommand(): Command {
  return new Command("setup")
    .description("create the Python environment (.venv) from python/requirements.txt")
    .option("--base-python <path>", "interpreter that creates .venv (default: python3)")
    .option("--python <path>", "use an existing interpreter that has torch instead (or set SPANATTN_PYTHON)")
    .option("--force", "recreate .venv even if it is up to date")
    .option("--json", "print only the JSON result")
    .addHelpText("after", "\nExamples:\n  $ spanattn setup\n  $ SPANATTN_PYTHON=python3 spanattn setup   # GPU machine: use its own torch\n")
    .action(async (flags) => {
      const opts = loadOptions({ schema: setupOptionsSchema, flags });
      const result = await runSetup(opts);
      printResult(result, opts.json, () => {
        if (result.status === "up-to-date") return `.venv is up to date (torch ${result.torch}); nothing to do. Use --force to recreate it.`;
        if (result.status === "external") return `using ${result.python} (torch ${result.torch}); no .venv needed.`;
        return `created .venv in ${result.seconds}s (torch ${result.torch}). Next: spanattn doctor`;
      });
    });
}

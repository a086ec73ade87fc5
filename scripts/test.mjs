// The whole test suite (README command 2 after `npm ci`): build, type-check, vitest,
// the Python environment (created by `spanattn setup` if missing), pytest, and the kernel
// compile check where nvcc exists. Ends with one plain line: "N passed, N failed".
//   node scripts/test.mjs [--only ts|py]
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const only = process.argv.includes("--only") ? process.argv[process.argv.indexOf("--only") + 1] : null;
const cli = [join(root, "bin/spanattn.mjs")];
let passed = 0;
let failed = 0;
const failures = [];

function step(name, cmd, args, opts = {}) {
  const started = Date.now();
  process.stderr.write(`\n== ${name}: ${[cmd, ...args].join(" ")}\n`);
  const r = spawnSync(cmd, args, { cwd: root, stdio: opts.capture ? ["ignore", "pipe", "inherit"] : "inherit", env: { ...process.env, ...opts.env }, encoding: "utf8" });
  if (opts.capture) process.stdout.write(r.stdout ?? "");
  process.stderr.write(`== ${name}: exit ${r.status} in ${((Date.now() - started) / 1000).toFixed(1)}s\n`);
  return r;
}

function check(name, r) {
  if (r.status !== 0) failures.push(`${name} (exit ${r.status})`);
  return r.status === 0;
}

check("build", step("build", process.execPath, [join(root, "scripts/build.mjs"), "--check"]));
// The Python environment first: CLI end-to-end tests in vitest need it too.
const python = process.env.SPANATTN_PYTHON || join(root, ".venv/bin/python");
if (!process.env.SPANATTN_PYTHON) check("setup", step("setup", process.execPath, [...cli, "setup"]));

if (only !== "py") {
  check("typecheck", step("typecheck", process.execPath, [join(root, "node_modules/typescript/bin/tsc"), "--noEmit", "-p", root]));
  const report = join(tmpdir(), `spanattn-vitest-${process.pid}.json`);
  const r = step("vitest", process.execPath, [join(root, "node_modules/vitest/vitest.mjs"), "run", "--reporter=default", "--reporter=json", `--outputFile=${report}`]);
  if (existsSync(report)) {
    const j = JSON.parse(readFileSync(report, "utf8"));
    passed += j.numPassedTests;
    failed += j.numFailedTests;
    rmSync(report);
  }
  check("vitest", r);
}

// The kernel compile check before pytest, so the tests that load the built library run.
if (only === null) {
  const nvcc = spawnSync("nvcc", ["--version"], { encoding: "utf8" });
  if (nvcc.status === 0) {
    const r = step("kernel compile check", process.execPath, [...cli, "build-kernel"]);
    if (check("kernel compile check", r)) passed += 1;
    else failed += 1;
  } else {
    process.stderr.write("\n== kernel compile check: nvcc not found on this machine, not run\n");
  }
}

if (only !== "ts") {
  // GPU tests run on the device machine (see benchmarks/README.md); CI has no GPU.
  const marks = process.env.SPANATTN_GPU_TESTS ? [] : ["-m", "not gpu"];
  const r = step("pytest", python, ["-m", "pytest", "-p", "no:cacheprovider", ...marks], { capture: true });
  const last = (r.stdout ?? "").trim().split("\n").pop() ?? "";
  passed += Number(/(\d+) passed/.exec(last)?.[1] ?? 0);
  failed += Number(/(\d+) failed/.exec(last)?.[1] ?? 0) + Number(/(\d+) errors?/.exec(last)?.[1] ?? 0);
  check("pytest", r);
}

if (failures.length) process.stderr.write(`\nfailed steps: ${failures.join(", ")}\n`);
console.log(`${passed} passed, ${failed} failed`);
process.exit(failures.length ? 1 : 0);

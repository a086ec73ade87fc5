// Record real subprocess output (exit code, stdout, stderr) as bridge test fixtures
// (changesets style), so the bridge is tested against what the tools really print.
//   node scripts/record-bridge-fixtures.mjs   (needs .venv from `spanattn setup`)
import { execa } from "execa";
import { writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const python = join(root, ".venv/bin/python");
const env = { PYTHONPATH: join(root, "python"), PYTHONUNBUFFERED: "1" };
const runs = {
  "doctor.json": [python, ["-m", "spanattn.doctor"]],
  "torch-crash.json": [python, ["-c", "import torch; torch.zeros(2, 3) @ torch.zeros(2, 3)"]],
  "missing-module.json": [python, ["-m", "spanattn.no_such_module"]],
};
for (const [file, [cmd, args]] of Object.entries(runs)) {
  const r = await execa(cmd, args, { reject: false, env, cwd: root });
  const rec = { recorded: new Date().toISOString().slice(0, 10), command: ["python", ...args].join(" "), exitCode: r.exitCode, stdout: r.stdout.replaceAll(root, "<repo>") + (r.stdout ? "\n" : ""), stderr: r.stderr.replaceAll(root, "<repo>") + "\n" };
  writeFileSync(join(root, "test/fixtures/bridge", file), JSON.stringify(rec, null, 2) + "\n");
  console.log(`${file}: exit ${r.exitCode}`);
}

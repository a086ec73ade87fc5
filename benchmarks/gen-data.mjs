// Benchmark: `spanattn gen-data arith` at the default config (configs/data/arith.yaml) with
// 1,000,000 train records, through the built CLI, in a fresh process per run. Target (issue 3):
// <= 30 s wall and <= 1 GB peak RSS on the project's 2-core CPU machine.
//
//   npm run build && node benchmarks/gen-data.mjs                 # 1M records, 1 run
//   node benchmarks/gen-data.mjs --n 100000 --runs 3 --workers 1  # quicker, or one core
//
// Each run spawns `node <this file> --child <cli args>`, which imports dist/spanattn.mjs, runs
// the command and reports process.resourceUsage() (worker threads share the process, so its
// peak RSS covers them). Wall time is measured around the child, startup included. The machine
// may be shared, so the load average before and after each run is printed with it.
// The last stdout line is one JSON document.
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { availableParallelism, cpus, loadavg, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const bundle = join(root, "dist", "spanattn.mjs");

if (process.argv[2] === "--child") {
  const { main } = await import(pathToFileURL(bundle).href);
  const code = await main(process.argv.slice(3));
  const ru = process.resourceUsage();
  process.stderr.write(`\nBENCH ${JSON.stringify({ code, maxRssKb: ru.maxRSS, userS: ru.userCPUTime / 1e6, systemS: ru.systemCPUTime / 1e6 })}\n`);
  process.exit(code);
}

function arg(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : fallback;
}

const n = Number(arg("n", "1000000"));
const runs = Number(arg("runs", "1"));
const workers = arg("workers", String(availableParallelism()));
const config = arg("config", "configs/data/arith.yaml");
if (!existsSync(bundle)) {
  console.error("dist/spanattn.mjs is missing: run `npm run build` first");
  process.exit(1);
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

const results = [];
for (let r = 0; r < runs; r++) {
  const dir = mkdtempSync(join(tmpdir(), "spanattn-bench-"));
  const out = join(dir, "arith");
  const args = ["gen-data", "arith", "--config", config, "--n", String(n), "--workers", workers, "--out", out, "--json"];
  const loadBefore = loadavg()[0];
  const t0 = process.hrtime.bigint();
  const child = spawnSync(process.execPath, [fileURLToPath(import.meta.url), "--child", ...args], { cwd: root, encoding: "utf8", maxBuffer: 1 << 26 });
  const wallS = Number(process.hrtime.bigint() - t0) / 1e9;
  const loadAfter = loadavg()[0];
  rmSync(dir, { recursive: true, force: true });
  const line = child.stderr.split("\n").find((l) => l.startsWith("BENCH "));
  if (child.status !== 0 || !line) {
    console.error(child.stderr.slice(-4000));
    console.error(`run ${r + 1} failed (exit ${child.status})`);
    process.exit(1);
  }
  const usage = JSON.parse(line.slice(6));
  const result = JSON.parse(child.stdout);
  if (result.splits.train.count !== n) throw new Error(`expected ${n} train records, got ${result.splits.train.count}`);
  const run = { wallS, maxRssMb: usage.maxRssKb / 1024, cpuS: usage.userS + usage.systemS, trainBytes: result.splits.train.bytes, sha256: result.splits.train.sha256, loadBefore, loadAfter };
  results.push(run);
  console.log(
    `run ${r + 1}/${runs}: ${n} train records in ${wallS.toFixed(2)} s wall (${(n / wallS / 1e3).toFixed(0)}k records/s), ` +
      `peak RSS ${run.maxRssMb.toFixed(0)} MB, CPU ${run.cpuS.toFixed(1)} s, ${(run.trainBytes / 1e6).toFixed(0)} MB train.jsonl, load ${loadBefore.toFixed(2)} -> ${loadAfter.toFixed(2)}`,
  );
}

const wall = median(results.map((r) => r.wallS));
const rss = Math.max(...results.map((r) => r.maxRssMb));
const summary = {
  benchmark: "gen-data-arith",
  date: new Date().toISOString(),
  command: `node bin/spanattn.mjs gen-data arith --config ${config} --n ${n} --workers ${workers} --out <tmp> --json`,
  records: n,
  runs,
  workers: Number(workers),
  cpus: cpus().length,
  cpuModel: cpus()[0]?.model ?? "unknown",
  node: process.version,
  medianWallS: Number(wall.toFixed(3)),
  maxRssMb: Number(rss.toFixed(1)),
  recordsPerS: Math.round(n / wall),
  sameBytesEveryRun: new Set(results.map((r) => r.sha256)).size === 1,
  targets: { wallS: 30, rssMb: 1024 },
  pass: wall <= 30 && rss <= 1024,
  runsDetail: results.map(({ sha256, ...rest }) => rest),
};
console.log(JSON.stringify(summary));

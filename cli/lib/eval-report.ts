/**
 * The result contracts of `spanattn eval` (python/spanattn/evaluate.py and replay.py),
 * validated with zod, and their renderings: a terminal table and a self-contained
 * report.html with charts.
 */
import { z } from "zod";
import { barChart, esc, htmlPage, lineChart } from "./charts.js";
import { table } from "./output.js";

const num = z.number();
const maybe = z.number().nullable();

export const ModeStatsSchema = z
  .object({
    generated_tokens: num,
    decode_seconds: num,
    prefill_seconds: num,
    tokens_per_second: num,
    ms_per_step_p50: num,
    ms_per_step_p95: num,
    attended_fraction: num,
    directive_attempts: num,
    malformed_rate: num,
    peak_memory_mib: maybe,
    cuda_graph: z.boolean(),
    continuous: z.boolean(),
    refill: z.enum(["decode", "prefill"]).nullable().optional(),
    accuracy: z.record(z.string(), num),
    attended_per_step: z.array(num).optional(),
    samples: z.array(z.object({ id: z.string(), generated: z.string() })),
  })
  .passthrough();

const SweepPoint = z.object({ tokens_per_second: num, ms_per_step_p50: num, ms_per_step_p95: num, attended_fraction: num }).passthrough();

/** Where and how the decode engine ran: the same in eval and replay results. */
const engineFields = {
  device: z.string(),
  gpu: z.string().nullable(),
  dtype: z.string(),
  attention: z.enum(["kernel", "reference"]),
  compile_state: z.boolean().optional(),
  compile_decode: z.boolean().optional(),
  step_plan: z.boolean().optional(),
  kernel_schedule: z.string().nullable().optional(),
  kernel_combine: z.string().nullable().optional(),
  note: z.string().nullable(),
};

export const EvalResultSchema = z
  .object({
    run: z.string(),
    checkpoint: z.string(),
    data: z.string(),
    split: z.string(),
    task: z.string(),
    records: num,
    skipped_records: num.optional(),
    batch: num,
    max_new_tokens: num,
    ...engineFields,
    modes: z.record(z.string(), ModeStatsSchema),
    speedup: maybe.optional(),
    paired: z
      .object({
        metric: z.string(),
        records: num,
        both: num,
        dense_only: num,
        sparse_only: num,
        neither: num,
        difference_points: num,
        difference_ci95: z.tuple([num, num]).optional(), // results before session 8 lack it
        mcnemar_p: num,
        dense_only_ids: z.array(z.string()).optional(),
        sparse_only_ids: z.array(z.string()).optional(),
      })
      .optional(),
    sweep: z.array(z.object({ batch: num, dense: SweepPoint, sparse: SweepPoint, speedup: num })).optional(),
    length_sweep: z.array(z.object({ max_new_tokens: num, batch: num, dense: SweepPoint, sparse: SweepPoint, speedup: num })).optional(),
    hf_generate: z.object({ tokens_per_second: num, generated_tokens: num, seconds: num, engine_dense_ratio: num.optional() }).passthrough().optional(),
    out: z.string(),
  })
  .passthrough();
export type EvalResult = z.infer<typeof EvalResultSchema>;

const ReplayMode = z.object({ tokens_per_second: num, ms_per_step_p50: num, ms_per_step_p95: num, attended_fraction: num, malformed: num, prefill_seconds: num });
export const ReplayResultSchema = z
  .object({
    kind: z.literal("replay"),
    shape: z.string(),
    data: z.string(),
    ...engineFields,
    rows: z.array(z.object({ context: num, batch: num, gen: num, kv_bytes: num, skipped: z.string().optional(), dense: ReplayMode.optional(), sparse: ReplayMode.optional(), speedup: num.optional() })),
    out: z.string(),
  })
  .passthrough();
export type ReplayResult = z.infer<typeof ReplayResultSchema>;

const f = (v: number | null | undefined, digits = 1) => (v == null || !Number.isFinite(v) ? "–" : v.toFixed(digits));
const pct = (v: number | undefined) => (v == null ? "–" : `${(100 * v).toFixed(2)}%`);

/** How the decode engine ran, in words: "kernel attention (balanced schedule, fused combine), compiled state machine". */
export function engineSummary(r: {
  attention: string;
  kernel_schedule?: string | null;
  kernel_combine?: string | null;
  step_plan?: boolean;
  compile_state?: boolean;
  compile_decode?: boolean;
}): string {
  const kernel: string[] = [];
  if (r.kernel_schedule) kernel.push(`${r.kernel_schedule} schedule`);
  if (r.kernel_schedule === "balanced" && r.kernel_combine === "fused") kernel.push("fused combine");
  if (r.kernel_schedule === "balanced" && r.step_plan) kernel.push("one plan a step");
  let out = `${r.attention} attention${kernel.length ? ` (${kernel.join(", ")})` : ""}`;
  if (r.compile_state) out += r.compile_decode ? ", compiled state machine and decode forward" : ", compiled state machine";
  else if (r.compile_decode) out += ", compiled decode forward";
  return out;
}

export function evalTable(r: EvalResult): string {
  const modes = Object.keys(r.modes);
  const accKeys = [...new Set(modes.flatMap((m) => Object.keys(r.modes[m].accuracy)))];
  const rows: Array<Array<string>> = [
    ...accKeys.map((k) => [k, ...modes.map((m) => pct(r.modes[m].accuracy[k]))]),
    ["tokens/s", ...modes.map((m) => f(r.modes[m].tokens_per_second, 0))],
    ["ms/step p50", ...modes.map((m) => f(r.modes[m].ms_per_step_p50, 2))],
    ["ms/step p95", ...modes.map((m) => f(r.modes[m].ms_per_step_p95, 2))],
    ["attended fraction", ...modes.map((m) => f(r.modes[m].attended_fraction, 3))],
    ["malformed directives", ...modes.map((m) => pct(r.modes[m].malformed_rate))],
    ["peak GPU memory MiB", ...modes.map((m) => f(r.modes[m].peak_memory_mib, 0))],
  ];
  let out = table(["", ...modes], rows);
  const cont = Object.values(r.modes).find((m) => m.continuous);
  const batching = cont ? `continuous batching, ${cont.refill ?? "prefill"} refill` : "static batches";
  if (r.speedup != null) out += `\n\nspeed-up sparse / dense: ${r.speedup.toFixed(2)}x  (batch ${r.batch}, ${r.records} records, ${r.device}${r.gpu ? ` ${r.gpu}` : ""})`;
  out += `\nengine: ${engineSummary(r)}; ${batching}`;
  if (r.paired) out += `\n${pairedLine(r.paired)}`;
  if (r.sweep?.length) out += "\n\n" + table(["batch", "dense tok/s", "sparse tok/s", "speed-up"], r.sweep.map((s) => [String(s.batch), f(s.dense.tokens_per_second, 0), f(s.sparse.tokens_per_second, 0), `${s.speedup.toFixed(2)}x`]));
  if (r.length_sweep?.length)
    out += "\n\n" + table([`new tokens (batch ${r.length_sweep[0].batch})`, "dense tok/s", "sparse tok/s", "speed-up", "attended"], r.length_sweep.map((s) => [`<= ${s.max_new_tokens}`, f(s.dense.tokens_per_second, 0), f(s.sparse.tokens_per_second, 0), `${s.speedup.toFixed(2)}x`, f(s.sparse.attended_fraction, 3)]));
  if (r.hf_generate) out += `\n\ntransformers generate (static cache): ${f(r.hf_generate.tokens_per_second, 0)} tok/s; engine dense / HF: ${f(r.hf_generate.engine_dense_ratio, 2)}x`;
  if (r.skipped_records) out += `\n\nskipped ${r.skipped_records} records whose prompt + ${r.max_new_tokens} new tokens exceeds the model's positions`;
  if (r.note) out += `\n\nnote: ${r.note}`;
  return out;
}

/** "exact match, record by record: 40 both, 7 dense only, 3 sparse only, 450 neither (sparse -0.80 points, 95% CI -1.73 to +0.61; McNemar exact p = 0.34)" */
export function pairedLine(p: NonNullable<EvalResult["paired"]>): string {
  const signed = (x: number) => `${x >= 0 ? "+" : ""}${x.toFixed(2)}`;
  const ci = p.difference_ci95 ? `, 95% CI ${signed(p.difference_ci95[0])} to ${signed(p.difference_ci95[1])}` : "";
  return `${p.metric.replace("_", " ")}, record by record: ${p.both} both, ${p.dense_only} dense only, ${p.sparse_only} sparse only, ${p.neither} neither (sparse ${signed(p.difference_points)} points${ci}; McNemar exact p = ${p.mcnemar_p.toPrecision(2)})`;
}

export function replayTable(r: ReplayResult): string {
  const rows = r.rows.map((row) =>
    row.skipped ? [String(row.context), String(row.batch), "–", "–", "–", row.skipped] : [String(row.context), String(row.batch), f(row.dense?.tokens_per_second, 0), f(row.sparse?.tokens_per_second, 0), `${f(row.speedup, 2)}x`, f(row.sparse?.attended_fraction, 3)],
  );
  let out = table(["context", "batch", "dense tok/s", "sparse tok/s", "speed-up", "attended"], rows);
  out += `\n\nreplay ${r.shape} on ${r.device}${r.gpu ? ` (${r.gpu})` : ""}, ${r.dtype}, ${engineSummary(r)}`;
  if (r.note) out += `\nnote: ${r.note}`;
  return out;
}

export function evalReport(r: EvalResult): string {
  const modes = Object.keys(r.modes);
  const charts: string[] = [];
  charts.push(barChart({ title: "Decode throughput", yLabel: "generated tokens/s", groups: modes, series: [{ name: "tokens/s", values: modes.map((m) => r.modes[m].tokens_per_second) }] }));
  const accKeys = [...new Set(modes.flatMap((m) => Object.keys(r.modes[m].accuracy)))];
  charts.push(barChart({ title: "Accuracy, side by side", yLabel: "score", groups: accKeys, series: modes.map((m) => ({ name: m, values: accKeys.map((k) => r.modes[m].accuracy[k]) })) }));
  if (r.sweep?.length) {
    charts.push(lineChart({ title: "Speed-up vs batch", xLabel: "batch", yLabel: "sparse / dense tokens/s", logX: true, series: [{ name: "speed-up", points: r.sweep.map((s) => [s.batch, s.speedup]) }] }));
    charts.push(lineChart({ title: "Tokens/s vs batch", xLabel: "batch", yLabel: "tokens/s", logX: true, series: (["dense", "sparse"] as const).map((m) => ({ name: m, points: r.sweep!.map((s) => [s.batch, s[m].tokens_per_second] as [number, number]) })) }));
  }
  if (r.length_sweep?.length) {
    const points = r.length_sweep.map((s) => ({ n: s.max_new_tokens, dense: s.dense.tokens_per_second, sparse: s.sparse.tokens_per_second }));
    charts.push(lineChart({ title: "Tokens/s vs generation length (longer answers, longer contexts)", xLabel: "new tokens per answer, at most", yLabel: "tokens/s", logX: true, series: (["dense", "sparse"] as const).map((m) => ({ name: m, points: points.map((p) => [p.n, p[m]] as [number, number]) })) }));
    charts.push(lineChart({ title: "Speed-up vs generation length", xLabel: "new tokens per answer, at most", yLabel: "sparse / dense tokens/s", logX: true, series: [{ name: "speed-up", points: points.map((p) => [p.n, p.sparse / p.dense] as [number, number]) }] }));
  }
  const perStep = modes.filter((m) => r.modes[m].attended_per_step?.length);
  if (perStep.length) charts.push(lineChart({ title: "Attended fraction per decode step", xLabel: "step", yLabel: "kept keys / all keys", series: perStep.map((m) => ({ name: m, points: r.modes[m].attended_per_step!.map((v, i) => [i + 1, v] as [number, number]) })) }));
  const samples = modes.map((m) => `<h3>${esc(m)}: samples</h3>${r.modes[m].samples.map((s) => `<p><code>${esc(s.id)}</code> ${esc(s.generated)}</p>`).join("")}`).join("");
  const body = `<h1>spanattn eval: ${esc(r.run)}</h1>
<p>${esc(r.data)} (${esc(r.split)}, ${r.records} records), batch ${r.batch}, up to ${r.max_new_tokens} new tokens, ${esc(r.device)}${r.gpu ? ` ${esc(r.gpu)}` : ""}, ${esc(r.dtype)}, ${esc(r.attention)} attention op. Checkpoint <code>${esc(r.checkpoint)}</code>.</p>
${r.note ? `<p class="note">${esc(r.note)}</p>` : ""}
<pre>${esc(evalTable(r))}</pre><div class="charts">${charts.join("")}</div>${samples}`;
  return htmlPage(`spanattn eval ${r.run}`, body);
}

export function replayReport(r: ReplayResult): string {
  const done = r.rows.filter((x) => x.dense && x.sparse);
  const batches = [...new Set(done.map((x) => x.batch))].sort((a, b) => a - b);
  const contexts = [...new Set(done.map((x) => x.context))].sort((a, b) => a - b);
  const charts = [
    lineChart({ title: "Tokens/s vs context length", xLabel: "context (tokens)", yLabel: "tokens/s", logX: true, series: batches.flatMap((b) => (["dense", "sparse"] as const).map((m) => ({ name: `${m} b=${b}`, points: done.filter((x) => x.batch === b).map((x) => [x.context, x[m]!.tokens_per_second] as [number, number]) }))) }),
    lineChart({ title: "Speed-up vs batch", xLabel: "batch", yLabel: "sparse / dense tokens/s", logX: true, series: contexts.map((c) => ({ name: `context ${c}`, points: done.filter((x) => x.context === c).map((x) => [x.batch, x.speedup!] as [number, number]) })) }),
  ];
  const body = `<h1>spanattn eval --replay ${esc(r.shape)}</h1><p>${esc(r.data)}, ${esc(r.device)}${r.gpu ? ` ${esc(r.gpu)}` : ""}, ${esc(r.dtype)}, ${esc(r.attention)} attention op; random weights, teacher-forced through the dataset's own responses and spans.</p>
${r.note ? `<p class="note">${esc(r.note)}</p>` : ""}<pre>${esc(replayTable(r))}</pre><div class="charts">${charts.join("")}</div>`;
  return htmlPage(`spanattn replay ${r.shape}`, body);
}

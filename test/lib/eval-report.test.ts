/** The eval result contract, its terminal table and its self-contained report.html. */
import { describe, expect, it } from "vitest";
import { EvalResultSchema, evalReport, evalTable } from "../../cli/lib/eval-report.js";

const mode = (tps: number, attended: number) => ({
  generated_tokens: 1000, decode_seconds: 1000 / tps, prefill_seconds: 0.1, tokens_per_second: tps,
  ms_per_step_p50: 1, ms_per_step_p95: 2, attended_fraction: attended, directive_attempts: 10, malformed_rate: 0,
  peak_memory_mib: 100, cuda_graph: true, continuous: false, attended_per_step: [attended, attended],
  accuracy: { exact_match: 0.5, step_exact_match: 0.25 }, samples: [{ id: "r1", generated: "<seg>1+1" }],
});
const point = (tps: number, attended: number) => ({ tokens_per_second: tps, ms_per_step_p50: 1, ms_per_step_p95: 2, attended_fraction: attended });

const result = EvalResultSchema.parse({
  run: "runs/x", checkpoint: "runs/x/checkpoints/step-000010", data: "datasets/a", split: "test", task: "arith", records: 256,
  batch: 128, max_new_tokens: 5000, device: "cuda", gpu: "H200", dtype: "bfloat16", attention: "kernel", note: null,
  modes: { dense: mode(50_000, 1), sparse: mode(100_000, 0.2) }, speedup: 2,
  sweep: [{ batch: 1, dense: point(3000, 1), sparse: point(3300, 0.2), speedup: 1.1 }],
  length_sweep: [
    { max_new_tokens: 128, batch: 128, records: 256, dense: point(90_000, 1), sparse: point(95_000, 0.6), speedup: 95 / 90 },
    { max_new_tokens: 2048, batch: 128, records: 256, dense: point(60_000, 1), sparse: point(110_000, 0.25), speedup: 11 / 6 },
  ],
  out: "runs/x/eval/t",
});

describe("eval report", () => {
  it("the table shows both sweeps, the generation lengths with their attended fraction", () => {
    const text = evalTable(result);
    expect(text).toMatch(/speed-up sparse \/ dense: 2\.00x/);
    expect(text).toMatch(/new tokens \(batch 128\)/);
    expect(text).toMatch(/<= 2048\s+60000\s+110000\s+1\.83x\s+0\.250/);
    expect(text).toMatch(/^1\s+3000\s+3300\s+1\.10x/m);
  });

  it("the table says how the engine ran: kernel schedule and combine, plan, compilation, batching", () => {
    expect(evalTable(result)).toMatch(/^engine: kernel attention; static batches$/m);
    const tuned = EvalResultSchema.parse({
      ...result, kernel_schedule: "balanced", kernel_combine: "fused", step_plan: true, compile_state: true, compile_decode: true,
      modes: { dense: { ...mode(50_000, 1), continuous: true, refill: "decode" }, sparse: { ...mode(100_000, 0.2), continuous: true, refill: "decode" } },
    });
    expect(evalTable(tuned)).toMatch(
      /^engine: kernel attention \(balanced schedule, fused combine, one plan a step\), compiled state machine and decode forward; continuous batching, decode refill$/m,
    );
    const rows = EvalResultSchema.parse({ ...result, kernel_schedule: "rows", kernel_combine: "fused", step_plan: true });
    expect(evalTable(rows)).toMatch(/^engine: kernel attention \(rows schedule\); static batches$/m);  // neither applies to rows
  });

  it("the table pairs the modes' exact match record by record, when the result has it", () => {
    expect(evalTable(result)).not.toMatch(/record by record/);
    const paired = EvalResultSchema.parse({
      ...result,
      paired: { metric: "exact_match", records: 500, both: 40, dense_only: 7, sparse_only: 3, neither: 450, difference_points: -0.8, mcnemar_p: 0.34375 },
    });
    expect(evalTable(paired)).toMatch(/^exact match, record by record: 40 both, 7 dense only, 3 sparse only, 450 neither \(sparse -0\.80 points; McNemar exact p = 0\.34\)$/m);
    expect(evalReport(paired)).toContain("7 dense only, 3 sparse only");
    const withCi = EvalResultSchema.parse({
      ...result,
      paired: { ...paired.paired, difference_ci95: [-1.733, 0.6098], dense_only_ids: ["a", "b"], sparse_only_ids: [] },
    });
    expect(evalTable(withCi)).toMatch(/\(sparse -0\.80 points, 95% CI -1\.73 to \+0\.61; McNemar exact p = 0\.34\)$/m);
    expect(() => EvalResultSchema.parse({ ...result, paired: { ...paired.paired, difference_ci95: [-1] } })).toThrow();
  });

  it("report.html charts tokens/s and speed-up against generation length and batch, with nothing fetched", () => {
    const html = evalReport(result);
    for (const title of ["Tokens/s vs generation length", "Speed-up vs generation length", "Speed-up vs batch", "Accuracy, side by side", "Attended fraction per decode step"])
      expect(html).toContain(title);
    expect(html).not.toMatch(/(src|href)=["']https?:/);
  });
});

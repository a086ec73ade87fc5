"""What a measured static-batch eval says about other ways to run it: an estimate, not a measurement.

Model: a decode step costs F (everything that does not grow with the context: GEMMs, norms,
the state machine, launches) plus a x (keys read). Dense steps read every row's whole context,
sparse ones `attended_fraction` of it. The two modes' measured tokens/s at the same batch, with
the step counts and context sums of the dataset's own records (exact token lengths, simulated
static batches), give F and a. The script then replays the same records through other
schedules and prints the predicted sparse / dense ratio:

- continuous: the batch's slots refilled as rows finish (`spanattn eval --continuous`): with
  refills free, and with each refilled prompt fed through the decode steps (refill="decode",
  the default: its tokens take steps and read densely in both modes; host time left out);
  the rows below use the second;
- F - x: fixed work taken off every step (a fused kernel, fewer launches);
- KV x k: a model with k times the KV bytes per token and the same fixed work.

    PYTHONPATH=python python3 benchmarks/speedup_model.py \\
        --result benchmarks/e2e/s5-eval-arith-long-balanced-compiled.json \\
        --checkpoint .ferry/long/checkpoint --data .ferry/long/data
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "python"))

from spanattn import spans  # noqa: E402
from spanattn.data import load_dataset  # noqa: E402


def schedule_sums(prompts: list[int], gens: list[int], batch: int, continuous: bool,
                  prompt_steps: bool = False) -> tuple[int, int, int, int]:
    """(steps, tokens, context sum over rows and steps, the part of it read by prompt tokens) of
    decoding these records `batch` at a time. prompt_steps (continuous only): a refilled slot
    first feeds its prompt through the decode steps (refill="decode"), reading densely in
    either mode and emitting no counted token."""
    steps = tokens = ctx = pctx = 0
    if not continuous:
        for s in range(0, len(gens), batch):
            P, G = prompts[s:s + batch], gens[s:s + batch]
            for t in range(max(G)):
                live = [(p, g) for p, g in zip(P, G) if t < g]
                steps += 1
                tokens += len(live)
                ctx += sum(p + t for p, _ in live)
        return steps, tokens, ctx, 0
    queue = list(range(len(gens)))
    # a slot: (record, step within it); a refilled record starts at -(prompt - 1): its prompt first
    slots = [[queue.pop(0), 0] for _ in range(min(batch, len(queue)))]
    while slots:
        steps += 1
        for q, t in slots:
            if t < 0:  # a prompt token at position prompt - 1 + t
                pctx += prompts[q] + t
            else:
                tokens += 1
                ctx += prompts[q] + t
        nxt = []
        for q, t in slots:
            if t + 1 < gens[q]:
                nxt.append([q, t + 1])
            elif queue:
                q2 = queue.pop(0)
                nxt.append([q2, -(prompts[q2] - 1) if prompt_steps else 0])
        slots = nxt
    return steps, tokens, ctx, pctx


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--result", required=True, help="result.json of a static-batch `spanattn eval` (both modes)")
    p.add_argument("--checkpoint", required=True, help="the checkpoint it decoded (for its tokenizer)")
    p.add_argument("--data", required=True)
    p.add_argument("--fixed-cuts-ms", default="0.03,0.06,0.1")
    p.add_argument("--kv-scales", default="1.5,2")
    args = p.parse_args(argv)
    from spanattn.tokenizer import load_tokenizer

    r = json.loads(Path(args.result).read_text())
    d, s = r["modes"]["dense"], r["modes"]["sparse"]
    if d.get("continuous") or s.get("continuous"):
        raise SystemExit("fit on a static-batch eval (no --continuous)")
    tok = load_tokenizer(Path(args.checkpoint))
    records = load_dataset(args.data).records(r["split"], limit=r["records"])
    prompts, gens = [], []
    for rec in records:
        x = spans.render_record(rec, tok.encode, tok.token_id, tok.grammar)
        prompts.append(x.prompt_length)
        # the reference answer's length: the result file has no per-record lengths of what was generated
        gens.append(min(len(x.ids) - x.prompt_length, r["max_new_tokens"]))
    B = r["batch"]
    steps, tokens, ctx, _ = schedule_sums(prompts, gens, B, continuous=False)
    f = s["attended_fraction"]
    # measured seconds for `tokens` tokens: T = F steps + a C (dense), F steps + a f C (sparse)
    t_dense, t_sparse = tokens / d["tokens_per_second"], tokens / s["tokens_per_second"]
    a = (t_dense - t_sparse) / ((1 - f) * ctx)
    F = (t_dense - a * ctx) / steps
    c_steps, _, c_ctx, _ = schedule_sums(prompts, gens, B, continuous=True)
    r_steps, _, r_ctx, r_pctx = schedule_sums(prompts, gens, B, continuous=True, prompt_steps=True)

    def ratio(F_, a_, S, C, Pc=0):
        return (F_ * S + a_ * (C + Pc)) / (F_ * S + a_ * (f * C + Pc))

    rows = [{"what": "static (measured)", "ratio": s["tokens_per_second"] / d["tokens_per_second"]},
            {"what": "static (the model, fitted to it)", "ratio": ratio(F, a, steps, ctx)},
            {"what": "continuous, refills free", "ratio": ratio(F, a, c_steps, c_ctx)},
            {"what": "continuous, prompts through decode steps", "ratio": ratio(F, a, r_steps, r_ctx, r_pctx)}]
    for cut in [float(x) for x in args.fixed_cuts_ms.split(",") if x]:
        Fc = F - cut / 1000
        rows.append({"what": f"static, F - {cut} ms", "ratio": ratio(Fc, a, steps, ctx)})
        rows.append({"what": f"continuous, F - {cut} ms", "ratio": ratio(Fc, a, r_steps, r_ctx, r_pctx)})
    for k in [float(x) for x in args.kv_scales.split(",") if x]:
        rows.append({"what": f"static, KV x {k:g}", "ratio": ratio(F, k * a, steps, ctx)})
        rows.append({"what": f"continuous, KV x {k:g}", "ratio": ratio(F, k * a, r_steps, r_ctx, r_pctx)})
    out = {"result": args.result, "records": len(records), "batch": B, "attended_fraction": f,
           "fixed_ms_per_step": F * 1000, "ns_per_key": a * 1e9, "static_steps": steps, "continuous_steps": c_steps,
           "continuous_steps_with_prompts": r_steps,
           "tokens": tokens, "estimates": rows,
           "note": "an estimate from a two-parameter model fitted to one measured eval, not a measurement"}
    print(json.dumps(out, indent=1))
    for row in rows:
        print(f"{row['what']:>42}: {row['ratio']:.2f}x", file=sys.stderr)


if __name__ == "__main__":
    main()

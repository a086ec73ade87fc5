"""Where a decode step's time goes: a kernel-level profile of the engine's step, dense vs sparse.

The replay setup (`spanattn.replay`: a random-weight Llama shape driven through a dataset's
own spans) at one context length and batch. The step is profiled without its CUDA graph, so
every kernel shows up with its own time, and grouped by kind: GEMMs, the span attention
kernel, the span state machine and the rest of the elementwise work, KV-cache writes, copies.
The same step is then timed inside its CUDA graph (what eval measures). On a CPU the
profile groups aten ops instead of kernels (a smoke test; the numbers mean nothing there).

    # on the GPU machine (see benchmarks/README.md for the recorded runs)
    PYTHONPATH=python python3 benchmarks/profile_decode.py --data datasets/arith-long --shape llama-8b \
        --context 8192 --batch 32 --out $OUT/profile.json [--compile-state]
    # smoke test on a CPU
    PYTHONPATH=python python benchmarks/profile_decode.py --data datasets/arith-long --shape tiny \
        --context 256 --batch 2 --steps 3 --device cpu --out /tmp/profile.json

Prints one JSON document as its last stdout line (and writes it to --out).
"""
from __future__ import annotations

import argparse
import collections
import datetime
import json
import sys
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "python"))

from spanattn import replay  # noqa: E402
from spanattn.engine import Engine  # noqa: E402
from spanattn.evaluate import add_engine_args, engine_fields, engine_options, prepare  # noqa: E402
from spanattn.tokenizer import build_char_tokenizer, record_texts  # noqa: E402

# kernel-name fragments -> group, first match wins (CUDA kernel names, then aten op names on CPU)
GROUPS = [
    ("span attention", ("span_decode", "span_plan", "span_attention", "spanattn")),
    ("gemm", ("gemm", "cutlass", "xmma", "nvjet", "cublas", "aten::mm", "aten::addmm", "aten::linear", "aten::matmul")),
    ("kv-cache write", ("index_put", "indexing_backward", "index_elementwise")),
    ("norm", ("rms_norm", "RowwiseMoments", "layer_norm")),
    ("copy / cast", ("copy", "memcpy", "aten::to", "aten::_to_copy", "aten::contiguous", "aten::clone")),
    ("reduction / sort", ("reduce", "argmax", "sort", "radix", "cub::", "aten::any", "aten::sum", "aten::argsort")),
    ("elementwise (state machine, rotary, activations, sampling)", ("elementwise", "triton_", "vectorized", "unrolled",
                                                                    "aten::")),
]
VIEW_OPS = {"aten::unsqueeze", "aten::select", "aten::slice", "aten::view", "aten::t", "aten::expand", "aten::expand_as",
            "aten::as_strided", "aten::reshape", "aten::alias", "aten::squeeze", "aten::chunk", "aten::split",
            "aten::transpose", "aten::permute", "aten::detach", "aten::lift_fresh", "aten::empty", "aten::empty_like",
            "aten::resolve_conj", "aten::resolve_neg", "aten::_unsafe_view", "aten::result_type"}


def group_of(name: str) -> str:
    low = name.lower()
    for group, keys in GROUPS:
        if any(k.lower() in low for k in keys):
            return group
    return "other"


def profile_steps(eng: Engine, mode: str, forced, steps: int) -> dict:
    """Kernel (GPU) or top-level aten op (CPU) time and count per decode step, by group."""
    cuda = eng.device.type == "cuda"
    eng._begin(mode, forced)
    for _ in range(2):  # warm-up outside the profile
        eng._step()
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=acts) as prof:
        for _ in range(steps):
            eng._step()
        if cuda:
            torch.cuda.synchronize()
    by = collections.defaultdict(lambda: [0.0, 0])
    names = collections.defaultdict(lambda: [0.0, 0])
    for ev in prof.events():
        if cuda:
            if ev.device_type != torch.autograd.DeviceType.CUDA:
                continue
            us = ev.device_time if hasattr(ev, "device_time") else ev.cuda_time
        else:
            if not ev.name.startswith("aten::") or ev.name in VIEW_OPS:
                continue
            if ev.cpu_parent is not None and ev.cpu_parent.name.startswith("aten::"):
                continue  # top-level ops only
            us = ev.cpu_time
        g = group_of(ev.name)
        by[g][0] += us
        by[g][1] += 1
        names[ev.name[:90]][0] += us
        names[ev.name[:90]][1] += 1
    total = sum(v[0] for v in by.values())
    return {
        "unit": "kernel time" if cuda else "aten op CPU time (smoke test only)",
        "us_per_step": total / steps,
        "launches_per_step": sum(v[1] for v in by.values()) / steps,
        "groups": {g: {"us_per_step": t / steps, "launches_per_step": n / steps}
                   for g, (t, n) in sorted(by.items(), key=lambda kv: -kv[1][0])},
        "top": [{"name": k, "us_per_step": t / steps, "launches_per_step": n / steps}
                for k, (t, n) in sorted(names.items(), key=lambda kv: -kv[1][0])[:25]],
    }


def graph_step_ms(eng: Engine, mode: str, forced, steps: int) -> float | None:
    """Median wall time of one step replayed from the CUDA graph (what eval measures)."""
    if eng.device.type != "cuda":
        return None
    eng.use_graph = True
    eng._begin(mode, forced)
    eng._run_step()
    times = []
    for _ in range(steps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        eng._run_step()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b))
    return sorted(times)[len(times) // 2]


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--split", default="test")
    ap.add_argument("--shape", default="llama-8b", choices=sorted(replay.SHAPES))
    ap.add_argument("--context", type=int, default=8192)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=8, help="profiled decode steps per mode")
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    add_engine_args(ap)
    ap.add_argument("--out")
    args = ap.parse_args(argv)
    args.allow_reference, args.limit = False, None
    device, attention, dtype, ds = prepare(args)
    records = ds.records(args.split)
    tok = build_char_tokenizer(record_texts(records))
    gen = 2 + 2 * args.steps + 8  # warm-ups, profiled and graph-timed steps stay inside the forced tokens
    model = replay.random_model(args.shape, device, dtype, args.context, min_vocab=len(tok))
    prompts, forced = replay.build_rows(records, tok, args.context, gen, args.batch)
    eng = Engine(model, batch_size=args.batch, max_len=args.context, special_ids=tok.special_ids, eos_id=None,
                 **{**engine_options(args), "cuda_graph": False})  # kernels one by one; the graph is timed apart
    t0 = time.perf_counter()
    eng.prefill(prompts, gen)
    report = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "torch": torch.__version__, "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "shape": args.shape, "context": args.context, "batch": args.batch, "attention": attention,
        **engine_fields(args, attention), "prefill_s": time.perf_counter() - t0,
        "weights_bytes": sum(p.numel() * p.element_size() for p in model.parameters()),
        "kv_bytes": replay.bytes_per_token_kv(model.config, dtype) * args.context * args.batch,
        "modes": {},
    }
    for mode in ("dense", "sparse"):
        prof = profile_steps(eng, mode, forced, args.steps)
        prof["graph_step_ms"] = graph_step_ms(eng, mode, forced, args.steps)
        eng.use_graph, eng._graph = False, None
        report["modes"][mode] = prof
    text = json.dumps(report)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    for mode, m in report["modes"].items():
        print(f"{mode}: {m['us_per_step']:.0f} us/step in {m['launches_per_step']:.0f} launches"
              + (f"; graph step {m['graph_step_ms']:.3f} ms" if m["graph_step_ms"] else ""), file=sys.stderr)
        for g, v in m["groups"].items():
            print(f"  {v['us_per_step']:9.1f} us  {v['launches_per_step']:6.1f}x  {g}", file=sys.stderr)
    print(text)
    return report


if __name__ == "__main__":
    main()

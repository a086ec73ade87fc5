"""Decode-attention benchmark: span kernel vs SDPA dense vs FlexAttention vs gather+SDPA.

Same process, same inputs. For each (B, N) and kept fraction, every method computes one
decode step (q: one token per sequence; Hq=32, Hkv=8, D=128, bf16) over the same KV cache
and the same kept positions (contiguous runs of 16-512 tokens; every sequence keeps the
same number of tokens so gather+SDPA needs no padding):

  span    torch.ops.spanattn.span_decode_attention (cuda/span_decode.cu)
  sdpa    F.scaled_dot_product_attention(enable_gqa=True) over all N tokens (what dense decode costs)
  flex    flex_attention (torch.compile) with a BlockMask of the same spans, KV block 64 (128 if
          64 fails); the mask_mod is token-exact, so partial blocks are masked inside
  gather  index the kept rows into a contiguous buffer, then dense SDPA on it

Timing: each method is captured in a CUDA graph that runs it over R copies of the KV cache
(R chosen so the bytes one replay reads exceed the L2 several times, i.e. every call reads
HBM, as in a real decode step); the graph is replayed and timed with CUDA events; the
median per-call time is reported. The byte floor is bytes the op must read (kept K and V,
q, out) / copy bandwidth measured in this run (device-to-device copy, read + write).

    PYTHONPATH=python python3 benchmarks/kernel_bench.py --out benchmarks/kernel     # full sweep
    PYTHONPATH=python python3 benchmarks/kernel_bench.py --batches 32 --lengths 8192 --out /tmp/k
    PYTHONPATH=python python3 benchmarks/kernel_bench.py --tune --batches 1,32 --lengths 8192

Writes <out>/results.json, <out>/table.md, <out>/chart.png; the last stdout line is the
results JSON document.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import random
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from spanattn import kernel

HQ, HKV, D = 32, 8, 128
DTYPE = torch.bfloat16
METHODS = ("span", "sdpa", "flex", "gather")


def log(*a):
    print(*a, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- inputs
GLOBAL_ROWS = 0  # --global-rows: sequences that read everything in every sparse case


def kept_rows(rng: random.Random, B: int, N: int, frac: float) -> list[list[tuple[int, int]]]:
    """Per sequence: sorted disjoint runs of 16-512 tokens totalling round(frac * N); the first
    GLOBAL_ROWS sequences keep everything (a row writing a directive reads its whole context)."""
    if frac >= 1.0:
        return [[(0, N)] for _ in range(B)]
    if GLOBAL_ROWS:
        return [[(0, N)] for _ in range(min(B, GLOBAL_ROWS))] + kept_rows_spread(rng, B - min(B, GLOBAL_ROWS), N, frac)
    return kept_rows_spread(rng, B, N, frac)


def kept_rows_spread(rng: random.Random, B: int, N: int, frac: float) -> list[list[tuple[int, int]]]:
    kept = max(1, round(frac * N))
    rows = []
    for _ in range(B):
        runs, total = [], 0
        while total < kept:
            r = min(rng.randint(16, 512), kept - total)
            runs.append(r)
            total += r
        # spread the N - kept skipped tokens over the len(runs) + 1 gaps (at least 1 between runs)
        free = N - kept - (len(runs) - 1)
        cuts = sorted(rng.randint(0, free) for _ in range(len(runs)))
        gaps = [cuts[0]] + [cuts[i] - cuts[i - 1] + 1 for i in range(1, len(runs))]
        row, pos = [], 0
        for g, r in zip(gaps, runs):
            pos += g
            row.append((pos, pos + r))
            pos += r
        rows.append(row)
    return rows


def measure_copy_bandwidth() -> dict:
    """Device-to-device copy of 2 GiB, bytes read + written per second, best of three ways.

    A copy_ captured in a graph becomes a memcpy node (copy engine), which is slower than
    the SM-driven copy an eager copy_ or an elementwise kernel gets; the floor uses the
    fastest, so it is the strictest.
    """
    n = 2 * 1024**3 // 2
    src = torch.empty(n, dtype=torch.bfloat16, device="cuda").normal_()
    dst = torch.empty_like(src)
    ways = {"graph_copy": time_graph(lambda: dst.copy_(src), reps=1, replays=10),
            "graph_elementwise": time_graph(lambda: torch.mul(src, 1, out=dst), reps=1, replays=10)}
    times = []
    for _ in range(10):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        dst.copy_(src)
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b))
    ways["eager_copy"] = sorted(times)[len(times) // 2]
    del src, dst
    gbps = {k: 2 * n * 2 / (ms * 1e-3) / 1e9 for k, ms in ways.items()}
    return dict(gbps=gbps, best_gbps=max(gbps.values()))


def time_graph(fn_for_copy, reps: int, replays: int = 10) -> float:
    """Median ms per call of fn_for_copy(r) for r in range(reps), captured in one graph."""
    call = (lambda r: fn_for_copy()) if fn_for_copy.__code__.co_argcount == 0 else fn_for_copy
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for r in range(min(reps, 3)):  # warm-up outside the graph (compile, plan caches)
            call(r)
    torch.cuda.current_stream().wait_stream(s)
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for r in range(reps):
            call(r)
    graph.replay()
    graph.replay()
    torch.cuda.synchronize()
    times = []
    for _ in range(replays):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        graph.replay()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b) / reps)
    del graph
    times.sort()
    return times[len(times) // 2]


# ----------------------------------------------------------------------------- methods
class Flex:
    def __init__(self):
        from torch.nn.attention.flex_attention import create_block_mask, flex_attention
        self.create_block_mask = create_block_mask
        self.fn = torch.compile(flex_attention, dynamic=False)
        # (KV block, query rows) to try, smallest block first; the query is padded with
        # copies of itself only if one row is refused.
        self.attempts = [(64, 1), (128, 1), (64, 16), (128, 16)]
        self.compile_s = 0.0
        self.reset()

    def reset(self) -> None:
        """Start again from the smallest block for a new shape."""
        self.block, self.q_rows = self.attempts[0]
        self.failed: str | None = None

    def next_attempt(self) -> bool:
        i = self.attempts.index((self.block, self.q_rows))
        if i + 1 == len(self.attempts):
            return False
        self.block, self.q_rows = self.attempts[i + 1]
        return True

    def block_mask(self, mask: torch.Tensor):
        B, N = mask.shape

        def mask_mod(b, h, q_idx, kv_idx):
            return mask[b, kv_idx]

        return self.create_block_mask(mask_mod, B, None, self.q_rows, N, device="cuda",
                                      BLOCK_SIZE=(128, self.block))

    def __call__(self, q4, k, v, bm):
        if self.q_rows > 1:
            q4 = q4.expand(-1, -1, self.q_rows, -1)
        return self.fn(q4, k, v, block_mask=bm, enable_gqa=True)[:, :, :1]


def touched_blocks(mask: torch.Tensor, block: int) -> int:
    B, N = mask.shape
    pad = (-N) % block
    m = F.pad(mask, (0, pad)).view(B, -1, block)
    return int(m.any(-1).sum().item())


def run_config(B: int, N: int, fracs, methods, flex: Flex | None, l2_bytes: int, mem_budget: float,
               seed: int, copy_bw: float, deadline: float) -> list[dict]:
    dense_bytes = B * HKV * N * D * 2 * 2
    want = math.ceil(4 * l2_bytes / (min(fracs) * dense_bytes))
    reps = int(max(1, min(256, want, mem_budget // dense_bytes)))
    log(f"B={B} N={N}: {dense_bytes / 1e9:.2f} GB of KV per copy, {reps} copies")
    g = torch.Generator(device="cuda").manual_seed(seed)
    k = torch.randn(reps, B, HKV, N, D, device="cuda", dtype=DTYPE, generator=g)
    v = torch.randn(reps, B, HKV, N, D, device="cuda", dtype=DTYPE, generator=g)
    q = torch.randn(B, HQ, D, device="cuda", dtype=DTYPE, generator=g)
    q4 = q[:, :, None]
    lens = torch.full((B,), N, dtype=torch.int32, device="cuda")
    scale = D ** -0.5
    rng = random.Random(seed)
    free_after = torch.cuda.mem_get_info()[0]
    if flex:
        flex.reset()
    rows_out = []
    for frac in fracs:
        rows = kept_rows(rng, B, N, frac)
        iv, n = kernel.pack_intervals(rows, device="cuda")
        mask = kernel.intervals_to_mask(iv, n, lens, N)
        kept_tokens = int(mask.sum().item()) // B
        kept_bytes = B * HKV * kept_tokens * D * 4 + 2 * q.numel() * 2
        floor_ms = kept_bytes / copy_bw * 1e3
        row = dict(B=B, N=N, kept_fraction=frac, kept_tokens=kept_tokens, intervals=iv.shape[1],
                   copies=reps, bytes_floor=kept_bytes, floor_ms=floor_ms, methods={})
        outs = {}
        for m in methods:
            if time.time() > deadline:
                row["methods"][m] = dict(skipped="time budget")
                continue
            try:
                if m == "span":
                    fn = lambda r: kernel.span_decode_attention(q, k[r], v[r], iv, n, lens, scale)  # noqa: E731
                    read = kept_bytes
                elif m == "sdpa":
                    fn = lambda r: F.scaled_dot_product_attention(q4, k[r], v[r], scale=scale, enable_gqa=True)  # noqa: E731
                    read = dense_bytes + 2 * q.numel() * 2
                elif m == "gather":
                    pos = mask.nonzero()[:, 1].view(B, 1, kept_tokens)  # (B, 1, L) kept positions
                    heads = torch.arange(B * HKV, device="cuda").view(B, HKV, 1)
                    rows_idx = (heads * N + pos).reshape(-1)  # rows of the (B*Hkv*N, D) view
                    need = 2 * B * HKV * kept_tokens * D * 2 * 2  # gathered K, V (+ the graph's slack)
                    if need > free_after * 0.8:
                        row["methods"][m] = dict(skipped="gathered copy does not fit in memory")
                        continue

                    def fn(r, rows_idx=rows_idx):  # rows as 32 int64 words: 4x fewer elements to index
                        kg = k[r].view(-1, D).view(torch.int64).index_select(0, rows_idx)
                        vg = v[r].view(-1, D).view(torch.int64).index_select(0, rows_idx)
                        kg = kg.view(DTYPE).view(B, HKV, kept_tokens, D)
                        vg = vg.view(DTYPE).view(B, HKV, kept_tokens, D)
                        return F.scaled_dot_product_attention(q4, kg, vg, scale=scale, enable_gqa=True)
                    read = 3 * (kept_bytes - 2 * q.numel() * 2) + 2 * q.numel() * 2
                else:
                    if flex.failed:
                        row["methods"][m] = dict(skipped=f"no block size compiled for this shape: {flex.failed}")
                        continue
                    t0 = time.time()
                    while True:
                        bm = flex.block_mask(mask)
                        fn = lambda r, bm=bm: flex(q4, k[r], v[r], bm)  # noqa: E731
                        try:
                            fn(0)
                            break
                        except Exception as err:  # take the next (block, rows) that works
                            log(f"  flex block {flex.block} q_rows {flex.q_rows} failed: {type(err).__name__}: {str(err)[:200]}")
                            if not flex.next_attempt():
                                flex.failed = f"{type(err).__name__}: {str(err)[:200]}"
                                raise
                    torch.cuda.synchronize()
                    flex.compile_s += time.time() - t0
                    blocks = touched_blocks(mask, flex.block)
                    read = blocks * HKV * flex.block * D * 4 + 2 * q.numel() * 2
                ms = time_graph(fn, reps)
                if m == "flex":
                    row["methods"][m] = dict(kv_block=flex.block, q_rows=flex.q_rows)
                out = fn(0)
                outs[m] = (out[:, :, 0] if out.dim() == 4 else out).float()
                row["methods"].setdefault(m, {}).update(
                    ms=ms, bytes_read=read, read_gbps=read / (ms * 1e-3) / 1e9,
                    useful_gbps=kept_bytes / (ms * 1e-3) / 1e9, x_floor=ms / floor_ms)
            except Exception as err:  # a baseline that cannot run this shape is reported, not fatal
                log(f"  {m} failed at B={B} N={N} f={frac}: {type(err).__name__}: {str(err)[:300]}")
                row["methods"][m] = dict(skipped=f"{type(err).__name__}: {str(err)[:200]}")
        if "span" in outs:
            # fp32 reference in batch chunks of <= ~4 GB of upcast K+V
            step = max(1, int(4e9 // (HKV * N * D * 4 * 2)))
            ref = torch.cat([kernel.span_decode_attention_reference(
                q[i:i + step], k[0, i:i + step], v[0, i:i + step], iv[i:i + step], n[i:i + step],
                lens[i:i + step], scale) for i in range(0, B, step)])
            for m, o in outs.items():
                row["methods"][m]["max_err_vs_fp32"] = (o - ref).abs().max().item()
        rows_out.append(row)
        log("  " + summary_line(row))
    del k, v
    torch.cuda.empty_cache()
    return rows_out


def summary_line(row: dict) -> str:
    parts = [f"f={row['kept_fraction']:<4} floor {row['floor_ms'] * 1e3:8.1f}us"]
    for m, r in row["methods"].items():
        parts.append(f"{m} {r['ms'] * 1e3:8.1f}us" if "ms" in r else f"{m} -")
    return " | ".join(parts)


# ----------------------------------------------------------------------------- targets
def targets(rows: list[dict]) -> dict:
    def ms(row, m):
        return row["methods"].get(m, {}).get("ms")

    dense, sparse, vs_sdpa = [], [], []
    key = None
    for row in rows:
        span, sdpa = ms(row, "span"), ms(row, "sdpa")
        if span is None:
            continue
        tag = f"B={row['B']} N={row['N']} f={row['kept_fraction']}"
        if row["kept_fraction"] >= 1.0 and sdpa:
            dense.append(dict(case=tag, throughput_vs_sdpa=sdpa / span, met=sdpa / span >= 0.95))
        else:
            bound = 1.3 * row["floor_ms"] + 0.010
            sparse.append(dict(case=tag, ms=span, bound_ms=bound, met=span <= bound))
            if sdpa:
                vs_sdpa.append(dict(case=tag, speedup_vs_sdpa=sdpa / span, met=span <= sdpa))
        if row["B"] == 32 and row["N"] == 8192 and row["kept_fraction"] == 0.25:
            flex = ms(row, "flex")
            key = dict(speedup_vs_flex=(flex / span) if flex else None, speedup_vs_sdpa=sdpa / span if sdpa else None,
                       met_flex=bool(flex and flex / span >= 3.0), met_sdpa=bool(sdpa and sdpa / span >= 2.5))
    return dict(
        dense_ge_0p95_sdpa=dict(met=all(d["met"] for d in dense) if dense else None, cases=dense),
        sparse_within_1p3_floor_plus_10us=dict(met=all(s["met"] for s in sparse) if sparse else None, cases=sparse),
        b32_n8192_kept0p25=key,
        no_sparse_slower_than_dense_sdpa=dict(met=all(s["met"] for s in vs_sdpa) if vs_sdpa else None, cases=vs_sdpa),
    )


# ----------------------------------------------------------------------------- outputs
def write_table(doc: dict, path: Path) -> None:
    lines = ["| B | N | kept | floor µs | span µs | ×floor | span GB/s | sdpa µs | flex µs | gather µs | span vs sdpa | span vs flex |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]

    def us(r, m):
        x = r["methods"].get(m, {})
        return f"{x['ms'] * 1e3:.1f}" if "ms" in x else "–"

    for r in doc["rows"]:
        s = r["methods"].get("span", {})
        sd, fx = r["methods"].get("sdpa", {}), r["methods"].get("flex", {})
        vs = lambda o: f"{o['ms'] / s['ms']:.2f}×" if "ms" in o and "ms" in s else "–"  # noqa: E731
        lines.append(f"| {r['B']} | {r['N']} | {r['kept_fraction']} | {r['floor_ms'] * 1e3:.1f} | {us(r, 'span')} | "
                     f"{s.get('x_floor', float('nan')):.2f} | {s.get('useful_gbps', float('nan')):.0f} | {us(r, 'sdpa')} | "
                     f"{us(r, 'flex')} | {us(r, 'gather')} | {vs(sd)} | {vs(fx)} |")
    path.write_text("\n".join(lines) + "\n")


def write_chart(doc: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    Bs = sorted({r["B"] for r in doc["rows"]})
    Ns = sorted({r["N"] for r in doc["rows"]})
    fig, axes = plt.subplots(len(Bs), len(Ns), figsize=(3.6 * len(Ns), 2.9 * len(Bs)), squeeze=False)
    for i, B in enumerate(Bs):
        for j, N in enumerate(Ns):
            ax = axes[i][j]
            rows = sorted((r for r in doc["rows"] if r["B"] == B and r["N"] == N), key=lambda r: r["kept_fraction"])
            if not rows:
                ax.axis("off")
                continue
            fr = [r["kept_fraction"] for r in rows]
            for m in METHODS:
                ys = [r["methods"].get(m, {}).get("ms", float("nan")) * 1e3 for r in rows]
                ax.plot(fr, ys, marker="o", ms=3, label=m)
            ax.plot(fr, [r["floor_ms"] * 1e3 for r in rows], "k--", lw=1, label="byte floor")
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_title(f"B={B}, N={N}", fontsize=9)
            ax.set_xlabel("kept fraction", fontsize=8)
            ax.set_ylabel("µs per decode step", fontsize=8)
            ax.tick_params(labelsize=7)
    axes[0][0].legend(fontsize=7)
    fig.suptitle(f"span decode attention, Hq={HQ} Hkv={HKV} D={D} bf16, {doc['device']} ({doc['date']})", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def tune(batches, lengths, l2_bytes, copy_bw) -> list[dict]:
    """Time the kernel's variants (tokens per step x splits) on a few shapes."""
    out = []
    for B in batches:
        for N in lengths:
            for frac in (1.0, 0.25, 0.03):
                rows = run_config(B, N, [frac], ["span"], None, l2_bytes, 8e9, 0, copy_bw, math.inf)
                base = rows[0]["methods"]["span"]["ms"]
                res = dict(B=B, N=N, kept_fraction=frac, auto_ms=base, variants={})
                for variant in (1, 3, 5):
                    kernel.set_tuning(variant, 0)
                    r = run_config(B, N, [frac], ["span"], None, l2_bytes, 8e9, 0, copy_bw, math.inf)[0]
                    res["variants"][f"v{variant}"] = r["methods"]["span"]["ms"]
                kernel.set_tuning(0, 0)
                out.append(res)
                log(f"tune {res}")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batches", default="1,8,32,128")
    ap.add_argument("--lengths", default="2048,8192,32768,131072")
    ap.add_argument("--fractions", default="1.0,0.5,0.25,0.1,0.03")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--out", default=None, help="folder for results.json, table.md, chart.png")
    ap.add_argument("--budget-s", type=float, default=1e9, help="stop measuring new cases after this")
    ap.add_argument("--mem-gb", type=float, default=24.0, help="max GB for the rotated KV copies")
    ap.add_argument("--tune", action="store_true", help="time kernel variants instead of the sweep")
    ap.add_argument("--variant", type=int, default=0, help="kernel variant 1, 3 or 5 (0 = the library's default)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--schedule", choices=list(kernel.SCHEDULES), default=None,
                    help="the kernel's work schedule (default: the library's, SPANATTN_KERNEL_SCHEDULE)")
    ap.add_argument("--combine", choices=list(kernel.COMBINES), default=None,
                    help="how the balanced schedule merges splits (default: the library's, SPANATTN_KERNEL_COMBINE)")
    ap.add_argument("--global-rows", type=int, default=0,
                    help="in every sparse case, this many sequences read their whole context")
    args = ap.parse_args()
    global GLOBAL_ROWS
    GLOBAL_ROWS = args.global_rows
    if args.variant:
        kernel.set_tuning(args.variant, 0)
    if args.schedule:
        kernel.set_schedule(args.schedule)
    if args.combine:
        kernel.set_combine(args.combine)
    start = time.time()
    deadline = start + args.budget_s
    batches = [int(x) for x in args.batches.split(",")]
    lengths = [int(x) for x in args.lengths.split(",")]
    fracs = [float(x) for x in args.fractions.split(",")]
    methods = [m for m in args.methods.split(",") if m]
    props = torch.cuda.get_device_properties(0)
    l2_bytes = getattr(props, "L2_cache_size", 50 * 2**20)
    copy = measure_copy_bandwidth()
    copy_bw = copy["best_gbps"] * 1e9
    log(f"{props.name}: copy bandwidth {copy['gbps']} GB/s (read + write), L2 {l2_bytes / 2**20:.0f} MiB")
    doc = dict(command="PYTHONPATH=python python3 " + " ".join(sys.argv),
               date=dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
               device=props.name, torch=torch.__version__, copy_gbps=copy_bw / 1e9, copy=copy,
               shape=dict(Hq=HQ, Hkv=HKV, D=D, dtype=str(DTYPE).removeprefix("torch.")),
               kernel_variant=args.variant or "default", kernel_schedule=kernel.get_schedule(),
               kernel_combine=kernel.get_combine(),
               global_rows=args.global_rows)
    if args.tune:
        doc["tune"] = tune(batches, lengths, l2_bytes, copy_bw)
    else:
        try:
            torch._dynamo.config.cache_size_limit = 256
            torch._dynamo.config.recompile_limit = 256
        except AttributeError:
            pass
        flex = Flex() if "flex" in methods else None
        doc["rows"] = []
        for N in lengths:
            for B in batches:
                dense = B * HKV * N * D * 4
                if dense > 0.85 * torch.cuda.mem_get_info()[0]:
                    log(f"B={B} N={N}: {dense / 1e9:.0f} GB of KV does not fit, skipped")
                    continue
                doc["rows"] += run_config(B, N, fracs, methods, flex, l2_bytes, args.mem_gb * 1e9,
                                          args.seed, copy_bw, deadline)
                if args.out:  # keep partial results if the run is cut short
                    Path(args.out).mkdir(parents=True, exist_ok=True)
                    (Path(args.out) / "results.json").write_text(json.dumps(doc, indent=1))
        if flex:
            doc["flex_block"] = flex.block
            doc["flex_q_rows"] = flex.q_rows
            doc["flex_compile_and_mask_s"] = flex.compile_s
        doc["targets"] = targets(doc["rows"])
    doc["elapsed_s"] = time.time() - start
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "results.json").write_text(json.dumps(doc, indent=1))
        if "rows" in doc:
            write_table(doc, out / "table.md")
            write_chart(doc, out / "chart.png")
    print(json.dumps(doc))
    return 0


if __name__ == "__main__":
    sys.exit(main())

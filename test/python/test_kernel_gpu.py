"""Span decode attention on a GPU: fuzz against the fp32 reference, CUDA graphs, torch.compile.

Skipped without CUDA. On a GPU machine, after building the library:

    python3 cuda/build.py            # or: spanattn build-kernel
    SPANATTN_FUZZ_REPORT=fuzz.json PYTHONPATH=python python3 -m pytest test/python/test_kernel_gpu.py

Pass rule (flashinfer/flash-attention style): with the fp32 reference as the truth, the
kernel's max abs error must be <= 2x the max abs error of PyTorch SDPA run in the same
dtype on the same inputs with the expanded mask, plus a floor of one output-dtype
epsilon at the reference's largest magnitude (so a case where SDPA happens to round
exactly cannot fail on a one-ulp difference). Rows with no kept token must be exactly 0.
Outputs and workspace are poisoned with NaN before every launch.
"""
import json
import os
import random

import pytest
import torch
import torch.nn.functional as F

from spanattn import kernel
from spanattn.kernel import (intervals_to_mask, normalize_intervals, pack_intervals,
                             span_decode_attention, span_decode_attention_reference)

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

I32 = torch.int32


@pytest.fixture(params=list(kernel.SCHEDULES), autouse=True)
def schedule(request):
    """Every test runs under both work schedules (cuda/span_schedule.h)."""
    kernel.set_schedule(request.param)
    yield request.param
    kernel.set_schedule(kernel.DEFAULT_SCHEDULE)


HEADS = [(1, 1), (4, 4), (8, 2), (32, 8), (28, 4), (12, 1), (16, 1), (6, 3), (40, 8), (64, 4)]
LENGTHS = [1, 97, 1025, 32768]


def row_intervals(rng: random.Random, seq_len: int, mode: str) -> list[tuple[int, int]]:
    """Raw intervals for one sequence; may be unsorted and overlapping (normalised later)."""
    if mode == "empty" or seq_len == 0:
        return []
    if mode == "dense":
        return [(0, seq_len)]
    if mode == "single":
        p = rng.randrange(seq_len)
        return [(p, p + 1)]
    if mode == "edges":  # first token, last token, and a run touching the end
        return [(0, 1), (seq_len - 1, seq_len), (max(0, seq_len - 5), seq_len)]
    if mode == "fragmented":  # many 1-3 token intervals
        count = rng.randint(1, min(3000, seq_len))
        starts = rng.sample(range(seq_len), count)
        return [(s, s + rng.randint(1, 3)) for s in starts]
    count = rng.randint(1, 40)
    out = []
    for _ in range(count):
        s = rng.randrange(seq_len)
        out.append((s, s + rng.choice([1, 2, 16, 97, rng.randint(1, 700)])))
    return out


def make_case(seed: int):
    rng = random.Random(seed)
    B = rng.randint(1, 6)
    Hq, Hkv = rng.choice(HEADS)
    D = rng.choice([64, 128])
    dtype = rng.choice([torch.bfloat16, torch.float16])
    N = rng.choice(LENGTHS + [rng.randint(2, 5000)])
    if N == 32768:
        B = min(B, 3)
    lens = [N if rng.random() < 0.4 else rng.randint(0, N) for _ in range(B)]
    modes = [rng.choice(["empty", "dense", "single", "edges", "fragmented", "runs", "runs", "runs"])
             for _ in range(B)]
    rows = [row_intervals(rng, lens[b], modes[b]) for b in range(B)]
    return dict(seed=seed, B=B, Hq=Hq, Hkv=Hkv, D=D, N=N, dtype=dtype, lens=lens, modes=modes, rows=rows)


def poisoned_run(q, k, v, iv, n, lens, scale):
    _, ws_bytes = kernel.plan(q, k, iv)
    out = torch.full_like(q, float("nan"))
    ws = torch.full((max(ws_bytes // 4, 1),), float("nan"), device=q.device)
    return kernel.launch_into(out, q, k, v, iv, n, lens, scale, workspace=ws)


def errors_for(case):
    dev = "cuda"
    g = torch.Generator(device=dev).manual_seed(case["seed"])
    B, Hq, Hkv, D, N, dt = case["B"], case["Hq"], case["Hkv"], case["D"], case["N"], case["dtype"]
    q = torch.randn(B, Hq, D, device=dev, generator=g).to(dt)
    k = torch.randn(B, Hkv, N, D, device=dev, generator=g).to(dt)
    v = torch.randn(B, Hkv, N, D, device=dev, generator=g).to(dt)
    raw_iv, raw_n = pack_intervals(case["rows"], device=dev)
    lens = torch.tensor(case["lens"], dtype=I32, device=dev)
    iv, n = normalize_intervals(raw_iv, raw_n, lens)
    scale = D ** -0.5
    ref = span_decode_attention_reference(q, k, v, raw_iv, raw_n, lens, scale)  # raw: union semantics
    out = poisoned_run(q, k, v, iv, n, lens, scale)
    mask = intervals_to_mask(iv, n, lens, N)
    kept = mask.any(1)
    g_ = Hq // Hkv
    sdpa = F.scaled_dot_product_attention(q[:, :, None], k.repeat_interleave(g_, 1), v.repeat_interleave(g_, 1),
                                          attn_mask=mask[:, None, None, :], scale=scale)[:, :, 0]
    err_k = (out.float() - ref)[kept].abs().max().item() if kept.any() else 0.0
    err_sdpa = (sdpa.float() - ref)[kept].abs().max().item() if kept.any() else 0.0
    floor = torch.finfo(dt).eps * (ref.abs().max().item() if kept.any() else 0.0)
    return dict(err_kernel=err_k, err_sdpa=err_sdpa, floor=floor,
                nan=bool(torch.isnan(out).any().item()),
                empty_rows_zero=bool((out[~kept] == 0).all().item()),
                intervals=int(iv.shape[1]), splits=kernel.plan(q, k, iv)[0])



def random_qkv(seed: int, B: int, Hq: int, Hkv: int, N: int, D: int, dtype=torch.bfloat16):
    """q (B, Hq, D) and a K/V cache (B, Hkv, N, D) of standard normals, seeded."""
    torch.manual_seed(seed)
    q = torch.randn(B, Hq, D, device="cuda", dtype=dtype)
    k = torch.randn(B, Hkv, N, D, device="cuda", dtype=dtype)
    return q, k, torch.randn_like(k)


FUZZ_SEEDS = list(range(int(os.environ.get("SPANATTN_FUZZ_CASES", "120"))))
_report: list[dict] = []


@pytest.mark.parametrize("seed", FUZZ_SEEDS)
def test_fuzz_against_reference(seed, schedule):
    case = make_case(seed)
    r = errors_for(case)
    row = {k: (str(v).removeprefix("torch.") if k == "dtype" else v) for k, v in case.items() if k != "rows"}
    row.update(r, schedule=schedule, passed=(not r["nan"] and r["empty_rows_zero"]
                          and r["err_kernel"] <= 2 * r["err_sdpa"] + r["floor"]))
    _report.append(row)
    path = os.environ.get("SPANATTN_FUZZ_REPORT")
    if path:
        with open(path, "w") as f:
            json.dump(_report, f, indent=1)
    assert not r["nan"], "output has NaN: an element was not written"
    assert r["empty_rows_zero"], "a sequence with no kept token did not get zeros"
    assert r["err_kernel"] <= 2 * r["err_sdpa"] + r["floor"], row


def test_dense_call_matches_sdpa_without_mask():
    q, k, v = random_qkv(0, 4, 32, 8, 8192, 128)
    iv, n = pack_intervals([[(0, 8192)]] * 4, device="cuda")
    lens = torch.full((4,), 8192, dtype=I32, device="cuda")
    out = span_decode_attention(q, k, v, iv, n, lens)
    ref = span_decode_attention_reference(q, k, v, iv, n, lens)
    sdpa = F.scaled_dot_product_attention(q[:, :, None], k, v, enable_gqa=True)[:, :, 0]
    assert (out.float() - ref).abs().max() <= 2 * (sdpa.float() - ref).abs().max() + 2 ** -7 * ref.abs().max()


def test_cuda_graph_replay_follows_new_intervals():
    B, N = 3, 4096
    q, k, v = random_qkv(1, B, 16, 4, N, 64, torch.float16)
    iv = torch.zeros(B, 8, 2, dtype=I32, device="cuda")
    n = torch.zeros(B, dtype=I32, device="cuda")
    lens = torch.full((B,), N, dtype=I32, device="cuda")
    span_decode_attention(q, k, v, iv, n, lens)  # warm-up: load library, cache plan
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph, stream=stream):
        out = span_decode_attention(q, k, v, iv, n, lens)
    for rows in ([[(0, 100)], [(5, 6), (900, 4000)], []], [[(0, N)], [], [(17, 33), (64, 65)]]):
        new_iv, new_n = pack_intervals(rows, max_intervals=8, device="cuda")
        iv.copy_(new_iv)
        n.copy_(new_n)
        graph.replay()
        torch.cuda.synchronize()
        ref = span_decode_attention_reference(q, k, v, iv, n, lens)
        assert (out.float() - ref).abs().max() < 5e-3


def test_torch_compile_inductor_calls_the_op():
    q, k, v = random_qkv(2, 2, 8, 2, 1000, 128)
    iv, n = pack_intervals([[(0, 10), (500, 900)], [(3, 4)]], device="cuda")
    lens = torch.tensor([1000, 1000], dtype=I32, device="cuda")

    def step(q):
        return span_decode_attention(q * 0.5, k, v, iv, n, lens) * 2

    compiled = torch.compile(step, fullgraph=True)
    torch.testing.assert_close(compiled(q), step(q))


def test_one_global_row_among_short_ones_matches_the_reference():
    # the replay's shape of imbalance: one sequence reads everything, the rest a few runs
    B, N = 32, 8192
    q, k, v = random_qkv(4, B, 32, 8, N, 128)
    rows = [[(0, N)]] + [[(0, 5), (N - 300 + b, N - 110)] for b in range(1, B - 1)] + [[]]
    iv, n = pack_intervals(rows, device="cuda")
    lens = torch.full((B,), N, dtype=I32, device="cuda")
    out = span_decode_attention(q, k, v, iv, n, lens)
    ref = span_decode_attention_reference(q, k, v, iv, n, lens)
    assert (out[-1] == 0).all()
    assert (out.float() - ref).abs().max() < 1e-2


def test_unnormalised_overlaps_after_normalize_match_union_reference():
    q, k, v = random_qkv(3, 2, 4, 4, 300, 64)
    raw, rn = pack_intervals([[(50, 80), (0, 60), (70, 75), (299, 400)], [(10, 10), (-5, 3)]], device="cuda")
    lens = torch.tensor([300, 300], dtype=I32, device="cuda")
    iv, n = normalize_intervals(raw, rn, lens)
    out = span_decode_attention(q, k, v, iv, n, lens)
    ref = span_decode_attention_reference(q, k, v, raw, rn, lens)
    assert (out.float() - ref).abs().max() < 1e-2


# ----------------------------------------------------------------------------- one plan a step
def test_one_plan_serves_several_layers_bit_for_bit(schedule):
    """span_plan once, then three "layers" (their own q and K/V caches) with the same intervals
    and lengths: each equals the unplanned call exactly, in eager mode and from a CUDA graph
    whose intervals change between replays."""
    B, N, layers = 8, 3000, 3
    qkv = [random_qkv(10 + i, B, 16, 4, N, 128) for i in range(layers)]
    rows = [[(0, N)], [(0, 7), (2000, 2100)], [], [(5, 6)], [(0, 40), (41, 1500), (2999, 3000)],
            [(100, 2900)], [(0, 3000)], [(17, 18), (19, 20)]]
    iv = torch.zeros(B, 8, 2, dtype=I32, device="cuda")
    n = torch.zeros(B, dtype=I32, device="cuda")
    lens = torch.tensor([N, 2500, 0, 10, N, N, N, 21], dtype=I32, device="cuda")

    def layers_planned():
        plan = kernel.span_plan(qkv[0][0], qkv[0][1], iv, n, lens)
        return [span_decode_attention(q, k, v, iv, n, lens, plan=plan) for q, k, v in qkv]

    def layers_unplanned():
        return [span_decode_attention(q, k, v, iv, n, lens) for q, k, v in qkv]

    def load(r):
        new_iv, new_n = pack_intervals(r, max_intervals=8, device="cuda")
        iv.copy_(new_iv)
        n.copy_(new_n)

    load(rows)
    for got, want in zip(layers_planned(), layers_unplanned()):
        assert torch.equal(got, want)
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph, stream=stream):
        outs = layers_planned()
    for r in (rows[::-1], [[(0, 1)]] * B, rows):
        load(r)
        graph.replay()
        torch.cuda.synchronize()
        for got, want in zip(outs, layers_unplanned()):
            assert torch.equal(got, want)


def test_planned_call_refuses_a_plan_of_another_shape(schedule):
    q, k, v = random_qkv(5, 4, 8, 2, 1000, 64)
    iv, n = pack_intervals([[(0, 10)]] * 4, device="cuda")
    lens = torch.full((4,), 1000, dtype=I32, device="cuda")
    small = kernel.span_plan(q[:1], k[:1], iv[:1], n[:1], lens[:1])
    if schedule == "rows":  # no plan: the placeholder is ignored
        torch.testing.assert_close(span_decode_attention(q, k, v, iv, n, lens, plan=small),
                                   span_decode_attention(q, k, v, iv, n, lens))
        return
    with pytest.raises(kernel.KernelArgumentError, match="plan buffer must be >="):
        span_decode_attention(q, k, v, iv, n, lens, plan=small)


def test_torch_compile_traces_the_plan_op(schedule):
    q, k, v = random_qkv(6, 2, 8, 2, 1000, 128)
    iv, n = pack_intervals([[(0, 10), (500, 900)], [(3, 4)]], device="cuda")
    lens = torch.tensor([1000, 1000], dtype=I32, device="cuda")

    def step(q):
        plan = kernel.span_plan(q, k, iv, n, lens)
        a = span_decode_attention(q * 0.5, k, v, iv, n, lens, plan=plan)
        return span_decode_attention(a, k, v, iv, n, lens, plan=plan)

    compiled = torch.compile(step, fullgraph=True)
    torch.testing.assert_close(compiled(q), step(q))


# ----------------------------------------------------------------------------- fused combine
@pytest.fixture
def fused():
    kernel.set_combine("fused")
    yield
    kernel.set_combine(kernel.DEFAULT_COMBINE)


def _inputs(case):
    g = torch.Generator(device="cuda").manual_seed(case["seed"])
    B, Hq, Hkv, D, N, dt = case["B"], case["Hq"], case["Hkv"], case["D"], case["N"], case["dtype"]
    q = torch.randn(B, Hq, D, device="cuda", generator=g).to(dt)
    k = torch.randn(B, Hkv, N, D, device="cuda", generator=g).to(dt)
    v = torch.randn(B, Hkv, N, D, device="cuda", generator=g).to(dt)
    raw_iv, raw_n = pack_intervals(case["rows"], device="cuda")
    lens = torch.tensor(case["lens"], dtype=I32, device="cuda")
    iv, n = normalize_intervals(raw_iv, raw_n, lens)
    return q, k, v, iv, n, lens


@pytest.mark.parametrize("seed", FUZZ_SEEDS[:40])
def test_fused_combine_gives_the_combine_kernels_bits(seed, schedule):
    """The split kernel's last block merges in the combine kernel's order: the same output,
    bit for bit, on the fuzz cases; twice in a row, so the counters it resets are checked too."""
    q, k, v, iv, n, lens = _inputs(make_case(seed))
    scale = q.shape[-1] ** -0.5
    kernel.set_combine("kernel")
    want = poisoned_run(q, k, v, iv, n, lens, scale)
    kernel.set_combine("fused")
    try:
        for _ in range(2):
            got = poisoned_run(q, k, v, iv, n, lens, scale)
            assert torch.equal(got, want), (seed, (got.float() - want.float()).abs().max().item())
    finally:
        kernel.set_combine(kernel.DEFAULT_COMBINE)


def test_fused_combine_with_one_plan_a_step_in_a_cuda_graph(schedule, fused):
    """Fused combine and step plan together, three layers a step, from a CUDA graph whose
    intervals change between replays: equal to the reference, empty rows exactly zero."""
    B, N = 6, 2500
    qkv = [random_qkv(20 + i, B, 32, 8, N, 128) for i in range(3)]
    iv = torch.zeros(B, 8, 2, dtype=I32, device="cuda")
    n = torch.zeros(B, dtype=I32, device="cuda")
    lens = torch.tensor([N, N, 1000, 0, N, 7], dtype=I32, device="cuda")

    def layers():
        plan = kernel.span_plan(qkv[0][0], qkv[0][1], iv, n, lens)
        return [span_decode_attention(q, k, v, iv, n, lens, plan=plan) for q, k, v in qkv]

    layers()  # warm-up outside the graph
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph, stream=stream):
        outs = layers()
    for rows in ([[(0, N)], [(3, 9), (100, 2400)], [(0, 1000)], [], [(N - 1, N)], [(0, 7)]],
                 [[(0, 5)], [(0, N)], [], [], [(0, N)], []]):
        new_iv, new_n = pack_intervals(rows, max_intervals=8, device="cuda")
        iv.copy_(new_iv)
        n.copy_(new_n)
        graph.replay()
        torch.cuda.synchronize()
        for (q, k, v), out in zip(qkv, outs):
            ref = span_decode_attention_reference(q, k, v, iv, n, lens)
            kept = intervals_to_mask(iv, n, lens, N).any(1)
            assert (out[~kept] == 0).all()
            assert (out.float() - ref).abs().max() < 1e-2

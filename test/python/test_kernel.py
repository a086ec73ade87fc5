"""Span decode attention on the CPU: the reference, interval normalisation, argument checks.

The CUDA side is tested by test_kernel_gpu.py (runs on a GPU machine, skipped here).
"""
import random
import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from spanattn import kernel
from spanattn.kernel import (KernelArgumentError, KernelLibraryError, check_inputs,
                             intervals_to_mask, normalize_intervals, pack_intervals,
                             span_decode_attention, span_decode_attention_reference)

I32 = torch.int32


def random_rows(rng: random.Random, batch: int, max_len: int, max_count: int) -> list[list[tuple[int, int]]]:
    """Unsorted, overlapping, partly out-of-range intervals (what normalisation must clean)."""
    rows = []
    for _ in range(batch):
        row = []
        for _ in range(rng.randint(0, max_count)):
            s = rng.randint(-3, max_len + 2)
            row.append((s, s + rng.choice([0, 1, 1, 2, rng.randint(1, max_len)])))
        rows.append(row)
    return rows


def make_inputs(seed: int, B=3, Hq=8, Hkv=2, N=40, D=16, dtype=torch.float32, max_count=6):
    rng = random.Random(seed)
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(B, Hq, D, generator=g).to(dtype)
    k = torch.randn(B, Hkv, N, D, generator=g).to(dtype)
    v = torch.randn(B, Hkv, N, D, generator=g).to(dtype)
    iv, n = pack_intervals(random_rows(rng, B, N, max_count), max_intervals=max_count)
    lens = torch.tensor([rng.randint(0, N) for _ in range(B)], dtype=I32)
    return q, k, v, iv, n, lens


def python_mask(iv, n, lens, N):
    out = torch.zeros(iv.shape[0], N, dtype=torch.bool)
    for b in range(iv.shape[0]):
        for i in range(int(n[b])):
            s, e = int(iv[b, i, 0]), int(iv[b, i, 1])
            for p in range(max(s, 0), min(e, int(lens[b]), N)):
                out[b, p] = True
    return out


@pytest.mark.parametrize("seed", range(20))
def test_mask_matches_brute_force(seed):
    _, _, _, iv, n, lens = make_inputs(seed)
    assert torch.equal(intervals_to_mask(iv, n, lens, 40), python_mask(iv, n, lens, 40))


@pytest.mark.parametrize("seed", range(30))
def test_normalize_is_sorted_disjoint_and_keeps_the_union(seed):
    _, _, _, iv, n, lens = make_inputs(seed, B=4, max_count=9)
    niv, nn = normalize_intervals(iv, n, lens)
    assert niv.dtype == I32 and nn.dtype == I32 and niv.shape == iv.shape
    assert torch.equal(intervals_to_mask(niv, nn, lens, 40), python_mask(iv, n, lens, 40))
    for b in range(iv.shape[0]):
        row = niv[b, : int(nn[b])].tolist()
        assert all(0 <= s < e <= int(lens[b]) for s, e in row), row
        # strictly separated: touching intervals were merged
        assert all(row[i][1] < row[i + 1][0] for i in range(len(row) - 1)), row
        assert niv[b, int(nn[b]):].abs().sum() == 0


def test_normalize_examples():
    iv = torch.tensor([[[5, 9], [0, 3], [2, 4], [9, 9], [12, 20], [-3, 1]],
                       [[0, 100], [7, 7], [0, 0], [0, 0], [0, 0], [0, 0]]], dtype=I32)
    niv, nn = normalize_intervals(iv, torch.tensor([6, 1], dtype=I32), torch.tensor([15, 50], dtype=I32))
    assert nn.tolist() == [3, 1]
    assert niv[0, :3].tolist() == [[0, 4], [5, 9], [12, 15]]
    assert niv[1, :1].tolist() == [[0, 50]]
    # touching intervals merge; an empty list stays empty
    niv, nn = normalize_intervals(torch.tensor([[[3, 5], [0, 3]], [[1, 2], [4, 6]]], dtype=I32),
                                  torch.tensor([2, 0], dtype=I32), torch.tensor([10, 10], dtype=I32))
    assert nn.tolist() == [1, 0] and niv[0, 0].tolist() == [0, 5]


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("Hq,Hkv", [(4, 4), (8, 2), (6, 1)])
def test_reference_matches_sdpa_with_expanded_mask(seed, Hq, Hkv):
    q, k, v, iv, n, lens = make_inputs(seed, Hq=Hq, Hkv=Hkv)
    ref = span_decode_attention_reference(q, k, v, iv, n, lens, scale=0.3)
    mask = intervals_to_mask(iv, n, lens, k.shape[2])
    sdpa = F.scaled_dot_product_attention(q[:, :, None], k, v, attn_mask=mask[:, None, None, :],
                                          scale=0.3, enable_gqa=True)[:, :, 0]
    kept = mask.any(1)
    torch.testing.assert_close(ref[kept], sdpa[kept], rtol=1e-5, atol=1e-5)
    assert torch.all(ref[~kept] == 0)


def test_reference_single_token_returns_that_value_row():
    q, k, v, _, _, _ = make_inputs(0, B=2, N=30)
    iv, n = pack_intervals([[(17, 18)], [(0, 1)]])
    out = span_decode_attention_reference(q, k, v, iv, n, torch.tensor([30, 30], dtype=I32))
    g = q.shape[1] // k.shape[1]
    torch.testing.assert_close(out[0], v[0, :, 17].repeat_interleave(g, 0))
    torch.testing.assert_close(out[1], v[1, :, 0].repeat_interleave(g, 0))


def test_reference_is_invariant_under_normalisation():
    q, k, v, iv, n, lens = make_inputs(7, B=4, max_count=8)
    niv, nn = normalize_intervals(iv, n, lens)
    torch.testing.assert_close(span_decode_attention_reference(q, k, v, iv, n, lens),
                               span_decode_attention_reference(q, k, v, niv, nn, lens))


def test_cpu_op_is_the_reference_and_passes_opcheck():
    q, k, v, iv, n, lens = make_inputs(3, D=64)
    niv, nn = normalize_intervals(iv, n, lens)
    out = span_decode_attention(q, k, v, niv, nn, lens)
    torch.testing.assert_close(out, span_decode_attention_reference(q, k, v, niv, nn, lens))
    torch.library.opcheck(torch.ops.spanattn.span_decode_attention.default,
                          (q, k, v, niv, nn, lens, 0.125))


def test_op_traces_under_torch_compile():
    q, k, v, iv, n, lens = make_inputs(4, D=64)
    niv, nn = normalize_intervals(iv, n, lens)

    def step(q, k, v, iv, n, lens):
        return span_decode_attention(q * 2, k, v, iv, n, lens) + 1

    compiled = torch.compile(step, backend="aot_eager", fullgraph=True)
    torch.testing.assert_close(compiled(q, k, v, niv, nn, lens), step(q, k, v, niv, nn, lens))


# ----------------------------------------------------------------------------- checks
def kernel_inputs(**over):
    x = dict(q=torch.zeros(2, 8, 128, dtype=torch.bfloat16),
             k=torch.zeros(2, 2, 64, 128, dtype=torch.bfloat16),
             v=torch.zeros(2, 2, 64, 128, dtype=torch.bfloat16),
             iv=torch.zeros(2, 3, 2, dtype=I32), n=torch.zeros(2, dtype=I32),
             lens=torch.zeros(2, dtype=I32))
    x.update(over)
    return x


def expect_error(message: str, **over):
    x = kernel_inputs(**over)
    with pytest.raises(KernelArgumentError, match=re.escape(message)):
        check_inputs(x["q"], x["k"], x["v"], x["iv"], x["n"], x["lens"], for_kernel=True)


def test_kernel_inputs_pass_checks():
    x = kernel_inputs()
    check_inputs(x["q"], x["k"], x["v"], x["iv"], x["n"], x["lens"], for_kernel=True)


def test_argument_messages_say_required_and_given():
    bf = torch.bfloat16
    expect_error("head_dim must be 64 or 128 (got 96)", q=torch.zeros(2, 8, 96, dtype=bf),
                 k=torch.zeros(2, 2, 64, 96, dtype=bf), v=torch.zeros(2, 2, 64, 96, dtype=bf))
    expect_error("q dtype must be bfloat16 or float16 (got torch.float32)", q=torch.zeros(2, 8, 128))
    expect_error("k_cache dtype must match q (torch.bfloat16) (got torch.float16)",
                 k=torch.zeros(2, 2, 64, 128, dtype=torch.float16))
    expect_error("Hq must be a multiple of Hkv (got Hq=8, Hkv=3)",
                 k=torch.zeros(2, 3, 64, 128, dtype=bf), v=torch.zeros(2, 3, 64, 128, dtype=bf))
    expect_error("k_cache must be (B=2, Hkv, Nmax, D=128) like q (got shape (3, 2, 64, 128))",
                 k=torch.zeros(3, 2, 64, 128, dtype=bf))
    expect_error("v_cache must have k_cache's shape (2, 2, 64, 128) (got (2, 2, 32, 128))",
                 v=torch.zeros(2, 2, 32, 128, dtype=bf))
    expect_error("q must be (B, Hq, D) (got shape (2, 8, 1, 128))", q=torch.zeros(2, 8, 1, 128, dtype=bf))
    expect_error("intervals dtype must be int32 (got torch.int64)", iv=torch.zeros(2, 3, 2, dtype=torch.int64))
    expect_error("intervals must be (B=2, I, 2) (got shape (2, 3))", iv=torch.zeros(2, 3, dtype=I32))
    expect_error("seq_lens must be (2,) (got shape (2, 1))", lens=torch.zeros(2, 1, dtype=I32))
    expect_error("k_cache must be contiguous",
                 k=torch.zeros(2, 2, 128, 64, dtype=bf).transpose(2, 3))
    expect_error("intervals per sequence must be <= 8192 (got 8193)", iv=torch.zeros(2, 8193, 2, dtype=I32))
    expect_error("n_intervals must be on cpu like q (got meta)", n=torch.zeros(2, dtype=I32, device="meta"))


def test_public_entry_rejects_bad_scale():
    q, k, v, iv, n, lens = make_inputs(0)
    with pytest.raises(KernelArgumentError, match=re.escape("scale must be a positive finite number (got -1.0)")):
        span_decode_attention(q, k, v, iv, n, lens, scale=-1.0)


def test_missing_library_says_how_to_build(monkeypatch, tmp_path):
    monkeypatch.setenv(kernel.LIBRARY_ENV, str(tmp_path / "nope.so"))
    monkeypatch.setattr(kernel, "_lib", None)
    with pytest.raises(KernelLibraryError, match="spanattn build-kernel"):
        kernel.load_library()


def test_python_constants_mirror_the_header():
    header = (kernel.REPO_ROOT / "cuda" / "span_decode.h").read_text()
    value = lambda name: int(re.search(rf"#define {name} (\d+)", header).group(1))  # noqa: E731
    assert value("SPANATTN_ABI_VERSION") == kernel.ABI_VERSION
    assert value("SPANATTN_MAX_INTERVALS") == kernel.MAX_INTERVALS
    assert "SPANATTN_BF16 = 0" in header and "SPANATTN_FP16 = 1" in header
    assert kernel.KERNEL_DTYPES == {torch.bfloat16: 0, torch.float16: 1}


@pytest.mark.skipif(not kernel.DEFAULT_LIBRARY.is_file(), reason="libspanattn.so not built (spanattn build-kernel)")
def test_built_library_loads_and_reports_errors_through_the_abi(monkeypatch):
    """Runs in CI after `spanattn build-kernel`: the C ABI needs no GPU for these calls."""
    monkeypatch.delenv(kernel.LIBRARY_ENV, raising=False)
    monkeypatch.setattr(kernel, "_lib", None)
    lib = kernel.load_library()
    assert lib.spanattn_abi_version() == kernel.ABI_VERSION
    with pytest.raises(KernelArgumentError, match=re.escape("variant must be 0 (automatic), 1, 3 or 5 (got 9)")):
        kernel.set_tuning(variant=9)
    kernel.set_tuning(0, 0)
    assert kernel.get_combine() == kernel.DEFAULT_COMBINE == "fused"
    kernel.set_combine("fused")
    assert kernel.get_combine() == "fused"
    kernel.set_combine("kernel")
    with pytest.raises(KernelArgumentError, match="combine must be one of kernel, fused"):
        kernel.set_combine("both")
    with pytest.raises(KernelArgumentError, match=re.escape("combine must be 0 (combine kernel) or 1 (fused) (got 2)")):
        kernel._check_status(lib, lib.spanattn_set_combine(2), "set_combine")


@pytest.mark.skipif(not kernel.DEFAULT_LIBRARY.is_file(), reason="libspanattn.so not built (spanattn build-kernel)")
def test_the_combine_comes_from_the_environment_when_the_library_loads(monkeypatch):
    monkeypatch.delenv(kernel.LIBRARY_ENV, raising=False)
    monkeypatch.setattr(kernel, "_lib", None)
    monkeypatch.setenv(kernel.COMBINE_ENV, "kernel")  # not the default (fused)
    try:
        assert kernel.get_combine() == "kernel"
        monkeypatch.setattr(kernel, "_lib", None)
        monkeypatch.setenv(kernel.COMBINE_ENV, "sometimes")
        with pytest.raises(KernelArgumentError, match="SPANATTN_KERNEL_COMBINE='sometimes': expected one of kernel, fused"):
            kernel.load_library()
    finally:
        monkeypatch.delenv(kernel.COMBINE_ENV)
        monkeypatch.setattr(kernel, "_lib", None)
        kernel.load_library()


@pytest.mark.skipif(not kernel.DEFAULT_LIBRARY.is_file(), reason="libspanattn.so not built (spanattn build-kernel)")
def test_ctypes_signatures_match_the_header_prototypes(monkeypatch):
    """A ctypes argtypes list one short of the C prototype would pass garbage on the GPU: count
    every exported function's parameters in span_decode.h against what kernel.py declares."""
    monkeypatch.delenv(kernel.LIBRARY_ENV, raising=False)
    monkeypatch.setattr(kernel, "_lib", None)
    lib = kernel.load_library()
    header = (kernel.REPO_ROOT / "cuda" / "span_decode.h").read_text()
    header = re.sub(r"/\*.*?\*/", "", header, flags=re.S)
    protos = dict(re.findall(r"^(?:int|const char\*) (spanattn_\w+)\(([^)]*)\);", header, flags=re.M))
    assert {"spanattn_span_plan", "spanattn_span_decode_planned", "spanattn_plan_sizes"} <= set(protos)
    for name, params in protos.items():
        count = 0 if params.strip() in ("", "void") else params.count(",") + 1
        declared = getattr(lib, name).argtypes
        assert declared is not None or count == 0, f"{name}: no argtypes in kernel.py"
        assert len(declared or []) == count, f"{name}: {len(declared or [])} argtypes, the header has {count}"


def test_plan_placeholder_on_cpu_changes_nothing():
    q, k, v, iv, n, lens = make_inputs(3)
    plan = kernel.span_plan(q, k, iv, n, lens)
    assert plan.dtype == torch.int32 and plan.dim() == 1
    torch.testing.assert_close(span_decode_attention(q, k, v, iv, n, lens, plan=plan),
                               span_decode_attention(q, k, v, iv, n, lens), rtol=0, atol=0)
    with pytest.raises(KernelArgumentError, match="plan must be span_plan's 1-D int32 tensor"):
        span_decode_attention(q, k, v, iv, n, lens, plan=plan.float())

    def step(q):
        p = kernel.span_plan(q, k, iv, n, lens)
        return span_decode_attention(span_decode_attention(q, k, v, iv, n, lens, plan=p), k, v, iv, n, lens, plan=p)

    torch.testing.assert_close(torch.compile(step, fullgraph=True)(q), step(q))


def test_a_compiled_span_plan_is_retraced_when_the_schedule_changes(monkeypatch):
    """The plan's size depends on the schedule: a graph traced under `rows` (a 1-element
    placeholder) reused under `balanced` failed its size check on the GPU. span_plan passes the
    schedule to its op, and torch.compile guards on it."""
    from torch._dynamo.testing import CompileCounter
    q, k, v, iv, n, lens = make_inputs(2)
    seen = []
    real = kernel._plan_numel
    monkeypatch.setattr(kernel, "_plan_numel", lambda *a: seen.append(a[-1]) or real(*a))
    counter = CompileCounter()
    step = torch.compile(lambda q: kernel.span_plan(q, k, iv, n, lens) + 1, backend=counter, fullgraph=True)
    torch._dynamo.reset()
    monkeypatch.setattr(kernel, "_schedule_code", kernel.SCHEDULES["rows"])
    step(q)
    step(q)
    assert counter.frame_count == 1
    monkeypatch.setattr(kernel, "_schedule_code", kernel.SCHEDULES["balanced"])
    step(q)
    assert counter.frame_count == 2, "the graph traced under rows was reused under balanced"
    assert kernel.SCHEDULES["rows"] in seen and kernel.SCHEDULES["balanced"] in seen
    torch._dynamo.reset()


# ----------------------------------------------------------------------------- balanced schedule
needs_library = pytest.mark.skipif(not kernel.DEFAULT_LIBRARY.is_file(),
                                   reason="libspanattn.so not built (spanattn build-kernel)")


def kept_counts(rows, seq_lens):
    return [sum(max(min(e, n) - max(s, 0), 0) for s, e in row) for row, n in zip(rows, seq_lens)]


def check_balanced_plan(rows, seq_lens, heads_q, heads_kv, max_len, splits):
    """Every (sequence, unit) is tiled once, in order, by its own consecutive blocks."""
    iv, n = pack_intervals(rows, max_intervals=max(1, max(len(r) for r in rows)))
    lens = torch.tensor(seq_lens, dtype=I32)
    plan = kernel.balanced_schedule_host(iv, n, lens, heads_q, heads_kv, max_len, splits)
    B = len(rows)
    group = heads_q // heads_kv
    units = heads_kv * -(-group // 8)
    pairs = B * units
    assert plan["grid_blocks"] == splits * pairs + pairs
    kept = kept_counts(rows, [min(max(x, 0), max_len) for x in seq_lens])
    block_map, pieces = plan["map"].tolist(), plan["pieces"].tolist()
    row_start, row_n = plan["row_start"].tolist(), plan["row_n"].tolist()
    used = 0
    for b in range(B):
        assert row_n[b] >= 1, (b, row_n[b], kept[b])  # a row that keeps nothing still gets one block: it writes the zeros
        assert row_n[b] <= max(1, -(-kept[b] // 16))
        assert row_start[b] == used
        for u in range(units):
            first = row_start[b] + u * row_n[b]
            end = 0
            for j in range(row_n[b]):
                assert block_map[first + j] == [b, u, j, row_n[b]]
                lo, hi = pieces[first + j]
                assert lo == end and (hi > lo or kept[b] == 0)  # contiguous, empty only for an empty row
                end = hi
            assert end == kept[b]
        used += units * row_n[b]
    assert used <= plan["grid_blocks"]
    assert all(e[0] == -1 for e in block_map[used:])
    return plan, kept, units


@needs_library
def test_balanced_schedule_tiles_every_sequence_once(monkeypatch):
    monkeypatch.setattr(kernel, "_lib", None)
    rng = random.Random(7)
    for _ in range(60):
        B = rng.randint(1, 40)
        max_len = rng.choice([1, 17, 300, 4096])
        heads_kv = rng.choice([1, 2, 8])
        heads_q = heads_kv * rng.choice([1, 4, 12])
        rows = random_rows(rng, B, max_len, 6)
        rows = [[(s, e) for s, e in r if e > s] for r in rows]  # unnormalised but valid pairs
        seq_lens = [rng.choice([0, rng.randint(0, max_len), max_len, max_len + 5]) for _ in range(B)]
        check_balanced_plan(rows, seq_lens, heads_q, heads_kv, max_len, rng.choice([1, 2, 3, 8]))


@needs_library
def test_balanced_schedule_is_the_rows_schedule_when_dense_and_evens_out_a_global_row(monkeypatch):
    monkeypatch.setattr(kernel, "_lib", None)
    B, L, splits = 32, 8192, 3  # the replay's llama-8b shape: S = 3 for it on an H200
    plan, kept, units = check_balanced_plan([[(0, L)]] * B, [L] * B, 32, 8, L, splits)
    assert plan["row_n"].tolist() == [splits] * B  # dense: the same blocks as the rows schedule

    # one row reads its whole context, the others ~190 tokens each (replay 8K / batch 32)
    rows = [[(0, L)]] + [[(0, 5), (L - 300, L - 110)]] * (B - 1)
    plan, kept, units = check_balanced_plan(rows, [L] * B, 32, 8, L, splits)
    lengths = [hi - lo for (b, *_), (lo, hi) in zip(plan["map"].tolist(), plan["pieces"].tolist()) if b >= 0]
    rows_schedule_longest = -(-L // splits)  # 2731 tokens in each of the global row's blocks
    work_blocks = splits * B * units
    average = sum(kept) * units / work_blocks
    assert max(lengths) <= 2 * average + 1 < rows_schedule_longest / 4
    assert plan["row_n"][0] > 10 * plan["row_n"][1]


@needs_library
def test_schedule_is_chosen_by_name_or_environment(monkeypatch):
    monkeypatch.delenv(kernel.SCHEDULE_ENV, raising=False)
    monkeypatch.setattr(kernel, "_lib", None)
    assert kernel.get_schedule() == "balanced"  # the default
    kernel.set_schedule("rows")
    assert kernel.get_schedule() == "rows"
    with pytest.raises(KernelArgumentError, match="schedule must be one of rows, balanced"):
        kernel.set_schedule("fast")
    monkeypatch.setattr(kernel, "_lib", None)  # a reload sets the default again
    assert kernel.get_schedule() == "balanced"
    monkeypatch.setattr(kernel, "_lib", None)
    monkeypatch.setenv(kernel.SCHEDULE_ENV, "rows")
    assert kernel.get_schedule() == "rows"
    kernel.set_schedule(kernel.DEFAULT_SCHEDULE)
    monkeypatch.setattr(kernel, "_lib", None)
    monkeypatch.setenv(kernel.SCHEDULE_ENV, "nope")
    with pytest.raises(KernelArgumentError, match="SPANATTN_KERNEL_SCHEDULE='nope'"):
        kernel.load_library()
    monkeypatch.setattr(kernel, "_lib", None)

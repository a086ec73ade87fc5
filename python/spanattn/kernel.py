"""Span decode attention: the CUDA op, its fp32 PyTorch reference, and interval normalisation.

One new query token per sequence attends to the KV-cache positions listed in that
sequence's intervals (DESIGN §4):

    out = span_decode_attention(q, k_cache, v_cache, intervals, n_intervals, seq_lens, scale)
    #  q (B, Hq, D) · k_cache, v_cache (B, Hkv, Nmax, D) · intervals (B, I, 2) int32 [start, end)
    #  n_intervals (B,) int32 · seq_lens (B,) int32  ->  out (B, Hq, D), dtype of q

CUDA tensors run cuda/build/libspanattn.so through ctypes (build it with
`spanattn build-kernel`; SPANATTN_KERNEL_LIB overrides the path). SPANATTN_KERNEL_SCHEDULE
(`balanced`, the default, or `rows`; see cuda/span_schedule.h) picks how the kernel splits
the work when the library loads; `set_schedule` changes it later. SPANATTN_KERNEL_COMBINE
(`fused`, the default, or `kernel`) and `set_combine` pick how the balanced schedule merges
the splits. `span_plan` makes the balanced schedule's plan once for several calls with the
same intervals (the layers of a decode step): pass it as `plan=`. CPU tensors run
`span_decode_attention_reference`, which is also the oracle of every test. The op is
registered as `torch.ops.spanattn.span_decode_attention` with a fake implementation, so
torch.compile traces through it and CUDA graphs capture it (the library never syncs
with the host and launches on the current stream).

Intervals are normalised: sorted, disjoint, non-empty, inside [0, seq_len). Run
`normalize_intervals` (device-side, no host sync) on anything else. A sequence with no
kept token gets zeros. Tiny CPU example:

    PYTHONPATH=python python -c "import torch; from spanattn.kernel import *; \
        q, k = torch.randn(1, 4, 64), torch.randn(1, 2, 10, 64); \
        iv, n = pack_intervals([[(0, 3), (7, 9)]]); \
        print(span_decode_attention(q, k, k, iv, n, torch.tensor([10], dtype=torch.int32)).shape)"
"""
from __future__ import annotations

import ctypes
import math
import os
import threading
from pathlib import Path
from typing import Sequence

import torch
from torch import Tensor

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_LIBRARY = REPO_ROOT / "cuda" / "build" / "libspanattn.so"
LIBRARY_ENV = "SPANATTN_KERNEL_LIB"
SCHEDULE_ENV = "SPANATTN_KERNEL_SCHEDULE"
SCHEDULES = {"rows": 0, "balanced": 1}
COMBINE_ENV = "SPANATTN_KERNEL_COMBINE"
# how the balanced schedule merges a sequence's splits: a combine kernel, or fused into the
# split kernel (its last block a unit merges). Fused is the default since session 7 measured it on
# the H200: the same outputs, the llama-long graph step at batch 128 0.623 -> 0.596 ms sparse
# (with the step plan; benchmarks/README.md, "Session 7")
COMBINES = {"kernel": 0, "fused": 1}
DEFAULT_COMBINE = "fused"
# same numerics as rows; 1.99x vs 1.68x sparse/dense on the llama-8b replay (benchmarks/README.md, "Session 5")
DEFAULT_SCHEDULE = "balanced"

# Mirrors of cuda/span_decode.h (a test checks they agree).
ABI_VERSION = 3
MAX_INTERVALS = 8192
HEAD_DIMS = (64, 128)
KERNEL_DTYPES = {torch.bfloat16: 0, torch.float16: 1}
REFERENCE_DTYPES = (torch.float32, torch.bfloat16, torch.float16)


class KernelArgumentError(ValueError):
    """The inputs break the op's contract; the message says what was required and given."""


class KernelLibraryError(RuntimeError):
    """libspanattn.so is missing, stale, or a CUDA call inside it failed."""


# ----------------------------------------------------------------------------- checks
def _shape(t: Tensor) -> str:
    return "(" + ", ".join(str(s) for s in t.shape) + ")"


def check_inputs(q: Tensor, k_cache: Tensor, v_cache: Tensor, intervals: Tensor,
                 n_intervals: Tensor, seq_lens: Tensor, *, for_kernel: bool) -> None:
    """Raise KernelArgumentError unless the inputs fit the op (the CUDA kernel if for_kernel)."""

    def need(ok: bool, message: str) -> None:
        if not ok:
            raise KernelArgumentError(message)

    need(q.dim() == 3, f"q must be (B, Hq, D) (got shape {_shape(q)})")
    B, Hq, D = q.shape
    need(k_cache.dim() == 4, f"k_cache must be (B, Hkv, Nmax, D) (got shape {_shape(k_cache)})")
    Hkv, Nmax = k_cache.shape[1], k_cache.shape[2]
    need(k_cache.shape[0] == B and k_cache.shape[3] == D,
         f"k_cache must be (B={B}, Hkv, Nmax, D={D}) like q (got shape {_shape(k_cache)})")
    need(v_cache.shape == k_cache.shape,
         f"v_cache must have k_cache's shape {_shape(k_cache)} (got {_shape(v_cache)})")
    need(Hkv >= 1 and Hq % Hkv == 0, f"Hq must be a multiple of Hkv (got Hq={Hq}, Hkv={Hkv})")
    allowed = tuple(KERNEL_DTYPES) if for_kernel else REFERENCE_DTYPES
    names = " or ".join(str(d).removeprefix("torch.") for d in allowed)
    need(q.dtype in allowed, f"q dtype must be {names} (got {q.dtype})")
    for name, t in (("k_cache", k_cache), ("v_cache", v_cache)):
        need(t.dtype == q.dtype, f"{name} dtype must match q ({q.dtype}) (got {t.dtype})")
    need(intervals.dim() == 3 and intervals.shape[0] == B and intervals.shape[2] == 2,
         f"intervals must be (B={B}, I, 2) (got shape {_shape(intervals)})")
    need(intervals.shape[1] <= MAX_INTERVALS,
         f"intervals per sequence must be <= {MAX_INTERVALS} (got {intervals.shape[1]})")
    for name, t in (("n_intervals", n_intervals), ("seq_lens", seq_lens)):
        need(t.shape == (B,), f"{name} must be ({B},) (got shape {_shape(t)})")
    for name, t in (("intervals", intervals), ("n_intervals", n_intervals), ("seq_lens", seq_lens)):
        need(t.dtype == torch.int32, f"{name} dtype must be int32 (got {t.dtype})")
    for name, t in (("k_cache", k_cache), ("v_cache", v_cache), ("intervals", intervals),
                    ("n_intervals", n_intervals), ("seq_lens", seq_lens)):
        need(t.device == q.device, f"{name} must be on {q.device} like q (got {t.device})")
    if not for_kernel:
        return
    need(D in HEAD_DIMS, f"head_dim must be 64 or 128 (got {D})")
    for name, t in (("q", q), ("k_cache", k_cache), ("v_cache", v_cache), ("intervals", intervals),
                    ("n_intervals", n_intervals), ("seq_lens", seq_lens)):
        need(t.is_contiguous(), f"{name} must be contiguous (got strides {tuple(t.stride())})")
    if torch.compiler.is_compiling():  # fake tensors have no address; checked again at run time
        return
    for name, t in (("q", q), ("k_cache", k_cache), ("v_cache", v_cache)):
        need(t.numel() == 0 or t.data_ptr() % 16 == 0,
             f"{name} must be 16-byte aligned (got address % 16 = {t.data_ptr() % 16})")


# ----------------------------------------------------------------------------- intervals
def pack_intervals(rows: Sequence[Sequence[tuple[int, int]]], max_intervals: int | None = None,
                   device: torch.device | str = "cpu") -> tuple[Tensor, Tensor]:
    """[[(start, end), ...] per sequence] -> intervals (B, I, 2) int32, n_intervals (B,) int32."""
    width = max_intervals if max_intervals is not None else max([len(r) for r in rows] + [1])
    intervals = torch.zeros(len(rows), width, 2, dtype=torch.int32)
    for b, row in enumerate(rows):
        if len(row) > width:
            raise KernelArgumentError(f"sequence {b} has {len(row)} intervals (max {width})")
        if row:
            intervals[b, : len(row)] = torch.tensor(row, dtype=torch.int32).view(-1, 2)
    n = torch.tensor([len(r) for r in rows], dtype=torch.int32)
    return intervals.to(device), n.to(device)


def normalize_intervals(intervals: Tensor, n_intervals: Tensor, seq_lens: Tensor) -> tuple[Tensor, Tensor]:
    """Clip to [0, seq_len), drop empty entries, sort, merge overlapping or touching ones.

    Fully vectorised (no .item(), no host sync), so it runs inside a CUDA-graph-captured
    decode step. Returns (intervals (B, I, 2) int32, n_intervals (B,) int32); entries past
    n_intervals are zeroed.
    """
    B, I, _ = intervals.shape
    dev = intervals.device
    big = torch.iinfo(torch.int32).max
    limit = seq_lens.clamp(min=0).to(torch.int32)[:, None]  # (B, 1)
    start = intervals[..., 0].clamp(min=0)
    end = torch.minimum(intervals[..., 1], limit)
    live = (torch.arange(I, device=dev)[None, :] < n_intervals[:, None]) & (end > start)
    start = torch.where(live, start, big)
    end = torch.where(live, end, big)
    start, order = torch.sort(start, dim=1, stable=True)
    end = torch.gather(end, 1, order)
    live = start != big
    # A sorted entry opens a new merged interval when it starts after every earlier end.
    reach = torch.cummax(end, dim=1).values
    prev_reach = torch.cat([torch.full((B, 1), -1, dtype=reach.dtype, device=dev), reach[:, :-1]], 1)
    opens = live & (start > prev_reach)
    slot = torch.where(live, torch.cumsum(opens.to(torch.int32), 1) - 1, I).to(torch.int64)
    merged_start = torch.full((B, I + 1), big, dtype=torch.int32, device=dev)
    merged_start = merged_start.scatter_reduce(1, slot, start, reduce="amin")
    merged_end = torch.zeros((B, I + 1), dtype=torch.int32, device=dev)
    merged_end = merged_end.scatter_reduce(1, slot, end, reduce="amax")
    count = opens.sum(1, dtype=torch.int32)
    used = torch.arange(I, device=dev)[None, :] < count[:, None]
    out = torch.stack([merged_start[:, :I], merged_end[:, :I]], -1)
    return torch.where(used[..., None], out, 0).to(torch.int32), count


def intervals_to_mask(intervals: Tensor, n_intervals: Tensor, seq_lens: Tensor, max_len: int) -> Tensor:
    """(B, max_len) bool: True where a position lies in one of the sequence's intervals.

    Union semantics (overlaps are harmless here), clipped to [0, seq_len).
    """
    B, I, _ = intervals.shape
    dev = intervals.device
    limit = seq_lens.clamp(0, max_len).to(torch.int64)[:, None]
    start = intervals[..., 0].to(torch.int64).clamp(min=0)
    start = torch.minimum(start, limit)
    end = torch.minimum(intervals[..., 1].to(torch.int64), limit).clamp(min=0)
    live = (torch.arange(I, device=dev)[None, :] < n_intervals[:, None]) & (end > start)
    delta = torch.zeros(B, max_len + 1, dtype=torch.int32, device=dev)
    delta.scatter_add_(1, start, live.to(torch.int32))
    delta.scatter_add_(1, end, -live.to(torch.int32))
    return delta.cumsum(1)[:, :max_len] > 0


# ----------------------------------------------------------------------------- reference
def span_decode_attention_reference(q: Tensor, k_cache: Tensor, v_cache: Tensor, intervals: Tensor,
                                    n_intervals: Tensor, seq_lens: Tensor,
                                    scale: float | None = None) -> Tensor:
    """Dense fp32 attention with the interval mask: the oracle. Returns fp32 (B, Hq, D)."""
    B, Hq, D = q.shape
    Hkv, Nmax = k_cache.shape[1], k_cache.shape[2]
    scale = D ** -0.5 if scale is None else scale
    mask = intervals_to_mask(intervals, n_intervals, seq_lens, Nmax)  # (B, N)
    qf = q.float().view(B, Hkv, Hq // Hkv, D)  # (B, Hkv, G, D)
    scores = torch.einsum("bhgd,bhnd->bhgn", qf, k_cache.float()) * scale
    scores = scores.masked_fill(~mask[:, None, None, :], float("-inf"))
    any_kept = mask.any(1)[:, None, None, None]
    probs = torch.softmax(torch.where(any_kept, scores, 0.0), dim=-1)
    out = torch.einsum("bhgn,bhnd->bhgd", probs, v_cache.float())
    return torch.where(any_kept, out, 0.0).reshape(B, Hq, D)


# ----------------------------------------------------------------------------- library
_lib_lock = threading.Lock()
_lib: ctypes.CDLL | None = None
_plans: dict[tuple, tuple[int, int]] = {}
# The library's schedule, mirrored for span_plan, which passes it to its op: torch.compile
# guards on this module global, so a graph traced under one schedule (whose plan has its own
# size) is not reused under the other. load_library and set_schedule keep it in step.
_schedule_code: int = SCHEDULES.get(os.environ.get(SCHEDULE_ENV) or DEFAULT_SCHEDULE, SCHEDULES[DEFAULT_SCHEDULE])


def library_path() -> Path:
    return Path(os.environ.get(LIBRARY_ENV) or DEFAULT_LIBRARY)


def load_library() -> ctypes.CDLL:
    """Load libspanattn.so once; raise KernelLibraryError with the fix if it is missing."""
    global _lib, _schedule_code
    with _lib_lock:
        if _lib is not None:
            return _lib
        path = library_path()
        if not path.is_file():
            raise KernelLibraryError(
                f"span decode kernel library not found at {path}; build it with "
                f"`spanattn build-kernel` (or point {LIBRARY_ENV} at a built libspanattn.so)")
        try:
            lib = ctypes.CDLL(str(path))
        except OSError as err:
            raise KernelLibraryError(f"cannot load {path}: {err}; rebuild it with "
                                     "`spanattn build-kernel --force`") from err
        i, p, f, sz = ctypes.c_int, ctypes.c_void_p, ctypes.c_float, ctypes.c_size_t
        lib.spanattn_abi_version.restype = i
        lib.spanattn_last_error.restype = ctypes.c_char_p
        lib.spanattn_plan.argtypes = [i] * 8 + [ctypes.POINTER(i), ctypes.POINTER(sz)]
        lib.spanattn_plan.restype = i
        lib.spanattn_span_decode.argtypes = [p] * 8 + [sz] + [i] * 6 + [f, i, p]
        lib.spanattn_span_decode.restype = i
        if lib.spanattn_abi_version() >= 3:  # an older build is refused just below, with the fix
            lib.spanattn_plan_sizes.argtypes = [i] * 8 + [ctypes.POINTER(i), ctypes.POINTER(sz), ctypes.POINTER(sz)]
            lib.spanattn_plan_sizes.restype = i
            lib.spanattn_span_plan.argtypes = [p] * 4 + [sz] + [i] * 7 + [p]
            lib.spanattn_span_plan.restype = i
            lib.spanattn_span_decode_planned.argtypes = [p] * 7 + [sz] + [p, p, sz] + [i] * 6 + [f, i, p]
            lib.spanattn_span_decode_planned.restype = i
        lib.spanattn_set_tuning.argtypes = [i, i]
        lib.spanattn_set_tuning.restype = i
        if lib.spanattn_abi_version() != ABI_VERSION:
            raise KernelLibraryError(
                f"{path} has ABI version {lib.spanattn_abi_version()}, this code needs "
                f"{ABI_VERSION}; rebuild it with `spanattn build-kernel --force`")
        lib.spanattn_set_schedule.argtypes = [i]
        lib.spanattn_set_schedule.restype = i
        lib.spanattn_get_schedule.restype = i
        lib.spanattn_schedule_host.argtypes = [i] * 6 + [p] * 7 + [ctypes.POINTER(i)]
        lib.spanattn_schedule_host.restype = i
        lib.spanattn_set_combine.argtypes = [i]
        lib.spanattn_set_combine.restype = i
        lib.spanattn_get_combine.restype = i
        # set even when it is the default, so that a library built before the default changed agrees
        wanted = os.environ.get(SCHEDULE_ENV) or DEFAULT_SCHEDULE
        if wanted not in SCHEDULES:
            raise KernelArgumentError(f"{SCHEDULE_ENV}={wanted!r}: expected one of {', '.join(SCHEDULES)}")
        _check_status(lib, lib.spanattn_set_schedule(SCHEDULES[wanted]), "set_schedule")
        _schedule_code = SCHEDULES[wanted]
        combine = os.environ.get(COMBINE_ENV) or DEFAULT_COMBINE
        if combine not in COMBINES:
            raise KernelArgumentError(f"{COMBINE_ENV}={combine!r}: expected one of {', '.join(COMBINES)}")
        _check_status(lib, lib.spanattn_set_combine(COMBINES[combine]), "set_combine")
        _lib = lib
        return lib


def _check_status(lib: ctypes.CDLL, status: int, what: str) -> None:
    if status != 0:
        message = lib.spanattn_last_error().decode(errors="replace")
        cls = KernelArgumentError if status == 1 else KernelLibraryError
        raise cls(f"{what}: {message}")


def plan(q: Tensor, k_cache: Tensor, intervals: Tensor) -> tuple[int, int]:
    """(num_splits, workspace_bytes) of the launch for these shapes (cached, host-only): the
    partials and, under the balanced schedule, the plan after them (spanattn_plan's figure)."""
    splits, partials, plan_bytes = plan_sizes(q, k_cache, intervals)
    return splits, partials + plan_bytes


def plan_sizes(q: Tensor, k_cache: Tensor, intervals: Tensor) -> tuple[int, int, int]:
    """(num_splits, partials_bytes, plan_bytes) of a planned launch for these shapes (cached,
    host-only): the workspace that span_decode_attention(..., plan=) needs, and the plan's size
    (0 under the rows schedule)."""
    B, Hq, D = q.shape
    Hkv, Nmax = k_cache.shape[1], k_cache.shape[2]
    return _plan_sizes(B, Hq, Hkv, Nmax, D, intervals.shape[1], KERNEL_DTYPES[q.dtype], q.device)


def _plan_sizes(B: int, Hq: int, Hkv: int, Nmax: int, D: int, I: int, dtype_code: int,
                device: torch.device) -> tuple[int, int, int]:
    key = ("sizes", B, Hq, Hkv, Nmax, D, I, dtype_code, device.index)
    cached = _plans.get(key)
    if cached is not None:
        return cached
    lib = load_library()
    splits, partials, plan_bytes = ctypes.c_int(0), ctypes.c_size_t(0), ctypes.c_size_t(0)
    with torch.cuda.device(device):
        _check_status(lib, lib.spanattn_plan_sizes(*key[1:], ctypes.byref(splits), ctypes.byref(partials),
                                                   ctypes.byref(plan_bytes)), "plan_sizes")
    _plans[key] = (splits.value, partials.value, plan_bytes.value)
    return _plans[key]


def set_schedule(name: str) -> None:
    """How the kernel splits its work: `balanced` (the default) or `rows` (cuda/span_schedule.h)."""
    global _schedule_code
    if name not in SCHEDULES:
        raise KernelArgumentError(f"schedule must be one of {', '.join(SCHEDULES)} (got {name!r})")
    lib = load_library()
    _check_status(lib, lib.spanattn_set_schedule(SCHEDULES[name]), "set_schedule")
    _schedule_code = SCHEDULES[name]
    _plans.clear()  # the workspace size depends on it


def get_schedule() -> str:
    code = load_library().spanattn_get_schedule()
    return next(name for name, value in SCHEDULES.items() if value == code)


def set_combine(name: str) -> None:
    """How the balanced schedule merges each sequence's splits: `fused` (the default: the split
    kernel's last block a (sequence, KV head) merges them) or `kernel` (a combine kernel)."""
    if name not in COMBINES:
        raise KernelArgumentError(f"combine must be one of {', '.join(COMBINES)} (got {name!r})")
    lib = load_library()
    _check_status(lib, lib.spanattn_set_combine(COMBINES[name]), "set_combine")


def get_combine() -> str:
    code = load_library().spanattn_get_combine()
    return next(name for name, value in COMBINES.items() if value == code)


def balanced_schedule_host(intervals: Tensor, n_intervals: Tensor, seq_lens: Tensor, heads_q: int, heads_kv: int,
                           max_len: int, num_splits: int) -> dict:
    """The balanced schedule's plan for these inputs, computed by the library on the host (no GPU):
    the block map (B x 4: sequence or -1, unit, split, splits of the sequence), each block's piece of
    its sequence's kept tokens (first, end), and per sequence its first block and split count."""
    lib = load_library()
    iv = intervals.to(torch.int32).contiguous()
    n = n_intervals.to(torch.int32).contiguous()
    lens = seq_lens.to(torch.int32).contiguous()
    B, I = iv.shape[0], iv.shape[1]
    grid = ctypes.c_int(0)
    args = (B, heads_q, heads_kv, max_len, I, num_splits, iv.data_ptr(), n.data_ptr(), lens.data_ptr())
    _check_status(lib, lib.spanattn_schedule_host(*args, None, None, None, None, ctypes.byref(grid)), "schedule_host")
    block_map = torch.zeros(grid.value, 4, dtype=torch.int32)
    pieces = torch.zeros(grid.value, 2, dtype=torch.int32)
    row_start = torch.zeros(B, dtype=torch.int32)
    row_n = torch.zeros(B, dtype=torch.int32)
    _check_status(lib, lib.spanattn_schedule_host(*args, block_map.data_ptr(), pieces.data_ptr(), row_start.data_ptr(),
                                                  row_n.data_ptr(), ctypes.byref(grid)), "schedule_host")
    return {"map": block_map, "pieces": pieces, "row_start": row_start, "row_n": row_n, "grid_blocks": grid.value}


def set_tuning(variant: int = 0, num_splits: int = 0) -> None:
    """Benchmark knob: force the kernel variant (1, 3, 5; see span_decode.cu) / split count (0 = automatic)."""
    lib = load_library()
    _check_status(lib, lib.spanattn_set_tuning(variant, num_splits), "set_tuning")
    _plans.clear()


def launch_into(out: Tensor, q: Tensor, k_cache: Tensor, v_cache: Tensor, intervals: Tensor,
                n_intervals: Tensor, seq_lens: Tensor, scale: float,
                workspace: Tensor | None = None, plan_buf: Tensor | None = None) -> Tensor:
    """Run the CUDA kernel into a caller-owned `out` (tests poison it first). With `plan_buf`
    (from plan_into), without the plan kernel: the workspace then holds the partials alone.
    No checks here."""
    lib = load_library()
    B, Hq, D = q.shape
    Hkv, Nmax, I = k_cache.shape[1], k_cache.shape[2], intervals.shape[1]
    _, partials, plan_bytes = plan_sizes(q, k_cache, intervals)
    if workspace is None:
        ws_bytes = partials if plan_buf is not None else partials + plan_bytes
        workspace = torch.empty(max(ws_bytes // 4, 1), dtype=torch.float32, device=q.device)
    tensors = (q.data_ptr(), k_cache.data_ptr(), v_cache.data_ptr(), intervals.data_ptr(), n_intervals.data_ptr(),
               seq_lens.data_ptr())
    sizes = (B, Hq, Hkv, Nmax, D, I, float(scale), KERNEL_DTYPES[q.dtype])
    with torch.cuda.device(q.device):
        stream = torch.cuda.current_stream(q.device).cuda_stream
        if plan_buf is None:
            status = lib.spanattn_span_decode(*tensors, out.data_ptr(), workspace.data_ptr(), workspace.numel() * 4,
                                              *sizes, stream)
        else:
            status = lib.spanattn_span_decode_planned(*tensors, plan_buf.data_ptr(), plan_buf.numel() * 4,
                                                      out.data_ptr(), workspace.data_ptr(), workspace.numel() * 4,
                                                      *sizes, stream)
    _check_status(lib, status, "span_decode_attention" + (" (planned)" if plan_buf is not None else ""))
    return out


def plan_into(plan_buf: Tensor, intervals: Tensor, n_intervals: Tensor, seq_lens: Tensor, heads_q: int,
              heads_kv: int, max_len: int, head_dim: int, dtype: torch.dtype) -> Tensor:
    """Run the balanced schedule's plan kernel into `plan_buf` (int32, >= plan_bytes). No checks."""
    lib = load_library()
    B, I = intervals.shape[0], intervals.shape[1]
    with torch.cuda.device(intervals.device):
        stream = torch.cuda.current_stream(intervals.device).cuda_stream
        status = lib.spanattn_span_plan(intervals.data_ptr(), n_intervals.data_ptr(), seq_lens.data_ptr(),
                                        plan_buf.data_ptr(), plan_buf.numel() * 4, B, heads_q, heads_kv, max_len,
                                        head_dim, I, KERNEL_DTYPES[dtype], stream)
    _check_status(lib, status, "span_plan")
    return plan_buf


# ----------------------------------------------------------------------------- the op
@torch.library.custom_op("spanattn::span_decode_attention", mutates_args=())
def _span_decode_op(q: Tensor, k_cache: Tensor, v_cache: Tensor, intervals: Tensor,
                    n_intervals: Tensor, seq_lens: Tensor, scale: float) -> Tensor:
    if q.device.type == "cuda":
        return launch_into(torch.empty_like(q), q, k_cache, v_cache, intervals, n_intervals,
                           seq_lens, scale)
    return span_decode_attention_reference(q, k_cache, v_cache, intervals, n_intervals, seq_lens,
                                           scale).to(q.dtype)


@_span_decode_op.register_fake
def _(q, k_cache, v_cache, intervals, n_intervals, seq_lens, scale):
    return torch.empty_like(q)


def _plan_numel(intervals: Tensor, heads_q: int, heads_kv: int, max_len: int, head_dim: int,
               dtype: torch.dtype, schedule: int) -> int:
    if intervals.device.type != "cuda" or schedule == SCHEDULES["rows"]:
        return 1
    _, _, plan_bytes = _plan_sizes(intervals.shape[0], heads_q, heads_kv, max_len, head_dim, intervals.shape[1],
                                   KERNEL_DTYPES[dtype], intervals.device)
    return max(1, (plan_bytes + 3) // 4)


@torch.library.custom_op("spanattn::span_plan", mutates_args=())
def _span_plan_op(intervals: Tensor, n_intervals: Tensor, seq_lens: Tensor, heads_q: int, heads_kv: int,
                  max_len: int, head_dim: int, dtype: torch.dtype, schedule: int) -> Tensor:
    numel = _plan_numel(intervals, heads_q, heads_kv, max_len, head_dim, dtype, schedule)
    buf = torch.zeros(numel, dtype=torch.int32, device=intervals.device) if intervals.device.type != "cuda" \
        else torch.empty(numel, dtype=torch.int32, device=intervals.device)
    if intervals.device.type == "cuda":
        plan_into(buf, intervals, n_intervals, seq_lens, heads_q, heads_kv, max_len, head_dim, dtype)
    return buf


@_span_plan_op.register_fake
def _(intervals, n_intervals, seq_lens, heads_q, heads_kv, max_len, head_dim, dtype, schedule):
    return intervals.new_empty(_plan_numel(intervals, heads_q, heads_kv, max_len, head_dim, dtype, schedule),
                               dtype=torch.int32)


@torch.library.custom_op("spanattn::span_decode_attention_planned", mutates_args=())
def _span_decode_planned_op(q: Tensor, k_cache: Tensor, v_cache: Tensor, intervals: Tensor,
                            n_intervals: Tensor, seq_lens: Tensor, plan: Tensor, scale: float) -> Tensor:
    if q.device.type == "cuda":
        return launch_into(torch.empty_like(q), q, k_cache, v_cache, intervals, n_intervals, seq_lens, scale,
                           plan_buf=plan)
    return span_decode_attention_reference(q, k_cache, v_cache, intervals, n_intervals, seq_lens,
                                           scale).to(q.dtype)


@_span_decode_planned_op.register_fake
def _(q, k_cache, v_cache, intervals, n_intervals, seq_lens, plan, scale):
    return torch.empty_like(q)


def span_plan(q: Tensor, k_cache: Tensor, intervals: Tensor, n_intervals: Tensor, seq_lens: Tensor) -> Tensor:
    """The balanced schedule's plan for calls of span_decode_attention with these shapes and
    exactly these intervals, n_intervals and seq_lens (an int32 tensor; run once, pass it as
    `plan=` to each call: one plan kernel a decode step instead of one a layer). On CPU, or
    under the rows schedule, a placeholder the op ignores."""
    check_inputs(q, k_cache, k_cache, intervals, n_intervals, seq_lens, for_kernel=q.is_cuda)
    return torch.ops.spanattn.span_plan(intervals, n_intervals, seq_lens, q.shape[1], k_cache.shape[1],
                                        k_cache.shape[2], q.shape[2], q.dtype, _schedule_code)


def span_decode_attention(q: Tensor, k_cache: Tensor, v_cache: Tensor, intervals: Tensor,
                          n_intervals: Tensor, seq_lens: Tensor, scale: float | None = None,
                          plan: Tensor | None = None) -> Tensor:
    """Checked entry point of the op; see the module docstring for shapes. `plan`: from
    span_plan, for the same shapes and the same intervals, n_intervals and seq_lens."""
    check_inputs(q, k_cache, v_cache, intervals, n_intervals, seq_lens, for_kernel=q.is_cuda)
    scale = q.shape[-1] ** -0.5 if scale is None else float(scale)
    if not (scale > 0 and math.isfinite(scale)):
        raise KernelArgumentError(f"scale must be a positive finite number (got {scale})")
    if plan is not None:
        if plan.dtype != torch.int32 or plan.dim() != 1 or plan.device != q.device:
            raise KernelArgumentError(f"plan must be span_plan's 1-D int32 tensor on {q.device} "
                                      f"(got {plan.dtype}, shape {_shape(plan)}, {plan.device})")
        return torch.ops.spanattn.span_decode_attention_planned(q, k_cache, v_cache, intervals, n_intervals,
                                                                seq_lens, plan, scale)
    return torch.ops.spanattn.span_decode_attention(q, k_cache, v_cache, intervals, n_intervals,
                                                    seq_lens, scale)

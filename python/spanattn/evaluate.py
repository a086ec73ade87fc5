"""`spanattn eval`: accuracy and decode throughput of a trained run, dense vs sparse.

The same weights decode the same prompts twice — once with every key visible ("dense"),
once reading only what the model's own directives declare ("sparse") — on the same engine,
the same attention op and the same batch composition; the first batch of each mode is a
warm-up and is not timed. Accuracy: arithmetic exact match of the final answer and of every
step; news ROUGE-1/2/L (torchmetrics). Stdout: JSON-lines events, then one JSON result.

    PYTHONPATH=python python -m spanattn.evaluate --run runs/arith-tiny --data datasets/arith-small \
        --split test --limit 32 --batch 16 --out runs/arith-tiny/eval/now
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch

from . import spans
from .data import DataError, load_dataset
from .engine import Engine, Generation, UnsupportedModelError, percentile, stream


class EvalError(Exception):
    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.hint = hint


def emit(event: str, **fields) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


PARTIAL = "result.partial.json"


def save_partial(out_dir: str | None, result: dict) -> None:
    """What is finished so far, in <out_dir>/result.partial.json (removed once result.json is
    written): an eval that is killed or runs out of time keeps its completed modes."""
    if not out_dir:
        return
    from .checkpoint import write_json_atomic

    Path(out_dir).mkdir(parents=True, exist_ok=True)
    write_json_atomic(Path(out_dir) / PARTIAL, {**result, "partial": True})


def finish(compute, out_dir: str, kind: str) -> None:
    """Run `compute`, write its result to <out_dir>/result.json (atomically) and print it as
    the final stdout line; an EvalError becomes the bridge's error result and exit code 2."""
    try:
        result = compute()
    except EvalError as e:
        print(json.dumps({"status": "error", "error": {"kind": kind, "message": str(e), "hint": e.hint}}))
        sys.exit(2)
    from .checkpoint import write_json_atomic

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "result.json", result)
    (out / PARTIAL).unlink(missing_ok=True)
    result["out"] = str(out)
    print(json.dumps(result))


# ----------------------------------------------------------------------------- loading
def find_checkpoint(run: Path, checkpoint: str | None) -> Path:
    from .checkpoint import latest_checkpoint

    if checkpoint == "best":
        from .checkpoint import best_dir

        p = best_dir(run)
        if not (p / "config.json").exists():
            raise EvalError(f"run folder {run} has no best checkpoint ({p})",
                            "train with --set checkpoint.keep_best=true, or leave --checkpoint out for the newest")
        return p
    if checkpoint:
        p = Path(checkpoint)
        if not (p / "config.json").exists():
            raise EvalError(f"checkpoint {p} has no config.json")
        return p
    if not run.is_dir():
        raise EvalError(f"run folder not found: {run}", "train one with `spanattn train`")
    latest = latest_checkpoint(run)
    if latest is None:
        raise EvalError(f"run folder {run} has no checkpoint (checkpoints/step-*/)",
                        "train it first (`spanattn train ... --out " + str(run) + "`), or pass --checkpoint")
    return latest[1]


def load_run(ckpt: Path, device: torch.device, dtype: torch.dtype):
    from transformers import AutoModelForCausalLM

    from .tokenizer import load_tokenizer

    info = json.loads((ckpt / "spanattn.json").read_text()) if (ckpt / "spanattn.json").exists() else {}
    grammar = info.get("grammar")
    if grammar is not None and grammar != spans.default_grammar().to_dict():
        raise EvalError(f"{ckpt} was trained with another span grammar than this build's",
                        "evaluate it with the spanattn version that trained it")
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # stderr carries our log lines (the CLI shows them)
    tok = load_tokenizer(ckpt)
    model = AutoModelForCausalLM.from_pretrained(str(ckpt), dtype=dtype).to(device).eval()
    return model, tok, info


def pick_device(choice: str) -> torch.device:
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if choice == "cuda" and not torch.cuda.is_available():
        raise EvalError("--device cuda, but torch sees no GPU")
    return torch.device(choice)


def check_kernel(device: torch.device, allow_reference: bool) -> str:
    """'kernel' on a GPU with the built library, else 'reference' (CPU, or allowed)."""
    if device.type != "cuda":
        return "reference"
    from .kernel import KernelArgumentError, KernelLibraryError, load_library

    try:
        load_library()
        return "kernel"
    except KernelArgumentError as e:  # a bad SPANATTN_KERNEL_SCHEDULE / _COMBINE: the user's to fix, no fallback
        raise EvalError(str(e), "unset it, or set SPANATTN_KERNEL_SCHEDULE to rows or balanced and "
                                "SPANATTN_KERNEL_COMBINE to kernel or fused") from None
    except (KernelLibraryError, OSError) as e:
        if not allow_reference:
            raise EvalError(f"the span kernel is not built for this GPU ({str(e).splitlines()[0]})",
                            "run `spanattn build-kernel`, or pass --allow-reference to use the slow PyTorch op") from None
        return "reference"


# ----------------------------------------------------------------------------- prompts
def response_segments(tok, generated: list[int]) -> list[str]:
    """Text of each generated segment (directive removed), up to <eos>."""
    g = tok.grammar
    eos, seg, close = tok.eos_id, tok.token_id(g.seg), tok.token_id(g.attend_close)
    ids = generated[: generated.index(eos)] if eos in generated else generated
    special = set(tok.special_ids.values())
    out, cur = [], None
    for i in ids:
        if i == seg:
            if cur is not None:
                out.append(cur)
            cur = []
            continue
        if cur is None:
            cur = []
        if i == close:
            cur = []  # text starts after the directive
        elif i not in special:
            cur.append(i)
    if cur is not None:
        out.append(cur)
    return [tok.decode(s).strip() for s in out]


def score_arith(records: list[dict], texts: list[list[str]]) -> dict:
    """exact_match: the final answer; step_exact_match: every step; step_prefix: the mean
    share of a record's reference steps reproduced before the first wrong one (how far the
    model gets, where the other two only say whether it got to the end)."""
    exact = sum(exact_flags(records, texts))
    steps = 0
    prefix = 0.0
    for rec, segs in zip(records, texts):
        want_steps = [s["text"] for s in rec["segments"] if s["role"] == "response"]
        steps += segs == want_steps
        good = next((i for i, (a, b) in enumerate(zip(segs, want_steps)) if a != b), min(len(segs), len(want_steps)))
        prefix += good / max(1, len(want_steps))
    n = max(1, len(records))
    return {"exact_match": exact / n, "step_exact_match": steps / n, "step_prefix": prefix / n}


def exact_flags(records: list[dict], texts: list[list[str]]) -> list[bool]:
    """Per record: is the final answer right (score_arith's exact_match, record by record)."""
    return [bool(segs) and segs[-1] == rec.get("answer") for rec, segs in zip(records, texts)]


def _binom_cdf(k: int, n: int, p: float) -> float:
    """P(X <= k) for X ~ Binomial(n, p), in logs (n may be large)."""
    if p <= 0.0:
        return 1.0
    if p >= 1.0:
        return 1.0 if k >= n else 0.0
    lp, lq = math.log(p), math.log1p(-p)
    lg = math.lgamma(n + 1)
    return min(1.0, sum(math.exp(lg - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * lp + (n - i) * lq)
                        for i in range(0, min(k, n) + 1)))


def _solve(f, target: float, increasing: bool) -> float:
    """The p in [0, 1] where the monotone f(p) crosses target (bisection)."""
    lo, hi = 0.0, 1.0
    for _ in range(60):
        mid = (lo + hi) / 2
        if (f(mid) < target) == increasing:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def paired_difference_ci(dense_only: int, sparse_only: int, records: int, level: float = 0.95) -> tuple[float, float]:
    """A confidence interval for sparse minus dense exact match, in points, from the discordant
    records: exact (Clopper-Pearson) for the share of them that only sparse gets right, given
    how many there are, scaled by their share of all records. Conditional on the discordant
    count; [0, 0] when there are none."""
    m = dense_only + sparse_only
    if m == 0 or records <= 0:
        return (0.0, 0.0)
    a = (1 - level) / 2
    c = sparse_only
    lo = 0.0 if c == 0 else _solve(lambda p: 1 - _binom_cdf(c - 1, m, p), a, increasing=True)
    hi = 1.0 if c == m else _solve(lambda p: _binom_cdf(c, m, p), a, increasing=False)
    scale = 100 * m / records
    return (scale * (2 * lo - 1), scale * (2 * hi - 1))


def paired_exact_match(dense: list[bool], sparse: list[bool], ids: list[str] | None = None) -> dict:
    """The two modes' exact match on the same records, record by record: how many each gets
    right that the other does not, and McNemar's exact test on those (a two-sided binomial
    test of the discordant records; p near 1: the modes do not differ beyond chance), with a
    95% interval for the difference (paired_difference_ci). With ids, the discordant records'
    ids too, for a closer look at them."""
    b = sum(d and not s for d, s in zip(dense, sparse))
    c = sum(s and not d for d, s in zip(dense, sparse))
    n = b + c
    p = min(1.0, 2 * _binom_cdf(min(b, c), n, 0.5)) if n else 1.0
    lo, hi = paired_difference_ci(b, c, len(dense))
    out = {"metric": "exact_match", "records": len(dense), "both": sum(d and s for d, s in zip(dense, sparse)),
           "dense_only": b, "sparse_only": c, "neither": sum(not d and not s for d, s in zip(dense, sparse)),
           "difference_points": 100 * (c - b) / max(1, len(dense)), "difference_ci95": [lo, hi], "mcnemar_p": p}
    if ids is not None:
        out["dense_only_ids"] = [i for i, d, s in zip(ids, dense, sparse) if d and not s]
        out["sparse_only_ids"] = [i for i, d, s in zip(ids, dense, sparse) if s and not d]
    return out


def score_news(records: list[dict], texts: list[list[str]]) -> dict:
    from torchmetrics.text.rouge import ROUGEScore

    scorer = ROUGEScore(rouge_keys=("rouge1", "rouge2", "rougeL"))
    preds = [" ".join(t) for t in texts]
    refs = [r.get("reference", "") for r in records]
    s = scorer(preds, refs)
    return {k: float(s[f"{k}_fmeasure"]) for k in ("rouge1", "rouge2", "rougeL")}


def fit_positions(records: list[dict], prompts: list[list[int]], max_new: int,
                  max_positions: int | None) -> tuple[list[dict], list[list[int]], int]:
    """Drop the records whose prompt + max_new tokens runs past the model's positions (the
    model never saw them; training skips such records too with train.long_records: skip).
    Returns (records, prompts, number dropped); EvalError when none is left."""
    if not max_positions:
        return records, prompts, 0
    keep = [i for i, p in enumerate(prompts) if len(p) + max_new <= max_positions]
    dropped = len(prompts) - len(keep)
    if not keep:
        shortest = min(len(p) for p in prompts)
        raise EvalError(f"no record fits the model's max_position_embeddings {max_positions}: the prompts are "
                        f"{shortest}-{max(len(p) for p in prompts)} tokens, plus {max_new} new tokens",
                        f"pass --max-new-tokens {max_positions - shortest} or less" if shortest < max_positions
                        else "evaluate a model trained with longer positions, or a dataset with shorter prompts")
    if dropped:
        log(f"skipping {dropped} of {len(prompts)} records: prompt + {max_new} new tokens exceeds the model's "
            f"max_position_embeddings {max_positions}")
    return [records[i] for i in keep], [prompts[i] for i in keep], dropped


# ----------------------------------------------------------------------------- running
def run_mode(engine: Engine, prompts: list[list[int]], batch: int, max_new_tokens: int, mode: str,
             label: str, forced: list[list[int]] | None = None, track_steps: bool = False,
             continuous: bool = False, refill: str = "decode") -> tuple[list[list[int]], dict]:
    """All prompts in fixed batches (same composition for every mode; batch 0 also warms up),
    or with `continuous` through the engine's slots, refilled as sequences finish (`refill`:
    see engine.stream)."""
    continuous = continuous and not forced
    track_steps = track_steps and not continuous
    warm_forced = forced[:batch] if forced else None
    width = max(len(p) for p in prompts) - 1  # the same graph for the warm-up and the timed run
    if continuous:  # warm-up, not timed, with one refill when there is a prompt to refill
        stream(engine, prompts[: batch + 1], min(max_new_tokens, 8), mode=mode, refill=refill, forced_width=width)
    else:
        engine.generate(prompts[:batch], max_new_tokens=min(max_new_tokens, 8), mode=mode, forced=warm_forced)
    if engine.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    gens: list[Generation] = []
    if continuous:
        gens.append(stream(engine, prompts, max_new_tokens, mode=mode, refill=refill, forced_width=width))
        emit("progress", task=label, current=1, total=1, detail=f"{gens[0].tokens_per_second:.0f} tok/s (continuous)")
    starts = [] if continuous else list(range(0, len(prompts), batch))
    for k, s in enumerate(starts):
        engine.prefill(prompts[s:s + batch], max_new_tokens)
        gens.append(engine.decode(mode, forced=forced[s:s + batch] if forced else None, track_steps=track_steps))
        emit("progress", task=label, current=k + 1, total=len(starts), detail=f"{gens[-1].tokens_per_second:.0f} tok/s")
    outs = [t for g in gens for t in g.tokens]
    steps = [ms for g in gens for ms in g.step_ms]
    tokens = sum(g.generated_tokens for g in gens)
    secs = sum(g.decode_seconds for g in gens)
    attempts = sum(g.directive_attempts for g in gens)
    stats = {
        "generated_tokens": tokens,
        "decode_seconds": secs,
        "prefill_seconds": sum(g.prefill_seconds for g in gens),
        "tokens_per_second": tokens / secs if secs else 0.0,
        "ms_per_step_p50": percentile(steps, 0.5),
        "ms_per_step_p95": percentile(steps, 0.95),
        "attended_fraction": (sum(g.attended_keys for g in gens) / max(1, sum(g.possible_keys for g in gens))),
        "directive_attempts": attempts,
        "malformed_rate": sum(g.malformed for g in gens) / attempts if attempts else 0.0,
        "peak_memory_mib": torch.cuda.max_memory_allocated() / 2**20 if engine.device.type == "cuda" else None,
        "cuda_graph": any(g.meta.get("graph") for g in gens),
        "continuous": continuous,
        "refill": refill if continuous else None,
    }
    if track_steps:  # attended fraction by step index, averaged over batches
        width = max(len(g.meta["attended_per_step"]) for g in gens)
        cols = [[g.meta["attended_per_step"][i] for g in gens if i < len(g.meta["attended_per_step"])] for i in range(width)]
        stats["attended_per_step"] = [sum(c) / len(c) for c in cols]
    return outs, stats


def hf_generate_baseline(model, prompts: list[list[int]], batch: int, max_new_tokens: int, eos_id: int,
                         pad_id: int) -> dict:
    """transformers' generate with a static cache, greedy, same prompts and batches (left-padded
    as generate expects). Timed after one warm-up batch."""
    device = next(model.parameters()).device

    def one(chunk):
        T = max(len(p) for p in chunk)
        ids = torch.full((len(chunk), T), pad_id, dtype=torch.long)
        mask = torch.zeros((len(chunk), T), dtype=torch.long)
        for i, p in enumerate(chunk):
            ids[i, T - len(p):] = torch.tensor(p)
            mask[i, T - len(p):] = 1
        ids, mask = ids.to(device), mask.to(device)
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=max_new_tokens, do_sample=False,
                             eos_token_id=eos_id, pad_token_id=pad_id, cache_implementation="static")
        if device.type == "cuda":
            torch.cuda.synchronize()
        dt = time.perf_counter() - t
        new = out[:, T:].tolist()
        n = sum((row.index(eos_id) + 1) if eos_id in row else len(row) for row in new)
        return n, dt

    one(prompts[:batch])  # warm-up (compiles / allocates the static cache)
    tokens = secs = 0.0
    for s in range(0, len(prompts), batch):
        n, dt = one(prompts[s:s + batch])
        tokens += n
        secs += dt
    return {"generated_tokens": int(tokens), "seconds": secs, "tokens_per_second": tokens / secs if secs else 0.0,
            "note": "includes prefill; static cache; greedy"}


def engine_fields(args, attention: str) -> dict:
    """How the decode engine ran, for result files: the engine options, and the span kernel's
    work schedule (cuda/span_schedule.h) and combine (None off the kernel)."""
    schedule = combine = None
    if attention == "kernel":
        from .kernel import get_combine, get_schedule

        schedule, combine = get_schedule(), get_combine()
    return {"compile_state": args.compile_state, "compile_decode": args.compile_decode, "step_plan": args.step_plan,
            "kernel_schedule": schedule, "kernel_combine": combine}


def sweep_point(engine: Engine, prompts: list[list[int]], max_new: int, label: str, extra: tuple[str, ...] = (),
                **row) -> dict:
    """One row of a --throughput sweep: both modes on the same prompts at the engine's batch."""
    for mode in ("dense", "sparse"):
        _, st = run_mode(engine, prompts, engine.B, max_new, mode, label=f"{label} {mode}")
        row[mode] = {k: st[k] for k in ("tokens_per_second", "ms_per_step_p50", "ms_per_step_p95", "attended_fraction",
                                        *extra)}
    row["speedup"] = row["sparse"]["tokens_per_second"] / row["dense"]["tokens_per_second"]
    log(f"{label}: dense {row['dense']['tokens_per_second']:.0f} tok/s, sparse "
        f"{row['sparse']['tokens_per_second']:.0f} tok/s, {row['speedup']:.2f}x")
    return row


def add_engine_args(p: argparse.ArgumentParser) -> None:
    """The decode engine's options, the same for eval, replay and benchmarks/profile_decode.py."""
    from .kernel import COMBINES, SCHEDULES

    p.add_argument("--compile-state", action="store_true", help="torch.compile the span state machine and the step's bookkeeping")
    p.add_argument("--compile-decode", action="store_true",
                   help="torch.compile the model's decode forward too (norms, rotary, KV writes, activations)")
    p.add_argument("--step-plan", action=argparse.BooleanOptionalAction, default=True,
                   help="plan the span kernel's balanced schedule once a decode step, not once a layer (default; "
                        "--no-step-plan plans in every layer)")
    p.add_argument("--kernel-combine", choices=list(COMBINES),
                   help="how the balanced schedule merges splits: fused (default: SPANATTN_KERNEL_COMBINE, else fused) "
                        "or kernel (a combine kernel)")
    p.add_argument("--kernel-schedule", choices=list(SCHEDULES),
                   help="the span kernel's work schedule (default: SPANATTN_KERNEL_SCHEDULE, else balanced)")


def engine_options(args) -> dict:
    """Engine keyword arguments from those options (and --no-graph where the command has it)."""
    return {"cuda_graph": False if getattr(args, "no_graph", False) else None,
            "compile_state": args.compile_state, "compile_decode": args.compile_decode,
            "step_plan": args.step_plan}


def prepare(args):
    """(device, attention op, dtype, dataset) for an eval or replay run; errors as EvalError."""
    device = pick_device(args.device)
    attention = check_kernel(device, args.allow_reference)
    if attention == "kernel" and getattr(args, "kernel_schedule", None):
        from .kernel import set_schedule

        set_schedule(args.kernel_schedule)
    if attention == "kernel" and getattr(args, "kernel_combine", None):
        from .kernel import set_combine

        set_combine(args.kernel_combine)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    try:
        ds = load_dataset(args.data)
    except DataError as e:
        raise EvalError(str(e), e.hint) from None
    return device, attention, dtype, ds


def evaluate(args) -> dict:
    device, attention, dtype, ds = prepare(args)
    ckpt = find_checkpoint(Path(args.run), args.checkpoint)
    log(f"loading {ckpt} on {device} ({dtype}); attention op: {attention}")
    model, tok, info = load_run(ckpt, device, dtype)
    records = ds.records(args.split, limit=args.limit)
    if not records:
        raise EvalError(f"split {args.split!r} of {args.data} is empty")
    rendered = [spans.render_record(r, tok.encode, tok.token_id, tok.grammar) for r in records]
    prompts = [x.ids[: x.prompt_length] for x in rendered]
    # the same default as training's val.max_new_tokens: 1.25x the longest reference response
    longest_response = max(len(x.ids) - x.prompt_length for x in rendered)
    max_new = args.max_new_tokens or int(1.25 * longest_response) + 8
    records, prompts, skipped = fit_positions(records, prompts, max_new, getattr(model.config, "max_position_embeddings", None))
    max_len = max(len(p) for p in prompts) + max_new
    try:
        engine = Engine(model, batch_size=min(args.batch, len(prompts)), max_len=max_len, special_ids=tok.special_ids,
                        eos_id=tok.eos_id, **engine_options(args))
    except UnsupportedModelError as e:
        raise EvalError(str(e)) from None
    except torch.OutOfMemoryError:
        raise EvalError(f"batch {args.batch} x {max_len} tokens does not fit in GPU memory",
                        f"try --batch {max(1, args.batch // 2)}") from None

    result = {
        "run": str(args.run), "checkpoint": str(ckpt), "data": str(args.data), "split": args.split,
        "task": ds.task, "records": len(records), "skipped_records": skipped, "batch": engine.B, "max_new_tokens": max_new,
        "device": str(device), "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "dtype": str(dtype).removeprefix("torch."), "attention": attention, **engine_fields(args, attention),
        "note": None if attention == "kernel" else
        "CPU or reference attention op: these throughput numbers are not GPU kernel numbers",
        "modes": {},
    }
    flags = {}
    for mode in args.modes:
        log(f"decoding {len(prompts)} prompts, mode={mode}, batch={engine.B}")
        outs, stats = run_mode(engine, prompts, engine.B, max_new, mode, label=mode, track_steps=not args.continuous,
                               continuous=args.continuous, refill=getattr(args, "refill", "decode"))
        texts = [response_segments(tok, o) for o in outs]
        stats["accuracy"] = score_arith(records, texts) if ds.task == "arith" else score_news(records, texts)
        if ds.task == "arith":
            flags[mode] = exact_flags(records, texts)
        stats["samples"] = [{"id": r["id"], "generated": tok.decode(o)[:400]} for r, o in zip(records[:3], outs[:3])]
        result["modes"][mode] = stats
        acc = ", ".join(f"{k} {v:.4f}" for k, v in stats["accuracy"].items() if isinstance(v, float))
        log(f"{mode}: {stats['tokens_per_second']:.0f} tok/s, {stats['ms_per_step_p50']:.3f} ms/step p50, "
            f"attended {stats['attended_fraction']:.3f}, {acc}")
        save_partial(getattr(args, "out", None), result)
    if "dense" in result["modes"] and "sparse" in result["modes"]:
        d, s = result["modes"]["dense"], result["modes"]["sparse"]
        result["speedup"] = s["tokens_per_second"] / d["tokens_per_second"] if d["tokens_per_second"] else None
        if len(flags) == 2:
            result["paired"] = paired_exact_match(flags["dense"], flags["sparse"],
                                                  ids=[str(r.get("id", i)) for i, r in enumerate(records)])

    if args.throughput:
        sweep = []
        for b in sorted({b for b in args.sweep_batches if b <= len(prompts)}):
            eng = Engine(model, batch_size=b, max_len=max_len, special_ids=tok.special_ids, eos_id=tok.eos_id,
                         **engine_options(args))
            sweep.append(sweep_point(eng, prompts[: max(b, min(len(prompts), 2 * b))], max_new, f"sweep b={b}", batch=b))
            save_partial(getattr(args, "out", None), {**result, "sweep": sweep})
            del eng
        result["sweep"] = sweep
        # generation length: the same engine (batch, graph) and prompts, answers cut at each
        # length; the longer the answers, the longer the contexts the decode steps read
        lengths = sorted({n for n in getattr(args, "sweep_lengths", []) if 0 < n < max_new})
        sub = prompts[: min(len(prompts), 2 * engine.B)]
        length_sweep = []
        for n in lengths:
            length_sweep.append(sweep_point(engine, sub, n, f"sweep length {n}", extra=("generated_tokens",),
                                            max_new_tokens=n, batch=engine.B, records=len(sub)))
            save_partial(getattr(args, "out", None), {**result, "length_sweep": length_sweep})
        result["length_sweep"] = length_sweep
        n_hf = len(prompts) if args.hf_limit is None else min(args.hf_limit, len(prompts))
        if n_hf > 0:
            sub = prompts[:n_hf]
            log(f"transformers generate (static cache) on {n_hf} of the same prompts, for the dense baseline")
            hf = hf_generate_baseline(model, sub, engine.B, max_new, tok.eos_id, tok.pad_id)
            hf["records"] = n_hf
            dense = result["modes"].get("dense")
            if dense and n_hf == len(prompts):
                engine_tps = dense["tokens_per_second"]
            else:  # the engine on exactly the baseline's prompts and batches
                _, st = run_mode(engine, sub, engine.B, max_new, "dense", label="dense (baseline prompts)")
                engine_tps = st["tokens_per_second"]
            hf["engine_dense_tokens_per_second"] = engine_tps
            hf["engine_dense_ratio"] = engine_tps / hf["tokens_per_second"] if hf["tokens_per_second"] else None
            result["hf_generate"] = hf
    return result


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--run", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--split", default="test")
    p.add_argument("--checkpoint", help="a checkpoint folder, or `best` (the run's checkpoints/best)")
    p.add_argument("--limit", type=int)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--max-new-tokens", type=int)
    p.add_argument("--modes", default="dense,sparse")
    p.add_argument("--throughput", action="store_true")
    p.add_argument("--sweep-batches", default="1,8,32,128")
    p.add_argument("--sweep-lengths", default="32,128,512,2048",
                   help="--throughput: generation lengths to cut the answers at, at --batch (those below --max-new-tokens)")
    p.add_argument("--hf-limit", type=int, help="records for the transformers generate baseline (default: all; 0: skip)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--allow-reference", action="store_true")
    p.add_argument("--no-graph", action="store_true")
    p.add_argument("--continuous", action="store_true", help="refill finished slots with the next prompts")
    p.add_argument("--refill", choices=["decode", "prefill"], default="decode",
                   help="--continuous: feed a new prompt through the decode steps (default) or run a prefill for it")
    add_engine_args(p)
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    args.modes = [m for m in args.modes.split(",") if m]
    args.sweep_batches = [int(b) for b in args.sweep_batches.split(",") if b]
    args.sweep_lengths = [int(n) for n in args.sweep_lengths.split(",") if n]
    finish(lambda: evaluate(args), args.out, kind="eval")


if __name__ == "__main__":
    main()

"""Training benchmark of issue 5 (run on a GPU; each stage fits one 10-minute call).

    # here, once: the dataset (200K records), gzipped so it travels (~7 MB)
    node bin/spanattn.mjs gen-data arith --config configs/data/arith.yaml --out datasets/arith-default
    python3 benchmarks/train_bench.py --stage pack --data datasets/arith-default

    # on the H200 (carry datasets/arith-default), one call per stage:
    SPANATTN_PYTHON=python3 python3 benchmarks/train_bench.py --stage sweep   # tokens/s + MFU per variant
    SPANATTN_PYTHON=python3 python3 benchmarks/train_bench.py --stage main    # arith-small, mixed mask
    SPANATTN_PYTHON=python3 python3 benchmarks/train_bench.py --stage dense   # the --mask dense baseline

sweep: 100 steps of configs/train/arith-small.yaml per variant (naive = boolean-mask SDPA, one
record per row, no compile; then packing, FlexAttention block masks, torch.compile), steady
tokens/s and MFU = median over the log windows after the first 30 steps.
main / dense: arith-small trained from scratch with max_steps sized so training takes
--train-minutes (from the sweep's rate for that variant, else a 60-step calibration run),
then greedy exact match on the whole test split under the sparse and the dense mask.
Each stage prints one JSON document as its last stdout line and writes it to
$OUT/train_bench_<stage>.json (or runs/train-bench/).
"""
from __future__ import annotations

import argparse
import datetime
import gzip
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIG = "configs/train/arith-small.yaml"
VARIANTS = {
    "naive-sdpa-unpacked": ["model.attention=sdpa", "train.packing=false", "model.compile=false"],
    "sdpa-packed": ["model.attention=sdpa", "model.compile=false"],
    "flex-packed": ["model.attention=flex", "model.compile=false"],
    "flex-packed-compile": ["model.attention=flex", "model.compile=true"],
    "sdpa-packed-compile": ["model.attention=sdpa", "model.compile=true"],
    # the --mask dense baseline's throughput (never picked as the main run's variant)
    "flex-packed-compile-dense": ["model.attention=flex", "model.compile=true", "train.mask=dense"],
    "flex-packed-dense": ["model.attention=flex", "model.compile=false", "train.mask=dense"],
}
QUIET = ["val.every=0", "val.exact_match_samples=0", "val.loss_batches=1", "val.test_exact_match_samples=0",
         "checkpoint.every=0", "log.every=10"]


def python() -> str:
    return os.environ.get("SPANATTN_PYTHON", sys.executable)


def out_dir() -> Path:
    d = Path(os.environ["OUT"]) if os.environ.get("OUT") else ROOT / "runs" / "train-bench"
    d.mkdir(parents=True, exist_ok=True)
    return d


def train(run: Path, data: str, sets: list[str], log, config: str = CONFIG) -> dict:
    """One `python -m spanattn.train` run; returns its result plus the steady throughput."""
    if run.exists():
        shutil.rmtree(run)
    cmd = [python(), "-m", "spanattn.train", "--config", config, "--out", str(run), "--set", f"data={data}"]
    for s in sets:
        cmd += ["--set", s]
    log(" ".join(cmd))
    env = {**os.environ, "PYTHONPATH": str(ROOT / "python"), "PYTHONUNBUFFERED": "1"}
    t0 = time.time()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=sys.stderr, text=True)
    # a time box (`timeout`) or a scheduler's SIGTERM: the run checkpoints the step it is on and
    # stops; pass the signal on and wait for its result instead of dying before writing ours
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: proc.send_signal(signum))
    try:
        stdout, _ = proc.communicate()
    finally:
        signal.signal(signal.SIGTERM, previous)
    lines = [line for line in stdout.splitlines() if line.strip()]
    result = json.loads(lines[-1]) if lines else {"status": "error", "error": {"message": f"no output (exit {proc.returncode})"}}
    result["wall_s"] = time.time() - t0
    result["command"] = " ".join(cmd)
    metrics = run / "metrics.jsonl"
    if metrics.exists():
        rows = [json.loads(line) for line in metrics.read_text().splitlines()]
        steady = [r for r in rows if "tokens_per_s" in r and r["step"] > 30]
        if steady:
            result["steady_tokens_per_s"] = statistics.median(r["tokens_per_s"] for r in steady)
            mfus = [r["mfu"] for r in steady if r.get("mfu") is not None]
            result["steady_mfu"] = statistics.median(mfus) if mfus else None
            result["steady_step_s"] = statistics.median(
                (b["train_s"] - a["train_s"]) / (b["step"] - a["step"]) for a, b in zip(steady, steady[1:])) if len(steady) > 1 else None
    return result


def environment() -> dict:
    probe = subprocess.run([python(), "-c", "import torch, transformers, json; print(json.dumps({'torch': torch.__version__, "
                            "'transformers': transformers.__version__, 'gpu': torch.cuda.get_device_name(0) "
                            "if torch.cuda.is_available() else None}))"], capture_output=True, text=True)
    env = json.loads(probe.stdout.strip().splitlines()[-1]) if probe.returncode == 0 else {"error": probe.stderr[-500:]}
    return {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"), **env}


def pack(data: Path, log) -> dict:
    """Gzip the train split in place (the loader reads train.jsonl.gz), so the folder travels."""
    src = data / "train.jsonl"
    if src.exists():
        with src.open("rb") as f, gzip.open(data / "train.jsonl.gz", "wb", compresslevel=6) as g:
            shutil.copyfileobj(f, g)
        src.unlink()
    size = sum(p.stat().st_size for p in data.iterdir())
    log(f"{data}: {size / 2**20:.1f} MiB")
    return {"data": str(data), "bytes": size}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--stage", choices=["pack", "sweep", "main", "dense"], required=True)
    ap.add_argument("--data", default="datasets/arith-default")
    ap.add_argument("--config", default=CONFIG, help="training config (a CPU smoke test: configs/train/arith-tiny.yaml)")
    ap.add_argument("--variants", default="naive-sdpa-unpacked,sdpa-packed,flex-packed,flex-packed-compile")
    ap.add_argument("--sweep-steps", type=int, default=100)
    ap.add_argument("--variant", default=None, help="main/dense: the variant to train with (default: the sweep's fastest, "
                                                    "else flex-packed-compile)")
    ap.add_argument("--train-minutes", type=float, default=6.0)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="main/dense: a training config override, after the variant's (e.g. model.path=DIR to start "
                         "from a checkpoint)")
    ap.add_argument("--max-steps", type=int, default=None, help="skip the sizing and train exactly this many steps")
    ap.add_argument("--test-samples", type=int, default=-1, help="test records for exact match (-1: all, 0: none; "
                                                                   "spanattn eval measures it faster)")
    ap.add_argument("--name", default=None, help="main/dense: run folder run-NAME and train_bench_NAME.json "
                                                 "(default: the stage)")
    args = ap.parse_args()
    log = lambda m: print(f"[train_bench] {m}", file=sys.stderr, flush=True)  # noqa: E731
    out = out_dir()
    data = str((ROOT / args.data).resolve()) if not Path(args.data).is_absolute() else args.data
    report: dict = {"stage": args.stage, **environment()}
    name = args.name or args.stage

    if args.stage == "pack":
        report.update(pack(Path(data), log))
    elif args.stage == "sweep":
        runs = {}
        for name in args.variants.split(","):
            r = train(out / f"sweep-{name}", data, [*VARIANTS[name], *QUIET, f"train.max_steps={args.sweep_steps}"], log, args.config)
            runs[name] = {k: r.get(k) for k in ("status", "steady_tokens_per_s", "steady_mfu", "steady_step_s", "tokens_per_s",
                                               "final_loss", "train_s", "wall_s", "attention", "error", "command")}
            log(f"{name}: {runs[name]['steady_tokens_per_s'] or 0:,.0f} tok/s, mfu {runs[name]['steady_mfu']}")
        ok = {k: v for k, v in runs.items() if v["status"] == "ok" and v["steady_tokens_per_s"] and not k.endswith("-dense")}
        report["variants"] = runs
        report["config"] = args.config
        report["fastest"] = max(ok, key=lambda k: ok[k]["steady_tokens_per_s"]) if ok else None
        base = runs.get("naive-sdpa-unpacked", {}).get("steady_tokens_per_s")
        if base and report["fastest"]:
            report["speedup_vs_naive"] = ok[report["fastest"]]["steady_tokens_per_s"] / base
        (ROOT / "runs").mkdir(exist_ok=True)
        (ROOT / "runs" / "train-bench-sweep.json").write_text(json.dumps(report, indent=2))
    else:
        sweep_file = ROOT / "runs" / "train-bench-sweep.json"
        sweep = json.loads(sweep_file.read_text()) if sweep_file.exists() else None
        variant = args.variant or (sweep or {}).get("fastest") or "flex-packed-compile"
        sets = [*VARIANTS[variant], f"train.mask={'dense' if args.stage == 'dense' else 'mixed'}",
                f"val.test_exact_match_samples={args.test_samples}", *args.set]
        steps = args.max_steps
        if steps is None:
            # the sweep ran the default config: its step time only sizes a run of that config
            same = args.config == CONFIG and (sweep or {}).get("config", CONFIG) == CONFIG
            step_s = ((sweep or {}).get("variants", {}).get(variant) or {}).get("steady_step_s") if same else None
            if not step_s:
                cal = train(out / "calibrate", data, [*sets, *QUIET, "train.max_steps=60"], log, args.config)
                step_s = cal.get("steady_step_s")
                report["calibration"] = {k: cal.get(k) for k in ("steady_tokens_per_s", "steady_step_s", "wall_s")}
            steps = int(args.train_minutes * 60 / step_s * 0.95) if step_s else 4000
        # Validation and checkpoints every quarter of the run keep their cost small next to training.
        every = max(1, -(-steps // 4))  # the last quarter ends on the final step (validated once)
        r = train(out / f"run-{name}", data, [*sets, f"train.max_steps={steps}", f"train.warmup_steps={min(200, steps // 10)}",
                                                     f"val.every={every}", f"checkpoint.every={every}"], log, args.config)
        report.update(config=args.config, variant=variant, max_steps=steps, result={k: v for k, v in r.items() if k not in ("val_examples",)})
        test = r.get("test") or {}
        report["summary"] = {"train_minutes": (r.get("train_s") or 0) / 60, "wall_minutes": r["wall_s"] / 60,
                             "steady_tokens_per_s": r.get("steady_tokens_per_s"), "steady_mfu": r.get("steady_mfu"),
                             "test_exact_match_sparse": test.get("exact_match_sparse"),
                             "test_exact_match_dense": test.get("exact_match_dense"), "test_n": test.get("n")}
    text = json.dumps(report)
    (out / f"train_bench_{name}.json").write_text(json.dumps(report, indent=2) + "\n")
    print(text)


if __name__ == "__main__":
    main()

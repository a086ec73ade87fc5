"""benchmarks/train_bench.py on the CPU (arith-tiny, a few steps): the main stage trains the
steps it is given, and --set reaches the training config (model.path: train on from a
checkpoint, as the GPU pipeline does with a ferried one)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import train_fixtures as fx

ROOT = Path(__file__).resolve().parents[2]


def bench(out: Path, data: Path, name: str, *extra) -> dict:
    env = {**os.environ, "OUT": str(out), "PYTHONPATH": str(ROOT / "python"), "OMP_NUM_THREADS": "1",
           "SPANATTN_PYTHON": sys.executable}
    cmd = [sys.executable, str(ROOT / "benchmarks" / "train_bench.py"), "--stage", "main", "--name", name,
           "--config", "configs/train/arith-tiny.yaml", "--data", str(data), "--variant", "sdpa-packed",
           "--test-samples", "0", *extra]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((out / f"train_bench_{name}.json").read_text())


def first_loss(run: Path) -> float:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return next(r["loss"] for r in rows if "loss" in r)


def test_main_stage_and_a_warm_start_through_set(tmp_path):
    data = fx.write_dataset(tmp_path / "data", fx.arith_splits(n_train=200, n_val=16, n_test=8))
    out = tmp_path / "bench"
    a = bench(out, data, "a", "--max-steps", "30")
    assert a["max_steps"] == 30 and a["result"]["status"] == "ok" and a["result"]["steps"] == 30
    ckpt = a["result"]["checkpoint"]
    b = bench(out, data, "b", "--max-steps", "3", "--set", f"model.path={ckpt}", "--set", "model.config=null",
              "--set", "model.tokenizer=auto")
    assert b["result"]["status"] == "ok" and f"model.path={ckpt}" in b["result"]["command"]
    assert first_loss(out / "run-b") < 0.7 * first_loss(out / "run-a")

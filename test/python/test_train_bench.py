"""benchmarks/train_bench.py on the CPU (arith-tiny, a few steps): the main stage trains the
steps it is given, and --set reaches the training config (model.path: train on from a
checkpoint, as the GPU pipeline does with a ferried one); a time box's SIGTERM to the process
group still leaves its result and a checkpoint of the step the run was on."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import train_fixtures as fx

ROOT = Path(__file__).resolve().parents[2]


def bench_cmd(out: Path, data: Path, name: str, *extra) -> tuple[list[str], dict]:
    env = {**os.environ, "OUT": str(out), "PYTHONPATH": str(ROOT / "python"), "OMP_NUM_THREADS": "1",
           "SPANATTN_PYTHON": sys.executable}
    cmd = [sys.executable, str(ROOT / "benchmarks" / "train_bench.py"), "--stage", "main", "--name", name,
           "--config", "configs/train/arith-tiny.yaml", "--data", str(data), "--variant", "sdpa-packed",
           "--test-samples", "0", *extra]
    return cmd, env


def bench(out: Path, data: Path, name: str, *extra) -> dict:
    cmd, env = bench_cmd(out, data, name, *extra)
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


def test_sigterm_to_the_process_group_keeps_the_result_and_the_current_step(tmp_path):
    """What `timeout` does to the pipeline's training: SIGTERM to the whole group."""
    data = fx.write_dataset(tmp_path / "data", fx.arith_splits(n_train=200, n_val=16, n_test=8))
    out = tmp_path / "bench"
    cmd, env = bench_cmd(out, data, "t", "--max-steps", "2000")
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # its own process group, as under `timeout`
    metrics = out / "run-t" / "metrics.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline and not (metrics.exists() and len(metrics.read_text().splitlines()) >= 3):
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr[-3000:]
    r = json.loads((out / "train_bench_t.json").read_text())["result"]
    assert r["status"] == "interrupted" and r["signal"] == "SIGTERM" and 0 < r["steps"] < 2000
    assert r["checkpoint"].endswith(f"step-{r['steps']:06d}")
    assert (Path(r["checkpoint"]) / "trainer_state.pt").exists()

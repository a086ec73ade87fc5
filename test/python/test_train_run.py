"""Training runs on CPU: loss goes down, checkpoints load in plain transformers, resume and
DDP reproduce the single uninterrupted run, LoRA on an HF folder, and every bad input."""
import copy
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import train_fixtures as fx
from spanattn import batches, checkpoint, masks, train
from spanattn.train_config import load_config

ROOT = Path(__file__).resolve().parents[2]
TINY_MODEL = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
              "num_key_value_heads": 2, "max_position_embeddings": 256}
# Measured with this exact config on CPU (torch 2.13+cpu, 1 thread, 2026-12-01): loss 5.098 at
# step 1 (ln 168 = 5.12, the untrained model) and 1.271 at step 40. The 10% margin leaves
# room for other BLAS builds and still fails if training stops working.
RECORDED_LOSS_AT_40 = 1.271


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return fx.write_dataset(tmp_path_factory.mktemp("data") / "arith", fx.arith_splits(n_train=300, n_val=32, n_test=16))


def tiny_config(data_dir, **sections) -> dict:
    cfg = {"data": str(data_dir), "seed": 0,
           "model": {"config": TINY_MODEL, "tokenizer": "char"},
           "train": {"max_steps": 40, "micro_batch_size": 4, "seq_len": 96, "lr": 1e-2, "warmup_steps": 5,
                     "cpu_threads": 1},
           "val": {"every": 0, "loss_batches": 1, "exact_match_samples": 4},
           "checkpoint": {"every": 0, "keep_last": 2}, "log": {"every": 1}}
    for name, values in sections.items():
        if isinstance(values, dict):
            cfg.setdefault(name, {}).update(values)
        else:
            cfg[name] = values
    return cfg


def losses(run_dir: Path) -> dict[int, float]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in rows if "loss" in r}


def run_subprocess(cfg: dict, out: Path, *extra, nproc: int = 1, **popen):
    cfg_path = out.parent / f"{out.name}.json"
    cfg_path.write_text(json.dumps(cfg))
    launcher = [sys.executable] + (["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc)] if nproc > 1 else [])
    env = {**os.environ, "PYTHONPATH": str(ROOT / "python"), "OMP_NUM_THREADS": "1"}
    cmd = [*launcher, "-m", "spanattn.train", "--config", str(cfg_path), "--out", str(out), *extra]
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


def finish(proc) -> dict:
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr[-3000:]
    return json.loads(stdout.strip().splitlines()[-1])


def test_tiny_run_loss_drops_and_checkpoint_loads_in_plain_transformers(dataset, tmp_path, monkeypatch):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    trained = {}
    save = checkpoint.save_checkpoint

    def capture(run_dir, step, model, *a, **k):
        trained["model"] = copy.deepcopy(model).eval()
        return save(run_dir, step, model, *a, **k)

    monkeypatch.setattr(checkpoint, "save_checkpoint", capture)
    result = train.run(load_config(tiny_config(dataset)), tmp_path / "run")
    assert result["status"] == "ok" and result["steps"] == 40
    curve = losses(tmp_path / "run")
    assert curve[1] > 3.5
    assert curve[40] < RECORDED_LOSS_AT_40 * 1.10, curve[40]
    assert 0 <= result["val"]["exact_match_sparse"] <= 1
    assert (tmp_path / "run" / "result.json").exists()

    ckpt = Path(result["checkpoint"])
    info = json.loads((ckpt / "spanattn.json").read_text())
    assert info["grammar"]["max_segments"] == 128 and info["step"] == 40
    plain = AutoModelForCausalLM.from_pretrained(ckpt).eval()
    tok = AutoTokenizer.from_pretrained(ckpt)
    assert tok.convert_tokens_to_ids("<seg>") != tok.unk_token_id
    from spanattn.tokenizer import SpanTokenizer

    span_tok = SpanTokenizer(tok)
    record = fx.arith_splits(n_train=1, n_val=0, n_test=0, seed=99, ops=(3, 3))["train"][0]
    (enc,), _ = batches.encode_records([record], span_tok)
    batch = batches.collate([enc], [[0]], span_tok.pad_id)
    with torch.no_grad():
        for sparse in (True, False):
            mask = masks.model_mask(batch.meta, sparse, "sdpa", torch.float32)
            ours = trained["model"](input_ids=batch.input_ids, attention_mask=mask, position_ids=batch.position_ids).logits
            theirs = plain(input_ids=batch.input_ids, attention_mask=mask, position_ids=batch.position_ids).logits
            assert torch.equal(ours, theirs)
        # plain transformers with its own causal mask = our dense mask, on the record's tokens
        n = len(enc)
        own = plain(input_ids=batch.input_ids[:, :n]).logits
        dense = masks.model_mask(batch.meta, False, "sdpa", torch.float32)
        ours = trained["model"](input_ids=batch.input_ids, attention_mask=dense, position_ids=batch.position_ids).logits
        assert torch.allclose(own, ours[:, :n], atol=1e-5)


def test_killed_run_resumes_to_the_same_loss_curve(dataset, tmp_path):
    cfg = tiny_config(dataset, train={"max_steps": 24}, checkpoint={"every": 8, "keep_last": 2})
    assert train.run(load_config(cfg), tmp_path / "full")["status"] == "ok"  # the uninterrupted reference

    proc = run_subprocess(cfg, tmp_path / "killed")
    for line in proc.stdout:
        event = json.loads(line)
        if event.get("event") == "checkpoint" and event["step"] == 16:
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    resumed = finish(run_subprocess(cfg, tmp_path / "killed", "--resume"))
    assert resumed["status"] == "ok" and resumed["resumed_from"].endswith("step-000016")
    a, b = losses(tmp_path / "full"), losses(tmp_path / "killed")
    assert sorted(a) == sorted(b) == list(range(1, 25))
    assert [a[s] for s in a] == [b[s] for s in a]  # same data order, schedule and RNG: identical
    assert [p.name for _, p in checkpoint.list_checkpoints(tmp_path / "killed")] == ["step-000016", "step-000024"]


def test_sigterm_checkpoints_the_current_step_and_resume_continues_the_curve(dataset, tmp_path):
    """A time box or scheduler (SIGTERM) costs no steps: the run saves the step it is on, says
    so, exits 143, and --resume goes on to the same loss curve as an uninterrupted run."""
    cfg = tiny_config(dataset, train={"max_steps": 24}, checkpoint={"every": 8, "keep_last": 3})
    assert train.run(load_config(cfg), tmp_path / "full")["status"] == "ok"

    proc = run_subprocess(cfg, tmp_path / "termed")
    for line in proc.stdout:
        event = json.loads(line)
        if event.get("event") == "step" and event["step"] == 11:  # after checkpoint 8, mostly before 16
            proc.send_signal(signal.SIGTERM)
            break
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, stderr[-3000:]
    result = json.loads(stdout.strip().splitlines()[-1])
    stopped_at = result["steps"]
    assert result["status"] == "interrupted" and result["stopped"] == "signal" and result["signal"] == "SIGTERM"
    assert 11 < stopped_at < 24
    assert result["checkpoint"].endswith(f"step-{stopped_at:06d}")
    assert f"stopped by SIGTERM at step {stopped_at} of 24" in stderr and "continue with --resume" in stderr
    assert "Traceback" not in stderr
    assert [s for s, _ in checkpoint.list_checkpoints(tmp_path / "termed")][-1] == stopped_at

    resumed = finish(run_subprocess(cfg, tmp_path / "termed", "--resume"))
    assert resumed["status"] == "ok" and resumed["resumed_from"].endswith(f"step-{stopped_at:06d}")
    a, b = losses(tmp_path / "full"), losses(tmp_path / "termed")
    assert sorted(a) == sorted(b) == list(range(1, 25))
    assert [a[s] for s in a] == [b[s] for s in a]


def test_time_limit_stops_with_a_final_validation_and_checkpoint(dataset, tmp_path):
    cfg = tiny_config(dataset, train={"max_steps": 24, "time_limit_s": 0.001})  # passed before step 1 ends
    result = train.run(load_config(cfg), tmp_path / "run")
    assert result["status"] == "ok" and result["stopped"] == "time_limit" and result["steps"] == 1
    assert "stopped by train.time_limit_s (0.001 s) at step 1 of 24" in result["message"]
    assert "val_loss_sparse" in result["val"]  # the final validation ran
    assert result["checkpoint"].endswith("step-000001")
    cfg["train"]["time_limit_s"] = None  # resume without the limit: the rest of the same run
    resumed = train.run(load_config(cfg), tmp_path / "run", resume=True)
    assert resumed["status"] == "ok" and resumed["steps"] == 24 and resumed["stopped"] is None
    full = tiny_config(dataset, train={"max_steps": 24})
    train.run(load_config(full), tmp_path / "full")
    a, b = losses(tmp_path / "full"), losses(tmp_path / "run")
    assert [a[s] for s in sorted(a)] == [b[s] for s in sorted(a)]


def test_two_processes_equal_one_with_the_same_global_batch(dataset, tmp_path):
    one = tiny_config(dataset, train={"max_steps": 6, "micro_batch_size": 2, "grad_accum": 2})
    two = tiny_config(dataset, train={"max_steps": 6, "micro_batch_size": 2, "grad_accum": 1})
    r1 = train.run(load_config(one), tmp_path / "one")
    r2 = finish(run_subprocess(two, tmp_path / "two", nproc=2))
    assert r1["world_size"] == 1 and r2["world_size"] == 2
    a, b = losses(tmp_path / "one"), losses(tmp_path / "two")
    assert sorted(a) == sorted(b)
    for s in a:
        assert a[s] == pytest.approx(b[s], rel=1e-5, abs=1e-6), (s, a[s], b[s])


def test_sigterm_stops_every_rank_at_the_same_step(dataset, tmp_path):
    """Under torchrun a stop request reaches the ranks at different moments; the flag travels
    with the step's all-reduce, so all ranks stop after the same step and rank 0 saves it
    (no rank left waiting in a collective). torchrun itself exits 1 with its own traceback."""
    cfg = tiny_config(dataset, train={"max_steps": 400, "micro_batch_size": 2}, val={"exact_match_samples": 0})
    proc = run_subprocess(cfg, tmp_path / "ddp", nproc=2, start_new_session=True)
    metrics = tmp_path / "ddp" / "metrics.jsonl"
    for line in proc.stdout:
        if json.loads(line).get("event") == "step" and metrics.exists():
            break
    os.killpg(proc.pid, signal.SIGTERM)  # every process of the group, as a time box does
    stdout, stderr = proc.communicate(timeout=120)
    result = json.loads(stdout.strip().splitlines()[-1])
    assert result["status"] == "interrupted" and result["world_size"] == 2, stderr[-3000:]
    assert [s for s, _ in checkpoint.list_checkpoints(tmp_path / "ddp")] == [result["steps"]]
    assert 0 < result["steps"] < 400


def test_nan_loss_stops_and_keeps_the_last_checkpoint(dataset, tmp_path):
    # lr 1e30 blows the weights up after the first update; the step-2 loss is not finite.
    cfg = tiny_config(dataset, train={"max_steps": 10, "lr": 1e30, "warmup_steps": 0}, checkpoint={"every": 1})
    result = train.run(load_config(cfg), tmp_path / "run")
    assert result["status"] == "nan"
    assert "step 2" in result["message"] and "step-000001" in result["message"]
    assert [s for s, _ in checkpoint.list_checkpoints(tmp_path / "run")] == [1]


def test_disk_full_while_checkpointing_keeps_the_previous_checkpoint(dataset, tmp_path, monkeypatch):
    import errno

    real_save = torch.save
    calls = {"n": 0}

    def flaky_save(obj, path, *a, **k):
        calls["n"] += 1
        if calls["n"] == 2:  # the second checkpoint: the disk fills mid-write
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, path, *a, **k)

    monkeypatch.setattr(checkpoint.torch, "save", flaky_save)
    cfg = tiny_config(dataset, train={"max_steps": 6}, checkpoint={"every": 2})
    with pytest.raises(train.TrainError, match=r"step-4 checkpoint \(No space left on device\); the previous one is intact: .*step-000002"):
        train.run(load_config(cfg), tmp_path / "run")
    ckpts = sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir())
    assert ckpts == ["step-000002"]  # no half-written step-000004, no temp folder
    monkeypatch.setattr(checkpoint.torch, "save", real_save)
    resumed = train.run(load_config(cfg), tmp_path / "run", resume=True)
    assert resumed["status"] == "ok" and resumed["resumed_from"].endswith("step-000002")


def _tiny_hf_model(path: Path, model_type: str = "llama") -> Path:
    """A random Llama and a char tokenizer without span tokens, saved like any HF folder."""
    from tokenizers import Regex, Tokenizer, decoders, models as tmodels, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    vocab = {c: i for i, c in enumerate(["<unk>", "<s>", "</s>", *sorted(set("0123456789+-*() .EvaluteSsbp"))])}
    t = Tokenizer(tmodels.WordLevel(vocab, unk_token="<unk>"))
    t.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    t.decoder = decoders.Fuse()
    PreTrainedTokenizerFast(tokenizer_object=t, unk_token="<unk>", bos_token="<s>", eos_token="</s>").save_pretrained(path)
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256)
    LlamaForCausalLM(cfg).save_pretrained(path)
    return path


def test_lora_on_an_hf_model_folder(dataset, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base = _tiny_hf_model(tmp_path / "base")
    cfg = tiny_config(dataset, model={"path": str(base), "config": None}, lora={"enabled": True, "r": 4, "alpha": 8},
                      train={"max_steps": 8, "lr": 5e-3}, checkpoint={"every": 4})
    result = train.run(load_config(cfg), tmp_path / "run")
    assert result["status"] == "ok"
    assert result["trainable_params"] < result["params"] / 4
    curve = losses(tmp_path / "run")
    assert curve[8] < curve[1]
    ckpt = Path(result["checkpoint"])
    merged = AutoModelForCausalLM.from_pretrained(ckpt)  # plain transformers, LoRA merged in
    tok = AutoTokenizer.from_pretrained(ckpt)
    before = AutoModelForCausalLM.from_pretrained(base)
    n_base = before.get_input_embeddings().weight.shape[0]
    assert merged.get_input_embeddings().weight.shape[0] == len(tok) == n_base + 142  # the span tokens
    assert not torch.equal(merged.model.layers[0].self_attn.q_proj.weight, before.model.layers[0].self_attn.q_proj.weight)
    assert torch.equal(merged.model.layers[0].mlp.up_proj.weight, before.model.layers[0].mlp.up_proj.weight)
    assert (ckpt / "adapter" / "adapter_config.json").exists()
    # resume from the adapter continues the same curve
    resumed_dir = tmp_path / "resumed"
    cfg_short = copy.deepcopy(cfg)
    train.run(load_config(cfg_short), resumed_dir)
    for s, p in checkpoint.list_checkpoints(resumed_dir):
        if s == 8:
            import shutil

            shutil.rmtree(p)
    (resumed_dir / "result.json").unlink()
    again = train.run(load_config(cfg_short), resumed_dir, resume=True)
    assert again["resumed_from"].endswith("step-000004")
    assert losses(resumed_dir)[8] == pytest.approx(curve[8], rel=1e-6)


def _write(cfg, tmp_path):
    p = tmp_path / "cfg.json"
    p.write_text(json.dumps(cfg))
    return str(p)


def _main_result(cfg, tmp_path, capsys) -> dict:
    code = train.main(["--config", _write(cfg, tmp_path), "--out", str(tmp_path / "run")])
    out = capsys.readouterr()
    result = json.loads(out.out.strip().splitlines()[-1])
    assert code == (0 if result["status"] == "ok" else 1)
    return result


def test_missing_model_folder(dataset, tmp_path, capsys):
    r = _main_result(tiny_config(dataset, model={"path": str(tmp_path / "no-such-model")}), tmp_path, capsys)
    assert r["status"] == "error" and r["error"]["kind"] == "model"
    assert "model directory not found" in r["error"]["message"]


def test_not_a_causal_lm(dataset, tmp_path, capsys):
    from transformers import T5Config

    T5Config(d_model=16, num_layers=1, num_heads=2, d_ff=32, vocab_size=50).save_pretrained(tmp_path / "t5")
    r = _main_result(tiny_config(dataset, model={"path": str(tmp_path / "t5")}), tmp_path, capsys)
    assert r["error"]["kind"] == "model" and "not a causal language model" in r["error"]["message"]


def test_model_with_other_grammar_caps_is_refused(dataset, tmp_path, capsys):
    base = _tiny_hf_model(tmp_path / "base")
    (base / "spanattn.json").write_text(json.dumps({"grammar": {**json.loads((ROOT / "python/spanattn/grammar.json").read_text()),
                                                                 "max_segments": 64}}))
    r = _main_result(tiny_config(dataset, model={"path": str(base), "config": None}), tmp_path, capsys)
    assert r["error"]["kind"] == "grammar" and "max_segments: 128 != 64" in r["error"]["message"]


def test_schema_failing_dataset_is_named(tmp_path, capsys):
    splits = fx.arith_splits(n_train=10, n_val=2, n_test=2)
    lines = [json.dumps(r) for r in splits["train"]]
    lines[4] = json.dumps({**splits["train"][4], "segments": "oops"})
    bad = fx.write_dataset(tmp_path / "bad", splits, raw_lines={"train": lines})
    r = _main_result(tiny_config(bad), tmp_path, capsys)
    assert r["error"]["kind"] == "data" and "train.jsonl:5:" in r["error"]["message"]


def test_record_longer_than_seq_len(dataset, tmp_path, capsys):
    r = _main_result(tiny_config(dataset, train={"seq_len": 30}), tmp_path, capsys)
    assert "longer than train.seq_len 30" in r["error"]["message"] and "long_records" in r["error"]["hint"]


def test_bad_config_key(dataset, tmp_path, capsys):
    r = _main_result(tiny_config(dataset, train={"lr": "fast"}), tmp_path, capsys)
    assert r["error"]["kind"] == "config" and r["error"]["message"] == "train.lr: expected a number, got 'fast'"


def test_ctrl_c_exits_130_and_names_the_newest_checkpoint(dataset, tmp_path, capsys, monkeypatch):
    def interrupted(cfg, run_dir, resume=False):
        ckpt = checkpoint.checkpoint_dir(run_dir, 8)
        ckpt.mkdir(parents=True)
        for name in ("trainer_state.pt", "spanattn.json"):  # what makes a checkpoint complete
            (ckpt / name).write_bytes(b"{}")
        raise KeyboardInterrupt

    monkeypatch.setattr(train, "run", interrupted)
    code = train.main(["--config", _write(tiny_config(dataset), tmp_path), "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 130 and "Traceback" not in err
    assert "training interrupted" in err and "step-000008 (continue with --resume)" in err


def test_tensorboard_events_hold_the_metrics_and_a_resume_purges_the_lost_tail(dataset, tmp_path):
    import shutil

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    def scalars(run: Path, tag: str) -> list[tuple[int, float]]:
        acc = EventAccumulator(str(run / "tensorboard"))
        acc.Reload()
        return [(e.step, e.value) for e in acc.Scalars(tag)]

    cfg = tiny_config(dataset, train={"max_steps": 12}, val={"every": 6, "exact_match_samples": 0},
                      checkpoint={"every": 6}, log={"every": 1, "tensorboard": True})
    run = tmp_path / "run"
    assert train.run(load_config(cfg), run)["status"] == "ok"
    loss = scalars(run, "train/loss")
    assert [step for step, _ in loss] == list(range(1, 13))
    assert all(abs(v - losses(run)[step]) < 1e-6 * max(1.0, abs(v)) for step, v in loss)  # stored as float32
    assert [step for step, _ in scalars(run, "val/val_loss_sparse")] == [6, 12]
    # as if killed after step 12 but before its checkpoint: the resume from step 6 writes steps
    # 7-12 again, and the reader sees each step once (the first run's 7-12 are purged)
    shutil.rmtree(checkpoint.checkpoint_dir(run, 12))
    assert train.run(load_config(cfg), run, resume=True)["resumed_from"].endswith("step-000006")
    assert [step for step, _ in scalars(run, "train/loss")] == list(range(1, 13))


def test_tensorboard_without_its_package_is_a_config_error_before_training(dataset, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails as if not installed
    r = _main_result(tiny_config(dataset, log={"tensorboard": True}), tmp_path, capsys)
    assert r["error"]["kind"] == "config" and r["error"]["message"].startswith("log.tensorboard:")
    assert "pip install tensorboard" in r["error"]["hint"]
    assert not (tmp_path / "run" / "metrics.jsonl").exists()


def test_keep_best_keeps_the_weights_of_the_best_validation(dataset, tmp_path, monkeypatch):
    """checkpoint.keep_best: checkpoints/best holds the model as it was at the validation with
    the lowest val_loss (scripted here, so the best is not the last), survives keep_last
    pruning, loads in plain transformers, and is what `eval --checkpoint best` reads."""
    from transformers import AutoModelForCausalLM

    from spanattn import evaluate

    scripted = iter([3.0, 1.0, 2.0, 1.5])  # validations at steps 5, 10, 15 and the final 20
    seen = {}

    def fake_validate(model, *a, **k):
        value = next(scripted)
        seen[value] = {n: p.detach().clone() for n, p in model.state_dict().items()}
        return {"val_loss_sparse": value - 0.1, "val_loss_dense": value + 0.1}

    monkeypatch.setattr(train, "validate", fake_validate)
    cfg = tiny_config(dataset, train={"max_steps": 20}, val={"every": 5, "exact_match_samples": 0},
                      checkpoint={"every": 5, "keep_last": 1, "keep_best": True})
    result = train.run(load_config(cfg), tmp_path / "run")
    assert result["status"] == "ok"
    assert result["best"]["step"] == 10 and result["best"]["metric"] == "val_loss"
    assert abs(result["best"]["value"] - 1.0) < 1e-9
    best = checkpoint.best_dir(tmp_path / "run")
    assert result["best"]["checkpoint"] == str(best)
    assert json.loads((best / "spanattn.json").read_text())["step"] == 10
    assert [p.name for _, p in checkpoint.list_checkpoints(tmp_path / "run")] == ["step-000020"]  # best is not pruned
    plain = AutoModelForCausalLM.from_pretrained(best)
    for name, value in plain.state_dict().items():
        if name in seen[1.0]:
            assert torch.equal(value, seen[1.0][name]), name
    assert not torch.equal(plain.state_dict()["model.norm.weight"], seen[1.5]["model.norm.weight"])
    # the best so far travels with the trainer state, so --resume keeps comparing against it
    assert checkpoint.load_trainer_state(tmp_path / "run" / "checkpoints" / "step-000020")["best"]["step"] == 10
    assert evaluate.find_checkpoint(tmp_path / "run", "best") == best


def test_keep_best_refuses_a_metric_the_validation_does_not_compute(dataset, tmp_path, capsys):
    cfg = tiny_config(dataset, val={"exact_match_samples": 0},
                      checkpoint={"keep_best": True, "best_metric": "exact_match_sparse"})
    r = _main_result(cfg, tmp_path, capsys)
    assert r["error"]["kind"] == "config" and "exact_match_sparse is not computed" in r["error"]["message"]
    assert not checkpoint.best_dir(tmp_path / "run").exists()


def test_a_spanattn_checkpoint_is_a_base_model_for_a_new_run(dataset, tmp_path):
    """model.path can name one of our own checkpoints (e.g. one ferried back from a GPU
    machine, bf16): a new run starts from its weights and tokenizer, not from scratch."""
    first = train.run(load_config(tiny_config(dataset)), tmp_path / "first")
    assert first["status"] == "ok"
    warm = tiny_config(dataset, model={"path": first["checkpoint"], "config": None, "tokenizer": "auto"},
                       train={"max_steps": 5, "warmup_steps": 1})
    second = train.run(load_config(warm), tmp_path / "second")
    assert second["status"] == "ok"
    start, end = losses(tmp_path / "first"), losses(tmp_path / "second")
    assert end[1] < 0.5 * start[1], (start[1], end[1])  # starts near where the first run ended
    assert end[1] < start[40] * 1.5
    ckpt = Path(second["checkpoint"])
    assert json.loads((ckpt / "spanattn.json").read_text())["base_model"] == first["checkpoint"]


def test_train_mix_adds_other_datasets_train_records(dataset, tmp_path, capsys):
    """train.mix: a second arith dataset (longer records) joins the train split, whole copies
    plus a seeded sample for the fraction; validation stays the main dataset's; a dataset of
    another task is refused; bad entries are config errors."""
    longer = fx.write_dataset(tmp_path / "longer", fx.arith_splits(n_train=40, n_val=4, n_test=4, seed=3, ops=(3, 4)))
    cfg = tiny_config(dataset, train={"max_steps": 2, "mix": [{"data": str(longer), "weight": 1.5}]},
                      val={"exact_match_samples": 0})
    assert train.main(["--config", _write(cfg, tmp_path), "--out", str(tmp_path / "run")]) == 0
    captured = capsys.readouterr()
    start = next(e for e in map(json.loads, captured.out.splitlines()) if e.get("event") == "start")
    assert start["train_records"] == 300 + 60  # the main train split and the mixed-in records
    assert f"train.mix: 60 records of {longer} (weight 1.5 of 40)" in captured.err
    resolved = json.loads((tmp_path / "run" / "config.resolved.json").read_text())
    assert resolved["train"]["mix"] == [{"data": str(longer), "weight": 1.5}]
    quiet = train.Output(tmp_path / "quiet", enabled=False)
    [(source, picked)] = train.mixed_sources(load_config(cfg), "arith", quiet)
    assert source == str(longer / "train.jsonl")
    assert len(picked) == 60  # all 40 once, and a sample of 20 of them
    assert len({json.dumps(x, sort_keys=True) for x in picked}) == 40
    assert [(source, picked)] == train.mixed_sources(load_config(cfg), "arith", quiet)  # seeded: the same records every time

    long = fx.write_dataset(tmp_path / "long", fx.arith_splits(n_train=6, n_val=2, n_test=2, seed=4, ops=(9, 10)))
    (tmp_path / "toolong").mkdir()
    r = _main_result(tiny_config(dataset, train={"max_steps": 2, "mix": [{"data": str(long)}]}), tmp_path / "toolong", capsys)
    assert r["status"] == "error" and r["error"]["message"].startswith(f"{long / 'train.jsonl'}:")  # its own file named

    news = fx.write_dataset(tmp_path / "news", {"train": fx.cnndm_records()[:4], "val": fx.cnndm_records()[:1]}, task="news")
    (tmp_path / "bad").mkdir()
    r = _main_result(tiny_config(dataset, train={"max_steps": 2, "mix": [{"data": str(news)}]}), tmp_path / "bad", capsys)
    assert r["status"] == "error" and "train.mix.0: " in r["error"]["message"] and "is a news dataset" in r["error"]["message"]
    with pytest.raises(Exception, match=r"train.mix.0.weight: must be positive"):
        load_config(tiny_config(dataset, train={"mix": [{"data": str(longer), "weight": 0}]}))
    with pytest.raises(Exception, match=r"train.mix.0.colour: unknown key"):
        load_config(tiny_config(dataset, train={"mix": [{"data": str(longer), "colour": "red"}]}))

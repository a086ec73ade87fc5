"""spanattn.widen: F times the attention heads of a trained checkpoint, the same function."""
import argparse
import json

import pytest
import torch
from transformers import AutoModelForCausalLM

from spanattn import evaluate, widen
from train_fixtures import arith_splits, save_run, write_dataset


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("widen")
    data = write_dataset(root / "arith", arith_splits(n_train=20, n_val=8, n_test=8))
    from spanattn.data import load_dataset
    ckpt, _ = save_run(root / "run", load_dataset(data).records("train"))
    return root, data, ckpt


def logits(ckpt, ids):
    model = AutoModelForCausalLM.from_pretrained(str(ckpt), dtype=torch.float32).eval()
    with torch.no_grad():
        return model(ids).logits


@pytest.mark.parametrize("factor", [2, 4])
def test_a_widened_checkpoint_computes_what_the_original_did(run, factor):
    root, _, ckpt = run
    out = root / f"wide{factor}"
    summary = widen.widen_checkpoint(ckpt, out, factor, noise=0.0)
    cfg = json.loads((out / "config.json").read_text())
    assert (cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"]) == (4 * factor, 2 * factor, 8)
    assert summary["kv_bytes_per_token_bf16"] == 2 * 2 * (2 * factor) * 8 * 2
    assert summary["params"] > summary["params_before"]
    for name in ("tokenizer.json", "spanattn.json"):
        assert (out / name).read_bytes() == (ckpt / name).read_bytes()
    ids = torch.randint(4, 20, (2, 30))
    torch.testing.assert_close(logits(out, ids), logits(ckpt, ids), rtol=1e-4, atol=1e-5)


def test_noise_breaks_the_copies_apart_and_keeps_the_function_close(run):
    root, _, ckpt = run
    out = root / "wide-noisy"
    widen.widen_checkpoint(ckpt, out, 2, noise=1e-2)
    from safetensors.torch import load_file
    w = load_file(str(out / "model.safetensors"))["model.layers.0.self_attn.k_proj.weight"]
    first, second = w.chunk(2, dim=0)
    assert not torch.equal(first, second)
    ids = torch.randint(4, 20, (2, 30))
    a, b = logits(out, ids), logits(ckpt, ids)
    assert not torch.equal(a, b)
    torch.testing.assert_close(a, b, rtol=0.05, atol=0.05)


def test_the_engine_decodes_a_widened_checkpoint_as_it_decoded_the_original(run):
    """Both modes, through spanattn.evaluate (the span state machine and the engine on CPU)."""
    root, data, ckpt = run
    out = root / "wide-eval"
    widen.widen_checkpoint(ckpt, out, 2, noise=0.0)
    base = dict(run=str(root / "run"), data=str(data), split="test", limit=None, batch=4, max_new_tokens=20,
                modes=["dense", "sparse"], throughput=False, sweep_batches=[1], sweep_lengths=[], device="cpu",
                allow_reference=False, no_graph=False, continuous=False, hf_limit=None, compile_state=False,
                compile_decode=False, step_plan=True)
    a = evaluate.evaluate(argparse.Namespace(**base, checkpoint=str(ckpt), out=str(root / "eval-a")))
    b = evaluate.evaluate(argparse.Namespace(**base, checkpoint=str(out), out=str(root / "eval-b")))
    for mode in ("dense", "sparse"):
        gen_a = [s["generated"] for s in a["modes"][mode]["samples"]]
        gen_b = [s["generated"] for s in b["modes"][mode]["samples"]]
        assert gen_a == gen_b and gen_a


def test_what_cannot_be_widened_is_refused(run, tmp_path):
    root, _, ckpt = run
    with pytest.raises(widen.WidenError, match="positive integer"):
        widen.widen_checkpoint(ckpt, tmp_path / "x", 0)
    with pytest.raises(widen.WidenError, match="not a checkpoint folder"):
        widen.widen_checkpoint(tmp_path, tmp_path / "y", 2)
    with pytest.raises(widen.WidenError, match="not a multiple of 12 attention heads.*factors that fit: 2, 4, 8"):
        widen.widen_checkpoint(ckpt, tmp_path / "x", 3)
    with pytest.raises(widen.WidenError, match="only Llama"):
        widen.widen_state({}, {"model_type": "gpt2"}, 2)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "f").write_text("x")
    with pytest.raises(widen.WidenError, match="exists and is not empty") as e:
        widen.widen_checkpoint(ckpt, tmp_path / "full", 2)
    assert e.value.hint == "--force replaces it"


def test_the_module_reports_bad_input_as_the_cli_bridge_expects(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        widen.main(["--checkpoint", str(tmp_path), "--out", str(tmp_path / "z")])
    assert e.value.code == 2
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["status"] == "error" and "not a checkpoint folder" in line["error"]["message"]
    assert "checkpoints/step-N" in line["error"]["hint"]


def test_a_failed_write_leaves_no_half_written_checkpoint(run, tmp_path, monkeypatch):
    _, _, ckpt = run
    import safetensors.torch

    def broken(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(safetensors.torch, "save_file", broken)
    with pytest.raises(OSError, match="disk full"):
        widen.widen_checkpoint(ckpt, tmp_path / "out", 2)
    assert list(tmp_path.iterdir()) == []

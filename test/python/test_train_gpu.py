"""The GPU training path: FlexAttention block masks equal SDPA boolean masks (forward and
backward), and a short bf16 run with torch.compile trains and checkpoints.

    SPANATTN_PYTHON=python3 python3 -m pytest test/python/test_train_gpu.py -m gpu
"""
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import train_fixtures as fx
from spanattn import batches, masks, train
from spanattn import model as models
from spanattn import tokenizer as tokenizers
from spanattn.train_config import load_config

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

SPEC = {"hidden_size": 128, "intermediate_size": 256, "num_hidden_layers": 2, "num_attention_heads": 4,
        "num_key_value_heads": 2, "max_position_embeddings": 512}


@pytest.mark.parametrize("sparse", [True, False])
def test_flex_block_mask_equals_sdpa_boolean_mask(sparse):
    records = fx.arith_splits(n_train=64, n_val=0, n_test=0, ops=(2, 5))["train"]
    tok = tokenizers.build_char_tokenizer(tokenizers.record_texts(records))
    enc, _ = batches.encode_records(records, tok)
    lengths = [len(e) for e in enc]
    rows = batches.pack(np.array(lengths), np.arange(len(enc)), 256)[:4]
    b = batches.collate(enc, rows, tok.pad_id, T=256).to(torch.device("cuda"))
    out = {}
    for impl in ("sdpa", "flex_attention"):
        torch.manual_seed(0)
        m = models.build_default_model(SPEC, len(tok), attn_implementation=impl).cuda()
        loss = train.micro_loss(m, b, sparse, impl, torch.float32, None, torch.device("cuda"))
        loss.backward()
        out[impl] = (loss.item(), torch.cat([p.grad.flatten() for p in m.parameters()]))
    assert out["sdpa"][0] == pytest.approx(out["flex_attention"][0], rel=1e-4)
    assert torch.allclose(out["sdpa"][1], out["flex_attention"][1], rtol=1e-3, atol=1e-5)


@pytest.mark.parametrize("attention,compile_model", [("flex", True), ("sdpa", False)])
def test_short_bf16_run_trains_and_checkpoints(tmp_path, attention, compile_model):
    data = fx.write_dataset(tmp_path / "arith", fx.arith_splits(n_train=2000, n_val=64, n_test=64))
    cfg = {"data": str(data), "model": {"config": SPEC, "tokenizer": "char", "attention": attention, "compile": compile_model},
           "train": {"max_steps": 60, "micro_batch_size": 16, "seq_len": 256, "lr": 3e-3, "warmup_steps": 10},
           "val": {"every": 30, "exact_match_samples": 16, "exact_match_modes": ["sparse", "dense"],
                   "test_exact_match_samples": 32},
           "checkpoint": {"every": 30}, "log": {"every": 10}}
    result = train.run(load_config(cfg), tmp_path / "run")
    assert result["status"] == "ok" and result["device"].startswith("cuda")
    assert result["attention"] == ("flex_attention" if attention == "flex" else "sdpa")
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    curve = [r["loss"] for r in rows if "loss" in r]
    assert curve[-1] < curve[0] / 2
    assert result["mfu"] is None or 0 < result["mfu"] < 1
    assert "exact_match_sparse" in result["test"]
    assert Path(result["checkpoint"], "model.safetensors").exists()

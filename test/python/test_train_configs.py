"""Every shipped training and model config validates, and opens with the command that uses it."""
from pathlib import Path

import pytest
import torch
import yaml

from spanattn import model as models
from spanattn.train_config import TrainConfig, load_config

ROOT = Path(__file__).resolve().parents[2]
TRAIN_CONFIGS = sorted((ROOT / "configs/train").glob("*.yaml"))
MODEL_CONFIGS = sorted((ROOT / "configs/model").glob("*.yaml"))


def test_configs_exist():
    names = {p.stem for p in TRAIN_CONFIGS}
    assert {"arith-tiny", "arith-small", "news-small", "lora-example"} <= names


@pytest.mark.parametrize("path", TRAIN_CONFIGS, ids=lambda p: p.name)
def test_train_config_validates(path):
    first = path.read_text().splitlines()[0]
    assert first.startswith("# spanattn train --config configs/train/" + path.name), first
    raw = yaml.safe_load(path.read_text())
    if raw.get("lora", {}).get("enabled") and not raw.get("model", {}).get("path"):
        raw.setdefault("model", {})["path"] = "path/to/hf-causal-lm"  # given with --model
    cfg = load_config({"data": "datasets/x", **raw})
    assert isinstance(cfg, TrainConfig)
    if not cfg.model.path:
        spec = models.load_model_spec(cfg.model.config)
        assert spec.get("max_position_embeddings", 2048) >= cfg.train.seq_len


@pytest.mark.parametrize("path", MODEL_CONFIGS, ids=lambda p: p.name)
def test_model_config_validates(path):
    assert path.read_text().startswith("# spanattn train --config configs/train/")
    spec = models.load_model_spec(path)
    with torch.device("meta"):  # shapes only: no time spent initialising weights
        model = models.build_default_model(spec, vocab_size=256)
    assert model.config.num_attention_heads % model.config.num_key_value_heads == 0  # MHA or GQA


@pytest.mark.parametrize("shape", ["llama-long", "llama-long-kv16"])
def test_replay_shapes_llama_long_are_the_arith_long_models(shape):
    from spanattn import replay

    spec = models.load_model_spec(ROOT / f"configs/model/{shape}.yaml")
    for key in ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                "num_key_value_heads", "head_dim"):
        assert replay.SHAPES[shape][key] == spec[key], key


def test_overrides_and_config_files_read_numbers_as_the_cli_does(tmp_path):
    # YAML 1.1 (PyYAML) reads `1e-3` as a string; the CLI (YAML 1.2) as a number. The Python
    # entry point must agree: `--set train.lr=1e-3` once stopped a GPU run with "expected a number".
    from spanattn.train import apply_overrides, read_config_file

    cfg = apply_overrides({"train": {"lr": 0.1}}, ["train.lr=1e-3", "train.max_steps=12", "model.tokenizer=char",
                                                   "val.every=2E1"])
    assert cfg == {"train": {"lr": 0.001, "max_steps": 12}, "model": {"tokenizer": "char"}, "val": {"every": 20.0}}
    f = tmp_path / "c.yaml"
    f.write_text("train:\n  lr: 3e-4\n  warmup_steps: 5\nmodel:\n  attention: auto\n")
    assert read_config_file(str(f)) == {"train": {"lr": 0.0003, "warmup_steps": 5}, "model": {"attention": "auto"}}
    assert load_config({"data": "datasets/x", **apply_overrides(yaml.safe_load(
        (ROOT / "configs/train/arith-tiny.yaml").read_text()), ["train.lr=1e-3"])}).train.lr == 0.001

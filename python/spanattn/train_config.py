"""The training config: sections, defaults and checks (the one place defaults live).

``spanattn train`` validates a YAML config with its zod schema (cli/commands/train.ts, same
keys, no defaults), writes it to ``runs/<id>/config.json`` and runs ``spanattn.train`` on it;
here the defaults are filled in and the resolved config is recorded in the run folder.

    PYTHONPATH=python python -m spanattn.train_config            # the defaults, as JSON
    PYTHONPATH=python python -m spanattn.train_config --fields   # key tree (for the TS test)
"""
from __future__ import annotations

import dataclasses
import json
import sys
from dataclasses import dataclass, field
from typing import Any, get_args, get_origin, get_type_hints


class ConfigError(Exception):
    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.hint = hint


@dataclass
class ModelSection:
    path: str | None = None  # an HF causal-LM folder (or hub id); None: the embedded default
    config: Any = "configs/model/llama-tiny.yaml"  # embedded default: YAML path or mapping
    tokenizer: str = "auto"  # embedded default: auto (char for arith, bpe otherwise) | char | bpe
    bpe_vocab_size: int = 4096
    dtype: str = "float32"  # weights: float32 | bfloat16 (bf16 autocast runs on GPU either way)
    attention: str = "auto"  # auto (flex on CUDA, sdpa on CPU) | sdpa | flex | eager
    compile: bool = False  # torch.compile the model (GPU)


@dataclass
class LoraSection:
    enabled: bool = False
    r: int = 8
    alpha: int = 16
    dropout: float = 0.0
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])
    train_new_tokens: bool = True  # the added span-token embeddings are trained


@dataclass
class MixEntry:
    data: str = ""  # another dataset folder of the same task: its train split joins the main one's
    # its share an epoch, in copies of its train split: 2 = every record twice, 0.25 = a quarter
    # of its records (drawn with the run's seed; the same ones every epoch)
    weight: float = 1.0


@dataclass
class TrainSection:
    max_steps: int = 200
    micro_batch_size: int = 8  # rows per process per micro-step
    grad_accum: int = 1
    seq_len: int = 256  # row length (packing) / longest record allowed
    packing: bool = True  # pack records into fixed rows; false: one record per row, length-bucketed
    lr: float = 1e-3
    min_lr_ratio: float = 0.1  # cosine decays to lr * min_lr_ratio
    warmup_steps: int = 20
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0
    mask: str = "mixed"  # mixed | sparse | dense
    mixed_sparse_ratio: float = 0.5  # mixed: probability a step trains under the sparse mask
    loss_on: str = "response"  # response (incl. directives) | all
    precision: str = "auto"  # auto (bf16 autocast on CUDA, fp32 on CPU) | bf16 | fp32
    device: str = "auto"  # auto | cpu | cuda
    cpu_threads: int = 0  # torch threads per process on CPU; 0: the cores divided among processes
    long_records: str = "error"  # a record longer than seq_len: error | skip
    peak_tflops: float | None = None  # for MFU when the GPU is not in the built-in table
    # stop after this many seconds of wall time since the run started (loading and compiling
    # included), with the final validation and checkpoint; --resume continues the run
    time_limit_s: float | None = None
    # more training data (short records beside long ones, say): the train splits of these
    # datasets join `data`'s; validation and test stay `data`'s
    mix: list[MixEntry] = field(default_factory=list)


@dataclass
class ValSection:
    every: int = 100  # steps between validations (0: only at the end)
    loss_batches: int = 4
    exact_match_samples: int = 64  # arith: greedy-decoded val records per validation (0: off)
    exact_match_modes: list[str] = field(default_factory=lambda: ["sparse"])  # sparse | dense
    max_new_tokens: int | None = None  # None: 1.25x the longest response seen + 8
    decode_batch_size: int = 64
    test_exact_match_samples: int = 0  # at the end, on the test split (-1: all of it)


@dataclass
class CheckpointSection:
    every: int = 100  # 0: only the final checkpoint
    keep_last: int = 2
    # also keep checkpoints/best: the weights at the best validation so far (by best_metric),
    # never pruned; `spanattn eval --checkpoint best` reads it. For small data that overfits.
    keep_best: bool = False
    best_metric: str = "val_loss"  # val_loss = mean of the sparse and dense validation losses


@dataclass
class LogSection:
    every: int = 10
    tensorboard: bool = False  # also write the metrics as TensorBoard events to <run>/tensorboard


@dataclass
class TrainConfig:
    data: str = ""
    seed: int = 0
    model: ModelSection = field(default_factory=ModelSection)
    lora: LoraSection = field(default_factory=LoraSection)
    train: TrainSection = field(default_factory=TrainSection)
    val: ValSection = field(default_factory=ValSection)
    checkpoint: CheckpointSection = field(default_factory=CheckpointSection)
    log: LogSection = field(default_factory=LogSection)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


CHOICES = {
    "model.tokenizer": ("auto", "char", "bpe"),
    "model.dtype": ("float32", "bfloat16"),
    "model.attention": ("auto", "sdpa", "flex", "eager"),
    "train.mask": ("mixed", "sparse", "dense"),
    "train.loss_on": ("response", "all"),
    "train.precision": ("auto", "bf16", "fp32"),
    "train.device": ("auto", "cpu", "cuda"),
    "train.long_records": ("error", "skip"),
    "checkpoint.best_metric": ("val_loss", "val_loss_sparse", "val_loss_dense", "exact_match_sparse",
                               "exact_match_dense"),
}
POSITIVE = {"train.max_steps", "train.time_limit_s", "train.micro_batch_size", "train.grad_accum", "train.seq_len", "lora.r",
            "val.decode_batch_size", "log.every", "checkpoint.keep_last", "model.bpe_vocab_size"}


def _check_value(path: str, value, hint) -> Any:
    origin = get_origin(hint)
    if hint is Any:
        return value
    if origin in (list,):
        (item,) = get_args(hint)
        if not isinstance(value, list):
            raise ConfigError(f"{path}: expected a list, got {value!r}")
        if dataclasses.is_dataclass(item):
            return [_build(item, v, f"{path}.{i}.") for i, v in enumerate(value)]
        return [_check_value(f"{path}.{i}", v, item) for i, v in enumerate(value)]
    args = get_args(hint)
    if args and type(None) in args:  # optional
        if value is None:
            return None
        (hint,) = [a for a in args if a is not type(None)]
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{path}: expected true or false, got {value!r}")
    elif hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{path}: expected an integer, got {value!r}")
    elif hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{path}: expected a number, got {value!r}")
        value = float(value)
    elif hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{path}: expected a string, got {value!r}")
    if path in CHOICES and value not in CHOICES[path]:
        raise ConfigError(f"{path}: expected one of {', '.join(CHOICES[path])}, got {value!r}")
    if path in POSITIVE and value <= 0:
        raise ConfigError(f"{path}: must be positive, got {value!r}")
    return value


def _build(cls, data: dict, prefix: str):
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix or '(root)'}: expected a mapping, got {data!r}")
    hints = get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"{prefix}{unknown[0]}: unknown key (known: {', '.join(sorted(names))})")
    kwargs = {}
    for name, value in data.items():
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            kwargs[name] = _build(hint, value, f"{prefix}{name}.")
        else:
            kwargs[name] = _check_value(f"{prefix}{name}", value, hint)
    return cls(**kwargs)


def load_config(data: dict) -> TrainConfig:
    cfg = _build(TrainConfig, data, "")
    if not cfg.data:
        raise ConfigError("data: the dataset folder is required", "pass --data datasets/<name>")
    if not 0.0 <= cfg.train.mixed_sparse_ratio <= 1.0:
        raise ConfigError(f"train.mixed_sparse_ratio: must be in [0, 1], got {cfg.train.mixed_sparse_ratio}")
    for mode in cfg.val.exact_match_modes:
        if mode not in ("sparse", "dense"):
            raise ConfigError(f"val.exact_match_modes: expected sparse or dense, got {mode!r}")
    for i, m in enumerate(cfg.train.mix):
        if not m.data:
            raise ConfigError(f"train.mix.{i}.data: a dataset folder is required")
        if not m.weight > 0:
            raise ConfigError(f"train.mix.{i}.weight: must be positive, got {m.weight!r}")
    if cfg.lora.enabled and not cfg.model.path:
        raise ConfigError("lora.enabled needs model.path (an HF model folder to adapt)")
    return cfg


def field_tree(cls=TrainConfig) -> dict:
    """{key: subtree or null}: what the TS schema must mirror."""
    hints = get_type_hints(cls)
    return {f.name: (field_tree(hints[f.name]) if dataclasses.is_dataclass(hints[f.name]) else None)
            for f in dataclasses.fields(cls)}


if __name__ == "__main__":
    print(json.dumps(field_tree() if "--fields" in sys.argv else TrainConfig().to_dict(), indent=2))

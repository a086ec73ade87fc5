"""Models for span training (DESIGN §3): the embedded default and any HF causal-LM directory.

The embedded default is a transformers ``LlamaForCausalLM`` (RoPE, RMSNorm, SwiGLU, GQA)
built from ``configs/model/*.yaml`` and trained from scratch, so checkpoints load with plain
transformers. The span mask reaches every attention layer as a 4-D ``attention_mask``
(masks.model_mask): transformers passes a 4-D mask through untouched, as a boolean mask to
SDPA or a BlockMask to FlexAttention.

    PYTHONPATH=python python -c "from spanattn import model; \
        m = model.build_default_model('configs/model/llama-tiny.yaml', vocab_size=200); \
        print(model.count_parameters(m))"
"""
from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import torch

MODEL_KEYS = {
    "hidden_size": int, "intermediate_size": int, "num_hidden_layers": int, "num_attention_heads": int,
    "num_key_value_heads": int, "max_position_embeddings": int, "rope_theta": float, "rms_norm_eps": float,
    "tie_word_embeddings": bool, "initializer_range": float, "head_dim": int,
}
REQUIRED_MODEL_KEYS = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads")


class ModelError(Exception):
    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.hint = hint


def load_model_spec(spec: str | dict) -> dict:
    """A model shape from a YAML file or an inline mapping, checked key by key."""
    if isinstance(spec, (str, Path)):
        from . import yamlio

        path = Path(spec)
        if not path.exists() and not path.is_absolute():
            path = Path(__file__).resolve().parents[2] / path  # shipped configs, from any cwd
        if not path.exists():
            raise ModelError(f"model config not found: {path}", "model.config names a file in configs/model/")
        spec = yamlio.load(path.read_text()) or {}
        where = str(path)
    else:
        where = "model.config"
    unknown = sorted(set(spec) - set(MODEL_KEYS))
    if unknown:
        raise ModelError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(MODEL_KEYS)})")
    missing = [k for k in REQUIRED_MODEL_KEYS if k not in spec]
    if missing:
        raise ModelError(f"{where}: missing key {missing[0]!r}")
    for key, value in spec.items():
        kind = MODEL_KEYS[key]
        ok = isinstance(value, bool) if kind is bool else (isinstance(value, (int, float)) and not isinstance(value, bool)
                                                         and (kind is float or float(value).is_integer()))
        if not ok:
            raise ModelError(f"{where}: {key} must be {kind.__name__} (got {value!r})")
    heads, kv = spec["num_attention_heads"], spec.get("num_key_value_heads", spec["num_attention_heads"])
    if heads % kv:
        raise ModelError(f"{where}: num_attention_heads ({heads}) must be a multiple of num_key_value_heads ({kv})")
    if "head_dim" not in spec and spec["hidden_size"] % heads:
        raise ModelError(f"{where}: hidden_size ({spec['hidden_size']}) must be a multiple of num_attention_heads ({heads})")
    return dict(spec)


def attention_implementation(choice: str, device: torch.device) -> str:
    """auto: FlexAttention block masks on CUDA (it skips masked blocks), SDPA elsewhere
    (FlexAttention has no backward on CPU)."""
    if choice == "auto":
        return "flex_attention" if device.type == "cuda" else "sdpa"
    if choice == "flex":
        if device.type != "cuda":
            raise ModelError("model.attention flex needs a CUDA device (FlexAttention has no backward on CPU)",
                             "use model.attention: sdpa on CPU")
        return "flex_attention"
    return choice


def build_default_model(spec: str | dict, vocab_size: int, pad_id: int = 0, bos_id: int = 1, eos_id: int = 2,
                        attn_implementation: str = "sdpa", dtype: torch.dtype = torch.float32):
    from transformers import LlamaConfig, LlamaForCausalLM

    s = load_model_spec(spec)
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=s["hidden_size"],
        intermediate_size=s["intermediate_size"],
        num_hidden_layers=s["num_hidden_layers"],
        num_attention_heads=s["num_attention_heads"],
        num_key_value_heads=s.get("num_key_value_heads", s["num_attention_heads"]),
        head_dim=s.get("head_dim"),
        max_position_embeddings=s.get("max_position_embeddings", 2048),
        rms_norm_eps=s.get("rms_norm_eps", 1e-6),
        rope_parameters={"rope_type": "default", "rope_theta": float(s.get("rope_theta", 10000.0))},
        tie_word_embeddings=s.get("tie_word_embeddings", True),
        initializer_range=s.get("initializer_range", 0.02),
        pad_token_id=pad_id, bos_token_id=bos_id, eos_token_id=eos_id,
        attention_dropout=0.0,
    )
    config._attn_implementation = attn_implementation
    model = LlamaForCausalLM(config)
    return model.to(dtype)


HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


def load_hf_model(path: str, attn_implementation: str = "sdpa", dtype: torch.dtype = torch.float32):
    """An HF causal LM and its tokenizer from a directory (or a hub id where there is network)."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    p = Path(path).expanduser()
    if not p.exists():
        if path.startswith((".", "/", "~")) or not HUB_ID.match(path) or path.count("/") > 1:
            raise ModelError(f"model directory not found: {path}", "model.path takes an HF model folder (config.json + weights)")
    elif not (p / "config.json").exists():
        raise ModelError(f"{path} is not a Hugging Face model directory (no config.json)")
    try:
        config = AutoConfig.from_pretrained(path)
    except (OSError, ValueError) as e:
        raise ModelError(f"cannot read the model config of {path}: {str(e).splitlines()[0]}") from None
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    if config.model_type not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        raise ModelError(f"{path} is not a causal language model (model_type {config.model_type!r})",
                         "pass a decoder-only model such as Llama, Qwen, Mistral or GPT-2")
    try:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, attn_implementation=attn_implementation)
        hf_tok = AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as e:
        raise ModelError(f"cannot load {path}: {str(e).splitlines()[0]}") from None
    return model, hf_tok


def resize_for_tokenizer(model, vocab_size: int) -> None:
    if model.get_input_embeddings().weight.shape[0] != vocab_size:
        model.resize_token_embeddings(vocab_size, mean_resizing=True)


def apply_lora(model, r: int, alpha: int, dropout: float, target_modules: list[str], new_token_ids: list[int]):
    """Wrap in a peft LoRA model; the new span-token embeddings train too (they start untrained)."""
    from peft import LoraConfig, get_peft_model

    kwargs = {}
    if new_token_ids:
        kwargs["trainable_token_indices"] = {"embed_tokens": list(new_token_ids)}
    cfg = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=list(target_modules),
                     task_type="CAUSAL_LM", **kwargs)
    return get_peft_model(model, cfg)


def merged_for_saving(model):
    """The plain transformers model to save: LoRA merged into a copy (the live one keeps training)."""
    if hasattr(model, "merge_and_unload"):
        return copy.deepcopy(model).merge_and_unload()
    return model


def count_parameters(model, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def training_flops(config, n_params: int, tokens: int, attended_pairs: int) -> float:
    """Model FLOPs of one training step (forward + backward), PaLM appendix B style:
    6 N per token for the weights (input embedding lookup excluded, output projection
    included) plus 12 L d_attn per causal (query, key) pair inside a record. Dense causal
    pairs are counted under either mask, so the sparse mask's saving shows as time, not FLOPs."""
    emb = config.vocab_size * config.hidden_size
    n = n_params - (0 if getattr(config, "tie_word_embeddings", False) else emb)
    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    return 6.0 * n * tokens + 12.0 * config.num_hidden_layers * heads * head_dim * attended_pairs


# Dense bf16 tensor-core peaks, FLOP/s (vendor datasheets, without sparsity).
PEAK_BF16 = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "A10": 125e12, "4090": 165e12}


def peak_flops(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for key, value in PEAK_BF16.items():
        if key in name:
            return value
    return None


def spanattn_info(grammar: dict, config: dict, step: int, extra: dict | None = None) -> str:
    return json.dumps({"grammar": grammar, "train_config": config, "step": step, **(extra or {})}, indent=2) + "\n"

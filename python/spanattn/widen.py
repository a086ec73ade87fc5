"""Widen a trained Llama checkpoint's attention: F times the query and KV heads, same function.

    python -m spanattn.widen --checkpoint runs/x/checkpoints/step-001000 --factor 2 --out runs/x-wide

Every layer's q, k and v projections are tiled F times along the head axis and the output
projection's input columns tiled F times and divided by F, so the widened model computes what
the original did (up to rounding): copy c of query head j reads copy c of its KV head, and the
F copies' outputs average back to the original. The KV cache per token grows F times; nothing
else changes (hidden size, MLP, vocabulary, tokenizer, span grammar).

Why: a decode step reads its KV cache and does a fixed amount of other work. Training on from a
widened checkpoint gives a KV-heavier model of the same quality at a fraction of the cost of
training one from scratch (benchmarks/README.md, "Session 7"). Identical copies get identical
gradients and would stay copies for ever, so `--noise` (default 1e-3, a fraction of each
weight matrix's standard deviation) perturbs copies 1..F-1; 0 keeps the function exact.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

import torch

# files of a checkpoint folder besides the weights and config.json, copied as they are
PASSENGERS = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "spanattn.json",
              "generation_config.json")


class WidenError(ValueError):
    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.hint = hint


def widen_state(state: dict[str, torch.Tensor], config: dict, factor: int, noise: float = 0.0,
                seed: int = 0) -> tuple[dict[str, torch.Tensor], dict]:
    """The widened state dict and config.json dict of a Llama-family checkpoint."""
    if factor < 1:
        raise WidenError(f"factor must be a positive integer (got {factor})")
    if config.get("model_type") != "llama":
        raise WidenError(f"only Llama checkpoints can be widened (model_type {config.get('model_type')!r})")
    hq, hkv = config["num_attention_heads"], config.get("num_key_value_heads") or config["num_attention_heads"]
    head_dim = config.get("head_dim") or config["hidden_size"] // hq
    hidden = config["hidden_size"]
    if hidden % (hq * factor):  # transformers checks this even when head_dim is given
        fits = [f for f in range(2, 9) if hidden % (hq * f) == 0]
        raise WidenError(f"hidden_size {hidden} is not a multiple of {hq * factor} attention heads, which transformers "
                         f"requires; factors that fit: {', '.join(map(str, fits)) or 'none up to 8'}")
    gen = torch.Generator().manual_seed(seed)

    def perturbed(copies: list[torch.Tensor]) -> list[torch.Tensor]:
        if noise <= 0:
            return copies
        out = [copies[0]]
        for w in copies[1:]:
            scale = noise * float(w.float().std())
            out.append((w.float() + scale * torch.randn(w.shape, generator=gen)).to(w.dtype))
        return out

    new = {}
    for name, w in state.items():
        if name.endswith(("self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight",
                          "self_attn.q_proj.bias", "self_attn.k_proj.bias", "self_attn.v_proj.bias")):
            heads = hq if ".q_proj." in name else hkv
            if w.shape[0] != heads * head_dim:
                raise WidenError(f"{name}: {w.shape[0]} rows, expected {heads} heads x {head_dim}")
            new[name] = torch.cat(perturbed([w] * factor), dim=0)  # head-major rows: copy c = heads c*H..
        elif name.endswith("self_attn.o_proj.weight"):
            if w.shape[1] != hq * head_dim:
                raise WidenError(f"{name}: {w.shape[1]} columns, expected {hq} heads x {head_dim}")
            new[name] = torch.cat(perturbed([(w.float() / factor).to(w.dtype)] * factor), dim=1)
        else:
            new[name] = w
    cfg = dict(config)
    cfg.update(num_attention_heads=hq * factor, num_key_value_heads=hkv * factor, head_dim=head_dim)
    return new, cfg


def widen_checkpoint(src: str | Path, out: str | Path, factor: int, noise: float = 1e-3, seed: int = 0,
                     force: bool = False) -> dict:
    """Write the widened checkpoint folder `out`; returns a summary (parameters, KV bytes per token)."""
    from safetensors.torch import load_file, save_file

    src, out = Path(src), Path(out)
    weights = sorted(src.glob("*.safetensors"))
    if not (src / "config.json").is_file() or not weights:
        raise WidenError(f"{src}: not a checkpoint folder (needs config.json and *.safetensors)",
                         "a run's checkpoints are runs/<id>/checkpoints/step-N")
    if out.exists() and any(out.iterdir()) and not force:
        raise WidenError(f"{out} exists and is not empty", "--force replaces it")
    if out.resolve() == src.resolve():
        raise WidenError("--out must differ from --checkpoint")
    config = json.loads((src / "config.json").read_text())
    state: dict[str, torch.Tensor] = {}
    for f in weights:
        state.update(load_file(str(f)))
    tied = config.get("tie_word_embeddings") and "lm_head.weight" in state
    if tied:  # saved once, as transformers does
        state.pop("lm_head.weight")
    new_state, new_cfg = widen_state(state, config, factor, noise, seed)
    # written beside `out`, then moved into place: a failure leaves no half-written checkpoint
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}.") as tmp:
        part = Path(tmp) / "checkpoint"
        part.mkdir()
        save_file({k: v.contiguous() for k, v in new_state.items()}, str(part / "model.safetensors"),
                  metadata={"format": "pt"})
        (part / "config.json").write_text(json.dumps(new_cfg, indent=2) + "\n")
        for name in PASSENGERS:
            if (src / name).is_file():
                shutil.copy2(src / name, part / name)
        if out.exists():
            shutil.rmtree(out)
        part.replace(out)
    kv = 2 * new_cfg["num_hidden_layers"] * new_cfg["num_key_value_heads"] * new_cfg["head_dim"] * 2
    return {"checkpoint": str(src), "out": str(out), "factor": factor, "noise": noise,
            "params": sum(v.numel() for v in new_state.values()),
            "params_before": sum(v.numel() for v in state.values()),
            "heads": [new_cfg["num_attention_heads"], new_cfg["num_key_value_heads"]],
            "kv_bytes_per_token_bf16": kv}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m spanattn.widen", description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", required=True, help="a Llama checkpoint folder (config.json, *.safetensors, tokenizer)")
    p.add_argument("--factor", type=int, default=2, help="how many times the heads (default: 2)")
    p.add_argument("--noise", type=float, default=1e-3,
                   help="perturbation of the copies, a fraction of each matrix's std (default: 1e-3; 0: exact)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="the new checkpoint folder")
    p.add_argument("--force", action="store_true", help="replace --out if it exists")
    args = p.parse_args(argv)
    try:
        summary = widen_checkpoint(args.checkpoint, args.out, args.factor, args.noise, args.seed, args.force)
    except WidenError as e:  # the CLI bridge's error result (cli/lib/python.ts), exit code 2
        print(f"error: {e}", file=sys.stderr)
        print(json.dumps({"status": "error", "error": {"kind": "widen", "message": str(e), "hint": e.hint}}))
        raise SystemExit(2)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()

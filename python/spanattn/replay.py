"""Replay: decode speed of large model shapes with a dataset's own spans, no trained weights.

A Llama-shaped model with random weights (llama-1b, llama-8b; `tiny` for CPU tests) is
driven token by token through the dataset's own responses (teacher forcing), so the spans
the attention op reads are exactly the dataset's annotations. For a context length L each
batch row is one long sequence: a header, earlier records of the split as prompt segments
(history), then a record whose responses run past position L; the prefix up to L - G is
prefilled densely and the last G tokens are decoded — dense (every key) and sparse (the
annotations) on the same engine, same graph, same inputs. Reported per (L, batch): tokens/s
both ways, the speed-up, and the attended fraction actually used.

    PYTHONPATH=python python -m spanattn.replay --data datasets/arith-long --shape tiny \
        --contexts 512 --batches 2 --gen 16 --out /tmp/replay
"""
from __future__ import annotations

import argparse

import torch

from . import spans
from .engine import Engine, percentile
from .evaluate import EvalError, add_engine_args, emit, engine_fields, engine_options, finish, log, prepare, save_partial

SHAPES = {
    "llama-8b": dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
                     num_key_value_heads=8, head_dim=128, vocab_size=128256, rope_theta=500000.0),
    "llama-1b": dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32,
                     num_key_value_heads=8, head_dim=64, vocab_size=128256, rope_theta=500000.0,
                     tie_word_embeddings=True),
    # configs/model/llama-long.yaml (the arith-long model: KV-heavy, MHA with head_dim 128), char vocabulary
    "llama-long": dict(hidden_size=512, intermediate_size=1408, num_hidden_layers=6, num_attention_heads=8,
                       num_key_value_heads=8, head_dim=128, vocab_size=256, tie_word_embeddings=True),
    # configs/model/llama-long-kv16.yaml: twice its KV heads, as `python -m spanattn.widen --factor 2` makes it
    "llama-long-kv16": dict(hidden_size=512, intermediate_size=1408, num_hidden_layers=6, num_attention_heads=16,
                            num_key_value_heads=16, head_dim=128, vocab_size=256, tie_word_embeddings=True),
    "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, head_dim=16, vocab_size=512),
}


def random_model(shape: str, device: torch.device, dtype: torch.dtype, max_len: int, min_vocab: int = 0):
    """A random-weight Llama of `shape`, with room for max_len positions and at least
    min_vocab tokens (the replay tokenizer is built from the dataset)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    if shape not in SHAPES:
        raise EvalError(f"unknown --shape {shape!r} (choose from {', '.join(SHAPES)})")
    spec = dict(SHAPES[shape])
    spec["vocab_size"] = max(spec["vocab_size"], min_vocab)
    cfg = LlamaConfig(max_position_embeddings=max(8192, max_len), **spec)
    prev = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            torch.manual_seed(0)
            model = LlamaForCausalLM(cfg)
    finally:
        torch.set_default_dtype(prev)
    return model.eval()


def bytes_per_token_kv(cfg, dtype: torch.dtype) -> int:
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    return 2 * cfg.num_hidden_layers * cfg.num_key_value_heads * head_dim * torch.finfo(dtype).bits // 8


def build_rows(records: list[dict], tok, L: int, G: int, batch: int) -> tuple[list[list[int]], list[list[int]]]:
    """(prompts, forced) for `batch` rows of total length L; the last G tokens are forced."""
    g = tok.grammar
    rendered = [spans.render_record(r, tok.encode, tok.token_id, g) for r in records]
    # records whose own response is long enough to hold the G decoded tokens
    long_enough = [i for i, r in enumerate(rendered) if len(r.ids) - r.prompt_length >= G]
    if not long_enough:
        raise EvalError(f"no record in the split has a response of {G}+ tokens; lower --gen")
    seg_id = tok.token_id(g.seg)
    prompts, forced = [], []
    for b in range(batch):
        target = rendered[long_enough[b % len(long_enough)]]
        header = target.ids[: target.ids.index(seg_id)] if seg_id in target.ids else target.ids[:1]
        # <seg>prompt <seg><attend>..</attend>step ...: cut so the G decoded tokens sit in the
        # middle of the response, where its steps have their typical length (the last steps
        # of an evaluation are a few characters long, and their directive tokens are global)
        resp_len = len(target.ids) - target.prompt_length
        cut = target.prompt_length + (resp_len + G) // 2
        body = target.ids[len(header):cut]
        # history: earlier records flattened into one prompt segment each, until L fits
        need = L - len(header) - len(body)
        history: list[int] = []
        k = b
        segments_left = g.max_segments - 2 - body.count(seg_id)
        while need > 0 and segments_left > 0:
            r = records[k % len(records)]
            text = " ".join(s["text"] for s in r["segments"][1:])
            piece = [seg_id, *tok.encode(text)][: need]
            history += piece
            need -= len(piece)
            segments_left -= 1
            k += 1
        seq = (header + history + body)[:L]
        if len(seq) < L:
            raise EvalError(f"cannot build a {L}-token sequence under the {g.max_segments}-segment cap "
                            "from this split; use shorter --contexts or a dataset with longer records")
        prompts.append(seq[: L - G])
        forced.append(seq[L - G:])
    return prompts, forced


def replay(args) -> dict:
    device, attention, dtype, ds = prepare(args)
    from .tokenizer import build_char_tokenizer, record_texts

    records = ds.records(args.split, limit=args.limit)
    tok = build_char_tokenizer(record_texts(records))
    max_L = max(args.contexts)
    log(f"building a random {args.shape} model ({dtype}) on {device}")
    model = random_model(args.shape, device, dtype, max_L, min_vocab=len(tok))
    kv_per_token = bytes_per_token_kv(model.config, dtype)
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    budget = args.memory_gib * 2**30 if args.memory_gib else (
        torch.cuda.get_device_properties(device).total_memory * 0.85 - weights if device.type == "cuda" else float("inf"))
    rows = []
    result = {"kind": "replay", "shape": args.shape, "data": str(args.data), "split": args.split, "device": str(device),
              "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
              "dtype": str(dtype).removeprefix("torch."), "attention": attention, **engine_fields(args, attention),
              "weights_bytes": weights, "kv_bytes_per_token": kv_per_token, "rows": rows,
              "note": None if attention == "kernel" else "reference attention op: not GPU kernel numbers"}
    total = len(args.contexts) * len(args.batches)
    done = 0
    for L in args.contexts:
        for B in args.batches:
            done += 1
            need = kv_per_token * L * B
            row = {"context": L, "batch": B, "gen": args.gen, "kv_bytes": need}
            if need > budget:
                row["skipped"] = f"KV cache needs {need / 2**30:.1f} GiB, more than the {budget / 2**30:.1f} GiB available"
                rows.append(row)
                log(f"L={L} B={B}: skipped ({row['skipped']})")
                continue
            prompts, forced = build_rows(records, tok, L, args.gen, B)
            eng = Engine(model, batch_size=B, max_len=L, special_ids=tok.special_ids, eos_id=None, **engine_options(args))
            eng.prefill(prompts, args.gen)
            for mode in ("dense", "sparse"):
                eng.decode(mode, forced=forced, max_new_tokens=8)  # warm-up (graph capture), not timed
                g = eng.decode(mode, forced=forced)
                row[mode] = {"tokens_per_second": g.tokens_per_second, "ms_per_step_p50": percentile(g.step_ms, 0.5),
                             "ms_per_step_p95": percentile(g.step_ms, 0.95), "attended_fraction": g.attended_fraction,
                             "malformed": g.malformed, "prefill_seconds": g.prefill_seconds}
            row["speedup"] = row["sparse"]["tokens_per_second"] / row["dense"]["tokens_per_second"]
            rows.append(row)
            emit("progress", task="replay", current=done, total=total,
                 detail=f"L={L} B={B}: {row['speedup']:.2f}x, attended {row['sparse']['attended_fraction']:.3f}")
            log(f"L={L} B={B}: dense {row['dense']['tokens_per_second']:.0f} tok/s, sparse "
                f"{row['sparse']['tokens_per_second']:.0f} tok/s, {row['speedup']:.2f}x")
            save_partial(getattr(args, "out", None), result)
            del eng
            if device.type == "cuda":
                torch.cuda.empty_cache()
    return result


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True)
    p.add_argument("--split", default="test")
    p.add_argument("--limit", type=int)
    p.add_argument("--shape", default="llama-8b")
    p.add_argument("--contexts", default="2048,8192,32768")
    p.add_argument("--batches", default="1,8,32")
    p.add_argument("--gen", type=int, default=128)
    p.add_argument("--memory-gib", type=float)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--allow-reference", action="store_true")
    p.add_argument("--no-graph", action="store_true")
    add_engine_args(p)
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    args.contexts = [int(x) for x in args.contexts.split(",") if x]
    args.batches = [int(x) for x in args.batches.split(",") if x]
    finish(lambda: replay(args), args.out, kind="replay")


if __name__ == "__main__":
    main()

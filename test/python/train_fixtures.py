"""Tiny hand-made datasets in the DESIGN §2 format, for the training tests.

Arithmetic chains of one-digit numbers reduced left to right, every step attending the
previous segment: "3+4-2" -> "7-2" -> "5". Written with a manifest like `spanattn gen-data`
writes (sha256, counts, statistics, the grammar block).
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import random
import re
from pathlib import Path

from spanattn import spans

HEADER = "Evaluate step by step."
ROOT = Path(__file__).resolve().parents[2]


def benchmark_script(name: str):
    """benchmarks/<name>.py loaded as a module (the scripts are not a package)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def arith_record(rng: random.Random, i: int, ops: tuple[int, int] = (1, 3), split: str = "train") -> dict:
    n_ops = rng.randint(*ops)
    nums = [rng.randint(0, 9) for _ in range(n_ops + 1)]
    opers = [rng.choice("+-") for _ in range(n_ops)]

    def show(ns, os_):
        return str(ns[0]) + "".join(f"{o}{n}" for o, n in zip(os_, ns[1:]))

    segments = [{"role": "header", "text": HEADER}, {"role": "prompt", "text": show(nums, opers)}]
    while opers:
        a, b, o = nums[0], nums[1], opers[0]
        nums = [a + b if o == "+" else a - b, *nums[2:]]
        opers = opers[1:]
        segments.append({"role": "response", "attend": [-1], "text": show(nums, opers)})
    return {"id": f"arith-{split}-{i:06d}", "task": "arith", "segments": segments, "answer": segments[-1]["text"],
            "meta": {"ops": n_ops}}


def arith_splits(n_train: int = 400, n_val: int = 64, n_test: int = 64, seed: int = 7, ops=(1, 3)) -> dict:
    rng = random.Random(seed)
    return {split: [arith_record(rng, i, ops, split) for i in range(n)]
            for split, n in (("train", n_train), ("val", n_val), ("test", n_test))}


def _summary(values):
    v = sorted(values) or [0]
    mid = len(v) // 2
    median = v[mid] if len(v) % 2 else (v[mid - 1] + v[mid]) / 2
    return {"min": v[0], "median": median, "mean": round(sum(v) / len(v), 3), "max": v[-1]}


def write_dataset(out: Path, splits: dict, task: str = "arith", grammar: dict | None = None,
                  raw_lines: dict | None = None) -> Path:
    """Write splits (lists of records, or raw text lines via raw_lines) and a manifest."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    manifest_splits = {}
    kept_all = total_all = 0
    for split, records in splits.items():
        lines = raw_lines.get(split) if raw_lines and split in raw_lines else [json.dumps(r) for r in records]
        text = "".join(line + "\n" for line in lines)
        (out / f"{split}.jsonl").write_text(text)
        kept = total = 0
        tokens = []
        for r in records:
            p = spans.parse_tokens(spans.render_symbolic(r))
            k, t = spans.density_counts(p)
            kept, total = kept + k, total + t
            tokens.append(p.length)
        kept_all, total_all = kept_all + kept, total_all + total
        manifest_splits[split] = {
            "file": f"{split}.jsonl", "count": len(lines), "bytes": len(text.encode()),
            "sha256": hashlib.sha256(text.encode()).hexdigest(),
            "chars": _summary([sum(len(s["text"]) for s in r["segments"]) for r in records]),
            "responseChars": _summary([sum(len(s["text"]) for s in r["segments"] if s["role"] == "response") for r in records]),
            "segments": _summary([len(r["segments"]) for r in records]),
            "tokens": _summary(tokens),
            "annotatedDensity": kept / total if total else 1,
        }
    manifest = {"name": out.name, "task": task, "generator": {"name": "test-fixture", "version": "1"},
                "grammar": grammar or spans.default_grammar().to_dict(), "seed": 7, "config": {},
                "splits": manifest_splits, "annotatedDensity": kept_all / total_all if total_all else 1, "notes": []}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return out


# --- news ---------------------------------------------------------------------------------

NEWS_HEADER = "Summarize the article."
CNNDM_FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "news" / "cnndm-5.jsonl"
_SENTENCE_END = re.compile(r"(?<=[.!?])['\"’”]?\s+(?=[A-Z‘“'\"])")
_WORD = re.compile(r"[a-z0-9]+")


def news_record(raw: dict, max_sentences: int = 6) -> dict:
    """A CNN/DM article in the gen-data news layout: prompt segment n is "[n] sentence n";
    each highlight attends to the kept sentence sharing most of its words (the generator's
    ROUGE oracle, reduced to one sentence) and, after the first, to the previous highlight."""
    sentences = [s.strip() for s in _SENTENCE_END.split(raw["article"]) if s.strip()][:max_sentences]
    words = [set(_WORD.findall(s.lower())) for s in sentences]
    segments = [{"role": "header", "text": NEWS_HEADER}]
    segments += [{"role": "prompt", "text": f"[{n}] {s}"} for n, s in enumerate(sentences, 1)]
    highlights = [h.strip() for h in raw["highlights"].split("\n") if h.strip()]
    for k, h in enumerate(highlights):
        hw = set(_WORD.findall(h.lower()))
        best = max(range(len(sentences)), key=lambda n: (len(hw & words[n]), -n)) + 1
        segments.append({"role": "response", "attend": [best] + ([-1] if k else []), "text": h})
    return {"id": raw["id"], "task": "news", "segments": segments, "reference": "\n".join(highlights),
            "meta": {"source": "cnndm", "fixture": CNNDM_FIXTURE.name}}


def cnndm_records(max_sentences: int = 6) -> list[dict]:
    """The 5 articles of test/fixtures/news/cnndm-5.jsonl as news records."""
    return [news_record(json.loads(line), max_sentences) for line in CNNDM_FIXTURE.read_text().splitlines() if line.strip()]


def save_run(run: Path, records: list[dict], grammar: dict | None = None, step: int = 1, model=None):
    """A run folder with one checkpoint of a tiny random Llama (or `model`) and the char
    tokenizer of `records`, as `spanattn train` writes it. Returns (checkpoint, model)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from spanattn.tokenizer import build_char_tokenizer, record_texts

    tok = build_char_tokenizer(record_texts(records))
    if model is None:
        torch.manual_seed(0)
        cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                          num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                          bos_token_id=tok.bos_id, eos_token_id=tok.eos_id, pad_token_id=tok.pad_id)
        model = LlamaForCausalLM(cfg)
    ckpt = Path(run) / "checkpoints" / f"step-{step:06d}"
    model.save_pretrained(ckpt)
    tok.save(ckpt)
    (ckpt / "spanattn.json").write_text(json.dumps({"grammar": grammar or spans.default_grammar().to_dict(), "step": step}))
    torch.save({}, ckpt / "trainer_state.pt")
    return ckpt, model

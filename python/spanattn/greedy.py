"""Simple greedy decoding under the span mask, for validation during training.

Every step re-runs the whole (batch of) sequences under the span mask of the tokens so far:
slow but exactly the semantics of DESIGN §1, which is what a validation number must measure.
The fast decode loop (KV cache, span kernel, CUDA graphs) is the inference engine's job.

The mask of earlier tokens never changes when a token is appended (the parser reads left to
right), so each row keeps its metadata and only the new token's is computed, by the same
parser run on the current segment behind ``cur - 1`` empty segments (``IncrementalMeta``):
the state machine starts afresh at each ``<seg>`` and only the segment's index carries over.

    exact = arith_exact_match(model, tok, records, mode="sparse")
"""
from __future__ import annotations

import numpy as np
import torch

from . import masks
from .tokenizer import SpanTokenizer


class IncrementalMeta:
    """One row's mask metadata, extended a token at a time."""

    def __init__(self, tok: SpanTokenizer, prompt: list[int]):
        self.tok = tok
        self.K = tok.grammar.max_intervals
        self.ids = list(prompt)
        m = masks.record_meta_from_parse(tok.parse(self.ids), self.K)
        self.seg, self.sparse, self.allowed = list(m.seg), list(m.sparse), list(m.allowed)
        seg_id = tok.token_id(tok.grammar.seg)
        starts = [i for i, t in enumerate(self.ids) if t == seg_id]
        self.cur_start = starts[-1] if starts else 0
        self.seg_id = seg_id

    def append(self, token: int) -> None:
        self.ids.append(token)
        if token == self.seg_id:
            self.cur_start = len(self.ids) - 1
        cur = self.seg[-1] + (token == self.seg_id) if self.seg else 0
        if cur == 0:
            p = self.tok.parse(self.ids)
        else:
            p = self.tok.parse([self.tok.bos_id] + [self.seg_id] * (cur - 1) + self.ids[self.cur_start:])
        row = np.full(self.K, masks.UNUSED, dtype=np.int16)
        if p.sparse[-1]:
            allowed = [0, cur, *(r for r in p.refs[cur] if r not in (0, cur))]
            row[: len(allowed)] = allowed
        self.seg.append(cur)
        self.sparse.append(bool(p.sparse[-1]))
        self.allowed.append(row)

    def record_meta(self) -> masks.RecordMeta:
        return masks.RecordMeta(seg=np.asarray(self.seg, dtype=np.int32), sparse=np.asarray(self.sparse, dtype=bool),
                                allowed=np.asarray(self.allowed, dtype=np.int16).reshape(len(self.seg), self.K))


@torch.no_grad()
def greedy_decode(model, tok: SpanTokenizer, prompts: list[list[int]], max_new_tokens: int, sparse: bool = True,
                  attn_implementation: str = "sdpa", batch_size: int = 64, autocast_dtype=None) -> list[list[int]]:
    """Generated ids (without the prompt) for each prompt, stopping at <eos>."""
    device = next(model.parameters()).device
    impl = "sdpa" if attn_implementation == "flex_attention" else attn_implementation  # shapes change every step
    dtype = next(model.parameters()).dtype
    out: list[list[int]] = []
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(prompts), batch_size):
            seqs = [list(p) for p in prompts[start:start + batch_size]]
            metas = [IncrementalMeta(tok, p) for p in seqs]
            done = [False] * len(seqs)
            gen: list[list[int]] = [[] for _ in seqs]
            for _ in range(max_new_tokens):
                live = [i for i, d in enumerate(done) if not d]
                if not live:
                    break
                T = max(len(seqs[i]) for i in live)
                ids = torch.full((len(live), T), tok.pad_id, dtype=torch.long)
                pos = torch.zeros((len(live), T), dtype=torch.long)
                for r, i in enumerate(live):
                    ids[r, : len(seqs[i])] = torch.tensor(seqs[i])
                    pos[r, : len(seqs[i])] = torch.arange(len(seqs[i]))
                meta = masks.stack_rows([[metas[i].record_meta()] for i in live], T).to(device)
                mask = masks.model_mask(meta, sparse, impl, dtype)
                with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
                    logits = _forward(model, ids.to(device), mask, pos.to(device), impl)
                last = torch.tensor([len(seqs[i]) - 1 for i in live], device=device)
                nxt = logits[torch.arange(len(live), device=device), last].argmax(-1).tolist()
                for i, t in zip(live, nxt):
                    seqs[i].append(t)
                    metas[i].append(t)
                    gen[i].append(t)
                    if t == tok.eos_id:
                        done[i] = True
            out += gen
    finally:
        model.train(was_training)
    return out


def _forward(model, ids, mask, pos, impl):
    inner = getattr(model, "module", model)  # DDP
    inner = getattr(inner, "_orig_mod", inner)  # torch.compile
    current = inner.config._attn_implementation
    if current != impl:
        inner.set_attn_implementation(impl)
    try:
        return inner(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=False).logits
    finally:
        if current != impl:
            inner.set_attn_implementation(current)


def final_answer(tok: SpanTokenizer, generated: list[int]) -> str:
    """Text of the last segment, after its directive, up to <eos>."""
    g = tok.grammar
    ids = generated[: generated.index(tok.eos_id)] if tok.eos_id in generated else generated
    seg = tok.token_id(g.seg)
    if seg in ids:
        ids = ids[len(ids) - ids[::-1].index(seg):]
    close = tok.token_id(g.attend_close)
    if close in ids:
        ids = ids[ids.index(close) + 1:]
    special = set(tok.special_ids.values())
    return tok.decode([i for i in ids if i not in special]).strip()


def arith_exact_match(model, tok: SpanTokenizer, records: list[dict], encoded, sparse: bool = True,
                      max_new_tokens: int = 64, attn_implementation: str = "sdpa", batch_size: int = 64,
                      autocast_dtype=None) -> dict:
    """Greedy-decode each record from its prompt; exact match of the final answer."""
    prompts = [e.ids[: e.prompt_length].tolist() for e in encoded]
    gens = greedy_decode(model, tok, prompts, max_new_tokens, sparse, attn_implementation, batch_size, autocast_dtype)
    answers = [final_answer(tok, g) for g in gens]
    correct = sum(a == r["answer"] for a, r in zip(answers, records))
    malformed = sum(tok.parse(p + g).malformed for p, g in zip(prompts, gens))
    return {"exact_match": correct / max(1, len(records)), "n": len(records), "malformed_directives": malformed,
            "examples": [{"id": r["id"], "answer": r["answer"], "got": a} for r, a in list(zip(records, answers))[:3]]}

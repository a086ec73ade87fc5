"""The token-level span mask of DESIGN §1 as attention masks a transformers model accepts.

A batch row holds one or more records (packing). Per token it carries:
- ``doc``: which record of the row it belongs to (-1 on padding);
- ``seg``: its segment, numbered across the row (-1 on padding);
- ``sparse``: whether it reads only selected segments (``SpanParse.sparse``);
- ``allowed``: (K,) the row-segments a sparse token reads: segment 0 of its record, its own
  segment, the referenced ones; -2 where unused. K = ``Grammar.max_intervals``.

One ``mask_mod`` (FlexAttention's signature) is the single definition of the mask. The dense
(B, 1, T, T) boolean mask for SDPA is that same function evaluated on a broadcast index grid;
the FlexAttention block mask is ``create_block_mask`` over it. Under ``sparse=False`` it is
the dense baseline: causal attention inside each record.

    PYTHONPATH=python python -c "from spanattn import masks, spans; \
        p = spans.parse_tokens(['<bos>','H','<seg>','a','<seg>','<attend>','<ref-1>','</attend>','b']); \
        print(masks.dense_mask(masks.meta_from_parses([[p]], 9), True)[0, 0].int())"
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from . import spans

UNUSED = -2  # never equal to a segment id (padding has seg -1)


@dataclass
class MaskMeta:
    doc: torch.Tensor  # (B, T) int64
    seg: torch.Tensor  # (B, T) int64
    sparse: torch.Tensor  # (B, T) bool
    allowed: torch.Tensor  # (B, T, K) int64

    def to(self, device, non_blocking: bool = False) -> "MaskMeta":
        return MaskMeta(*(t.to(device, non_blocking=non_blocking) for t in (self.doc, self.seg, self.sparse, self.allowed)))

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.doc.shape)


def span_mask_mod(meta: MaskMeta, sparse: bool = True):
    """FlexAttention mask_mod: True where query q of row b may read key kv."""
    doc, seg, is_sparse, allowed = meta.doc, meta.seg, meta.sparse, meta.allowed
    K = allowed.shape[-1]

    def mask_mod(b, h, q, kv):
        keep = (kv <= q) & (doc[b, q] == doc[b, kv])
        if not sparse:
            return keep
        key_seg = seg[b, kv]
        hit = ~is_sparse[b, q]
        for i in range(K):  # K integer compares, like the decode kernel's interval list
            hit = hit | (allowed[b, q, i] == key_seg)
        return keep & hit

    return mask_mod


def dense_mask(meta: MaskMeta, sparse: bool = True) -> torch.Tensor:
    """(B, 1, T, T) bool, True = attend: ``span_mask_mod`` on a broadcast index grid."""
    B, T = meta.shape
    dev = meta.doc.device
    b = torch.arange(B, device=dev).view(B, 1, 1)
    q = torch.arange(T, device=dev).view(1, T, 1)
    kv = torch.arange(T, device=dev).view(1, 1, T)
    return span_mask_mod(meta, sparse)(b, None, q, kv).unsqueeze(1)


def block_mask(meta: MaskMeta, sparse: bool = True, block_size: int = 128, compile_mask: bool = True):
    """FlexAttention BlockMask of the same mask (GPU path; blocks with no pair are skipped)."""
    from torch.nn.attention.flex_attention import create_block_mask

    B, T = meta.shape
    return create_block_mask(span_mask_mod(meta, sparse), B, None, T, T, device=meta.doc.device,
                             BLOCK_SIZE=block_size, _compile=compile_mask)


def model_mask(meta: MaskMeta, sparse: bool, attn_implementation: str, dtype: torch.dtype):
    """The 4-D mask in the form the model's attention implementation takes, passed to the
    model as ``attention_mask`` (transformers uses a 4-D mask as given)."""
    if attn_implementation == "flex_attention":
        return block_mask(meta, sparse, compile_mask=meta.doc.is_cuda)
    mask = dense_mask(meta, sparse)
    if attn_implementation == "sdpa":
        return mask
    # eager and other implementations add the mask to the scores
    return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill_(~mask, torch.finfo(dtype).min)


# --- per-record metadata -----------------------------------------------------------------

@dataclass
class RecordMeta:
    """Local (one record) metadata; rows are concatenations with segment ids offset."""

    seg: np.ndarray  # (L,) int32
    sparse: np.ndarray  # (L,) bool
    allowed: np.ndarray  # (L, K) int16, local segment ids, UNUSED elsewhere

    @property
    def n_segments(self) -> int:
        return int(self.seg[-1]) + 1 if len(self.seg) else 0


def record_meta_from_parse(parse: spans.SpanParse, K: int) -> RecordMeta:
    """The reference: metadata straight from the grammar's parser."""
    seg = np.asarray(parse.segment_ids, dtype=np.int32)
    sparse = np.asarray(parse.sparse, dtype=bool)
    table = np.full((len(parse.segment_starts), K), UNUSED, dtype=np.int16)  # what each segment's sparse tokens read
    for s, refs in enumerate(parse.refs):
        row = [0, s, *(r for r in refs if r not in (0, s))]
        table[s, : len(row)] = row
    allowed = np.where(sparse[:, None], table[seg] if len(seg) else table[:0], UNUSED).astype(np.int16)
    return RecordMeta(seg=seg, sparse=sparse, allowed=allowed)


def stack_rows(rows: list[list[RecordMeta]], T: int) -> MaskMeta:
    """Rows of records -> (B, T) metadata; records concatenated, then padding."""
    B = len(rows)
    K = rows[0][0].allowed.shape[1]
    doc = np.full((B, T), -1, dtype=np.int64)
    seg = np.full((B, T), -1, dtype=np.int64)
    sparse = np.zeros((B, T), dtype=bool)
    allowed = np.full((B, T, K), UNUSED, dtype=np.int64)
    for b, records in enumerate(rows):
        pos = 0
        seg_offset = 0
        for d, m in enumerate(records):
            L = len(m.seg)
            doc[b, pos:pos + L] = d
            seg[b, pos:pos + L] = m.seg + seg_offset
            sparse[b, pos:pos + L] = m.sparse
            a = m.allowed.astype(np.int64)
            allowed[b, pos:pos + L] = np.where(a >= 0, a + seg_offset, UNUSED)
            pos += L
            seg_offset += m.n_segments
    return MaskMeta(doc=torch.from_numpy(doc), seg=torch.from_numpy(seg), sparse=torch.from_numpy(sparse),
                    allowed=torch.from_numpy(allowed))


def meta_from_parses(rows: list[list[spans.SpanParse]], T: int, K: int | None = None) -> MaskMeta:
    K = K or spans.default_grammar().max_intervals
    return stack_rows([[record_meta_from_parse(p, K) for p in row] for row in rows], T)

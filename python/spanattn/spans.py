"""The span grammar of DESIGN §1: special tokens, directive parsing, token-level masks.

A sequence is a list of segments. Segment 0 (``<bos>`` + header) is always visible; every
later segment is opened by ``<seg>`` and may begin with a directive
``<attend> <ref..>* </attend>``. Tokens after a valid directive attend to segment 0, the
referenced segments, and their own segment up to themselves; every other token attends
causally to everything. Malformed directives fall back to global, never crash.

The parser is a left-to-right state machine over token *kinds* (one integer compare per
token), so the same rules run at training time (here, on a whole record) and at inference
time (engine.py, one token per step on the GPU). Tiny example, runnable on a CPU:

    PYTHONPATH=python python -c "from spanattn import spans; \
        p = spans.parse_tokens(['<bos>','H','<seg>','a','<seg>','<attend>','<ref-1>','</attend>','b']); \
        print(p.segment_ids, p.statuses); print(spans.attention_mask(p).int())"
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterable, Sequence

GRAMMAR_PATH = Path(__file__).with_name("grammar.json")

# Token kinds. The engine keeps a (vocab,) kind table and a (vocab,) value table on the GPU.
KIND_TEXT, KIND_BOS, KIND_EOS, KIND_PAD, KIND_SEG, KIND_OPEN, KIND_CLOSE, KIND_ABS, KIND_REL = range(9)

# Parser modes after a token has been consumed.
MODE_GLOBAL, MODE_EXPECT, MODE_DIRECTIVE, MODE_SPARSE = range(4)

# Per-segment status. "none": no directive (global). "sparse": valid directive.
STATUS_NONE = "none"
STATUS_SPARSE = "sparse"
MALFORMED_REASONS = (
    "ref_not_earlier",  # absolute ref to the segment itself or a later one
    "unknown_ref",  # relative ref that points before segment 0
    "too_many_refs",  # more ref tokens than max_refs_per_directive
    "unterminated",  # a non-ref token (or the end) before </attend>
    "stray_directive_token",  # <attend>, </attend> or a ref after the directive closed
    "too_many_segments",  # a <seg> beyond max_segments: that segment is global
)


@dataclass(frozen=True)
class Grammar:
    """Token spellings and caps; the one definition lives in grammar.json."""

    version: int
    bos: str
    eos: str
    pad: str
    seg: str
    attend_open: str
    attend_close: str
    max_segments: int
    max_relative_ref: int
    max_refs_per_directive: int
    absolute_ref_format: str
    relative_ref_format: str

    @property
    def absolute_refs(self) -> list[str]:
        return [self.absolute_ref_format.format(n=n) for n in range(self.max_segments)]

    @property
    def relative_refs(self) -> list[str]:
        return [self.relative_ref_format.format(k=k) for k in range(1, self.max_relative_ref + 1)]

    @property
    def special_tokens(self) -> list[str]:
        """Every special token, in a fixed order (tokenizers add them in this order)."""
        return [self.pad, self.bos, self.eos, self.seg, self.attend_open, self.attend_close,
                *self.absolute_refs, *self.relative_refs]

    @property
    def max_intervals(self) -> int:
        """Intervals a sparse query can need: segment 0, each ref, its own segment."""
        return self.max_refs_per_directive + 2

    def ref_token(self, ref: int) -> str:
        """``-k`` -> ``<ref-k>``; ``n >= 0`` -> ``<refn>``."""
        if ref < 0:
            if -ref > self.max_relative_ref:
                raise ValueError(f"relative ref must be in -1..-{self.max_relative_ref} (got {ref})")
            return self.relative_ref_format.format(k=-ref)
        if ref >= self.max_segments:
            raise ValueError(f"absolute ref must be in 0..{self.max_segments - 1} (got {ref})")
        return self.absolute_ref_format.format(n=ref)

    def to_dict(self) -> dict:
        return {
            "version": self.version,
            "tokens": {"bos": self.bos, "eos": self.eos, "pad": self.pad, "seg": self.seg,
                       "attend_open": self.attend_open, "attend_close": self.attend_close},
            "absolute_ref_format": self.absolute_ref_format,
            "relative_ref_format": self.relative_ref_format,
            "max_segments": self.max_segments,
            "max_relative_ref": self.max_relative_ref,
            "max_refs_per_directive": self.max_refs_per_directive,
        }

    @staticmethod
    def from_dict(d: dict) -> "Grammar":
        t = d["tokens"]
        return Grammar(version=d["version"], bos=t["bos"], eos=t["eos"], pad=t["pad"], seg=t["seg"],
                       attend_open=t["attend_open"], attend_close=t["attend_close"],
                       max_segments=d["max_segments"], max_relative_ref=d["max_relative_ref"],
                       max_refs_per_directive=d["max_refs_per_directive"],
                       absolute_ref_format=d["absolute_ref_format"],
                       relative_ref_format=d["relative_ref_format"])


@lru_cache(maxsize=1)
def default_grammar() -> Grammar:
    return Grammar.from_dict(json.loads(GRAMMAR_PATH.read_text()))


def token_kinds(tokens: Sequence[str], grammar: Grammar | None = None) -> tuple[list[int], list[int]]:
    """Map token strings to (kind, value) lists; value is the ref's number (0 otherwise)."""
    g = grammar or default_grammar()
    table = kind_table(g)
    kinds, values = [], []
    for tok in tokens:
        k, v = table.get(tok, (KIND_TEXT, 0))
        kinds.append(k)
        values.append(v)
    return kinds, values


@lru_cache(maxsize=8)
def kind_table(g: Grammar) -> dict[str, tuple[int, int]]:
    table = {g.bos: (KIND_BOS, 0), g.eos: (KIND_EOS, 0), g.pad: (KIND_PAD, 0), g.seg: (KIND_SEG, 0),
             g.attend_open: (KIND_OPEN, 0), g.attend_close: (KIND_CLOSE, 0)}
    for n, tok in enumerate(g.absolute_refs):
        table[tok] = (KIND_ABS, n)
    for k, tok in enumerate(g.relative_refs, start=1):
        table[tok] = (KIND_REL, k)
    return table


@dataclass
class SpanParse:
    """Result of parsing one token sequence.

    segment_ids[t]: segment of token t. segment_starts[s]: index of segment s's first token.
    sparse[t]: True when token t attends sparsely. statuses[s]: "none", "sparse" or a
    malformed reason. refs[s]: the resolved absolute segments a directive names (sorted).
    """

    length: int
    segment_ids: list[int]
    segment_starts: list[int]
    sparse: list[bool]
    statuses: list[str]
    refs: list[list[int]]
    directive_attempts: int = 0
    malformed: int = 0
    final_mode: int = MODE_GLOBAL
    final_nref: int = 0

    def segment_end(self, s: int) -> int:
        return self.segment_starts[s + 1] if s + 1 < len(self.segment_starts) else self.length

    def intervals(self, t: int) -> list[tuple[int, int]]:
        """Token ranges [start, end) query t reads, sorted, adjacent ones merged."""
        if not self.sparse[t]:
            return [(0, t + 1)]
        s = self.segment_ids[t]
        raw = [(0, self.segment_end(0))]
        raw += [(self.segment_starts[r], self.segment_end(r)) for r in self.refs[s] if r != 0]
        raw.append((self.segment_starts[s], t + 1))
        return merge_intervals(raw)


def merge_intervals(intervals: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sort, drop empty ranges, merge overlapping or touching ones."""
    out: list[tuple[int, int]] = []
    for start, end in sorted(i for i in intervals if i[1] > i[0]):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def parse_kinds(kinds: Sequence[int], values: Sequence[int], grammar: Grammar | None = None,
                complete: bool = True) -> SpanParse:
    """The state machine of DESIGN §1 over token kinds. Never raises on any input.

    complete=False parses a prefix that goes on (a prompt before decoding): a directive still
    open at its end is not yet unterminated, and the final machine state is kept in
    ``final_mode`` / ``final_nref`` so the device state machine can continue from it."""
    g = grammar or default_grammar()
    seg_ids: list[int] = []
    starts = [0]
    sparse: list[bool] = []
    statuses = [STATUS_NONE]
    refs: list[list[int]] = [[]]
    mode = MODE_GLOBAL
    cur = 0
    nref = 0
    attempts = 0
    malformed = 0

    def fail(reason: str) -> None:
        nonlocal mode, malformed
        if not statuses[cur].startswith(("none", "sparse")):
            return
        statuses[cur] = reason
        malformed += 1
        mode = MODE_GLOBAL

    for t, (k, v) in enumerate(zip(kinds, values)):
        if k == KIND_SEG:
            if mode == MODE_DIRECTIVE:
                fail("unterminated")
            cur += 1
            starts.append(t)
            statuses.append(STATUS_NONE)
            refs.append([])
            if cur >= g.max_segments:
                attempts += 1
                fail("too_many_segments")
            else:
                mode = MODE_EXPECT
            seg_ids.append(cur)
            sparse.append(False)
            continue

        seg_ids.append(cur)
        is_sparse = False
        if mode == MODE_EXPECT:
            if k == KIND_OPEN:
                mode = MODE_DIRECTIVE
                nref = 0
                attempts += 1
            else:
                mode = MODE_GLOBAL
                if k in (KIND_CLOSE, KIND_ABS, KIND_REL):
                    attempts += 1
                    fail("stray_directive_token")
        elif mode == MODE_DIRECTIVE:
            if k in (KIND_ABS, KIND_REL):
                target = v if k == KIND_ABS else cur - v
                nref += 1
                if nref > g.max_refs_per_directive:
                    fail("too_many_refs")
                elif k == KIND_ABS and target >= cur:
                    fail("ref_not_earlier")
                elif target < 0:
                    fail("unknown_ref")
                elif target not in refs[cur]:
                    refs[cur].append(target)
            elif k == KIND_CLOSE:
                mode = MODE_SPARSE
                statuses[cur] = STATUS_SPARSE
                refs[cur].sort()
            else:
                fail("unterminated")
        elif mode == MODE_SPARSE:
            if k in (KIND_OPEN, KIND_CLOSE, KIND_ABS, KIND_REL, KIND_BOS):
                fail("stray_directive_token")
            else:
                is_sparse = True
        sparse.append(is_sparse)

    if complete and mode == MODE_DIRECTIVE:
        fail("unterminated")
    return SpanParse(length=len(seg_ids), segment_ids=seg_ids, segment_starts=starts, sparse=sparse,
                     statuses=statuses, refs=refs, directive_attempts=attempts, malformed=malformed,
                     final_mode=mode, final_nref=nref)


def parse_tokens(tokens: Sequence[str], grammar: Grammar | None = None) -> SpanParse:
    kinds, values = token_kinds(tokens, grammar)
    return parse_kinds(kinds, values, grammar)


def attention_mask(parse: SpanParse):
    """(T, T) bool tensor, True where query t may read key j (causal, DESIGN §1)."""
    import torch

    T = parse.length
    mask = torch.ones(T, T, dtype=torch.bool).tril_()
    for t in range(T):
        if parse.sparse[t]:
            row = torch.zeros(T, dtype=torch.bool)
            for start, end in parse.intervals(t):
                row[start:end] = True
            mask[t] = row
    return mask


def density_counts(parse: SpanParse) -> tuple[int, int]:
    """(kept, total) causal attention pairs; kept/total is the annotated density."""
    kept = 0
    for t in range(parse.length):
        kept += sum(end - start for start, end in parse.intervals(t))
    total = parse.length * (parse.length + 1) // 2
    return kept, total


# --- records -> tokens -----------------------------------------------------------------

@dataclass
class Rendered:
    """A record rendered to tokens. loss[t] marks response tokens (directives included)."""

    ids: list[int]
    loss: list[bool]
    prompt_length: int  # tokens up to the end of the last prompt segment


def render_record(record: dict, encode: Callable[[str], list[int]], token_id: Callable[[str], int],
                  grammar: Grammar | None = None, add_eos: bool = True) -> Rendered:
    """Render a DESIGN §2 record: <bos>header (<seg>[directive]text)* <eos>.

    ``encode`` turns plain text into ids (no special tokens); ``token_id`` maps a special
    token string to its id. The <eos> closes the last segment when the record has responses.
    """
    g = grammar or default_grammar()
    segments = record["segments"]
    ids = [token_id(g.bos), *encode(segments[0]["text"])]
    loss = [False] * len(ids)
    prompt_length = len(ids)
    has_response = False
    for seg in segments[1:]:
        is_response = seg["role"] == "response"
        has_response |= is_response
        piece = [token_id(g.seg)]
        if seg.get("attend") is not None:
            piece += [token_id(g.attend_open), *(token_id(g.ref_token(r)) for r in seg["attend"]),
                      token_id(g.attend_close)]
        piece += encode(seg["text"])
        ids += piece
        loss += [is_response] * len(piece)
        if not is_response:
            prompt_length = len(ids)
    if add_eos and has_response:
        ids.append(token_id(g.eos))
        loss.append(True)
    return Rendered(ids=ids, loss=loss, prompt_length=prompt_length)


def render_symbolic(record: dict, grammar: Grammar | None = None) -> list[str]:
    """Character-level symbolic rendering (one token per character), used by test vectors
    and by the TypeScript side to compute the annotated density without a tokenizer."""
    g = grammar or default_grammar()
    segments = record["segments"]
    out = [g.bos, *segments[0]["text"]]
    for seg in segments[1:]:
        out.append(g.seg)
        if seg.get("attend") is not None:
            out += [g.attend_open, *(g.ref_token(x) for x in seg["attend"]), g.attend_close]
        out += list(seg["text"])
    if any(s["role"] == "response" for s in segments[1:]):
        out.append(g.eos)
    return out

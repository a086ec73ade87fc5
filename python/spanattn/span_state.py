"""The span state machine on the device: DESIGN §1 for a batch, one token per step.

Per sequence it keeps the segment table (start of every segment), the current segment, the
directive being parsed and its refs, all as tensors updated from each new token with
integer compares: no host synchronisation, fixed shapes, so a decode step that calls
`step` can be captured in a CUDA graph. `step` returns the key intervals the query at that
position reads, in the layout the attention op takes: (B, I, 2) int32 [start, end) sorted
and non-overlapping, and (B,) int32 counts. The rules are those of `spans.parse_kinds`;
test/python/test_span_state.py checks both agree on every position of the shared vectors
and of random token soup.

    PYTHONPATH=python python -c "import torch; from spanattn import span_state, spans; \
        g = spans.default_grammar(); toks = ['<bos>','h','<seg>','a','<seg>','<attend>','<ref-1>','</attend>','b']; \
        k, v = spans.token_kinds(toks); s = span_state.SpanState(1, g); \
        print([s.step(torch.tensor([kk]), torch.tensor([vv]), torch.tensor([t]))[0].tolist() for t, (kk, vv) in enumerate(zip(k, v))][-1])"
"""
from __future__ import annotations

import torch

from .spans import (KIND_ABS, KIND_BOS, KIND_CLOSE, KIND_OPEN, KIND_REL, KIND_SEG, MODE_DIRECTIVE,
                    MODE_EXPECT, MODE_GLOBAL, MODE_SPARSE, Grammar, default_grammar, kind_table)

BIG = 2**30


def compile_fixed_shapes(fn):
    """torch.compile for a decode-step piece with fixed shapes and in-place state updates.
    Each engine (batch size, cache length) compiles once, and an eval or replay sweep makes
    many engines, so dynamo's recompile limit is raised for them."""
    import torch._dynamo.config as dynamo_config

    dynamo_config.recompile_limit = max(dynamo_config.recompile_limit, 64)
    return torch.compile(fn, fullgraph=True, dynamic=False)


def vocab_kind_tables(token_to_id: dict[str, int], vocab_size: int, grammar: Grammar | None = None,
                      device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """(vocab,) kind and value tables: the GPU's view of the special tokens."""
    g = grammar or default_grammar()
    kinds = torch.zeros(vocab_size, dtype=torch.int64)
    values = torch.zeros(vocab_size, dtype=torch.int64)
    for tok, (k, v) in kind_table(g).items():
        if tok in token_to_id:
            kinds[token_to_id[tok]] = k
            values[token_to_id[tok]] = v
    return kinds.to(device), values.to(device)


class SpanState:
    """Batched parser state. All updates are in place, so CUDA graphs can capture `step`."""

    def __init__(self, batch: int, grammar: Grammar | None = None, device: torch.device | str = "cpu",
                 compile: bool = False):
        g = grammar or default_grammar()
        self.grammar = g
        self.batch = batch
        self.max_refs = g.max_refs_per_directive
        self.max_segments = g.max_segments
        self.num_intervals = g.max_intervals
        dev = torch.device(device)
        i64 = dict(dtype=torch.int64, device=dev)
        self.seg_starts = torch.zeros(batch, g.max_segments, **i64)  # (B, S)
        self.cur = torch.zeros(batch, **i64)
        self.mode = torch.full((batch,), MODE_GLOBAL, **i64)
        self.nref = torch.zeros(batch, **i64)  # ref tokens seen in the open directive
        self.nvalid = torch.zeros(batch, **i64)  # distinct refs kept (ref 0 is implicit)
        self.refs = torch.full((batch, g.max_refs_per_directive), -1, **i64)  # (B, R)
        self.attempts = torch.zeros(batch, **i64)
        self.malformed = torch.zeros(batch, **i64)
        self.attended = torch.zeros(batch, **i64)  # keys read, summed over steps
        self.possible = torch.zeros(batch, **i64)  # keys a dense step would read
        self.intervals = torch.zeros(batch, self.num_intervals, 2, dtype=torch.int32, device=dev)
        self.n_intervals = torch.zeros(batch, dtype=torch.int32, device=dev)
        self._arange_r = torch.arange(g.max_refs_per_directive, device=dev)
        # `step` is ~170 tiny elementwise ops (counted in a CPU profile): one kernel launch each
        # on a GPU. torch.compile fuses them into a few kernels; same results.
        self._step_fn = compile_fixed_shapes(self._step) if compile else self._step

    def reset(self, rows: torch.Tensor | None = None) -> None:
        """Start rows (a bool (B,) mask; all when None) on a new sequence."""
        sel = torch.ones(self.batch, dtype=torch.bool, device=self.cur.device) if rows is None else rows
        for t, fill in ((self.seg_starts, 0), (self.cur, 0), (self.mode, MODE_GLOBAL), (self.nref, 0),
                        (self.nvalid, 0), (self.refs, -1), (self.attempts, 0), (self.malformed, 0),
                        (self.attended, 0), (self.possible, 0)):
            shape = (-1,) + (1,) * (t.dim() - 1)
            t.copy_(torch.where(sel.view(shape), torch.full_like(t, fill), t))

    def load(self, parses: list, rows: list[int] | None = None) -> None:
        """Set rows to the state after prefixes parsed by ``spans.parse_kinds(..., complete=False)``
        (prompt prefill: one host-side parse instead of one device step per prompt token)."""
        rows = list(range(len(parses))) if rows is None else rows
        S, R = self.max_segments, self.max_refs
        starts = torch.zeros(len(rows), S, dtype=torch.int64)
        cur, mode, nref, nvalid, attempts, malformed = ([] for _ in range(6))
        refs = torch.full((len(rows), R), -1, dtype=torch.int64)
        for i, p in enumerate(parses):
            st = p.segment_starts[:S]
            starts[i, : len(st)] = torch.tensor(st)
            c = len(p.segment_starts) - 1
            cur.append(c)
            mode.append(p.final_mode)
            nref.append(p.final_nref)
            kept = [r for r in p.refs[c] if r != 0] if c < len(p.refs) else []
            if p.final_mode in (MODE_DIRECTIVE, MODE_SPARSE):
                refs[i, : len(kept)] = torch.tensor(kept, dtype=torch.int64)
            nvalid.append(len(kept) if p.final_mode in (MODE_DIRECTIVE, MODE_SPARSE) else 0)
            attempts.append(p.directive_attempts)
            malformed.append(p.malformed)
        idx = torch.tensor(rows, device=self.cur.device)
        dev = self.cur.device
        self.seg_starts[idx] = starts.to(dev)
        self.refs[idx] = refs.to(dev)
        for name, vals in (("cur", cur), ("mode", mode), ("nref", nref), ("nvalid", nvalid), ("attempts", attempts),
                           ("malformed", malformed)):
            getattr(self, name)[idx] = torch.tensor(vals, dtype=torch.int64, device=dev)
        for name in ("attended", "possible"):
            getattr(self, name)[idx] = 0

    @torch.no_grad()
    def step(self, kind: torch.Tensor, value: torch.Tensor, pos: torch.Tensor,
             active: torch.Tensor | None = None,
             dense: torch.Tensor | None = None,
             counted: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Consume the token at position `pos` (see `_step`; compiled when the state was made
        with compile=True)."""
        return self._step_fn(kind, value, pos, active, dense, counted)

    def _step(self, kind: torch.Tensor, value: torch.Tensor, pos: torch.Tensor,
              active: torch.Tensor | None = None,
              dense: torch.Tensor | None = None,
              counted: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Consume the token at position `pos` (B,) of kind/value (B,); return
        (intervals (B, I, 2) int32, n_intervals (B,) int32, sparse (B,) bool) for its query.
        Rows where `active` is False keep their state (padding). Where `dense` (a bool tensor,
        0-dim or (B,)) is True the directives are still parsed and counted, but the query reads
        every key: the dense baseline on the same machinery. `attended` sums the keys the
        returned intervals hold, `possible` the keys a dense step would read, both only where
        `counted` ((B,) bool; default: every active row): a prompt token fed through the step
        (the engine's refill of a slot) is not a decoded token."""
        g = self.grammar
        B = self.batch
        act = torch.ones(B, dtype=torch.bool, device=kind.device) if active is None else active
        mode, cur = self.mode, self.cur

        is_seg = kind == KIND_SEG
        is_ref = (kind == KIND_ABS) | (kind == KIND_REL)
        fail = torch.zeros(B, dtype=torch.bool, device=kind.device)

        # <seg>: close the previous segment (unterminated if inside a directive), open a new one.
        fail |= is_seg & (mode == MODE_DIRECTIVE)
        new_cur = torch.where(is_seg, cur + 1, cur)
        overflow = is_seg & (new_cur >= g.max_segments)
        seg_slot = new_cur.clamp(max=g.max_segments - 1)
        write_start = act & is_seg & ~overflow
        self.seg_starts.scatter_(1, seg_slot[:, None],
                                 torch.where(write_start, pos, self.seg_starts.gather(1, seg_slot[:, None])[:, 0])[:, None])

        # first token after <seg>
        expect = ~is_seg & (mode == MODE_EXPECT)
        opens = expect & (kind == KIND_OPEN)
        stray_first = expect & ((kind == KIND_CLOSE) | is_ref)

        # inside a directive
        in_dir = ~is_seg & (mode == MODE_DIRECTIVE)
        target = torch.where(kind == KIND_ABS, value, cur - value)
        nref = torch.where(opens, torch.zeros_like(self.nref), self.nref + (in_dir & is_ref).long())
        bad_ref = in_dir & is_ref & ((nref > g.max_refs_per_directive) |
                                     ((kind == KIND_ABS) & (target >= cur)) | (target < 0))
        dup = (self.refs == target[:, None]).any(dim=1)
        keep_ref = in_dir & is_ref & ~bad_ref & (target != 0) & ~dup
        closes = in_dir & (kind == KIND_CLOSE)
        unterminated = in_dir & ~is_ref & (kind != KIND_CLOSE)

        # after a valid directive
        in_sparse = ~is_seg & (mode == MODE_SPARSE)
        stray_late = in_sparse & ((kind == KIND_OPEN) | (kind == KIND_CLOSE) | is_ref | (kind == KIND_BOS))

        fail |= bad_ref | unterminated | stray_first | stray_late

        new_mode = mode.clone()
        new_mode = torch.where(is_seg, torch.where(overflow, MODE_GLOBAL, MODE_EXPECT), new_mode)
        new_mode = torch.where(expect, torch.where(opens, MODE_DIRECTIVE, MODE_GLOBAL), new_mode)
        new_mode = torch.where(closes, MODE_SPARSE, new_mode)
        new_mode = torch.where(fail & ~is_seg, MODE_GLOBAL, new_mode)
        sparse = in_sparse & ~stray_late

        # refs: cleared when a directive opens, appended when a new valid one is read
        refs = torch.where(opens[:, None], torch.full_like(self.refs, -1), self.refs)
        nvalid = torch.where(opens, torch.zeros_like(self.nvalid), self.nvalid)
        slot = nvalid.clamp(max=g.max_refs_per_directive - 1)
        put = keep_ref[:, None] & (self._arange_r[None, :] == slot[:, None])
        refs = torch.where(put, target[:, None], refs)
        nvalid = nvalid + keep_ref.long()

        a = act
        a1 = a[:, None]
        self.cur.copy_(torch.where(a, new_cur, cur))
        self.mode.copy_(torch.where(a, new_mode, mode))
        self.nref.copy_(torch.where(a, nref, self.nref))
        self.refs.copy_(torch.where(a1, refs, self.refs))
        self.nvalid.copy_(torch.where(a, nvalid, self.nvalid))
        self.attempts.add_((a & (opens | stray_first | overflow)).long())
        # each is the first failure of its segment; <seg> can end one (unterminated) and
        # open another past the cap (overflow) at once
        self.malformed.add_((a & fail).long() + (a & overflow).long())
        sparse = sparse & a

        intervals, n = self._intervals(pos, sparse if dense is None else sparse & ~dense, a)
        c = a if counted is None else a & counted
        kept = (intervals[..., 1] - intervals[..., 0]).long().sum(dim=1)  # idle rows hold none
        self.attended.add_(torch.where(c, kept, torch.zeros_like(kept)))
        self.possible.add_(torch.where(c, pos + 1, torch.zeros_like(pos)))
        return intervals, n, sparse

    def finish(self, rows: torch.Tensor | None = None) -> None:
        """End of sequence: a directive still open is unterminated (counted as malformed)."""
        open_dir = self.mode == MODE_DIRECTIVE
        if rows is not None:
            open_dir &= rows
        self.malformed.add_(open_dir.long())
        self.mode.copy_(torch.where(open_dir, torch.full_like(self.mode, MODE_GLOBAL), self.mode))

    def _intervals(self, pos: torch.Tensor, sparse: torch.Tensor,
                   active: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Candidates [segment 0, refs..., own segment], invalid refs pushed to the end by
        sorting on start; global rows get the single interval [0, pos + 1); idle rows (a
        finished sequence waiting for the rest of its batch, a free slot) get none, so they
        read no KV at all, in either mode."""
        S = self.max_segments
        starts_tbl = self.seg_starts
        cur = self.cur
        seg1 = starts_tbl[:, 1]
        seg0_end = torch.where(cur >= 1, seg1, pos + 1)
        valid = self.refs >= 0
        r = self.refs.clamp(min=0)
        r_start = starts_tbl.gather(1, r)
        r_end = starts_tbl.gather(1, (r + 1).clamp(max=S - 1))
        r_start = torch.where(valid, r_start, torch.full_like(r_start, BIG))
        r_end = torch.where(valid, r_end, torch.full_like(r_end, BIG))
        own_start = starts_tbl.gather(1, cur.clamp(max=S - 1)[:, None])[:, 0]
        zeros = torch.zeros_like(pos)
        starts = torch.cat([zeros[:, None], r_start, own_start[:, None]], dim=1)  # (B, I)
        ends = torch.cat([seg0_end[:, None], r_end, (pos + 1)[:, None]], dim=1)
        order = starts.argsort(dim=1, stable=True)
        starts = starts.gather(1, order)
        ends = ends.gather(1, order)
        n_sparse = 2 + valid.sum(dim=1)
        in_range = torch.arange(starts.shape[1], device=pos.device)[None, :] < n_sparse[:, None]
        starts = torch.where(in_range, starts, zeros[:, None])
        ends = torch.where(in_range, ends, zeros[:, None])
        # global rows: one interval [0, pos + 1); idle rows (never sparse): none
        first = torch.arange(starts.shape[1], device=pos.device)[None, :] == 0
        g_starts = zeros[:, None].expand_as(starts)
        g_ends = torch.where(first & active[:, None], (pos + 1)[:, None], zeros[:, None])
        sp = sparse[:, None]
        self.intervals[..., 0].copy_(torch.where(sp, starts, g_starts).to(torch.int32))
        self.intervals[..., 1].copy_(torch.where(sp, ends, g_ends).to(torch.int32))
        self.n_intervals.copy_(torch.where(sparse, n_sparse, active.long()).to(torch.int32))
        return self.intervals, self.n_intervals

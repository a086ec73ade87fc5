"""Records -> token rows -> training batches, in an order fixed by (seed, epoch).

Each record is rendered once (``spans.render_record``) into ids, next-token targets and its
mask metadata. Rows are filled by packing (first-fit over a few open rows, so a row of
``seq_len`` tokens holds several records and almost no padding) or, with packing off, one
record per row with rows of similar length batched together. The plan of an epoch is a pure
function of (seed, epoch), so ``--resume`` replays exactly the batches an uninterrupted run
would have seen, and every rank agrees on which rows make a global step.

Napkin math (arith, ~150 tokens a record, seq_len 512): packing fills ~98% of each row where
padding every row to the longest record of the batch (~300) wastes about half of it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from . import masks, spans
from .data import DataError
from .masks import UNUSED, RecordMeta
from .tokenizer import SpanTokenizer

IGNORE = -100


@dataclass
class Encoded:
    ids: np.ndarray  # (L,) int32
    targets: np.ndarray  # (L,) int32: ids[t + 1] where t + 1 is a loss token, else IGNORE
    meta: RecordMeta
    prompt_length: int
    line: int
    id: str

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def n_targets(self) -> int:
        return int((self.targets != IGNORE).sum())


_ENCODE_ARGS: tuple = ()
PARALLEL_MIN_RECORDS = 20_000


def _encode_chunk(args: tuple[int, int]):
    """Worker side: encode records[start:end] and return them as a few flat arrays."""
    start, end = args
    records, tok, loss_on, max_len, skip_long, verify, source = _ENCODE_ARGS
    enc, skipped = _encode_serial(records[start:end], tok, loss_on, max_len, skip_long, verify if start == 0 else 0, source, start)
    cat = (lambda xs, dt: np.concatenate(xs) if xs else np.zeros(0, dt))
    return (cat([e.ids for e in enc], np.int32), cat([e.targets for e in enc], np.int32),
            cat([e.meta.seg for e in enc], np.int32), cat([e.meta.sparse for e in enc], bool),
            np.concatenate([e.meta.allowed for e in enc]) if enc else np.zeros((0, tok.grammar.max_intervals), np.int16),
            np.array([len(e) for e in enc], dtype=np.int64), [(e.prompt_length, e.line, e.id) for e in enc], skipped)


def encode_records(records: list[dict], tok: SpanTokenizer, loss_on: str = "response", max_len: int | None = None,
                   skip_long: bool = False, verify: int = 64, source: str = "") -> tuple[list[Encoded], int]:
    """Render every record; returns (encoded, skipped). Metadata comes from the record's
    structure; the first ``verify`` records are checked against the grammar's parser.
    Large splits are encoded in forked worker processes (same result, in order)."""
    global _ENCODE_ARGS
    if len(records) < PARALLEL_MIN_RECORDS:
        return _encode_serial(records, tok, loss_on, max_len, skip_long, verify, source)
    from .data import map_chunks

    _ENCODE_ARGS = (records, tok, loss_on, max_len, skip_long, verify, source)
    try:
        chunks = map_chunks(_encode_chunk, len(records), max(1000, PARALLEL_MIN_RECORDS // 2))
    finally:
        _ENCODE_ARGS = ()
    out: list[Encoded] = []
    skipped = 0
    for ids, targets, seg, sparse, allowed, lengths, info, n_skipped in chunks:
        skipped += n_skipped
        bounds = np.cumsum(lengths)[:-1]
        for i, (a, b, c, d, e) in enumerate(zip(*(np.split(x, bounds) for x in (ids, targets, seg, sparse, allowed)))):
            prompt_length, line, rid = info[i]
            out.append(Encoded(ids=a, targets=b, meta=RecordMeta(seg=c, sparse=d, allowed=e), prompt_length=prompt_length,
                               line=line, id=rid))
    return out, skipped


def _encode_serial(records: list[dict], tok: SpanTokenizer, loss_on: str, max_len: int | None, skip_long: bool,
                   verify: int, source: str, first_index: int = 0) -> tuple[list[Encoded], int]:
    g = tok.grammar
    K = g.max_intervals
    texts = [seg["text"] for r in records for seg in r["segments"]]
    text_ids = tok.encode_batch(texts)
    special = np.fromiter(tok.special_ids.values(), dtype=np.int64)
    flat = np.fromiter((i for ids in text_ids for i in ids), dtype=np.int64)
    if flat.size and np.isin(flat, special).any():
        bad = next(k for k, ids in enumerate(text_ids) if np.isin(ids, special).any())
        rec = _record_of_text(records, bad)
        raise DataError(f"{source}:{rec.get('_line', '?')}: record {rec['id']} has text that contains a span special token "
                         "(e.g. <seg>); such text would change the mask")
    out: list[Encoded] = []
    skipped = 0
    pos = 0
    seg_id = tok.token_id(g.seg)
    for n, record in enumerate(records):
        pieces = iter(text_ids[pos:pos + len(record["segments"])])
        pos += len(record["segments"])
        r = spans.render_record(record, lambda _text: next(pieces), tok.token_id, g)
        L = len(r.ids)
        if max_len is not None and L > max_len:
            if skip_long:
                skipped += 1
                continue
            raise DataError(f"{source}:{record.get('_line', '?')}: record {record['id']} is {L} tokens, longer than "
                                  f"train.seq_len {max_len}",
                            "raise train.seq_len, or set train.long_records: skip")
        ids = np.asarray(r.ids, dtype=np.int32)
        flags = np.asarray(r.loss, dtype=bool) if loss_on == "response" else np.arange(L) > 0
        targets = np.full(L, IGNORE, dtype=np.int32)
        targets[:-1] = np.where(flags[1:], ids[1:], IGNORE)
        meta = _meta_from_structure(record, ids, seg_id, K)
        if n < verify:
            ref = masks.record_meta_from_parse(tok.parse(r.ids), K)
            if not (np.array_equal(ref.seg, meta.seg) and np.array_equal(ref.sparse, meta.sparse)
                    and np.array_equal(ref.allowed, meta.allowed)):
                raise RuntimeError(f"internal: mask metadata of record {record['id']} disagrees with the span parser")
        out.append(Encoded(ids=ids, targets=targets, meta=meta, prompt_length=r.prompt_length,
                           line=record.get("_line", first_index + n + 1), id=record["id"]))
    return out, skipped


def _record_of_text(records: list[dict], k: int) -> dict:
    for r in records:
        if k < len(r["segments"]):
            return r
        k -= len(r["segments"])
    return records[-1]


def _meta_from_structure(record: dict, ids: np.ndarray, seg_id: int, K: int) -> RecordMeta:
    """Segments start at each <seg>; a response with a directive reads sparsely from the
    token after its </attend> to its end (the <eos> included)."""
    L = len(ids)
    is_seg = ids == seg_id
    seg = np.cumsum(is_seg, dtype=np.int32)
    starts = [0, *np.flatnonzero(is_seg).tolist()]
    sparse = np.zeros(L, dtype=bool)
    allowed = np.full((L, K), UNUSED, dtype=np.int16)
    for s, segment in enumerate(record["segments"]):
        attend = segment.get("attend")
        if s == 0 or attend is None:
            continue
        first = starts[s] + len(attend) + 3  # <seg> <attend> refs </attend>
        end = starts[s + 1] if s + 1 < len(starts) else L
        refs = sorted({r if r >= 0 else s + r for r in attend} - {0, s})
        row = [0, s, *refs]
        sparse[first:end] = True
        allowed[first:end, : len(row)] = row
    return RecordMeta(seg=seg, sparse=sparse, allowed=allowed)


# --- rows and epochs ---------------------------------------------------------------------

def pack(lengths: np.ndarray, order: np.ndarray, seq_len: int, open_rows: int = 8) -> list[list[int]]:
    """First-fit over the last ``open_rows`` rows, in ``order``; each row sums to <= seq_len."""
    rows: list[list[int]] = []
    room: list[int] = []
    first_open = 0
    for i in order.tolist():
        n = int(lengths[i])
        for r in range(first_open, len(rows)):
            if room[r] >= n:
                rows[r].append(i)
                room[r] -= n
                break
        else:
            rows.append([i])
            room.append(seq_len - n)
            first_open = max(first_open, len(rows) - open_rows)
    return rows


class EpochPlan:
    """Which records form row j of epoch e, and which rows form global step s."""

    def __init__(self, lengths: np.ndarray, seq_len: int, packing: bool, seed: int, rows_per_step: int):
        self.lengths = np.asarray(lengths)
        self.seq_len = seq_len
        self.packing = packing
        self.seed = seed
        self.rows_per_step = rows_per_step
        self._epochs: dict[int, list[list[int]]] = {}
        self._steps: list[int] = []  # steps in each epoch computed so far
        if self.steps_in_epoch(0) == 0:
            raise ValueError(f"one epoch has fewer rows ({len(self.rows(0))}) than one step needs ({rows_per_step}); "
                             "lower train.micro_batch_size or add data")

    def rows(self, epoch: int) -> list[list[int]]:
        if epoch not in self._epochs:
            rng = np.random.default_rng([self.seed, epoch, 0x5A])
            order = rng.permutation(len(self.lengths))
            if self.packing:
                rows = pack(self.lengths, order, self.seq_len)
                rows = [rows[j] for j in rng.permutation(len(rows))]
            else:
                # Buckets of similar length: sort within windows, batch, shuffle the batches.
                window = self.rows_per_step * 16
                batches = []
                for w in range(0, len(order), window):
                    chunk = sorted(order[w:w + window].tolist(), key=lambda i: self.lengths[i])
                    batches += [chunk[k:k + self.rows_per_step] for k in range(0, len(chunk), self.rows_per_step)]
                batches = [b for b in batches if len(b) == self.rows_per_step]
                rows = [[i] for j in rng.permutation(len(batches)) for i in batches[j]]
            self._epochs = {epoch: rows}  # keep one epoch in memory
        return self._epochs[epoch]

    def steps_in_epoch(self, epoch: int) -> int:
        while len(self._steps) <= epoch:
            self._steps.append(len(self.rows(len(self._steps))) // self.rows_per_step)
        return self._steps[epoch]

    def step_rows(self, step: int) -> list[list[int]]:
        """The rows_per_step rows of global step ``step`` (0-based)."""
        epoch = 0
        while step >= self.steps_in_epoch(epoch):
            step -= self.steps_in_epoch(epoch)
            epoch += 1
        rows = self.rows(epoch)
        return rows[step * self.rows_per_step:(step + 1) * self.rows_per_step]


@dataclass
class Batch:
    input_ids: torch.Tensor  # (B, T)
    targets: torch.Tensor  # (B, T)
    position_ids: torch.Tensor  # (B, T): position inside each record, as at inference
    meta: masks.MaskMeta
    n_tokens: int  # non-padding tokens
    n_targets: int
    attended_pairs: int  # causal (query, key) pairs inside records: for attention FLOPs

    def pin(self) -> "Batch":
        m = self.meta
        return Batch(self.input_ids.pin_memory(), self.targets.pin_memory(), self.position_ids.pin_memory(),
                     masks.MaskMeta(m.doc.pin_memory(), m.seg.pin_memory(), m.sparse.pin_memory(), m.allowed.pin_memory()),
                     self.n_tokens, self.n_targets, self.attended_pairs)

    def to(self, device) -> "Batch":
        nb = device.type == "cuda"
        return Batch(self.input_ids.to(device, non_blocking=nb), self.targets.to(device, non_blocking=nb),
                     self.position_ids.to(device, non_blocking=nb), self.meta.to(device, nb),
                     self.n_tokens, self.n_targets, self.attended_pairs)


def collate(encoded: list[Encoded], rows: list[list[int]], pad_id: int, T: int | None = None) -> Batch:
    """Rows of record indices -> tensors; T defaults to the longest row rounded up to 8."""
    lens = [sum(len(encoded[i]) for i in row) for row in rows]
    if T is None:
        T = -(-max(lens) // 8) * 8
    B = len(rows)
    ids = np.full((B, T), pad_id, dtype=np.int64)
    tgt = np.full((B, T), IGNORE, dtype=np.int64)
    pos = np.zeros((B, T), dtype=np.int64)
    pairs = 0
    for b, row in enumerate(rows):
        p = 0
        for i in row:
            e = encoded[i]
            L = len(e)
            ids[b, p:p + L] = e.ids
            tgt[b, p:p + L] = e.targets
            pos[b, p:p + L] = np.arange(L)
            pairs += L * (L + 1) // 2
            p += L
    meta = masks.stack_rows([[encoded[i].meta for i in row] for row in rows], T)
    return Batch(torch.from_numpy(ids), torch.from_numpy(tgt), torch.from_numpy(pos), meta,
                 n_tokens=int(sum(lens)), n_targets=int((tgt != IGNORE).sum()), attended_pairs=pairs)


class Prefetcher:
    """Builds the next steps' batches in a background thread while the GPU runs this one.

    ``make(step)`` must be a pure function of the step (it is: the plan is fixed by the
    seed), so prefetching changes nothing but timing."""

    def __init__(self, make, start: int, stop: int, depth: int = 2):
        import queue
        import threading

        self._queue: "queue.Queue" = queue.Queue(maxsize=depth)
        self._stop = threading.Event()

        def work():
            for step in range(start, stop):
                if self._stop.is_set():
                    return
                try:
                    item = (step, make(step), None)
                except BaseException as e:  # surfaced on the consumer side
                    item = (step, None, e)
                while not self._stop.is_set():
                    try:
                        self._queue.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if item[2] is not None:
                    return

        self._thread = threading.Thread(target=work, name="spanattn-prefetch", daemon=True)
        self._thread.start()

    def get(self, step: int):
        got, value, error = self._queue.get()
        if error is not None:
            raise error
        assert got == step, f"internal: prefetched step {got}, wanted {step}"
        return value

    def close(self) -> None:
        self._stop.set()

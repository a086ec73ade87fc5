"""The device state machine (span_state.py) agrees with spans.py on every position."""
import json
import random
from pathlib import Path

import pytest
import torch

from spanattn import spans
from spanattn.span_state import SpanState

VECTORS = json.loads((Path(__file__).parents[1] / "fixtures/spans/vectors.json").read_text())


def run_batch(token_lists, compile=False):
    """Feed each sequence token by token (right-padded batch); return per-sequence lists of
    (merged intervals, sparse) per position, and the final state."""
    B = len(token_lists)
    T = max(len(t) for t in token_lists)
    state = SpanState(B, compile=compile)
    kinds = torch.zeros(B, T, dtype=torch.int64)
    values = torch.zeros(B, T, dtype=torch.int64)
    for b, toks in enumerate(token_lists):
        k, v = spans.token_kinds(toks)
        kinds[b, :len(k)] = torch.tensor(k)
        values[b, :len(v)] = torch.tensor(v)
    lengths = torch.tensor([len(t) for t in token_lists])
    out = [[] for _ in range(B)]
    for t in range(T):
        active = t < lengths
        iv, n, sp = state.step(kinds[:, t], values[:, t], torch.full((B,), t), active)
        for b in range(B):
            if active[b]:
                pairs = [tuple(x) for x in iv[b, : n[b]].tolist()]
                # the op takes touching intervals; spans.py merges them: compare coverage
                out[b].append((spans.merge_intervals(pairs), bool(sp[b]), pairs))
    state.finish()
    return out, state


def check_against_parse(token_lists, compile=False):
    out, state = run_batch(token_lists, compile=compile)
    for b, toks in enumerate(token_lists):
        p = spans.parse_tokens(toks)
        for t in range(len(toks)):
            merged, sparse, raw = out[b][t]
            assert sparse == p.sparse[t], (b, t, toks)
            assert merged == p.intervals(t), (b, t, toks)
            # raw intervals must be sorted and non-overlapping (the kernel's contract)
            assert all(raw[i][1] <= raw[i + 1][0] for i in range(len(raw) - 1)), raw
            assert all(s < e for s, e in raw), raw
        assert int(state.malformed[b]) == p.malformed, toks
        assert int(state.attempts[b]) == p.directive_attempts, toks
        assert int(state.cur[b]) == len(p.segment_starts) - 1


def test_shared_vectors_in_one_ragged_batch():
    check_against_parse([v["tokens"] for v in VECTORS["token_vectors"]])


@pytest.mark.parametrize("seed", range(4))
def test_random_token_soup(seed):
    rng = random.Random(seed)
    alphabet = ["<seg>"] * 4 + ["<attend>"] * 3 + ["</attend>"] * 3 + ["<ref-1>", "<ref-2>", "<ref-8>", "<ref0>",
                "<ref1>", "<ref2>", "<ref5>", "<eos>", "<bos>"] + ["a"] * 8
    batch = [["<bos>"] + [rng.choice(alphabet) for _ in range(rng.randint(1, 120))] for _ in range(24)]
    check_against_parse(batch)


def test_compiled_step_agrees_with_spans_py():
    """torch.compile fuses the step's ~170 ops (the GPU engine's option); same answers."""
    rng = random.Random(7)
    alphabet = ["<seg>"] * 4 + ["<attend>"] * 3 + ["</attend>"] * 3 + ["<ref-1>", "<ref-2>", "<ref0>", "<ref1>",
                "<ref5>", "<eos>"] + ["a"] * 8
    soup = [["<bos>"] + [rng.choice(alphabet) for _ in range(rng.randint(1, 60))] for _ in range(6)]
    check_against_parse([v["tokens"] for v in VECTORS["token_vectors"]][:10] + soup, compile=True)


def test_compiled_step_with_the_dense_override_equals_eager():
    toks = ["<bos>", "a", "<seg>", "a", "a", "<seg>", "a", "a", "<seg>", "<attend>", "<ref1>", "</attend>", "a", "a",
            "a", "<seg>", "a"]  # the directive skips segment 2
    k, v = (torch.tensor(x) for x in spans.token_kinds(toks))
    runs = []
    for compile in (False, True):
        s = SpanState(2, compile=compile)
        seen = []
        for t in range(len(toks)):
            dense = torch.tensor(t % 3 == 0)  # flips between steps, as eval flips modes
            iv, n, sp = s.step(k[t].repeat(2), v[t].repeat(2), torch.full((2,), t), torch.tensor([True, t < 11]), dense)
            seen.append((iv.clone(), n.clone(), sp.clone()))
        runs.append((seen, s.attended.clone(), s.possible.clone(), s.malformed.clone(), s.cur.clone()))
    (eager, *e_tot), (comp, *c_tot) = runs
    for (a, b, c), (x, y, z) in zip(eager, comp):
        assert torch.equal(a, x) and torch.equal(b, y) and torch.equal(c, z)
    for a, b in zip(e_tot, c_tot):
        assert torch.equal(a, b)
    assert int(e_tot[0][0]) < int(e_tot[1][0])  # the sparse steps really read fewer keys


def test_intervals_shape_is_fixed_for_graph_capture():
    s = SpanState(3)
    iv, n, _ = s.step(torch.zeros(3, dtype=torch.int64), torch.zeros(3, dtype=torch.int64), torch.zeros(3, dtype=torch.int64))
    assert iv.shape == (3, spans.default_grammar().max_intervals, 2) and iv.dtype == torch.int32
    assert n.tolist() == [1, 1, 1]
    assert iv.data_ptr() == s.intervals.data_ptr()  # written in place


def test_idle_rows_read_no_keys():
    """A finished row waiting for its batch (or a free slot) gets no interval: it must not
    read its whole KV every step, which in sparse mode would cost more than the live rows."""
    toks = VECTORS["token_vectors"][0]["tokens"]
    kinds, values = spans.token_kinds(toks)
    s = SpanState(2)
    active = torch.tensor([True, False])
    for t, (k, v) in enumerate(zip(kinds, values)):
        iv, n, _ = s.step(torch.tensor([k, k]), torch.tensor([v, v]), torch.tensor([t, t]), active)
        assert int(n[0]) >= 1 and int(n[1]) == 0, t
        assert not iv[1].any(), t
        assert int(iv[0, : int(n[0]), 1].max()) == t + 1  # the live row still reads its own token
    assert int(s.attended[1]) == 0 and int(s.attended[0]) > 0


def test_reset_rows():
    toks = VECTORS["token_vectors"][0]["tokens"]
    out, state = run_batch([toks, toks])
    state.reset(torch.tensor([True, False]))
    assert int(state.cur[0]) == 0 and int(state.cur[1]) > 0


@pytest.mark.parametrize("seed", range(3))
def test_load_prefix_then_step_equals_stepping_from_the_start(seed):
    rng = random.Random(100 + seed)
    alphabet = ["<seg>"] * 4 + ["<attend>"] * 3 + ["</attend>"] * 3 + ["<ref-1>", "<ref-2>", "<ref0>", "<ref1>",
                "<ref3>", "<eos>"] + ["a"] * 8
    seqs = [["<bos>"] + [rng.choice(alphabet) for _ in range(rng.randint(2, 90))] for _ in range(16)]
    cuts = [rng.randint(1, len(s) - 1) for s in seqs]
    state = SpanState(len(seqs))
    prefixes = []
    for s, c in zip(seqs, cuts):
        k, v = spans.token_kinds(s[:c])
        prefixes.append(spans.parse_kinds(k, v, complete=False))
    state.load(prefixes)
    B = len(seqs)
    for b, (s, c) in enumerate(zip(seqs, cuts)):
        full = spans.parse_tokens(s)
        k, v = spans.token_kinds(s)
        row = torch.zeros(B, dtype=torch.bool)
        row[b] = True
        for t in range(c, len(s)):
            iv, n, sp = state.step(torch.full((B,), k[t]), torch.full((B,), v[t]), torch.full((B,), t), row)
            pairs = [tuple(x) for x in iv[b, : n[b]].tolist()]
            assert bool(sp[b]) == full.sparse[t]
            assert spans.merge_intervals(pairs) == full.intervals(t), (s, c, t)
    state.finish()
    assert state.malformed.tolist() == [spans.parse_tokens(s).malformed for s in seqs]

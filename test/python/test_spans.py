"""Span grammar: the shared vectors (also checked by vitest) and hand-checked cases."""
import json
from pathlib import Path

import pytest

from spanattn import spans

VECTORS = json.loads((Path(__file__).parents[1] / "fixtures/spans/vectors.json").read_text())


def test_grammar_matches_vectors():
    assert spans.default_grammar().to_dict() == VECTORS["grammar"]


@pytest.mark.parametrize("vector", VECTORS["token_vectors"], ids=lambda v: v["name"])
def test_token_vectors(vector):
    p = spans.parse_tokens(vector["tokens"])
    exp = vector["expected"]
    assert p.segment_ids == exp["segment_ids"]
    assert p.segment_starts == exp["segment_starts"]
    assert p.statuses == exp["statuses"]
    assert p.refs == exp["refs"]
    assert "".join("1" if s else "0" for s in p.sparse) == exp["sparse"]
    assert (p.directive_attempts, p.malformed) == (exp["directive_attempts"], exp["malformed"])
    assert [[list(i) for i in p.intervals(t)] for t in range(p.length)] == exp["intervals"]
    mask = spans.attention_mask(p)
    assert ["".join("1" if x else "0" for x in row) for row in mask.tolist()] == exp["mask"]


@pytest.mark.parametrize("vector", VECTORS["record_vectors"], ids=lambda v: v["record"]["id"])
def test_record_vectors(vector):
    toks = spans.render_symbolic(vector["record"])
    assert toks == vector["tokens"]
    assert spans.density_counts(spans.parse_tokens(toks)) == (vector["kept"], vector["total"])


def test_hand_checked_arith_mask():
    # <bos> h <seg> 1 + 2 <seg> <attend> <ref-1> </attend> 3 <eos>
    toks = ["<bos>", "h", "<seg>", "1", "+", "2", "<seg>", "<attend>", "<ref-1>", "</attend>", "3", "<eos>"]
    p = spans.parse_tokens(toks)
    assert p.segment_ids == [0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2]
    assert p.statuses == ["none", "none", "sparse"]
    # '3' (t=10) reads the header, the prompt segment and its own segment: everything here.
    assert p.intervals(10) == [(0, 11)]


def test_hand_checked_skip():
    # segment 3 attends only segment 1: segment 2 ("b b", tokens 5..7) is skipped.
    toks = ["<bos>", "h", "<seg>", "a", "a", "<seg>", "b", "b", "<seg>", "<attend>", "<ref1>", "</attend>", "x"]
    p = spans.parse_tokens(toks)
    assert p.intervals(12) == [(0, 5), (8, 13)]
    mask = spans.attention_mask(p)
    assert mask[12].tolist() == [True] * 5 + [False] * 3 + [True] * 5
    # the directive tokens themselves are global
    assert mask[11].tolist() == [True] * 12 + [False]


def test_render_record_ids_and_loss():
    g = spans.default_grammar()
    vocab = {tok: i for i, tok in enumerate(g.special_tokens)}
    rec = VECTORS["record_vectors"][0]["record"]
    chars = {}

    def encode(text):
        return [chars.setdefault(c, 1000 + len(chars)) for c in text]

    r = spans.render_record(rec, encode, vocab.__getitem__)
    inv = {v: k for k, v in vocab.items()}
    symbolic = [inv.get(i, "?") for i in r.ids]
    assert symbolic.count("<seg>") == 4 and symbolic[-1] == "<eos>"
    # loss only on response segments (their <seg>, directive and text) and the <eos>
    first_response = [i for i, t in enumerate(symbolic) if t == "<seg>"][1]
    assert r.loss == [False] * first_response + [True] * (len(r.ids) - first_response)
    assert r.prompt_length == first_response
    assert len(r.ids) == len(VECTORS["record_vectors"][0]["tokens"])


def test_grammar_caps_are_consistent():
    g = spans.default_grammar()
    assert len(set(g.special_tokens)) == len(g.special_tokens)
    assert g.max_intervals == g.max_refs_per_directive + 2
    with pytest.raises(ValueError, match="relative ref"):
        g.ref_token(-(g.max_relative_ref + 1))

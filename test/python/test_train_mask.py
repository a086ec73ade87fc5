"""The span mask as training applies it: the same as spans.py, and respected by a real forward pass."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import train_fixtures as fx
from spanattn import batches, masks, spans
from spanattn import model as models
from spanattn import tokenizer as tokenizers

VECTORS = json.loads((Path(__file__).parents[1] / "fixtures/spans/vectors.json").read_text())
K = spans.default_grammar().max_intervals


@pytest.mark.parametrize("vector", VECTORS["token_vectors"], ids=lambda v: v["name"])
def test_dense_mask_equals_spans_mask(vector):
    parse = spans.parse_tokens(vector["tokens"])
    got = masks.dense_mask(masks.meta_from_parses([[parse]], parse.length), sparse=True)[0, 0]
    assert torch.equal(got, spans.attention_mask(parse))
    dense = masks.dense_mask(masks.meta_from_parses([[parse]], parse.length), sparse=False)[0, 0]
    assert torch.equal(dense, torch.ones_like(dense).tril())


def test_packed_rows_are_block_diagonal_with_padding():
    parses = [spans.parse_tokens(v["tokens"]) for v in VECTORS["token_vectors"][:5]]
    T = sum(p.length for p in parses[:3]) + 5
    meta = masks.meta_from_parses([parses[:3], parses[3:]], T)
    got = masks.dense_mask(meta, sparse=True)
    for b, row in enumerate([parses[:3], parses[3:]]):
        expect = torch.zeros(T, T, dtype=torch.bool)
        pos = 0
        for p in row:
            expect[pos:pos + p.length, pos:pos + p.length] = spans.attention_mask(p)
            pos += p.length
        expect[pos:, pos:] = torch.ones(T - pos, T - pos, dtype=torch.bool).tril()  # padding: causal among itself
        assert torch.equal(got[b, 0], expect)


def test_flex_mask_mod_under_vmap_equals_dense_mask():
    from torch.nn.attention.flex_attention import create_mask

    parses = [spans.parse_tokens(v["tokens"]) for v in VECTORS["token_vectors"][:6]]
    T = 64
    meta = masks.meta_from_parses([parses[:3], parses[3:6]], T)
    for sparse in (True, False):
        flex = create_mask(masks.span_mask_mod(meta, sparse), 2, 1, T, T, device="cpu")
        assert torch.equal(flex, masks.dense_mask(meta, sparse))


def _tok_and_records(n=40):
    records = fx.arith_splits(n_train=n, n_val=0, n_test=0, ops=(2, 3))["train"]
    tok = tokenizers.build_char_tokenizer(tokenizers.record_texts(records))
    return tok, records


def test_metadata_from_structure_equals_the_parser():
    tok, records = _tok_and_records()
    records += [v["record"] for v in VECTORS["record_vectors"] if set("".join(s["text"] for s in v["record"]["segments"])) <= set(tok.hf.get_vocab())]
    enc, _ = batches.encode_records(records, tok, verify=0)
    for e in enc:
        ref = masks.record_meta_from_parse(tok.parse(e.ids.tolist()), K)
        assert np.array_equal(ref.seg, e.meta.seg) and np.array_equal(ref.sparse, e.meta.sparse)
        assert np.array_equal(ref.allowed, e.meta.allowed)


def test_response_targets_include_directives_and_eos():
    tok, records = _tok_and_records(1)
    (e,), _ = batches.encode_records(records, tok)
    targets = [t for t in e.targets.tolist() if t != batches.IGNORE]
    assert tok.token_id("<attend>") in targets and tok.token_id("<ref-1>") in targets and targets[-1] == tok.eos_id
    assert len(targets) == len(e) - e.prompt_length  # every token after the prompt, nothing before


def _tiny_model(vocab, impl="sdpa", layers=2):
    torch.manual_seed(0)
    spec = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": layers, "num_attention_heads": 4,
            "num_key_value_heads": 2}
    return models.build_default_model(spec, vocab, attn_implementation=impl).eval()


def _logits(model, batch, sparse, impl="sdpa"):
    mask = masks.model_mask(batch.meta, sparse, impl, torch.float32)
    with torch.no_grad():
        return model(input_ids=batch.input_ids, attention_mask=mask, position_ids=batch.position_ids).logits


@pytest.mark.parametrize("layers", [1, 2])
def test_forward_pass_respects_the_mask(layers):
    """A sparse token's output ignores masked-out tokens and depends on attended ones.

    Within a record this holds exactly for one layer: deeper layers also see masked-out
    tokens through the tokens they may read (the directive tokens attend globally, by
    design), which is the semantics inference has too. Across packed records it holds
    at any depth."""
    tok, records = _tok_and_records()
    record = next(r for r in records if len(r["segments"]) >= 5)  # header, prompt, >= 3 steps
    other = next(r for r in records if r is not record)
    enc, _ = batches.encode_records([record, other], tok)
    e = enc[0]
    model = _tiny_model(len(tok), layers=layers)
    batch = batches.collate(enc, [[0, 1]], tok.pad_id, T=len(enc[0]) + len(enc[1]) + 3)
    seg_of, sparse = e.meta.seg, e.meta.sparse
    q = int(np.flatnonzero(sparse & (seg_of == 4))[0])  # first answer token of step 3: reads seg 0, 3, 4
    prompt_tok = int(np.flatnonzero(seg_of == 1)[1])  # a prompt character: masked out for q
    step2_tok = int(np.flatnonzero((seg_of == 3) & ~np.isin(e.ids, list(tok.special_ids.values())))[0])  # attended
    base_sparse, base_dense = _logits(model, batch, True), _logits(model, batch, False)

    def changed(pos, sparse_mode):
        b = batches.collate(enc, [[0, 1]], tok.pad_id, T=batch.input_ids.shape[1])
        b.input_ids[0, pos] = (b.input_ids[0, pos] + 1) % len(tok)
        return _logits(model, b, sparse_mode)

    if layers == 1:
        assert torch.equal(changed(prompt_tok, True)[0, q], base_sparse[0, q])  # masked out: bit-identical
        assert not torch.allclose(changed(prompt_tok, False)[0, q], base_dense[0, q])  # dense reads it
        assert not torch.allclose(changed(step2_tok, True)[0, q], base_sparse[0, q])  # attended
    # the other record packed in the same row is invisible under either mask
    other_pos = len(e) + 3
    assert torch.equal(changed(other_pos, True)[0, : len(e)], base_sparse[0, : len(e)])
    assert torch.equal(changed(other_pos, False)[0, : len(e)], base_dense[0, : len(e)])


def test_positions_restart_per_record_so_packing_matches_a_single_record():
    tok, records = _tok_and_records()
    enc, _ = batches.encode_records(records[:3], tok)
    model = _tiny_model(len(tok))
    packed = _logits(model, batches.collate(enc, [[0, 1, 2]], tok.pad_id), True)
    alone = _logits(model, batches.collate(enc, [[1]], tok.pad_id), True)
    start = len(enc[0])
    assert torch.allclose(packed[0, start:start + len(enc[1])], alone[0, : len(enc[1])], atol=1e-5)


def test_eager_additive_mask_equals_sdpa_boolean_mask():
    tok, records = _tok_and_records()
    enc, _ = batches.encode_records(records[:4], tok)
    batch = batches.collate(enc, [[0, 1], [2, 3]], tok.pad_id)
    a = _logits(_tiny_model(len(tok), "sdpa"), batch, True, "sdpa")
    b = _logits(_tiny_model(len(tok), "eager"), batch, True, "eager")
    assert torch.allclose(a, b, atol=1e-5)


def test_packing_fills_rows_and_plans_are_deterministic():
    rng = np.random.default_rng(0)
    lengths = rng.integers(20, 120, size=500)
    rows = batches.pack(lengths, rng.permutation(500), 256)
    assert sorted(i for r in rows for i in r) == list(range(500))
    assert all(lengths[r].sum() <= 256 for r in rows)
    assert lengths.sum() / (256 * len(rows)) > 0.9
    a = batches.EpochPlan(lengths, 256, True, seed=3, rows_per_step=8)
    b = batches.EpochPlan(lengths, 256, True, seed=3, rows_per_step=8)
    steps = a.steps_in_epoch(0) + 2  # into the second epoch
    assert a.step_rows(steps) == b.step_rows(steps)
    assert a.step_rows(0) != batches.EpochPlan(lengths, 256, True, seed=4, rows_per_step=8).step_rows(0)
    unpacked = batches.EpochPlan(lengths, 256, False, seed=3, rows_per_step=8)
    r = unpacked.step_rows(1)
    assert len(r) == 8 and all(len(x) == 1 for x in r)


def test_parallel_encoding_equals_serial(monkeypatch):
    from spanattn import data

    tok, records = _tok_and_records(2500)
    serial, _ = batches.encode_records(records, tok)
    monkeypatch.setattr(batches, "PARALLEL_MIN_RECORDS", 2000)  # chunks of 1000 records
    monkeypatch.setattr(data.os, "cpu_count", lambda: 4)  # forked workers even on a 2-core runner
    parallel, _ = batches.encode_records(records, tok)
    assert len(parallel) == len(serial)
    for a, b in zip(serial, parallel):
        assert (a.id, a.line, a.prompt_length) == (b.id, b.line, b.prompt_length)
        for x, y in ((a.ids, b.ids), (a.targets, b.targets), (a.meta.seg, b.meta.seg), (a.meta.sparse, b.meta.sparse),
                     (a.meta.allowed, b.meta.allowed)):
            assert np.array_equal(x, y)


def test_parallel_validation_names_the_same_first_bad_line(tmp_path, monkeypatch):
    from spanattn import data

    splits = fx.arith_splits(n_train=2500, n_val=1, n_test=1)
    lines = [json.dumps(r) for r in splits["train"]]
    lines[2100] = lines[2100].replace('"prompt"', '"question"')
    lines[2300] = "{"
    root = fx.write_dataset(tmp_path / "ds", splits, raw_lines={"train": lines})
    monkeypatch.setattr(data.os, "cpu_count", lambda: 4)
    monkeypatch.setattr(data, "VALIDATE_CHUNK_LINES", 500)
    with pytest.raises(data.DataError, match=r"train\.jsonl:2101: record breaks"):
        data.load_dataset(root).records("train")


def test_char_fast_path_equals_the_rust_tokenizer():
    tok, records = _tok_and_records(50)
    texts = [s["text"] for r in records for s in r["segments"]] + ["unseen ∑ chars", ""]
    fast = tok.encode_batch(texts)
    tok._char_vocab = None
    assert fast == tok.encode_batch(texts)


@pytest.mark.parametrize("vector", VECTORS["token_vectors"], ids=lambda v: v["name"])
def test_incremental_metadata_equals_a_full_parse(vector):
    """Greedy decoding extends each row's mask a token at a time; it must equal parsing the
    whole sequence, malformed directives included."""
    from spanattn import greedy

    tok = tokenizers.build_char_tokenizer([t for t in vector["tokens"] if not t.startswith("<") or len(t) == 1])
    ids = [tok.special_ids[t] if t in tok.special_ids else tok.encode(t)[0] for t in vector["tokens"]]
    for cut in (1, min(3, len(ids))):
        inc = greedy.IncrementalMeta(tok, ids[:cut])
        for t in ids[cut:]:
            inc.append(t)
        got, ref = inc.record_meta(), masks.record_meta_from_parse(tok.parse(ids), K)
        assert np.array_equal(got.seg, ref.seg) and np.array_equal(got.sparse, ref.sparse)
        assert np.array_equal(got.allowed, ref.allowed)

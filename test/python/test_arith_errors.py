"""benchmarks/arith_errors.py: teacher-forced mistakes of an arithmetic model, by kind of character."""
import json
from types import SimpleNamespace

import pytest
import torch

import train_fixtures as fx
from spanattn.tokenizer import build_char_tokenizer, record_texts


@pytest.fixture(scope="module")
def errors():
    return fx.benchmark_script("arith_errors")


RECORD = {"id": "r1", "task": "arith", "answer": "6",
          "segments": [{"role": "header", "text": "Evaluate step by step."}, {"role": "prompt", "text": "1+2+3"},
                       {"role": "response", "attend": [-1], "text": "3+3"}, {"role": "response", "attend": [-1], "text": "6"}]}


class Oracle:
    """Logits that put the record's own next token first, except at positions in `wrong_at`."""

    def __init__(self, vocab: int, wrong_at=()):
        self.config = SimpleNamespace(vocab_size=vocab)
        self.wrong_at = set(wrong_at)

    def __call__(self, ids, attention_mask=None):
        nxt = torch.cat([ids[0, 1:], ids[0, :1]])
        logits = torch.nn.functional.one_hot(nxt, self.config.vocab_size).float()
        for t in self.wrong_at:
            logits[t] = logits[t].roll(1)
        return SimpleNamespace(logits=logits[None])


def test_copied_span_is_the_common_prefix_and_suffix(errors):
    assert errors.copied_span("1+2+3", "3+3") == (0, 2)  # "+3" kept; "3" is 1+2
    assert errors.copied_span("3+(8+9)*2", "3+17*2") == (2, 2)
    assert errors.copied_span("3+3", "6") == (0, 0)


@pytest.mark.parametrize("mask", ["dense", "sparse"])
def test_counts_by_kind_and_finds_the_first_wrong_step(errors, mask):
    tok = build_char_tokenizer(record_texts([RECORD]))
    perfect = errors.analyse(Oracle(len(tok)), tok, [RECORD], mask)
    assert perfect["characters"]["computed"] == 2 and perfect["characters"]["copied"] == 2
    assert perfect["wrong"] == {} and perfect["records_with_an_error"] == 0
    # make the prediction of the last response character ("6", computed, step 2 of 2) wrong
    from spanattn import spans

    ids = spans.render_record(RECORD, tok.encode, tok.token_id, tok.grammar).ids
    six = max(t for t, i in enumerate(ids) if i == tok.encode("6")[0])
    r = errors.analyse(Oracle(len(tok), wrong_at=[six - 1]), tok, [RECORD], mask)
    assert r["wrong"] == {"computed": 1} and r["error_rate"]["computed"] == 0.5
    assert r["first_error_at_share_of_steps"] == [0.5]
    assert r["examples"][0]["previous"] == "3+3" and r["examples"][0]["wanted"] == "6"


def test_command_line_on_a_saved_run(errors, tmp_path, capsys):
    data = fx.write_dataset(tmp_path / "data", fx.arith_splits(n_train=4, n_val=2, n_test=3))
    from spanattn.data import load_dataset

    ckpt, _ = fx.save_run(tmp_path / "run", load_dataset(data).records("train"))
    errors.main(["--checkpoint", str(ckpt), "--data", str(data), "--limit", "3", "--out", str(tmp_path / "e.json")])
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads((tmp_path / "e.json").read_text())
    assert printed["records"] == 3 and set(printed["characters"]) == {"special", "copied", "computed"}
    assert all(0.0 <= v <= 1.0 for v in printed["error_rate"].values())


def test_without_a_checkpoint_it_counts_the_datasets_characters_by_kind(errors, tmp_path, capsys):
    assert errors.step_kinds([RECORD]) == {"records": 1, "characters": {"copied": 2, "computed": 2}, "computed_share": 0.5}
    data = fx.write_dataset(tmp_path / "data", fx.arith_splits(n_train=5, n_val=2, n_test=2))
    errors.main(["--data", str(data), "--split", "train"])
    printed = json.loads(capsys.readouterr().out)
    assert printed["checkpoint"] is None and printed["records"] == 5 and 0.0 < printed["computed_share"] < 1.0

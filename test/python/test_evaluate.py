"""`spanattn eval` on the CPU: a saved run decoded dense and sparse, scoring, replay, bad input."""
import argparse
import json
import math

import pytest
import torch

from spanattn import evaluate, replay, spans
from spanattn import kernel as kernel_lib
from spanattn.tokenizer import build_char_tokenizer, record_texts
from train_fixtures import arith_splits, save_run, write_dataset


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("data") / "arith"
    return write_dataset(out, arith_splits(n_train=20, n_val=8, n_test=12))


def args(**kw):
    base = dict(split="test", checkpoint=None, limit=None, batch=4, max_new_tokens=24, modes=["dense", "sparse"],
                throughput=False, sweep_batches=[1, 2], sweep_lengths=[], device="cpu", allow_reference=False, no_graph=False,
                continuous=False, hf_limit=None, compile_state=False, compile_decode=False, step_plan=False)
    base.update(kw)
    return argparse.Namespace(**base)


def test_eval_decodes_both_modes_on_the_same_prompts(tmp_path, dataset):
    from spanattn.data import load_dataset

    records = load_dataset(dataset).records("train")
    save_run(tmp_path / "run", records)
    r = evaluate.evaluate(args(run=str(tmp_path / "run"), data=str(dataset), out=str(tmp_path / "o")))
    assert set(r["modes"]) == {"dense", "sparse"}
    assert r["attention"] == "reference" and "not GPU kernel numbers" in r["note"]
    assert r["kernel_schedule"] is None  # named only when the span kernel ran
    for m in r["modes"].values():
        assert m["generated_tokens"] > 0 and m["tokens_per_second"] > 0
        assert set(m["accuracy"]) == {"exact_match", "step_exact_match", "step_prefix"}
        assert 0 < m["attended_fraction"] <= 1
        assert len(m["attended_per_step"]) >= 1
    assert r["modes"]["dense"]["attended_fraction"] == 1.0
    assert r["speedup"] > 0


def test_an_eval_cut_short_keeps_the_modes_it_finished(tmp_path, dataset, monkeypatch, capsys):
    """result.partial.json after each mode (a time box or Ctrl-C keeps them); removed once
    result.json is written."""
    from spanattn.data import load_dataset

    save_run(tmp_path / "run", load_dataset(dataset).records("train"))
    real, calls = evaluate.run_mode, []

    def second_mode_interrupted(*a, **k):
        calls.append(a[4])
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(evaluate, "run_mode", second_mode_interrupted)
    out = tmp_path / "o"
    a = args(run=str(tmp_path / "run"), data=str(dataset), out=str(out))
    with pytest.raises(KeyboardInterrupt):
        evaluate.finish(lambda: evaluate.evaluate(a), str(out), kind="eval")
    partial = json.loads((out / "result.partial.json").read_text())
    assert partial["partial"] is True and list(partial["modes"]) == ["dense"] == calls[:1]
    assert partial["modes"]["dense"]["generated_tokens"] > 0 and not (out / "result.json").exists()
    assert "dense: " in capsys.readouterr().err  # the finished mode's summary is in the log too

    monkeypatch.setattr(evaluate, "run_mode", real)
    evaluate.finish(lambda: evaluate.evaluate(a), str(out), kind="eval")
    assert (out / "result.json").exists() and not (out / "result.partial.json").exists()


@pytest.mark.parametrize("refill", ["decode", "prefill"])
def test_continuous_batching_gives_the_same_generations_as_static_batches(tmp_path, dataset, refill):
    from spanattn.data import load_dataset

    save_run(tmp_path / "run", load_dataset(dataset).records("train"))
    kw = dict(run=str(tmp_path / "run"), data=str(dataset), out=str(tmp_path / "o"), batch=3, limit=7, max_new_tokens=10)
    static = evaluate.evaluate(args(**kw))
    cont = evaluate.evaluate(args(**kw, continuous=True, refill=refill))
    for mode in ("dense", "sparse"):
        assert cont["modes"][mode]["continuous"] and not static["modes"][mode]["continuous"]
        assert cont["modes"][mode]["refill"] == refill and static["modes"][mode]["refill"] is None
        assert cont["modes"][mode]["generated_tokens"] == static["modes"][mode]["generated_tokens"]
        assert cont["modes"][mode]["accuracy"] == static["modes"][mode]["accuracy"]
        assert cont["modes"][mode]["attended_fraction"] == pytest.approx(static["modes"][mode]["attended_fraction"])


def test_throughput_adds_a_batch_sweep_and_the_hf_baseline(tmp_path, dataset):
    from spanattn.data import load_dataset

    save_run(tmp_path / "run", load_dataset(dataset).records("train"))
    r = evaluate.evaluate(args(run=str(tmp_path / "run"), data=str(dataset), out=str(tmp_path / "o"), throughput=True,
                               limit=4, max_new_tokens=8, sweep_lengths=[2, 4, 8, 64]))
    assert [s["batch"] for s in r["sweep"]] == [1, 2]
    # generation lengths below --max-new-tokens, at the eval's batch, both modes on the same prompts
    assert [s["max_new_tokens"] for s in r["length_sweep"]] == [2, 4]
    for s in r["length_sweep"]:
        assert s["batch"] == 4 and s["records"] == 4
        for mode in ("dense", "sparse"):
            assert 0 < s[mode]["generated_tokens"] <= 4 * s["max_new_tokens"]
        assert s["speedup"] == pytest.approx(s["sparse"]["tokens_per_second"] / s["dense"]["tokens_per_second"])
    assert r["hf_generate"]["tokens_per_second"] > 0 and "engine_dense_ratio" in r["hf_generate"]
    assert r["hf_generate"]["records"] == 4


def test_compiled_state_machine_and_decode_forward_decode_the_same(tmp_path, dataset):
    from spanattn.data import load_dataset

    save_run(tmp_path / "run", load_dataset(dataset).records("train"))
    kw = dict(run=str(tmp_path / "run"), data=str(dataset), out=str(tmp_path / "o"), batch=3, limit=5, max_new_tokens=12)
    plain = evaluate.evaluate(args(**kw))
    fused = evaluate.evaluate(args(**kw, compile_state=True, compile_decode=True))
    assert fused["compile_state"] and fused["compile_decode"] and not plain["compile_state"] and not plain["compile_decode"]
    for mode in ("dense", "sparse"):
        a, b = plain["modes"][mode], fused["modes"][mode]
        assert [s["generated"] for s in a["samples"]] == [s["generated"] for s in b["samples"]]
        for k in ("generated_tokens", "attended_fraction", "directive_attempts", "malformed_rate", "accuracy"):
            assert a[k] == b[k], k


def test_hf_baseline_on_fewer_records_compares_the_engine_on_the_same_ones(tmp_path, dataset):
    from spanattn.data import load_dataset

    save_run(tmp_path / "run", load_dataset(dataset).records("train"))
    kw = dict(run=str(tmp_path / "run"), data=str(dataset), out=str(tmp_path / "o"), throughput=True, limit=4,
              max_new_tokens=8, sweep_batches=[1])
    r = evaluate.evaluate(args(**kw, hf_limit=2))
    hf = r["hf_generate"]
    assert hf["records"] == 2
    # generated tokens of 2 prompts, not 4: the baseline ran on the subset
    assert 0 < hf["generated_tokens"] <= 2 * 8 < r["modes"]["dense"]["generated_tokens"] + 1
    assert hf["engine_dense_ratio"] == pytest.approx(hf["engine_dense_tokens_per_second"] / hf["tokens_per_second"])
    assert "hf_generate" not in evaluate.evaluate(args(**kw, hf_limit=0))


def test_scoring_of_generated_segments():
    records = arith_splits(n_train=1, n_val=0, n_test=0)["train"]
    rec = records[0]
    tok = build_char_tokenizer(record_texts(records))
    g = tok.grammar
    gen = []
    for seg in rec["segments"][2:]:
        gen += [tok.token_id(g.seg), tok.token_id(g.attend_open), tok.token_id("<ref-1>"), tok.token_id(g.attend_close)]
        gen += tok.encode(seg["text"])
    gen.append(tok.eos_id)
    texts = evaluate.response_segments(tok, gen)
    assert texts == [s["text"] for s in rec["segments"][2:]]
    assert evaluate.score_arith([rec], [texts]) == {"exact_match": 1.0, "step_exact_match": 1.0, "step_prefix": 1.0}
    n = len(texts)
    wrong = texts[:-1] + ["999"]
    assert evaluate.score_arith([rec], [wrong]) == {"exact_match": 0.0, "step_exact_match": 0.0,
                                                    "step_prefix": (n - 1) / n}
    # a wrong first step counts nothing after it, even where later steps match again
    early = ["999"] + texts[1:]
    assert evaluate.score_arith([rec], [early])["step_prefix"] == 0.0
    # stopping early: the steps it wrote, out of the reference's
    assert evaluate.score_arith([rec, rec], [texts[:1], []])["step_prefix"] == (1 / n) / 2


def test_bad_runs_are_refused_with_a_hint(tmp_path, dataset):
    (tmp_path / "empty").mkdir()
    with pytest.raises(evaluate.EvalError, match="has no checkpoint") as e:
        evaluate.evaluate(args(run=str(tmp_path / "empty"), data=str(dataset), out=str(tmp_path / "o")))
    assert "spanattn train" in e.value.hint
    with pytest.raises(evaluate.EvalError, match="run folder not found"):
        evaluate.evaluate(args(run=str(tmp_path / "nope"), data=str(dataset), out=str(tmp_path / "o")))
    with pytest.raises(evaluate.EvalError, match="has no best checkpoint") as e:
        evaluate.evaluate(args(run=str(tmp_path / "empty"), checkpoint="best", data=str(dataset), out=str(tmp_path / "o")))
    assert "keep_best" in e.value.hint
    other = spans.default_grammar().to_dict() | {"max_segments": 64}
    from spanattn.data import load_dataset

    save_run(tmp_path / "run", load_dataset(dataset).records("train"), grammar=other)
    with pytest.raises(evaluate.EvalError, match="another span grammar"):
        evaluate.evaluate(args(run=str(tmp_path / "run"), data=str(dataset), out=str(tmp_path / "o")))


def test_replay_tiny_shape_measures_both_modes(tmp_path, dataset):
    ns = argparse.Namespace(data=str(dataset), split="test", limit=None, shape="tiny", contexts=[96], batches=[2], gen=8,
                            memory_gib=None, device="cpu", allow_reference=False, no_graph=False, compile_state=False, compile_decode=False, step_plan=False)
    r = replay.replay(ns)
    row = r["rows"][0]
    assert row["context"] == 96 and row["dense"]["attended_fraction"] == 1.0
    assert row["sparse"]["attended_fraction"] < 1.0
    assert row["speedup"] > 0
    ns.memory_gib = 1e-9
    assert "skipped" in replay.replay(ns)["rows"][0]


def test_replay_model_has_room_for_the_dataset_tokenizer():
    small = replay.random_model("tiny", torch.device("cpu"), torch.float32, 64)
    assert small.config.vocab_size == replay.SHAPES["tiny"]["vocab_size"]
    big = replay.random_model("tiny", torch.device("cpu"), torch.float32, 64, min_vocab=900)
    assert big.config.vocab_size == 900 and big.get_input_embeddings().weight.shape[0] == 900


@pytest.mark.skipif(not kernel_lib.DEFAULT_LIBRARY.is_file(), reason="libspanattn.so not built (spanattn build-kernel)")
def test_a_bad_kernel_schedule_in_the_environment_is_an_eval_error(monkeypatch):
    # loading the library needs no GPU; a GPU device makes eval load it
    monkeypatch.setattr(kernel_lib, "_lib", None)
    monkeypatch.setenv(kernel_lib.SCHEDULE_ENV, "fastest")
    with pytest.raises(evaluate.EvalError, match="SPANATTN_KERNEL_SCHEDULE='fastest'") as err:
        evaluate.check_kernel(torch.device("cuda"), allow_reference=True)
    assert "rows or balanced" in err.value.hint
    monkeypatch.setattr(kernel_lib, "_lib", None)
    monkeypatch.delenv(kernel_lib.SCHEDULE_ENV)
    monkeypatch.setenv(kernel_lib.COMBINE_ENV, "sometimes")
    with pytest.raises(evaluate.EvalError, match="SPANATTN_KERNEL_COMBINE='sometimes'") as err:
        evaluate.check_kernel(torch.device("cuda"), allow_reference=True)
    assert "kernel or fused" in err.value.hint
    monkeypatch.delenv(kernel_lib.COMBINE_ENV)
    monkeypatch.setattr(kernel_lib, "_lib", None)


def test_the_step_plan_is_on_by_default_and_can_be_turned_off():
    p = argparse.ArgumentParser()
    evaluate.add_engine_args(p)
    assert evaluate.engine_options(p.parse_args([]))["step_plan"] is True
    assert evaluate.engine_options(p.parse_args(["--no-step-plan"]))["step_plan"] is False
    assert evaluate.engine_options(p.parse_args(["--step-plan"]))["step_plan"] is True
    assert p.parse_args([]).kernel_combine is None  # the library's default (fused) or SPANATTN_KERNEL_COMBINE


def test_paired_exact_match_counts_the_records_each_mode_alone_gets_right():
    dense = [True] * 40 + [True] * 7 + [False] * 3 + [False] * 450
    sparse = [True] * 40 + [False] * 7 + [True] * 3 + [False] * 450
    p = evaluate.paired_exact_match(dense, sparse)
    assert (p["both"], p["dense_only"], p["sparse_only"], p["neither"], p["records"]) == (40, 7, 3, 450, 500)
    assert p["difference_points"] == pytest.approx(-0.8)
    assert p["mcnemar_p"] == pytest.approx(2 * (1 + 10 + 45 + 120) / 2 ** 10)  # exact binomial, 3 of 10
    assert evaluate.paired_exact_match([True, False], [True, False])["mcnemar_p"] == 1.0  # no discordant record
    assert evaluate.paired_exact_match([True] * 9, [False] * 9)["mcnemar_p"] == pytest.approx(2 / 2 ** 9)
    # Clopper-Pearson for 3 of 10 discordant records is [0.0667, 0.6525] (the textbook value),
    # so sparse minus dense lies in 100 * 10/500 * (2p - 1) points
    lo, hi = p["difference_ci95"]
    assert lo == pytest.approx(2 * (2 * 0.06674 - 1), abs=2e-3) and hi == pytest.approx(2 * (2 * 0.65245 - 1), abs=2e-3)
    assert lo < p["difference_points"] < hi
    assert "dense_only_ids" not in p  # no ids given


def test_the_paired_interval_solves_the_exact_binomial_tails():
    b, c, n = 8, 5, 500
    lo, hi = evaluate.paired_difference_ci(b, c, n)
    m = b + c
    p_lo, p_hi = (lo * n / (100 * m) + 1) / 2, (hi * n / (100 * m) + 1) / 2
    tail = lambda k0, k1, p: sum(math.comb(m, k) * p ** k * (1 - p) ** (m - k) for k in range(k0, k1 + 1))
    assert tail(c, m, p_lo) == pytest.approx(0.025, abs=1e-6)  # P(X >= c) at the lower bound
    assert tail(0, c, p_hi) == pytest.approx(0.025, abs=1e-6)  # P(X <= c) at the upper bound
    assert evaluate.paired_difference_ci(0, 0, 500) == (0.0, 0.0)
    assert evaluate.paired_difference_ci(4, 0, 100)[0] == pytest.approx(-4.0)  # all discordant records dense's
    assert evaluate.paired_difference_ci(0, 4, 100)[1] == pytest.approx(4.0)
    wide, narrow = evaluate.paired_difference_ci(8, 5, 500, 0.99), evaluate.paired_difference_ci(8, 5, 500, 0.5)
    assert wide[0] < lo < narrow[0] and narrow[1] < hi < wide[1]
    big = evaluate.paired_difference_ci(600, 500, 20000)  # large counts stay finite (logs, not floats of C(n, k))
    assert -1.0 < big[0] < -0.5 < big[1] < 0.5


def test_the_paired_counts_name_the_discordant_records():
    p = evaluate.paired_exact_match([True, True, False, False], [True, False, True, False], ids=["a", "b", "c", "d"])
    assert p["dense_only_ids"] == ["b"] and p["sparse_only_ids"] == ["c"]


def test_an_arith_eval_pairs_the_modes_record_by_record(tmp_path, dataset):
    from spanattn.data import load_dataset

    save_run(tmp_path / "run", load_dataset(dataset).records("train"))
    r = evaluate.evaluate(args(run=str(tmp_path / "run"), data=str(dataset), out=str(tmp_path / "o")))
    p = r["paired"]
    assert p["records"] == r["records"] == p["both"] + p["dense_only"] + p["sparse_only"] + p["neither"]
    assert (len(p["dense_only_ids"]), len(p["sparse_only_ids"])) == (p["dense_only"], p["sparse_only"])
    assert p["difference_ci95"][0] <= p["difference_points"] <= p["difference_ci95"][1]
    for mode, alone in (("dense", "dense_only"), ("sparse", "sparse_only")):
        assert p["both"] + p[alone] == round(r["modes"][mode]["accuracy"]["exact_match"] * r["records"])
    one = evaluate.evaluate(args(run=str(tmp_path / "run"), data=str(dataset), out=str(tmp_path / "o1"), modes=["dense"]))
    assert "paired" not in one

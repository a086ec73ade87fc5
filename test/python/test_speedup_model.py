"""benchmarks/speedup_model.py: the step and context sums it fits on, and the fit itself."""
import json

import pytest

import train_fixtures as fx


@pytest.fixture(scope="module")
def model():
    return fx.benchmark_script("speedup_model")


def test_schedule_sums_static_and_continuous(model):
    prompts, gens = [2, 2, 2], [3, 1, 1]
    # static, batch 2: rows 0,1 for 3 steps (row 1 leaves after 1), then row 2 alone for 1 step
    assert model.schedule_sums(prompts, gens, 2, continuous=False) == (4, 5, (2 + 2) + 3 + 4 + 2, 0)
    # continuous: row 2 takes row 1's slot at step 2
    assert model.schedule_sums(prompts, gens, 2, continuous=True) == (3, 5, (2 + 2) + (3 + 2) + 4, 0)
    # its prompt (2 tokens) through the decode steps first: one prompt step at position 1
    assert model.schedule_sums(prompts, gens, 2, continuous=True, prompt_steps=True) == (3, 5, (2 + 2) + 3 + (4 + 2), 1)


def test_the_fit_reproduces_the_measured_ratio(model, tmp_path, capsys):
    data = fx.write_dataset(tmp_path / "data", fx.arith_splits(n_train=4, n_val=2, n_test=6))
    from spanattn.data import load_dataset

    ckpt, _ = fx.save_run(tmp_path / "run", load_dataset(data).records("train"))
    mode = lambda tps, f: {"tokens_per_second": tps, "attended_fraction": f, "continuous": False}  # noqa: E731
    result = {"split": "test", "records": 6, "batch": 4, "max_new_tokens": 10_000,
              "modes": {"dense": mode(1000.0, 1.0), "sparse": mode(1500.0, 0.25)}}
    (tmp_path / "r.json").write_text(json.dumps(result))
    model.main(["--result", str(tmp_path / "r.json"), "--checkpoint", str(ckpt), "--data", str(data)])
    out = json.loads(capsys.readouterr().out)
    est = {row["what"]: row["ratio"] for row in out["estimates"]}
    assert est["static (measured)"] == pytest.approx(1.5)
    assert est["static (the model, fitted to it)"] == pytest.approx(1.5)
    assert est["continuous, KV x 2"] > est["continuous, prompts through decode steps"] and est["static, KV x 2"] > 1.5 and est["static, F - 0.1 ms"] > 1.5
    result["modes"]["dense"]["continuous"] = True
    (tmp_path / "r.json").write_text(json.dumps(result))
    with pytest.raises(SystemExit, match="static-batch"):
        model.main(["--result", str(tmp_path / "r.json"), "--checkpoint", str(ckpt), "--data", str(data)])

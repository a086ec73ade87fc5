"""benchmarks/ferry.py: a checkpoint and dataset splits, packed into small parts with bf16
weights, unpack into a folder that transformers, the dataset loader and eval read; damaged
parts are refused."""
import json

import pytest
import torch
from transformers import AutoModelForCausalLM

import train_fixtures as fx
from spanattn import data, evaluate


@pytest.fixture(scope="module")
def ferry():
    return fx.benchmark_script("ferry")


@pytest.fixture()
def trained(tmp_path):
    ds = fx.write_dataset(tmp_path / "data", fx.arith_splits(n_train=20, n_val=4, n_test=6))
    records = data.load_dataset(ds).records("train")
    _, model = fx.save_run(tmp_path / "run", records, step=4)
    fx.save_run(tmp_path / "run", records, step=8, model=model)
    return tmp_path / "run", ds, model


def test_pack_unpack_round_trip_evaluates(ferry, trained, tmp_path):
    run, ds, model = trained
    out = tmp_path / "out"
    ferry.main(["pack", "--run", str(run), "--data", str(ds), "--splits", "train,test", "--name", "m", "--out", str(out),
                "--part-mib", "0.02"])
    rec = json.loads((out / "ferry-m.json").read_text())
    assert rec["checkpoint"].endswith("step-000008")  # the newest
    assert len(rec["parts"]) > 1 and all((out / p).stat().st_size <= 0.02 * 2**20 for p in rec["parts"])
    ferry.main(["unpack", "--parts", str(out), "--name", "m", "--dest", str(tmp_path / "ferry")])
    got = tmp_path / "ferry" / "m"
    assert not (got / "checkpoint" / "trainer_state.pt").exists()
    loaded = AutoModelForCausalLM.from_pretrained(got / "checkpoint")
    for name, value in model.state_dict().items():
        if name in loaded.state_dict():
            assert loaded.state_dict()[name].dtype == torch.bfloat16
            assert torch.equal(loaded.state_dict()[name], value.to(torch.bfloat16)), name
    ferried = data.load_dataset(got / "data")
    assert ferried.splits == ["train", "test"]
    for split in ferried.splits:
        assert ferried.records(split) == data.load_dataset(ds).records(split)
    import argparse

    args = dict(run=str(got), checkpoint=str(got / "checkpoint"), data=str(got / "data"), split="test", limit=None,
                batch=3, max_new_tokens=12, modes=["dense", "sparse"], throughput=False, sweep_batches=[1],
                device="cpu", allow_reference=False, no_graph=False, continuous=False, hf_limit=None,
                compile_state=False, compile_decode=False, step_plan=False, out=str(tmp_path / "eval"))
    r = evaluate.evaluate(argparse.Namespace(**args))
    assert r["records"] == 6 and set(r["modes"]) == {"dense", "sparse"}


def test_damaged_parts_are_refused(ferry, trained, tmp_path):
    run, ds, _ = trained
    out = tmp_path / "out"
    ferry.main(["pack", "--run", str(run), "--name", "m", "--out", str(out), "--part-mib", "0.05"])
    rec = json.loads((out / "ferry-m.json").read_text())
    part = out / rec["parts"][1]
    raw = bytearray(part.read_bytes())
    raw[100] ^= 1
    part.write_bytes(bytes(raw))
    with pytest.raises(SystemExit, match="do not match their record"):
        ferry.main(["unpack", "--parts", str(out), "--name", "m", "--dest", str(tmp_path / "ferry")])
    assert not (tmp_path / "ferry" / "m").exists()

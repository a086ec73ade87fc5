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
    assert rec["compression"] == "xz" and (out / rec["parts"][0]).read_bytes()[:6] == b"\xfd7zXZ\x00"
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
    ferry.main(["pack", "--run", str(run), "--name", "m", "--out", str(out), "--part-mib", "0.02"])
    rec = json.loads((out / "ferry-m.json").read_text())
    part = out / rec["parts"][1]
    raw = bytearray(part.read_bytes())
    raw[100] ^= 1
    part.write_bytes(bytes(raw))
    with pytest.raises(SystemExit, match="do not match their record"):
        ferry.main(["unpack", "--parts", str(out), "--name", "m", "--dest", str(tmp_path / "ferry")])
    assert not (tmp_path / "ferry" / "m").exists()


def test_an_uncompressed_pack_still_unpacks(ferry, trained, tmp_path):
    run, ds, model = trained
    out = tmp_path / "out"
    ferry.main(["pack", "--run", str(run), "--name", "m", "--out", str(out), "--compress", "none"])
    rec = json.loads((out / "ferry-m.json").read_text())
    assert rec["compression"] == "none" and (out / rec["parts"][0]).read_bytes()[257:262] == b"ustar"
    ferry.main(["unpack", "--parts", str(out), "--name", "m", "--dest", str(tmp_path / "ferry")])
    assert (tmp_path / "ferry" / "m" / "checkpoint" / "config.json").is_file()


def test_archive_and_expand_carry_a_folder_byte_for_byte(ferry, trained, tmp_path, capsys):
    run, ds, _ = trained
    dest = tmp_path / "ferry"
    ferry.main(["pack", "--run", str(run), "--data", str(ds), "--name", "m", "--out", str(tmp_path / "out")])
    ferry.main(["unpack", "--parts", str(tmp_path / "out"), "--name", "m", "--dest", str(dest)])
    before = {p.relative_to(dest): p.read_bytes() for p in (dest / "m").rglob("*") if p.is_file()}
    capsys.readouterr()
    ferry.main(["archive", "--name", "m", "--dest", str(dest)])
    assert json.loads(capsys.readouterr().out)["bytes"] == (dest / "m.tar.xz").stat().st_size
    import shutil
    shutil.rmtree(dest / "m")
    ferry.main(["expand", "--name", "m", "--dest", str(dest)])
    assert json.loads(capsys.readouterr().out)["kept"] is False
    files = lambda: {p.relative_to(dest): p.read_bytes() for p in (dest / "m").rglob("*")  # noqa: E731
                     if p.is_file() and p.name != ".archive-sha256"}
    assert files() == before and len(before) > 3
    ferry.main(["expand", "--name", "m", "--dest", str(dest)])  # made from this archive: kept
    assert json.loads(capsys.readouterr().out)["kept"] is True
    # a stale folder (another archive's, or none's) is replaced
    (dest / "m" / "checkpoint" / "config.json").write_text("{}")
    (dest / "m" / ".archive-sha256").write_text("0" * 64)
    ferry.main(["expand", "--name", "m", "--dest", str(dest)])
    assert json.loads(capsys.readouterr().out)["kept"] is False and files() == before
    ferry.main(["archive", "--name", "m", "--dest", str(dest)])  # the stamp does not travel
    import tarfile
    with tarfile.open(dest / "m.tar.xz") as tar:
        assert not [n for n in tar.getnames() if n.endswith(".archive-sha256")]
    with pytest.raises(SystemExit, match="does not exist"):
        ferry.main(["expand", "--name", "other", "--dest", str(dest)])
    with pytest.raises(SystemExit, match="is not a folder"):
        ferry.main(["archive", "--name", "other", "--dest", str(dest)])


def test_splits_carries_a_dataset_alone_as_a_loadable_gzipped_folder(ferry, trained, tmp_path, capsys):
    _, ds, _ = trained
    dest = tmp_path / "ferry"
    ferry.main(["splits", "--data", str(ds), "--splits", "train,test", "--name", "held", "--dest", str(dest)])
    out = json.loads(capsys.readouterr().out)
    folder = dest / "held"
    assert out["folder"] == str(folder) and sorted(p.name for p in folder.iterdir()) == [
        "manifest.json", "test.jsonl.gz", "train.jsonl.gz"]
    got, want = data.load_dataset(folder), data.load_dataset(ds)
    for split in ("train", "test"):  # the loader checks the hashes of the uncompressed bytes
        assert [r["id"] for r in got.records(split)] == [r["id"] for r in want.records(split)]
    assert "val" not in json.loads((folder / "manifest.json").read_text())["splits"]
    with pytest.raises(SystemExit, match="exists"):
        ferry.main(["splits", "--data", str(ds), "--name", "held", "--dest", str(dest)])
    with pytest.raises(SystemExit, match="has no split 'nope'"):
        ferry.main(["splits", "--data", str(ds), "--splits", "train,nope", "--name", "held", "--dest", str(dest), "--force"])
    assert (folder / "test.jsonl.gz").is_file()  # a refused replacement leaves the old folder
    with pytest.raises(SystemExit, match="is not a dataset folder"):
        ferry.main(["splits", "--data", str(tmp_path / "nothing"), "--name", "other", "--dest", str(dest)])
    assert not (dest / "other").exists()
    ferry.main(["splits", "--data", str(ds), "--name", "held", "--dest", str(dest), "--force"])
    assert "val" in json.loads((folder / "manifest.json").read_text())["splits"]
    assert not [p for p in dest.iterdir() if p.name not in ("held",)]  # no temporary folder left

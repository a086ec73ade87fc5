"""The dataset loader: schema + grammar checks name the first bad line; manifests are checked."""
import copy
import json

import pytest

import train_fixtures as fx
from spanattn import data, spans


@pytest.fixture()
def splits():
    return fx.arith_splits(n_train=20, n_val=5, n_test=5)


def test_valid_dataset_loads(tmp_path, splits):
    ds = data.load_dataset(fx.write_dataset(tmp_path / "ds", splits))
    assert ds.task == "arith"
    assert len(ds.records("train")) == 20
    assert ds.records("train")[3]["_line"] == 4


def test_schema_failure_names_first_bad_line(tmp_path, splits):
    lines = [json.dumps(r) for r in splits["train"]]
    bad = copy.deepcopy(splits["train"][2])
    bad["segments"][1]["role"] = "question"
    lines[2] = json.dumps(bad)
    lines[5] = "{not json"
    ds = data.load_dataset(fx.write_dataset(tmp_path / "ds", splits, raw_lines={"train": lines}))
    with pytest.raises(data.DataError, match=r"train\.jsonl:3: .*segments\.1\.role"):
        ds.records("train")


def test_invalid_json_line(tmp_path, splits):
    lines = [json.dumps(r) for r in splits["train"]]
    lines[1] = '{"id": "x",'
    ds = data.load_dataset(fx.write_dataset(tmp_path / "ds", splits, raw_lines={"train": lines}))
    with pytest.raises(data.DataError, match=r"train\.jsonl:2: not valid JSON"):
        ds.records("train")


def test_grammar_rule_failure_names_line(tmp_path, splits):
    lines = [json.dumps(r) for r in splits["train"]]
    bad = copy.deepcopy(splits["train"][6])
    bad["segments"][2]["attend"] = [5]  # a ref to a later segment
    lines[6] = json.dumps(bad)
    ds = data.load_dataset(fx.write_dataset(tmp_path / "ds", splits, raw_lines={"train": lines}))
    with pytest.raises(data.DataError, match=r"train\.jsonl:7: .*segments\.2\.attend: ref 5 must point to an earlier segment"):
        ds.records("train")


def test_grammar_caps_mismatch_is_refused(tmp_path, splits):
    g = spans.default_grammar().to_dict()
    g["max_segments"] = 64
    with pytest.raises(data.DataError, match=r"max_segments: 64 != 128"):
        data.load_dataset(fx.write_dataset(tmp_path / "ds", splits, grammar=g))


def test_changed_file_fails_hash_check(tmp_path, splits):
    root = fx.write_dataset(tmp_path / "ds", splits)
    with (root / "val.jsonl").open("a") as f:
        f.write(json.dumps(splits["val"][0]) + "\n")
    with pytest.raises(data.DataError, match="sha256"):
        data.load_dataset(root)


def test_missing_folder_and_manifest(tmp_path):
    with pytest.raises(data.DataError, match="not found"):
        data.load_dataset(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(data.DataError, match="no manifest.json"):
        data.load_dataset(tmp_path / "empty")


def _mutations(record):
    """Records that break the schema in different ways (and one that does not)."""
    out = []
    for mutate in (
        lambda r: r.pop("id"),
        lambda r: r.update(id=""),
        lambda r: r.update(extra=1),
        lambda r: r.update(segments=r["segments"][:1]),
        lambda r: r["segments"][1].update(role="x"),
        lambda r: r["segments"][1].update(text=3),
        lambda r: r["segments"][2].update(attend=[1.5]),
        lambda r: r["segments"][2].update(attend=list(range(-9, 0))),
        lambda r: r["segments"][2].update(attend="prev"),
        lambda r: r["segments"][2].update(color="red"),
        lambda r: r.update(meta=[]),
        lambda r: r.update(answer=None),
        lambda r: r.update(segments=[r["segments"][0]] * 129),
        lambda r: r.update(meta={"anything": [1, {"x": None}]}),  # valid
    ):
        r = copy.deepcopy(record)
        mutate(r)
        out.append(r)
    return out


def test_builtin_validator_agrees_with_jsonschema(splits):
    pytest.importorskip("jsonschema")
    schema = data.load_schema("record")
    record = next(r for r in splits["train"] if len(r["segments"]) >= 3)
    record = {k: v for k, v in record.items() if k != "_line"}
    for r in [record, *_mutations(record)]:
        theirs = data.schema_errors(r, schema, use_jsonschema=True)
        ours = data.schema_errors(r, schema, use_jsonschema=False)
        assert bool(theirs) == bool(ours), (r, theirs, ours)
        assert [p for p, _ in theirs] == [p for p, _ in ours], (theirs, ours)


def test_builtin_validator_checks_manifests(tmp_path, splits):
    root = fx.write_dataset(tmp_path / "ds", splits)
    manifest = json.loads((root / "manifest.json").read_text())
    schema = data.load_schema("manifest")
    assert data.schema_errors(manifest, schema, use_jsonschema=False) == []
    manifest["splits"]["train"]["sha256"] = "nothex"
    assert data.schema_errors(manifest, schema, use_jsonschema=False)[0][0] == "splits.train.sha256"


def test_check_grammar_rules():
    base = {"segments": [{"role": "header", "text": "h"}, {"role": "prompt", "text": "p"},
                         {"role": "response", "attend": [-1], "text": "r"}]}
    assert data.check_grammar(base) == []
    bad = copy.deepcopy(base)
    bad["segments"][1]["attend"] = [0]
    bad["segments"][2]["attend"] = [-3]
    assert data.check_grammar(bad) == ["segments.1.attend: only response segments carry a directive",
                                       "segments.2.attend: relative ref -3 points before segment 0"]
    bad = copy.deepcopy(base)
    bad["segments"].append({"role": "prompt", "text": "late"})
    bad["segments"][2]["attend"] = [-9]
    assert data.check_grammar(bad) == ["segments.2.attend: relative ref -9 is beyond -8",
                                       "segments.3.role: prompt segments must come before responses"]


def test_gzipped_split_reads_and_verifies(tmp_path, splits):
    import gzip

    root = fx.write_dataset(tmp_path / "ds", splits)
    raw = (root / "train.jsonl").read_bytes()
    (root / "train.jsonl.gz").write_bytes(gzip.compress(raw))
    (root / "train.jsonl").unlink()
    ds = data.load_dataset(root)
    assert [r["id"] for r in ds.records("train")] == [r["id"] for r in splits["train"]]

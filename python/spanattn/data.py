"""Read a dataset folder (DESIGN §2): ``{train,val,test}.jsonl`` + ``manifest.json``.

Every line is checked against ``datasets/record.schema.json`` (exported from the zod schema
in datasets/schema.ts, so both languages share one definition) and against the grammar
rules JSON Schema cannot state (``check_grammar``, the mirror of ``checkGrammar`` in
schema.ts). The first bad line is named ``file:line``. The manifest's grammar block must
equal python/spanattn/grammar.json: a dataset written for other token spellings or caps is
refused before any training starts.

A split may be stored gzipped (``train.jsonl.gz`` beside the manifest that names
``train.jsonl``; the hash is of the uncompressed bytes), to ship a dataset to another machine.

``jsonschema`` validates when it is importable; otherwise a small built-in validator of the
JSON Schema subset the exported files use runs instead (the GPU image has no jsonschema).
Both are checked to agree in test/python/test_data.py.

    PYTHONPATH=python python -c "from spanattn import data; \
        ds = data.load_dataset('datasets/arith'); print(len(ds.records('val')))"
"""
from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from . import spans

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "datasets"


class DataError(Exception):
    """A dataset that breaks the data contract; the message names the file and line."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.hint = hint

    def __reduce__(self):  # survives the trip back from a worker process
        return (DataError, (str(self), self.hint))


@lru_cache(maxsize=4)
def load_schema(name: str) -> dict:
    """``record`` or ``manifest``: the JSON Schema exported by ``npm run build``."""
    path = SCHEMA_DIR / f"{name}.schema.json"
    if not path.exists():
        raise DataError(f"JSON Schema {path} is missing", "run `npm run build` to export it")
    return json.loads(path.read_text())


# --- JSON Schema validation --------------------------------------------------------------

def _jsonschema_validator(schema_json: str):
    try:
        import jsonschema
    except ImportError:
        return None
    schema = json.loads(schema_json)
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema)


@lru_cache(maxsize=4)
def _cached_validator(schema_json: str):
    return _jsonschema_validator(schema_json)


_VALIDATORS: dict[int, object] = {}


def schema_errors(instance, schema: dict, use_jsonschema: bool = True) -> list[tuple[str, str]]:
    """(dotted path, message) for each violation, sorted by path; empty when valid."""
    validator = None
    if use_jsonschema:
        if id(schema) not in _VALIDATORS:
            _VALIDATORS[id(schema)] = _cached_validator(json.dumps(schema, sort_keys=True))
        validator = _VALIDATORS[id(schema)]
    if validator is not None:
        errs = [(".".join(map(str, e.absolute_path)) or "(root)", e.message) for e in validator.iter_errors(instance)]
    else:
        errs = []
        _check(instance, schema, [], errs)
    return sorted(errs, key=lambda e: e[0])


_TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: (isinstance(v, int) and not isinstance(v, bool)) or (isinstance(v, float) and v.is_integer()),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}


def _check(value, schema: dict, path: list, errs: list) -> None:
    """The JSON Schema subset datasets/*.schema.json use (draft 2020-12 keywords)."""
    where = ".".join(map(str, path)) or "(root)"
    if schema is True or schema == {}:
        return
    if schema is False:
        errs.append((where, "no value is allowed here"))
        return
    if "anyOf" in schema:
        if not any(not _sub(value, s, path) for s in schema["anyOf"]):
            errs.append((where, f"{json.dumps(value)[:60]} is not valid under any of the given schemas"))
        return
    t = schema.get("type")
    if t is not None:
        types = t if isinstance(t, list) else [t]
        if not any(_TYPES[x](value) for x in types):
            errs.append((where, f"{json.dumps(value)[:60]} is not of type {', '.join(repr(x) for x in types)}"))
            return
    if "enum" in schema and value not in schema["enum"]:
        errs.append((where, f"{json.dumps(value)[:60]} is not one of {schema['enum']}"))
    if isinstance(value, str):
        if len(value) < schema.get("minLength", 0):
            errs.append((where, f"{json.dumps(value)} should be non-empty" if schema["minLength"] == 1 else f"{json.dumps(value)} is too short"))
        if "pattern" in schema and not re.search(schema["pattern"], value):
            errs.append((where, f"{json.dumps(value)[:60]} does not match {schema['pattern']!r}"))
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            errs.append((where, f"{value} is less than the minimum of {schema['minimum']}"))
        if "maximum" in schema and value > schema["maximum"]:
            errs.append((where, f"{value} is greater than the maximum of {schema['maximum']}"))
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            errs.append((where, f"{json.dumps(value)[:60]} should have at least {schema['minItems']} items"))
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            errs.append((where, f"expected at most {schema['maxItems']} items (got {len(value)})"))
        if "items" in schema:
            for i, item in enumerate(value):
                _check(item, schema["items"], [*path, i], errs)
    if isinstance(value, dict):
        for key in schema.get("required", []):
            if key not in value:
                errs.append((where, f"{key!r} is a required property"))
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        unexpected = []
        for key, item in value.items():
            if "propertyNames" in schema:
                _check(key, schema["propertyNames"], [*path, key], errs)
            if key in props:
                _check(item, props[key], [*path, key], errs)
            elif extra is False:
                unexpected.append(key)
            elif isinstance(extra, dict):
                _check(item, extra, [*path, key], errs)
        if unexpected:
            errs.append((where, f"Additional properties are not allowed ({', '.join(repr(k) for k in unexpected)} was unexpected)"))


def _sub(value, schema, path) -> list:
    errs: list = []
    _check(value, schema, path, errs)
    return errs


# --- grammar rules -----------------------------------------------------------------------

def check_grammar(record: dict, grammar: spans.Grammar | None = None) -> list[str]:
    """Rules JSON Schema cannot state (mirror of ``checkGrammar`` in datasets/schema.ts)."""
    g = grammar or spans.default_grammar()
    problems: list[str] = []
    segs = record["segments"]
    if not segs or segs[0].get("role") != "header":
        problems.append("segments.0.role: the first segment must be the header")
    seen_response = False
    for i, seg in enumerate(segs):
        role = seg.get("role")
        if i > 0 and role == "header":
            problems.append(f"segments.{i}.role: only segment 0 may be the header")
        if role == "response":
            seen_response = True
        if role == "prompt" and seen_response:
            problems.append(f"segments.{i}.role: prompt segments must come before responses")
        if seg.get("attend") is None:
            continue
        if role != "response":
            problems.append(f"segments.{i}.attend: only response segments carry a directive")
        for ref in seg["attend"]:
            if ref < 0 and -ref > g.max_relative_ref:
                problems.append(f"segments.{i}.attend: relative ref {ref} is beyond -{g.max_relative_ref}")
            elif ref < 0 and i + ref < 0:
                problems.append(f"segments.{i}.attend: relative ref {ref} points before segment 0")
            elif ref >= i:
                problems.append(f"segments.{i}.attend: ref {ref} must point to an earlier segment")
    return problems


def record_problems(record, use_jsonschema: bool = True) -> list[str]:
    """Every problem of one parsed JSON line, as ``path: message``."""
    errs = [f"{p}: {m}" for p, m in schema_errors(record, load_schema("record"), use_jsonschema)]
    if errs:
        return errs
    return check_grammar(record)


def _open_split(path: Path, mode: str = "r"):
    """The split file, or its gzipped copy ``<file>.gz``."""
    if path.exists():
        return path.open(mode, **({"encoding": "utf-8"} if mode == "r" else {}))
    gz = path.with_name(path.name + ".gz")
    if gz.exists():
        return gzip.open(gz, "rt" if mode == "r" else "rb", **({"encoding": "utf-8"} if mode == "r" else {}))
    raise DataError(f"dataset file not found: {path}")


def _first_problem(lines: list[str], first_lineno: int, use_jsonschema: bool) -> tuple[int, str, str | None] | None:
    """(line number, message, hint) of the first bad line, or None."""
    for lineno, line in enumerate(lines, start=first_lineno):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            return lineno, f"not valid JSON ({e.msg} at column {e.colno})", None
        problems = record_problems(record, use_jsonschema)
        if problems:
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            return lineno, f"record breaks the data contract: {problems[0]}{more}", \
                "regenerate the dataset with `spanattn gen-data`, or fix that line"
    return None


_CHUNK_LINES: list[str] = []
VALIDATE_CHUNK_LINES = 10_000


def _check_chunk(args: tuple[int, int, bool]):
    start, end, use_jsonschema = args
    return _first_problem(_CHUNK_LINES[start:end], start + 1, use_jsonschema)


def map_chunks(fn, n: int, chunk: int, extra=()) -> list:
    """fn((start, end, *extra)) over [0, n) in chunks, in forked worker processes when the
    work is large and there are cores to spare (results in order; serial otherwise)."""
    import multiprocessing as mp

    ranges = [(i, min(n, i + chunk), *extra) for i in range(0, n, chunk)]
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    workers = min(16, (os.cpu_count() or 1) // local_world)
    if len(ranges) < 2 or workers < 3 or "fork" not in mp.get_all_start_methods():
        return [fn(r) for r in ranges]
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    with mp.get_context("fork").Pool(workers) as pool:
        return pool.map(fn, ranges)


def read_jsonl(path: Path, limit: int | None = None, use_jsonschema: bool = True) -> list[dict]:
    """Every record of one split file, validated; raises DataError at the first bad line."""
    global _CHUNK_LINES
    path = Path(path)
    with _open_split(path) as f:
        lines = f.read().splitlines()
    if limit is not None:
        lines = [line for line in lines if line.strip()][:limit]
    _CHUNK_LINES = lines
    try:
        found = [r for r in map_chunks(_check_chunk, len(lines), VALIDATE_CHUNK_LINES, (use_jsonschema,)) if r is not None]
    finally:
        _CHUNK_LINES = []
    if found:
        lineno, message, hint = found[0]
        raise DataError(f"{path}:{lineno}: {message}", hint)
    records: list[dict] = []
    for lineno, line in enumerate(lines, start=1):
        if line.strip():
            record = json.loads(line)
            record["_line"] = lineno
            records.append(record)
    return records


# --- dataset folders ---------------------------------------------------------------------

def grammar_differences(a: dict, b: dict, prefix: str = "") -> list[str]:
    """Keys where two grammar blocks differ, as ``key: a != b``."""
    out = []
    for key in sorted(set(a) | set(b)):
        va, vb = a.get(key), b.get(key)
        if isinstance(va, dict) and isinstance(vb, dict):
            out += grammar_differences(va, vb, f"{prefix}{key}.")
        elif va != vb:
            out.append(f"{prefix}{key}: {json.dumps(va)} != {json.dumps(vb)}")
    return out


@dataclass
class Dataset:
    path: Path
    manifest: dict
    _cache: dict = field(default_factory=dict, repr=False)

    @property
    def task(self) -> str:
        return self.manifest["task"]

    @property
    def splits(self) -> list[str]:
        return list(self.manifest["splits"])

    def records(self, split: str, limit: int | None = None) -> list[dict]:
        if split not in self.manifest["splits"]:
            raise DataError(f"{self.path} has no split {split!r} (it has {', '.join(self.splits)})")
        key = (split, limit)
        if key not in self._cache:
            self._cache[key] = read_jsonl(self.path / self.manifest["splits"][split]["file"], limit)
        return self._cache[key]


def load_dataset(path: str | Path, verify_hashes: bool = True) -> Dataset:
    """Open a dataset folder: manifest checked (schema, grammar, file hashes); records lazily."""
    root = Path(path)
    if not root.is_dir():
        raise DataError(f"dataset folder not found: {root}", "create it with `spanattn gen-data arith --out <dir>`")
    mpath = root / "manifest.json"
    if not mpath.exists():
        raise DataError(f"{root} is not a dataset folder (no manifest.json)", "create it with `spanattn gen-data`")
    try:
        manifest = json.loads(mpath.read_text())
    except json.JSONDecodeError as e:
        raise DataError(f"{mpath}: not valid JSON ({e.msg} at line {e.lineno})") from None
    errs = schema_errors(manifest, load_schema("manifest"))
    if errs:
        raise DataError(f"{mpath}: manifest breaks the data contract: {errs[0][0]}: {errs[0][1]}")
    ours = spans.default_grammar().to_dict()
    diff = grammar_differences(manifest["grammar"], ours)
    if diff:
        raise DataError(f"{mpath}: the dataset's span grammar differs from this build's (dataset != model): {'; '.join(diff)}",
                        "regenerate the dataset with this version of spanattn")
    if verify_hashes:
        for split, info in manifest["splits"].items():
            fpath = root / info["file"]
            if not fpath.exists() and not fpath.with_name(fpath.name + ".gz").exists():
                raise DataError(f"{mpath}: split {split!r} names {info['file']}, which is missing")
            h = hashlib.sha256()
            with _open_split(fpath, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
            if h.hexdigest() != info["sha256"]:
                raise DataError(f"{fpath}: its sha256 does not match manifest.json (the file changed after it was written)",
                                "regenerate the dataset, or restore the file")
    return Dataset(path=root, manifest=manifest)

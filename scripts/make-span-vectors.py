"""Write the shared span-grammar test vectors (test/fixtures/spans/vectors.json).

    PYTHONPATH=python .venv/bin/python scripts/make-span-vectors.py

The expected values come from python/spanattn/spans.py and were checked by hand for the
small cases (see test/python/test_spans.py, which asserts several of them independently);
vitest (test/datasets/spans.test.ts) and pytest both check every vector, so the two
implementations cannot drift.
"""
import json
from pathlib import Path

from spanattn import spans

B, E, S, O, C = "<bos>", "<eos>", "<seg>", "<attend>", "</attend>"


def r(n):
    return f"<ref{n}>"


CASES = [
    ("arith_prev", "prompt, then two steps each attending the previous segment",
     [B, "h", S, "1", "+", "2", "*", "3", S, O, r(-1), C, "1", "+", "6", S, O, r(-1), C, "7", E]),
    ("news_absolute", "three article sentences; a summary sentence attends [1] and [3]",
     [B, "h", S, "a", "a", S, "b", "b", S, "c", "c", S, O, r(1), r(3), C, "x", "y", E]),
    ("no_directive", "a response segment without a directive is global",
     [B, "h", S, "a", S, "x", "y", E]),
    ("empty_directive", "<attend></attend> keeps segment 0 and the own segment only",
     [B, "h", S, "a", "a", S, O, C, "x", "y"]),
    ("ref_future", "an absolute ref to a later segment falls back to global",
     [B, "h", S, "a", S, O, r(5), C, "x"]),
    ("ref_self", "an absolute ref to the segment itself falls back to global",
     [B, "h", S, "a", S, O, r(2), C, "x"]),
    ("relative_before_start", "<ref-2> in segment 1 points before segment 0",
     [B, "h", S, O, r(-2), C, "x"]),
    ("too_many_refs", "nine refs where at most eight are allowed",
     [B, "h", S, "a", S, O, *[r(-1)] * 9, C, "x"]),
    ("unterminated_text", "text before </attend>",
     [B, "h", S, "a", S, O, r(-1), "x", "y"]),
    ("unterminated_end", "the sequence ends inside a directive",
     [B, "h", S, "a", S, O, r(-1)]),
    ("seg_inside_directive", "a new segment starts inside a directive: the old one is unterminated, the new one is normal",
     [B, "h", S, "a", S, O, r(-1), S, O, r(-1), C, "x"]),
    ("stray_after_close", "a ref after the directive closed: sparse before it, global from it on",
     [B, "h", S, "a", S, "b", S, O, r(-1), C, "x", "y", r(-1), "z", E]),
    ("stray_close_first", "</attend> right after <seg>",
     [B, "h", S, "a", S, C, "x"]),
    ("ref_zero", "an explicit ref to the header adds nothing",
     [B, "h", S, "a", S, O, r(0), C, "x"]),
    ("adjacent_refs_merge", "refs 2 and 3 touch each other and the own segment: intervals merge",
     [B, "h", S, "a", S, "b", S, "c", S, O, r(2), r(3), C, "x"]),
    ("duplicate_refs", "the same segment named twice counts once",
     [B, "h", S, "a", S, "b", S, O, r(1), r(-2), C, "x"]),
    ("stray_bos", "<bos> inside a sparse segment falls back to global",
     [B, "h", S, "a", S, O, r(-1), C, "x", B, "y"]),
    ("too_many_segments", "segments beyond the cap of 128 are global",
     [B, "h"] + sum(([S, O, r(-1), C, "t"] for _ in range(130)), [])),
]

RECORDS = [
    {"id": "arith-example", "task": "arith", "segments": [
        {"role": "header", "text": "Evaluate step by step."},
        {"role": "prompt", "text": "((3+4)*(5-2))-6"},
        {"role": "response", "attend": [-1], "text": "(7*3)-6"},
        {"role": "response", "attend": [-1], "text": "21-6"},
        {"role": "response", "attend": [-1], "text": "15"}], "answer": "15", "meta": {}},
    {"id": "news-example", "task": "news", "segments": [
        {"role": "header", "text": "Summarize."},
        {"role": "prompt", "text": "[1] A cat sat."},
        {"role": "prompt", "text": "[2] It rained."},
        {"role": "prompt", "text": "[3] The cat left."},
        {"role": "response", "attend": [1, 3], "text": "A cat sat, then left."},
        {"role": "response", "attend": [2, -1], "text": "It rained."}], "reference": "A cat sat, then left. It rained.", "meta": {}},
    {"id": "prompt-only", "task": "news", "segments": [
        {"role": "header", "text": "Summarize."},
        {"role": "prompt", "text": "[1] Only a prompt."}], "meta": {}},
    {"id": "dense-baseline", "task": "arith", "segments": [
        {"role": "header", "text": "Evaluate."},
        {"role": "prompt", "text": "1+2"},
        {"role": "response", "text": "3"}], "answer": "3", "meta": {}},
]


def expected(tokens):
    p = spans.parse_tokens(tokens)
    mask = spans.attention_mask(p)
    return {
        "segment_ids": p.segment_ids,
        "segment_starts": p.segment_starts,
        "statuses": p.statuses,
        "refs": p.refs,
        "sparse": "".join("1" if s else "0" for s in p.sparse),
        "directive_attempts": p.directive_attempts,
        "malformed": p.malformed,
        "intervals": [p.intervals(t) for t in range(p.length)],
        "mask": ["".join("1" if v else "0" for v in row) for row in mask.tolist()],
    }


def main():
    out = {
        "about": "Shared span-grammar vectors; regenerate with: PYTHONPATH=python .venv/bin/python scripts/make-span-vectors.py",
        "grammar": spans.default_grammar().to_dict(),
        "token_vectors": [{"name": n, "description": d, "tokens": t, "expected": expected(t)} for n, d, t in CASES],
        "record_vectors": [],
    }
    for rec in RECORDS:
        toks = spans.render_symbolic(rec)
        kept, total = spans.density_counts(spans.parse_tokens(toks))
        out["record_vectors"].append({"record": rec, "tokens": toks, "kept": kept, "total": total})
    path = Path(__file__).resolve().parent.parent / "test/fixtures/spans/vectors.json"
    path.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {path} ({len(CASES)} token vectors, {len(RECORDS)} record vectors)")


if __name__ == "__main__":
    main()

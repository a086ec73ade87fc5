"""Where an arithmetic model goes wrong, teacher-forced: one forward pass per record (the
record's own tokens as input, the span mask or the dense causal one), the argmax at every
response character against the record's next character, counted by kind:

- copied: a character a step keeps from the previous step (its common prefix or suffix with it);
- computed: the rest of the step, where the operation's result goes;
- special: segment markers, directives, <eos>.

A free-running decode fails at the first wrong character, so the kind with the highest error
rate is what keeps exact match down. CPU is enough (no decoding):

    PYTHONPATH=python python3 benchmarks/arith_errors.py --checkpoint .ferry/long/checkpoint \\
        --data .ferry/long/data --limit 20 --mask dense --out /tmp/errors.json
    PYTHONPATH=python python3 benchmarks/arith_errors.py --data datasets/arith-mix --split train --limit 2000
        # no checkpoint: the dataset's response characters by kind only
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "python"))

from spanattn import spans  # noqa: E402
from spanattn.data import load_dataset  # noqa: E402
from spanattn.engine import vocab_kind_tables  # noqa: E402
from spanattn.evaluate import load_run  # noqa: E402


def copied_span(prev: str, cur: str) -> tuple[int, int]:
    """(prefix, suffix): characters `cur` shares with `prev` at its start and at its end."""
    pre = 0
    while pre < min(len(prev), len(cur)) and prev[pre] == cur[pre]:
        pre += 1
    suf = 0
    while suf < min(len(prev), len(cur)) - pre and prev[-1 - suf] == cur[-1 - suf]:
        suf += 1
    return pre, suf


def step_kinds(records: list[dict]) -> dict:
    """Response characters by kind (copied / computed), from the records alone: how much of a
    dataset's text the arithmetic is."""
    seen = {"copied": 0, "computed": 0}
    for r in records:
        prev = next(s["text"] for s in r["segments"] if s["role"] == "prompt")
        for cur in (s["text"] for s in r["segments"] if s["role"] == "response"):
            pre, suf = copied_span(prev, cur)
            seen["copied"] += pre + suf
            seen["computed"] += len(cur) - pre - suf
            prev = cur
    total = sum(seen.values())
    return {"records": len(records), "characters": seen, "computed_share": seen["computed"] / total if total else 0.0}


def analyse(model, tok, records: list[dict], mask: str) -> dict:
    kinds, values = vocab_kind_tables(tok.special_ids, model.config.vocab_size, tok.grammar, "cpu")
    seg, close = tok.token_id(tok.grammar.seg), tok.token_id(tok.grammar.attend_close)
    special = set(tok.special_ids.values())
    seen, wrong = Counter(), Counter()
    first_error, examples = [], []
    for r in records:
        x = spans.render_record(r, tok.encode, tok.token_id, tok.grammar)
        ids = torch.tensor([x.ids])
        with torch.no_grad():
            if mask == "sparse":
                parse = spans.parse_kinds(kinds[ids[0]].tolist(), values[ids[0]].tolist(), tok.grammar)
                logits = model(ids, attention_mask=spans.attention_mask(parse)[None, None]).logits[0]
            else:
                logits = model(ids).logits[0]
        pred = logits.argmax(-1).tolist()
        prompt = next(s["text"] for s in r["segments"] if s["role"] == "prompt")
        steps = [s["text"] for s in r["segments"] if s["role"] == "response"]
        step, ci, in_text, first = -1, 0, False, None
        pre = suf = 0
        for t in range(x.prompt_length, len(x.ids)):
            i = x.ids[t]
            if i == seg:
                step, ci, in_text = step + 1, 0, False
                if step < len(steps):
                    pre, suf = copied_span(prompt if step == 0 else steps[step - 1], steps[step])
            elif i == close:
                in_text = True
            if i in special or not in_text or step >= len(steps):
                kind = "special"
            else:
                kind = "copied" if ci < pre or ci >= len(steps[step]) - suf else "computed"
                ci += 1
            seen[kind] += 1
            if pred[t - 1] != i:
                wrong[kind] += 1
                if first is None:
                    first = (step, kind)
        if first is not None:
            first_error.append(first[0] / max(1, len(steps)))
            if len(examples) < 5:
                s0 = max(first[0], 0)
                examples.append({"id": r["id"], "step": s0, "steps": len(steps), "kind": first[1],
                                 "previous": prompt if s0 == 0 else steps[s0 - 1], "wanted": steps[s0]})
    return {
        "records": len(records), "mask": mask,
        "records_with_an_error": len(first_error),
        "characters": dict(seen), "wrong": dict(wrong),
        "error_rate": {k: wrong[k] / seen[k] for k in seen},
        "first_error_at_share_of_steps": sorted(round(f, 3) for f in first_error),
        "examples": examples,
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", help="a checkpoint folder (config.json, weights, tokenizer); without one, only "
                                        "the dataset's characters are counted by kind (no model)")
    p.add_argument("--data", required=True, help="an arith dataset folder")
    p.add_argument("--split", default="test")
    p.add_argument("--limit", type=int, default=20)
    p.add_argument("--mask", choices=["dense", "sparse"], default="dense")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--out", help="write the JSON here too")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    ds = load_dataset(args.data)
    if ds.task != "arith":
        raise SystemExit(f"{args.data} is a {ds.task} dataset; this looks at arithmetic steps")
    records = ds.records(args.split, limit=args.limit)
    if args.checkpoint:
        model, tok, _ = load_run(Path(args.checkpoint), torch.device("cpu"), torch.float32)
        found = analyse(model, tok, records, args.mask)
    else:
        found = step_kinds(records)
    result = {"checkpoint": args.checkpoint, "data": args.data, "split": args.split, **found}
    text = json.dumps(result, indent=1)
    if args.out:
        Path(args.out).write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()

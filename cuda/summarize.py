"""Summaries for cuda/gpu_check.sh.

    python3 cuda/summarize.py fuzz fuzz.json    # pass count and error ratios
    python3 cuda/summarize.py tune tune.json    # prints the fastest variant's number
"""
import json
import math
import sys


def fuzz(path: str) -> None:
    rows = json.load(open(path))
    ratios = sorted(r["err_kernel"] / r["err_sdpa"] for r in rows if r["err_sdpa"] > 0)
    print(f"fuzz: {sum(r['passed'] for r in rows)}/{len(rows)} passed; "
          f"err_kernel/err_sdpa max {ratios[-1]:.3f} median {ratios[len(ratios) // 2]:.3f}; "
          f"max err_kernel {max(r['err_kernel'] for r in rows):.2e}")


def tune(path: str, allowed: str = "") -> None:
    """Geometric mean of each variant's time relative to variant 1 over the tuned cases.

    `allowed` (e.g. "1,2,3,4") limits the choice, e.g. to variants the fuzz passed."""
    cases = json.load(open(path))["tune"]
    names = sorted(cases[0]["variants"])
    if allowed:
        names = [n for n in names if n[1:] in allowed.split(",")]
    score = {n: math.exp(sum(math.log(c["variants"][n] / c["variants"]["v1"]) for c in cases) / len(cases))
             for n in names}
    print(json.dumps(score), file=sys.stderr)
    print(min(names, key=score.get)[1:])


if __name__ == "__main__":
    {"fuzz": fuzz, "tune": tune}[sys.argv[1]](*sys.argv[2:])

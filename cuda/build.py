"""Build libspanattn.so (and optionally the harness) where Node is not installed.

`spanattn build-kernel` is the real build command (it also writes the manifest and
skips unchanged rebuilds); this script exists for GPU machines that have nvcc and
python3 but no Node. It reads the same cuda/build.json, so the flags cannot drift.

    python3 cuda/build.py                       # default archs from build.json
    python3 cuda/build.py --arch sm_90a --harness
"""

import argparse
import json
import pathlib
import subprocess
import sys

CUDA_DIR = pathlib.Path(__file__).resolve().parent


def gencode(arch: str) -> str:
    # Arch-specific targets (sm_90a) carry SASS only: their PTX runs nowhere else.
    # Plain targets carry SASS plus PTX, so newer GPUs can JIT them.
    num = arch.removeprefix("sm_")
    if num.endswith("a"):
        return f"-gencode=arch=compute_{num},code=sm_{num}"
    return f"-gencode=arch=compute_{num},code=[sm_{num},compute_{num}]"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", default=None, help="comma-separated, e.g. sm_90a,sm_80")
    ap.add_argument("--debug", action="store_true")
    ap.add_argument("--harness", action="store_true", help="also build cuda/build/harness")
    args = ap.parse_args()
    cfg = json.loads((CUDA_DIR / "build.json").read_text())
    archs = args.arch.split(",") if args.arch else cfg["defaultArchs"]
    flags = cfg["debugFlags" if args.debug else "flags"]
    out = CUDA_DIR / cfg["library"]
    out.parent.mkdir(parents=True, exist_ok=True)
    codes = [gencode(a) for a in archs]
    cmd = ["nvcc", *flags, *codes, "-o", str(out), *[str(CUDA_DIR / s) for s in cfg["compile"]]]
    print(" ".join(cmd), file=sys.stderr)
    subprocess.run(cmd, check=True)
    if args.harness:
        exe_flags = [f for f in flags if f not in ("-shared", "-Xcompiler", "-fPIC")]
        cmd = ["nvcc", *exe_flags, *codes, "-o", str(out.parent / "harness"),
               str(CUDA_DIR / "harness.cu"), *[str(CUDA_DIR / s) for s in cfg["compile"]]]
        print(" ".join(cmd), file=sys.stderr)
        subprocess.run(cmd, check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

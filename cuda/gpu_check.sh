#!/usr/bin/env bash
# Everything the kernel needs checked on a GPU machine, in one call (no Node needed):
# build if the carried library does not load, harness check + timing, compute-sanitizer
# (memcheck, racecheck) on a small case, the GPU pytest fuzz, then the benchmark.
#
#   bash cuda/gpu_check.sh OUTDIR quick     # benchmark B in {1,32}, N=8192, plus variant tuning
#   bash cuda/gpu_check.sh OUTDIR full      # the whole benchmark sweep only (writes OUTDIR/bench)
#
# Writes OUTDIR/run.log (every step's output), OUTDIR/fuzz.json, OUTDIR/tune.json and the
# benchmark's results.json, table.md, chart.png.
set -u
OUT=${1:?usage: gpu_check.sh OUTDIR quick|full}
MODE=${2:-quick}
mkdir -p "$OUT"
export PYTHONPATH=python PYTHONUNBUFFERED=1
LOG="$OUT/run.log"
step() { echo "=== $* ($(date -u +%H:%M:%S))" | tee -a "$LOG"; }

step env
nvidia-smi --query-gpu=name,compute_cap,driver_version,clocks.sm,clocks.mem --format=csv 2>&1 | tee -a "$LOG"
python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)" 2>&1 | tee -a "$LOG"
nvcc --version | tail -1 | tee -a "$LOG"

step build
cuda/build/harness --usage >/dev/null 2>&1; harness_status=$?
if [ "$harness_status" -eq 2 ] && python3 -c "import ctypes; ctypes.CDLL('cuda/build/libspanattn.so')" 2>>"$LOG"; then
  echo "carried build loads and runs" | tee -a "$LOG"
else
  python3 cuda/build.py --arch sm_90a --harness 2>&1 | tee -a "$LOG"
fi

if [ "$MODE" = quick ]; then
  step harness
  timeout 120 cuda/build/harness 2>&1 | tee -a "$LOG"

  step "compute-sanitizer memcheck"
  timeout 120 compute-sanitizer --tool memcheck --error-exitcode 9 cuda/build/harness --check-only --small 2>&1 | tail -8 | tee -a "$LOG"
  step "compute-sanitizer racecheck"
  timeout 150 compute-sanitizer --tool racecheck --racecheck-report all --error-exitcode 9 cuda/build/harness --check-only --small 2>&1 | tail -8 | tee -a "$LOG"

  step "pytest gpu"
  SPANATTN_FUZZ_REPORT="$OUT/fuzz.json" timeout 240 python3 -m pytest -q --maxfail=10 test/python/test_kernel_gpu.py 2>&1 | tail -25 | tee -a "$LOG"
  python3 - "$OUT/fuzz.json" <<'EOF' 2>&1 | tee -a "$LOG"
import json, sys
rows = json.load(open(sys.argv[1]))
ratios = [r["err_kernel"] / r["err_sdpa"] for r in rows if r["err_sdpa"] > 0]
print(f"fuzz: {sum(r['passed'] for r in rows)}/{len(rows)} passed; err_kernel/err_sdpa max {max(ratios):.3f} "
      f"median {sorted(ratios)[len(ratios) // 2]:.3f}; max err_kernel {max(r['err_kernel'] for r in rows):.2e}")
EOF

  step "bench tune"
  timeout 150 python3 benchmarks/kernel_bench.py --tune --batches 1,32 --lengths 8192 2>>"$LOG" | tail -1 > "$OUT/tune.json"
  step "bench quick"
  timeout 200 python3 benchmarks/kernel_bench.py --batches 1,32 --lengths 8192 --out "$OUT" 2>&1 >/dev/null | tee -a "$LOG"
else
  step "bench full"
  timeout 560 python3 benchmarks/kernel_bench.py --budget-s 470 --out "$OUT" 2>&1 >/dev/null | tee -a "$LOG"
fi
step done

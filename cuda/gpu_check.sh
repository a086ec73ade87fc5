#!/usr/bin/env bash
# Everything the kernel needs checked on a GPU machine, in one call (no Node needed):
# build if the carried library does not load, harness check + timing, compute-sanitizer
# (memcheck, racecheck) on a small case, the GPU pytest fuzz, then the benchmark.
#
#   bash cuda/gpu_check.sh OUTDIR check     # build, harness, sanitizers, GPU pytest fuzz
#   bash cuda/gpu_check.sh OUTDIR all       # + time the kernel variants, sweep with the fastest
#   VARIANT=1 BENCH_ARGS="--batches 32 --lengths 8192" bash cuda/gpu_check.sh OUTDIR bench
#
# Writes OUTDIR/run.log (every step's output), OUTDIR/fuzz.json, OUTDIR/tune.json and the
# benchmark's results.json, table.md, chart.png. Keeps the whole call under TOTAL_S
# (default 570) seconds. Other knobs: FUZZ_CASES, PYTEST_ARGS, TUNE_ARGS, BENCH_ARGS,
# SKIP_SANITIZER=1, VARIANT=n (skips the tuning; 0 = the library's default).
set -u
OUT=${1:?usage: gpu_check.sh OUTDIR check|all|bench}
MODE=${2:-check}
mkdir -p "$OUT"
export PYTHONPATH=python PYTHONUNBUFFERED=1
LOG="$OUT/run.log"
T0=$(date +%s)
left() { echo $(( ${TOTAL_S:-570} - ($(date +%s) - T0) )); }
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

if [ "$MODE" != bench ]; then
  step harness
  set -o pipefail
  timeout 60 cuda/build/harness 2>&1 | tee -a "$LOG"
  harness_status=$?
  set +o pipefail
  # A crash or mismatch of the default (tensor-core for GQA >= 3) path: sweep SIMT only.
  [ "$harness_status" -ne 0 ] && ALLOWED=1,3 && SKIP_TUNE=1 && echo "harness failed" | tee -a "$LOG"

  if [ -z "${SKIP_SANITIZER:-}" ]; then
  step "compute-sanitizer memcheck, rows schedule"
  timeout 60 compute-sanitizer --tool memcheck --error-exitcode 9 cuda/build/harness --check-only --small --rows 2>&1 | tail -8 | tee -a "$LOG"
  step "compute-sanitizer racecheck, rows schedule"
  timeout 90 compute-sanitizer --tool racecheck --racecheck-report all --error-exitcode 9 cuda/build/harness --check-only --small --rows 2>&1 | tail -8 | tee -a "$LOG"
  step "compute-sanitizer memcheck and racecheck, balanced schedule (the default)"
  timeout 60 compute-sanitizer --tool memcheck --error-exitcode 9 cuda/build/harness --check-only --small --balanced 2>&1 | tail -8 | tee -a "$LOG"
  timeout 90 compute-sanitizer --tool racecheck --racecheck-report all --error-exitcode 9 cuda/build/harness --check-only --small --balanced 2>&1 | tail -8 | tee -a "$LOG"
  step "compute-sanitizer memcheck and racecheck, balanced schedule planned once for two calls (step_plan)"
  timeout 60 compute-sanitizer --tool memcheck --error-exitcode 9 cuda/build/harness --check-only --small --balanced --planned 2>&1 | tail -8 | tee -a "$LOG"
  timeout 90 compute-sanitizer --tool racecheck --racecheck-report all --error-exitcode 9 cuda/build/harness --check-only --small --balanced --planned 2>&1 | tail -8 | tee -a "$LOG"
  step "compute-sanitizer memcheck and racecheck, balanced schedule, fused combine, planned once for two calls"
  timeout 60 compute-sanitizer --tool memcheck --error-exitcode 9 cuda/build/harness --check-only --small --balanced --planned --fused 2>&1 | tail -8 | tee -a "$LOG"
  timeout 90 compute-sanitizer --tool racecheck --racecheck-report all --error-exitcode 9 cuda/build/harness --check-only --small --balanced --planned --fused 2>&1 | tail -8 | tee -a "$LOG"
  fi

  step "pytest gpu"
  set -o pipefail
  SPANATTN_FUZZ_CASES=${FUZZ_CASES:-120} SPANATTN_FUZZ_REPORT="$OUT/fuzz.json" timeout 150 \
    python3 -m pytest --maxfail=10 test/python/test_kernel_gpu.py ${PYTEST_ARGS:-} 2>&1 | tail -25 | tee -a "$LOG"
  pytest_status=$?
  set +o pipefail
  python3 cuda/summarize.py fuzz "$OUT/fuzz.json" 2>&1 | tee -a "$LOG"
  # The default path uses the tensor-core kernel for GQA groups >= 3: if the fuzz failed,
  # only the SIMT variants are candidates for the sweep.
  [ "$pytest_status" -ne 0 ] && ALLOWED=1,3 && echo "fuzz failed: sweeping SIMT variants only" | tee -a "$LOG"
fi

VARIANT_PRESET=${VARIANT:-}
VARIANT=${VARIANT:-0}
ALLOWED=${ALLOWED:-}
if [ "${SKIP_TUNE:-}" = 1 ]; then
  VARIANT=3
elif [ "$MODE" = all ] && [ -z "$VARIANT_PRESET" ]; then
  step "bench tune"
  timeout 120 python3 benchmarks/kernel_bench.py --tune ${TUNE_ARGS:---batches 1,32,128 --lengths 8192} 2>>"$LOG" | tail -1 > "$OUT/tune.json"
  VARIANT=$(python3 cuda/summarize.py tune "$OUT/tune.json" "${ALLOWED:-}" 2>>"$LOG")
  echo "best variant: $VARIANT" | tee -a "$LOG"
fi
if [ "$MODE" = all ] || [ "$MODE" = bench ]; then
  step "bench sweep (variant $VARIANT, $(left) s left)"
  timeout "$(left)" python3 benchmarks/kernel_bench.py --variant "$VARIANT" --budget-s $(( $(left) - 25 )) \
    --out "$OUT" ${BENCH_ARGS:-} 2>&1 >/dev/null | tee -a "$LOG"
fi
step done

#!/usr/bin/env bash
# The end-to-end GPU run of the pipeline through the real CLI, one device call per stage.
# Needs the repo with dist/ (npm run build) and .carry/node.xz (scripts/gpu-env.sh).
#
#   bash benchmarks/gpu_pipeline.sh OUTDIR engine     # GPU engine tests + replay (llama-8b shape)
#   TRAIN_MINUTES=4 bash benchmarks/gpu_pipeline.sh OUTDIR train   # arith-small train + eval --throughput
#   bash benchmarks/gpu_pipeline.sh OUTDIR all        # both
#
# Every step's output goes to OUTDIR/pipeline.log; results (JSON, HTML) are copied to OUTDIR.
# Steps are time-boxed so the call ends inside the device's 10-minute limit.
set -u
OUT=${1:?usage: gpu_pipeline.sh OUTDIR engine|train}
STAGE=${2:-engine}
mkdir -p "$OUT"
LOG="$OUT/pipeline.log"
export PYTHONPATH=python PYTHONUNBUFFERED=1 CI=true
. scripts/gpu-env.sh
T0=$(date +%s)
step() { echo "=== $* (t=$(( $(date +%s) - T0 ))s, $(date -u +%H:%M:%S))" | tee -a "$LOG"; }
run() { "$@" 2>&1 | tee -a "$LOG"; return "${PIPESTATUS[0]}"; }

step doctor
run spanattn doctor
step build-kernel
run spanattn build-kernel --arch sm_90a

if [ "$STAGE" = engine ] || [ "$STAGE" = all ]; then
  step gen-data arith-long
  run spanattn gen-data arith --config configs/data/arith-long.yaml --n 200 --val 50 --test 200 --test-ood 50 --out datasets/arith-long --force
  step gpu tests
  [ -n "${SKIP_TESTS:-}" ] || SPANATTN_GPU_TESTS=1 run timeout 120 python3 -m pytest -q -p no:cacheprovider test/python/test_engine_gpu.py
  step replay llama-8b
  run timeout ${REPLAY_S:-300} spanattn eval --replay --shape llama-8b --data datasets/arith-long \
      --contexts ${CONTEXTS:-2048,8192} --batches ${BATCHES:-1,8,32} --gen ${GEN:-64} --out runs/replay-8b --json > "$OUT/replay-result.json"
  cp runs/replay-8b/report.html "$OUT/replay-report.html" 2>/dev/null
  tail -c 3000 "$OUT/replay-result.json" | tee -a "$LOG"
fi

if [ "$STAGE" = train ] || [ "$STAGE" = all ]; then
  step gen-data arith
  run spanattn gen-data arith --config configs/data/arith.yaml --out datasets/arith-default --force
  step train arith-small
  # the time box leaves room for loading 200K records, the 60-step calibration and the test decode
  rm -f runs/train-bench/train_bench_main.json
  OUT="$PWD/runs/train-bench" run timeout $(( ${TRAIN_MINUTES:-4} * 60 + 300 )) python3 benchmarks/train_bench.py --stage main --data datasets/arith-default \
      --train-minutes ${TRAIN_MINUTES:-4} ${TRAIN_ARGS:-}
  cp runs/train-bench/train_bench_main.json "$OUT/" 2>/dev/null
  RUN=$(ls -d runs/train-bench/run-main 2>/dev/null)
  step eval
  run timeout ${EVAL_S:-200} spanattn eval --run "$RUN" --data datasets/arith-default --batch 128 --limit ${EVAL_LIMIT:-1024} \
      --throughput --sweep-batches 1,8,32,128 --out runs/eval-arith-small --json > "$OUT/eval-result.json"
  cp runs/eval-arith-small/report.html "$OUT/eval-report.html" 2>/dev/null
fi
step done

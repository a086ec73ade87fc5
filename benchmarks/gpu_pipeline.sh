#!/usr/bin/env bash
# The end-to-end GPU runs of issues 5 and 7 through the real CLI. Needs the repo with dist/
# (npm run build) and .carry/node.xz (see scripts/gpu-env.sh); the news stage also needs
# datasets/news-cnndm (spanattn gen-data news --config configs/data/news-cnndm.yaml), which
# is made where the news sources are and carried.
#
#   bash benchmarks/gpu_pipeline.sh OUTDIR STAGE[,STAGE...]
#
# stages (each time-boxed so that a device call of several stages ends inside 10 minutes):
#   tests   GPU tests: engine (kernel in a CUDA graph vs masked forward), flex masks, compile
#   tests-engine  only the engine's (eager and compiled state machine; ~1 minute)
#   replay  eval --replay --shape llama-8b on arith-long spans (CONTEXTS, BATCHES, GEN)
#   replay-long  the same with the arith-long model's shape (LONG_SHAPE, default llama-long; or
#           llama-long-kv16), LONG_CONTEXTS x 1,8,32,128
#   profile benchmarks/profile_decode.py: kernel time by group of a decode step, dense vs
#           sparse, with and without --compile-state (PROFILE_SPECS, default
#           "llama-8b 8192 32;llama-long 3072 128"; PROFILE_VARIANTS="eager compiled", parts
#           joined with +: see variant_flags)
#   sweep   train_bench --stage sweep: tokens/s + MFU per training variant (SWEEP_VARIANTS)
#   main    arith-small from scratch for TRAIN_MINUTES, then eval of the whole test split
#           (dense vs sparse, --throughput) and the same with --continuous
#   dense   the --mask dense baseline for DENSE_MINUTES, then eval
#   long    arith-long data, configs/train/arith-long.yaml (LONG_MIX=DIR[:WEIGHT] mixes another
#           dataset's train split in, e.g. LONG_MIX=.ferry/mix) for LONG_MINUTES (or LONG_ARGS=
#           "--max-steps N"; the run stops itself LONG_MARGIN_S=45 s before BENCH_S with a
#           checkpoint, train.time_limit_s; LONG_WARM=1 trains on from .ferry/long, and LONG_WIDEN=F
#           with it widens that checkpoint to F times the attention heads first, spanattn.widen;
#           LONG_WIDEN=F with long-eval alone evaluates the widened copy of .ferry/long untrained),
#           then eval --batch 128 on its test split (LONG_EVAL_LIMIT records; LONG_EVAL_DATA=DIR: that
#           dataset's test split instead, e.g. .ferry/heldout from configs/data/arith-long-heldout.yaml)
#           once per LONG_EVAL_VARIANTS ("eager compiled"; parts joined with +, see variant_flags,
#           e.g. "compiled+continuous"), then --throughput --sweep-batches
#           1,8,32 (LONG_SWEEP=0 leaves it out). Run it in ONE device call with OUTDIR=$OUT:
#           a machine is not reliably still warm for a second call, and the checkpoint stays
#           on it (long-train / long-eval are the two halves)
#   news    news-small on the CNN/DM sample for NEWS_STEPS steps, then eval (ROUGE)
#   tests-kernel  the kernel's GPU tests (fuzz, graphs, compile) under both work schedules
#   kbench  kernel_bench.py, rows vs balanced schedule (KBENCH_SCHEDULES, e.g. "rows balanced
#           balanced-fused" for the fused combine too), with one sequence reading everything
#           (SPANATTN_KERNEL_SCHEDULE=balanced in the environment switches every other stage)
#   engine / train / all: the older names (tests+replay / main / everything)
#
# EVAL_FLAGS is appended to every `spanattn eval` (e.g. EVAL_FLAGS=--compile-state, or
# EVAL_FLAGS="--kernel-schedule balanced"), and
# EVAL_TAG to the names of their result files (two variants can share one OUTDIR).
# SETUP=0 skips doctor, build-kernel and regenerating datasets already there (a second
# pipeline in the same device call).
#
# The checkpoint ferry: the device machine may be gone by the next call, taking the run
# folder with it. So long-train also packs its checkpoint (bf16) and the dataset's splits
# (gzipped) into OUTDIR, xz-compressed (benchmarks/ferry.py, 4-5 files; FERRY=0 leaves it out;
# off by default when long-eval runs in the same call). LONG_WARM=1 trains on from a ferried checkpoint
# (a new run with a fresh optimizer: lower its lr, e.g. LONG_ARGS="--max-steps N --set
# train.lr=1e-3"); on a machine still warm from the last long-train it ferries that run's
# newest checkpoint to itself first. Unpack them here into .ferry/long (`python3 benchmarks/ferry.py unpack
# --parts DIR --name long`) and build the kernel here for sm_90a alone (`spanattn build-kernel
# --arch sm_90a --force`: 4.3 MB; with sm_80 too the carry below passes 64 MiB).
# Then a later call that carries [".ferry/long", ".ferry/mix"] runs long-eval on it, or, ~17 MB
# smaller, [".ferry/long.tar.xz", ".ferry/mix"] after `python3 benchmarks/ferry.py archive --name
# long` (expanded on arrival, below); the library fits beside the archive
# ("cuda/build/libspanattn.so", "cuda/build/manifest.json"), node does not, so eval runs through
# its Python entry point there (same code, no report.html; PIPELINE_NODE= forces that path anywhere).
# Every step's output goes to OUTDIR/pipeline.log; result JSON and HTML reports are copied to
# OUTDIR. Run folders stay under runs/ (a warm device machine keeps them between calls, and
# `main`/`long` read the sweep's step time from runs/train-bench-sweep.json when it is there).
set -u
OUT=${1:?usage: gpu_pipeline.sh OUTDIR STAGE[,STAGE...]}
STAGES=",${2:-tests,replay},"
STAGES=${STAGES/,engine,/,tests,replay,}
STAGES=${STAGES/,train,/,main,}
STAGES=${STAGES/,all,/,tests,replay,sweep,main,dense,long,news,}
STAGES=${STAGES/,long,/,long-train,long-eval,}
mkdir -p "$OUT"
LOG="$OUT/pipeline.log"
export PYTHONPATH=python PYTHONUNBUFFERED=1 CI=true
. scripts/gpu-env.sh
T0=$(date +%s)
step() { echo "=== $* (t=$(( $(date +%s) - T0 ))s, $(date -u +%H:%M:%S))" | tee -a "$LOG"; }
run() { "$@" 2>&1 | tee -a "$LOG"; return "${PIPESTATUS[0]}"; }
has() { [[ "$STAGES" == *",$1,"* ]]; }
variant_flags() {  # variant_flags SETTING VARIANT: the flags of VARIANT's "+"-joined parts in `flags`, its name in `tag`
  flags=()
  local part
  for part in ${2//+/ }; do
    case $part in
      eager) ;;  # the state machine op by op
      compiled) flags+=(--compile-state) ;;
      decode) flags+=(--compile-decode) ;;
      continuous) flags+=(--continuous) ;;  # finished rows refilled with the next prompts, through the decode steps
      prefill) flags+=(--refill prefill) ;;  # with continuous: refilled by a prefill forward instead
      stepplan) flags+=(--step-plan) ;;  # one kernel plan a step (the default since session 7)
      layerplan) flags+=(--no-step-plan) ;;  # a kernel plan in every layer (the default before)
      fused) flags+=(--kernel-combine fused) ;;  # the default since session 7
      combinekernel) flags+=(--kernel-combine kernel) ;;  # a combine kernel (the default before)
      *) echo "$1: unknown part '$part' (eager, compiled, decode, continuous, prefill, stepplan, layerplan, fused, combinekernel)" | tee -a "$LOG"
         return 2 ;;
    esac
  done
  tag=${2//eager/}; tag=${tag//+/-}; tag=${tag#-}; tag=${tag%-}
}
bench() {  # bench NAME ARGS...: train_bench.py with its JSON copied to OUTDIR
  local name=$1; shift
  rm -f "runs/train-bench/train_bench_$name.json"
  OUT="$PWD/runs/train-bench" run timeout ${BENCH_S:-570} python3 benchmarks/train_bench.py "$@"
  cp "runs/train-bench/train_bench_$name.json" "$OUT/" 2>/dev/null
}
evaluate() {  # evaluate NAME TIMEOUT ARGS...: spanattn eval --json, result + report to OUTDIR
  local name=$1${EVAL_TAG:+-$EVAL_TAG} limit=$2; shift 2
  rm -rf "runs/$name"
  if [[ -n "$NODE" ]]; then
    run timeout "$limit" spanattn eval --out "runs/$name" --json "$@" ${EVAL_FLAGS:-} > "$OUT/$name.json"
  else  # no node carried (a ferried checkpoint fills the carry): the CLI's Python child, no report.html
    local module=spanattn.evaluate args=()
    for a in "$@"; do  # as the CLI does: --replay runs the replay module, which takes no --replay
      if [[ "$a" == --replay ]]; then module=spanattn.replay; else args+=("$a"); fi
    done
    run timeout "$limit" python3 -m $module --out "runs/$name" "${args[@]}" ${EVAL_FLAGS:-} > /dev/null
    cp "runs/$name/result.json" "$OUT/$name.json" 2>/dev/null || : > "$OUT/$name.json"
  fi
  # cut short (time box): keep the modes and sweep rows it finished
  [[ -s "$OUT/$name.json" ]] || cp "runs/$name/result.partial.json" "$OUT/$name.json" 2>/dev/null
  cp "runs/$name/report.html" "$OUT/$name.html" 2>/dev/null
  tail -c 1500 "$OUT/$name.json" | tee -a "$LOG"; echo | tee -a "$LOG"
}

gen() {  # gen NAME CONFIG: the dataset, unless SETUP=0 and it is already there
  [[ "${SETUP:-1}" == 0 && -f "datasets/$1/manifest.json" ]] && return
  [[ -z "$NODE" ]] && return  # gen-data is the CLI's; a ferried split comes with its checkpoint
  step gen-data "$1"
  run spanattn gen-data arith --config "$2" --out "datasets/$1" --force
}

NODE=${PIPELINE_NODE-$(command -v node)}  # PIPELINE_NODE= forces the Python entry points
for archive in .ferry/*.tar.xz; do  # carried archives (benchmarks/ferry.py archive): expanded on arrival
  [[ -f $archive ]] || continue
  step "expand $archive"
  run python3 benchmarks/ferry.py expand --name "$(basename "$archive" .tar.xz)" || exit 2
done
step "stages ${STAGES:1:-1}${EVAL_FLAGS:+ (eval flags: $EVAL_FLAGS)}$([[ -z "$NODE" ]] && echo " (no node: Python entry points)")"
if [[ "${SETUP:-1}" != 0 && -n "$NODE" ]]; then
  run spanattn doctor
  step build-kernel
  run spanattn build-kernel --arch sm_90a
elif [[ -z "$NODE" && ! -f cuda/build/libspanattn.so ]] && [[ "$STAGES" != ",long-train," ]]; then
  # no node, and no library carried (a ferried checkpoint can leave no room for it in the carry)
  step "build-kernel (cuda/build.py, no node)"
  run python3 cuda/build.py --arch sm_90a || exit 2
fi

if has tests || has tests-engine; then
  step gpu tests
  GPU_TESTS=test/python/test_engine_gpu.py
  has tests && GPU_TESTS="$GPU_TESTS test/python/test_train_gpu.py"
  SPANATTN_GPU_TESTS=1 run timeout ${TESTS_S:-180} python3 -m pytest -p no:cacheprovider $GPU_TESTS
fi

if has tests-kernel; then  # the kernel's GPU fuzz, graph and compile tests, under both schedules
  step gpu kernel tests
  SPANATTN_FUZZ_CASES=${FUZZ_CASES:-60} run timeout ${KTESTS_S:-300} python3 -m pytest -p no:cacheprovider \
      test/python/test_kernel_gpu.py
fi

if has kbench; then  # rows vs balanced schedule where one row per batch reads everything
  for spec in ${KBENCH_SCHEDULES:-rows balanced}; do  # balanced-fused: with --combine fused
    schedule=${spec%-fused} combine=()
    [[ $spec == *-fused ]] && combine=(--combine fused)
    step "kernel bench, $spec schedule, ${KBENCH_GLOBAL:-1} global row(s)"
    run timeout ${KBENCH_S:-120} python3 benchmarks/kernel_bench.py --methods span --schedule $schedule "${combine[@]}" \
        --global-rows ${KBENCH_GLOBAL:-1} --batches ${KBENCH_BATCHES:-32,128} --lengths ${KBENCH_LENGTHS:-8192} \
        --fractions ${KBENCH_FRACTIONS:-1.0,0.1,0.03} --out "$OUT/kbench-$spec" > /dev/null
  done
fi

if has replay || has replay-long || has profile || has long-train || has long-eval; then
  gen arith-long configs/data/arith-long.yaml
fi

if has replay; then
  step replay llama-8b
  evaluate replay-llama-8b ${REPLAY_S:-240} --replay --shape llama-8b --data datasets/arith-long \
      --contexts ${CONTEXTS:-8192,16384} --batches ${BATCHES:-8,32} --gen ${GEN:-64}
fi

if has replay-long; then  # LONG_SHAPE=llama-long-kv16: the twice-the-KV-heads model (spanattn.widen --factor 2)
  step "replay ${LONG_SHAPE:-llama-long}"
  evaluate replay-${LONG_SHAPE:-llama-long} ${REPLAY_S:-240} --replay --shape ${LONG_SHAPE:-llama-long} --data datasets/arith-long \
      --contexts ${LONG_CONTEXTS:-2048,4096} --batches 1,8,32,128 --gen ${GEN:-64}
fi

if has profile; then
  IFS=';' read -ra PROFILE_SPECS <<< "${PROFILE_SPECS:-llama-8b 8192 32;llama-long 3072 128}"
  for spec in "${PROFILE_SPECS[@]}"; do
    set -- $spec
    # a variant joins parts with "+" (variant_flags), e.g. "compiled+decode+stepplan"
    for variant in ${PROFILE_VARIANTS:-eager compiled}; do
      variant_flags PROFILE_VARIANTS "$variant" || exit 2
      step "profile $1 L=$2 B=$3 ${flags[*]}"
      run timeout ${PROFILE_S:-150} python3 benchmarks/profile_decode.py --data datasets/arith-long --shape $1 \
          --context $2 --batch $3 "${flags[@]}" --out "$OUT/profile-$1${tag:+-$tag}.json" > /dev/null
    done
  done
fi

if has sweep || has main || has dense; then
  gen arith-default configs/data/arith.yaml
fi

if has sweep; then
  step train sweep
  bench sweep --stage sweep --data datasets/arith-default --sweep-steps ${SWEEP_STEPS:-60} \
      --variants ${SWEEP_VARIANTS:-naive-sdpa-unpacked,flex-packed,flex-packed-compile,flex-packed-compile-dense}
fi

if has main; then
  step train arith-small
  bench main --stage main --data datasets/arith-default --train-minutes ${TRAIN_MINUTES:-5} --test-samples 0 ${TRAIN_ARGS:-}
  step eval arith-small
  evaluate eval-arith-small ${EVAL_S:-150} --run runs/train-bench/run-main --data datasets/arith-default --batch 128 \
      --throughput --sweep-batches 1,8,32,128 --hf-limit ${HF_LIMIT:-512}
  step eval arith-small continuous
  evaluate eval-arith-small-continuous ${EVAL_S:-150} --run runs/train-bench/run-main --data datasets/arith-default \
      --batch 128 --continuous
fi

if has dense; then
  step train arith-small dense mask
  bench dense --stage dense --data datasets/arith-default --train-minutes ${DENSE_MINUTES:-2} --test-samples 0 ${TRAIN_ARGS:-}
  step eval arith-small dense-trained
  evaluate eval-arith-small-dense ${EVAL_S:-150} --run runs/train-bench/run-dense --data datasets/arith-default \
      --batch 128 --modes dense
fi

if has long-train; then
  LT_DATA=datasets/arith-long LT_SETS=()
  if [[ "${LONG_WARM:-0}" == 1 ]]; then  # train on from a ferried checkpoint (fresh optimizer)
    if [[ ! -d .ferry/long/checkpoint && -d runs/train-bench/run-long/checkpoints ]]; then
      # a warm machine still holds the last run: ferry it to itself, as the new run replaces it
      step "ferry runs/train-bench/run-long to .ferry/long (this machine)"
      rm -rf /tmp/ferry-long
      run python3 benchmarks/ferry.py pack --run runs/train-bench/run-long --data datasets/arith-long \
          --splits train,val,test --name long --out /tmp/ferry-long &&
        run python3 benchmarks/ferry.py unpack --parts /tmp/ferry-long --name long
    fi
    if [[ ! -d .ferry/long/checkpoint ]]; then
      echo "LONG_WARM=1 needs .ferry/long (benchmarks/ferry.py unpack) in the carry" | tee -a "$LOG"; exit 2
    fi
    LT_DATA=.ferry/long/data WARM_CKPT=.ferry/long/checkpoint
    if [[ -n "${LONG_WIDEN:-}" ]]; then  # F times the attention heads, same function (spanattn.widen)
      step "widen $WARM_CKPT: $LONG_WIDEN x the attention heads"
      run python3 -m spanattn.widen --checkpoint $WARM_CKPT --factor $LONG_WIDEN --out runs/widened --force || exit 2
      WARM_CKPT=runs/widened
    fi
    LT_SETS=(--set model.path=$WARM_CKPT --set model.config=null --set model.tokenizer=auto)
  elif [[ -n "${LONG_WIDEN:-}" ]]; then
    echo "LONG_WIDEN widens a ferried checkpoint: it needs LONG_WARM=1 (or long-eval alone, to evaluate the widened copy untrained)" | tee -a "$LOG"; exit 2
  fi
  if [[ -n "${LONG_MIX:-}" ]]; then  # DIR[:WEIGHT]: that dataset's train split mixed in (train.mix)
    mix_dir=${LONG_MIX%%:*} mix_w=1; [[ "$LONG_MIX" == *:* ]] && mix_w=${LONG_MIX##*:}
    [[ -f $mix_dir/manifest.json ]] || { echo "LONG_MIX: $mix_dir is not a dataset folder" | tee -a "$LOG"; exit 2; }
    LT_SETS+=(--set "train.mix=[{data: $mix_dir, weight: $mix_w}]")
  fi
  step "train arith-long$([[ "${LONG_WARM:-0}" == 1 ]] && echo " from .ferry/long/checkpoint")${LONG_MIX:+, mixed with $LONG_MIX}"
  # the run stops itself LONG_MARGIN_S (45) before the time box, with its final validation and
  # a checkpoint of the step it is on, instead of losing the steps since its last checkpoint
  LT_SETS+=(--set train.time_limit_s=$(( ${BENCH_S:-570} - ${LONG_MARGIN_S:-45} )))
  bench long --stage main --name long --config configs/train/arith-long.yaml --data $LT_DATA "${LT_SETS[@]}" \
      --train-minutes ${LONG_MINUTES:-4} --test-samples 0 ${LONG_ARGS:-}
  # the checkpoint comes back in parts, should this machine go before the eval; not by default
  # when long-eval runs in this call too (5 more files would pass the 8 that come back)
  # (a widened llama-long checkpoint, 76 MB in bf16, comes back in ~57 MB of xz parts)
  if [[ "${FERRY:-$(has long-eval && echo 0 || echo 1)}" != 0 ]]; then
    step ferry arith-long checkpoint
    run python3 benchmarks/ferry.py pack --run runs/train-bench/run-long --data $LT_DATA --splits train,val,test \
        --name long --out "$OUT"
  fi
fi

if has long-eval; then
  LONG_RUN=runs/train-bench/run-long LONG_DATA=datasets/arith-long LONG_CKPT=()
  # trained here from a ferried checkpoint without node: the splits came with the ferry
  [[ ! -f $LONG_DATA/manifest.json && -f .ferry/long/data/manifest.json ]] && LONG_DATA=.ferry/long/data
  if [[ -n "${LONG_WIDEN:-}" ]] && ! has long-train; then  # the widened copy of the ferried checkpoint, untrained
    [[ -d .ferry/long/checkpoint ]] || { echo "LONG_WIDEN with long-eval widens .ferry/long/checkpoint: carry it" | tee -a "$LOG"; exit 2; }
    step "widen .ferry/long/checkpoint: $LONG_WIDEN x the attention heads (evaluated as it is, untrained: no noise)"
    run python3 -m spanattn.widen --checkpoint .ferry/long/checkpoint --factor $LONG_WIDEN --noise 0 --out runs/widened --force || exit 2
    LONG_RUN=.ferry/long LONG_DATA=.ferry/long/data LONG_CKPT=(--checkpoint runs/widened)
  elif [[ ! -d $LONG_RUN && -d .ferry/long ]]; then  # a fresh machine: the checkpoint ferried back here
    LONG_RUN=.ferry/long LONG_DATA=.ferry/long/data LONG_CKPT=(--checkpoint .ferry/long/checkpoint)
    step "eval of the ferried checkpoint .ferry/long"
  fi
  if [[ -n "${LONG_EVAL_DATA:-}" ]]; then  # another dataset's test split, e.g. .ferry/heldout (5,000 more records)
    [[ -f $LONG_EVAL_DATA/manifest.json ]] || { echo "LONG_EVAL_DATA: $LONG_EVAL_DATA is not a dataset folder" | tee -a "$LOG"; exit 2; }
    LONG_DATA=$LONG_EVAL_DATA
    step "evaluating on $LONG_DATA"
  fi
  # the headlines first, one per LONG_EVAL_VARIANTS entry, each result written as soon as it is
  # done; then the sweep. An entry joins parts with "+" (variant_flags); its name (less
  # "eager") is added to EVAL_TAG in the result's file name
  for variant in ${LONG_EVAL_VARIANTS:-eager compiled}; do
    variant_flags LONG_EVAL_VARIANTS "$variant" || exit 2
    step "eval arith-long ($variant)"
    EVAL_TAG=${EVAL_TAG:-}${EVAL_TAG:+${tag:+-}}$tag evaluate eval-arith-long ${LONG_EVAL_S:-240} --run $LONG_RUN \
        "${LONG_CKPT[@]}" --data $LONG_DATA --batch 128 ${LONG_EVAL_LIMIT:+--limit $LONG_EVAL_LIMIT} "${flags[@]}"
  done
  if [[ "${LONG_SWEEP:-1}" != 0 ]]; then
    step eval arith-long sweep
    evaluate eval-arith-long-sweep ${LONG_EVAL_S:-240} --run $LONG_RUN "${LONG_CKPT[@]}" --data $LONG_DATA \
        --batch 128 --limit 256 --throughput --sweep-batches 1,8,32 --hf-limit ${LONG_HF_LIMIT:-0}
  fi
fi

if has news; then
  step train news-small
  run timeout ${NEWS_S:-240} spanattn train --config configs/train/news-small.yaml --data datasets/news-cnndm \
      --out runs/news-small --force --max-steps ${NEWS_STEPS:-300} --json > "$OUT/train-news-small.json"
  tail -c 1500 "$OUT/train-news-small.json" | tee -a "$LOG"; echo | tee -a "$LOG"
  step eval news-small
  evaluate eval-news-small ${EVAL_S:-150} --run runs/news-small --checkpoint best --data datasets/news-cnndm --batch 32
fi
step done

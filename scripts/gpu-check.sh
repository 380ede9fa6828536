#!/usr/bin/env bash
# The GPU machine's one check, about 8 minutes: build with the CUDA backend for this card only,
# run the native tests (ctest) and the CUDA vitest suites, run compute-sanitizer (memcheck and
# racecheck) over the CUDA test executables, time the native kernels with the PyTorch baseline on
# the same card, time the model engine (train step, rollout, decode step: issues 8 and 9) beside
# transformers as far as the budget allows, and end with one summary table.
#
# On the GPU machine (no network, no Node): from the CPU machine, after `npm ci && npm run build:ts`
# and `bash ../shared/device/pack.sh`, run with `.device` and `dist` carried along:
#
#   source .device/env.sh && bash scripts/gpu-check.sh
#
# Nothing is compiled with tsc there: the carried dist/ is used as it is.
# Results: $OUT/gpu-check.tar.gz (every log and JSON) and $OUT/summary.txt (the table printed
# last); without $OUT they go to bench/out/. Every step has its own timeout, so one hang costs
# only that step.
# Environment: SPPO_CUDA_ARCHS (default: this card's compute capability), SKIP_BUILD=1,
# SKIP_TESTS=1 (no ctest, vitest, transformers fixtures nor compute-sanitizer: a benchmark rerun),
# SKIP_SANITIZER=1, SKIP_TORCH=1, SKIP_MODEL_BENCH=1 (the model engine's benchmarks, issues 8 and
# 9), MODEL_7B=0 (not even the 7B row when time is left), MODEL_PRECISION (the engine's mode in
# the model benchmarks: bf16, the default and the issues' targets, or fp32), PAIRRM_PRECISION (the
# PairRM benchmark's, issue 11: fp16 by default, as the PyTorch baseline; bf16 or fp32), BENCH_ARGS (extra bench_logprob flags),
# GPU_CHECK_BUDGET (seconds for the whole run, default 540).
set -u -o pipefail
cd "$(dirname "$0")/.."
OUTDIR="${OUT:-bench/out}"
RES="$(mktemp -d)/gpu-check"
mkdir -p "$RES" "$OUTDIR"
SUMMARY="$RES/summary.txt"
: > "$SUMMARY"
T0=$(date +%s)
# The whole run stays inside this many seconds (one device command may run 10 minutes); a step
# never gets more than what is left.
BUDGET=${GPU_CHECK_BUDGET:-540}
DEADLINE=$(( T0 + BUDGET ))

# step NAME SECONDS LOG CMD...: runs CMD under a timeout, its output to LOG (and the terminal),
# and adds one row to the summary: pass, FAIL (exit code), TIMEOUT, or the skip reason.
step() {
  local name=$1 limit=$2 log=$3
  shift 3
  local left=$(( DEADLINE - $(date +%s) ))
  if [ "$left" -lt 10 ]; then
    printf '%-34s %-16s %5s   %s\n' "$name" TIMEOUT - "not run: GPU_CHECK_BUDGET=${BUDGET}s spent" >> "$SUMMARY"
    return 124
  fi
  [ "$limit" -gt "$left" ] && limit=$left
  echo
  echo "== $name (timeout ${limit}s)"
  local t=$(date +%s)
  timeout --kill-after=10 "$limit" "$@" > >(tee -a "$RES/$log") 2>&1
  local rc=$?
  local took=$(( $(date +%s) - t ))
  local verdict=pass
  if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then verdict=TIMEOUT; elif [ "$rc" != 0 ]; then verdict="FAIL (exit $rc)"; fi
  printf '%-34s %-16s %5ss  %s\n' "$name" "$verdict" "$took" "$log" >> "$SUMMARY"
  return "$rc"
}
skip() { printf '%-34s %-16s %5s   %s\n' "$1" skipped - "$2" >> "$SUMMARY"; }
# need NAME SECONDS: true when the budget has SECONDS left and 15 more (the last step, the model
# ratio table, takes a second); otherwise a skip row saying so (a step that cannot finish is better
# not started).
need() {
  local left=$(( DEADLINE - $(date +%s) ))
  if [ "$left" -lt $(( $2 + 15 )) ]; then skip "$1" "budget: ${left}s left, needs about $2s (+15)"; return 1; fi
}

finish() {
  ( cd "$(dirname "$RES")" && tar -czf - gpu-check ) > "$OUTDIR/gpu-check.tar.gz"
  {
    echo
    echo "gpu-check summary ($(( $(date +%s) - T0 ))s in all; logs in gpu-check.tar.gz)"
    printf '%-34s %-16s %6s  %s\n' step verdict time log
    cat "$SUMMARY"
    [ -f "$RES/compare.txt" ] && { echo; cat "$RES/compare.txt"; }
    [ -f "$RES/model-compare.txt" ] && { echo; cat "$RES/model-compare.txt"; }
    [ -f "$RES/pairrm-compare.txt" ] && { echo; cat "$RES/pairrm-compare.txt"; }
    [ -f "$RES/sanitizer-errors.txt" ] && { echo; echo "compute-sanitizer findings:"; head -40 "$RES/sanitizer-errors.txt"; }
    if grep -qE 'FAIL|TIMEOUT' "$SUMMARY"; then echo; echo "gpu-check: FAILED"; else echo; echo "gpu-check: all steps passed"; fi
  } > "$OUTDIR/summary.txt"
  echo
  cat "$OUTDIR/summary.txt"
  grep -qE 'FAIL|TIMEOUT' "$SUMMARY" && exit 1
  exit 0
}

# ---- machine ---------------------------------------------------------------------------------
step machine 30 machine.txt bash -c 'date -u; uname -a; nvidia-smi; nvcc --version; node --version; cmake --version | head -1'
if ! command -v node > /dev/null; then
  skip "everything else" "node is not on PATH: begin with 'source .device/env.sh &&'"
  finish
fi
if [ ! -f dist/index.js ]; then
  skip "everything else" "dist/ is missing: run 'npm run build:ts' here and carry dist"
  finish
fi

# ---- build for this card only ----------------------------------------------------------------
if [ "${SKIP_BUILD:-0}" != 1 ]; then
  if [ -z "${SPPO_CUDA_ARCHS:-}" ]; then
    cap=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d '. ')
    export SPPO_CUDA_ARCHS="${cap:-90}"
  fi
  echo "SPPO_CUDA_ARCHS=$SPPO_CUDA_ARCHS"
  if ! step "build (CUDA, sm_$SPPO_CUDA_ARCHS)" 220 build.log env SPPO_CUDA=on node scripts/build-native.mjs; then
    skip "everything else" "the build failed: see build.log"
    finish
  fi
else
  skip build "SKIP_BUILD=1"
fi
step "sppo-native info" 30 info.txt node bin/sppo-native.js info

# ---- tests -----------------------------------------------------------------------------------
if [ "${SKIP_TESTS:-0}" = 1 ]; then
  skip "tests and compute-sanitizer" "SKIP_TESTS=1"
else
step "ctest (all native tests)" 100 ctest.log ctest --test-dir build --output-on-failure -j 8
mapfile -t cuda_tests < <(ctest --test-dir build -N -R '_cuda$' 2>/dev/null | sed -n 's/^ *Test *#[0-9]*: *//p')
# Every *_cuda suite: the kernels' (test_<op>_cuda) and the whole engine's against the CPU engine
# (test_model_cuda: Llama forward, gradients, trainer steps, decoding, generation;
# test_pairrm_model_cuda: PairRM).
step "ctest CUDA suites, verbose" 60 ctest-cuda.log ctest --test-dir build -R '_cuda$' -V
# Here a skipped CUDA suite is a failure: it means the build or the card was not seen.
# check_no_skips WHAT LOG PATTERN [WHY] [EXCEPT]: a FAIL row when LOG has lines matching PATTERN
# (other than those matching EXCEPT), WHY being what such a skip means.
check_no_skips() {
  local what=$1 log=$2 pattern=$3 why=${4:-no CUDA backend or no GPU seen} except=${5:-} n
  if [ -n "$except" ]; then
    n=$(grep -E "$pattern" "$RES/$log" 2>/dev/null | grep -cvE "$except")
  else
    n=$(grep -cE "$pattern" "$RES/$log" 2>/dev/null)
  fi
  if [ "${n:-0}" -gt 0 ]; then
    printf '%-34s %-16s %5s   %s\n' "$what" FAIL - "$n skipped lines in $log: $why" >> "$SUMMARY"
  fi
}
check_no_skips "ctest CUDA suites ran" ctest-cuda.log '\*\*\*Skipped|Not Run'
# test/*cuda*.test.ts: the kernels through the addon (kernels.cuda) and the train pipeline end to
# end with --device cuda against the same run on the CPU (pipeline.cuda, about 10 s of it).
mapfile -t suites < <(ls test/*cuda*.test.ts 2>/dev/null)
if [ "${#suites[@]}" -gt 0 ]; then
  step "vitest CUDA suites" 90 vitest-cuda.log npx vitest run "${suites[@]}"
  check_no_skips "vitest CUDA suites ran" vitest-cuda.log '[0-9]+ skipped'
else
  skip "vitest CUDA suites" "none in test/"
fi

# ---- transformers itself as the reference (the CPU machine has no transformers) ----------------
# Tiny random Llama 2 / Llama 3 / Mistral / reward models and a tiny DebertaV2 + PairRM head,
# recorded in float64, and the engine's suites against them. The fixtures come back in the tarball:
# commit test/fixtures/transformers*/ from it, and CI checks against them from then on.
if [ "${SKIP_TORCH:-0}" = 1 ]; then
  skip "transformers fixtures + tests" "SKIP_TORCH=1"
else
  step "transformers fixtures + tests" 120 transformers-fixtures.txt bash -c \
    'python3 scripts/make-transformers-fixtures.py &&
     cp -r test/fixtures/transformers test/fixtures/transformers-pairrm "$1/" &&
     npx vitest run --reporter=verbose test/model.transformers.test.ts test/pairrm.transformers.test.ts' _ "$RES"
  # Each skipped test is a line starting with the arrow; PairRM's own tokenizer check is skipped
  # here too by design (it needs a local llm-blender/PairRM-hf: scripts/make-tokenizer-fixtures.py).
  check_no_skips "transformers suites ran" transformers-fixtures.txt '↓' "a fixture was not recorded or not found" \
    'PairRM tokenizer against Rust tokenizers'
fi

# ---- compute-sanitizer over the CUDA test executables ------------------------------------------
if [ "${SKIP_SANITIZER:-0}" = 1 ]; then
  skip compute-sanitizer "SKIP_SANITIZER=1"
elif ! command -v compute-sanitizer > /dev/null; then
  skip compute-sanitizer "compute-sanitizer is not on PATH"
elif [ "${#cuda_tests[@]}" = 0 ]; then
  skip compute-sanitizer "no *_cuda ctest found"
else
  # racecheck looks for shared-memory races inside kernels: the op suites cover every kernel, so
  # the whole-engine suites (*model_cuda: the same kernels, many launches) run under memcheck only.
  # test_backend_faults_cuda faults on purpose (a broken context's handling): not under either.
  mapfile -t checked < <(printf '%s\n' "${cuda_tests[@]}" | grep -v 'faults_cuda$')
  mapfile -t op_tests < <(printf '%s\n' "${checked[@]}" | grep -v 'model_cuda$')
  for tool in memcheck racecheck; do
    if [ "$tool" = memcheck ]; then tests=("${checked[@]}"); else tests=("${op_tests[@]}"); fi
    limit=60; [ "$tool" = memcheck ] && limit=90
    step "compute-sanitizer $tool" "$limit" "sanitizer-$tool.log" bash -c \
      'tool=$1; shift; rc=0
       for t in "$@"; do echo "-- $t"; compute-sanitizer --tool "$tool" --error-exitcode 99 "build/$t" || rc=$?; done
       exit $rc' _ "$tool" "${tests[@]}"
    grep -E '^=========.*(Invalid|Race|hazard|error|leak)' "$RES/sanitizer-$tool.log" >> "$RES/sanitizer-errors.txt" 2>/dev/null
  done
  [ -s "$RES/sanitizer-errors.txt" ] || rm -f "$RES/sanitizer-errors.txt"
fi
fi  # SKIP_TESTS

# ---- benchmarks: ours and PyTorch's, same card, same run ---------------------------------------
# shellcheck disable=SC2086
step "bench_logprob (native)" 60 bench-native.txt build/bench/bench_logprob --device cuda ${BENCH_ARGS:-} --json "$RES/native.json"
if [ "${SKIP_TORCH:-0}" = 1 ]; then
  skip "PyTorch baseline" "SKIP_TORCH=1"
  skip "PairRM: PyTorch baseline" "SKIP_TORCH=1"
else
  step "PyTorch baseline" 120 bench-pytorch.txt python3 bench/pytorch_logprob.py --json "$RES/pytorch.json"
  # PairRM (issue 11): the PyTorch speed of the judge's model (fp16), 4 prompts x 20 pairs of 649
  # tokens at batch 1 as llm-blender runs it and 16 per forward (the judge's batch), then 20 pairs
  # at the judge's longest (1224 + 2 x 412 source and candidate tokens: 2057), 7 per forward.
  step "PairRM: PyTorch baseline" 90 bench-pytorch-pairrm.txt bash -c \
    'for mode in single batched; do
       python3 bench/pytorch_pairrm.py --device cuda --dtype fp16 --mode "$mode" --batch 16 --json "$1/pytorch-pairrm-$mode.json" || exit 1
     done' _ "$RES"
  need "PairRM: PyTorch, anchor length" 30 &&
    step "PairRM: PyTorch, anchor length" 45 bench-pytorch-pairrm-anchor.txt python3 bench/pytorch_pairrm.py --device cuda \
      --dtype fp16 --mode batched --batch 7 --prompts 1 --source 1224 --candidate 412 --json "$RES/pytorch-pairrm-anchor.json"
fi
# The native PairRM (bench_pairrm --device cuda, PAIRRM_PRECISION: fp16 by default, the PyTorch
# baseline's dtype and llm-blender's, or bf16 or fp32) on the
# same pairs: rows single, batched (16 pairs, 16384 tokens a call) and anchor (the 2057-token
# pairs, 7 a call), each the median of 3 passes with its floor (the matmul rate measured in the
# run) and peak device memory, and issue 11's anchor ratio (20.8k prompts x 20 pairs against 28
# minutes at 300 TFLOP/s; target <= 1.5x). About 10-20 s; then the ratio table against PyTorch.
PAIRRM_PRECISION=${PAIRRM_PRECISION:-fp16}
need "PairRM: native ($PAIRRM_PRECISION)" 30 &&
  step "PairRM: native ($PAIRRM_PRECISION)" 45 bench-native-pairrm.txt build/bench/bench_pairrm --device cuda \
    --precision "$PAIRRM_PRECISION" --prompts 4 --batch 16 --tokens 16384 --anchor-prompts 1 --repeat 3 --warmup 1 \
    --json "$RES/native-pairrm.json"
if [ -f "$RES/native-pairrm.json" ]; then
  mapfile -t pairrm_json < <(ls "$RES"/native-pairrm.json "$RES"/pytorch-pairrm-*.json 2>/dev/null)
  step "PairRM ratios" 20 pairrm-compare.txt node bench/compare-pairrm.mjs "${pairrm_json[@]}" --json "$RES/pairrm-compare.json"
else
  skip "PairRM ratios" "no native-pairrm.json"
fi
if [ -f "$RES/native.json" ]; then
  step "ratios" 20 compare.txt node bench/compare.mjs "$RES/native.json" "$RES/pytorch.json" --json "$RES/compare.json"
else
  skip ratios "no native.json"
fi
# ---- the model engine on CUDA (issues 8 and 9): ours (MODEL_PRECISION) and transformers', same card --
# bench_model --device cuda: the SPPO train step (llama-1b: 8 pairs x 1024, AdamW), sequence
# log-probs, the rollout (64 prompts x 128 tokens + 256 new, sampling, no EOS) and one decode
# step (batch 1 and 64; llama-8b: batch 1 and 256 over 512 cached positions), each with tokens/s,
# peak device memory and its floor (the matmul rate of the compute type and the copy bandwidth
# measured in the run).
# bench/pytorch_model_gpu.py: LlamaForCausalLM from a config, the same step and rollout, eager fp32
# (like for like) and eager bf16 autocast (the issues' baseline). Each step is sized to about a
# minute at most (1.1B: about 15 s for each native step, 30 to 60 s for PyTorch's; bench/RESULTS.md); torch.compile
# and the 7B shape run only when the budget still has room, the 7B last.
MODEL_PRECISION=${MODEL_PRECISION:-bf16}
if [ "${SKIP_MODEL_BENCH:-0}" = 1 ]; then
  skip "model benchmarks" "SKIP_MODEL_BENCH=1"
else
  # Two processes, so that the rollout's peak memory is not the train step's activations (the
  # model keeps them sized for the largest batch it has run).
  need "model: llama-1b train (native)" 30 &&
    step "model: llama-1b train (native)" 60 model-native-llama-1b-train.txt build/bench/bench_model --device cuda --precision "$MODEL_PRECISION" \
      --preset llama-1b --only train,logprobs --repeat 3 --warmup 1 --json "$RES/model-native-llama-1b-train.json"
  need "model: llama-1b rollout (native)" 30 &&
    step "model: llama-1b rollout (native)" 60 model-native-llama-1b-rollout.txt build/bench/bench_model --device cuda --precision "$MODEL_PRECISION" \
      --preset llama-1b --only rollout,decode --repeat 3 --warmup 1 --json "$RES/model-native-llama-1b-rollout.json"
  need "model: llama-8b decode (native)" 30 &&
    step "model: llama-8b decode (native)" 45 model-native-llama-8b.txt build/bench/bench_model --device cuda --precision "$MODEL_PRECISION" \
      --preset llama-8b --repeat 5 --warmup 2 --json "$RES/model-native-llama-8b.json"
  if [ "${SKIP_TORCH:-0}" = 1 ]; then
    skip "model: llama-1b (PyTorch)" "SKIP_TORCH=1"
  else
    need "model: llama-1b train (PyTorch)" 45 &&
      step "model: llama-1b train (PyTorch)" 75 model-pytorch-llama-1b-train.txt python3 bench/pytorch_model_gpu.py \
        --preset llama-1b --phases train --variants eager-fp32,eager-bf16 --repeat 3 --warmup 1 \
        --json "$RES/model-pytorch-llama-1b-train.json"
    need "model: llama-1b rollout (PyTorch)" 60 &&
      step "model: llama-1b rollout (PyTorch)" 90 model-pytorch-llama-1b-rollout.txt python3 bench/pytorch_model_gpu.py \
        --preset llama-1b --phases rollout --variants eager-bf16,eager-fp32 --rollout-repeat 1 \
        --json "$RES/model-pytorch-llama-1b-rollout.json"
  fi
  if [ "${SKIP_TORCH:-0}" != 1 ]; then
    need "model: llama-1b torch.compile" 150 &&
      step "model: llama-1b torch.compile" 140 model-pytorch-llama-1b-compile.txt python3 bench/pytorch_model_gpu.py \
        --preset llama-1b --phases train --variants compile-bf16 --compile-timeout 120 --repeat 3 --warmup 1 \
        --json "$RES/model-pytorch-llama-1b-compile.json"
  fi
  # Mistral-7B shape, RMSprop + checkpointing, 4 pairs x 1024 (8 fit in fp32 by the planner, but
  # one fp32 step of 8 pairs is about 20 s: 4 keep the row inside a minute; tokens/s compare).
  if [ "${MODEL_7B:-1}" = 0 ]; then
    skip "model: mistral-7b" "MODEL_7B=0"
  else
    need "model: mistral-7b (native)" 90 &&
      step "model: mistral-7b (native)" 80 model-native-mistral-7b.txt build/bench/bench_model --device cuda --precision "$MODEL_PRECISION" \
        --preset mistral-7b --batch 4 --repeat 1 --warmup 1 --json "$RES/model-native-mistral-7b.json"
    if [ "${SKIP_TORCH:-0}" != 1 ]; then
      need "model: mistral-7b (PyTorch)" 100 &&
        step "model: mistral-7b (PyTorch)" 90 model-pytorch-mistral-7b.txt python3 bench/pytorch_model_gpu.py \
          --preset mistral-7b --pairs 4 --phases train --variants eager-bf16,eager-fp32 --repeat 1 --warmup 1 \
          --compile-timeout 0 --json "$RES/model-pytorch-mistral-7b.json"
    fi
  fi
  mapfile -t model_json < <(ls "$RES"/model-native-*.json "$RES"/model-pytorch-*.json 2>/dev/null)
  if ls "$RES"/model-native-*.json > /dev/null 2>&1; then
    step "model ratios" 20 model-compare.txt node bench/compare-model.mjs "${model_json[@]}" --json "$RES/model-compare.json"
  else
    skip "model ratios" "no model-native-*.json"
  fi
fi
finish

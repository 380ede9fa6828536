#!/usr/bin/env bash
# The GPU machine's one check: build with the CUDA backend, run the native tests (ctest) and the
# CUDA vitest suites, run the native kernel benchmark and the PyTorch baseline on the same card,
# print the ratio table, and keep everything in a results folder ($OUT, else bench/out).
# Needs node_modules already installed (npm ci) and, for the baseline, python3 with torch.
# Environment: SPPO_CUDA_ARCHS (default: this card's), SKIP_BUILD=1, SKIP_TORCH=1, BENCH_ARGS.
set -u -o pipefail
cd "$(dirname "$0")/.."
RES="${OUT:-bench/out}/gpu-check-$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$RES"
STATUS=0
step() { echo; echo "== $1"; }
failed() { echo "!! $1 failed"; echo "$1" >> "$RES/failed.txt"; STATUS=1; }

step "machine"
{ date -u; uname -a; nvidia-smi || true; nvcc --version || true; node --version; } 2>&1 | tee "$RES/machine.txt"

if [ "${SKIP_BUILD:-0}" != 1 ]; then
  step "build (SPPO_CUDA=on)"
  if [ -z "${SPPO_CUDA_ARCHS:-}" ]; then
    cap=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d '. ')
    export SPPO_CUDA_ARCHS="${cap:-80;90}"
  fi
  echo "SPPO_CUDA_ARCHS=$SPPO_CUDA_ARCHS"
  SPPO_CUDA=on node scripts/build-native.mjs 2>&1 | tee "$RES/build.log" || failed build
  npx tsc -p tsconfig.json 2>&1 | tee -a "$RES/build.log" || failed tsc
fi
node bin/sppo-native.js info 2>&1 | tee "$RES/info.txt" || failed info

step "native tests (ctest)"
ctest --test-dir build --output-on-failure 2>&1 | tee "$RES/ctest.log" || failed ctest
ctest --test-dir build -R _cuda -V 2>&1 | grep -E "skipped|passed|failed" | tee -a "$RES/ctest.log"

step "CUDA vitest suites"
mapfile -t suites < <(ls test/*cuda*.test.ts 2>/dev/null)
if [ "${#suites[@]}" -gt 0 ]; then
  npx vitest run "${suites[@]}" 2>&1 | tee "$RES/vitest-cuda.log" || failed vitest-cuda
fi

step "native kernel benchmark"
build/bench/bench_logprob --device cuda ${BENCH_ARGS:-} --json "$RES/native.json" 2>&1 | tee "$RES/bench-native.txt" || failed bench-native

if [ "${SKIP_TORCH:-0}" != 1 ]; then
  step "PyTorch baseline"
  python3 bench/pytorch_logprob.py --json "$RES/pytorch.json" 2>&1 | tee "$RES/bench-pytorch.txt"
  [ "${PIPESTATUS[0]}" = 0 ] || echo "(PyTorch baseline unavailable: see bench-pytorch.txt)"
fi

if [ "${SKIP_TORCH:-0}" != 1 ]; then
  # PairRM (issue 11): transformers' own DebertaV2 as fixtures for test/pairrm.transformers.test.ts
  # (copied into the results; commit test/fixtures/transformers-pairrm), and the PyTorch speed of
  # the judge's model, batch 1 as llm-blender runs it and batched. sppo-native's PairRM has no CUDA
  # kernels yet, so there is no native GPU figure to set beside it.
  step "PairRM: transformers fixtures and PyTorch baseline"
  { python3 scripts/make-transformers-fixtures.py --only pairrm && cp -r test/fixtures/transformers-pairrm "$RES/" \
      && npx vitest run test/pairrm.transformers.test.ts; } 2>&1 | tee "$RES/pairrm-fixtures.txt"
  [ "${PIPESTATUS[0]}" = 0 ] || failed pairrm-fixtures
  for mode in single batched; do
    python3 bench/pytorch_pairrm.py --device cuda --dtype fp16 --mode "$mode" --json "$RES/pytorch-pairrm-$mode.json" \
      2>&1 | tee -a "$RES/bench-pytorch-pairrm.txt"
  done
fi

step "ratios"
if [ -f "$RES/native.json" ]; then
  node bench/compare.mjs "$RES/native.json" "$RES/pytorch.json" --json "$RES/compare.json" 2>&1 | tee "$RES/compare.txt"
fi

echo
if [ "$STATUS" = 0 ]; then echo "gpu-check: all steps passed; results in $RES"; else echo "gpu-check: FAILED steps: $(tr '\n' ' ' < "$RES/failed.txt"); results in $RES"; fi
exit "$STATUS"

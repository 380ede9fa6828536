#!/usr/bin/env bash
# Registers, spills, stack and shared memory of every CUDA kernel of the project, as ptxas reports
# them (nvcc -Xptxas -v), one line per kernel. Compiles each native/**/*.cu for one architecture
# into /dev/null: nothing in build/ changes, and no GPU is needed.
#   scripts/ptxas-report.sh [--arch 90] [--all] [--fail-on-spill] [file.cu ...]
#   --arch N          the SM architecture (default: 90, Hopper)
#   --all             also list library kernels (CUB's sorts) compiled into our files
#   --fail-on-spill   exit 1 when a listed kernel spills registers to local memory
# Kernel names are demangled and shortened (sppo::cuda::, anonymous namespaces, argument lists).
set -euo pipefail
cd "$(dirname "$0")/.."
arch=90
all=0
fail_on_spill=0
files=()
while [ $# -gt 0 ]; do
  case "$1" in
    --arch) arch="$2"; shift 2 ;;
    --all) all=1; shift ;;
    --fail-on-spill) fail_on_spill=1; shift ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) files+=("$1"); shift ;;
  esac
done
[ ${#files[@]} -gt 0 ] || mapfile -t files < <(find native -name '*.cu' | sort)
command -v nvcc >/dev/null || { echo "ptxas-report: nvcc is not on PATH" >&2; exit 1; }
demangle=$(command -v cu++filt || command -v c++filt || echo cat)

# The flags the CMake build gives the CUDA sources (CMakeLists.txt), for one real architecture.
flags=(-arch=sm_"$arch" -std=c++17 -O3 --expt-relaxed-constexpr -DSPPO_WITH_CUDA=1 -Inative -Xptxas -v)

printf '%-15s %-64s %5s %7s %7s %6s %6s\n' file kernel regs spill_st spill_ld stack smem
spilled=0
for f in "${files[@]}"; do
  log=$(nvcc "${flags[@]}" -c "$f" -o /dev/null 2>&1) || { echo "$log" >&2; echo "ptxas-report: $f does not compile" >&2; exit 1; }
  # ptxas prints, per entry function: "Function properties for NAME", then
  # "N bytes stack frame, N bytes spill stores, N bytes spill loads", then "Used N registers, ...".
  rows=$(awk '
    /Compiling entry function/ { match($0, /function '\''[^'\'']+'\''/); name = substr($0, RSTART + 10, RLENGTH - 11); next }
    /bytes stack frame/ { stack = $1; sst = $5; sld = $9; next }
    /Used [0-9]+ registers/ {
      regs = $0; sub(/.*Used /, "", regs); sub(/ registers.*/, "", regs)
      smem = 0; if (match($0, /[0-9]+ bytes smem/)) { smem = substr($0, RSTART, RLENGTH); sub(/ bytes smem/, "", smem) }
      if (name != "") print name "\t" regs "\t" sst "\t" sld "\t" stack "\t" smem
      name = ""
    }' <<<"$log")
  [ -n "$rows" ] || continue
  while IFS=$'\t' read -r mangled regs sst sld stack smem; do
    name=$(echo "$mangled" | $demangle | sed -E 's/^void //')  # templates demangle with their return type
    if [ "$all" = 0 ] && [[ "$name" != sppo::* ]]; then continue; fi
    short=$(echo "$name" | sed -E 's/sppo::cuda:://g; s/\(anonymous namespace\):://g; s/sppo:://g; s/\(.*\)$//; s/optim_math:://g')
    printf '%-15s %-64s %5s %7s %7s %6s %6s\n' "$(basename "$f")" "${short:0:64}" "$regs" "$sst" "$sld" "$stack" "$smem"
    if [ "$sst" != 0 ] || [ "$sld" != 0 ]; then spilled=$((spilled + 1)); fi
  done <<<"$rows"
done
echo "sm_$arch: $spilled kernel(s) spill registers"
if [ "$fail_on_spill" = 1 ] && [ "$spilled" -gt 0 ]; then exit 1; fi

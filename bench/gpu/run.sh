#!/usr/bin/env bash
# On the GPU machine: runs the [cuda] tests from the binaries packed by bench/gpu/pack.sh and
# prints a short table last. Logs go to $OUT (when set) for fetching.
set -uo pipefail
cd "$(dirname "$0")/../.."
export LD_LIBRARY_PATH="$PWD/.carry/lib:${LD_LIBRARY_PATH:-}"
out="${OUT:-/tmp/gpu-out}"
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu.txt"
declare -A status
run() {  # name, command...
  local name=$1; shift
  echo "=== $name: $*"
  if "$@" >"$out/$name.log" 2>&1; then status[$name]=pass; else status[$name]="FAIL($?)"; fi
  tail -n 25 "$out/$name.log"
}
run runtime_cuda .carry/bin/test_runtime "[cuda]" -s
for t in norm activation embedding rope gemm sampler attention; do
  run "kernels_$t" .carry/bin/test_kernels "[cuda][$t]"
done
run kernels_timing .carry/bin/test_kernels "[cuda-timing]"
echo
echo "| test | result |"
echo "|---|---|"
for k in $(echo "${!status[@]}" | tr ' ' '\n' | sort); do echo "| $k | ${status[$k]} |"; done

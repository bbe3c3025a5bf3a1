#!/usr/bin/env bash
# On the GPU machine: runs the [cuda] tests from the binaries packed by bench/gpu/pack.sh and
# prints a short table last. Logs go to $OUT (when set) for fetching.
set -uo pipefail
cd "$(dirname "$0")/../.."
for packed in .carry/lib/*.xz; do [ -f "$packed" ] && xz -d -k -f "$packed"; done
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
# The CUDA worker against the CPU model needs the bundled GGUF: $VLLM_CPP_MODEL.
if [ -f "${VLLM_CPP_MODEL:-}" ]; then
  run engine_cuda .carry/bin/test_engine "[cuda]"
  run generate_cuda .carry/bin/vllm-cpp bench latency --model "$VLLM_CPP_MODEL" --device cuda \
    --input-len 128 --output-len 64
  run throughput_cuda .carry/bin/vllm-cpp bench throughput --model "$VLLM_CPP_MODEL" \
    --device cuda --num-prompts 256 --input-len 128 --output-len 128
fi
echo
echo "| test | result |"
echo "|---|---|"
for k in $(echo "${!status[@]}" | tr ' ' '\n' | sort); do echo "| $k | ${status[$k]} |"; done

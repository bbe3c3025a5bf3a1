#!/usr/bin/env bash
# On the GPU machine: runs the [cuda] tests, the transformers comparison and the benchmarks from
# the binaries packed by bench/gpu/pack.sh, and prints a short table last. Logs go to $OUT.
#
#   bash bench/gpu/run.sh            # everything that needs no bundled model:
#                                    #   [cuda] runtime + kernel tests, transformers comparison
#                                    #   on random Llama/Qwen2 models, Llama-3-8B-shaped benchmark
#                                    #   beside transformers
#   bash bench/gpu/run.sh tp         # on 2 GPUs: NCCL tensor parallel 2 = 1 on the transformers
#                                    #   models and a Llama-3-8B-shaped dummy model, and the 8B
#                                    #   benchmark rows for TP=1 and TP=2
#   VLLM_CPP_MODEL=... bash bench/gpu/run.sh model
#                                    # with the bundled SmolLM2 GGUF: the CUDA worker/engine
#                                    # tests, the OpenAI pytest suite against a GPU server, its
#                                    # offline benchmarks, and the CPU serving-core acceptance
#                                    # tests at full size pinned to 2 cores beside them
# Knobs: NUM_REQUESTS (8B throughput, default 1000), SKIP_8B=1, SKIP_HF=1.
set -uo pipefail
cd "$(dirname "$0")/../.."
stage="${1:-gpu}"
carry="${CARRY:-.carry}"
for packed in "$carry"/lib/*.xz "$carry"/bin/*.xz; do [ -f "$packed" ] && xz -d -k -f "$packed"; done
chmod +x "$carry"/bin/* 2>/dev/null
export LD_LIBRARY_PATH="$PWD/$carry/lib:${LD_LIBRARY_PATH:-}"
export VLLM_CPP_SOURCE_DIR="$PWD"
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
bin="$PWD/$carry/bin"
# NCCL: the system's, else the one PyTorch's wheels bring.
if ldd "$bin/test_engine" | grep -q "libnccl.so.2 => not found"; then
  nccl_lib=$(python3 -c "import nvidia.nccl, os; print(os.path.join(list(nvidia.nccl.__path__)[0], 'lib'))" 2>/dev/null)
  export LD_LIBRARY_PATH="$LD_LIBRARY_PATH:$nccl_lib"
fi
out="${OUT:-/tmp/gpu-out}"
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu.txt"
declare -A status
rows=()
run() {  # name, command...
  local name=$1; shift
  echo "=== $name: $*"
  local start=$SECONDS
  if "$@" >"$out/$name.log" 2>&1; then status[$name]=pass; else status[$name]="FAIL($?)"; fi
  status[$name]+=" ($((SECONDS - start)) s)"
  tail -n 15 "$out/$name.log"
}
row() { rows+=("$*"); }

# The Llama-3-8B-shaped dummy model on our engine with TP=$1: single-request decode time per
# output token ((t(256 out) - t(1 out)) / 255) and offline throughput of $n requests 512 -> 256.
# Sets ours_decode and ours_tput.
ours_8b() {
  local tp=$1 common=(--model /tmp/llama8b --load-format dummy --device cuda --tensor-parallel-size "$1")
  run tp${tp}_8b_latency_256 "$bin/vllm-cpp" bench latency "${common[@]}" --input-len 512 \
    --output-len 256 --num-iters 3 --num-iters-warmup 1
  run tp${tp}_8b_latency_1 "$bin/vllm-cpp" bench latency "${common[@]}" --input-len 512 \
    --output-len 1 --num-iters 5 --num-iters-warmup 1
  run tp${tp}_8b_throughput "$bin/vllm-cpp" bench throughput "${common[@]}" --num-prompts "$n" \
    --input-len 512 --output-len 256
  local t256 t1
  t256=$(awk -F'|' '/^\| *[0-9]/ {print $2; exit}' "$out/tp${tp}_8b_latency_256.log" | tr -d ' ')
  t1=$(awk -F'|' '/^\| *[0-9]/ {print $2; exit}' "$out/tp${tp}_8b_latency_1.log" | tr -d ' ')
  ours_decode=$(awk -v a="$t256" -v b="$t1" 'BEGIN {if (a && b) printf "%.2f", (a - b) / 255 * 1000}')
  ours_tput=$(awk -F'|' '/^\| *[0-9]/ {printf "%s req/s, %s output tok/s", $2, $4; exit}' \
    "$out/tp${tp}_8b_throughput.log" | tr -s ' ')
}

if [ "$stage" = gpu ]; then
  run runtime_cuda "$bin/test_runtime" "[cuda]"
  run kernels "$bin/test_kernels" "[cuda]"
  if [ -z "${SKIP_HF:-}" ]; then
    run hf_reference python3 bench/gpu/hf_compare.py /tmp/hf
    VLLM_CPP_HF_DIR=/tmp/hf run hf_compare "$bin/test_engine" "[hf]" -s
    grep -h "transformers bf16" "$out/hf_reference.log"
    grep -h "last-position logits" -A3 "$out/hf_compare.log" | tr -s ' \n' ' ' | sed 's/$/\n/'
  fi
  if [ -z "${SKIP_8B:-}" ]; then
    python3 bench/gpu/bench_8b.py config /tmp/llama8b
    n="${NUM_REQUESTS:-1000}"
    ours_8b 1
    NUM_REQUESTS="$n" run hf_8b python3 bench/gpu/bench_8b.py hf "$out/hf_8b.json"
    hf=$(python3 -c "import json; d=json.load(open('$out/hf_8b.json')); print('%.2f|%.2f req/s, %.1f output tok/s (batches of %d)' % (d['decode_ms_per_token'], d['requests_per_s'], d['output_tok_per_s'], d['batch']))" 2>/dev/null)
    row "| Llama-3-8B shape, bf16: decode ms/token (1 request, 512 in) | ${ours_decode:-?} | ${hf%%|*} |"
    row "| Llama-3-8B shape: $n requests 512 -> 256 | ${ours_tput:-?} | ${hf#*|} |"
  fi
fi

if [ "$stage" = tp ]; then
  [ -f /tmp/hf/llama-trained/reference.json ] || run hf_reference python3 bench/gpu/hf_compare.py /tmp/hf
  python3 bench/gpu/bench_8b.py config /tmp/llama8b
  if [ -z "${SKIP_TP_TEST:-}" ]; then
    VLLM_CPP_HF_DIR=/tmp/hf VLLM_CPP_TP_DUMMY_MODEL=/tmp/llama8b run tp_equal "$bin/test_engine" "[tp]"
    grep -h "TP=2 = TP=1" "$out/tp_equal.log" | sed 's/^ *//'
  fi
  if [ -z "${SKIP_8B:-}" ]; then
    n="${NUM_REQUESTS:-1000}"
    for tp in 1 2; do
      ours_8b $tp
      row "| Llama-3-8B shape, bf16, TP=$tp: decode ms/token (1 request, 512 in) | ${ours_decode:-?} | |"
      row "| Llama-3-8B shape, TP=$tp: $n requests 512 -> 256 | ${ours_tput:-?} | |"
    done
  fi
fi

if [ "$stage" = model ]; then
  if [ ! -f "${VLLM_CPP_MODEL:-}" ]; then echo "model stage: set VLLM_CPP_MODEL"; exit 2; fi
  # The CPU serving-core acceptance at full size, on 2 pinned cores, beside the GPU work.
  cpu_pid=""
  [ -n "${SKIP_CPU:-}" ] || (VLLM_CPP_FULL_ACCEPTANCE=1 VLLM_CPP_NUM_THREADS=2 timeout "${CPU_TIMEOUT:-560}" taskset -c 0,1 \
     "$bin/test_engine" "${CPU_TESTS:-batch invariance*,preemption*,chunked prefill*}" \
     >"$out/cpu_full_acceptance.log" 2>&1; echo "rc=$?" >>"$out/cpu_full_acceptance.log") &
  [ -n "${SKIP_CPU:-}" ] || cpu_pid=$!
  run engine_cuda taskset -c 2-15 timeout 200 "$bin/test_engine" "[cuda]"
  if [ -z "${SKIP_HF:-}" ]; then
    run hf_reference taskset -c 2-15 python3 bench/gpu/hf_compare.py /tmp/hf
    VLLM_CPP_HF_DIR=/tmp/hf run hf_compare taskset -c 2-15 "$bin/test_engine" "[hf]"
    grep -h "transformers bf16" "$out/hf_reference.log"
    grep -h "last-position logits" -A3 "$out/hf_compare.log" | tr -s ' \n' ' ' | sed 's/$/\n/'
  fi
  mkdir -p /tmp/vbuild/apps && ln -sf "$bin/vllm-cpp" /tmp/vbuild/apps/vllm-cpp
  if [ -d .whl ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
  fi
  VLLM_CPP_BUILD=/tmp/vbuild VLLM_CPP_SERVE_ARGS="--device cuda --gpu-memory-utilization 0.3" \
    run pytest_gpu_server taskset -c 2-15 timeout 240 python3 -m pytest -q tests/python \
      -p no:cacheprovider
  run smollm2_latency taskset -c 2-15 "$bin/vllm-cpp" bench latency --model "$VLLM_CPP_MODEL" \
    --device cuda --input-len 128 --output-len 64
  run smollm2_throughput taskset -c 2-15 "$bin/vllm-cpp" bench throughput \
    --model "$VLLM_CPP_MODEL" --device cuda --num-prompts 1000 --input-len 128 --output-len 128
  if [ -n "$cpu_pid" ]; then
    wait "$cpu_pid"
    grep -q "rc=0" "$out/cpu_full_acceptance.log" && status[cpu_full_acceptance]=pass ||
      status[cpu_full_acceptance]=FAIL
    grep -h -A3 "warning:" "$out/cpu_full_acceptance.log" | tr -s ' \n' ' ' | sed 's/$/\n/'
  fi
  grep -h "worst last-position\|identical" -A1 "$out/engine_cuda.log" | head -8
fi

echo
echo "| test | result |"
echo "|---|---|"
for k in $(echo "${!status[@]}" | tr ' ' '\n' | sort); do echo "| $k | ${status[$k]} |"; done
if [ ${#rows[@]} -gt 0 ]; then
  echo
  echo "| benchmark | vllm-cpp | transformers |"
  echo "|---|---|---|"
  printf '%s\n' "${rows[@]}"
fi

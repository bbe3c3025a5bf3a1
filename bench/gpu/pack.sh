#!/usr/bin/env bash
# Builds the GPU-facing binaries here (Debian, CUDA 13, sm_90) and packs them with the Debian
# shared libraries they need into .carry/ (git-ignored) for the GPU machine, which has CUDA
# but none of our Debian libraries. Then: device run with carry [".carry"] and
# `bash bench/gpu/run.sh`.
set -euo pipefail
cd "$(dirname "$0")/../.."
targets=(test_runtime test_kernels test_engine test_rpc vllm-cpp)
cmake -S . -B build -G Ninja >/dev/null
cmake --build build -j "$(nproc)" --target "${targets[@]}"
rm -rf .carry && mkdir -p .carry/bin .carry/lib
cp build/tests/test_runtime build/tests/test_kernels build/tests/test_engine build/tests/test_rpc build/apps/vllm-cpp .carry/bin/
# Every non-CUDA, non-libc library the binaries load (the GPU machine brings CUDA and glibc).
for bin in .carry/bin/*; do
  ldd "$bin" | awk '/=> \// {print $3}'
done | sort -u | grep -vE '/(libc|libm|libpthread|libdl|librt|ld-linux|libcuda|libcublas|libcublasLt|libcudart|libnccl)[.-]' |
  grep -vE '/(libstdc\+\+|libgcc_s)[.]' | while read -r lib; do cp -L "$lib" .carry/lib/; done
strip .carry/bin/*  # what travels to the GPU machine is limited to 64 MiB
xz -T2 -6 .carry/lib/libopenblas.so.0 .carry/bin/*  # ~4x smaller; run.sh unpacks them
du -sh .carry

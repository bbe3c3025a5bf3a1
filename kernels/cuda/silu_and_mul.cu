#include "kernels/cuda/device_types.cuh"
#include "kernels/cuda/silu_and_mul.hpp"

namespace vllm::cuda {
namespace {

constexpr int kSiluThreads = 256;

template <typename T>
__global__ void silu_and_mul_kernel(T* out, const T* gate_up, int64_t intermediate) {
  const int64_t token = blockIdx.x;
  const int64_t i = static_cast<int64_t>(blockIdx.y) * blockDim.x + threadIdx.x;
  if (i >= intermediate) return;
  const float gate = to_float(gate_up[token * 2 * intermediate + i]);
  const float up = to_float(gate_up[token * 2 * intermediate + intermediate + i]);
  const float silu = to_float(from_float<T>(gate / (1.0f + expf(-gate))));
  out[token * intermediate + i] = from_float<T>(silu * up);
}

}  // namespace

void silu_and_mul(ActivationType type, void* out, const void* gate_up, int64_t num_tokens,
                  int64_t intermediate, cudaStream_t stream) {
  require(num_tokens >= 0 && num_tokens <= 0x7fffffff,
          "silu_and_mul: num_tokens must be in [0, 2^31), got " + std::to_string(num_tokens));
  require(intermediate > 0 && intermediate <= 65535LL * kSiluThreads,
          "silu_and_mul: intermediate size out of range: " + std::to_string(intermediate));
  if (num_tokens == 0) return;
  const dim3 grid(static_cast<unsigned>(num_tokens),
                  static_cast<unsigned>((intermediate + kSiluThreads - 1) / kSiluThreads));
  dispatch_activation(type, [&](auto tag) {
    using T = decltype(tag);
    VLLM_LAUNCH(grid, kSiluThreads, 0, stream, silu_and_mul_kernel<T>)
    (static_cast<T*>(out), static_cast<const T*>(gate_up), intermediate);
  });
  check_launch("silu_and_mul_kernel");
}

}  // namespace vllm::cuda

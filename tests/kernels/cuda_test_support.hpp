// Shared helpers of the [cuda] kernel tests: device detection (tests skip without a GPU),
// RAII device buffers, host bf16/fp16 conversions, NaN poisoning and the relative-error metric.
#pragma once

#if VLLM_HAVE_CUDA

#include <cuda_runtime_api.h>

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "kernels/cuda/activation_type.hpp"
#include "kernels/cuda/cuda_check.hpp"

namespace vllm::test {

inline bool cuda_device_available() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no device" error
    return false;
  }
  return count > 0;
}

#define VLLM_SKIP_WITHOUT_CUDA_DEVICE()           \
  do {                                            \
    if (!::vllm::test::cuda_device_available()) { \
      WARN("skipped: no CUDA device");            \
      return;                                     \
    }                                             \
  } while (0)

// Device memory of `count` elements of T, freed on destruction.
template <typename T>
class DeviceBuffer {
 public:
  explicit DeviceBuffer(size_t count) : count_(count) {
    void* raw = nullptr;
    if (count_ > 0) cuda::check_cuda(cudaMalloc(&raw, count_ * sizeof(T)), "cudaMalloc");
    data_ = static_cast<T*>(raw);
  }
  explicit DeviceBuffer(const std::vector<T>& host) : DeviceBuffer(host.size()) { upload(host); }
  ~DeviceBuffer() {
    if (data_) cudaFree(data_);
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  T* get() const { return data_; }
  size_t size() const { return count_; }
  void upload(const std::vector<T>& host) {
    REQUIRE(host.size() == count_);
    if (count_ > 0) {
      cuda::check_cuda(cudaMemcpy(data_, host.data(), count_ * sizeof(T), cudaMemcpyHostToDevice),
                       "cudaMemcpy H2D");
    }
  }
  std::vector<T> download() const {
    std::vector<T> host(count_);
    if (count_ > 0) {
      cuda::check_cuda(cudaMemcpy(host.data(), data_, count_ * sizeof(T), cudaMemcpyDeviceToHost),
                       "cudaMemcpy D2H");
    }
    return host;
  }
  // All bytes 0xFF: NaN for bf16, fp16 and fp32; -1 for signed integers.
  void poison() {
    if (count_ > 0) cuda::check_cuda(cudaMemset(data_, 0xFF, count_ * sizeof(T)), "cudaMemset");
  }

 private:
  T* data_ = nullptr;
  size_t count_ = 0;
};

inline void synchronize() {
  cuda::check_cuda(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
}

// 16-bit activations on the host, stored as raw bits.
inline uint16_t float_to_bits(float value, cuda::ActivationType type) {
  if (type == cuda::ActivationType::kFp16) {
    const _Float16 half = static_cast<_Float16>(value);
    uint16_t bits;
    std::memcpy(&bits, &half, 2);
    return bits;
  }
  uint32_t bits;
  std::memcpy(&bits, &value, 4);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return 0x7fc0;  // NaN
  bits += 0x7fffu + ((bits >> 16) & 1u);                  // round to nearest even
  return static_cast<uint16_t>(bits >> 16);
}

inline float bits_to_float(uint16_t bits, cuda::ActivationType type) {
  if (type == cuda::ActivationType::kFp16) {
    _Float16 half;
    std::memcpy(&half, &bits, 2);
    return static_cast<float>(half);
  }
  const uint32_t wide = static_cast<uint32_t>(bits) << 16;
  float value;
  std::memcpy(&value, &wide, 4);
  return value;
}

inline float round_to(float value, cuda::ActivationType type) {
  return bits_to_float(float_to_bits(value, type), type);
}

inline bool is_poison(uint16_t bits) {
  return bits == 0xFFFF;
}

// Random activations already rounded to the type, returned as bits and as the rounded floats.
struct RandomActivations {
  std::vector<uint16_t> bits;
  std::vector<float> values;
};

inline RandomActivations random_activations(size_t count, cuda::ActivationType type,
                                            std::mt19937& rng, float stddev = 1.0f) {
  std::normal_distribution<float> normal(0.0f, stddev);
  RandomActivations out;
  out.bits.resize(count);
  out.values.resize(count);
  for (size_t i = 0; i < count; ++i) {
    out.bits[i] = float_to_bits(normal(rng), type);
    out.values[i] = bits_to_float(out.bits[i], type);
  }
  return out;
}

// ||out - ref|| / ||ref||; a NaN anywhere (an element never written) makes it NaN.
inline double relative_error(const std::vector<float>& out, const std::vector<double>& ref) {
  REQUIRE(out.size() == ref.size());
  double diff = 0.0, norm = 0.0;
  for (size_t i = 0; i < out.size(); ++i) {
    const double d = static_cast<double>(out[i]) - ref[i];
    diff += d * d;
    norm += ref[i] * ref[i];
  }
  return std::sqrt(diff) / std::max(std::sqrt(norm), 1e-30);
}

inline std::vector<float> bits_to_floats(const std::vector<uint16_t>& bits,
                                         cuda::ActivationType type) {
  std::vector<float> out(bits.size());
  for (size_t i = 0; i < bits.size(); ++i) out[i] = bits_to_float(bits[i], type);
  return out;
}

inline size_t count_poison(const std::vector<uint16_t>& bits) {
  size_t n = 0;
  for (uint16_t b : bits) n += is_poison(b) ? 1 : 0;
  return n;
}

}  // namespace vllm::test

#endif  // VLLM_HAVE_CUDA

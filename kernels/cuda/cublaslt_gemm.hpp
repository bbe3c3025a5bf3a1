// The linear layers' GEMM through cuBLASLt: y[T, out] = x[T, in] · W[out, in]^T (+ bias[out]),
// bf16 or fp16 in and out, fp32 accumulation. Batch invariant: a shape's algorithm is fixed
// (no split-K), so a row's result does not depend on how many rows the call has. One CublasLtGemm
// per device (or stream user) holds the cuBLASLt handle, a workspace and the chosen algorithm per
// shape, reused across calls. Not thread-safe: use one per worker thread.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <tuple>

#include "kernels/cuda/activation_type.hpp"

namespace vllm::cuda {

// Less common forms of a GEMM call (the defaults give the plain one).
struct GemmOptions {
  int64_t x_stride = 0;       // elements between rows of x (0: in_features): a column slice of x
  int64_t weight_stride = 0;  // elements between rows of W (0: in_features): a column slice of W
  bool accumulate = false;    // y += x · W^T instead of y = (fp32 output only)
  // Choose the algorithm as for a GEMM with this many outputs (0: out_features). A kernel with
  // no split-K computes each output element the same way whatever the number of outputs, so
  // GEMMs of one input size but different output sizes (a tensor-parallel rank's column slice
  // and the whole matrix) give identical elements when they share the algorithm.
  int64_t algo_out_features = 0;
};

class CublasLtGemm {
 public:
  // Creates the handle and allocates `workspace_bytes` of device memory on the current device.
  explicit CublasLtGemm(size_t workspace_bytes = size_t{32} << 20);
  ~CublasLtGemm();
  CublasLtGemm(const CublasLtGemm&) = delete;
  CublasLtGemm& operator=(const CublasLtGemm&) = delete;

  // y = x · W^T (+ bias). Row-major x [num_tokens, in_features], W [out_features, in_features],
  // y [num_tokens, out_features]; bias [out_features] or null. Enqueued on `stream`.
  void linear(ActivationType type, void* y, const void* x, const void* weight, const void* bias,
              int64_t num_tokens, int64_t in_features, int64_t out_features, cudaStream_t stream);
  // The same with y in fp32 (x and W in `type`, no bias): the LM head, whose logits must not be
  // rounded to bf16 (a bf16 ulp near a logit of 20 is 0.125, enough to flip greedy choices).
  void linear_f32_out(ActivationType type, float* y, const void* x, const void* weight,
                      int64_t num_tokens, int64_t in_features, int64_t out_features,
                      cudaStream_t stream);
  // Both with GemmOptions.
  void linear(ActivationType type, void* y, const void* x, const void* weight, const void* bias,
              int64_t num_tokens, int64_t in_features, int64_t out_features, cudaStream_t stream,
              const GemmOptions& options);
  void linear_f32_out(ActivationType type, float* y, const void* x, const void* weight,
                      int64_t num_tokens, int64_t in_features, int64_t out_features,
                      cudaStream_t stream, const GemmOptions& options);

 private:
  struct Plan;  // the descriptors and the algorithm chosen for one shape
  using ShapeKey =
      std::tuple<int, int64_t, int64_t, int64_t, bool, uint32_t, bool, int64_t, int64_t, int64_t>;
  const Plan& plan_for(ActivationType type, int64_t num_tokens, int64_t in_features,
                       int64_t out_features, bool has_bias, uint32_t alignment_bytes, bool f32_out,
                       const GemmOptions& options);
  void run(ActivationType type, void* y, const void* x, const void* weight, const void* bias,
           int64_t num_tokens, int64_t in_features, int64_t out_features, bool f32_out,
           cudaStream_t stream, const GemmOptions& options);

  // The algorithm of a GEMM shape, chosen for kAlgoReferenceRows rows and used for every row
  // count (batch invariance); an opaque cublasLtMatmulAlgo_t.
  using AlgoKey = std::tuple<int, int64_t, int64_t, bool, uint32_t, bool>;
  static constexpr uint64_t kAlgoReferenceRows = 128;
  std::shared_ptr<void> choose_algo(const Plan& like, ActivationType type, int64_t in_features,
                                    int64_t out_features, uint32_t alignment_bytes, bool f32_out,
                                    bool has_bias);

  void* handle_ = nullptr;  // cublasLtHandle_t
  void* workspace_ = nullptr;
  size_t workspace_bytes_ = 0;
  std::map<ShapeKey, Plan*> plans_;
  std::map<AlgoKey, std::shared_ptr<void>> algos_;
};

}  // namespace vllm::cuda

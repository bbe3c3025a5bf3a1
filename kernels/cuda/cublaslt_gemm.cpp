#include "kernels/cuda/cublaslt_gemm.hpp"

#include <cublasLt.h>

#include <algorithm>
#include <string>

#include "kernels/cuda/cuda_check.hpp"

namespace vllm::cuda {
namespace {

void check_cublas(cublasStatus_t status, const char* what) {
  if (status != CUBLAS_STATUS_SUCCESS) {
    throw CudaError(std::string(what) + " failed: " + cublasLtGetStatusName(status) + " (" +
                    cublasLtGetStatusString(status) + ")");
  }
}

cublasLtHandle_t as_handle(void* handle) {
  return static_cast<cublasLtHandle_t>(handle);
}

// The largest power of two (at most 256) dividing the address: cuBLASLt picks kernels by the
// operands' alignment, so a plan is chosen for the alignment actually passed.
uint32_t pointer_alignment(const void* pointer) {
  const auto address = reinterpret_cast<uintptr_t>(pointer);
  if (address == 0) return 256;
  return static_cast<uint32_t>(std::min<uintptr_t>(256, address & (~address + 1)));
}

}  // namespace

// Column-major view used with cuBLASLt: C[out, T] = op(A)[out, in] · B[in, T] with
// A = W viewed as [in, out] (ld in) transposed, B = x viewed as [in, T] (ld in), C = y (ld out).
struct CublasLtGemm::Plan {
  cublasLtMatmulDesc_t operation = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
  cublasLtMatmulAlgo_t algo{};

  ~Plan() {
    if (c) cublasLtMatrixLayoutDestroy(c);
    if (b) cublasLtMatrixLayoutDestroy(b);
    if (a) cublasLtMatrixLayoutDestroy(a);
    if (operation) cublasLtMatmulDescDestroy(operation);
  }
};

CublasLtGemm::CublasLtGemm(size_t workspace_bytes) : workspace_bytes_(workspace_bytes) {
  cublasLtHandle_t handle = nullptr;
  check_cublas(cublasLtCreate(&handle), "cublasLtCreate");
  handle_ = handle;
  if (workspace_bytes_ > 0) {
    const cudaError_t status = cudaMalloc(&workspace_, workspace_bytes_);
    if (status != cudaSuccess) {
      cublasLtDestroy(handle);
      check_cuda(status, "cudaMalloc(cuBLASLt workspace)");
    }
  }
}

CublasLtGemm::~CublasLtGemm() {
  for (auto& [key, plan] : plans_) delete plan;
  if (workspace_) cudaFree(workspace_);
  if (handle_) cublasLtDestroy(as_handle(handle_));
}

const CublasLtGemm::Plan& CublasLtGemm::plan_for(ActivationType type, int64_t num_tokens,
                                                 int64_t in_features, int64_t out_features,
                                                 bool has_bias, uint32_t alignment_bytes,
                                                 bool f32_out, const GemmOptions& options) {
  const int64_t x_stride = options.x_stride > 0 ? options.x_stride : in_features;
  const int64_t weight_stride = options.weight_stride > 0 ? options.weight_stride : in_features;
  const int64_t algo_out = options.algo_out_features > 0 ? options.algo_out_features : out_features;
  const ShapeKey key{static_cast<int>(type), num_tokens, in_features, out_features,  has_bias,
                     alignment_bytes,        f32_out,    x_stride,    weight_stride, algo_out};
  if (auto it = plans_.find(key); it != plans_.end()) return *it->second;

  auto* plan = new Plan();
  try {
    const cudaDataType_t data_type = type == ActivationType::kBf16 ? CUDA_R_16BF : CUDA_R_16F;
    check_cublas(cublasLtMatmulDescCreate(&plan->operation, CUBLAS_COMPUTE_32F, CUDA_R_32F),
                 "cublasLtMatmulDescCreate");
    const cublasOperation_t transpose = CUBLAS_OP_T, no_transpose = CUBLAS_OP_N;
    check_cublas(cublasLtMatmulDescSetAttribute(plan->operation, CUBLASLT_MATMUL_DESC_TRANSA,
                                                &transpose, sizeof(transpose)),
                 "cublasLtMatmulDescSetAttribute(TRANSA)");
    check_cublas(cublasLtMatmulDescSetAttribute(plan->operation, CUBLASLT_MATMUL_DESC_TRANSB,
                                                &no_transpose, sizeof(no_transpose)),
                 "cublasLtMatmulDescSetAttribute(TRANSB)");
    if (has_bias) {
      const cublasLtEpilogue_t epilogue = CUBLASLT_EPILOGUE_BIAS;
      check_cublas(cublasLtMatmulDescSetAttribute(plan->operation, CUBLASLT_MATMUL_DESC_EPILOGUE,
                                                  &epilogue, sizeof(epilogue)),
                   "cublasLtMatmulDescSetAttribute(EPILOGUE)");
      check_cublas(
          cublasLtMatmulDescSetAttribute(plan->operation, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE,
                                         &data_type, sizeof(data_type)),
          "cublasLtMatmulDescSetAttribute(BIAS_DATA_TYPE)");
    }
    check_cublas(cublasLtMatrixLayoutCreate(&plan->a, data_type, static_cast<uint64_t>(in_features),
                                            static_cast<uint64_t>(out_features), weight_stride),
                 "cublasLtMatrixLayoutCreate(A)");
    check_cublas(cublasLtMatrixLayoutCreate(&plan->b, data_type, static_cast<uint64_t>(in_features),
                                            static_cast<uint64_t>(num_tokens), x_stride),
                 "cublasLtMatrixLayoutCreate(B)");
    check_cublas(cublasLtMatrixLayoutCreate(&plan->c, f32_out ? CUDA_R_32F : data_type,
                                            static_cast<uint64_t>(out_features),
                                            static_cast<uint64_t>(num_tokens), out_features),
                 "cublasLtMatrixLayoutCreate(C)");

    // One algorithm per (type, in, out, bias, alignment, output type), chosen once for a fixed
    // row count and with no split-K reduction: every row's dot products then run in the same
    // order whatever the batch holds, so a request gets the same logits alone or batched.
    const AlgoKey algo_key{static_cast<int>(type), in_features, algo_out, has_bias,
                           alignment_bytes,        f32_out};
    auto algo = algos_.find(algo_key);
    if (algo == algos_.end()) {
      algo = algos_
                 .emplace(algo_key, choose_algo(*plan, type, in_features, algo_out, alignment_bytes,
                                                f32_out, has_bias))
                 .first;
    }
    cublasLtMatmulHeuristicResult_t checked{};
    const auto* chosen = static_cast<const cublasLtMatmulAlgo_t*>(algo->second.get());
    const cublasStatus_t status = cublasLtMatmulAlgoCheck(
        as_handle(handle_), plan->operation, plan->a, plan->b, plan->c, plan->c, chosen, &checked);
    if (status != CUBLAS_STATUS_SUCCESS || checked.workspaceSize > workspace_bytes_) {
      throw CudaError("cuBLASLt: the batch-invariant algorithm for a " +
                      std::string(activation_type_name(type)) + " GEMM of " +
                      std::to_string(in_features) + " -> " + std::to_string(out_features) +
                      " does not run with " + std::to_string(num_tokens) + " rows (" +
                      cublasLtGetStatusName(status) + ")");
    }
    cublasLtMatmulHeuristicResult_t result{};
    result.algo = *chosen;
    plan->algo = result.algo;
  } catch (...) {
    delete plan;
    throw;
  }
  plans_.emplace(key, plan);
  return *plan;
}

std::shared_ptr<void> CublasLtGemm::choose_algo(const Plan& like, ActivationType type,
                                                int64_t in_features, int64_t out_features,
                                                uint32_t alignment_bytes, bool f32_out,
                                                bool has_bias) {
  // Layouts for the reference row count; the operation descriptor is the plan's.
  const cudaDataType_t data_type = type == ActivationType::kBf16 ? CUDA_R_16BF : CUDA_R_16F;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
  cublasLtMatmulPreference_t preference = nullptr;
  auto cleanup = [&] {
    if (preference) cublasLtMatmulPreferenceDestroy(preference);
    if (c) cublasLtMatrixLayoutDestroy(c);
    if (b) cublasLtMatrixLayoutDestroy(b);
    if (a) cublasLtMatrixLayoutDestroy(a);
  };
  try {
    check_cublas(cublasLtMatrixLayoutCreate(&a, data_type, static_cast<uint64_t>(in_features),
                                            static_cast<uint64_t>(out_features), in_features),
                 "cublasLtMatrixLayoutCreate(A)");
    check_cublas(cublasLtMatrixLayoutCreate(&b, data_type, static_cast<uint64_t>(in_features),
                                            kAlgoReferenceRows, in_features),
                 "cublasLtMatrixLayoutCreate(B)");
    check_cublas(cublasLtMatrixLayoutCreate(&c, f32_out ? CUDA_R_32F : data_type,
                                            static_cast<uint64_t>(out_features), kAlgoReferenceRows,
                                            out_features),
                 "cublasLtMatrixLayoutCreate(C)");
    check_cublas(cublasLtMatmulPreferenceCreate(&preference), "cublasLtMatmulPreferenceCreate");
    check_cublas(
        cublasLtMatmulPreferenceSetAttribute(preference, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                             &workspace_bytes_, sizeof(workspace_bytes_)),
        "cublasLtMatmulPreferenceSetAttribute(MAX_WORKSPACE_BYTES)");
    const uint32_t no_reduction = CUBLASLT_REDUCTION_SCHEME_NONE;
    check_cublas(
        cublasLtMatmulPreferenceSetAttribute(preference, CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK,
                                             &no_reduction, sizeof(no_reduction)),
        "cublasLtMatmulPreferenceSetAttribute(REDUCTION_SCHEME_MASK)");
    for (const auto attribute :
         {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
          CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES}) {
      check_cublas(cublasLtMatmulPreferenceSetAttribute(preference, attribute, &alignment_bytes,
                                                        sizeof(alignment_bytes)),
                   "cublasLtMatmulPreferenceSetAttribute(MIN_ALIGNMENT)");
    }
    cublasLtMatmulHeuristicResult_t result{};
    int found = 0;
    check_cublas(cublasLtMatmulAlgoGetHeuristic(as_handle(handle_), like.operation, a, b, c, c,
                                                preference, 1, &result, &found),
                 "cublasLtMatmulAlgoGetHeuristic");
    if (found == 0) {
      throw CudaError("cuBLASLt found no algorithm without split-K for a " +
                      std::string(activation_type_name(type)) + " GEMM of " +
                      std::to_string(in_features) + " -> " + std::to_string(out_features) +
                      (has_bias ? " with bias" : ""));
    }
    cleanup();
    return std::make_shared<cublasLtMatmulAlgo_t>(result.algo);
  } catch (...) {
    cleanup();
    throw;
  }
}

void CublasLtGemm::linear(ActivationType type, void* y, const void* x, const void* weight,
                          const void* bias, int64_t num_tokens, int64_t in_features,
                          int64_t out_features, cudaStream_t stream) {
  run(type, y, x, weight, bias, num_tokens, in_features, out_features, false, stream, {});
}

void CublasLtGemm::linear_f32_out(ActivationType type, float* y, const void* x, const void* weight,
                                  int64_t num_tokens, int64_t in_features, int64_t out_features,
                                  cudaStream_t stream) {
  run(type, y, x, weight, nullptr, num_tokens, in_features, out_features, true, stream, {});
}

void CublasLtGemm::linear(ActivationType type, void* y, const void* x, const void* weight,
                          const void* bias, int64_t num_tokens, int64_t in_features,
                          int64_t out_features, cudaStream_t stream, const GemmOptions& options) {
  require(!options.accumulate, "CublasLtGemm::linear: accumulate needs an fp32 output");
  run(type, y, x, weight, bias, num_tokens, in_features, out_features, false, stream, options);
}

void CublasLtGemm::linear_f32_out(ActivationType type, float* y, const void* x, const void* weight,
                                  int64_t num_tokens, int64_t in_features, int64_t out_features,
                                  cudaStream_t stream, const GemmOptions& options) {
  run(type, y, x, weight, nullptr, num_tokens, in_features, out_features, true, stream, options);
}

void CublasLtGemm::run(ActivationType type, void* y, const void* x, const void* weight,
                       const void* bias, int64_t num_tokens, int64_t in_features,
                       int64_t out_features, bool f32_out, cudaStream_t stream,
                       const GemmOptions& options) {
  require(num_tokens >= 0 && in_features > 0 && out_features > 0,
          "CublasLtGemm::linear: sizes must be positive (tokens " + std::to_string(num_tokens) +
              ", in " + std::to_string(in_features) + ", out " + std::to_string(out_features) +
              ")");
  if (num_tokens == 0) return;
  const uint32_t alignment = std::min({pointer_alignment(x), pointer_alignment(weight),
                                       pointer_alignment(y), pointer_alignment(bias)});
  require((options.x_stride == 0 || options.x_stride >= in_features) &&
              (options.weight_stride == 0 || options.weight_stride >= in_features),
          "CublasLtGemm::linear: a row stride is shorter than in_features");
  const Plan& plan = plan_for(type, num_tokens, in_features, out_features, bias != nullptr,
                              alignment, f32_out, options);
  if (bias != nullptr) {
    check_cublas(cublasLtMatmulDescSetAttribute(plan.operation, CUBLASLT_MATMUL_DESC_BIAS_POINTER,
                                                &bias, sizeof(bias)),
                 "cublasLtMatmulDescSetAttribute(BIAS_POINTER)");
  }
  // With accumulate: y = 1 * (x · W^T) + 1 * y, one fp32 rounding of the sum.
  const float alpha = 1.0f, beta = options.accumulate ? 1.0f : 0.0f;
  check_cublas(
      cublasLtMatmul(as_handle(handle_), plan.operation, &alpha, weight, plan.a, x, plan.b, &beta,
                     y, plan.c, y, plan.c, &plan.algo, workspace_, workspace_bytes_, stream),
      "cublasLtMatmul");
}

}  // namespace vllm::cuda

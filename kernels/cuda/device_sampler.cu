// One CTA per sequence. Filters are thresholds on an order-preserving uint32 key of the
// (penalized) logit, found by bisection over the key space with block-wide counts and sums, so
// no sort is needed: every filter keeps a top set, and their intersection is one threshold.
#include <climits>
#include <cmath>

#include "kernels/cuda/cuda_check.hpp"
#include "kernels/cuda/device_sampler.hpp"
#include "kernels/cuda/device_types.cuh"
#include "kernels/philox.hpp"

namespace vllm::cuda {
namespace {

constexpr int kSamplerThreads = 512;
constexpr int kSamplerWarps = kSamplerThreads / 32;

// Float order as unsigned order (negative floats reversed), so "logit >= x" is "key >= key(x)".
__device__ __forceinline__ uint32_t order_key(float x) {
  const uint32_t bits = __float_as_uint(x);
  return (bits & 0x80000000u) ? ~bits : (bits | 0x80000000u);
}

struct Candidate {
  float value;
  int id;  // -1: none
};

// The larger logit; ties go to the smaller token id.
__device__ __forceinline__ Candidate better(Candidate a, Candidate b) {
  if (a.id < 0) return b;
  if (b.id < 0) return a;
  if (a.value > b.value) return a;
  if (b.value > a.value) return b;
  return a.id < b.id ? a : b;
}

struct Sum {
  template <typename T>
  __device__ T operator()(T a, T b) const {
    return a + b;
  }
};
struct Max {
  __device__ float operator()(float a, float b) const { return fmaxf(a, b); }
  __device__ int operator()(int a, int b) const { return max(a, b); }
};
struct Min {
  __device__ uint32_t operator()(uint32_t a, uint32_t b) const { return min(a, b); }
};

// Every thread gets the block-wide result; `scratch` holds kSamplerWarps values.
template <typename T, typename Op>
__device__ T block_reduce(T value, Op op, T* scratch) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  VLLM_UNROLL
  for (int offset = 16; offset > 0; offset >>= 1) {
    value = op(value, __shfl_xor_sync(0xffffffffu, value, offset));
  }
  __syncthreads();  // a previous call may still be reading scratch
  if (lane == 0) scratch[warp] = value;
  __syncthreads();
  T result = scratch[0];
  for (int w = 1; w < kSamplerWarps; ++w) result = op(result, scratch[w]);
  return result;
}

__device__ Candidate block_best(Candidate candidate, Candidate* scratch) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  VLLM_UNROLL
  for (int offset = 16; offset > 0; offset >>= 1) {
    Candidate other;
    other.value = __shfl_xor_sync(0xffffffffu, candidate.value, offset);
    other.id = __shfl_xor_sync(0xffffffffu, candidate.id, offset);
    candidate = better(candidate, other);
  }
  __syncthreads();
  if (lane == 0) scratch[warp] = candidate;
  __syncthreads();
  Candidate result = scratch[0];
  for (int w = 1; w < kSamplerWarps; ++w) result = better(result, scratch[w]);
  return result;
}

// Exclusive prefix sum over the threads in thread order; `total` gets the block sum.
__device__ double block_exclusive_scan(double value, double* scratch, double& total) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  double inclusive = value;
  VLLM_UNROLL
  for (int offset = 1; offset < 32; offset <<= 1) {
    const double below = __shfl_up_sync(0xffffffffu, inclusive, offset);
    if (lane >= offset) inclusive += below;
  }
  __syncthreads();
  if (lane == 31) scratch[warp] = inclusive;
  __syncthreads();
  double warp_prefix = 0.0;
  total = 0.0;
  for (int w = 0; w < kSamplerWarps; ++w) {
    if (w < warp) warp_prefix += scratch[w];
    total += scratch[w];
  }
  return warp_prefix + inclusive - value;
}

// a * b rounded once, never contracted into an FMA with a following add: the CPU sampler
// rounds the product before the add, and seeded draws must match it bit for bit.
__device__ __forceinline__ float product_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}

__global__ void __launch_bounds__(kSamplerThreads) sampler_kernel(DeviceSamplingArgs args) {
  __shared__ float float_scratch[kSamplerWarps];
  __shared__ double double_scratch[kSamplerWarps];
  __shared__ uint32_t uint_scratch[kSamplerWarps];
  __shared__ int int_scratch[kSamplerWarps];
  __shared__ Candidate candidate_scratch[kSamplerWarps];
  __shared__ int picked_token;

  const int seq = blockIdx.x;
  const DeviceSamplingParams params = args.params[seq];
  const int vocab = args.vocab_size;
  float* row = args.logits + static_cast<int64_t>(seq) * vocab;
  const int tid = threadIdx.x;

  // 1. Raw log-softmax normalizer (summed in double, as the CPU sampler) and the top-n.
  float local_max = -INFINITY;
  for (int i = tid; i < vocab; i += kSamplerThreads) local_max = fmaxf(local_max, row[i]);
  const float raw_max = block_reduce(local_max, Max{}, float_scratch);
  double local_sum = 0.0;
  for (int i = tid; i < vocab; i += kSamplerThreads) {
    local_sum += exp(static_cast<double>(row[i]) - static_cast<double>(raw_max));
  }
  const double raw_log_z =
      static_cast<double>(raw_max) + log(block_reduce(local_sum, Sum{}, double_scratch));
  auto raw_logprob = [&](float logit) {
    return static_cast<float>(static_cast<double>(logit) - raw_log_z);
  };

  const int num_top = min(max(params.num_top_logprobs, 0), args.max_top_logprobs);
  Candidate previous{INFINITY, -1};
  for (int r = 0; r < args.max_top_logprobs; ++r) {
    const int64_t slot = static_cast<int64_t>(seq) * args.max_top_logprobs + r;
    if (r >= num_top) {
      if (tid == 0) {
        args.top_token_ids[slot] = -1;
        args.top_logprobs[slot] = -INFINITY;
      }
      continue;
    }
    Candidate local{-INFINITY, -1};
    for (int i = tid; i < vocab; i += kSamplerThreads) {
      const float v = row[i];
      // Strictly after the previous pick in (logit desc, id asc) order.
      const bool after = r == 0 || v < previous.value || (v == previous.value && i > previous.id);
      if (after) local = better(local, Candidate{v, i});
    }
    previous = block_best(local, candidate_scratch);
    if (tid == 0) {
      args.top_token_ids[slot] = previous.id;
      args.top_logprobs[slot] = previous.id >= 0 ? raw_logprob(previous.value) : -INFINITY;
    }
  }

  // 2./3. Logit bias, then penalties, after saving the raw logits they change.
  float* saved_penalty = args.scratch;
  float* saved_bias = args.scratch + args.num_penalty_entries;
  for (int e = params.penalty_begin + tid; e < params.penalty_end; e += kSamplerThreads) {
    const int token = args.penalty_token_ids[e];
    saved_penalty[e] = (token >= 0 && token < vocab) ? row[token] : 0.0f;
  }
  for (int e = params.bias_begin + tid; e < params.bias_end; e += kSamplerThreads) {
    const int token = args.bias_token_ids[e];
    saved_bias[e] = (token >= 0 && token < vocab) ? row[token] : 0.0f;
  }
  __syncthreads();
  for (int e = params.bias_begin + tid; e < params.bias_end; e += kSamplerThreads) {
    const int token = args.bias_token_ids[e];
    if (token >= 0 && token < vocab) atomicAdd(row + token, args.bias_values[e]);
  }
  __syncthreads();

  for (int e = params.penalty_begin + tid; e < params.penalty_end; e += kSamplerThreads) {
    const int token = args.penalty_token_ids[e];
    if (token < 0 || token >= vocab) continue;
    const int count = args.penalty_output_counts[e];
    const bool seen = count > 0 || args.penalty_in_prompt[e] != 0;
    float logit = row[token];
    if (seen && params.repetition_penalty != 1.0f) {
      logit = logit > 0.0f ? logit / params.repetition_penalty : logit * params.repetition_penalty;
    }
    if (count > 0) {
      logit -=
          product_rn(params.frequency_penalty, static_cast<float>(count)) + params.presence_penalty;
    }
    row[token] = logit;
  }
  __syncthreads();
  // 4. The token.
  auto argmax = [&]() {
    Candidate local{-INFINITY, -1};
    for (int i = tid; i < vocab; i += kSamplerThreads) local = better(local, Candidate{row[i], i});
    return block_best(local, candidate_scratch).id;
  };
  int token = -1;
  if (params.temperature <= 1e-5f) {
    token = argmax();
  } else {
    // Everything below works on the temperature-scaled logits (rounded as the CPU sampler
    // rounds them), with weights exp(scaled - max) in double.
    const float temperature = params.temperature;
    auto scaled = [&](int i) { return row[i] / temperature; };
    float scaled_max = -INFINITY;
    for (int i = tid; i < vocab; i += kSamplerThreads) scaled_max = fmaxf(scaled_max, scaled(i));
    scaled_max = block_reduce(scaled_max, Max{}, float_scratch);
    auto weight = [&](float value) {
      return exp(static_cast<double>(value) - static_cast<double>(scaled_max));
    };

    uint32_t threshold = 0;  // kept: order_key(scaled logit) >= threshold
    if (params.min_p > 0.0f) {
      // p_t >= min_p * p_max  <=>  scaled_t >= scaled_max + log(min_p)
      const float log_min_p =
          params.log_min_p == params.log_min_p ? params.log_min_p : logf(params.min_p);
      const float cut = scaled_max + log_min_p;
      uint32_t local_min = UINT_MAX;
      for (int i = tid; i < vocab; i += kSamplerThreads) {
        const float v = scaled(i);
        if (v >= cut) local_min = min(local_min, order_key(v));
      }
      threshold = max(threshold, block_reduce(local_min, Min{}, uint_scratch));
    }
    if (params.top_k > 0 && params.top_k < vocab) {
      // The k-th largest key: the largest t with count(key >= t) >= k.
      uint64_t low = 0, high = uint64_t{1} << 32;
      while (high - low > 1) {
        const uint64_t mid = (low + high) / 2;
        uint32_t local_count = 0;
        for (int i = tid; i < vocab; i += kSamplerThreads) {
          local_count += order_key(scaled(i)) >= mid ? 1u : 0u;
        }
        const uint32_t count = block_reduce(local_count, Sum{}, uint_scratch);
        if (count >= static_cast<uint32_t>(params.top_k)) {
          low = mid;
        } else {
          high = mid;
        }
      }
      threshold = max(threshold, static_cast<uint32_t>(low));
    }
    if (params.top_p < 1.0f) {
      double local_mass = 0.0;
      for (int i = tid; i < vocab; i += kSamplerThreads) {
        const float v = scaled(i);
        if (order_key(v) >= threshold) local_mass += weight(v);
      }
      const double limit =
          static_cast<double>(params.top_p) * block_reduce(local_mass, Sum{}, double_scratch);
      // The smallest t with mass(kept, key > t) < limit.
      int64_t low = static_cast<int64_t>(threshold) - 1, high = 0xffffffffLL;
      while (high - low > 1) {
        const int64_t mid = low + (high - low) / 2;
        double mass = 0.0;
        for (int i = tid; i < vocab; i += kSamplerThreads) {
          const float v = scaled(i);
          const uint32_t key = order_key(v);
          if (key >= threshold && static_cast<int64_t>(key) > mid) mass += weight(v);
        }
        if (block_reduce(mass, Sum{}, double_scratch) < limit) {
          high = mid;
        } else {
          low = mid;
        }
      }
      threshold = static_cast<uint32_t>(high);
    }

    // Inverse CDF in token-id order: each thread owns a contiguous chunk of the vocabulary.
    const int chunk = (vocab + kSamplerThreads - 1) / kSamplerThreads;
    const int begin = min(vocab, tid * chunk), end = min(vocab, begin + chunk);
    auto kept_weight = [&](int i) {
      const float v = scaled(i);
      return order_key(v) >= threshold ? weight(v) : 0.0;
    };
    double local = 0.0;
    for (int i = begin; i < end; ++i) local += kept_weight(i);
    double total = 0.0;
    const double prefix = block_exclusive_scan(local, double_scratch, total);
    const double target =
        static_cast<double>(philox_uniform(params.seed, params.output_index)) * total;
    if (tid == 0) picked_token = -1;
    __syncthreads();
    if (local > 0.0 && prefix <= target && target < prefix + local) {
      double running = prefix;
      int pick = -1;
      for (int i = begin; i < end; ++i) {
        const double w = kept_weight(i);
        if (w == 0.0) continue;
        pick = i;
        running += w;
        if (running > target) break;
      }
      picked_token = pick;
    }
    __syncthreads();
    token = picked_token;
    if (token < 0) {
      // Rounding put the target past the last kept token: take that token (or the argmax when
      // the filters kept nothing).
      int local_last = -1;
      for (int i = tid; i < vocab; i += kSamplerThreads) {
        if (kept_weight(i) > 0.0) local_last = i;
      }
      token = block_reduce(local_last, Max{}, int_scratch);
      if (token < 0) token = argmax();
    }
  }

  // Put the raw logits back (both saved copies are raw), so the row ends as it came and the
  // sampled token's logprob and rank are of the raw distribution.
  __syncthreads();
  for (int e = params.penalty_begin + tid; e < params.penalty_end; e += kSamplerThreads) {
    const int t = args.penalty_token_ids[e];
    if (t >= 0 && t < vocab) row[t] = saved_penalty[e];
  }
  for (int e = params.bias_begin + tid; e < params.bias_end; e += kSamplerThreads) {
    const int t = args.bias_token_ids[e];
    if (t >= 0 && t < vocab) row[t] = saved_bias[e];
  }
  __syncthreads();
  const float raw = row[token];
  if (args.sampled_ranks != nullptr) {
    int local_above = 0;
    for (int i = tid; i < vocab; i += kSamplerThreads) local_above += row[i] > raw ? 1 : 0;
    const int above = block_reduce(local_above, Sum{}, int_scratch);
    if (tid == 0) args.sampled_ranks[seq] = above + 1;
  }
  if (tid == 0) {
    args.sampled_token_ids[seq] = token;
    args.sampled_logprobs[seq] = raw_logprob(raw);
  }
}

}  // namespace

void sample_on_device(const DeviceSamplingArgs& args, cudaStream_t stream) {
  require(args.num_seqs >= 0, "sample_on_device: num_seqs must be non-negative");
  require(args.vocab_size > 0, "sample_on_device: vocab_size must be positive");
  require(args.max_top_logprobs >= 0 && args.max_top_logprobs <= kMaxTopLogprobs,
          "sample_on_device: max_top_logprobs must be in [0, " + std::to_string(kMaxTopLogprobs) +
              "], got " + std::to_string(args.max_top_logprobs));
  require(args.num_penalty_entries + args.num_bias_entries == 0 || args.scratch != nullptr,
          "sample_on_device: scratch is required when penalty or bias entries are given");
  require(args.logits && args.params && args.sampled_token_ids && args.sampled_logprobs,
          "sample_on_device: logits, params and the sampled outputs must be set");
  require(args.max_top_logprobs == 0 || (args.top_token_ids && args.top_logprobs),
          "sample_on_device: top-n outputs must be set when max_top_logprobs > 0");
  if (args.num_seqs == 0) return;
  VLLM_LAUNCH(static_cast<unsigned>(args.num_seqs), kSamplerThreads, 0, stream, sampler_kernel)
  (args);
  check_launch("sampler_kernel");
}

}  // namespace vllm::cuda

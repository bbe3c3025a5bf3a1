// Kernel timings on a Llama-3-8B-shaped layer (32 query heads, 8 KV heads, head_dim 128, block 16,
// bf16): decode attention, prefill attention, the QKV / MLP GEMMs and the sampler. Hidden tag:
// run with ./build/tests/test_kernels "[cuda-timing]". Prints one table; asserts nothing beyond
// the kernels running (the [cuda] tests check correctness).
#include <catch2/catch.hpp>

#if VLLM_HAVE_CUDA

#include <cstdio>
#include <functional>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "kernels/cuda/cublaslt_gemm.hpp"
#include "kernels/cuda/device_sampler.hpp"
#include "kernels/cuda/paged_attention.hpp"
#include "tests/kernels/cuda_test_support.hpp"

namespace {

using vllm::cuda::ActivationType;
using namespace vllm::test;

// Mean microseconds per call over `repetitions` after warm-up, timed with CUDA events.
double time_us(const std::function<void()>& launch, int repetitions = 20) {
  for (int i = 0; i < 3; ++i) launch();
  cudaEvent_t start, stop;
  vllm::cuda::check_cuda(cudaEventCreate(&start), "cudaEventCreate");
  vllm::cuda::check_cuda(cudaEventCreate(&stop), "cudaEventCreate");
  vllm::cuda::check_cuda(cudaEventRecord(start, nullptr), "cudaEventRecord");
  for (int i = 0; i < repetitions; ++i) launch();
  vllm::cuda::check_cuda(cudaEventRecord(stop, nullptr), "cudaEventRecord");
  vllm::cuda::check_cuda(cudaEventSynchronize(stop), "cudaEventSynchronize");
  float ms = 0.0f;
  vllm::cuda::check_cuda(cudaEventElapsedTime(&ms, start, stop), "cudaEventElapsedTime");
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  return 1000.0 * ms / repetitions;
}

void print_row(const std::string& what, double us, double bytes, double flops) {
  std::printf("| %-52s | %10.1f | %8.1f | %8.1f |\n", what.c_str(), us, bytes / us / 1e3,
              flops / us / 1e6);
}

struct AttentionSetup {
  int num_seqs, context_len, query_len;
};

void time_attention(const AttentionSetup& s, bool decode) {
  const int heads = 32, kv_heads = 8, head_dim = 128, block_size = 16;
  const int seq_len = s.context_len + s.query_len;
  const int blocks_per_seq = (seq_len + block_size - 1) / block_size;
  const int num_blocks = blocks_per_seq * s.num_seqs;
  const int tokens = s.num_seqs * s.query_len;
  std::vector<int32_t> query_start_loc(s.num_seqs + 1), seq_lens(s.num_seqs, seq_len),
      block_tables(static_cast<size_t>(num_blocks));
  for (int i = 0; i <= s.num_seqs; ++i) query_start_loc[i] = i * s.query_len;
  std::iota(block_tables.begin(), block_tables.end(), 0);
  std::mt19937 rng(3);
  const size_t cache_elements = static_cast<size_t>(num_blocks) * block_size * kv_heads * head_dim;
  DeviceBuffer<uint16_t> key_cache(
      random_activations(cache_elements, ActivationType::kBf16, rng).bits);
  DeviceBuffer<uint16_t> value_cache(key_cache.size());
  vllm::cuda::check_cuda(
      cudaMemcpy(value_cache.get(), key_cache.get(), cache_elements * 2, cudaMemcpyDeviceToDevice),
      "cudaMemcpy");
  DeviceBuffer<uint16_t> query(
      random_activations(static_cast<size_t>(tokens) * heads * head_dim, ActivationType::kBf16, rng)
          .bits);
  DeviceBuffer<uint16_t> out(query.size());
  DeviceBuffer<int32_t> d_qsl(query_start_loc), d_lens(seq_lens), d_tables(block_tables);
  vllm::cuda::PagedAttentionArgs a;
  a.type = ActivationType::kBf16;
  a.out = out.get();
  a.query = query.get();
  a.out_stride = a.query_stride = heads * head_dim;
  a.key_cache = key_cache.get();
  a.value_cache = value_cache.get();
  a.query_start_loc = d_qsl.get();
  a.seq_lens = d_lens.get();
  a.block_tables = d_tables.get();
  a.max_blocks_per_seq = blocks_per_seq;
  a.num_seqs = s.num_seqs;
  a.num_heads = heads;
  a.num_kv_heads = kv_heads;
  a.head_dim = head_dim;
  a.block_size = block_size;
  a.max_seq_len = seq_len;
  a.max_query_len = s.query_len;
  a.scale = 0.08838834764831845f;
  DeviceBuffer<uint8_t> workspace(vllm::cuda::paged_attention_decode_workspace_bytes(a));
  const double us = time_us([&] {
    if (decode) {
      vllm::cuda::paged_attention_decode(a, workspace.get(), nullptr);
    } else {
      vllm::cuda::paged_attention_prefill(a, nullptr);
    }
  });
  const double kv_bytes = 2.0 * s.num_seqs * seq_len * kv_heads * head_dim * 2;
  // Causal: each query row sees on average context + (query + 1) / 2 keys.
  const double keys_per_row = s.context_len + (s.query_len + 1) / 2.0;
  const double flops = 4.0 * tokens * heads * head_dim * keys_per_row;
  print_row(std::string(decode ? "decode" : "prefill") + " seqs " + std::to_string(s.num_seqs) +
                " ctx " + std::to_string(s.context_len) + " q " + std::to_string(s.query_len),
            us, kv_bytes, flops);
}

}  // namespace

TEST_CASE("CUDA kernel timings on a Llama-3-8B layer shape", "[.][cuda-timing]") {
  VLLM_SKIP_WITHOUT_CUDA_DEVICE();
  std::printf("| %-52s | %10s | %8s | %8s |\n", "kernel (bf16, 32 q / 8 kv heads, d 128, block 16)",
              "us", "GB/s", "TFLOP/s");
  time_attention({1, 1023, 1}, true);
  time_attention({64, 1023, 1}, true);
  time_attention({256, 511, 1}, true);
  time_attention({8, 8191, 1}, true);
  time_attention({1, 32767, 1}, true);
  time_attention({1, 0, 512}, false);
  time_attention({4, 0, 2048}, false);
  time_attention({8, 1536, 512}, false);

  vllm::cuda::CublasLtGemm gemm;
  std::mt19937 rng(5);
  struct GemmShape {
    const char* name;
    int64_t tokens, in, out;
  };
  for (const GemmShape& g :
       {GemmShape{"gemm qkv", 1, 4096, 6144}, GemmShape{"gemm qkv", 256, 4096, 6144},
        GemmShape{"gemm gate_up", 2048, 4096, 28672}, GemmShape{"gemm down", 2048, 14336, 4096}}) {
    DeviceBuffer<uint16_t> x(random_activations(g.tokens * g.in, ActivationType::kBf16, rng).bits);
    DeviceBuffer<uint16_t> w(g.in * g.out), y(g.tokens * g.out);
    vllm::cuda::check_cuda(cudaMemset(w.get(), 0x3c, w.size() * 2), "cudaMemset");
    const double us = time_us([&] {
      gemm.linear(ActivationType::kBf16, y.get(), x.get(), w.get(), nullptr, g.tokens, g.in, g.out,
                  nullptr);
    });
    print_row(std::string(g.name) + " " + std::to_string(g.tokens) + "x" + std::to_string(g.in) +
                  "x" + std::to_string(g.out),
              us, 2.0 * (g.in * g.out + g.tokens * (g.in + g.out)), 2.0 * g.tokens * g.in * g.out);
  }

  for (int num_seqs : {1, 64}) {
    const int vocab = 128256;
    std::vector<float> logits(static_cast<size_t>(num_seqs) * vocab);
    std::normal_distribution<float> normal(0.0f, 3.0f);
    for (auto& l : logits) l = normal(rng);
    std::vector<vllm::cuda::DeviceSamplingParams> params(num_seqs);
    for (int i = 0; i < num_seqs; ++i) {
      params[i].temperature = 0.8f;
      params[i].top_k = 50;
      params[i].top_p = 0.95f;
      params[i].seed = 1;
      params[i].output_index = static_cast<uint64_t>(i);
      params[i].num_top_logprobs = 5;
    }
    DeviceBuffer<float> d_logits(logits), logprobs(num_seqs), top_logprobs(num_seqs * 5);
    DeviceBuffer<vllm::cuda::DeviceSamplingParams> d_params(params);
    DeviceBuffer<int32_t> tokens(num_seqs), top_ids(num_seqs * 5);
    vllm::cuda::DeviceSamplingArgs args;
    args.logits = d_logits.get();
    args.num_seqs = num_seqs;
    args.vocab_size = vocab;
    args.params = d_params.get();
    args.max_top_logprobs = 5;
    args.sampled_token_ids = tokens.get();
    args.sampled_logprobs = logprobs.get();
    args.top_token_ids = top_ids.get();
    args.top_logprobs = top_logprobs.get();
    const double us = time_us([&] { vllm::cuda::sample_on_device(args, nullptr); }, 5);
    print_row("sampler top-k 50 top-p 0.95 top-5 logprobs, seqs " + std::to_string(num_seqs) +
                  ", vocab 128256",
              us, 4.0 * num_seqs * vocab, 0.0);
  }
  synchronize();
}

#endif

// Paged attention kernels (decode and prefill) against a double-precision CPU reference on
// random inputs: head dims 64/128, GQA ratios 1/3/4/7/8, block sizes 16/32, contexts 1 to 32k,
// one batch mixing decode tokens, fresh prefills and prefill chunks after cached prefixes.
// Outputs are poisoned with NaN first, so a row the kernels never write fails the test, and the
// cache's unused slots are NaN too, so reading past a sequence's context fails it as well.
#include <catch2/catch.hpp>

#if VLLM_HAVE_CUDA

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "kernels/cuda/paged_attention.hpp"
#include "tests/kernels/cuda_test_support.hpp"
#include "tests/kernels/paged_attention_reference.hpp"

namespace {

using vllm::cuda::ActivationType;
using namespace vllm::test;

struct DeviceProblem {
  DeviceBuffer<uint16_t> query, key_cache, value_cache, out;
  DeviceBuffer<int32_t> query_start_loc, seq_lens, block_tables;
  explicit DeviceProblem(const AttentionProblem& p)
      : query(p.query_bits),
        key_cache(p.key_cache_bits),
        value_cache(p.value_cache_bits),
        out(p.query_bits.size()),
        query_start_loc(p.batch.query_start_loc),
        seq_lens(p.batch.seq_lens),
        block_tables(p.batch.block_tables) {}
};

vllm::cuda::PagedAttentionArgs args_for(const AttentionProblem& p, DeviceProblem& dev,
                                        int first_seq, int num_seqs) {
  vllm::cuda::PagedAttentionArgs a;
  a.type = p.config.type;
  a.out = dev.out.get();
  a.out_stride = static_cast<int64_t>(p.num_heads()) * p.config.head_dim;
  a.query = dev.query.get();
  a.query_stride = a.out_stride;
  a.key_cache = dev.key_cache.get();
  a.value_cache = dev.value_cache.get();
  a.query_start_loc = dev.query_start_loc.get() + first_seq;
  a.seq_lens = dev.seq_lens.get() + first_seq;
  a.block_tables =
      dev.block_tables.get() + static_cast<int64_t>(first_seq) * p.batch.max_blocks_per_seq;
  a.max_blocks_per_seq = p.batch.max_blocks_per_seq;
  a.num_seqs = num_seqs;
  a.num_heads = p.num_heads();
  a.num_kv_heads = p.config.num_kv_heads;
  a.head_dim = p.config.head_dim;
  a.block_size = p.config.block_size;
  a.max_seq_len = p.batch.max_seq_len;
  a.max_query_len = p.batch.max_query_len;
  a.scale = 1.0f / std::sqrt(static_cast<float>(p.config.head_dim));
  return a;
}

// Fresh inputs on every run; VLLM_TEST_SEED=<n> replays a run (the seed is in failure messages).
uint32_t base_seed() {
  static const uint32_t seed = [] {
    if (const char* env = std::getenv("VLLM_TEST_SEED"))
      return static_cast<uint32_t>(std::stoul(env));
    return std::random_device{}();
  }();
  return seed;
}

void run_config(const AttentionConfig& config, uint32_t seed_offset) {
  const uint32_t seed = base_seed() + seed_offset;
  INFO("VLLM_TEST_SEED=" << base_seed() << " (case seed " << seed << ")");
  const std::vector<SeqSpec> specs = mixed_batch();
  const AttentionProblem p = make_problem(config, specs, seed);
  DeviceProblem dev(p);
  const int num_seqs = static_cast<int>(specs.size());
  const int decodes = num_decode_seqs(specs);

  // 1. Each prefill kernel alone over the whole mixed batch (decode rows included).
  for (auto kernel : {vllm::cuda::PrefillKernel::kMmaSync, vllm::cuda::PrefillKernel::kWmma}) {
    dev.out.poison();
    vllm::cuda::paged_attention_prefill(args_for(p, dev, 0, num_seqs), nullptr, kernel);
    synchronize();
    check_output(p, dev.out.download(),
                 kernel == vllm::cuda::PrefillKernel::kWmma
                     ? "prefill kernel (wmma) over the mixed batch"
                     : "prefill kernel (mma.sync) over the mixed batch");
  }

  // 2. Decode kernel for the decode sequences, prefill kernel for the rest (how a step runs).
  dev.out.poison();
  const vllm::cuda::PagedAttentionArgs all = args_for(p, dev, 0, num_seqs);
  DeviceBuffer<uint8_t> workspace(vllm::cuda::paged_attention_decode_workspace_bytes(all));
  vllm::cuda::paged_attention_mixed(all, decodes, workspace.get(), nullptr);
  synchronize();
  check_output(p, dev.out.download(), "decode kernel + prefill kernel");
}

}  // namespace

TEST_CASE("paged attention decode and prefill match the CPU reference on a mixed batch",
          "[cuda][attention]") {
  VLLM_SKIP_WITHOUT_CUDA_DEVICE();
  uint32_t seed = 0;
  for (int head_dim : {64, 128}) {
    for (int group_size : {1, 4, 8}) {
      for (int block_size : {16, 32}) {
        const int kv_heads = group_size == 8 ? 1 : 2;
        run_config({ActivationType::kBf16, head_dim, group_size, kv_heads, block_size}, seed++);
      }
    }
  }
}

TEST_CASE("paged attention handles fp16 and odd GQA groups (3, 7, 16)", "[cuda][attention]") {
  VLLM_SKIP_WITHOUT_CUDA_DEVICE();
  run_config({ActivationType::kFp16, 128, 4, 2, 16}, 77);
  run_config({ActivationType::kFp16, 64, 1, 2, 32}, 78);
  run_config({ActivationType::kBf16, 64, 3, 3, 16}, 79);    // SmolLM2-135M's shape
  run_config({ActivationType::kBf16, 64, 7, 2, 16}, 80);    // Qwen2-0.5B's shape
  run_config({ActivationType::kBf16, 128, 16, 1, 32}, 81);  // two head chunks per K/V head
}

TEST_CASE("paged decode needs the workspace only for split contexts", "[cuda][attention]") {
  vllm::cuda::PagedAttentionArgs a;
  a.num_seqs = 4;
  a.num_heads = 8;
  a.head_dim = 128;
  a.max_seq_len = vllm::cuda::kDecodePartitionTokens;
  CHECK(vllm::cuda::paged_attention_decode_workspace_bytes(a) == 0);
  a.max_seq_len = vllm::cuda::kDecodePartitionTokens + 1;
  CHECK(vllm::cuda::paged_attention_decode_workspace_bytes(a) == size_t{4} * 8 * 2 * (2 + 128) * 4);
}

TEST_CASE("paged attention rejects unsupported shapes with a clear error", "[cuda][attention]") {
  vllm::cuda::PagedAttentionArgs a;
  a.num_seqs = 1;
  a.num_heads = 8;
  a.num_kv_heads = 3;  // not a divisor
  a.head_dim = 128;
  a.block_size = 16;
  a.max_blocks_per_seq = 1;
  CHECK_THROWS_AS(vllm::cuda::paged_attention_prefill(a, nullptr),
                  vllm::cuda::CudaKernelArgumentError);
  a.num_kv_heads = 2;
  a.head_dim = 96;
  CHECK_THROWS_WITH(vllm::cuda::paged_attention_decode(a, nullptr, nullptr),
                    Catch::Contains("head_dim must be 64 or 128"));
}

#else

TEST_CASE("paged attention (CUDA)", "[cuda][attention]") {
  WARN("built without CUDA");
}

#endif

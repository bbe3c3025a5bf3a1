// The CUDA kernels' device code run on the CPU through tests/kernels/cuda_emulation.hpp (fibers
// for threads, barriers, shuffles, WMMA tiles): the same checks as the [cuda] GPU tests on
// smaller problems, so indexing, masking and synchronization bugs show up on machines without a
// GPU. Numerics differ from the GPU only in math-library rounding.
#include <catch2/catch.hpp>

// Sanitizers do not follow ucontext fiber switches: the emulation runs in plain builds only.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define VLLM_EMULATION_UNDER_SANITIZER 1
#else
#define VLLM_EMULATION_UNDER_SANITIZER 0
#endif

#if VLLM_HAVE_CUDA && !VLLM_EMULATION_UNDER_SANITIZER

#include "tests/kernels/cuda_emulation.hpp"
// Everything below lives in namespace vllm_emulated, apart from the real kernels' symbols.
#define vllm vllm_emulated
#include "kernels/cuda/device_sampler.cu"
#include "kernels/cuda/embedding.cu"
#include "kernels/cuda/paged_attention_decode.cu"
#include "kernels/cuda/paged_attention_mixed.cpp"
#include "kernels/cuda/paged_attention_prefill.cu"
#include "kernels/cuda/paged_attention_prefill_mma.cu"
#include "kernels/cuda/rms_norm.cu"
#include "kernels/cuda/rope_kv_cache.cu"
#include "kernels/cuda/silu_and_mul.cu"
#include "tests/kernels/paged_attention_reference.hpp"
#include "tests/kernels/sampler_reference.hpp"

namespace {

using namespace vllm::test;
using vllm::cuda::ActivationType;

vllm::cuda::PagedAttentionArgs host_args(const AttentionProblem& p, std::vector<uint16_t>& out,
                                         int first_seq, int num_seqs) {
  vllm::cuda::PagedAttentionArgs a;
  a.type = p.config.type;
  a.out = out.data();
  a.out_stride = static_cast<int64_t>(p.num_heads()) * p.config.head_dim;
  a.query = p.query_bits.data();
  a.query_stride = a.out_stride;
  a.key_cache = p.key_cache_bits.data();
  a.value_cache = p.value_cache_bits.data();
  a.query_start_loc = p.batch.query_start_loc.data() + first_seq;
  a.seq_lens = p.batch.seq_lens.data() + first_seq;
  a.block_tables =
      p.batch.block_tables.data() + static_cast<int64_t>(first_seq) * p.batch.max_blocks_per_seq;
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

void run_emulated_attention(const AttentionConfig& config, uint32_t seed) {
  // Decode rows first (one split into two partitions), then a prefill, a chunk after a cached
  // prefix and a chunk that spans two key tiles.
  const std::vector<SeqSpec> specs = {{0, 1}, {20, 1}, {700, 1}, {0, 20}, {40, 9}, {63, 66}};
  const AttentionProblem p = make_problem(config, specs, seed);
  const int num_seqs = static_cast<int>(specs.size()), decodes = num_decode_seqs(specs);
  std::vector<uint16_t> out(p.query_bits.size(), 0xFFFF);
  for (auto kernel : {vllm::cuda::PrefillKernel::kMmaSync, vllm::cuda::PrefillKernel::kWmma}) {
    std::fill(out.begin(), out.end(), uint16_t{0xFFFF});
    vllm::cuda::paged_attention_prefill(host_args(p, out, 0, num_seqs), nullptr, kernel);
    check_output(p, out,
                 kernel == vllm::cuda::PrefillKernel::kWmma
                     ? "emulated prefill kernel (wmma) over the mixed batch"
                     : "emulated prefill kernel (mma.sync) over the mixed batch");
  }

  std::fill(out.begin(), out.end(), uint16_t{0xFFFF});
  const vllm::cuda::PagedAttentionArgs all = host_args(p, out, 0, num_seqs);
  std::vector<float> workspace(vllm::cuda::paged_attention_decode_workspace_bytes(all) / 4 + 1);
  vllm::cuda::paged_attention_mixed(all, decodes, workspace.data(), nullptr);
  check_output(p, out, "emulated decode kernel + prefill kernel");
}

}  // namespace

namespace {

// Threads scheduled in ascending, then descending order between barriers.
struct ThreadOrder {
  explicit ThreadOrder(bool reverse) { vllm_emu::emulator().reverse_order = reverse; }
  ~ThreadOrder() { vllm_emu::emulator().reverse_order = false; }
};

}  // namespace

TEST_CASE("emulated paged attention kernels match the CPU reference", "[cuda-emulated]") {
  for (bool reverse : {false, true}) {
    INFO("threads in " << (reverse ? "descending" : "ascending") << " order");
    ThreadOrder order(reverse);
    run_emulated_attention({ActivationType::kBf16, 64, 4, 1, 16}, 1);
    run_emulated_attention({ActivationType::kBf16, 128, 1, 2, 32}, 2);
    run_emulated_attention({ActivationType::kFp16, 64, 3, 1, 16}, 3);
    run_emulated_attention({ActivationType::kBf16, 128, 16, 1, 16}, 4);
    run_emulated_attention({ActivationType::kBf16, 128, 8, 1, 32}, 5);
  }
}

TEST_CASE("emulated decode splits a 1100-token context into three partitions", "[cuda-emulated]") {
  const std::vector<SeqSpec> specs = {{1099, 1}, {3, 1}};
  const AttentionProblem p = make_problem({ActivationType::kBf16, 64, 2, 1, 16}, specs, 9);
  std::vector<uint16_t> out(p.query_bits.size(), 0xFFFF);
  const vllm::cuda::PagedAttentionArgs args = host_args(p, out, 0, 2);
  std::vector<float> workspace(vllm::cuda::paged_attention_decode_workspace_bytes(args) / 4 + 1);
  vllm::cuda::paged_attention_decode(args, workspace.data(), nullptr);
  check_output(p, out, "emulated decode, three partitions");
}

TEST_CASE("emulated silu_and_mul and embedding_lookup", "[cuda-emulated]") {
  const ActivationType type = ActivationType::kFp16;
  std::mt19937 rng(12);
  const int64_t tokens = 3, intermediate = 300;
  const auto gate_up = random_activations(tokens * 2 * intermediate, type, rng, 2.0f);
  std::vector<uint16_t> out(tokens * intermediate, 0xFFFF);
  vllm::cuda::silu_and_mul(type, out.data(), gate_up.bits.data(), tokens, intermediate, nullptr);
  std::vector<double> ref(out.size());
  for (int64_t t = 0; t < tokens; ++t) {
    for (int64_t i = 0; i < intermediate; ++i) {
      const double g = gate_up.values[t * 2 * intermediate + i];
      ref[t * intermediate + i] =
          g / (1.0 + std::exp(-g)) * gate_up.values[t * 2 * intermediate + intermediate + i];
    }
  }
  CHECK(count_poison(out) == 0);
  CHECK(relative_error(bits_to_floats(out, type), ref) <= 1e-2);

  const int64_t vocab = 50, hidden = 40;
  const auto table = random_activations(vocab * hidden, type, rng);
  const std::vector<int32_t> ids = {49, 0, -3, 50, 7};
  std::vector<uint16_t> rows(ids.size() * hidden, 0xFFFF);
  vllm::cuda::embedding_lookup(type, rows.data(), table.bits.data(), ids.data(),
                               static_cast<int64_t>(ids.size()), hidden, vocab, nullptr);
  for (size_t t = 0; t < ids.size(); ++t) {
    const bool valid = ids[t] >= 0 && ids[t] < vocab;
    for (int64_t i = 0; i < hidden; ++i) {
      CHECK(rows[t * hidden + i] == (valid ? table.bits[ids[t] * hidden + i] : uint16_t{0}));
    }
  }
}

TEST_CASE("emulated device sampler matches the CPU reference", "[cuda-emulated]") {
  const bool reverse = GENERATE(false, true);
  INFO("threads in " << (reverse ? "descending" : "ascending") << " order");
  ThreadOrder order(reverse);
  const int vocab = 1500, max_top = vllm::cuda::kMaxTopLogprobs;
  std::vector<SeqCase> all = make_cases(vocab), cases;
  for (size_t i = 0; i < all.size(); ++i) {
    if (i < 4 || i % 5 == 0) cases.push_back(all[i]);  // every kind of case, fewer draws
  }
  SamplingInputs in = build_inputs(cases);
  const int num_seqs = static_cast<int>(cases.size());
  std::vector<float> scratch(in.penalty_ids.size() + in.bias_ids.size() + 1);
  DeviceResult out{std::vector<int32_t>(num_seqs, -7), std::vector<int32_t>(num_seqs * max_top, -7),
                   std::vector<float>(num_seqs, NAN), std::vector<float>(num_seqs * max_top, NAN)};
  vllm::cuda::DeviceSamplingArgs args;
  args.logits = in.logits.data();
  args.num_seqs = num_seqs;
  args.vocab_size = in.vocab_size;
  args.params = in.params.data();
  args.penalty_token_ids = in.penalty_ids.data();
  args.penalty_output_counts = in.penalty_counts.data();
  args.penalty_in_prompt = in.penalty_prompt.data();
  args.num_penalty_entries = static_cast<int32_t>(in.penalty_ids.size());
  args.bias_token_ids = in.bias_ids.data();
  args.bias_values = in.bias_values.data();
  args.num_bias_entries = static_cast<int32_t>(in.bias_ids.size());
  args.scratch = scratch.data();
  args.max_top_logprobs = max_top;
  args.sampled_token_ids = out.tokens.data();
  args.sampled_logprobs = out.logprobs.data();
  args.top_token_ids = out.top_ids.data();
  args.top_logprobs = out.top_logprobs.data();
  vllm::cuda::sample_on_device(args, nullptr);
  check_against_reference(cases, out, max_top);
  CHECK(out.tokens[1] == vocab / 2);  // tie at the max: smaller id
  CHECK(out.tokens[2] == 123);        // the +40 bias wins
}

TEST_CASE("emulated rms_norm and fused_add_rms_norm", "[cuda-emulated]") {
  ThreadOrder order(GENERATE(false, true));
  const ActivationType type = ActivationType::kBf16;
  std::mt19937 rng(5);
  const int64_t tokens = 3, hidden = 1000;
  const auto x = random_activations(tokens * hidden, type, rng);
  const auto residual = random_activations(tokens * hidden, type, rng);
  const auto weight = random_activations(hidden, type, rng);
  std::vector<uint16_t> out(x.bits.size(), 0xFFFF), x_bits = x.bits, residual_bits = residual.bits;
  vllm::cuda::rms_norm(type, out.data(), x.bits.data(), weight.bits.data(), tokens, hidden, 1e-6f,
                       nullptr);
  vllm::cuda::fused_add_rms_norm(type, x_bits.data(), residual_bits.data(), weight.bits.data(),
                                 tokens, hidden, 1e-6f, nullptr);
  for (int pass = 0; pass < 2; ++pass) {
    const std::vector<uint16_t>& got = pass == 0 ? out : x_bits;
    std::vector<double> ref(got.size());
    for (int64_t t = 0; t < tokens; ++t) {
      std::vector<double> v(hidden);
      double sum_squares = 0.0;
      for (int64_t i = 0; i < hidden; ++i) {
        v[i] = pass == 0
                   ? x.values[t * hidden + i]
                   : round_to(x.values[t * hidden + i] + residual.values[t * hidden + i], type);
        sum_squares += v[i] * v[i];
      }
      const double inv_rms = 1.0 / std::sqrt(sum_squares / hidden + 1e-6);
      for (int64_t i = 0; i < hidden; ++i) ref[t * hidden + i] = v[i] * inv_rms * weight.values[i];
    }
    CHECK(count_poison(got) == 0);
    CHECK(relative_error(bits_to_floats(got, type), ref) <= 1e-2);
  }
}

TEST_CASE("emulated RoPE + KV-cache write", "[cuda-emulated]") {
  ThreadOrder order(GENERATE(false, true));
  const ActivationType type = ActivationType::kBf16;
  std::mt19937 rng(6);
  const int tokens = 5, heads = 4, kv_heads = 2, head_dim = 64, rotary_dim = 32, slots = 32;
  const int64_t row = (heads + 2 * kv_heads) * head_dim;
  const auto qkv = random_activations(tokens * row, type, rng);
  std::vector<uint16_t> qkv_bits = qkv.bits;
  std::vector<uint16_t> key_cache(slots * kv_heads * head_dim, 0xFFFF), value_cache = key_cache;
  const std::vector<int32_t> positions = {0, 1, 7, 300, 32000};
  const std::vector<int64_t> slot_mapping = {3, -1, 31, 0, 17};
  std::vector<float> inv_freq(rotary_dim / 2);
  for (int i = 0; i < rotary_dim / 2; ++i) inv_freq[i] = std::pow(10000.0f, -2.0f * i / rotary_dim);
  vllm::cuda::RopeKvCacheArgs args;
  args.type = type;
  args.query = qkv_bits.data();
  args.key = qkv_bits.data() + heads * head_dim;
  args.value = qkv_bits.data() + (heads + kv_heads) * head_dim;
  args.query_stride = args.key_stride = args.value_stride = row;
  args.key_cache = key_cache.data();
  args.value_cache = value_cache.data();
  args.positions = positions.data();
  args.slot_mapping = slot_mapping.data();
  args.inv_freq = inv_freq.data();
  args.num_tokens = tokens;
  args.num_heads = heads;
  args.num_kv_heads = kv_heads;
  args.head_dim = head_dim;
  args.rotary_dim = rotary_dim;
  vllm::cuda::rope_and_write_kv_cache(args, nullptr);

  std::vector<double> ref(qkv.values.begin(), qkv.values.end());
  for (int t = 0; t < tokens; ++t) {
    for (int h = 0; h < heads + kv_heads; ++h) {
      double* x = &ref[t * row + h * head_dim];
      for (int i = 0; i < rotary_dim / 2; ++i) {
        const double angle = static_cast<float>(positions[t]) * inv_freq[i];
        const double x1 = x[i], x2 = x[i + rotary_dim / 2];
        x[i] = x1 * std::cos(angle) - x2 * std::sin(angle);
        x[i + rotary_dim / 2] = x2 * std::cos(angle) + x1 * std::sin(angle);
      }
    }
  }
  CHECK(relative_error(bits_to_floats(qkv_bits, type), ref) <= 1e-2);
  size_t written = 0;
  for (int t = 0; t < tokens; ++t) {
    if (slot_mapping[t] < 0) continue;
    for (int e = 0; e < kv_heads * head_dim; ++e) {
      const size_t cache_index = slot_mapping[t] * kv_heads * head_dim + e;
      CHECK(key_cache[cache_index] == qkv_bits[t * row + heads * head_dim + e]);
      CHECK(value_cache[cache_index] == qkv.bits[t * row + (heads + kv_heads) * head_dim + e]);
      ++written;
    }
  }
  CHECK(count_poison(key_cache) == key_cache.size() - written);
}

#else

TEST_CASE("emulated CUDA kernels", "[cuda-emulated]") {
  WARN("built without the CUDA toolkit");
}

#endif

// CPU kernels against straightforward loops written here (double accumulation, no paging).
#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <cmath>
#include <numbers>
#include <numeric>
#include <random>
#include <stdexcept>
#include <vector>

#include "kernels/cpu/activation.hpp"
#include "kernels/cpu/cpu_threads.hpp"
#include "kernels/cpu/linear.hpp"
#include "kernels/cpu/paged_attention.hpp"
#include "kernels/cpu/rms_norm.hpp"
#include "kernels/cpu/rotary_embedding.hpp"
#include "kernels/cpu/thread_pool.hpp"

namespace {

std::vector<float> random_vector(size_t n, std::mt19937& rng, float scale = 1.0f) {
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

double max_abs_diff(const std::vector<float>& a, const std::vector<double>& b) {
  double worst = 0.0;
  for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::abs(a[i] - b[i]));
  return worst;
}

}  // namespace

TEST_CASE("thread pool runs every item once and rethrows", "[cpu-kernels]") {
  vllm::ThreadPool pool(3);
  std::vector<std::atomic<int>> hits(1000);
  pool.parallel_for(1000, [&](int64_t i) { hits[i]++; });
  for (auto& h : hits) REQUIRE(h.load() == 1);
  REQUIRE_THROWS_AS(pool.parallel_for(10,
                                      [](int64_t i) {
                                        if (i == 7) throw std::runtime_error("item 7");
                                      }),
                    std::runtime_error);
  // The pool is still usable after an exception.
  std::atomic<int64_t> sum{0};
  pool.parallel_for(100, [&](int64_t i) { sum += i; });
  REQUIRE(sum.load() == 4950);
  REQUIRE_THROWS_AS(vllm::ThreadPool(0), std::invalid_argument);
}

TEST_CASE("linear matches y = x W^T + b, GEMM and GEMV paths, beta accumulates", "[cpu-kernels]") {
  std::mt19937 rng(1);
  for (int64_t rows : {1, 7}) {
    const int64_t in = 37, out = 23;
    auto x = random_vector(rows * in, rng);
    auto w = random_vector(out * in, rng);
    auto b = random_vector(out, rng);
    auto y0 = random_vector(rows * out, rng);
    std::vector<double> expect(rows * out);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t o = 0; o < out; ++o) {
        double acc = b[o] + y0[r * out + o];
        for (int64_t i = 0; i < in; ++i) acc += double(x[r * in + i]) * w[o * in + i];
        expect[r * out + o] = acc;
      }
    auto y = y0;
    vllm::cpu::linear(x.data(), w.data(), b.data(), y.data(), {rows, in, out}, 1.0f);
    REQUIRE(max_abs_diff(y, expect) < 1e-4);
    std::vector<float> fresh(rows * out, std::nanf(""));  // beta = 0 ignores what was there
    vllm::cpu::linear(x.data(), w.data(), nullptr, fresh.data(), {rows, in, out});
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t o = 0; o < out; ++o)
        REQUIRE(std::abs(fresh[r * out + o] - (expect[r * out + o] - b[o] - y0[r * out + o])) <
                1e-4);
  }
}

TEST_CASE("rms_norm and silu_and_mul match their definitions", "[cpu-kernels]") {
  std::mt19937 rng(2);
  const int64_t rows = 40, hidden = 19;
  auto x = random_vector(rows * hidden, rng, 3.0f);
  auto w = random_vector(hidden, rng);
  std::vector<float> out(rows * hidden);
  vllm::cpu::rms_norm(x.data(), w.data(), out.data(), rows, hidden, 1e-5f);
  std::vector<double> expect(rows * hidden);
  for (int64_t r = 0; r < rows; ++r) {
    double ss = 0;
    for (int64_t i = 0; i < hidden; ++i) ss += double(x[r * hidden + i]) * x[r * hidden + i];
    const double inv = 1.0 / std::sqrt(ss / hidden + 1e-5);
    for (int64_t i = 0; i < hidden; ++i) expect[r * hidden + i] = x[r * hidden + i] * inv * w[i];
  }
  REQUIRE(max_abs_diff(out, expect) < 1e-5);

  auto gate_up = random_vector(rows * 2 * hidden, rng, 4.0f);
  std::vector<float> act(rows * hidden);
  vllm::cpu::silu_and_mul(gate_up.data(), act.data(), rows, hidden);
  std::vector<double> expect_act(rows * hidden);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t i = 0; i < hidden; ++i) {
      const double g = gate_up[r * 2 * hidden + i], u = gate_up[r * 2 * hidden + hidden + i];
      expect_act[r * hidden + i] = g / (1.0 + std::exp(-g)) * u;
    }
  REQUIRE(max_abs_diff(act, expect_act) < 1e-4);
}

TEST_CASE("RoPE inverse frequencies: plain, linear and llama3 scaling", "[cpu-kernels]") {
  vllm::cpu::RopeParams params;
  params.head_dim = 128;
  params.theta = 500000.0;
  auto plain = vllm::cpu::rope_inv_freq(params);
  REQUIRE(plain.size() == 64);
  REQUIRE(plain[0] == Approx(1.0));
  REQUIRE(plain[10] == Approx(std::pow(500000.0, -20.0 / 128)));

  params.scaling = vllm::cpu::RopeParams::Scaling::kLinear;
  params.factor = 4.0;
  auto linear = vllm::cpu::rope_inv_freq(params);
  for (size_t i = 0; i < plain.size(); ++i) REQUIRE(linear[i] == Approx(plain[i] / 4.0));

  // Llama 3.1 (factor 8, low 1, high 4, original 8192): the three regimes of the wavelength.
  params.scaling = vllm::cpu::RopeParams::Scaling::kLlama3;
  params.factor = 8.0;
  params.low_freq_factor = 1.0;
  params.high_freq_factor = 4.0;
  params.original_max_position_embeddings = 8192;
  auto llama3 = vllm::cpu::rope_inv_freq(params);
  int kept = 0, divided = 0, blended = 0;
  for (size_t i = 0; i < plain.size(); ++i) {
    const double wavelen = 2 * std::numbers::pi / plain[i];
    if (wavelen < 8192.0 / 4) {
      REQUIRE(llama3[i] == Approx(plain[i]));
      ++kept;
    } else if (wavelen > 8192.0) {
      REQUIRE(llama3[i] == Approx(plain[i] / 8));
      ++divided;
    } else {
      const double smooth = (8192.0 / wavelen - 1.0) / 3.0;
      REQUIRE(llama3[i] == Approx((1 - smooth) * plain[i] / 8 + smooth * plain[i]));
      ++blended;
    }
  }
  REQUIRE(kept > 0);
  REQUIRE(divided > 0);
  REQUIRE(blended > 0);
  params.head_dim = 7;
  REQUIRE_THROWS_AS(vllm::cpu::rope_inv_freq(params), std::invalid_argument);
}

TEST_CASE("apply_rotary rotates (i, i + d/2) pairs by position * inv_freq", "[cpu-kernels]") {
  std::mt19937 rng(3);
  const int64_t tokens = 5, heads = 3, dim = 8, stride = heads * dim + 4;
  vllm::cpu::RopeParams params;
  params.head_dim = dim;
  auto inv_freq = vllm::cpu::rope_inv_freq(params);
  std::vector<int32_t> positions{0, 1, 17, 300, 4095};
  auto x = random_vector(tokens * stride, rng);
  auto original = x;
  std::vector<float> cos(tokens * dim / 2), sin(tokens * dim / 2);
  vllm::cpu::rope_cos_sin(positions.data(), tokens, inv_freq, cos.data(), sin.data());
  vllm::cpu::apply_rotary(x.data(), stride, tokens, heads, dim, cos.data(), sin.data());
  for (int64_t t = 0; t < tokens; ++t) {
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t i = 0; i < dim / 2; ++i) {
        const double angle = positions[t] * std::pow(10000.0, -2.0 * i / dim);
        const double a = original[t * stride + h * dim + i];
        const double b = original[t * stride + h * dim + i + dim / 2];
        REQUIRE(x[t * stride + h * dim + i] ==
                Approx(a * std::cos(angle) - b * std::sin(angle)).margin(1e-5));
        REQUIRE(x[t * stride + h * dim + i + dim / 2] ==
                Approx(b * std::cos(angle) + a * std::sin(angle)).margin(1e-5));
      }
    for (int64_t i = heads * dim; i < stride; ++i)  // padding past the heads is untouched
      REQUIRE(x[t * stride + i] == original[t * stride + i]);
  }
}

namespace {

// Dense causal GQA attention of one sequence over its full K/V (no paging), in double.
std::vector<double> dense_attention(const std::vector<float>& q, const std::vector<float>& k,
                                    const std::vector<float>& v, int64_t seq_len,
                                    int64_t first_query, int64_t heads, int64_t kv_heads,
                                    int64_t dim, double scale) {
  const int64_t num_queries = seq_len - first_query;
  std::vector<double> out(num_queries * heads * dim, 0.0);
  for (int64_t qi = 0; qi < num_queries; ++qi) {
    const int64_t pos = first_query + qi;
    for (int64_t h = 0; h < heads; ++h) {
      const int64_t kvh = h / (heads / kv_heads);
      std::vector<double> scores(pos + 1);
      double max_score = -1e300;
      for (int64_t p = 0; p <= pos; ++p) {
        double dot = 0;
        for (int64_t i = 0; i < dim; ++i)
          dot += double(q[(qi * heads + h) * dim + i]) * k[(p * kv_heads + kvh) * dim + i];
        scores[p] = dot * scale;
        max_score = std::max(max_score, scores[p]);
      }
      double denom = 0;
      for (auto& s : scores) denom += (s = std::exp(s - max_score));
      for (int64_t p = 0; p <= pos; ++p)
        for (int64_t i = 0; i < dim; ++i)
          out[(qi * heads + h) * dim + i] += scores[p] / denom * v[(p * kv_heads + kvh) * dim + i];
    }
  }
  return out;
}

}  // namespace

TEST_CASE("paged attention equals dense causal GQA attention for mixed prefill/decode",
          "[cpu-kernels]") {
  vllm::set_cpu_num_threads(2);
  std::mt19937 rng(4);
  // A large query scale makes scores in the hundreds: the softmax must subtract the max.
  const float query_scale = GENERATE(1.0f, 300.0f);
  // head_dim 40 exercises the vector loop and its scalar tail.
  const int64_t heads = 6, kv_heads = 2, dim = 40, block_size = 4, num_blocks = 64;
  // (context length, new tokens): a fresh prefill, a chunk after a cached prefix, decodes.
  const std::vector<std::pair<int64_t, int64_t>> seqs{{13, 13}, {30, 9}, {21, 1}, {1, 1}, {70, 1}};
  const int64_t max_blocks = 18;
  std::vector<int32_t> free_blocks(num_blocks);
  std::iota(free_blocks.begin(), free_blocks.end(), 0);
  std::shuffle(free_blocks.begin(), free_blocks.end(), rng);  // blocks out of order on purpose

  const int64_t token_elems = kv_heads * dim;
  std::vector<float> key_cache(num_blocks * block_size * token_elems, std::nanf(""));
  std::vector<float> value_cache(key_cache.size(), std::nanf(""));
  std::vector<int32_t> block_tables(seqs.size() * max_blocks, 0), query_start_loc{0}, seq_lens;
  std::vector<float> query;
  std::vector<std::vector<float>> seq_q, seq_k, seq_v;
  size_t next_block = 0;
  for (size_t s = 0; s < seqs.size(); ++s) {
    auto [len, new_tokens] = seqs[s];
    const int64_t blocks = (len + block_size - 1) / block_size;
    for (int64_t b = 0; b < blocks; ++b)
      block_tables[s * max_blocks + b] = free_blocks[next_block++];
    seq_k.push_back(random_vector(len * token_elems, rng));
    seq_v.push_back(random_vector(len * token_elems, rng));
    seq_q.push_back(random_vector(new_tokens * heads * dim, rng, query_scale));
    // The cached prefix goes straight into the cache; the new tokens go through write_kv_cache.
    std::vector<int64_t> slots;
    for (int64_t p = 0; p < len; ++p) {
      const int64_t slot =
          block_tables[s * max_blocks + p / block_size] * block_size + p % block_size;
      if (p < len - new_tokens) {
        std::copy_n(seq_k[s].begin() + p * token_elems, token_elems,
                    key_cache.begin() + slot * token_elems);
        std::copy_n(seq_v[s].begin() + p * token_elems, token_elems,
                    value_cache.begin() + slot * token_elems);
      } else {
        slots.push_back(slot);
      }
    }
    vllm::cpu::write_kv_cache({seq_k[s].data() + (len - new_tokens) * token_elems,
                               seq_v[s].data() + (len - new_tokens) * token_elems, token_elems,
                               slots.data(), key_cache.data(), value_cache.data()},
                              new_tokens, kv_heads, dim);
    query.insert(query.end(), seq_q[s].begin(), seq_q[s].end());
    query_start_loc.push_back(query_start_loc.back() + static_cast<int32_t>(new_tokens));
    seq_lens.push_back(static_cast<int32_t>(len));
  }
  const int64_t num_tokens = query_start_loc.back();
  std::vector<float> out(num_tokens * heads * dim, std::nanf(""));
  vllm::cpu::AttentionShape shape;
  shape.num_tokens = num_tokens;
  shape.num_seqs = static_cast<int64_t>(seqs.size());
  shape.num_heads = heads;
  shape.num_kv_heads = kv_heads;
  shape.head_dim = dim;
  shape.block_size = block_size;
  shape.max_blocks_per_seq = max_blocks;
  shape.scale = 1.0f / std::sqrt(float(dim));
  vllm::cpu::PagedAttentionArgs args;
  args.query = query.data();
  args.query_row_stride = heads * dim;
  args.key_cache = key_cache.data();
  args.value_cache = value_cache.data();
  args.query_start_loc = query_start_loc.data();
  args.seq_lens = seq_lens.data();
  args.block_tables = block_tables.data();
  args.out = out.data();
  vllm::cpu::paged_attention(args, shape);

  for (size_t s = 0; s < seqs.size(); ++s) {
    auto [len, new_tokens] = seqs[s];
    auto expect = dense_attention(seq_q[s], seq_k[s], seq_v[s], len, len - new_tokens, heads,
                                  kv_heads, dim, shape.scale);
    std::vector<float> got(out.begin() + query_start_loc[s] * heads * dim,
                           out.begin() + query_start_loc[s + 1] * heads * dim);
    INFO("sequence " << s << ", query scale " << query_scale);
    // Scores in the hundreds carry fp32 rounding of ~1e-4 into the weights; no overflow, no NaN.
    REQUIRE(max_abs_diff(got, expect) < (query_scale == 1.0f ? 1e-5 : 1e-3));
  }
}

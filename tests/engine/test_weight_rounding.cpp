// How far rounding SmolLM2's GGUF weights to bf16 or fp16 alone (activations and arithmetic in
// fp32 on the CPU) moves greedy decoding: the floor under the GPU-vs-CPU comparison of
// test_cuda_worker.cpp, whose GPU holds the weights in those types. A measurement (prints, asserts
// nothing), hidden from the default run: test_engine "[weight-rounding]" (about 2 minutes).
#include <bit>
#include <catch2/catch.hpp>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include "model/kv_cache.hpp"
#include "model/llama_model.hpp"
#include "model/model_loader.hpp"
#include "tests/support/test_paths.hpp"
namespace vllm {
namespace {
float round_bf16(float v) {
  uint32_t b = std::bit_cast<uint32_t>(v);
  b += 0x7fff + ((b >> 16) & 1);
  return std::bit_cast<float>(b & 0xffff0000u);
}
float round_fp16(float v) {
  return static_cast<float>(static_cast<_Float16>(v));
}
void round_all(LlamaWeights& w, float (*f)(float)) {
  auto r = [&](HostTensor& t) {
    for (auto& v : t.data) v = f(v);
  };
  r(w.embed_tokens);
  r(w.norm);
  r(w.lm_head);
  for (auto& l : w.layers) {
    for (auto* t : {&l.input_layernorm, &l.q_proj, &l.k_proj, &l.v_proj, &l.o_proj,
                    &l.post_attention_layernorm, &l.gate_proj, &l.up_proj, &l.down_proj})
      r(*t);
  }
}
std::vector<std::vector<int32_t>> greedy(LlamaModel& model,
                                         const std::vector<std::vector<int32_t>>& prompts) {
  std::vector<std::vector<int32_t>> out;
  for (const auto& p : prompts) {
    KvCache cache(model.kv_cache_shape(64, 16));
    std::vector<int32_t> toks = p, gen;
    int32_t start = 0;
    for (int step = 0; step < 32; ++step) {
      ForwardBatch b;
      int32_t n = static_cast<int32_t>(toks.size());
      for (int32_t i = 0; i < n; ++i) {
        b.token_ids.push_back(toks[i]);
        b.positions.push_back(start + i);
        b.slot_mapping.push_back(start + i);
      }
      b.query_start_loc = {0, n};
      b.seq_lens = {start + n};
      b.max_blocks_per_seq = 64;
      for (int i = 0; i < 64; ++i) b.block_tables.push_back(i);
      b.logits_indices = {n - 1};
      HostTensor logits = model.forward(b, cache);
      int32_t best = 0;
      for (int64_t v = 1; v < logits.shape[1]; ++v)
        if (logits.data[v] > logits.data[best]) best = int32_t(v);
      gen.push_back(best);
      start += n;
      toks = {best};
    }
    out.push_back(gen);
  }
  return out;
}
}  // namespace
TEST_CASE("SmolLM2 greedy decoding with its weights rounded to bf16 / fp16",
          "[.][weight-rounding]") {
  std::ifstream file(test::reference_data("llamacpp/reference.json"));
  const auto reference = nlohmann::json::parse(file);
  std::vector<std::vector<int32_t>> prompts;
  for (const auto& p : reference.at("prompts")) {
    if (prompts.size() == 30) break;
    prompts.push_back(p.at("prompt_token_ids").get<std::vector<int32_t>>());
  }
  const auto path = test::bundled_model_path();
  LlamaModel exact(load_llama_weights(path));
  auto ref = greedy(exact, prompts);
  for (auto [name, f] : {std::pair{"bf16", &round_bf16}, std::pair{"fp16", &round_fp16}}) {
    LlamaWeights w = load_llama_weights(path);
    round_all(w, f);
    LlamaModel m(std::move(w));
    auto got = greedy(m, prompts);
    int same = 0;
    for (size_t i = 0; i < ref.size(); ++i) same += got[i] == ref[i];
    WARN(name << "-rounded weights: " << same
              << "/30 identical greedy 32-token continuations vs fp32 weights");
  }
}
}  // namespace vllm

// The CUDA backend against Hugging Face `transformers` on random-initialised Llama and Qwen2 models
// (4 layers, hidden 1024, 16 query / 4 KV heads) that bench/gpu/hf_compare.py saved with
// `save_pretrained` on the GPU machine, beside transformers' float32 outputs on the same bf16
// weights: last-position logits within 2e-2 relative error and each request's greedy tokens with
// 32 concurrent requests equal to its tokens alone, on every model; greedy 64-token
// continuations identical for >= 95% of 32 prompts on the briefly trained models ("-trained",
// decisive next-token choices). On the untrained ones the greedy counts are printed: their top-2
// gaps sit inside bf16 rounding noise (transformers' bf16 run itself keeps only a few of 32), so
// there the test prints agreement up to transformers' first top-2 gap below 0.05 too.
// Runs when $VLLM_CPP_HF_DIR names hf_compare.py's output.
#if VLLM_HAVE_CUDA

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "engine/engine.hpp"
#include "kernels/cuda/cuda_check.hpp"
#include "model/cuda/cuda_llama_model.hpp"
#include "model/model_loader.hpp"
#include "runtime/cuda/cuda_await.hpp"
#include "tests/engine/engine_test_support.hpp"

namespace vllm {
namespace {

namespace fs = std::filesystem;
constexpr int32_t kBlockSize = 16;

struct Reference {
  int64_t vocab = 0;
  std::vector<std::vector<int32_t>> prompts, greedy;
  std::vector<std::vector<double>> gaps;  // transformers' top-2 logit gap at each greedy step
  std::vector<float> logits;              // [prompts, vocab]
  // transformers' own bf16 run against its float32 run: the rounding noise of a bf16 engine.
  double bf16_worst_error = 0.0, bf16_mean_error = 0.0;
};

Reference read_reference(const fs::path& dir) {
  std::ifstream file(dir / "reference.json");
  REQUIRE(file.good());
  const auto json = nlohmann::json::parse(file);
  Reference ref;
  ref.vocab = json.at("vocab_size").get<int64_t>();
  ref.prompts = json.at("prompts").get<std::vector<std::vector<int32_t>>>();
  ref.greedy = json.at("greedy_token_ids").get<std::vector<std::vector<int32_t>>>();
  ref.gaps = json.at("greedy_top2_gaps").get<std::vector<std::vector<double>>>();
  ref.bf16_worst_error = json.value("transformers_bf16_worst_logits_error", 0.0);
  ref.bf16_mean_error = json.value("transformers_bf16_mean_logits_error", 0.0);
  ref.logits.resize(ref.prompts.size() * static_cast<size_t>(ref.vocab));
  std::ifstream logits(dir / "logits.f32", std::ios::binary);
  logits.read(reinterpret_cast<char*>(ref.logits.data()),
              static_cast<std::streamsize>(ref.logits.size() * sizeof(float)));
  REQUIRE(logits.gcount() == static_cast<std::streamsize>(ref.logits.size() * sizeof(float)));
  return ref;
}

// Every prompt's prefill in one flat batch; logits at each prompt's last token.
ForwardBatch prefill_batch(const std::vector<std::vector<int32_t>>& prompts) {
  ForwardBatch batch;
  int32_t max_blocks = 0;
  for (const auto& p : prompts) {
    max_blocks =
        std::max(max_blocks, static_cast<int32_t>((p.size() + kBlockSize - 1) / kBlockSize));
  }
  batch.max_blocks_per_seq = max_blocks;
  batch.query_start_loc.push_back(0);
  for (size_t s = 0; s < prompts.size(); ++s) {
    const int32_t first_block = static_cast<int32_t>(s) * max_blocks;
    for (size_t i = 0; i < prompts[s].size(); ++i) {
      const auto position = static_cast<int32_t>(i);
      batch.token_ids.push_back(prompts[s][i]);
      batch.positions.push_back(position);
      batch.slot_mapping.push_back(int64_t{first_block + position / kBlockSize} * kBlockSize +
                                   position % kBlockSize);
    }
    batch.query_start_loc.push_back(batch.num_tokens());
    batch.seq_lens.push_back(static_cast<int32_t>(prompts[s].size()));
    for (int32_t b = 0; b < max_blocks; ++b) batch.block_tables.push_back(first_block + b);
    batch.logits_indices.push_back(batch.num_tokens() - 1);
  }
  return batch;
}

}  // namespace

TEST_CASE("CUDA backend matches transformers on random Llama and Qwen2 models", "[cuda][hf]") {
  const char* root = std::getenv("VLLM_CPP_HF_DIR");
  if (root == nullptr || !cuda_device_available()) {
    WARN("skipped: needs a CUDA device and $VLLM_CPP_HF_DIR (bench/gpu/hf_compare.py's output)");
    return;
  }
  for (const char* arch : {"llama-trained", "qwen2-trained", "llama", "qwen2"}) {
    const bool trained = std::string(arch).find("trained") != std::string::npos;
    const fs::path dir = fs::path(root) / arch;
    INFO(arch);
    const Reference ref = read_reference(dir);
    const auto num_prompts = static_cast<int32_t>(ref.prompts.size());

    // 1. Last-position logits of every prompt (one mixed prefill batch).
    double worst_error = 0.0, mean_error = 0.0;
    {
      int32_t total = 0;
      for (const auto& p : ref.prompts) total += static_cast<int32_t>(p.size());
      CudaLlamaModel model(load_llama_weights(dir), cuda::ActivationType::kBf16, total);
      const ForwardBatch batch = prefill_batch(ref.prompts);
      model.allocate_kv_cache(int64_t{num_prompts} * batch.max_blocks_per_seq, kBlockSize);
      cudaStream_t stream = nullptr;
      cuda::check_cuda(cudaStreamCreate(&stream), "cudaStreamCreate");
      const int64_t rows = model.enqueue_forward(batch, stream);
      cuda::check_cuda(cudaStreamSynchronize(stream), "cudaStreamSynchronize");
      cuda::check_cuda(cudaStreamDestroy(stream), "cudaStreamDestroy");
      const HostTensor logits = model.host_logits(rows);
      REQUIRE(logits.shape[1] == ref.vocab);
      for (int32_t p = 0; p < num_prompts; ++p) {
        double diff = 0.0, norm = 0.0;
        for (int64_t v = 0; v < ref.vocab; ++v) {
          const double r = ref.logits[p * ref.vocab + v];
          const double g = logits.data[p * ref.vocab + v];
          diff += (g - r) * (g - r);
          norm += r * r;
        }
        worst_error = std::max(worst_error, std::sqrt(diff / norm));
        mean_error += std::sqrt(diff / norm) / num_prompts;
      }
    }

    // 2. Greedy continuations through the engine: each alone, then all 32 at once.
    EngineArgs args;
    args.model = dir.string();
    args.device = "cuda";
    args.gpu_memory_utilization = 0.5;
    const test::GreedyRuns runs = test::greedy_alone_and_together(
        args, ref.prompts, static_cast<int32_t>(ref.greedy[0].size()));
    const auto& alone = runs.alone;
    const auto& together = runs.together;
    int same_as_hf = 0, same_alone_together = 0, same_until_close_call = 0;
    for (int32_t p = 0; p < num_prompts; ++p) {
      same_as_hf += alone[p] == ref.greedy[p] ? 1 : 0;
      // Identical up to the first step where transformers' own top-2 gap is below 0.05.
      bool agree = true;
      for (size_t k = 0; k < ref.greedy[p].size() && ref.gaps[p][k] >= 0.05; ++k) {
        agree = agree && k < alone[p].size() && alone[p][k] == ref.greedy[p][k];
      }
      same_until_close_call += agree ? 1 : 0;
      same_alone_together += alone[p] == together[p] ? 1 : 0;
    }
    WARN(arch << ": last-position logits relative error worst " << worst_error << " mean "
              << mean_error << " (transformers bf16: worst " << ref.bf16_worst_error << " mean "
              << ref.bf16_mean_error << "); " << same_as_hf << "/" << num_prompts
              << " greedy 64-token continuations identical to transformers; "
              << same_until_close_call << "/" << num_prompts
              << " identical up to transformers' first top-2 gap below 0.05; "
              << same_alone_together << "/" << num_prompts
              << " identical alone and with 32 concurrent");
    if (trained) {
      // A trained model's sharp attention makes bf16 noise larger: the bound is 2e-2 or
      // transformers' own bf16 error, whichever is larger.
      CHECK(worst_error <= std::max(2e-2, ref.bf16_worst_error));
      CHECK(same_as_hf * 100 >= 95 * num_prompts);
    } else {
      CHECK(worst_error <= 2e-2);
    }
    CHECK(same_alone_together == num_prompts);
  }
}

}  // namespace vllm

#endif  // VLLM_HAVE_CUDA

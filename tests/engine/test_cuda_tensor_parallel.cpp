// Tensor parallel on GPUs (NCCL): the engine with --tensor-parallel-size 2 gives the greedy tokens
// of --tensor-parallel-size 1 on the transformers-saved models of bench/gpu/hf_compare.py, each
// request alone and with 32 at once. TP=2 differs from TP=1 only in the order of fp32 sums (the
// row-parallel GEMM outputs are all-reduced in fp32 before the fp32 residual stream), so on the
// briefly trained models (decisive next-token choices) every continuation must be identical; on
// the untrained random ones (top-2 gaps inside rounding noise) the count is printed. Needs two
// GPUs and $VLLM_CPP_HF_DIR. With $VLLM_CPP_TP_DUMMY_MODEL (a config.json directory, e.g. the
// Llama-3-8B shape of bench/gpu/bench_8b.py), the same comparison on --load-format dummy weights
// over 16 random prompts.
#if VLLM_HAVE_CUDA

#include <cuda_runtime_api.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "engine/engine.hpp"
#include "tests/engine/engine_test_support.hpp"

namespace vllm {
namespace {

namespace fs = std::filesystem;

using Continuations = std::vector<std::vector<int32_t>>;

using Runs = test::GreedyRuns;

Runs greedy_runs(const fs::path& dir, int32_t tp, const Continuations& prompts, int32_t tokens,
                 bool dummy = false) {
  EngineArgs args;
  args.model = dir.string();
  if (dummy) args.load_format = "dummy";
  args.device = "cuda";
  args.gpu_memory_utilization = 0.4;
  args.tensor_parallel_size = tp;
  return test::greedy_alone_and_together(args, prompts, tokens);
}

int count_equal(const Continuations& a, const Continuations& b) {
  int same = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) same += a[i] == b[i] ? 1 : 0;
  return same;
}

}  // namespace

TEST_CASE("CUDA tensor parallel 2 (NCCL) gives tensor parallel 1's greedy tokens", "[cuda][tp]") {
  const char* root = std::getenv("VLLM_CPP_HF_DIR");
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess) devices = 0;
  if (root == nullptr || devices < 2) {
    WARN("skipped: needs 2 CUDA devices and $VLLM_CPP_HF_DIR (bench/gpu/hf_compare.py's output)");
    return;
  }
  for (const char* name : {"llama-trained", "qwen2-trained", "llama", "qwen2"}) {
    const fs::path dir = fs::path(root) / name;
    INFO(name);
    std::ifstream file(dir / "reference.json");
    REQUIRE(file.good());
    const auto json = nlohmann::json::parse(file);
    const auto prompts = json.at("prompts").get<Continuations>();
    const auto tokens = json.at("new_tokens").get<int32_t>();
    const Runs tp1 = greedy_runs(dir, 1, prompts, tokens);
    const Runs tp2 = greedy_runs(dir, 2, prompts, tokens);
    const int same = count_equal(tp1.alone, tp2.alone);
    const int same_together = count_equal(tp2.alone, tp2.together);
    WARN(name << " on " << tp2.device << ": TP=2 = TP=1 on " << same << "/" << prompts.size()
              << " greedy " << tokens << "-token continuations; TP=2 alone = TP=2 with "
              << prompts.size() << " concurrent on " << same_together << "/" << prompts.size());
    CHECK(tp2.device.find("tp 2") != std::string::npos);
    CHECK(same_together == static_cast<int>(prompts.size()));
    if (std::string(name).find("trained") != std::string::npos) {
      CHECK(same == static_cast<int>(prompts.size()));
    }
  }
}

TEST_CASE("CUDA tensor parallel 2 on dummy weights of a large shape gives TP=1's greedy tokens",
          "[cuda][tp]") {
  const char* dir = std::getenv("VLLM_CPP_TP_DUMMY_MODEL");
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess) devices = 0;
  if (dir == nullptr || devices < 2) {
    WARN("skipped: needs 2 CUDA devices and $VLLM_CPP_TP_DUMMY_MODEL (a config.json directory)");
    return;
  }
  std::mt19937 rng(7);
  Continuations prompts;
  for (int i = 0; i < 16; ++i) {
    std::vector<int32_t> prompt(static_cast<size_t>(std::uniform_int_distribution(64, 512)(rng)));
    for (auto& t : prompt) t = std::uniform_int_distribution(100, 30000)(rng);
    prompts.push_back(std::move(prompt));
  }
  const Runs tp1 = greedy_runs(dir, 1, prompts, 32, /*dummy=*/true);
  const Runs tp2 = greedy_runs(dir, 2, prompts, 32, /*dummy=*/true);
  const int same = count_equal(tp1.alone, tp2.alone);
  WARN(dir << " (dummy) on " << tp2.device << ": TP=2 = TP=1 on " << same << "/" << prompts.size()
           << " greedy 32-token continuations; TP=2 alone = together on "
           << count_equal(tp2.alone, tp2.together) << "/" << prompts.size());
  CHECK(same == static_cast<int>(prompts.size()));
}

}  // namespace vllm

#endif  // VLLM_HAVE_CUDA

// "Two formats, one model": the bundled SmolLM2 GGUF and the Hugging Face directory that
// tests/reference/gguf_to_hf.py converts it into (weights dequantized by the `gguf` package)
// give the same logits through the forward pass.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdlib>
#include <filesystem>

#include "kernels/cpu/cpu_threads.hpp"
#include "model/kv_cache.hpp"
#include "model/llama_model.hpp"
#include "model/model_loader.hpp"
#include "tests/model/llama_test_model.hpp"
#include "tests/model/model_test_files.hpp"
#include "tests/support/test_paths.hpp"

namespace {

// Logits at every position of a few prompts, run as one mixed batch.
vllm::HostTensor all_logits(vllm::LlamaModel& model) {
  vllm::KvCache cache(model.kv_cache_shape(32, 16));
  vllm::test::TestBatcher batcher(32, 16, 16, 3);
  std::vector<vllm::test::TestBatcher::Chunk> chunks;
  for (int s = 0; s < 3; ++s) {
    std::vector<int32_t> tokens;
    for (int i = 0; i < 9 + 60 * s; ++i) tokens.push_back((i * 7919 + s * 104729) % 49152);
    chunks.push_back({s, tokens});
  }
  auto batch = batcher.build(chunks);
  batch.logits_indices.clear();
  for (int32_t t = 0; t < batch.num_tokens(); ++t) batch.logits_indices.push_back(t);
  return model.forward(batch, cache);
}

}  // namespace

TEST_CASE("bundled SmolLM2: GGUF and its HF conversion give the same logits", "[two-formats]") {
  const auto gguf = vllm::test::bundled_model_path();
  if (!std::filesystem::exists(gguf)) {
    WARN("bundled model not found at " << gguf << " (run scripts/fetch-model); test skipped");
    return;
  }
  const auto python = vllm::test::source_dir() / ".venv" / "bin" / "python";
  if (std::system((python.string() + " -c 'import gguf, safetensors' 2>/dev/null").c_str()) != 0) {
    WARN("skipped: .venv/bin/python with gguf and safetensors runs tests/reference/gguf_to_hf.py");
    return;
  }
  vllm::test::TempDir dir;
  const auto script = vllm::test::source_dir() / "tests" / "reference" / "gguf_to_hf.py";
  REQUIRE(std::system((python.string() + " " + script.string() + " " + gguf.string() + " " +
                       dir.path().string() + " > /dev/null")
                          .c_str()) == 0);

  vllm::set_cpu_num_threads(2);
  vllm::HostTensor from_gguf, from_hf;
  {
    vllm::LlamaModel model(vllm::load_llama_weights(gguf, vllm::LoadFormat::kGguf));
    from_gguf = all_logits(model);
  }
  {
    vllm::LlamaModel model(vllm::load_llama_weights(dir.path(), vllm::LoadFormat::kSafetensors));
    from_hf = all_logits(model);
  }
  REQUIRE(from_gguf.shape == from_hf.shape);
  double max_diff = 0.0;
  for (size_t i = 0; i < from_gguf.data.size(); ++i) {
    max_diff = std::max(max_diff, double(std::abs(from_gguf.data[i] - from_hf.data[i])));
  }
  WARN("GGUF vs HF directory: max abs logit difference " << max_diff << " over "
                                                         << from_gguf.shape[0] << " positions");
  REQUIRE(max_diff <= 1e-4);
}

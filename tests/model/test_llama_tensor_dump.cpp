// A debugging tool, not a check (hidden: runs only when named): runs one prompt and a few decode
// steps on the bundled GGUF through the default CPU path and writes every intermediate activation
// the model reports (LlamaModel::set_tensor_observer) as float32 files, for comparison with
// llama.cpp's own (tests/reference/dump_llamacpp_tensors.py, compare_tensor_dumps.py).
//   VLLM_DUMP_TOKENS='[1,2,3]' VLLM_DUMP_DECODE='[4,5]' VLLM_DUMP_DIR=/tmp/ours
//     build/tests/test_model "[.llama-dump]"
#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "kernels/cpu/cpu_threads.hpp"
#include "model/kv_cache.hpp"
#include "model/llama_model.hpp"
#include "model/model_loader.hpp"
#include "tests/model/llama_test_model.hpp"
#include "tests/support/test_paths.hpp"

TEST_CASE("dump the intermediate tensors of one prompt", "[.llama-dump]") {
  const char* tokens_env = std::getenv("VLLM_DUMP_TOKENS");
  const char* dir_env = std::getenv("VLLM_DUMP_DIR");
  if (tokens_env == nullptr || dir_env == nullptr) {
    FAIL("set VLLM_DUMP_TOKENS (a JSON list of token ids) and VLLM_DUMP_DIR");
  }
  const char* decode_env = std::getenv("VLLM_DUMP_DECODE");
  const auto prompt = nlohmann::json::parse(tokens_env).get<std::vector<int32_t>>();
  const auto decode =
      nlohmann::json::parse(decode_env ? decode_env : "[]").get<std::vector<int32_t>>();
  const std::filesystem::path dir(dir_env);
  std::filesystem::create_directories(dir);

  vllm::set_cpu_num_threads(1);
  vllm::LlamaModel model(vllm::load_llama_checkpoint(vllm::test::bundled_model_path()));
  nlohmann::json index = nlohmann::json::array();
  int step = 0;
  model.set_tensor_observer([&](const vllm::LlamaModel::TensorView& t) {
    const std::string file =
        "s" + std::to_string(step) + "_" + t.name + "_" + std::to_string(t.layer) + ".f32";
    std::ofstream out(dir / file, std::ios::binary);
    for (int64_t r = 0; r < t.rows; ++r) {
      out.write(reinterpret_cast<const char*>(t.data + r * t.row_stride),
                static_cast<std::streamsize>(t.cols * sizeof(float)));
    }
    index.push_back({{"name", t.name},
                     {"layer", t.layer},
                     {"step", step},
                     {"rows", t.rows},
                     {"cols", t.cols},
                     {"file", file}});
  });
  vllm::KvCache cache(model.kv_cache_shape(64, 16));
  vllm::test::TestBatcher batcher(64, 16, 64, 1);
  model.forward(batcher.build({{0, prompt}}), cache);
  for (int32_t token : decode) {
    ++step;
    model.forward(batcher.build({{0, {token}}}), cache);
  }
  std::ofstream(dir / "index.json") << index.dump(1);
}

// Running engine coroutines from a test: one io_context on the test's thread.
#pragma once

#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>

#include "engine/engine.hpp"
#include "runtime/when_all.hpp"
#include "tests/support/test_paths.hpp"

namespace vllm::test {

template <class F>
void run_async(F body) {
  asio::io_context context;
  std::exception_ptr failure;
  asio::co_spawn(context, body(), [&](std::exception_ptr e) { failure = e; });
  context.run();
  if (failure) std::rethrow_exception(failure);
}

// Full acceptance sizes when VLLM_CPP_FULL_ACCEPTANCE=1, CI sizes otherwise.
inline bool full_acceptance() {
  const char* env = std::getenv("VLLM_CPP_FULL_ACCEPTANCE");
  return env != nullptr && std::string(env) == "1";
}

inline EngineArgs small_engine_args() {
  EngineArgs args;
  args.model = bundled_model_path().string();
  args.device = "cpu";  // the CPU serving core, also on a machine with a GPU
  args.kv_cache_memory_bytes = int64_t{256} << 20;
  args.max_num_batched_tokens = 512;
  return args;
}

// Each prompt's greedy tokens (EOS ignored) on one engine: every request alone, then all at once.
struct GreedyRuns {
  std::vector<std::vector<int32_t>> alone, together;
  std::string device;  // the engine's device_name()
};

inline GreedyRuns greedy_alone_and_together(const EngineArgs& args,
                                            const std::vector<std::vector<int32_t>>& prompts,
                                            int32_t max_tokens) {
  GreedyRuns runs;
  run_async([&]() -> asio::awaitable<void> {
    Engine engine = co_await Engine::create(args);
    runs.device = engine.device_name();
    SamplingParams params;
    params.temperature = 0.0f;
    params.max_tokens = max_tokens;
    params.ignore_eos = true;
    for (const auto& prompt : prompts) {
      Completion out = co_await engine.generate(prompt, params);
      runs.alone.push_back(out.outputs[0].token_ids);
    }
    std::vector<asio::awaitable<Completion>> all;
    for (const auto& prompt : prompts) all.push_back(engine.generate(prompt, params));
    auto results = co_await when_all(std::move(all));
    for (auto& r : results) runs.together.push_back(r.outputs[0].token_ids);
    co_await engine.shutdown(10000);
  });
  return runs;
}

// How one streamed request ended, for the abort tests.
struct StreamOutcome {
  bool want_abort = false;  // abort it after `stop_after` events
  std::string finish;       // the last finish reason seen
  int finals = 0;           // events that carried a finish reason (exactly one expected)
};

// Streams one request, aborting it after `stop_after` events when outcome->want_abort.
inline asio::awaitable<int> stream_maybe_aborting(Engine engine, std::vector<int32_t> prompt,
                                                  SamplingParams params, StreamOutcome* outcome,
                                                  int stop_after) {
  auto stream = co_await engine.stream(std::move(prompt), std::move(params));
  int events = 0;
  while (auto delta = co_await stream.next()) {
    if (outcome->want_abort && ++events == stop_after) co_await engine.abort(stream.request_id());
    if (delta->finish_reason) {
      outcome->finish = *delta->finish_reason;
      ++outcome->finals;
    }
  }
  co_return 0;
}

// A config.json for --load-format dummy: a Llama of 8 query / 4 KV heads and a 1000-token
// (padded 1024) vocabulary, so heads, MLP rows and vocabulary divide by 2 and 4.
inline std::filesystem::path divisible_dummy_model(const std::string& name = "vllm-dummy-llama",
                                                   int hidden = 128, int intermediate = 512,
                                                   int layers = 4) {
  auto dir = std::filesystem::temp_directory_path() / name;
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "config.json")
      << R"({"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 1000,)"
      << R"( "hidden_size": )" << hidden << R"(, "intermediate_size": )" << intermediate
      << R"(, "num_hidden_layers": )" << layers
      << R"(, "num_attention_heads": 8, "num_key_value_heads": 4,
    "max_position_embeddings": 512, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
    "tie_word_embeddings": false, "bos_token_id": 1, "eos_token_id": 2})";
  return dir;
}

// Engine arguments for that model on the CPU, small enough for CI; chunked prefill (256-token
// steps) mixes with decodes.
inline EngineArgs divisible_dummy_args() {
  EngineArgs args;
  args.model = divisible_dummy_model().string();
  args.load_format = "dummy";
  args.device = "cpu";
  args.seed = 7;
  args.kv_cache_memory_bytes = int64_t{32} << 20;
  args.max_num_batched_tokens = 256;
  return args;
}

}  // namespace vllm::test

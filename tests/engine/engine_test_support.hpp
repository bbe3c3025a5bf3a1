// Running engine coroutines from a test: one io_context on the test's thread.
#pragma once

#include <cstdlib>
#include <exception>

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>

#include "engine/engine.hpp"
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

}  // namespace vllm::test

// The C++ API in one page: create an engine on the bundled model, generate a completion, then
// generate again with a callback that prints each piece of text as it arrives.
#include <cstdio>

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>

#include "engine/engine.hpp"

asio::awaitable<void> demo() {
  vllm::EngineArgs args;  // model: the bundled SmolLM2-135M-Instruct
  vllm::Engine engine = co_await vllm::Engine::create(args);

  vllm::SamplingParams params;
  params.temperature = 0;  // greedy
  params.max_tokens = 16;
  vllm::Completion out = co_await engine.generate("The capital of France is", params);
  std::printf("completion: %s\n  (%d prompt + %d generated tokens, finish: %s)\n",
              out.outputs[0].text.c_str(), out.usage.prompt_tokens, out.usage.completion_tokens,
              out.outputs[0].finish_reason.c_str());

  std::printf("streamed:   ");
  auto print = [](const vllm::TokenDelta& delta) {
    std::printf("%s", delta.text.c_str());
    std::fflush(stdout);
  };
  co_await engine.generate("Once upon a time", params, print);
  std::printf("\n");
  co_await engine.shutdown();
}

int main() {
  asio::io_context context;
  int status = 0;
  asio::co_spawn(context, demo(), [&](std::exception_ptr error) {
    if (!error) return;
    try {
      std::rethrow_exception(error);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "error: %s\n", e.what());
      status = 1;
    }
  });
  context.run();
  return status;
}

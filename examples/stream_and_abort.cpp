// Async streams, aborting a request midway, and an offline batch of prompts.
#include <cstdio>

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>

#include "engine/engine.hpp"

asio::awaitable<void> demo() {
  vllm::EngineArgs args;
  vllm::Engine engine = co_await vllm::Engine::create(args);

  vllm::SamplingParams params;
  params.temperature = 0.7f;
  params.seed = 7;  // the same seed gives the same text
  params.max_tokens = 64;
  params.ignore_eos = true;  // so that it is still running when aborted

  // Read a stream, and abort it after a few pieces.
  vllm::CompletionStream stream = co_await engine.stream("Write a poem about the sea:", params);
  int pieces = 0;
  std::string finish;
  while (auto delta = co_await stream.next()) {
    std::printf("%s", delta->text.c_str());
    if (++pieces == 5) co_await engine.abort(stream.request_id());
    if (delta->finish_reason) finish = *delta->finish_reason;
  }
  std::printf("\n[finish reason: %s]\n", finish.c_str());

  // An offline batch: every prompt runs concurrently (continuous batching).
  std::vector<vllm::Prompt> prompts = {std::string("1, 2, 3,"), std::string("Paris is"),
                                       std::string("def fib(n):")};
  params.max_tokens = 8;
  auto results = co_await engine.generate_batch(std::move(prompts), params);
  for (const auto& result : results) std::printf("batch: %s\n", result.outputs[0].text.c_str());
  co_await engine.shutdown();
  if (finish != "abort") throw std::runtime_error("the aborted stream did not end with abort");
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

// Driving a SchedulerActor over a worker from a test: greedy requests all submitted at once,
// their tokens collected from the request streams (tests of pipelines and micro-batches).
#pragma once

#include <exception>
#include <memory>
#include <string>
#include <vector>

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <catch2/catch.hpp>

#include "actors/scheduler_actor.hpp"
#include "runtime/async_stream.hpp"
#include "runtime/thread_model.hpp"
#include "runtime/when_all.hpp"

namespace vllm::test {

// `context` must outlive the worker threads (one may still be inside a post() to it when run()
// returns): tests declare it before their ThreadModel.
template <class F>
void run_async(asio::io_context& context, F body) {
  context.restart();
  std::exception_ptr failure;
  asio::co_spawn(context, body(), [&](std::exception_ptr e) { failure = e; });
  context.run();
  if (failure) std::rethrow_exception(failure);
}

// Each prompt's greedy tokens (max_tokens, EOS ignored) through a SchedulerActor over `worker`
// with at most `max_steps_in_flight` steps in flight; afterwards no KV block is held.
inline std::vector<std::vector<int32_t>> serve_greedy(
    asio::io_context& context, ThreadModel& threads, std::shared_ptr<Worker> worker,
    int32_t max_steps_in_flight, int32_t max_num_batched_tokens, int32_t block_size,
    const std::vector<std::vector<int32_t>>& prompts, int32_t max_tokens) {
  SchedulerConfig config;
  config.max_num_batched_tokens = max_num_batched_tokens;
  config.max_model_len = 64;
  KvBlockManagerConfig kv{static_cast<int32_t>(worker->num_kv_blocks()), block_size, true};
  auto scheduler = std::make_shared<SchedulerActor>(threads.frontend(), Scheduler(config, kv),
                                                    worker, max_steps_in_flight);
  std::vector<std::vector<int32_t>> outputs(prompts.size());
  run_async(context, [&]() -> asio::awaitable<void> {
    std::vector<asio::awaitable<void>> clients;
    for (size_t i = 0; i < prompts.size(); ++i) {
      clients.push_back([](SchedulerActor& scheduler, std::string id, std::vector<int32_t> prompt,
                           int32_t max_tokens, std::vector<int32_t>& out) -> asio::awaitable<void> {
        NewRequest request;
        request.id = std::move(id);
        request.prompt_token_ids = std::move(prompt);
        request.params.temperature = 0;
        request.params.max_tokens = max_tokens;
        request.params.ignore_eos = true;
        auto sink = std::make_shared<AsyncStream<RequestEvent>>();
        co_await scheduler.add_request(request, sink);
        while (auto event = co_await sink->next()) {
          REQUIRE_FALSE(event->error);
          out.insert(out.end(), event->update.new_token_ids.begin(),
                     event->update.new_token_ids.end());
        }
      }(*scheduler, "r" + std::to_string(i), prompts[i], max_tokens, outputs[i]));
    }
    co_await when_all(std::move(clients));
    co_await scheduler->stop();
    co_await worker->stop();
  });
  CHECK(scheduler->stats().kv_cache_usage == 0.0);
  return outputs;
}

}  // namespace vllm::test

// SchedulerActor: the Scheduler (pure bookkeeping) behind a strand, driving the step loop:
// plan a step, await the worker (the strand is free meanwhile: new requests and aborts are
// handled while the model runs), apply the sampled tokens and send each request its update.
// Every request has a sink (an AsyncStream) that receives its updates and is closed after the
// last one.
#pragma once

#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include <asio/any_io_executor.hpp>

#include "actors/scheduler.hpp"
#include "actors/worker.hpp"
#include "runtime/actor.hpp"
#include "runtime/async_stream.hpp"
#include "runtime/one_shot.hpp"

namespace vllm {

// One update for one request; `error` set when the step it was in failed (the request is over).
struct RequestEvent {
  RequestUpdate update;
  std::optional<std::string> error;
};
using RequestSink = std::shared_ptr<AsyncStream<RequestEvent>>;

class SchedulerActor final : public Actor {
 public:
  // max_steps_in_flight > 1 (pipeline parallelism: the pipeline's depth) plans the next step
  // while earlier ones run, as far as the scheduler finds requests that need no sample from them
  // (new admissions, further prefill chunks, decodes of requests in no step in flight); the
  // worker runs those steps in order. When the worker reports micro_batches() M > 1 (stages on
  // their own hardware), at least M steps are kept in flight and each takes at most
  // ceil(unfinished requests / M) requests, so that in steady decode the requests form M
  // disjoint micro-batches and the stages work on different ones at once (vLLM's virtual
  // engines, rebalanced at every plan). Otherwise every step takes all it can.
  SchedulerActor(asio::any_io_executor executor, Scheduler scheduler,
                 std::shared_ptr<Worker> worker, int32_t max_steps_in_flight = 1);

  // Queues a request (throws InvalidRequestError, nothing queued) and starts the step loop.
  asio::awaitable<void> add_request(NewRequest request, RequestSink sink);
  // Ends a request now (a stop string matched, or aborted); its sink gets a final update.
  asio::awaitable<bool> finish_request(RequestId id, FinishReason reason);
  // Lets the step in flight end, aborts what is left, then stops the actor.
  asio::awaitable<void> stop();

  // The latest stats, readable from any thread.
  SchedulerStats stats() const;

 private:
  asio::awaitable<void> step_loop();
  int32_t micro_batch_cap() const;  // the most requests one plan may take
  asio::awaitable<void> run_step(std::shared_ptr<const SchedulerOutput> plan);
  void deliver(const RequestUpdate& update);
  void fail_step(const SchedulerOutput& plan, const std::string& error);
  void publish_stats();

  Scheduler scheduler_;
  std::shared_ptr<Worker> worker_;
  std::unordered_map<RequestId, RequestSink> sinks_;
  bool loop_running_ = false;
  int32_t max_steps_in_flight_ = 1;
  int32_t micro_batches_ = 1;  // the worker's
  int32_t steps_in_flight_ = 0;
  std::optional<OneShot<void>> step_finished_;  // the loop waits on it for a step to end
  bool stopping_ = false;
  std::vector<OneShot<void>> loop_done_waiters_;  // stop() calls waiting for the loop to end

  mutable std::mutex stats_mutex_;
  SchedulerStats stats_;
};

}  // namespace vllm

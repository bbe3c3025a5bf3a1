#include "actors/scheduler_actor.hpp"

#include <algorithm>
#include <limits>
#include <optional>
#include <utility>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>

#include "runtime/logging.hpp"

namespace vllm {

SchedulerActor::SchedulerActor(asio::any_io_executor executor, Scheduler scheduler,
                               std::shared_ptr<Worker> worker, int32_t max_steps_in_flight)
    : Actor(std::move(executor), "scheduler"),
      scheduler_(std::move(scheduler)),
      worker_(std::move(worker)),
      max_steps_in_flight_(std::max({1, max_steps_in_flight, worker_->micro_batches()})),
      micro_batches_(std::max(1, worker_->micro_batches())) {
  stats_ = scheduler_.stats();
}

asio::awaitable<void> SchedulerActor::add_request(NewRequest request, RequestSink sink) {
  return ask([this, request = std::move(request), sink = std::move(sink)]() mutable {
    if (stopping_) throw ActorStoppedError("the engine is shutting down and takes no requests");
    RequestId id = request.id;
    scheduler_.add_request(std::move(request));  // throws InvalidRequestError
    sinks_[id] = std::move(sink);
    publish_stats();
    if (!loop_running_) {
      loop_running_ = true;
      asio::co_spawn(
          strand(), [this] { return step_loop(); },
          [](std::exception_ptr error) {
            if (!error) return;
            try {
              std::rethrow_exception(error);
            } catch (const std::exception& e) {
              logger("scheduler")->critical("step loop ended on an exception: {}", e.what());
            }
          });
    }
  });
}

asio::awaitable<bool> SchedulerActor::finish_request(RequestId id, FinishReason reason) {
  return ask([this, id = std::move(id), reason] {
    const Request* request = scheduler_.find(id);
    if (request == nullptr) return false;
    RequestUpdate update;
    update.request_id = id;
    update.finished = true;
    update.finish_reason = reason;
    update.num_prompt_tokens = request->num_prompt_tokens();
    update.num_output_tokens = request->num_output_tokens();
    update.num_cached_tokens = std::max(0, request->num_cached_tokens);
    bool finished = scheduler_.finish_request(id, reason);
    publish_stats();  // before the request learns it ended: its blocks are already free
    if (finished) deliver(update);
    return finished;
  });
}

asio::awaitable<void> SchedulerActor::stop() {
  // The step loop may still owe the worker a plan (e.g. one that only names finished requests);
  // the worker must not stop before that plan has run, so wait for the loop to end.
  std::optional<OneShot<void>> loop_done = co_await ask([this]() -> std::optional<OneShot<void>> {
    stopping_ = true;
    if (!loop_running_) return std::nullopt;
    loop_done_waiters_.emplace_back();
    return loop_done_waiters_.back();
  });
  if (loop_done) co_await loop_done->get();
  co_await Actor::stop();
}

SchedulerStats SchedulerActor::stats() const {
  std::lock_guard lock(stats_mutex_);
  return stats_;
}

void SchedulerActor::publish_stats() {
  std::lock_guard lock(stats_mutex_);
  stats_ = scheduler_.stats();
}

void SchedulerActor::deliver(const RequestUpdate& update) {
  auto it = sinks_.find(update.request_id);
  if (it == sinks_.end()) return;
  it->second->push({update, std::nullopt});
  if (update.finished) {
    it->second->close();
    sinks_.erase(it);
  }
}

void SchedulerActor::fail_step(const SchedulerOutput& plan, const std::string& error) {
  std::vector<std::pair<RequestSink, RequestUpdate>> failed;
  for (const auto& scheduled : plan.requests) {
    const Request* request = scheduler_.find(scheduled.request_id);
    if (request == nullptr) continue;
    RequestUpdate update;
    update.request_id = scheduled.request_id;
    update.finished = true;
    update.finish_reason = FinishReason::kAbort;
    update.num_prompt_tokens = request->num_prompt_tokens();
    update.num_output_tokens = request->num_output_tokens();
    scheduler_.finish_request(scheduled.request_id, FinishReason::kAbort);
    auto it = sinks_.find(scheduled.request_id);
    if (it == sinks_.end()) continue;
    failed.emplace_back(std::move(it->second), std::move(update));
    sinks_.erase(it);
  }
  publish_stats();  // before the requests learn they failed: their blocks are already free
  for (auto& [sink, update] : failed) {
    sink->push({update, error});
    sink->close();
  }
}

int32_t SchedulerActor::micro_batch_cap() const {
  if (micro_batches_ == 1) return std::numeric_limits<int32_t>::max();
  // A share of the unfinished requests per micro-batch (vLLM's virtual engines, balanced at
  // every plan): a step that takes every running request would leave the next one nothing to
  // run until its samples are back, and the stages would take turns instead of overlapping.
  const int32_t unfinished = scheduler_.num_running() + scheduler_.num_waiting();
  return std::max(1, (unfinished + micro_batches_ - 1) / micro_batches_);
}

asio::awaitable<void> SchedulerActor::step_loop() {
  auto log = logger("scheduler");
  for (;;) {
    // Plan while the pipeline has room and the scheduler finds work that needs no sample from
    // the steps in flight.
    bool plannable = true;
    while (steps_in_flight_ < max_steps_in_flight_ && scheduler_.has_pending_work()) {
      auto plan = std::make_shared<const SchedulerOutput>(scheduler_.schedule(micro_batch_cap()));
      if (plan->empty() && plan->finished_ids.empty()) {
        plannable = false;
        break;
      }
      ++steps_in_flight_;
      asio::co_spawn(strand(), run_step(std::move(plan)), asio::detached);
    }
    if (steps_in_flight_ == 0) {
      if (!plannable && scheduler_.has_unfinished_requests()) {
        log->error("the scheduler planned an empty step with {} requests unfinished",
                   scheduler_.num_running() + scheduler_.num_waiting());
      }
      break;
    }
    step_finished_.emplace();
    co_await step_finished_->get();
  }
  loop_running_ = false;
  for (auto& waiter : std::exchange(loop_done_waiters_, {})) waiter.set_value();
}

asio::awaitable<void> SchedulerActor::run_step(std::shared_ptr<const SchedulerOutput> plan) {
  StepResult result;
  std::optional<std::string> failure;
  try {
    result = co_await worker_->execute(plan);
  } catch (const std::exception& e) {
    failure = e.what();
  }
  if (failure) {
    logger("scheduler")->error("step of {} requests failed: {}", plan->requests.size(), *failure);
    fail_step(*plan, "the model step failed: " + *failure);
  } else {
    auto updates = scheduler_.update_from_output(result.samples);
    publish_stats();  // before the requests see their updates (finished ones freed blocks)
    for (const auto& update : updates) deliver(update);
  }
  --steps_in_flight_;
  if (step_finished_) std::exchange(step_finished_, std::nullopt)->set_value();
}

}  // namespace vllm

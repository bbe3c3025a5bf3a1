// Worker: runs one model replica's forward pass and sampler on a step plan. One per device; a
// local CPU or CUDA worker, or (later) a remote one behind RPC, all with this interface.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <asio/awaitable.hpp>

#include "actors/scheduler.hpp"

namespace vllm {

struct StepResult {
  std::vector<RequestSample> samples;  // one per request of the plan that samples, in plan order
};

class Worker {
 public:
  virtual ~Worker() = default;

  // Runs the plan (its finished/preempted ids first drop per-request state). Throws on a failed
  // step; the requests of that step are then failed by the scheduler.
  virtual asio::awaitable<StepResult> execute(std::shared_ptr<const SchedulerOutput> plan) = 0;
  // Finishes the step in flight, then refuses new ones.
  virtual asio::awaitable<void> stop() = 0;

  virtual int64_t num_kv_blocks() const = 0;
  virtual std::string device_name() const = 0;
  // How many disjoint micro-batches this worker runs at once: a pipeline whose stages sit on
  // their own hardware (processes, nodes, devices) works on that many steps in parallel, so the
  // scheduler splits its requests across that many steps in flight. 1: one batch at a time.
  virtual int32_t micro_batches() const { return 1; }
};

}  // namespace vllm

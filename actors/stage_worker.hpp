// StageWorker: one rank of a parallel layout (one TP shard of one pipeline stage) as the head
// sees it. Every rank of a stage receives the same step plan (and, after stage 0, the previous
// stage's hidden states); the ranks of a stage run it together, meeting in their collectives.
// TP rank 0 of a stage returns its output: hidden states [num_tokens, hidden] from a stage
// before the last, the sampled tokens from the last. Other ranks return an empty output.
//
// CpuStageWorker is the local implementation (its own thread, a Gloo TP group); a remote one
// lives behind RPC (rpc/). PipelineWorker (pipeline_worker.hpp) composes the ranks of a layout
// into the scheduler's Worker.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include <asio/awaitable.hpp>

#include "actors/scheduler.hpp"
#include "actors/worker.hpp"
#include "model/llama_weights.hpp"
#include "model/parallel_layout.hpp"

namespace vllm {

struct StageOutput {
  // Stage before the last, TP rank 0: the hidden states after this stage's layers,
  // [plan.num_scheduled_tokens, hidden], tokens in plan order.
  std::shared_ptr<const HostTensor> hidden_states;
  // Last stage, TP rank 0: one sample per request of the plan that samples, in plan order.
  StepResult step;
};

class StageWorker {
 public:
  virtual ~StageWorker() = default;

  // Runs this rank's part of the plan. `hidden_states` is the previous stage's output (null on
  // stage 0). Every rank must see the plans in the same order, each exactly once (the plan's
  // finished/preempted ids update the sampler state of the last stage's rank 0). An empty plan
  // only updates that state. Throws on a failed step (a CollectiveError when a peer is gone).
  // The call is issued when the awaitable first runs (before its first suspension), so calls
  // started one after the other on one strand reach the rank in that order: the ranks of a TP
  // group then run several in-flight micro-batches in the same order.
  virtual asio::awaitable<StageOutput> execute(std::shared_ptr<const SchedulerOutput> plan,
                                               std::shared_ptr<const HostTensor> hidden_states) = 0;
  // Finishes the step in flight, then refuses new ones.
  virtual asio::awaitable<void> stop() = 0;

  virtual const ParallelLayout& layout() const = 0;
  // KV cache blocks of this rank (only its layers and KV heads); every rank of a layout must
  // have the same number, the scheduler's pool.
  virtual int64_t num_kv_blocks() const = 0;
  virtual std::string device_name() const = 0;
};

}  // namespace vllm

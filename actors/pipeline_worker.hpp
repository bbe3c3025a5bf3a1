// PipelineWorker: the scheduler's Worker over the ranks of a TP x PP layout (StageWorkers, local
// or remote). A step flows stage by stage: every TP rank of a stage gets the plan and the
// previous stage's hidden states; TP rank 0's output feeds the next stage; the last stage's
// rank 0 returns the sampled tokens.
//
// Several steps may be in flight at once (micro-batches: execute() called again before the
// previous call returned, with a plan of other requests): each enters a stage as soon as the
// previous micro-batch has been handed to that stage, so the stages work on different
// micro-batches at the same time. Micro-batches enter every stage in the order execute() was
// called, on every rank of the stage alike (the ranks' collectives must pair up).
//
// A rank that fails with a CollectiveError leaves its TP group unusable (its peers wait on it
// until their collective times out): from then on every step fails at once with that error.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <asio/any_io_executor.hpp>

#include "actors/stage_worker.hpp"
#include "actors/worker.hpp"
#include "runtime/actor.hpp"
#include "runtime/one_shot.hpp"

namespace vllm {

class PipelineWorker final : public Actor, public Worker {
 public:
  // `ranks` in world-rank order (pp_rank * tp_size + tp_rank), all of one layout and all with the
  // same number of KV blocks. Throws ParallelLayoutError otherwise. `micro_batches` (1 to pp)
  // is what micro_batches() reports to the scheduler: pp when the stages run on their own
  // hardware (agents on separate nodes); 1 when they share it (ranks in one process take turns
  // on one thread pool, where splitting a batch only adds passes over the weights).
  PipelineWorker(asio::any_io_executor executor, std::vector<std::shared_ptr<StageWorker>> ranks,
                 int32_t micro_batches = 1);

  asio::awaitable<StepResult> execute(std::shared_ptr<const SchedulerOutput> plan) override;
  // Lets the steps in flight end, then stops every rank.
  asio::awaitable<void> stop() override;
  int64_t num_kv_blocks() const override { return num_kv_blocks_; }
  std::string device_name() const override { return device_name_; }
  int32_t micro_batches() const override { return micro_batches_; }

  int32_t tensor_parallel_size() const { return tp_size_; }
  int32_t pipeline_parallel_size() const { return pp_size_; }
  // Steps that started while another step was still in flight (micro-batches overlapping in the
  // pipeline), for tests and logs.
  int64_t num_overlapped_steps() const { return num_overlapped_steps_.load(); }

 private:
  asio::awaitable<StepResult> run(std::shared_ptr<const SchedulerOutput> plan);
  asio::awaitable<void> wait_turn(int32_t stage, uint64_t micro_batch);
  void end_turn(int32_t stage);

  std::vector<std::shared_ptr<StageWorker>> ranks_;
  int32_t tp_size_ = 1;
  int32_t pp_size_ = 1;
  int32_t micro_batches_ = 1;
  int64_t num_kv_blocks_ = 0;
  std::string device_name_;

  // On the strand:
  uint64_t next_micro_batch_ = 0;
  std::vector<uint64_t> stage_turn_;  // the next micro-batch each stage takes
  std::vector<std::map<uint64_t, OneShot<void>>> stage_waiters_;
  int32_t in_flight_ = 0;
  std::string broken_;  // set once a TP group failed: why
  std::atomic<int64_t> num_overlapped_steps_{0};
};

}  // namespace vllm

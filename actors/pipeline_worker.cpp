#include "actors/pipeline_worker.hpp"

#include <stdexcept>

#include <asio/co_spawn.hpp>

#include "model/communicator.hpp"

namespace vllm {

PipelineWorker::PipelineWorker(asio::any_io_executor executor,
                               std::vector<std::shared_ptr<StageWorker>> ranks,
                               int32_t micro_batches)
    : Actor(std::move(executor), "pipeline-worker"),
      ranks_(std::move(ranks)),
      micro_batches_(micro_batches) {
  if (ranks_.empty() || !ranks_[0]) {
    throw ParallelLayoutError("PipelineWorker: no ranks given");
  }
  const ParallelLayout& first = ranks_[0]->layout();
  tp_size_ = first.tp_size;
  pp_size_ = first.pp_size;
  if (static_cast<int32_t>(ranks_.size()) != first.world_size()) {
    throw ParallelLayoutError("PipelineWorker: the layout (tp " + std::to_string(tp_size_) +
                              " x pp " + std::to_string(pp_size_) + ") needs " +
                              std::to_string(first.world_size()) + " ranks, got " +
                              std::to_string(ranks_.size()));
  }
  if (micro_batches_ < 1 || micro_batches_ > pp_size_) {
    throw ParallelLayoutError("PipelineWorker: micro_batches must be in [1, " +
                              std::to_string(pp_size_) + "] (the pipeline's stages), got " +
                              std::to_string(micro_batches_));
  }
  num_kv_blocks_ = ranks_[0]->num_kv_blocks();
  for (size_t i = 0; i < ranks_.size(); ++i) {
    const ParallelLayout& layout = ranks_[i]->layout();
    if (layout.tp_size != tp_size_ || layout.pp_size != pp_size_ ||
        layout.world_rank() != static_cast<int32_t>(i)) {
      throw ParallelLayoutError("PipelineWorker: rank " + std::to_string(i) + " has layout (" +
                                layout.to_string() + "), expected world rank " + std::to_string(i) +
                                " of tp " + std::to_string(tp_size_) + " x pp " +
                                std::to_string(pp_size_));
    }
    if (ranks_[i]->num_kv_blocks() != num_kv_blocks_) {
      throw ParallelLayoutError("PipelineWorker: rank " + std::to_string(i) + " has " +
                                std::to_string(ranks_[i]->num_kv_blocks()) +
                                " KV blocks, rank 0 has " + std::to_string(num_kv_blocks_) +
                                ": every rank needs the same pool");
    }
  }
  device_name_ = ranks_[0]->device_name() + " x" + std::to_string(ranks_.size()) + " (tp " +
                 std::to_string(tp_size_) + ", pp " + std::to_string(pp_size_) + ")";
  stage_turn_.assign(static_cast<size_t>(pp_size_), 0);
  stage_waiters_.resize(static_cast<size_t>(pp_size_));
}

asio::awaitable<StepResult> PipelineWorker::execute(std::shared_ptr<const SchedulerOutput> plan) {
  return ask([this, plan = std::move(plan)]() mutable { return run(std::move(plan)); });
}

asio::awaitable<void> PipelineWorker::stop() {
  co_await Actor::stop();
  for (auto& rank : ranks_) co_await rank->stop();
}

asio::awaitable<void> PipelineWorker::wait_turn(int32_t stage, uint64_t micro_batch) {
  if (stage_turn_[static_cast<size_t>(stage)] == micro_batch) co_return;
  OneShot<void> turn;
  stage_waiters_[static_cast<size_t>(stage)].emplace(micro_batch, turn);
  co_await turn.get();
}

void PipelineWorker::end_turn(int32_t stage) {
  auto& waiters = stage_waiters_[static_cast<size_t>(stage)];
  auto it = waiters.find(++stage_turn_[static_cast<size_t>(stage)]);
  if (it == waiters.end()) return;
  it->second.set_value();
  waiters.erase(it);
}

asio::awaitable<StepResult> PipelineWorker::run(std::shared_ptr<const SchedulerOutput> plan) {
  if (!broken_.empty()) throw CollectiveError(broken_);
  const uint64_t micro_batch = next_micro_batch_++;
  if (++in_flight_ > 1) num_overlapped_steps_.fetch_add(1);
  std::shared_ptr<const HostTensor> hidden;
  StepResult result;
  std::exception_ptr failure;
  for (int32_t stage = 0; stage < pp_size_; ++stage) {
    co_await wait_turn(stage, micro_batch);
    if (failure) {  // keep the turns moving for the micro-batches behind this one
      end_turn(stage);
      continue;
    }
    // Hand the micro-batch to every rank of the stage before the next one may enter it.
    std::vector<OneShot<StageOutput>> outputs(static_cast<size_t>(tp_size_));
    for (int32_t rank = 0; rank < tp_size_; ++rank) {
      auto& worker = ranks_[static_cast<size_t>(stage * tp_size_ + rank)];
      asio::co_spawn(strand(), worker->execute(plan, hidden),
                     [output = outputs[static_cast<size_t>(rank)]](std::exception_ptr error,
                                                                   StageOutput value) mutable {
                       if (error) {
                         output.set_exception(error);
                       } else {
                         output.set_value(std::move(value));
                       }
                     });
    }
    end_turn(stage);
    StageOutput leader;
    for (int32_t rank = 0; rank < tp_size_; ++rank) {
      try {
        StageOutput output = co_await outputs[static_cast<size_t>(rank)].get();
        if (rank == 0) leader = std::move(output);
      } catch (const CollectiveError& e) {
        if (broken_.empty()) {
          broken_ = "the tensor-parallel group of pipeline stage " + std::to_string(stage) +
                    " failed (restart the engine): " + e.what();
        }
        if (!failure) failure = std::current_exception();
      } catch (...) {
        if (!failure) failure = std::current_exception();
      }
    }
    if (failure) continue;
    if (stage + 1 < pp_size_ && !plan->empty() && !leader.hidden_states) {
      failure = std::make_exception_ptr(std::runtime_error(
          "pipeline stage " + std::to_string(stage) + " returned no hidden states"));
      continue;
    }
    hidden = std::move(leader.hidden_states);
    result = std::move(leader.step);
  }
  --in_flight_;
  if (failure) std::rethrow_exception(failure);
  co_return result;
}

}  // namespace vllm

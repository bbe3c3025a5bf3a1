#include "rpc/remote_worker.hpp"

#include <asio/co_spawn.hpp>

#include <asio/detached.hpp>
#include "rpc/kv_replay.hpp"

namespace vllm::rpc {

RemoteWorker::RemoteWorker(std::shared_ptr<NodeClient> node, uint64_t slot, RemoteWorkerInfo info,
                           int32_t block_size)
    : node_(std::move(node)),
      slot_(slot),
      info_(std::move(info)),
      replay_(std::make_shared<KvReplay>(block_size)) {}

RemoteWorker::~RemoteWorker() = default;

asio::awaitable<StepResult> RemoteWorker::execute(std::shared_ptr<const SchedulerOutput> plan) {
  if (stopped_) throw ActorStoppedError("the remote worker on " + device_name() + " is stopped");
  auto step = node_->execute(slot_, std::move(plan), nullptr, replay_);
  StageOutput output = co_await std::move(step);
  co_return std::move(output.step);
}

asio::awaitable<void> RemoteWorker::stop() {
  if (stopped_.exchange(true)) co_return;
  co_await node_->release_worker(slot_, std::chrono::seconds(5));
}

std::string RemoteWorker::device_name() const {
  return node_->endpoint().name + ":" + info_.device_name;
}

}  // namespace vllm::rpc

namespace vllm::rpc {

RemoteStageWorker::RemoteStageWorker(std::shared_ptr<NodeClient> node, uint64_t slot,
                                     ParallelLayout layout, RemoteWorkerInfo info)
    : node_(std::move(node)), slot_(slot), layout_(layout), info_(std::move(info)) {}

RemoteStageWorker::~RemoteStageWorker() = default;

asio::awaitable<StageOutput> RemoteStageWorker::execute(
    std::shared_ptr<const SchedulerOutput> plan, std::shared_ptr<const HostTensor> hidden_states) {
  if (stopped_)
    throw ActorStoppedError("the remote stage worker on " + device_name() + " is stopped");
  return node_->execute(slot_, std::move(plan), std::move(hidden_states), nullptr);
}

asio::awaitable<void> RemoteStageWorker::stop() {
  if (stopped_.exchange(true)) co_return;
  co_await node_->release_worker(slot_, std::chrono::seconds(5));
}

std::string RemoteStageWorker::device_name() const {
  return node_->endpoint().name + ":" + info_.device_name;
}

}  // namespace vllm::rpc

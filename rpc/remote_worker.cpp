#include "rpc/remote_worker.hpp"

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>

namespace vllm::rpc {

RemoteWorker::RemoteWorker(std::shared_ptr<NodeClient> node, uint64_t slot, RemoteWorkerInfo info)
    : node_(std::move(node)), slot_(slot), info_(std::move(info)) {}

RemoteWorker::~RemoteWorker() = default;

asio::awaitable<StepResult> RemoteWorker::execute(std::shared_ptr<const SchedulerOutput> plan) {
  if (stopped_) throw ActorStoppedError("the remote worker on " + device_name() + " is stopped");
  co_return co_await node_->execute(slot_, std::move(plan));
}

asio::awaitable<void> RemoteWorker::stop() {
  if (stopped_.exchange(true)) co_return;
  co_await node_->release_worker(slot_, std::chrono::seconds(5));
}

std::string RemoteWorker::device_name() const {
  return node_->endpoint().name + ":" + info_.device_name;
}

}  // namespace vllm::rpc

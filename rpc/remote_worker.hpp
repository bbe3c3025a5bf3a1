// RemoteWorker: a Worker whose model runs on a node agent, behind Cap'n Proto RPC. The
// SchedulerActor uses it exactly like a local CpuWorker: execute() sends the plan and resumes
// with the sampled tokens, posted back from the KJ loop. While its node is down every step
// fails at once with NodeDownError (the scheduler then fails that step's requests).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "actors/stage_worker.hpp"
#include "actors/worker.hpp"
#include "rpc/node_client.hpp"
#include "rpc/worker_spec.hpp"

namespace vllm::rpc {

class RemoteWorker final : public Worker {
 public:
  // Made by NodeClient::open_worker; `slot` names the worker in the node's link.
  RemoteWorker(std::shared_ptr<NodeClient> node, uint64_t slot, RemoteWorkerInfo info,
               int32_t block_size);
  ~RemoteWorker() override;

  asio::awaitable<StepResult> execute(std::shared_ptr<const SchedulerOutput> plan) override;
  // Refuses new steps, then asks the agent to finish the one in flight and release the worker
  // (best effort: a node that is down has nothing to release).
  asio::awaitable<void> stop() override;
  int64_t num_kv_blocks() const override { return info_.num_kv_blocks; }
  std::string device_name() const override;

  const std::shared_ptr<NodeClient>& node() const { return node_; }

 private:
  std::shared_ptr<NodeClient> node_;
  uint64_t slot_;
  RemoteWorkerInfo info_;
  std::shared_ptr<KvReplay> replay_;  // used on the KJ loop only
  std::atomic<bool> stopped_{false};
};

// One rank of a TP x PP layout on a node agent: the StageWorker that PipelineWorker composes.
// A step's call is issued before execute() first suspends, so calls keep their order.
class RemoteStageWorker final : public StageWorker {
 public:
  RemoteStageWorker(std::shared_ptr<NodeClient> node, uint64_t slot, ParallelLayout layout,
                    RemoteWorkerInfo info);
  ~RemoteStageWorker() override;

  asio::awaitable<StageOutput> execute(std::shared_ptr<const SchedulerOutput> plan,
                                       std::shared_ptr<const HostTensor> hidden_states) override;
  asio::awaitable<void> stop() override;
  const ParallelLayout& layout() const override { return layout_; }
  int64_t num_kv_blocks() const override { return info_.num_kv_blocks; }
  std::string device_name() const override;

 private:
  std::shared_ptr<NodeClient> node_;
  uint64_t slot_;
  ParallelLayout layout_;
  RemoteWorkerInfo info_;
  std::atomic<bool> stopped_{false};
};

}  // namespace vllm::rpc

// CpuWorker: the Worker of the CPU backend. An actor on its own thread that owns the model, its
// KV cache and the sampler, plus the per-request token history the sampler's penalties need.
#pragma once

#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include <asio/any_io_executor.hpp>

#include "actors/step_sampler.hpp"
#include "actors/worker.hpp"
#include "model/kv_cache.hpp"
#include "model/llama_model.hpp"
#include "model/sampler.hpp"
#include "runtime/actor.hpp"

namespace vllm {

struct CpuWorkerConfig {
  int32_t block_size = 16;
  int64_t kv_cache_memory_bytes = int64_t{1} << 30;
  int32_t num_kv_blocks_override = 0;  // > 0: exactly this many blocks
  uint64_t seed = 0;                   // the sampler's stream for unseeded requests
};

class CpuWorker final : public Actor, public Worker {
 public:
  // `executor` should be a dedicated thread's. Sizes the KV cache from the config.
  CpuWorker(asio::any_io_executor executor, LlamaModel model, std::vector<int32_t> eos_token_ids,
            const CpuWorkerConfig& config);

  asio::awaitable<StepResult> execute(std::shared_ptr<const SchedulerOutput> plan) override;
  asio::awaitable<void> stop() override { return Actor::stop(); }
  int64_t num_kv_blocks() const override { return cache_.shape().num_blocks; }
  std::string device_name() const override { return "cpu"; }

  // Blocks that fit `bytes` for this model (at least 1).
  static int64_t blocks_for_memory(const LlamaModel& model, int32_t block_size, int64_t bytes);

 private:
  StepResult run(const SchedulerOutput& plan);

  LlamaModel model_;
  KvCache cache_;
  StepSampler sampling_;
  int32_t block_size_;
};

}  // namespace vllm

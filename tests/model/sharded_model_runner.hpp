// Test helper: every rank of a parallel layout as a LlamaModel shard with its own KV cache, run
// in one process (each TP rank of a stage on its own thread, meeting in a Gloo group over
// loopback), stage after stage. step() returns the last stage's logits from each of its TP ranks.
#pragma once

#include <future>
#include <memory>
#include <string>
#include <vector>

#include "model/gloo_communicator.hpp"
#include "model/kv_cache.hpp"
#include "model/llama_model.hpp"
#include "model/llama_weight_shards.hpp"

namespace vllm::test {

class ShardedModelRunner {
 public:
  ShardedModelRunner(const LlamaCheckpoint& checkpoint, int32_t tp, int32_t pp, int64_t num_blocks,
                     int64_t block_size)
      : tp_(tp), pp_(pp) {
    for (int32_t stage = 0; stage < pp; ++stage) {
      std::vector<std::future<std::unique_ptr<Rank>>> ranks;
      for (int32_t rank = 0; rank < tp; ++rank) {
        ranks.push_back(std::async(std::launch::async, [&, stage, rank] {
          ParallelLayout layout{rank, tp, stage, pp};
          std::shared_ptr<Communicator> group;
          if (tp > 1) {
            GlooOptions options;
            options.rank = rank;
            options.size = tp;
            options.prefix = "stage-" + std::to_string(stage);
            group = std::make_shared<GlooCommunicator>(store_, options);
          }
          LlamaModel model(shard_llama_checkpoint(checkpoint, layout), layout, group);
          KvCacheShape shape = model.kv_cache_shape(num_blocks, block_size);
          return std::make_unique<Rank>(Rank{std::move(model), KvCache(shape)});
        }));
      }
      for (auto& rank : ranks) ranks_.push_back(rank.get());
    }
  }

  // Logits of the batch from each TP rank of the last stage.
  std::vector<HostTensor> step(const ForwardBatch& batch) {
    HostTensor hidden;
    std::vector<HostTensor> outputs;
    for (int32_t stage = 0; stage < pp_; ++stage) {
      std::vector<std::future<HostTensor>> runs;
      for (int32_t rank = 0; rank < tp_; ++rank) {
        Rank& r = *ranks_[static_cast<size_t>(stage * tp_ + rank)];
        runs.push_back(std::async(std::launch::async, [&r, &batch, &hidden, stage] {
          return r.model.forward_stage(batch, r.cache, stage == 0 ? nullptr : &hidden);
        }));
      }
      outputs.clear();
      for (auto& run : runs) outputs.push_back(run.get());
      hidden = outputs[0];
    }
    return outputs;
  }

  const LlamaModel& model(int32_t world_rank) const {
    return ranks_[static_cast<size_t>(world_rank)]->model;
  }
  const KvCache& cache(int32_t world_rank) const {
    return ranks_[static_cast<size_t>(world_rank)]->cache;
  }

 private:
  struct Rank {
    LlamaModel model;
    KvCache cache;
  };
  int32_t tp_, pp_;
  InProcessStore store_;
  std::vector<std::unique_ptr<Rank>> ranks_;
};

}  // namespace vllm::test

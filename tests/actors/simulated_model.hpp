// A simulated model for scheduler tests: it runs a step plan against a simulated KV cache the
// way a real backend does (write every new token's K/V to its slot, then read each sampling
// sequence's whole context back through its block table) and "samples" a token that is a hash
// of the context it read. So any error in block tables, slot mapping, positions, prefix-cache
// sharing or eviction changes the generated tokens, which tests compare with reference_tokens().
#pragma once

#include <algorithm>
#include <cstdint>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "actors/scheduler.hpp"
#include "model/forward_batch.hpp"

namespace vllm::test {

// The token a context deterministically "generates".
inline int32_t next_token(std::span<const int32_t> context, int32_t vocab_size) {
  uint64_t hash = 1469598103934665603ULL;
  for (int32_t token : context) {
    hash ^= static_cast<uint64_t>(token) + 0x9e37;
    hash *= 1099511628211ULL;
  }
  hash ^= hash >> 29;
  return static_cast<int32_t>(hash % static_cast<uint64_t>(vocab_size));
}

// What a request must generate: EOS (or a stop token) ends it only after min_tokens tokens;
// max_tokens and max_model_len cap it.
inline std::vector<int32_t> reference_tokens(std::vector<int32_t> context,
                                             const SamplingParams& params,
                                             const std::vector<int32_t>& eos_ids,
                                             int32_t max_model_len, int32_t vocab_size) {
  std::vector<int32_t> out;
  while (true) {
    const int32_t token = next_token(context, vocab_size);
    context.push_back(token);
    out.push_back(token);
    const bool is_eos =
        !params.ignore_eos && std::find(eos_ids.begin(), eos_ids.end(), token) != eos_ids.end();
    const bool is_stop = std::find(params.stop_token_ids.begin(), params.stop_token_ids.end(),
                                   token) != params.stop_token_ids.end();
    if ((is_eos || is_stop) && static_cast<int>(out.size()) > params.min_tokens) return out;
    if (static_cast<int>(out.size()) >= params.max_tokens ||
        static_cast<int32_t>(context.size()) >= max_model_len) {
      return out;
    }
  }
}

class SimulatedModel {
 public:
  SimulatedModel(int32_t num_blocks, int32_t block_size, int32_t vocab_size)
      : block_size_(block_size),
        vocab_size_(vocab_size),
        slots_(static_cast<size_t>(num_blocks) * block_size) {}

  std::vector<RequestSample> run(const SchedulerOutput& plan) {
    const ForwardBatch batch = make_forward_batch(plan, block_size_);
    // Write the whole step's K/V first (a later sequence may share blocks an earlier one fills).
    for (int32_t i = 0; i < batch.num_tokens(); ++i) {
      slots_.at(batch.slot_mapping[i]) = Slot{batch.token_ids[i], batch.positions[i]};
    }
    std::vector<RequestSample> sampled;
    size_t next_logit = 0;
    for (int32_t seq = 0; seq < batch.num_seqs(); ++seq) {
      const int32_t last = batch.query_start_loc[seq + 1] - 1;
      if (next_logit >= batch.logits_indices.size() || batch.logits_indices[next_logit] != last) {
        continue;
      }
      ++next_logit;
      std::vector<int32_t> context(batch.seq_lens[seq]);
      for (int32_t pos = 0; pos < batch.seq_lens[seq]; ++pos) {
        const int32_t block =
            batch.block_tables[seq * batch.max_blocks_per_seq + pos / block_size_];
        const Slot& slot = slots_.at(static_cast<size_t>(block) * block_size_ + pos % block_size_);
        if (slot.position != pos) {
          throw std::runtime_error("simulated model: request '" + plan.requests[seq].request_id +
                                   "' reads position " + std::to_string(slot.position) +
                                   " where position " + std::to_string(pos) + " belongs");
        }
        context[pos] = slot.token;
      }
      sampled.push_back({plan.requests[seq].request_id, next_token(context, vocab_size_)});
    }
    if (next_logit != batch.logits_indices.size()) {
      throw std::runtime_error("simulated model: logits index outside a sequence's last token");
    }
    ++num_steps_;
    return sampled;
  }

  int64_t num_steps() const { return num_steps_; }

 private:
  struct Slot {
    int32_t token = -1;
    int32_t position = -1;
  };
  int32_t block_size_;
  int32_t vocab_size_;
  std::vector<Slot> slots_;
  int64_t num_steps_ = 0;
};

}  // namespace vllm::test

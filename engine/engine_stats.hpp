// EngineStats: a snapshot of the engine's counters and latency histograms, for /metrics (vLLM's
// metric names) and the periodic log line.
#pragma once

#include <array>
#include <cstdint>
#include <mutex>
#include <vector>

namespace vllm {

// A cumulative histogram with fixed bucket bounds (Prometheus style).
struct Histogram {
  std::vector<double> bounds;    // upper bounds, ascending; +Inf is implicit
  std::vector<uint64_t> counts;  // per bucket (not cumulative), bounds.size() + 1 entries
  double sum = 0.0;
  uint64_t count = 0;

  explicit Histogram(std::vector<double> upper_bounds = {})
      : bounds(std::move(upper_bounds)), counts(bounds.size() + 1, 0) {}
  void observe(double value) {
    size_t i = 0;
    while (i < bounds.size() && value > bounds[i]) ++i;
    ++counts[i];
    sum += value;
    ++count;
  }
};

struct EngineStats {
  int32_t num_requests_running = 0;
  int32_t num_requests_waiting = 0;
  double kv_cache_usage = 0.0;  // fraction of KV blocks in use
  int64_t num_preemptions = 0;
  int64_t prefix_cache_queries = 0;  // tokens looked up
  int64_t prefix_cache_hits = 0;     // tokens found
  int64_t prompt_tokens = 0;
  int64_t generation_tokens = 0;
  int64_t request_success_stop = 0;
  int64_t request_success_length = 0;
  int64_t request_success_abort = 0;
  Histogram time_to_first_token_seconds;
  Histogram inter_token_latency_seconds;
  Histogram e2e_request_latency_seconds;
  int32_t num_kv_blocks = 0;
};

}  // namespace vllm

// /metrics text: vLLM's names, counters with _total, cumulative histogram buckets.
#include <catch2/catch.hpp>

#include "server/prometheus_metrics.hpp"
#include "server/stats_logger.hpp"

namespace vllm::server {
namespace {

bool has_line(const std::string& text, const std::string& line) {
  return text.find("\n" + line + "\n") != std::string::npos || text.rfind(line + "\n", 0) == 0;
}

}  // namespace

TEST_CASE("Prometheus text has vLLM's metric names and values", "[server]") {
  EngineStats s;
  s.num_requests_running = 3;
  s.num_requests_waiting = 1;
  s.kv_cache_usage = 0.25;
  s.prefix_cache_queries = 100;
  s.prefix_cache_hits = 40;
  s.num_preemptions = 2;
  s.prompt_tokens = 1000;
  s.generation_tokens = 500;
  s.request_success_stop = 7;
  s.request_success_length = 8;
  s.request_success_abort = 1;
  s.time_to_first_token_seconds = Histogram({0.1, 1.0});
  s.time_to_first_token_seconds.observe(0.05);
  s.time_to_first_token_seconds.observe(0.5);
  s.time_to_first_token_seconds.observe(0.7);
  s.time_to_first_token_seconds.observe(5.0);
  const std::string text = render_prometheus(s, "smol");
  CHECK(has_line(text, "# TYPE vllm:num_requests_running gauge"));
  CHECK(has_line(text, "vllm:num_requests_running{model_name=\"smol\"} 3"));
  CHECK(has_line(text, "vllm:num_requests_waiting{model_name=\"smol\"} 1"));
  CHECK(has_line(text, "vllm:kv_cache_usage_perc{model_name=\"smol\"} 0.25"));
  CHECK(has_line(text, "# TYPE vllm:prefix_cache_queries_total counter"));
  CHECK(has_line(text, "vllm:prefix_cache_queries_total{model_name=\"smol\"} 100"));
  CHECK(has_line(text, "vllm:prefix_cache_hits_total{model_name=\"smol\"} 40"));
  CHECK(has_line(text, "vllm:num_preemptions_total{model_name=\"smol\"} 2"));
  CHECK(has_line(text, "vllm:prompt_tokens_total{model_name=\"smol\"} 1000"));
  CHECK(has_line(text, "vllm:generation_tokens_total{model_name=\"smol\"} 500"));
  CHECK(
      has_line(text, "vllm:request_success_total{model_name=\"smol\",finished_reason=\"stop\"} 7"));
  CHECK(has_line(text,
                 "vllm:request_success_total{model_name=\"smol\",finished_reason=\"length\"} 8"));
  CHECK(has_line(text, "# TYPE vllm:time_to_first_token_seconds histogram"));
  CHECK(
      has_line(text, "vllm:time_to_first_token_seconds_bucket{model_name=\"smol\",le=\"0.1\"} 1"));
  CHECK(has_line(text, "vllm:time_to_first_token_seconds_bucket{model_name=\"smol\",le=\"1\"} 3"));
  CHECK(
      has_line(text, "vllm:time_to_first_token_seconds_bucket{model_name=\"smol\",le=\"+Inf\"} 4"));
  CHECK(has_line(text, "vllm:time_to_first_token_seconds_sum{model_name=\"smol\"} 6.25"));
  CHECK(has_line(text, "vllm:time_to_first_token_seconds_count{model_name=\"smol\"} 4"));
  CHECK(has_line(text, "# TYPE vllm:e2e_request_latency_seconds histogram"));
  CHECK(has_line(text, "# TYPE vllm:inter_token_latency_seconds histogram"));
  // Label values are escaped.
  CHECK(render_prometheus(s, "a\"b").find("model_name=\"a\\\"b\"") != std::string::npos);
}

TEST_CASE("the periodic log line reports throughput over the interval, silent when idle",
          "[server]") {
  EngineStats before, now;
  CHECK(stats_log_line(before, now, 10.0).empty());
  now.prompt_tokens = 500;
  now.generation_tokens = 120;
  now.num_requests_running = 2;
  now.kv_cache_usage = 0.125;
  const std::string line = stats_log_line(before, now, 10.0);
  CHECK(line.find("Avg prompt throughput: 50.0 tokens/s") != std::string::npos);
  CHECK(line.find("Avg generation throughput: 12.0 tokens/s") != std::string::npos);
  CHECK(line.find("Running: 2 reqs") != std::string::npos);
  CHECK(line.find("KV cache usage: 12.5%") != std::string::npos);
}

}  // namespace vllm::server

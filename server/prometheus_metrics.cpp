#include "server/prometheus_metrics.hpp"

#include <fmt/format.h>

namespace vllm::server {
namespace {

// Label values escape backslash, quote and newline.
std::string escape_label(std::string_view value) {
  std::string out;
  for (char c : value) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

// Prometheus floats: integers print without a fraction, +Inf as "+Inf".
std::string number(double x) {
  return fmt::format("{}", x);
}

class Writer {
 public:
  explicit Writer(std::string_view model_name)
      : labels_(fmt::format("model_name=\"{}\"", escape_label(model_name))) {}

  void header(std::string_view name, std::string_view type, std::string_view help) {
    out_ += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
  }
  void sample(std::string_view name, double value, std::string_view extra_labels = {}) {
    out_ += fmt::format("{}{{{}{}{}}} {}\n", name, labels_, extra_labels.empty() ? "" : ",",
                        extra_labels, number(value));
  }
  void gauge(std::string_view name, std::string_view help, double value) {
    header(name, "gauge", help);
    sample(name, value);
  }
  void counter(std::string_view name, std::string_view help, double value) {
    const std::string total = std::string(name) + "_total";
    header(total, "counter", help);
    sample(total, value);
  }
  void histogram(std::string_view name, std::string_view help, const Histogram& h) {
    header(name, "histogram", help);
    const std::string bucket = std::string(name) + "_bucket";
    uint64_t cumulative = 0;
    for (size_t i = 0; i < h.bounds.size(); ++i) {
      cumulative += i < h.counts.size() ? h.counts[i] : 0;
      sample(bucket, static_cast<double>(cumulative),
             fmt::format("le=\"{}\"", number(h.bounds[i])));
    }
    sample(bucket, static_cast<double>(h.count), "le=\"+Inf\"");
    sample(std::string(name) + "_sum", h.sum);
    sample(std::string(name) + "_count", static_cast<double>(h.count));
  }
  std::string take() { return std::move(out_); }

 private:
  std::string labels_;
  std::string out_;
};

}  // namespace

std::string render_prometheus(const EngineStats& stats, std::string_view model_name) {
  Writer w(model_name);
  w.gauge("vllm:num_requests_running", "Number of requests in model execution batches.",
          stats.num_requests_running);
  w.gauge("vllm:num_requests_waiting", "Number of requests waiting to be processed.",
          stats.num_requests_waiting);
  w.gauge("vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.",
          stats.kv_cache_usage);
  w.gauge("vllm:num_kv_blocks", "Number of KV cache blocks.", stats.num_kv_blocks);
  w.counter("vllm:prefix_cache_queries",
            "Prefix cache queries, in terms of number of queried tokens.",
            static_cast<double>(stats.prefix_cache_queries));
  w.counter("vllm:prefix_cache_hits", "Prefix cache hits, in terms of number of cached tokens.",
            static_cast<double>(stats.prefix_cache_hits));
  w.counter("vllm:num_preemptions", "Cumulative number of preemptions from the engine.",
            static_cast<double>(stats.num_preemptions));
  w.counter("vllm:prompt_tokens", "Number of prefill tokens processed.",
            static_cast<double>(stats.prompt_tokens));
  w.counter("vllm:generation_tokens", "Number of generation tokens processed.",
            static_cast<double>(stats.generation_tokens));
  w.header("vllm:request_success_total", "counter", "Count of successfully processed requests.");
  w.sample("vllm:request_success_total", static_cast<double>(stats.request_success_stop),
           "finished_reason=\"stop\"");
  w.sample("vllm:request_success_total", static_cast<double>(stats.request_success_length),
           "finished_reason=\"length\"");
  w.sample("vllm:request_success_total", static_cast<double>(stats.request_success_abort),
           "finished_reason=\"abort\"");
  w.histogram("vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.",
              stats.time_to_first_token_seconds);
  w.histogram("vllm:inter_token_latency_seconds", "Histogram of inter-token latency in seconds.",
              stats.inter_token_latency_seconds);
  w.histogram("vllm:e2e_request_latency_seconds", "Histogram of e2e request latency in seconds.",
              stats.e2e_request_latency_seconds);
  return w.take();
}

}  // namespace vllm::server

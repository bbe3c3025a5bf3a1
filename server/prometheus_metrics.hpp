// /metrics: the engine's stats in the Prometheus text exposition format (version 0.0.4), under
// vLLM's metric names so that dashboards built for vLLM work unchanged. Counters carry the
// `_total` suffix as prometheus_client writes them (vllm:prompt_tokens_total, ...).
#pragma once

#include <string>
#include <string_view>

#include "engine/engine_stats.hpp"

namespace vllm::server {

inline constexpr std::string_view kPrometheusContentType =
    "text/plain; version=0.0.4; charset=utf-8";

std::string render_prometheus(const EngineStats& stats, std::string_view model_name);

}  // namespace vllm::server

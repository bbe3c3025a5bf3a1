// The periodic log line of a serving engine: every interval while it has work (or just had),
// the prompt and generation throughput over the interval, running and waiting requests, KV
// cache usage and the prefix cache hit rate. Formatting is separate so it can be tested.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include <asio/awaitable.hpp>

#include "engine/engine_stats.hpp"

namespace vllm::server {

// The line for the interval between two snapshots, or "" when the engine was idle throughout.
std::string stats_log_line(const EngineStats& before, const EngineStats& now, double seconds);

// Logs stats_log_line every `interval` until *stop becomes true; `read_stats` is Engine::stats.
asio::awaitable<void> log_stats_periodically(std::function<EngineStats()> read_stats,
                                             std::chrono::milliseconds interval,
                                             std::shared_ptr<const bool> stop);

}  // namespace vllm::server

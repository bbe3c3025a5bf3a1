// Logging: one named spdlog logger per subsystem ("scheduler", "worker", "server", ...).
// The level comes from set_log_level() (the --log-level flag) or VLLM_CPP_LOG_LEVEL.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include <spdlog/spdlog.h>

namespace vllm {

// The logger for a subsystem, created on first use with the current level.
std::shared_ptr<spdlog::logger> logger(const std::string& subsystem);

// Sets the level of every logger, present and future: trace|debug|info|warn|error|critical|off.
// Throws std::invalid_argument for an unknown name.
void set_log_level(std::string_view level);

}  // namespace vllm

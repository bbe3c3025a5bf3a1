#include "runtime/logging.hpp"

#include <cstdlib>
#include <mutex>
#include <stdexcept>

#include <spdlog/sinks/stdout_color_sinks.h>

namespace vllm {
namespace {

std::mutex& registry_mutex() {
  static std::mutex m;
  return m;
}

spdlog::level::level_enum parse_level(std::string_view name) {
  auto level = spdlog::level::from_str(std::string(name));
  if (level == spdlog::level::off && name != "off") {
    throw std::invalid_argument("unknown log level '" + std::string(name) +
                                "' (expected trace, debug, info, warn, error, critical or off)");
  }
  return level;
}

spdlog::level::level_enum& current_level() {
  static spdlog::level::level_enum level = [] {
    const char* env = std::getenv("VLLM_CPP_LOG_LEVEL");
    if (env == nullptr) return spdlog::level::info;
    try {
      return parse_level(env);
    } catch (const std::invalid_argument&) {
      return spdlog::level::info;
    }
  }();
  return level;
}

}  // namespace

std::shared_ptr<spdlog::logger> logger(const std::string& subsystem) {
  std::lock_guard lock(registry_mutex());
  if (auto existing = spdlog::get(subsystem)) return existing;
  auto created = spdlog::stderr_color_mt(subsystem);
  created->set_level(current_level());
  created->set_pattern("%Y-%m-%d %H:%M:%S.%e %^%-5l%$ [%n] %v");
  return created;
}

void set_log_level(std::string_view level) {
  auto parsed = parse_level(level);
  std::lock_guard lock(registry_mutex());
  current_level() = parsed;
  spdlog::set_level(parsed);
}

}  // namespace vllm

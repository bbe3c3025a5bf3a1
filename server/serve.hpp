// serve(): runs the OpenAI-compatible server until SIGINT/SIGTERM. It loads the engine, listens,
// prints how to call it, logs throughput every 10 s while busy, and on a signal stops accepting,
// lets requests in flight finish (up to shutdown_timeout, then aborts them) and returns 0.
#pragma once

#include <chrono>
#include <functional>
#include <string>

#include "engine/engine_args.hpp"
#include "server/http_server.hpp"
#include "server/openai_server.hpp"

namespace vllm::server {

struct ServeOptions {
  HttpServerOptions http;
  std::string api_key;  // empty: no authentication
  std::chrono::milliseconds shutdown_timeout{30000};
  std::chrono::milliseconds stats_log_interval{10000};
  std::function<BackendStatus()> backend_status;  // remote workers: see OpenAiServerOptions
};

// Returns the process exit code (0 after a clean shutdown, 1 when startup fails).
int serve(EngineArgs engine_args, ServeOptions options);

}  // namespace vllm::server

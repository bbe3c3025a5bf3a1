#include "server/serve.hpp"

#include <csignal>
#include <cstdio>
#include <memory>
#include <optional>

#include <fmt/format.h>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/signal_set.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include "runtime/logging.hpp"

#include "engine/engine.hpp"
#include "server/openai_server.hpp"
#include "server/stats_logger.hpp"

namespace vllm::server {
namespace {

void print_usage_hint(const std::string& host, uint16_t port, const std::string& model,
                      bool with_key) {
  const std::string shown_host = (host == "0.0.0.0" || host == "::") ? "localhost" : host;
  std::printf(
      "vllm-cpp: serving %s at http://%s:%u (OpenAI API under /v1)\n"
      "  try: curl http://%s:%u/v1/completions -H 'Content-Type: application/json'%s "
      "-d '{\"model\": \"%s\", \"prompt\": \"The capital of France is\", \"max_tokens\": 16}'\n",
      model.c_str(), shown_host.c_str(), port, shown_host.c_str(), port,
      with_key ? " -H \"Authorization: Bearer $VLLM_API_KEY\"" : "", model.c_str());
  std::fflush(stdout);
}

}  // namespace

int serve(EngineArgs engine_args, ServeOptions options) {
  // Declared so that the io_context (and the coroutine frames it may still hold) is destroyed
  // after the HTTP server and before the API object those frames point to.
  std::unique_ptr<OpenAiServer> api;
  std::optional<Engine> engine;
  asio::io_context io_context(1);
  std::unique_ptr<HttpServer> http;
  int exit_code = 0;
  auto stop_logging = std::make_shared<bool>(false);

  asio::signal_set signals(io_context, SIGINT, SIGTERM);
  bool stopping = false;
  bool starting = true;  // Engine::create in flight: its coroutine must end before the loop does
  auto shutdown = [&]() -> asio::awaitable<void> {
    logger("server")->info("shutting down: no new requests; waiting up to {} ms for {} in flight",
                           options.shutdown_timeout.count(), api ? api->num_in_flight() : 0);
    {
      asio::steady_timer timer(io_context);
      while (starting) {
        timer.expires_after(std::chrono::milliseconds(10));
        co_await timer.async_wait(asio::use_awaitable);
      }
    }
    if (http) http->stop_accepting();
    if (api) api->begin_shutdown();
    if (engine) co_await engine->shutdown(options.shutdown_timeout.count());
    // Let the handlers write their last bytes (the engine has ended every stream by now).
    asio::steady_timer timer(io_context);
    for (int i = 0; i < 200 && api && api->num_in_flight() > 0; ++i) {
      timer.expires_after(std::chrono::milliseconds(10));
      co_await timer.async_wait(asio::use_awaitable);
    }
    *stop_logging = true;
    logger("server")->info("shutdown complete");
    io_context.stop();
  };
  std::function<void(const asio::error_code&, int)> on_signal = [&](const asio::error_code& ec,
                                                                    int signal) {
    if (ec) return;
    if (stopping) {  // a second signal: stop now
      logger("server")->warn("signal {} again: exiting without waiting", signal);
      io_context.stop();
      return;
    }
    stopping = true;
    asio::co_spawn(io_context, shutdown(), [&](std::exception_ptr error) {
      if (error) {
        logger("server")->error("shutdown failed");
        io_context.stop();
      }
    });
    signals.async_wait(on_signal);
  };
  signals.async_wait(on_signal);

  auto start = [&]() -> asio::awaitable<void> {
    logger("server")->info("loading {}", engine_args.model);
    engine = co_await Engine::create(engine_args);
    if (stopping) co_return;
    const EngineArgs& resolved = engine->args();
    api = std::make_unique<OpenAiServer>(
        *engine, io_context, OpenAiServerOptions{options.api_key, options.backend_status});
    http = std::make_unique<HttpServer>(io_context, options.http,
                                        [server = api.get()](HttpRequest request, HttpReply reply) {
                                          server->handle(std::move(request), std::move(reply));
                                        });
    http->start(
        [&, name = resolved.served_model_name] {
          logger("server")->info("listening on {}:{}", options.http.host, options.http.port);
          print_usage_hint(options.http.host, options.http.port, name, !options.api_key.empty());
        },
        [&](std::string error) {
          logger("server")->error("cannot listen on {}:{}: {}", options.http.host,
                                  options.http.port, error);
          exit_code = 1;
          io_context.stop();
        });
    asio::co_spawn(io_context,
                   log_stats_periodically([engine = *engine] { return engine.stats(); },
                                          options.stats_log_interval, stop_logging),
                   asio::detached);
  };
  asio::co_spawn(io_context, start(), [&](std::exception_ptr error) {
    starting = false;
    if (!error) return;
    try {
      std::rethrow_exception(error);
    } catch (const std::exception& e) {
      logger("server")->error("cannot start the engine: {}", e.what());
    }
    exit_code = 1;
    io_context.stop();
  });

  io_context.run();
  http.reset();
  return exit_code;
}

}  // namespace vllm::server

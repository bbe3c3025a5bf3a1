// OpenAiServer: the OpenAI-compatible API on top of an Engine. It routes HTTP requests
// (/v1/completions, /v1/chat/completions, /v1/models, /tokenize, /detokenize, /health,
// /metrics, /version), checks the API key on /v1/*, parses and validates requests, applies the
// chat template, runs them on the engine and answers in OpenAI's shapes, streamed as
// Server-Sent Events when asked. A client that goes away aborts its requests.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <random>
#include <string>

#include <asio/awaitable.hpp>
#include <asio/io_context.hpp>

#include "engine/engine.hpp"
#include "server/http_server.hpp"
#include "server/openai_request.hpp"

namespace vllm::server {

// The state of the workers behind the engine when they are remote (a cluster's nodes).
struct BackendStatus {
  bool ok = true;
  std::string problem;     // why not ok: new generation requests get 503 with it
  std::string nodes_json;  // a JSON array, one object per node, for /health
};

struct OpenAiServerOptions {
  std::string api_key;  // non-empty: /v1/* needs "Authorization: Bearer <api_key>"
  // Set: /health answers JSON naming each node (503 while one is down) and generation requests
  // are refused with 503 while !ok.
  std::function<BackendStatus()> backend_status;
};

class OpenAiServer {
 public:
  OpenAiServer(Engine engine, asio::io_context& io_context, OpenAiServerOptions options);

  // The HttpServer's handler.
  void handle(HttpRequest request, HttpReply reply);

  // New generation requests get 503 and /health turns 503; requests in flight go on.
  void begin_shutdown() { shutting_down_ = true; }
  int64_t num_in_flight() const { return in_flight_; }

 private:
  asio::awaitable<void> serve(HttpRequest request, HttpReply reply);
  asio::awaitable<void> completions(const Json& body, HttpReply reply);
  asio::awaitable<void> chat_completions(const Json& body, HttpReply reply);
  void models(HttpReply& reply) const;
  void tokenize(const Json& body, HttpReply& reply) const;
  void detokenize(const Json& body, HttpReply& reply) const;

  void check_model(const std::string& model) const;
  std::string new_id(std::string_view prefix);
  int32_t max_model_len() const;

  Engine engine_;
  asio::io_context& io_context_;
  OpenAiServerOptions options_;
  std::string served_model_name_;
  std::mt19937_64 id_random_;
  std::atomic<bool> shutting_down_{false};
  std::atomic<int64_t> in_flight_{0};
};

}  // namespace vllm::server

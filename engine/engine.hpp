// Engine: the public C++ API.
//
//   auto engine = co_await vllm::Engine::create({.model = "SmolLM2-135M-Instruct.Q4_1.gguf"});
//   vllm::Completion out = co_await engine.generate("The capital of France is", {.max_tokens =
//   16}); co_await engine.generate(prompt, params, [](const vllm::TokenDelta& d) { std::cout <<
//   d.text; }); auto stream = engine.stream(prompt, params); while (auto delta = co_await
//   stream.next()) { ... }
//
// GCC 12 note: inside a coroutine, never pass a brace-initialized temporary (`{.max_tokens =
// 16}`) to a call that is co_awaited in the same expression: GCC 12 destroys such temporaries
// twice. Name the object first (`SamplingParams p{...}; co_await engine.generate(x, p);`).
// That is also why these methods have overloads instead of `= {}` default arguments.
//
// Engine is a cheap handle (copies share one engine). Its methods are called from coroutines on
// any executor: tokenizing, detokenizing and stop-string matching run there (the frontend), the
// scheduler runs on the engine's own strand and the model on a dedicated worker thread.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include <asio/awaitable.hpp>

#include "engine/engine_args.hpp"
#include "engine/engine_stats.hpp"
#include "model/model_config.hpp"
#include "model/sampler.hpp"
#include "model/sampling_params.hpp"
#include "runtime/async_stream.hpp"
#include "runtime/when_all.hpp"

namespace vllm {

class Tokenizer;
class ChatTemplate;

// Text, or token ids used as they are.
using Prompt = std::variant<std::string, std::vector<int32_t>>;

struct GenerateOptions {
  std::string request_id;          // empty: a fresh unique id
  int priority = 0;                // lower first, with scheduling_policy=priority
  bool add_special_tokens = true;  // when tokenizing a text prompt (BOS)
};

struct Usage {
  int32_t prompt_tokens = 0;
  int32_t completion_tokens = 0;
  int32_t cached_tokens = 0;  // prompt tokens served from the prefix cache
  int32_t total_tokens() const { return prompt_tokens + completion_tokens; }
};

// One event of a streamed request: the new text and tokens of one of its n samples. The last
// event of a sample carries its finish reason; the very last event of the request carries usage.
struct TokenDelta {
  std::string request_id;
  int32_t index = 0;  // which of the n samples
  std::string text;
  std::vector<int32_t> token_ids;
  std::vector<SampleLogprobs> logprobs;      // one per token when params.logprobs is set
  std::optional<std::string> finish_reason;  // "stop" | "length" | "abort" on the sample's end
  // What stopped it: the matched stop string, or the stop token id (EOS excluded), as vLLM.
  std::optional<std::variant<std::string, int32_t>> stop_reason;
  std::optional<Usage> usage;  // on the request's last event
};

struct CompletionOutput {
  int32_t index = 0;
  std::string text;
  std::vector<int32_t> token_ids;
  std::vector<SampleLogprobs> logprobs;
  std::string finish_reason;
  std::optional<std::variant<std::string, int32_t>> stop_reason;
};

struct Completion {
  std::string request_id;
  std::vector<int32_t> prompt_token_ids;
  std::vector<CompletionOutput> outputs;  // n of them, by index
  Usage usage;
};

// The engine refuses new requests: its waiting queue is full (HTTP 503).
class EngineOverloadedError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The engine or its worker failed, or it is shutting down (HTTP 503 / 500).
class EngineUnavailableError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class Engine;

// An async stream of one request's deltas: `while (auto d = co_await s.next())`. Ends after the
// event that carries usage; when the request failed (its model step failed), that end throws
// EngineUnavailableError with the reason. Destroying it before the end aborts the request.
class CompletionStream {
 public:
  CompletionStream(CompletionStream&&) noexcept;
  CompletionStream& operator=(CompletionStream&&) noexcept;
  ~CompletionStream();

  const std::string& request_id() const;
  asio::awaitable<std::optional<TokenDelta>> next();

  struct State;

 private:
  friend class Engine;
  explicit CompletionStream(std::shared_ptr<State> state);
  std::shared_ptr<State> state_;
};

class Engine {
 public:
  // Loads the model and starts the scheduler and workers. Throws ModelLoadError,
  // std::invalid_argument (bad arguments) naming the problem.
  static asio::awaitable<Engine> create(EngineArgs args);

  // Runs one request to its end. Throws InvalidRequestError (bad parameters, prompt too long),
  // EngineOverloadedError, EngineUnavailableError.
  asio::awaitable<Completion> generate(Prompt prompt, SamplingParams params);
  asio::awaitable<Completion> generate(Prompt prompt, SamplingParams params,
                                       GenerateOptions options);
  // The same, calling `on_delta` (on the caller's executor) for every event as it comes.
  asio::awaitable<Completion> generate(Prompt prompt, SamplingParams params,
                                       std::function<void(const TokenDelta&)> on_delta);
  asio::awaitable<Completion> generate(Prompt prompt, SamplingParams params,
                                       std::function<void(const TokenDelta&)> on_delta,
                                       GenerateOptions options);
  // Starts a request and returns its stream of deltas. Validation errors are thrown here.
  asio::awaitable<CompletionStream> stream(Prompt prompt, SamplingParams params);
  asio::awaitable<CompletionStream> stream(Prompt prompt, SamplingParams params,
                                           GenerateOptions options);
  // Offline batch: every prompt with the same parameters, run concurrently; results in order.
  asio::awaitable<std::vector<Completion>> generate_batch(std::vector<Prompt> prompts,
                                                          SamplingParams params);
  // Aborts a running request (its stream ends with finish reason "abort"). False if unknown.
  asio::awaitable<bool> abort(const std::string& request_id);

  // Validates parameters against the model (ranges, token ids, prompt length) as generate
  // would; throws InvalidRequestError naming the parameter.
  void validate(const std::vector<int32_t>& prompt_token_ids, const SamplingParams& params) const;

  // Throws EngineUnavailableError when the model came without a tokenizer (see has_tokenizer).
  const Tokenizer& tokenizer() const;
  bool has_tokenizer() const;
  const ModelConfig& model_config() const;
  // The chat template (the --chat-template one, else the model's); nullptr if there is none.
  const ChatTemplate* chat_template() const;
  const EngineArgs& args() const;  // resolved: model path, served name, max_model_len, ...
  std::string device_name() const;
  // Defaults from the checkpoint's generation config applied to a request that leaves a
  // parameter unset (as vLLM's --generation-config auto).
  SamplingParams default_sampling_params() const;

  EngineStats stats() const;
  // Why the engine can serve no more requests (its device failed for good), or nothing when it
  // is healthy. The server's /health answers 503 with it.
  std::optional<std::string> health_error() const;

  // Stops accepting requests, lets in-flight ones finish (up to `deadline_ms`, then aborts
  // them) and stops the actors and threads.
  asio::awaitable<void> shutdown(int64_t deadline_ms);
  asio::awaitable<void> shutdown() { return shutdown(30000); }

  struct Impl;

 private:
  explicit Engine(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<Impl> impl_;
};

}  // namespace vllm

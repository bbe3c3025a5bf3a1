#include "server/openai_server.hpp"

#include <chrono>
#include <ctime>
#include <functional>
#include <span>
#include <vector>

#include <fmt/format.h>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/redirect_error.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include "runtime/logging.hpp"

#include "model/chat_template.hpp"
#include "model/tokenizer.hpp"
#include "server/http_error.hpp"
#include "server/openai_response.hpp"
#include "server/prometheus_metrics.hpp"

namespace vllm::server {
namespace {

constexpr std::string_view kVersion = "0.1.0";

int64_t unix_now() {
  return static_cast<int64_t>(std::time(nullptr));
}

// Runs the tasks concurrently on the caller's executor and returns when all have finished.
// (The server's io_context has one thread, so the count needs no lock.)
asio::awaitable<void> run_concurrently(std::vector<std::function<asio::awaitable<void>()>> tasks) {
  auto executor = co_await asio::this_coro::executor;
  auto timer =
      std::make_shared<asio::steady_timer>(executor, asio::steady_timer::time_point::max());
  auto remaining = std::make_shared<size_t>(tasks.size());
  for (auto& task : tasks) {
    asio::co_spawn(executor, std::move(task), [timer, remaining](std::exception_ptr) {
      if (--*remaining == 0) timer->cancel();
    });
  }
  if (*remaining > 0) {
    asio::error_code ignored;
    co_await timer->async_wait(asio::redirect_error(asio::use_awaitable, ignored));
  }
}

void add_usage(Usage& total, const Usage& more) {
  total.prompt_tokens += more.prompt_tokens;
  total.completion_tokens += more.completion_tokens;
  total.cached_tokens += more.cached_tokens;
}

// One choice's accumulated output.
struct ChoiceState {
  std::string text;
  std::vector<int32_t> token_ids;
  std::vector<SampleLogprobs> logprobs;
  std::optional<std::string> finish_reason;
  std::optional<std::variant<std::string, int32_t>> stop_reason;
  int32_t num_tokens = 0;
};

void accumulate(ChoiceState& choice, const TokenDelta& delta) {
  choice.text += delta.text;
  choice.token_ids.insert(choice.token_ids.end(), delta.token_ids.begin(), delta.token_ids.end());
  choice.logprobs.insert(choice.logprobs.end(), delta.logprobs.begin(), delta.logprobs.end());
  choice.num_tokens += static_cast<int32_t>(delta.token_ids.size());
  if (delta.finish_reason) choice.finish_reason = delta.finish_reason;
  if (delta.stop_reason) choice.stop_reason = delta.stop_reason;
}

// What the streamed requests of one response share.
struct StreamContext {
  HttpReply reply;
  ResponseHeader header;
  bool chat = false;
  int n = 1;
  std::optional<int> logprobs;
  bool continuous_usage = false;
  TokenText token_text;
  std::vector<ChoiceState> choices;    // prompt_index * n + sample index
  std::vector<int32_t> prompt_tokens;  // per prompt
  Usage usage;
  bool failed = false;
};

Json usage_so_far(const StreamContext& ctx, size_t prompt_index) {
  Usage usage;
  usage.prompt_tokens = ctx.prompt_tokens[prompt_index];
  for (int j = 0; j < ctx.n; ++j) {
    usage.completion_tokens += ctx.choices[prompt_index * ctx.n + j].num_tokens;
  }
  return usage_json(usage);
}

// Streams one prompt's deltas as SSE chunks until its end, an error or the client leaving.
asio::awaitable<void> stream_deltas(std::shared_ptr<StreamContext> ctx, size_t prompt_index,
                                    std::shared_ptr<CompletionStream> stream) {
  while (!ctx->reply.client_gone()) {
    std::optional<TokenDelta> delta;
    try {
      delta = co_await stream->next();
    } catch (...) {
      const HttpError error = to_http_error(std::current_exception());
      ctx->failed = true;
      ctx->reply.write("data: " + error_body(error.status(), error.what(), error.param()) + "\n\n");
      break;
    }
    if (!delta) break;
    if (delta->usage) add_usage(ctx->usage, *delta->usage);
    if (delta->text.empty() && delta->token_ids.empty() && !delta->finish_reason) continue;
    const int32_t index = static_cast<int32_t>(prompt_index) * ctx->n + delta->index;
    if (index < 0 || static_cast<size_t>(index) >= ctx->choices.size()) continue;
    ChoiceState& choice = ctx->choices[index];
    const size_t text_offset = choice.text.size();
    accumulate(choice, *delta);
    Json logprobs = nullptr;
    Json chunk;
    if (ctx->chat) {
      if (ctx->logprobs)
        logprobs = chat_logprobs_json(delta->token_ids, delta->logprobs, ctx->token_text);
      Json choice_json =
          chat_chunk_choice_json(index, Json{{"content", delta->text}}, std::move(logprobs),
                                 delta->finish_reason, delta->stop_reason);
      chunk = chat_chunk_json(ctx->header, Json::array({std::move(choice_json)}), std::nullopt);
    } else {
      if (ctx->logprobs) {
        logprobs = completion_logprobs_json(delta->token_ids, delta->logprobs, ctx->token_text,
                                            text_offset);
      }
      Json choice_json = completion_choice_json(index, delta->text, std::move(logprobs),
                                                delta->finish_reason, delta->stop_reason);
      chunk =
          completion_object_json(ctx->header, Json::array({std::move(choice_json)}), std::nullopt);
    }
    if (ctx->continuous_usage) chunk["usage"] = usage_so_far(*ctx, prompt_index);
    if (!ctx->reply.write(sse_event(chunk))) break;
  }
  // Leaving early drops the stream: the engine aborts the request and frees its blocks.
}

// Collects one prompt's outputs (non-streaming).
asio::awaitable<Usage> collect(CompletionStream& stream, std::span<ChoiceState> choices) {
  Usage usage;
  while (auto delta = co_await stream.next()) {
    if (delta->usage) usage = *delta->usage;
    if (delta->index >= 0 && static_cast<size_t>(delta->index) < choices.size()) {
      accumulate(choices[delta->index], *delta);
    }
  }
  co_return usage;
}

HttpError context_length_error(int32_t max_model_len, size_t prompt_len, int64_t max_tokens) {
  return HttpError(
      400,
      fmt::format("This model's maximum context length is {} tokens. However, you requested {} "
                  "tokens ({} in the messages, {} in the completion). Please reduce the length "
                  "of the messages or completion.",
                  max_model_len, static_cast<int64_t>(prompt_len) + max_tokens, prompt_len,
                  max_tokens),
      "messages");
}

}  // namespace

OpenAiServer::OpenAiServer(Engine engine, asio::io_context& io_context, OpenAiServerOptions options)
    : engine_(std::move(engine)),
      io_context_(io_context),
      options_(std::move(options)),
      served_model_name_(engine_.args().served_model_name),
      id_random_(std::random_device{}()) {}

int32_t OpenAiServer::max_model_len() const {
  if (engine_.args().max_model_len > 0) return engine_.args().max_model_len;
  return static_cast<int32_t>(engine_.model_config().max_position_embeddings);
}

std::string OpenAiServer::new_id(std::string_view prefix) {
  return fmt::format("{}{:016x}{:016x}", prefix, id_random_(), id_random_());
}

void OpenAiServer::check_model(const std::string& model) const {
  if (!model.empty() && model != served_model_name_) {
    throw HttpError(404, "The model `" + model + "` does not exist.", "model");
  }
}

void OpenAiServer::handle(HttpRequest request, HttpReply reply) {
  asio::co_spawn(io_context_, serve(std::move(request), reply), [reply](std::exception_ptr error) {
    if (!error) return;
    HttpReply r = reply;
    const HttpError e = to_http_error(error);
    r.send(e.status(), error_body(e.status(), e.what(), e.param()));
  });
}

asio::awaitable<void> OpenAiServer::serve(HttpRequest request, HttpReply reply) {
  ++in_flight_;
  struct Done {
    std::atomic<int64_t>& count;
    ~Done() { --count; }
  } done{in_flight_};
  try {
    const std::string& path = request.path;
    const bool get = request.method == "GET";
    const bool post = request.method == "POST";
    if (path.starts_with("/v1/") && !options_.api_key.empty() &&
        request.authorization != "Bearer " + options_.api_key) {
      throw HttpError(401, "Unauthorized: a valid API key is required (Authorization: Bearer ...)");
    }
    auto method_check = [&](bool ok) {
      if (!ok) throw HttpError(405, "Method " + request.method + " is not allowed on " + path);
    };
    if (path == "/health") {
      method_check(get);
      if (shutting_down_) throw HttpError(503, "the server is shutting down");
      if (auto unhealthy = engine_.health_error()) throw HttpError(503, *unhealthy);
      if (options_.backend_status) {
        const BackendStatus status = options_.backend_status();
        Json body{{"status", status.ok ? "ok" : "degraded"},
                  {"nodes", Json::parse(status.nodes_json.empty() ? "[]" : status.nodes_json)}};
        if (!status.ok) body["error"] = status.problem;
        reply.send(status.ok ? 200 : 503, dump_json(body));
      } else {
        reply.send(200, "", "text/plain");
      }
    } else if (path == "/version") {
      method_check(get);
      reply.send(200, dump_json(Json{{"version", kVersion}}));
    } else if (path == "/metrics") {
      method_check(get);
      reply.send(200, render_prometheus(engine_.stats(), served_model_name_),
                 kPrometheusContentType);
    } else if (path == "/v1/models") {
      method_check(get);
      models(reply);
    } else if (path == "/v1/completions" || path == "/v1/chat/completions") {
      method_check(post);
      if (shutting_down_) throw HttpError(503, "the server is shutting down");
      if (options_.backend_status) {
        const BackendStatus status = options_.backend_status();
        if (!status.ok) throw HttpError(503, status.problem);
      }
      const Json body = parse_json_body(request.body);
      if (path == "/v1/completions") {
        co_await completions(body, reply);
      } else {
        co_await chat_completions(body, reply);
      }
    } else if (path == "/tokenize") {
      method_check(post);
      tokenize(parse_json_body(request.body), reply);
    } else if (path == "/detokenize") {
      method_check(post);
      detokenize(parse_json_body(request.body), reply);
    } else {
      throw HttpError(404, "Not Found: " + request.method + " " + path);
    }
  } catch (...) {
    const HttpError error = to_http_error(std::current_exception());
    if (error.status() >= 500) {
      logger("server")->warn("{} {}: {}", request.method, request.path, error.what());
    }
    if (reply.streaming()) {  // the headers are out: report in the stream, then end it
      reply.write("data: " + error_body(error.status(), error.what(), error.param()) + "\n\n");
      reply.write(std::string(kSseDone));
      reply.finish();
    } else {
      reply.send(error.status(), error_body(error.status(), error.what(), error.param()));
    }
  }
}

void OpenAiServer::models(HttpReply& reply) const {
  Json model{{"id", served_model_name_},
             {"object", "model"},
             {"created", unix_now()},
             {"owned_by", "vllm-cpp"},
             {"root", engine_.args().model},
             {"parent", nullptr},
             {"max_model_len", max_model_len()},
             {"permission", Json::array()}};
  reply.send(200, dump_json(Json{{"object", "list"}, {"data", Json::array({std::move(model)})}}));
}

asio::awaitable<void> OpenAiServer::completions(const Json& body, HttpReply reply) {
  CompletionRequest request = parse_completion_request(body, engine_.default_sampling_params());
  check_model(request.model);
  const Tokenizer& tokenizer = engine_.tokenizer();
  // Engine ids are always ours (unique); a client's request_id names the response, as vLLM.
  const std::string request_id_base = new_id("cmpl-");
  const std::string id =
      request.request_id.empty() ? request_id_base : "cmpl-" + request.request_id;

  // Tokenize and validate every prompt before starting any.
  std::vector<std::vector<int32_t>> prompt_ids;
  std::vector<std::string> echo_texts;
  for (const auto& prompt : request.prompts) {
    std::vector<int32_t> ids =
        prompt.text ? tokenizer.encode(*prompt.text, request.add_special_tokens) : prompt.token_ids;
    if (ids.empty()) throw bad_request("prompt", "is empty after tokenization");
    if (ids.size() + static_cast<size_t>(request.params.max_tokens) >
        static_cast<size_t>(max_model_len())) {
      throw context_length_error(max_model_len(), ids.size(), request.params.max_tokens);
    }
    engine_.validate(ids, request.params);
    if (request.echo) {
      echo_texts.push_back(prompt.text ? *prompt.text : tokenizer.decode(ids, false));
    }
    prompt_ids.push_back(std::move(ids));
  }

  std::vector<std::shared_ptr<CompletionStream>> streams;
  std::vector<std::string> request_ids;
  for (size_t i = 0; i < prompt_ids.size(); ++i) {
    GenerateOptions options;
    options.request_id =
        prompt_ids.size() == 1 ? request_id_base : fmt::format("{}-{}", request_id_base, i);
    options.priority = request.priority;
    request_ids.push_back(options.request_id);
    streams.push_back(std::make_shared<CompletionStream>(
        co_await engine_.stream(prompt_ids[i], request.params, options)));
  }
  reply.on_client_gone([engine = engine_, request_ids, executor = io_context_.get_executor()] {
    for (const auto& request_id : request_ids) {
      asio::co_spawn(
          executor,
          [engine, request_id]() mutable -> asio::awaitable<void> {
            co_await engine.abort(request_id);
          },
          asio::detached);
    }
  });

  const ResponseHeader header{id, unix_now(), served_model_name_};
  const int n = request.params.n;
  TokenText token_text = [engine = engine_](int32_t token_id) {
    return engine.tokenizer().decode(std::span<const int32_t>(&token_id, 1), false);
  };

  if (!request.stream.stream) {
    std::vector<ChoiceState> choices(prompt_ids.size() * n);
    Usage usage;
    for (size_t i = 0; i < streams.size(); ++i) {
      add_usage(usage, co_await collect(*streams[i], std::span(choices).subspan(i * n, n)));
    }
    if (reply.client_gone()) co_return;
    Json choices_json = Json::array();
    for (size_t k = 0; k < choices.size(); ++k) {
      const ChoiceState& c = choices[k];
      const std::string prefix = request.echo ? echo_texts[k / n] : std::string();
      Json logprobs = nullptr;
      if (request.params.logprobs) {
        logprobs = completion_logprobs_json(c.token_ids, c.logprobs, token_text, prefix.size());
      }
      choices_json.push_back(completion_choice_json(static_cast<int32_t>(k), prefix + c.text,
                                                    std::move(logprobs), c.finish_reason,
                                                    c.stop_reason));
    }
    reply.send(200, dump_json(completion_object_json(header, std::move(choices_json), usage)));
    co_return;
  }

  auto ctx = std::make_shared<StreamContext>(StreamContext{reply, header});
  ctx->n = n;
  ctx->logprobs = request.params.logprobs;
  ctx->continuous_usage = request.stream.include_usage && request.stream.continuous_usage_stats;
  ctx->token_text = token_text;
  ctx->choices.resize(prompt_ids.size() * n);
  for (const auto& ids : prompt_ids) ctx->prompt_tokens.push_back(static_cast<int32_t>(ids.size()));
  reply.start_stream();
  if (request.echo) {
    for (size_t k = 0; k < ctx->choices.size(); ++k) {
      Json choice = completion_choice_json(static_cast<int32_t>(k), echo_texts[k / n], nullptr,
                                           std::nullopt, std::nullopt);
      reply.write(sse_event(completion_object_json(header, Json::array({choice}), std::nullopt)));
    }
  }
  std::vector<std::function<asio::awaitable<void>()>> tasks;
  for (size_t i = 0; i < streams.size(); ++i) {
    tasks.push_back([ctx, i, stream = streams[i]] { return stream_deltas(ctx, i, stream); });
  }
  streams.clear();
  co_await run_concurrently(std::move(tasks));
  if (request.stream.include_usage && !ctx->failed) {
    Json chunk = completion_object_json(header, Json::array(), ctx->usage);
    reply.write(sse_event(chunk));
  }
  reply.write(std::string(kSseDone));
  reply.finish();
}

asio::awaitable<void> OpenAiServer::chat_completions(const Json& body, HttpReply reply) {
  ChatCompletionRequest request =
      parse_chat_completion_request(body, engine_.default_sampling_params());
  check_model(request.model);
  const ChatTemplate* chat_template = engine_.chat_template();
  if (!chat_template) {
    throw HttpError(400, "this model has no chat template; start the server with --chat-template");
  }
  const Tokenizer& tokenizer = engine_.tokenizer();
  ChatTemplateOptions template_options;
  template_options.add_generation_prompt = request.add_generation_prompt;
  template_options.continue_final_message = request.continue_final_message;
  template_options.bos_token = tokenizer.bos_token();
  template_options.eos_token = tokenizer.eos_token();
  template_options.documents = request.documents;
  template_options.extra_kwargs = request.chat_template_kwargs;
  const std::string prompt = chat_template->render(request.messages, template_options);
  // The template wrote the special tokens; adding BOS again would double it (as vLLM).
  std::vector<int32_t> ids = tokenizer.encode(prompt, request.add_special_tokens);
  if (ids.empty()) throw bad_request("messages", "render to an empty prompt");
  const int32_t limit = max_model_len();
  if (!request.max_tokens_set) {
    // vLLM's chat default: as many tokens as fit (the generation config may lower it).
    if (static_cast<int64_t>(ids.size()) >= limit) throw context_length_error(limit, ids.size(), 1);
    request.params.max_tokens = limit - static_cast<int32_t>(ids.size());
    if (request.params.min_tokens > request.params.max_tokens) {
      throw bad_request("min_tokens", "must be <= max_tokens");
    }
  } else if (ids.size() + static_cast<size_t>(request.params.max_tokens) >
             static_cast<size_t>(limit)) {
    throw context_length_error(limit, ids.size(), request.params.max_tokens);
  }
  engine_.validate(ids, request.params);

  const std::string engine_id = new_id("chatcmpl-");
  const std::string id = request.request_id.empty() ? engine_id : "chatcmpl-" + request.request_id;
  GenerateOptions options;
  options.request_id = engine_id;
  options.priority = request.priority;
  options.add_special_tokens = false;
  const int32_t prompt_tokens = static_cast<int32_t>(ids.size());
  auto stream = std::make_shared<CompletionStream>(
      co_await engine_.stream(std::move(ids), request.params, options));
  reply.on_client_gone(
      [engine = engine_, request_id = options.request_id, executor = io_context_.get_executor()] {
        asio::co_spawn(
            executor,
            [engine, request_id]() mutable -> asio::awaitable<void> {
              co_await engine.abort(request_id);
            },
            asio::detached);
      });

  const ResponseHeader header{id, unix_now(), served_model_name_};
  const int n = request.params.n;
  TokenText token_text = [engine = engine_](int32_t token_id) {
    return engine.tokenizer().decode(std::span<const int32_t>(&token_id, 1), false);
  };

  if (!request.stream.stream) {
    std::vector<ChoiceState> choices(n);
    const Usage usage = co_await collect(*stream, choices);
    if (reply.client_gone()) co_return;
    Json choices_json = Json::array();
    for (int k = 0; k < n; ++k) {
      const ChoiceState& c = choices[k];
      Json logprobs = nullptr;
      if (request.params.logprobs)
        logprobs = chat_logprobs_json(c.token_ids, c.logprobs, token_text);
      choices_json.push_back(chat_choice_json(k, c.text, std::move(logprobs),
                                              c.finish_reason.value_or("abort"), c.stop_reason));
    }
    reply.send(200, dump_json(chat_object_json(header, std::move(choices_json), usage)));
    co_return;
  }

  auto ctx = std::make_shared<StreamContext>(StreamContext{reply, header});
  ctx->chat = true;
  ctx->n = n;
  ctx->logprobs = request.params.logprobs;
  ctx->continuous_usage = request.stream.include_usage && request.stream.continuous_usage_stats;
  ctx->token_text = token_text;
  ctx->choices.resize(n);
  ctx->prompt_tokens.push_back(prompt_tokens);
  reply.start_stream();
  for (int k = 0; k < n; ++k) {  // the role comes first, once per choice (as vLLM)
    Json choice = chat_chunk_choice_json(k, Json{{"role", "assistant"}, {"content", ""}}, nullptr,
                                         std::nullopt, std::nullopt);
    reply.write(sse_event(chat_chunk_json(header, Json::array({choice}), std::nullopt)));
  }
  co_await stream_deltas(ctx, 0, stream);
  stream.reset();
  if (request.stream.include_usage && !ctx->failed) {
    reply.write(sse_event(chat_chunk_json(header, Json::array(), ctx->usage)));
  }
  reply.write(std::string(kSseDone));
  reply.finish();
}

void OpenAiServer::tokenize(const Json& body, HttpReply& reply) const {
  TokenizeRequest request = parse_tokenize_request(body);
  check_model(request.model);
  const Tokenizer& tokenizer = engine_.tokenizer();
  std::string text;
  if (request.prompt) {
    text = *request.prompt;
  } else {
    const ChatTemplate* chat_template = engine_.chat_template();
    if (!chat_template) throw HttpError(400, "this model has no chat template");
    ChatTemplateOptions options;
    options.add_generation_prompt = request.add_generation_prompt;
    options.continue_final_message = request.continue_final_message;
    options.bos_token = tokenizer.bos_token();
    options.eos_token = tokenizer.eos_token();
    options.extra_kwargs = request.chat_template_kwargs;
    text = chat_template->render(request.messages, options);
  }
  const std::vector<int32_t> ids = tokenizer.encode(text, request.add_special_tokens);
  Json out{{"count", ids.size()}, {"max_model_len", max_model_len()}, {"tokens", ids}};
  if (request.return_token_strs) {
    Json strs = Json::array();
    for (int32_t id : ids) strs.push_back(tokenizer.id_to_token(id).value_or(""));
    out["token_strs"] = std::move(strs);
  } else {
    out["token_strs"] = nullptr;
  }
  reply.send(200, dump_json(out));
}

void OpenAiServer::detokenize(const Json& body, HttpReply& reply) const {
  DetokenizeRequest request = parse_detokenize_request(body);
  check_model(request.model);
  const Tokenizer& tokenizer = engine_.tokenizer();
  for (int32_t id : request.tokens) {
    if (static_cast<size_t>(id) >= tokenizer.vocab_size()) {
      throw bad_request("tokens", fmt::format("token id {} is outside the vocabulary (size {})", id,
                                              tokenizer.vocab_size()));
    }
  }
  reply.send(200, dump_json(Json{{"prompt", tokenizer.decode(request.tokens, false)}}));
}

}  // namespace vllm::server

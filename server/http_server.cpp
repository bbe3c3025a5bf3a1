// RESTinio 0.6 uses Asio functions that ASIO_NO_DEPRECATED removes (asio::buffer_cast). They are
// declarations only, so this one translation unit may see them without changing any type.
#undef ASIO_NO_DEPRECATED
#include <restinio/all.hpp>
// (RESTinio first: the Asio headers must be read without ASIO_NO_DEPRECATED.)

#include "server/http_server.hpp"

#include <atomic>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <vector>

#include <asio/post.hpp>
#include "runtime/logging.hpp"

#include "server/http_error.hpp"

namespace vllm::server {
namespace {

// Which replies are open on which connection, so that a closed connection cancels them.
struct ReplyRegistry {
  std::mutex mutex;
  std::unordered_map<uint64_t, std::vector<std::weak_ptr<HttpReply::Impl>>> by_connection;
  std::atomic<size_t> num_connections{0};
};

struct ConnectionListener {
  std::shared_ptr<ReplyRegistry> registry;
  void state_changed(const restinio::connection_state::notice_t& notice) noexcept;
};

struct Traits : restinio::traits_t<restinio::asio_timer_manager_t, restinio::null_logger_t> {
  static constexpr bool use_connection_count_limiter = true;
  using connection_state_listener_t = ConnectionListener;
};

using Server = restinio::http_server_t<Traits>;
using StreamBuilder = restinio::response_builder_t<restinio::chunked_output_t>;

std::string reason_phrase(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 413:
      return "Payload Too Large";
    case 500:
      return "Internal Server Error";
    case 503:
      return "Service Unavailable";
    default:
      return "Status";
  }
}

restinio::http_status_line_t status_line(int status) {
  return restinio::http_status_line_t(restinio::http_status_code_t(static_cast<uint16_t>(status)),
                                      reason_phrase(status));
}

}  // namespace

struct HttpReply::Impl {
  restinio::request_handle_t request;
  asio::any_io_executor executor;
  std::weak_ptr<ReplyRegistry> registry;
  uint64_t connection_id = 0;

  std::mutex mutex;
  std::optional<StreamBuilder> stream;
  bool responded = false;  // a response was created (plain or stream)
  bool complete = false;   // the response was handed over entirely
  std::atomic<bool> gone{false};
  std::function<void()> on_gone;

  // The connection closed or a write failed: the client will not read any more of it.
  void mark_gone(const std::shared_ptr<Impl>& self) {
    std::function<void()> callback;
    {
      std::lock_guard lock(mutex);
      if (complete || gone.exchange(true)) return;
      callback = std::move(on_gone);
    }
    if (callback) asio::post(executor, std::move(callback));
    (void)self;
  }

  void unregister() {
    auto reg = registry.lock();
    if (!reg) return;
    std::lock_guard lock(reg->mutex);
    auto it = reg->by_connection.find(connection_id);
    if (it == reg->by_connection.end()) return;
    auto& replies = it->second;
    std::erase_if(replies, [this](const std::weak_ptr<Impl>& w) {
      auto p = w.lock();
      return !p || p.get() == this;
    });
    if (replies.empty()) reg->by_connection.erase(it);
  }
};

namespace {

void ConnectionListener::state_changed(
    const restinio::connection_state::notice_t& notice) noexcept {
  const auto& cause = notice.cause();
  if (restinio::holds_alternative<restinio::connection_state::accepted_t>(cause)) {
    ++registry->num_connections;
    return;
  }
  if (!restinio::holds_alternative<restinio::connection_state::closed_t>(cause)) return;
  --registry->num_connections;
  std::vector<std::weak_ptr<HttpReply::Impl>> replies;
  {
    std::lock_guard lock(registry->mutex);
    auto it = registry->by_connection.find(notice.connection_id());
    if (it == registry->by_connection.end()) return;
    replies = std::move(it->second);
    registry->by_connection.erase(it);
  }
  for (const auto& weak : replies) {
    if (auto reply = weak.lock()) reply->mark_gone(reply);
  }
}

}  // namespace

void HttpReply::send(int status, std::string body, std::string_view content_type) {
  {
    std::lock_guard lock(impl_->mutex);
    if (impl_->responded) return;
    impl_->responded = true;
    impl_->complete = true;
  }
  impl_->unregister();
  try {
    impl_->request->create_response(status_line(status))
        .append_header(restinio::http_field::content_type, std::string(content_type))
        .set_body(std::move(body))
        .done();
  } catch (const std::exception& e) {
    logger("server")->debug("http: could not send a response: {}", e.what());
  }
}

void HttpReply::start_stream(std::string_view content_type) {
  std::lock_guard lock(impl_->mutex);
  if (impl_->responded) return;
  impl_->responded = true;
  try {
    impl_->stream.emplace(impl_->request->create_response<restinio::chunked_output_t>());
    impl_->stream->append_header(restinio::http_field::content_type, std::string(content_type));
    impl_->stream->append_header(restinio::http_field::cache_control, "no-cache");
  } catch (const std::exception& e) {
    logger("server")->debug("http: could not start a stream: {}", e.what());
    impl_->stream.reset();
  }
}

bool HttpReply::write(std::string chunk) {
  if (impl_->gone) return false;
  std::lock_guard lock(impl_->mutex);
  if (!impl_->stream || impl_->complete) return false;
  try {
    std::weak_ptr<Impl> weak = impl_;
    impl_->stream->append_chunk(std::move(chunk));
    impl_->stream->flush([weak](const asio::error_code& ec) {
      if (!ec) return;
      if (auto self = weak.lock()) self->mark_gone(self);
    });
  } catch (const std::exception& e) {
    logger("server")->debug("http: write failed: {}", e.what());
    return false;
  }
  return true;
}

void HttpReply::finish() {
  {
    std::lock_guard lock(impl_->mutex);
    if (!impl_->stream || impl_->complete) return;
    impl_->complete = true;
    try {
      impl_->stream->done();
    } catch (const std::exception& e) {
      logger("server")->debug("http: finishing a stream failed: {}", e.what());
    }
  }
  impl_->unregister();
}

bool HttpReply::client_gone() const {
  return impl_->gone;
}

bool HttpReply::streaming() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->stream.has_value() && !impl_->complete;
}

void HttpReply::on_client_gone(std::function<void()> callback) {
  bool already_gone = false;
  {
    std::lock_guard lock(impl_->mutex);
    already_gone = impl_->gone;
    if (!already_gone) impl_->on_gone = callback;
  }
  if (already_gone) asio::post(impl_->executor, std::move(callback));
}

struct HttpServer::Impl {
  asio::io_context& io_context;
  HttpServerOptions options;
  HttpHandler handler;
  std::shared_ptr<ReplyRegistry> registry = std::make_shared<ReplyRegistry>();
  std::unique_ptr<Server> server;

  restinio::request_handling_status_t on_request(const restinio::request_handle_t& request) {
    HttpRequest out;
    out.method = request->header().method().c_str();
    out.path = std::string(request->header().path());
    out.authorization =
        std::string(request->header().get_field_or(restinio::http_field::authorization, ""));
    out.content_type =
        std::string(request->header().get_field_or(restinio::http_field::content_type, ""));
    out.connection_id = request->connection_id();

    auto reply = std::make_shared<HttpReply::Impl>();
    reply->request = request;
    reply->executor = io_context.get_executor();
    reply->registry = registry;
    reply->connection_id = out.connection_id;
    {
      std::lock_guard lock(registry->mutex);
      registry->by_connection[out.connection_id].push_back(reply);
    }
    HttpReply handle(reply);
    if (request->body().size() > options.max_body_bytes) {
      handle.send(413, error_body(413, "request body of " + std::to_string(request->body().size()) +
                                           " bytes exceeds the limit of " +
                                           std::to_string(options.max_body_bytes) + " bytes"));
      return restinio::request_accepted();
    }
    out.body = request->body();
    try {
      handler(std::move(out), handle);
    } catch (...) {
      const HttpError error = to_http_error(std::current_exception());
      handle.send(error.status(), error_body(error.status(), error.what(), error.param()));
    }
    return restinio::request_accepted();
  }
};

HttpServer::HttpServer(asio::io_context& io_context, HttpServerOptions options, HttpHandler handler)
    : impl_(std::make_unique<Impl>(Impl{io_context, std::move(options), std::move(handler)})) {}

HttpServer::~HttpServer() = default;

void HttpServer::start(std::function<void()> on_listening,
                       std::function<void(std::string)> on_error) {
  const auto& o = impl_->options;
  // RESTinio cuts a connection whose declared body exceeds this while reading the headers.
  const uint64_t hard_body_limit =
      std::max<uint64_t>(uint64_t{o.max_body_bytes} * 4, uint64_t{64} << 20);
  auto settings = restinio::server_settings_t<Traits>{}
                      .address(o.host)
                      .port(o.port)
                      .max_parallel_connections(o.max_connections)
                      // Room for one more request keeps RESTinio reading the socket while a
                      // response is in progress, so a client that hangs up is noticed at once
                      // (EOF) rather than at the next failed write.
                      .max_pipelined_requests(2)
                      .read_next_http_message_timelimit(o.read_timeout)
                      .write_http_response_timelimit(o.write_timeout)
                      .handle_request_timeout(o.handle_timeout)
                      .incoming_http_msg_limits(restinio::incoming_http_msg_limits_t{}
                                                    .max_url_size(8192)
                                                    .max_field_name_size(1024)
                                                    .max_field_value_size(16384)
                                                    .max_field_count(100)
                                                    .max_body_size(hard_body_limit))
                      .connection_state_listener(
                          std::make_shared<ConnectionListener>(ConnectionListener{impl_->registry}))
                      .request_handler([impl = impl_.get()](restinio::request_handle_t request) {
                        return impl->on_request(request);
                      });
  impl_->server = std::make_unique<Server>(restinio::external_io_context(impl_->io_context),
                                           std::move(settings));
  impl_->server->open_async(std::move(on_listening),
                            [on_error = std::move(on_error)](std::exception_ptr error) {
                              try {
                                std::rethrow_exception(error);
                              } catch (const std::exception& e) {
                                on_error(e.what());
                              }
                            });
}

void HttpServer::stop_accepting() {
  if (!impl_->server) return;
  impl_->server->close_async([] {}, [](std::exception_ptr) {});
}

size_t HttpServer::num_connections() const {
  return impl_->registry->num_connections;
}

}  // namespace vllm::server

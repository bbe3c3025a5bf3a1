// HttpServer: the HTTP/1.1 transport of the OpenAI server, RESTinio on the caller's Asio
// io_context. It owns connections, keep-alive, limits and timeouts; a handler sees a parsed
// HttpRequest and answers through an HttpReply, at once or later (from a coroutine), plainly or
// as a stream of chunks (Server-Sent Events). RESTinio stays inside http_server.cpp.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include <asio/io_context.hpp>

namespace vllm::server {

struct HttpServerOptions {
  std::string host = "0.0.0.0";
  uint16_t port = 8000;
  // A body above this gets 413; far above it (max_body_bytes * 4, at least 64 MiB) the
  // connection is cut while the headers are read, before any of the body is buffered.
  size_t max_body_bytes = size_t{16} << 20;
  size_t max_connections = 1024;
  // Reading one request, headers and body, and the idle time of a keep-alive connection:
  // a client that trickles its request (slow loris) is cut off after this.
  std::chrono::milliseconds read_timeout{30000};
  std::chrono::milliseconds write_timeout{30000};  // one write of a response
  // Until the handler starts or completes its response (long generations, queueing).
  std::chrono::milliseconds handle_timeout{3600000};
};

struct HttpRequest {
  std::string method;  // "GET", "POST", ...
  std::string path;    // without the query
  std::string body;
  std::string authorization;  // the Authorization header, empty when absent
  std::string content_type;
  uint64_t connection_id = 0;
};

// One request's answer. Copies share it. Methods may be called from any thread.
class HttpReply {
 public:
  // A complete response.
  void send(int status, std::string body, std::string_view content_type = "application/json");
  // Starts a 200 chunked response (headers go out with the first write).
  void start_stream(std::string_view content_type = "text/event-stream");
  // Sends one chunk now. False once the client is gone (the data is dropped).
  bool write(std::string chunk);
  // Ends the streamed response.
  void finish();
  // True once start_stream was called (and finish has not been).
  bool streaming() const;
  // True once the connection closed before the response was complete.
  bool client_gone() const;
  // Called once, on the server's executor, if the connection closes before the response is
  // complete (the client went away): cancel the work.
  void on_client_gone(std::function<void()> callback);

  struct Impl;
  explicit HttpReply(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}

 private:
  std::shared_ptr<Impl> impl_;
};

using HttpHandler = std::function<void(HttpRequest request, HttpReply reply)>;

class HttpServer {
 public:
  HttpServer(asio::io_context& io_context, HttpServerOptions options, HttpHandler handler);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds and starts accepting once the io_context runs; `on_error` gets a bind failure.
  void start(std::function<void()> on_listening, std::function<void(std::string)> on_error);
  // Stops accepting new connections (open ones are served until they close).
  void stop_accepting();
  size_t num_connections() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace vllm::server

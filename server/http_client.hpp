// A small HTTP/1.1 client for load generation (`vllm-cpp bench serve`): one POST per
// connection, the response framed by http-parser (status, headers, chunked transfer encoding)
// and its body handed over piece by piece as it arrives, so a streamed (SSE) answer can be
// timed token by token.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include <asio/awaitable.hpp>

namespace vllm::server {

struct HttpUrl {
  std::string host;
  uint16_t port = 80;
  std::string path;  // "" or a prefix such as "/v1"

  // "http://host[:port][/path]"; throws std::invalid_argument otherwise (https is not
  // supported).
  static HttpUrl parse(std::string_view url);
};

struct HttpResponseHead {
  int status = 0;
};

// POSTs `body` to url.host:port + path and calls `on_body` with each decoded piece of the
// response body as it arrives. Returns the status. Throws std::system_error on network errors
// and std::runtime_error on a malformed response.
asio::awaitable<HttpResponseHead> http_post_streaming(
    const HttpUrl& url, const std::string& path, const std::string& body,
    const std::vector<std::pair<std::string, std::string>>& headers,
    std::function<void(std::string_view)> on_body);

// Splits a Server-Sent-Events byte stream into the payloads of its `data:` lines.
class SseSplitter {
 public:
  // Feeds bytes; returns the data payloads of the events completed by them.
  std::vector<std::string> feed(std::string_view bytes);

 private:
  std::string pending_;
};

}  // namespace vllm::server

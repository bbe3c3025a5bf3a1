#include "server/http_client.hpp"

#include <http_parser.h>

#include <array>
#include <stdexcept>
#include <system_error>

#include <asio/connect.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/read.hpp>
#include <asio/redirect_error.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>

namespace vllm::server {

HttpUrl HttpUrl::parse(std::string_view url) {
  constexpr std::string_view kScheme = "http://";
  if (!url.starts_with(kScheme)) {
    throw std::invalid_argument("URL must start with http:// (got '" + std::string(url) + "')");
  }
  url.remove_prefix(kScheme.size());
  const size_t slash = url.find('/');
  std::string_view authority = url.substr(0, slash);
  HttpUrl out;
  out.path = slash == std::string_view::npos ? "" : std::string(url.substr(slash));
  while (!out.path.empty() && out.path.back() == '/') out.path.pop_back();
  const size_t colon = authority.rfind(':');
  if (colon != std::string_view::npos && authority.find(']') == std::string_view::npos) {
    const std::string port(authority.substr(colon + 1));
    size_t used = 0;
    int value = 0;
    try {
      value = std::stoi(port, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != port.size() || value < 1 || value > 65535) {
      throw std::invalid_argument("bad port in URL: '" + port + "'");
    }
    out.port = static_cast<uint16_t>(value);
    authority = authority.substr(0, colon);
  }
  if (authority.empty()) throw std::invalid_argument("URL has no host");
  out.host = std::string(authority);
  return out;
}

namespace {

struct ParseState {
  std::function<void(std::string_view)>* on_body = nullptr;
  bool complete = false;
};

int on_body_cb(http_parser* parser, const char* at, size_t length) {
  auto* state = static_cast<ParseState*>(parser->data);
  (*state->on_body)(std::string_view(at, length));
  return 0;
}

int on_complete_cb(http_parser* parser) {
  static_cast<ParseState*>(parser->data)->complete = true;
  return 0;
}

}  // namespace

asio::awaitable<HttpResponseHead> http_post_streaming(
    const HttpUrl& url, const std::string& path, const std::string& body,
    const std::vector<std::pair<std::string, std::string>>& headers,
    std::function<void(std::string_view)> on_body) {
  auto executor = co_await asio::this_coro::executor;
  asio::ip::tcp::resolver resolver(executor);
  const auto endpoints =
      co_await resolver.async_resolve(url.host, std::to_string(url.port), asio::use_awaitable);
  asio::ip::tcp::socket socket(executor);
  co_await asio::async_connect(socket, endpoints, asio::use_awaitable);
  socket.set_option(asio::ip::tcp::no_delay(true));

  std::string request = "POST " + url.path + path + " HTTP/1.1\r\nHost: " + url.host + ":" +
                        std::to_string(url.port) +
                        "\r\nContent-Type: application/json\r\nConnection: close\r\n"
                        "Content-Length: " +
                        std::to_string(body.size()) + "\r\n";
  for (const auto& [name, value] : headers) request += name + ": " + value + "\r\n";
  request += "\r\n";
  request += body;
  co_await asio::async_write(socket, asio::buffer(request), asio::use_awaitable);

  http_parser parser;
  http_parser_init(&parser, HTTP_RESPONSE);
  ParseState state{&on_body};
  parser.data = &state;
  http_parser_settings settings;
  http_parser_settings_init(&settings);
  settings.on_body = on_body_cb;
  settings.on_message_complete = on_complete_cb;

  std::array<char, 16384> buffer;
  while (!state.complete) {
    asio::error_code ec;
    const size_t n = co_await socket.async_read_some(asio::buffer(buffer),
                                                     asio::redirect_error(asio::use_awaitable, ec));
    if (ec == asio::error::eof) {
      http_parser_execute(&parser, &settings, nullptr, 0);  // EOF ends a close-delimited body
      if (!state.complete) throw std::runtime_error("connection closed before the response ended");
      break;
    }
    if (ec) throw std::system_error(ec);
    const size_t parsed = http_parser_execute(&parser, &settings, buffer.data(), n);
    if (parser.http_errno != HPE_OK || parsed != n) {
      throw std::runtime_error(std::string("malformed HTTP response: ") +
                               http_errno_description(HTTP_PARSER_ERRNO(&parser)));
    }
  }
  co_return HttpResponseHead{static_cast<int>(parser.status_code)};
}

std::vector<std::string> SseSplitter::feed(std::string_view bytes) {
  pending_.append(bytes);
  std::vector<std::string> out;
  size_t start = 0;
  for (;;) {
    const size_t end = pending_.find("\n\n", start);
    if (end == std::string::npos) break;
    std::string_view event(pending_.data() + start, end - start);
    // An event's lines; the data lines' payloads joined by newlines, as the SSE spec says.
    std::string data;
    bool has_data = false;
    while (!event.empty()) {
      const size_t newline = event.find('\n');
      std::string_view line = event.substr(0, newline);
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      if (line.starts_with("data:")) {
        line.remove_prefix(5);
        if (line.starts_with(' ')) line.remove_prefix(1);
        if (has_data) data += '\n';
        data.append(line);
        has_data = true;
      }
      if (newline == std::string_view::npos) break;
      event.remove_prefix(newline + 1);
    }
    if (has_data) out.push_back(std::move(data));
    start = end + 2;
  }
  pending_.erase(0, start);
  return out;
}

}  // namespace vllm::server

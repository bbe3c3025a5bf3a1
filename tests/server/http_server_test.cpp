// The HTTP transport over real sockets on one io_context: plain replies, the body limit (413),
// a chunked SSE stream read back through the bench client, and a client that hangs up
// mid-stream reaching the handler's on_client_gone.
#include <catch2/catch.hpp>

#include <chrono>
#include <memory>
#include <string>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/read.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>
#include <nlohmann/json.hpp>

#include "server/http_client.hpp"
#include "server/http_server.hpp"
#include "server/openai_response.hpp"

namespace vllm::server {
namespace {

uint16_t free_port() {
  asio::io_context io;
  asio::ip::tcp::acceptor acceptor(io, {asio::ip::make_address("127.0.0.1"), 0});
  return acceptor.local_endpoint().port();
}

struct Fixture {
  asio::io_context io{1};
  HttpServerOptions options;
  std::unique_ptr<HttpServer> server;
  bool listening = false;
  bool client_gone = false;
  std::optional<HttpReply> held;  // a handler keeps its reply while it works

  Fixture() {
    options.host = "127.0.0.1";
    options.port = free_port();
    options.max_body_bytes = 1000;
    server =
        std::make_unique<HttpServer>(io, options, [this](HttpRequest request, HttpReply reply) {
          if (request.path == "/echo") {
            reply.send(200, request.method + " " + request.body, "text/plain");
          } else if (request.path == "/stream") {
            reply.start_stream();
            asio::co_spawn(
                io,
                [this, reply]() mutable -> asio::awaitable<void> {
                  asio::steady_timer timer(io);
                  for (const char* piece : {"a", "b", "c"}) {
                    reply.write(sse_event(Json{{"piece", piece}}));
                    timer.expires_after(std::chrono::milliseconds(5));
                    co_await timer.async_wait(asio::use_awaitable);
                  }
                  reply.write(std::string(kSseDone));
                  reply.finish();
                },
                asio::detached);
          } else if (request.path == "/hold") {  // streams until the client leaves
            reply.on_client_gone([this] { client_gone = true; });
            reply.start_stream();
            reply.write(sse_event(Json{{"piece", "first"}}));
            held = reply;
          } else {
            reply.send(404, "{}");
          }
        });
    server->start([this] { listening = true; }, [](std::string error) { FAIL(error); });
    run_until([this] { return listening; });
  }

  template <class Done>
  void run_until(Done done, std::chrono::milliseconds limit = std::chrono::milliseconds(10000)) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!done() && std::chrono::steady_clock::now() < deadline) {
      io.run_for(std::chrono::milliseconds(10));
    }
    REQUIRE(done());
  }

  // POSTs with the bench client; returns {status, body}.
  std::pair<int, std::string> post(const std::string& path, const std::string& body) {
    std::optional<std::pair<int, std::string>> result;
    HttpUrl url{"127.0.0.1", options.port, ""};
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
          std::string received;
          auto head = co_await http_post_streaming(url, path, body, {},
                                                   [&](std::string_view b) { received.append(b); });
          result.emplace(head.status, received);
        },
        asio::detached);
    run_until([&] { return result.has_value(); });
    return *result;
  }
};

}  // namespace

TEST_CASE("HTTP server answers, limits bodies and streams", "[server][http]") {
  Fixture f;
  CHECK(f.post("/echo", "hello") == std::pair<int, std::string>{200, "POST hello"});
  CHECK(f.post("/nothing", "").first == 404);

  const auto [status, body] = f.post("/echo", std::string(1001, 'x'));
  CHECK(status == 413);
  CHECK(nlohmann::json::parse(body)["error"]["code"] == 413);
  CHECK(f.post("/echo", std::string(1000, 'x')).first == 200);

  const auto [stream_status, stream_body] = f.post("/stream", "");
  CHECK(stream_status == 200);
  SseSplitter splitter;
  const auto events = splitter.feed(stream_body);
  REQUIRE(events.size() == 4);
  CHECK(events[0] == "{\"piece\":\"a\"}");
  CHECK(events[2] == "{\"piece\":\"c\"}");
  CHECK(events[3] == "[DONE]");
}

TEST_CASE("a client hanging up mid-stream reaches on_client_gone", "[server][http]") {
  Fixture f;
  bool got_first = false;
  asio::co_spawn(
      f.io,
      [&]() -> asio::awaitable<void> {
        asio::ip::tcp::socket socket(f.io);
        co_await socket.async_connect({asio::ip::make_address("127.0.0.1"), f.options.port},
                                      asio::use_awaitable);
        const std::string request = "POST /hold HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n";
        co_await asio::async_write(socket, asio::buffer(request), asio::use_awaitable);
        std::string received(4096, '\0');
        while (received.find("first") == std::string::npos) {
          size_t n = co_await socket.async_read_some(asio::buffer(received), asio::use_awaitable);
          if (std::string_view(received.data(), n).find("first") != std::string_view::npos) break;
        }
        got_first = true;
        socket.close();  // gone without reading the rest
      },
      asio::detached);
  INFO("waiting for the first event");
  f.run_until([&] { return got_first; });
  INFO("waiting for on_client_gone");
  f.run_until([&] { return f.client_gone; });
}

TEST_CASE("SSE splitter joins events across reads", "[server]") {
  SseSplitter s;
  CHECK(s.feed("data: {\"a\"").empty());
  CHECK(s.feed(":1}\n").empty());
  const auto events = s.feed("\ndata: [DONE]\n\n");
  REQUIRE(events.size() == 2);
  CHECK(events[0] == "{\"a\":1}");
  CHECK(events[1] == "[DONE]");
  CHECK(HttpUrl::parse("http://localhost:8000/v1/").path == "/v1");
  CHECK(HttpUrl::parse("http://example.com").port == 80);
  CHECK_THROWS_AS(HttpUrl::parse("https://x"), std::invalid_argument);
}

}  // namespace vllm::server

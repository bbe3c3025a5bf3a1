// OpenAI-shaped error bodies and the mapping of exceptions to HTTP statuses.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "actors/request.hpp"
#include "engine/engine.hpp"
#include "model/jinja/error.hpp"
#include "server/http_error.hpp"

namespace vllm::server {
namespace {

int status_of(std::exception_ptr e) {
  return to_http_error(e).status();
}

}  // namespace

TEST_CASE("error bodies have OpenAI's shape", "[server]") {
  const auto j = nlohmann::json::parse(error_body(400, "'n' must be >= 1", "n"));
  CHECK(j["error"]["message"] == "'n' must be >= 1");
  CHECK(j["error"]["type"] == "BadRequestError");
  CHECK(j["error"]["param"] == "n");
  CHECK(j["error"]["code"] == 400);
  const auto k = nlohmann::json::parse(error_body(404, "no such route"));
  CHECK(k["error"]["param"].is_null());
  CHECK(k["error"]["type"] == "NotFoundError");
  // A message quoting invalid UTF-8 still serializes.
  CHECK_NOTHROW(nlohmann::json::parse(error_body(400, "bad \xff byte")));
}

TEST_CASE("exceptions map to statuses", "[server]") {
  CHECK(status_of(std::make_exception_ptr(HttpError(413, "big"))) == 413);
  CHECK(status_of(std::make_exception_ptr(InvalidRequestError("prompt too long"))) == 400);
  CHECK(status_of(std::make_exception_ptr(std::invalid_argument("x"))) == 400);
  CHECK(status_of(std::make_exception_ptr(EngineOverloadedError("queue full"))) == 503);
  CHECK(status_of(std::make_exception_ptr(EngineUnavailableError("stopping"))) == 503);
  CHECK(status_of(std::make_exception_ptr(std::runtime_error("boom"))) == 500);
  const HttpError e = to_http_error(std::make_exception_ptr(InvalidRequestError("too long")));
  CHECK(std::string(e.what()) == "too long");
}

}  // namespace vllm::server

// HttpError: a request that fails with an HTTP status and an OpenAI-shaped error body
// {"error": {"message", "type", "param", "code"}}. Every failure a handler meets is turned into
// one (to_http_error), so a client always gets a JSON error and the server keeps running.
#pragma once

#include <exception>
#include <stdexcept>
#include <string>
#include <string_view>

namespace vllm::server {

class HttpError : public std::runtime_error {
 public:
  // `param`: the request field at fault, empty when none.
  HttpError(int status, const std::string& message, std::string param = {})
      : std::runtime_error(message), status_(status), param_(std::move(param)) {}

  int status() const { return status_; }
  const std::string& param() const { return param_; }

 private:
  int status_;
  std::string param_;
};

// A 400 naming the field: bad_request("temperature", "must be >= 0").
HttpError bad_request(std::string_view param, std::string_view problem);

// OpenAI's error type name for a status ("BadRequestError", "NotFoundError", ...).
std::string_view error_type(int status);

// The JSON body: {"error": {"message": ..., "type": ..., "param": ... | null, "code": status}}.
std::string error_body(int status, std::string_view message, std::string_view param = {});

// The status and message for an exception a handler caught: HttpError as it is;
// InvalidRequestError, ChatTemplateError, TokenizerError, std::invalid_argument -> 400;
// EngineOverloadedError, EngineUnavailableError -> 503; anything else -> 500.
HttpError to_http_error(std::exception_ptr error);

}  // namespace vllm::server

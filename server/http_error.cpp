#include "server/http_error.hpp"

#include <nlohmann/json.hpp>

#include "engine/engine.hpp"
#include "model/jinja/error.hpp"
#include "model/tokenizer_error.hpp"

namespace vllm::server {

HttpError bad_request(std::string_view param, std::string_view problem) {
  return HttpError(400, "'" + std::string(param) + "' " + std::string(problem), std::string(param));
}

std::string_view error_type(int status) {
  switch (status) {
    case 400:
      return "BadRequestError";
    case 401:
      return "AuthenticationError";
    case 404:
      return "NotFoundError";
    case 405:
      return "MethodNotAllowedError";
    case 413:
      return "RequestEntityTooLargeError";
    case 503:
      return "ServiceUnavailableError";
    default:
      return status >= 500 ? "InternalServerError" : "BadRequestError";
  }
}

std::string error_body(int status, std::string_view message, std::string_view param) {
  nlohmann::ordered_json error = {
      {"message", message},
      {"type", error_type(status)},
      {"param", param.empty() ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(param)},
      {"code", status},
  };
  // `replace`: a message quoting invalid UTF-8 from the request must still serialize.
  return nlohmann::ordered_json{{"error", std::move(error)}}.dump(
      -1, ' ', false, nlohmann::json::error_handler_t::replace);
}

HttpError to_http_error(std::exception_ptr error) {
  try {
    std::rethrow_exception(error);
  } catch (const HttpError& e) {
    return e;
  } catch (const EngineOverloadedError& e) {
    return HttpError(503, e.what());
  } catch (const EngineUnavailableError& e) {
    return HttpError(503, e.what());
  } catch (const ChatTemplateError& e) {
    return HttpError(400, std::string("chat template: ") + e.what(), "messages");
  } catch (const TokenizerError& e) {
    return HttpError(400, std::string("tokenizer: ") + e.what());
  } catch (const std::invalid_argument& e) {  // InvalidRequestError and other argument checks
    return HttpError(400, e.what());
  } catch (const nlohmann::json::exception& e) {
    return HttpError(400, e.what());
  } catch (const std::exception& e) {
    return HttpError(500, std::string("internal error: ") + e.what());
  } catch (...) {
    return HttpError(500, "internal error");
  }
}

}  // namespace vllm::server

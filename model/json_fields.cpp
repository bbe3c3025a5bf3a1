#include "model/json_fields.hpp"

#include <fmt/format.h>

#include "model/tokenizer_error.hpp"

namespace vllm::json_fields {
namespace {

const nlohmann::json& require(const nlohmann::json& object, const char* key,
                              std::string_view where) {
  if (!object.is_object())
    throw TokenizerError(
        fmt::format("{}: expected a JSON object, got {}", where, object.type_name()));
  const auto it = object.find(key);
  if (it == object.end()) throw TokenizerError(fmt::format("{}: missing key '{}'", where, key));
  return *it;
}

[[noreturn]] void wrong_type(const nlohmann::json& value, const char* key, std::string_view where,
                             std::string_view expected) {
  throw TokenizerError(
      fmt::format("{}: key '{}' must be {}, got {}", where, key, expected, value.type_name()));
}

}  // namespace

std::string get_string(const nlohmann::json& object, const char* key, std::string_view where) {
  const auto& value = require(object, key, where);
  if (!value.is_string()) wrong_type(value, key, where, "a string");
  return value.get<std::string>();
}

std::string get_string_or(const nlohmann::json& object, const char* key, std::string fallback,
                          std::string_view where) {
  if (!object.is_object() || !object.contains(key) || object.at(key).is_null()) return fallback;
  return get_string(object, key, where);
}

bool get_bool(const nlohmann::json& object, const char* key, bool fallback) {
  if (!object.is_object()) return fallback;
  const auto it = object.find(key);
  if (it == object.end() || !it->is_boolean()) return fallback;
  return it->get<bool>();
}

int64_t get_int(const nlohmann::json& object, const char* key, std::string_view where) {
  const auto& value = require(object, key, where);
  if (!value.is_number_integer()) wrong_type(value, key, where, "an integer");
  return value.get<int64_t>();
}

const nlohmann::json& get_array(const nlohmann::json& object, const char* key,
                                std::string_view where) {
  const auto& value = require(object, key, where);
  if (!value.is_array()) wrong_type(value, key, where, "an array");
  return value;
}

const nlohmann::json& get_object(const nlohmann::json& object, const char* key,
                                 std::string_view where) {
  const auto& value = require(object, key, where);
  if (!value.is_object()) wrong_type(value, key, where, "an object");
  return value;
}

Pattern get_pattern(const nlohmann::json& object, std::string_view where) {
  const auto& pattern = get_object(object, "pattern", where);
  if (pattern.contains("Regex")) return {get_string(pattern, "Regex", where), true};
  if (pattern.contains("String")) return {get_string(pattern, "String", where), false};
  throw TokenizerError(fmt::format("{}: key 'pattern' must hold \"String\" or \"Regex\", got {}",
                                   where, pattern.dump()));
}

}  // namespace vllm::json_fields

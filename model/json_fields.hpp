// Typed access to tokenizer.json fields that throws TokenizerError naming the object and key
// instead of nlohmann's generic type errors.
#pragma once

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace vllm::json_fields {

// `where` names the object being read (e.g. "pre_tokenizer Split") for the error message.
std::string get_string(const nlohmann::json& object, const char* key, std::string_view where);
std::string get_string_or(const nlohmann::json& object, const char* key, std::string fallback,
                          std::string_view where);
bool get_bool(const nlohmann::json& object, const char* key, bool fallback);
int64_t get_int(const nlohmann::json& object, const char* key, std::string_view where);
const nlohmann::json& get_array(const nlohmann::json& object, const char* key,
                                std::string_view where);
const nlohmann::json& get_object(const nlohmann::json& object, const char* key,
                                 std::string_view where);

// A "pattern" field: {"String": "..."} or {"Regex": "..."}.
struct Pattern {
  std::string text;
  bool is_regex = false;
};
Pattern get_pattern(const nlohmann::json& object, std::string_view where);

}  // namespace vllm::json_fields

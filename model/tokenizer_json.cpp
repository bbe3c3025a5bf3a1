// Tokenizer::from_tokenizer_json / from_json_string: the Hugging Face tokenizer.json format.
#include <fmt/format.h>

#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "model/json_fields.hpp"
#include "model/tokenizer.hpp"
#include "model/tokenizer_pipeline.hpp"

namespace vllm {
namespace {

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw TokenizerError(fmt::format("cannot open tokenizer file '{}'", path.string()));
  std::ostringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

std::vector<AddedToken> parse_added_tokens(const nlohmann::json& root) {
  std::vector<AddedToken> tokens;
  if (!root.contains("added_tokens") || root["added_tokens"].is_null()) return tokens;
  const auto& list = json_fields::get_array(root, "added_tokens", "tokenizer.json");
  for (size_t i = 0; i < list.size(); ++i) {
    const std::string where = fmt::format("added_tokens[{}]", i);
    const auto& entry = list[i];
    AddedToken token;
    token.id = static_cast<int32_t>(json_fields::get_int(entry, "id", where));
    token.content = json_fields::get_string(entry, "content", where);
    if (token.content.empty()) throw TokenizerError(where + ": 'content' is empty");
    token.special = json_fields::get_bool(entry, "special", false);
    token.single_word = json_fields::get_bool(entry, "single_word", false);
    token.lstrip = json_fields::get_bool(entry, "lstrip", false);
    token.rstrip = json_fields::get_bool(entry, "rstrip", false);
    token.normalized = json_fields::get_bool(entry, "normalized", !token.special);
    tokens.push_back(std::move(token));
  }
  return tokens;
}

// bos_token / eos_token / pad_token of a tokenizer_config.json: a string or {"content": ...}.
std::optional<std::string> config_token(const nlohmann::json& config, const char* key) {
  if (!config.contains(key)) return std::nullopt;
  const auto& value = config[key];
  if (value.is_string()) return value.get<std::string>();
  if (value.is_object() && value.contains("content") && value["content"].is_string())
    return value["content"].get<std::string>();
  return std::nullopt;
}

std::shared_ptr<Tokenizer::Impl> parse_tokenizer_json(std::string_view text,
                                                      std::string_view origin) {
  nlohmann::json root;
  try {
    root = nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    throw TokenizerError(fmt::format("{}: malformed JSON: {}", origin, e.what()));
  }
  try {
    if (!root.is_object())
      throw TokenizerError(fmt::format("top level must be an object, got {}", root.type_name()));
    const auto& model_json = json_fields::get_object(root, "model", "tokenizer.json");
    const std::string type = json_fields::get_string_or(model_json, "type", "BPE", "model");
    if (type != "BPE") {
      throw TokenizerError(
          fmt::format("unsupported model type '{}' (only BPE tokenizers are supported)", type));
    }
    auto impl = std::make_shared<Tokenizer::Impl>(BpeModel::from_json(model_json));
    auto optional_part = [&](const char* key) -> const nlohmann::json* {
      return root.contains(key) && !root[key].is_null() ? &root[key] : nullptr;
    };
    if (const auto* j = optional_part("normalizer")) impl->normalizer = Normalizer::from_json(*j);
    if (const auto* j = optional_part("pre_tokenizer"))
      impl->pre_tokenizer = PreTokenizer::from_json(*j);
    if (const auto* j = optional_part("post_processor"))
      impl->post_processor = PostProcessor::from_json(*j);
    if (const auto* j = optional_part("decoder")) impl->decoder = TokenDecoder::from_json(*j);
    impl->added_tokens = parse_added_tokens(root);
    impl->finalize();
    if (impl->post_processor) impl->bos_id = impl->post_processor->leading_special_id();
    return impl;
  } catch (const TokenizerError& e) {
    throw TokenizerError(fmt::format("{}: {}", origin, e.what()));
  } catch (const nlohmann::json::exception& e) {
    throw TokenizerError(fmt::format("{}: unexpected JSON content: {}", origin, e.what()));
  }
}

}  // namespace

Tokenizer Tokenizer::from_json_string(std::string_view text, std::string_view origin) {
  return Tokenizer(parse_tokenizer_json(text, origin));
}

Tokenizer Tokenizer::from_tokenizer_json(const std::filesystem::path& path) {
  auto impl = parse_tokenizer_json(read_file(path), path.string());
  const auto config_path = path.parent_path() / "tokenizer_config.json";
  if (std::filesystem::exists(config_path)) {
    const auto config =
        nlohmann::json::parse(read_file(config_path), nullptr, /*allow_exceptions=*/false);
    if (config.is_discarded() || !config.is_object())
      throw TokenizerError(fmt::format("'{}' is not a valid JSON object", config_path.string()));
    auto lookup = [&](const char* key) -> std::optional<int32_t> {
      const auto token = config_token(config, key);
      if (!token) return std::nullopt;
      if (const auto it = impl->added_by_content.find(*token); it != impl->added_by_content.end())
        return it->second;
      return impl->model.token_to_id(*token);
    };
    if (auto id = lookup("bos_token")) impl->bos_id = id;
    if (auto id = lookup("eos_token")) impl->eos_id = id;
    if (auto id = lookup("pad_token")) impl->pad_id = id;
  }
  return Tokenizer(std::move(impl));
}

}  // namespace vllm

// Tokenizer::from_gguf: tokenizer.ggml.* metadata mapped onto the same pipeline as
// tokenizer.json, the way Hugging Face describes these models:
//  - "gpt2": byte-level BPE; tokenizer.ggml.pre names the pre-tokenizer regex set.
//  - "llama": SentencePiece-style BPE with byte fallback; merges derived from the token scores
//    as transformers' SentencePieceExtractor does (every split of a token into two vocabulary
//    tokens, highest score first), normalizer Prepend("▁") + Replace(" ", "▁").
#include <fmt/format.h>

#include <algorithm>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "model/gguf.hpp"
#include "model/model_load_error.hpp"
#include "model/tokenizer.hpp"
#include "model/tokenizer_pipeline.hpp"

namespace vllm {
namespace {

constexpr std::string_view kMetaspace = "\xE2\x96\x81";  // "▁"

// tokenizer.ggml.token_type values.
enum TokenType : int64_t {
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,
  kUserDefined = 4,
  kUnused = 5,
  kByte = 6,
};

constexpr std::string_view kDeepSeekV3Patterns[] = {
    R"(\p{N}{1,3})",
    "[\xE4\xB8\x80-\xE9\xBE\xA5\xE3\x81\x80-\xE3\x82\x9F\xE3\x82\xA0-\xE3\x83\xBF]+",  // [一-龥぀-ゟ゠-ヿ]+
    R"([!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)",
};

struct PreTokenizerChoice {
  PreTokenizer pre_tokenizer;
  bool nfc = false;            // Qwen2 normalizes to NFC
  bool ignore_merges = false;  // Llama-3 looks a whole word up before merging
};

PreTokenizerChoice pre_tokenizer_for(const std::string& name) {
  if (name == "default" || name == "gpt2" || name == "gpt-2")
    return {PreTokenizer::byte_level(false, true)};
  if (name == "llama3" || name == "llama-v3" || name == "llama-bpe") {
    return {PreTokenizer::sequence(
                {PreTokenizer::split_regex(kLlama3Pattern, SplitBehavior::kIsolated, false),
                 PreTokenizer::byte_level(false, false)}),
            false, true};
  }
  if (name == "qwen2") {
    return {PreTokenizer::sequence(
                {PreTokenizer::split_regex(kQwen2Pattern, SplitBehavior::kIsolated, false),
                 PreTokenizer::byte_level(false, false)}),
            true, false};
  }
  if (name == "deepseek-v3") {
    // DeepSeek-V3's tokenizer.json: numbers, CJK runs, then words/punctuation, then ByteLevel.
    std::vector<PreTokenizer> steps;
    for (std::string_view pattern : kDeepSeekV3Patterns)
      steps.push_back(PreTokenizer::split_regex(pattern, SplitBehavior::kIsolated, false));
    steps.push_back(PreTokenizer::byte_level(false, false));
    return {PreTokenizer::sequence(std::move(steps))};
  }
  if (name == "smollm" || name == "starcoder" || name == "refact") {
    return {PreTokenizer::sequence(
        {PreTokenizer::digits(true), PreTokenizer::byte_level(false, true)})};
  }
  throw TokenizerError(fmt::format(
      "GGUF tokenizer.ggml.pre '{}' is not supported (supported: default, gpt2, llama3, llama-v3, "
      "llama-bpe, qwen2, deepseek-v3, smollm, starcoder, refact)",
      name));
}

std::optional<int32_t> optional_id(const GgufFile& gguf, const char* key, size_t vocab_size) {
  const auto value = gguf.get_int(key);
  if (!value || *value < 0 || static_cast<size_t>(*value) >= vocab_size) return std::nullopt;
  return static_cast<int32_t>(*value);
}

// transformers' SentencePieceExtractor: for each token (in id order) every split into two
// vocabulary tokens (ordered by their ids), then all stably sorted by the token's score, highest
// first.
std::vector<std::pair<std::string, std::string>> merges_from_scores(
    const std::vector<std::string>& tokens, const std::vector<double>& scores) {
  std::unordered_map<std::string_view, int32_t> ids;
  ids.reserve(tokens.size());
  for (size_t i = 0; i < tokens.size(); ++i) ids.emplace(tokens[i], static_cast<int32_t>(i));
  struct Candidate {
    int32_t left, right;
    double score;
  };
  std::vector<Candidate> candidates;
  std::vector<Candidate> local;
  for (size_t i = 0; i < tokens.size(); ++i) {
    const std::string_view token = tokens[i];
    local.clear();
    for (size_t cut = 1; cut < token.size(); ++cut) {
      if ((static_cast<unsigned char>(token[cut]) & 0xC0) == 0x80) continue;  // split on characters
      const auto left = ids.find(token.substr(0, cut));
      const auto right = ids.find(token.substr(cut));
      if (left != ids.end() && right != ids.end())
        local.push_back({left->second, right->second, scores[i]});
    }
    std::sort(local.begin(), local.end(), [](const Candidate& a, const Candidate& b) {
      return a.left != b.left ? a.left < b.left : a.right < b.right;
    });
    candidates.insert(candidates.end(), local.begin(), local.end());
  }
  std::stable_sort(candidates.begin(), candidates.end(),
                   [](const Candidate& a, const Candidate& b) { return a.score > b.score; });
  std::vector<std::pair<std::string, std::string>> merges;
  merges.reserve(candidates.size());
  for (const auto& c : candidates) merges.emplace_back(tokens[c.left], tokens[c.right]);
  return merges;
}

}  // namespace

Tokenizer Tokenizer::from_gguf(const GgufFile& gguf) {
  const std::string origin = fmt::format("GGUF '{}'", gguf.path().string());
  try {
    const auto model_name = gguf.get_string("tokenizer.ggml.model");
    if (!model_name) throw TokenizerError("missing key tokenizer.ggml.model");
    const auto tokens = gguf.get_string_array("tokenizer.ggml.tokens");
    if (tokens.empty()) throw TokenizerError("missing or empty tokenizer.ggml.tokens");
    auto types = gguf.get_int_array("tokenizer.ggml.token_type");
    if (types.empty()) types.assign(tokens.size(), kNormal);
    if (types.size() != tokens.size()) {
      throw TokenizerError(
          fmt::format("tokenizer.ggml.token_type has {} entries but tokenizer.ggml.tokens has {}",
                      types.size(), tokens.size()));
    }
    std::vector<std::pair<std::string, int32_t>> vocab;
    vocab.reserve(tokens.size());
    for (size_t i = 0; i < tokens.size(); ++i)
      vocab.emplace_back(tokens[i], static_cast<int32_t>(i));

    std::shared_ptr<Impl> impl;
    bool add_bos_default = false;
    if (*model_name == "gpt2") {
      std::vector<std::pair<std::string, std::string>> merges;
      for (const auto& merge : gguf.get_string_array("tokenizer.ggml.merges")) {
        const size_t space = merge.find(' ');
        if (space == std::string::npos)
          throw TokenizerError(
              fmt::format("tokenizer.ggml.merges entry '{}' is not 'left right'", merge));
        merges.emplace_back(merge.substr(0, space), merge.substr(space + 1));
      }
      auto choice = pre_tokenizer_for(gguf.get_string("tokenizer.ggml.pre").value_or("default"));
      BpeOptions options;
      options.ignore_merges = choice.ignore_merges;
      impl = std::make_shared<Impl>(BpeModel(std::move(vocab), merges, options));
      impl->pre_tokenizer = std::move(choice.pre_tokenizer);
      if (choice.nfc) impl->normalizer = Normalizer::from_json(nlohmann::json{{"type", "NFC"}});
      impl->decoder = TokenDecoder::byte_level();
    } else if (*model_name == "llama") {
      const auto scores = gguf.get_float_array("tokenizer.ggml.scores");
      if (scores.size() != tokens.size()) {
        throw TokenizerError(
            fmt::format("tokenizer.ggml.scores has {} entries but tokenizer.ggml.tokens has {}",
                        scores.size(), tokens.size()));
      }
      BpeOptions options;
      options.byte_fallback = true;
      options.fuse_unk = true;
      auto unk = optional_id(gguf, "tokenizer.ggml.unknown_token_id", tokens.size());
      if (!unk) {
        const auto it = std::find(types.begin(), types.end(), kUnknown);
        if (it != types.end()) unk = static_cast<int32_t>(it - types.begin());
      }
      if (unk) options.unk_token = tokens[*unk];
      impl = std::make_shared<Impl>(
          BpeModel(std::move(vocab), merges_from_scores(tokens, scores), options));
      const bool add_space_prefix = gguf.get_bool("tokenizer.ggml.add_space_prefix").value_or(true);
      std::vector<Normalizer> steps;
      if (add_space_prefix) steps.push_back(Normalizer::prepend(std::string(kMetaspace)));
      steps.push_back(Normalizer::replace_literal(" ", std::string(kMetaspace)));
      impl->normalizer = Normalizer::sequence(std::move(steps));
      std::vector<TokenDecoder> decoders{TokenDecoder::replace(std::string(kMetaspace), " "),
                                         TokenDecoder::byte_fallback(), TokenDecoder::fuse()};
      if (add_space_prefix) decoders.push_back(TokenDecoder::strip(" ", 1, 0));
      impl->decoder = TokenDecoder::sequence(std::move(decoders));
      add_bos_default = true;
    } else {
      throw TokenizerError(fmt::format(
          "tokenizer.ggml.model '{}' is not supported (supported: gpt2, llama)", *model_name));
    }

    // Control and unknown tokens are special; user-defined ones are plain added tokens. Both
    // are matched verbatim in the input, never split.
    for (size_t i = 0; i < tokens.size(); ++i) {
      const int64_t type = types[i];
      if (type != kControl && type != kUserDefined && type != kUnknown) continue;
      AddedToken token;
      token.content = tokens[i];
      token.id = static_cast<int32_t>(i);
      token.special = type != kUserDefined;
      impl->added_tokens.push_back(std::move(token));
    }
    impl->bos_id = optional_id(gguf, "tokenizer.ggml.bos_token_id", tokens.size());
    impl->eos_id = optional_id(gguf, "tokenizer.ggml.eos_token_id", tokens.size());
    impl->pad_id = optional_id(gguf, "tokenizer.ggml.padding_token_id", tokens.size());
    const bool add_bos = gguf.get_bool("tokenizer.ggml.add_bos_token").value_or(add_bos_default);
    const bool add_eos = gguf.get_bool("tokenizer.ggml.add_eos_token").value_or(false);
    impl->post_processor = PostProcessor::bos_eos(add_bos ? impl->bos_id : std::nullopt,
                                                  add_eos ? impl->eos_id : std::nullopt);
    impl->finalize();
    return Tokenizer(std::move(impl));
  } catch (const TokenizerError& e) {
    throw TokenizerError(fmt::format("{}: {}", origin, e.what()));
  } catch (const ModelLoadError& e) {  // a tokenizer key of the wrong type
    throw TokenizerError(fmt::format("{}: {}", origin, e.what()));
  }
}

}  // namespace vllm

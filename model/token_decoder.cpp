#include "model/token_decoder.hpp"

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "model/byte_level.hpp"
#include "model/json_fields.hpp"
#include "model/normalizer.hpp"
#include "model/tokenizer_error.hpp"
#include "model/unicode.hpp"

namespace vllm {
namespace {

// "<0xAB>" -> 0xAB
std::optional<unsigned char> parse_byte_token(std::string_view token) {
  if (token.size() != 6 || !token.starts_with("<0x") || token[5] != '>') return std::nullopt;
  int value = 0;
  for (char c : token.substr(3, 2)) {
    value <<= 4;
    if (c >= '0' && c <= '9')
      value |= c - '0';
    else if (c >= 'A' && c <= 'F')
      value |= c - 'A' + 10;
    else if (c >= 'a' && c <= 'f')
      value |= c - 'a' + 10;
    else
      return std::nullopt;
  }
  return static_cast<unsigned char>(value);
}

std::string replace_all(const std::string& text, const std::string& pattern,
                        const std::string& content) {
  if (pattern.empty()) return text;
  std::string out;
  size_t pos = 0, hit = 0;
  while ((hit = text.find(pattern, pos)) != std::string::npos) {
    out.append(text, pos, hit - pos);
    out += content;
    pos = hit + pattern.size();
  }
  out.append(text, pos);
  return out;
}

}  // namespace

TokenDecoder TokenDecoder::from_json(const nlohmann::json& json) {
  const std::string type = json_fields::get_string(json, "type", "decoder");
  if (type == "ByteLevel") return byte_level();
  if (type == "Metaspace") {
    TokenDecoder d;
    d.kind_ = Kind::kMetaspace;
    d.pattern_ =
        json_fields::get_string_or(json, "replacement", "\xE2\x96\x81", "decoder Metaspace");
    if (json.contains("prepend_scheme")) {
      const std::string scheme =
          json_fields::get_string(json, "prepend_scheme", "decoder Metaspace");
      d.prepend_scheme_ = scheme == "never"   ? PrependScheme::kNever
                          : scheme == "first" ? PrependScheme::kFirst
                                              : PrependScheme::kAlways;
    } else {
      d.prepend_scheme_ = json_fields::get_bool(json, "add_prefix_space", true)
                              ? PrependScheme::kAlways
                              : PrependScheme::kNever;
    }
    return d;
  }
  if (type == "Replace") {
    const auto pattern = json_fields::get_pattern(json, "decoder Replace");
    TokenDecoder d = replace(pattern.is_regex ? "" : pattern.text,
                             json_fields::get_string(json, "content", "decoder Replace"));
    if (pattern.is_regex)
      d.regex_ = std::make_shared<const Regex>(pattern.text, "decoder Replace pattern");
    return d;
  }
  if (type == "ByteFallback") return byte_fallback();
  if (type == "Fuse") return fuse();
  if (type == "Strip") {
    return strip(json_fields::get_string(json, "content", "decoder Strip"),
                 static_cast<int>(json_fields::get_int(json, "start", "decoder Strip")),
                 static_cast<int>(json_fields::get_int(json, "stop", "decoder Strip")));
  }
  if (type == "BPEDecoder") {
    TokenDecoder d;
    d.kind_ = Kind::kBpeSuffix;
    d.pattern_ = json_fields::get_string_or(json, "suffix", "</w>", "decoder BPEDecoder");
    return d;
  }
  if (type == "Sequence") {
    std::vector<TokenDecoder> steps;
    for (const auto& step : json_fields::get_array(json, "decoders", "decoder Sequence"))
      steps.push_back(from_json(step));
    return sequence(std::move(steps));
  }
  throw TokenizerError(fmt::format(
      "unsupported decoder type '{}' (supported: ByteLevel, Metaspace, Replace, ByteFallback, "
      "Fuse, Strip, BPEDecoder, Sequence)",
      type));
}

TokenDecoder TokenDecoder::byte_level() {
  TokenDecoder d;
  d.kind_ = Kind::kByteLevel;
  return d;
}

TokenDecoder TokenDecoder::replace(std::string pattern, std::string content) {
  TokenDecoder d;
  d.kind_ = Kind::kReplace;
  d.pattern_ = std::move(pattern);
  d.content_ = std::move(content);
  return d;
}

TokenDecoder TokenDecoder::byte_fallback() {
  TokenDecoder d;
  d.kind_ = Kind::kByteFallback;
  return d;
}

TokenDecoder TokenDecoder::fuse() {
  TokenDecoder d;
  d.kind_ = Kind::kFuse;
  return d;
}

TokenDecoder TokenDecoder::strip(std::string content, int start, int stop) {
  TokenDecoder d;
  d.kind_ = Kind::kStrip;
  d.pattern_ = std::move(content);
  d.strip_start_ = start;
  d.strip_stop_ = stop;
  return d;
}

TokenDecoder TokenDecoder::sequence(std::vector<TokenDecoder> steps) {
  TokenDecoder d;
  d.kind_ = Kind::kSequence;
  d.steps_ = std::move(steps);
  return d;
}

std::string TokenDecoder::decode(std::vector<std::string> tokens) const {
  std::string out;
  for (const auto& piece : decode_chain(std::move(tokens))) out += piece;
  return out;
}

std::vector<std::string> TokenDecoder::decode_chain(std::vector<std::string> tokens) const {
  switch (kind_) {
    case Kind::kByteLevel: {
      // Tokens whose characters are not all in the byte map (added tokens) pass as raw bytes.
      std::string bytes;
      for (const auto& token : tokens) {
        if (auto decoded = byte_level::decode(token))
          bytes += *decoded;
        else
          bytes += token;
      }
      return {unicode::utf8_lossy(bytes)};
    }
    case Kind::kMetaspace: {
      // Every replacement becomes a space, except in the first token where they are dropped.
      for (size_t i = 0; i < tokens.size(); ++i) {
        const bool drop = i == 0 && prepend_scheme_ != PrependScheme::kNever;
        tokens[i] = replace_all(tokens[i], pattern_, drop ? "" : " ");
      }
      return tokens;
    }
    case Kind::kReplace: {
      for (auto& token : tokens) {
        if (regex_) {
          std::string out;
          size_t pos = 0;
          regex_->for_each_match(token, [&](size_t start, size_t end) {
            out.append(token, pos, start - pos);
            out += content_;
            pos = end;
          });
          out.append(token, pos);
          token = std::move(out);
        } else {
          token = replace_all(token, pattern_, content_);
        }
      }
      return tokens;
    }
    case Kind::kByteFallback: {
      std::vector<std::string> out;
      out.reserve(tokens.size());
      std::string pending;  // bytes of consecutive <0xXX> tokens
      size_t pending_count = 0;
      auto flush = [&] {
        if (pending_count == 0) return;
        if (unicode::is_valid_utf8(pending)) {
          out.push_back(pending);
        } else {
          // Hugging Face: one U+FFFD per byte token when the run is not valid UTF-8.
          for (size_t i = 0; i < pending_count; ++i) out.emplace_back("\xEF\xBF\xBD");
        }
        pending.clear();
        pending_count = 0;
      };
      for (auto& token : tokens) {
        if (auto byte = parse_byte_token(token)) {
          pending.push_back(static_cast<char>(*byte));
          ++pending_count;
        } else {
          flush();
          out.push_back(std::move(token));
        }
      }
      flush();
      return out;
    }
    case Kind::kFuse: {
      std::string joined;
      for (const auto& token : tokens) joined += token;
      return {joined};
    }
    case Kind::kStrip: {
      for (auto& token : tokens) {
        size_t begin = 0, end = token.size();
        for (int i = 0; i < strip_start_ && token.compare(begin, pattern_.size(), pattern_) == 0 &&
                        begin + pattern_.size() <= end;
             ++i)
          begin += pattern_.size();
        for (int i = 0; i < strip_stop_ && end >= begin + pattern_.size() &&
                        token.compare(end - pattern_.size(), pattern_.size(), pattern_) == 0;
             ++i)
          end -= pattern_.size();
        token = token.substr(begin, end - begin);
      }
      return tokens;
    }
    case Kind::kBpeSuffix: {
      for (size_t i = 0; i < tokens.size(); ++i)
        tokens[i] = replace_all(tokens[i], pattern_, i + 1 == tokens.size() ? "" : " ");
      return tokens;
    }
    case Kind::kSequence: {
      for (const auto& step : steps_) tokens = step.decode_chain(std::move(tokens));
      return tokens;
    }
  }
  return tokens;
}

}  // namespace vllm

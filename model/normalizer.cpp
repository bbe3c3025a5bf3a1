#include "model/normalizer.hpp"

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "model/json_fields.hpp"
#include "model/tokenizer_error.hpp"
#include "model/unicode.hpp"

namespace vllm {
namespace {

std::string replace_all(std::string_view text, std::string_view pattern, std::string_view content) {
  if (pattern.empty()) return std::string(text);
  std::string out;
  out.reserve(text.size());
  size_t pos = 0;
  while (true) {
    const size_t hit = text.find(pattern, pos);
    if (hit == std::string_view::npos) break;
    out.append(text.substr(pos, hit - pos));
    out.append(content);
    pos = hit + pattern.size();
  }
  out.append(text.substr(pos));
  return out;
}

std::string strip_whitespace(std::string_view text, bool left, bool right) {
  size_t begin = 0, end = text.size();
  char32_t c = 0;
  while (left && begin < end) {
    const size_t n = unicode::decode_utf8(text, begin, &c);
    if (n == 0 || !unicode::is_whitespace(c)) break;
    begin += n;
  }
  while (right && end > begin) {
    size_t start = end - 1;
    while (start > begin && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) --start;
    const size_t n = unicode::decode_utf8(text, start, &c);
    if (n == 0 || !unicode::is_whitespace(c)) break;
    end = start;
  }
  return std::string(text.substr(begin, end - begin));
}

}  // namespace

Normalizer Normalizer::from_json(const nlohmann::json& json) {
  const std::string type = json_fields::get_string(json, "type", "normalizer");
  Normalizer n;
  if (type == "NFC") {
    n.kind_ = Kind::kNfc;
  } else if (type == "NFD") {
    n.kind_ = Kind::kNfd;
  } else if (type == "NFKC") {
    n.kind_ = Kind::kNfkc;
  } else if (type == "NFKD") {
    n.kind_ = Kind::kNfkd;
  } else if (type == "Prepend") {
    n = prepend(json_fields::get_string(json, "prepend", "normalizer Prepend"));
  } else if (type == "Replace") {
    const auto pattern = json_fields::get_pattern(json, "normalizer Replace");
    n.kind_ = Kind::kReplace;
    n.content_ = json_fields::get_string(json, "content", "normalizer Replace");
    if (pattern.is_regex)
      n.regex_ = std::make_shared<const Regex>(pattern.text, "normalizer Replace pattern");
    else
      n.text_ = pattern.text;
  } else if (type == "Strip") {
    n.kind_ = Kind::kStrip;
    n.strip_left_ = json_fields::get_bool(json, "strip_left", true);
    n.strip_right_ = json_fields::get_bool(json, "strip_right", true);
  } else if (type == "Sequence") {
    const auto& list = json_fields::get_array(json, "normalizers", "normalizer Sequence");
    std::vector<Normalizer> steps;
    for (const auto& step : list) steps.push_back(from_json(step));
    n = sequence(std::move(steps));
  } else {
    throw TokenizerError(fmt::format(
        "unsupported normalizer type '{}' (supported: NFC, NFD, NFKC, NFKD, Prepend, Replace, "
        "Strip, Sequence)",
        type));
  }
  return n;
}

Normalizer Normalizer::prepend(std::string prefix) {
  Normalizer n;
  n.kind_ = Kind::kPrepend;
  n.text_ = std::move(prefix);
  return n;
}

Normalizer Normalizer::replace_literal(std::string pattern, std::string content) {
  Normalizer n;
  n.kind_ = Kind::kReplace;
  n.text_ = std::move(pattern);
  n.content_ = std::move(content);
  return n;
}

Normalizer Normalizer::sequence(std::vector<Normalizer> steps) {
  Normalizer n;
  n.kind_ = Kind::kSequence;
  n.steps_ = std::move(steps);
  return n;
}

std::string Normalizer::normalize(std::string_view text) const {
  switch (kind_) {
    case Kind::kNfc:
      return unicode::nfc(text);
    case Kind::kNfd:
      return unicode::nfd(text);
    case Kind::kNfkc:
      return unicode::nfkc(text);
    case Kind::kNfkd:
      return unicode::nfkd(text);
    case Kind::kPrepend:
      // Hugging Face prepends only to non-empty text.
      return text.empty() ? std::string() : text_ + std::string(text);
    case Kind::kReplace: {
      if (!regex_) return replace_all(text, text_, content_);
      std::string out;
      size_t pos = 0;
      regex_->for_each_match(text, [&](size_t start, size_t end) {
        out.append(text.substr(pos, start - pos));
        out.append(content_);
        pos = end;
      });
      out.append(text.substr(pos));
      return out;
    }
    case Kind::kStrip:
      return strip_whitespace(text, strip_left_, strip_right_);
    case Kind::kSequence: {
      std::string current(text);
      for (const auto& step : steps_) current = step.normalize(current);
      return current;
    }
  }
  return std::string(text);
}

}  // namespace vllm

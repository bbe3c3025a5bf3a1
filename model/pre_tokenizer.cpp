#include "model/pre_tokenizer.hpp"

#include <fmt/format.h>

#include <algorithm>

#include <nlohmann/json.hpp>

#include "model/byte_level.hpp"
#include "model/json_fields.hpp"
#include "model/tokenizer_error.hpp"
#include "model/unicode.hpp"

namespace vllm {
namespace {

struct Span {
  size_t start, end;
  bool is_match;
};

// The spans (matches and the text between them) covering text, as Hugging Face builds them.
std::vector<Span> regex_spans(const Regex& regex, std::string_view text) {
  std::vector<Span> spans;
  size_t previous = 0;
  regex.for_each_match(text, [&](size_t start, size_t end) {
    if (start > previous) spans.push_back({previous, start, false});
    spans.push_back({start, end, true});
    previous = end;
  });
  if (previous < text.size()) spans.push_back({previous, text.size(), false});
  return spans;
}

std::vector<Span> literal_spans(std::string_view literal, std::string_view text) {
  std::vector<Span> spans;
  size_t previous = 0;
  if (!literal.empty()) {
    size_t hit = 0;
    while ((hit = text.find(literal, previous)) != std::string_view::npos) {
      if (hit > previous) spans.push_back({previous, hit, false});
      spans.push_back({hit, hit + literal.size(), true});
      previous = hit + literal.size();
    }
  }
  if (previous < text.size()) spans.push_back({previous, text.size(), false});
  return spans;
}

// Applies a SplitDelimiterBehavior to spans and appends the resulting non-empty pieces.
void emit_splits(const PreToken& token, std::vector<Span> spans, SplitBehavior behavior,
                 bool invert, std::vector<PreToken>& out) {
  if (invert)
    for (auto& s : spans) s.is_match = !s.is_match;
  struct Piece {
    size_t start, end;
    bool remove;
  };
  std::vector<Piece> pieces;
  pieces.reserve(spans.size());
  switch (behavior) {
    case SplitBehavior::kRemoved:
      for (const auto& s : spans) pieces.push_back({s.start, s.end, s.is_match});
      break;
    case SplitBehavior::kIsolated:
      for (const auto& s : spans) pieces.push_back({s.start, s.end, false});
      break;
    case SplitBehavior::kContiguous: {
      bool previous_match = false;
      for (const auto& s : spans) {
        if (s.is_match == previous_match && !pieces.empty())
          pieces.back().end = s.end;
        else
          pieces.push_back({s.start, s.end, false});
        previous_match = s.is_match;
      }
      break;
    }
    case SplitBehavior::kMergedWithPrevious: {
      bool previous_match = false;
      for (const auto& s : spans) {
        if (s.is_match && !previous_match && !pieces.empty())
          pieces.back().end = s.end;
        else
          pieces.push_back({s.start, s.end, false});
        previous_match = s.is_match;
      }
      break;
    }
    case SplitBehavior::kMergedWithNext: {
      bool previous_match = false;
      for (auto it = spans.rbegin(); it != spans.rend(); ++it) {
        if (it->is_match && !previous_match && !pieces.empty())
          pieces.back().start = it->start;
        else
          pieces.push_back({it->start, it->end, false});
        previous_match = it->is_match;
      }
      std::reverse(pieces.begin(), pieces.end());
      break;
    }
  }
  for (const auto& p : pieces) {
    if (p.remove || p.end <= p.start) continue;
    out.push_back(
        {token.text.substr(p.start, p.end - p.start), token.at_text_start && p.start == 0});
  }
}

SplitBehavior parse_behavior(const std::string& name) {
  if (name == "Removed") return SplitBehavior::kRemoved;
  if (name == "Isolated") return SplitBehavior::kIsolated;
  if (name == "MergedWithPrevious") return SplitBehavior::kMergedWithPrevious;
  if (name == "MergedWithNext") return SplitBehavior::kMergedWithNext;
  if (name == "Contiguous") return SplitBehavior::kContiguous;
  throw TokenizerError(
      fmt::format("pre_tokenizer Split: unknown behavior '{}' (expected Removed, Isolated, "
                  "MergedWithPrevious, MergedWithNext or Contiguous)",
                  name));
}

PrependScheme parse_prepend_scheme(const nlohmann::json& json) {
  // Older files say add_prefix_space instead of prepend_scheme.
  if (!json.contains("prepend_scheme"))
    return json_fields::get_bool(json, "add_prefix_space", true) ? PrependScheme::kAlways
                                                                 : PrependScheme::kNever;
  const std::string scheme = json_fields::get_string(json, "prepend_scheme", "Metaspace");
  if (scheme == "first") return PrependScheme::kFirst;
  if (scheme == "always") return PrependScheme::kAlways;
  if (scheme == "never") return PrependScheme::kNever;
  throw TokenizerError(fmt::format(
      "Metaspace: unknown prepend_scheme '{}' (expected first, always or never)", scheme));
}

std::shared_ptr<const Regex> shared_regex(std::string_view pattern, std::string_view origin) {
  return std::make_shared<const Regex>(std::string(pattern), origin);
}

}  // namespace

PreTokenizer PreTokenizer::from_json(const nlohmann::json& json) {
  const std::string type = json_fields::get_string(json, "type", "pre_tokenizer");
  if (type == "ByteLevel") {
    return byte_level(json_fields::get_bool(json, "add_prefix_space", true),
                      json_fields::get_bool(json, "use_regex", true));
  }
  if (type == "Split") {
    const auto pattern = json_fields::get_pattern(json, "pre_tokenizer Split");
    const auto behavior =
        parse_behavior(json_fields::get_string(json, "behavior", "pre_tokenizer Split"));
    const bool invert = json_fields::get_bool(json, "invert", false);
    if (pattern.is_regex) return split_regex(pattern.text, behavior, invert);
    PreTokenizer p;
    p.kind_ = Kind::kSplit;
    p.literal_ = pattern.text;
    p.behavior_ = behavior;
    p.invert_ = invert;
    return p;
  }
  if (type == "Digits") return digits(json_fields::get_bool(json, "individual_digits", false));
  if (type == "Punctuation") {
    PreTokenizer p;
    p.kind_ = Kind::kPunctuation;
    // Hugging Face: each ASCII or Unicode (P*) punctuation character is a delimiter.
    p.regex_ = shared_regex(R"([\p{P}!-/:-@\[-`{-~])", "pre_tokenizer Punctuation");
    p.behavior_ = json.contains("behavior")
                      ? parse_behavior(json_fields::get_string(json, "behavior", "Punctuation"))
                      : SplitBehavior::kIsolated;
    return p;
  }
  if (type == "Metaspace") {
    return metaspace(json_fields::get_string_or(json, "replacement", "\xE2\x96\x81", "Metaspace"),
                     parse_prepend_scheme(json), json_fields::get_bool(json, "split", true));
  }
  if (type == "Whitespace") {
    PreTokenizer p;
    p.kind_ = Kind::kWhitespace;
    p.regex_ = shared_regex(R"(\w+|[^\w\s]+)", "pre_tokenizer Whitespace");
    return p;
  }
  if (type == "WhitespaceSplit") {
    PreTokenizer p;
    p.kind_ = Kind::kWhitespaceSplit;
    p.regex_ = shared_regex(R"(\s+)", "pre_tokenizer WhitespaceSplit");
    return p;
  }
  if (type == "Sequence") {
    std::vector<PreTokenizer> steps;
    for (const auto& step : json_fields::get_array(json, "pretokenizers", "pre_tokenizer Sequence"))
      steps.push_back(from_json(step));
    return sequence(std::move(steps));
  }
  throw TokenizerError(fmt::format(
      "unsupported pre_tokenizer type '{}' (supported: ByteLevel, Split, Digits, Punctuation, "
      "Metaspace, Whitespace, WhitespaceSplit, Sequence)",
      type));
}

PreTokenizer PreTokenizer::byte_level(bool add_prefix_space, bool use_regex) {
  PreTokenizer p;
  p.kind_ = Kind::kByteLevel;
  p.add_prefix_space_ = add_prefix_space;
  p.use_regex_ = use_regex;
  if (use_regex) {
    // One compiled copy shared by every ByteLevel pre-tokenizer.
    static const auto gpt2 = shared_regex(kGpt2Pattern, "ByteLevel GPT-2 pattern");
    p.regex_ = gpt2;
  }
  return p;
}

PreTokenizer PreTokenizer::split_regex(std::string_view pattern, SplitBehavior behavior,
                                       bool invert) {
  PreTokenizer p;
  p.kind_ = Kind::kSplit;
  p.regex_ = shared_regex(pattern, "pre_tokenizer Split pattern");
  p.behavior_ = behavior;
  p.invert_ = invert;
  return p;
}

PreTokenizer PreTokenizer::digits(bool individual_digits) {
  PreTokenizer p;
  p.kind_ = Kind::kDigits;
  // Hugging Face splits on char::is_numeric, i.e. the Unicode N categories.
  p.regex_ = shared_regex(individual_digits ? R"(\p{N})" : R"(\p{N}+)", "pre_tokenizer Digits");
  return p;
}

PreTokenizer PreTokenizer::metaspace(std::string replacement, PrependScheme scheme, bool split) {
  PreTokenizer p;
  p.kind_ = Kind::kMetaspace;
  p.literal_ = std::move(replacement);
  p.prepend_scheme_ = scheme;
  p.metaspace_split_ = split;
  return p;
}

PreTokenizer PreTokenizer::sequence(std::vector<PreTokenizer> steps) {
  PreTokenizer p;
  p.kind_ = Kind::kSequence;
  p.steps_ = std::move(steps);
  return p;
}

bool PreTokenizer::uses_byte_level() const {
  if (kind_ == Kind::kByteLevel) return true;
  for (const auto& step : steps_)
    if (step.uses_byte_level()) return true;
  return false;
}

void PreTokenizer::pre_tokenize(std::vector<PreToken>& tokens) const {
  if (kind_ == Kind::kSequence) {
    for (const auto& step : steps_) step.pre_tokenize(tokens);
    return;
  }
  std::vector<PreToken> out;
  out.reserve(tokens.size() * 2);
  for (const auto& token : tokens) apply(token, out);
  tokens.swap(out);
}

void PreTokenizer::apply(const PreToken& token, std::vector<PreToken>& out) const {
  if (token.text.empty()) return;  // Hugging Face drops empty splits before any step sees them
  switch (kind_) {
    case Kind::kByteLevel: {
      PreToken prefixed = token;
      if (add_prefix_space_ && (prefixed.text.empty() || prefixed.text[0] != ' '))
        prefixed.text.insert(0, 1, ' ');
      const size_t first = out.size();
      if (use_regex_)
        emit_splits(prefixed, regex_spans(*regex_, prefixed.text), SplitBehavior::kIsolated, false,
                    out);
      else if (!prefixed.text.empty())
        out.push_back(std::move(prefixed));
      for (size_t i = first; i < out.size(); ++i) {
        std::string mapped;
        mapped.reserve(out[i].text.size() * 2);
        byte_level::append_encoded(mapped, out[i].text);
        out[i].text.swap(mapped);
      }
      return;
    }
    case Kind::kSplit:
      emit_splits(token,
                  regex_ ? regex_spans(*regex_, token.text) : literal_spans(literal_, token.text),
                  behavior_, invert_, out);
      return;
    case Kind::kDigits:
      emit_splits(token, regex_spans(*regex_, token.text), SplitBehavior::kIsolated, false, out);
      return;
    case Kind::kPunctuation:
      emit_splits(token, regex_spans(*regex_, token.text), behavior_, false, out);
      return;
    case Kind::kWhitespace:
      emit_splits(token, regex_spans(*regex_, token.text), SplitBehavior::kRemoved, true, out);
      return;
    case Kind::kWhitespaceSplit:
      emit_splits(token, regex_spans(*regex_, token.text), SplitBehavior::kRemoved, false, out);
      return;
    case Kind::kMetaspace: {
      PreToken replaced{{}, token.at_text_start};
      replaced.text.reserve(token.text.size() + literal_.size());
      for (char c : token.text) {
        if (c == ' ')
          replaced.text += literal_;
        else
          replaced.text += c;
      }
      const bool starts_with_replacement = replaced.text.starts_with(literal_);
      if (!starts_with_replacement &&
          (prepend_scheme_ == PrependScheme::kAlways ||
           (prepend_scheme_ == PrependScheme::kFirst && token.at_text_start)))
        replaced.text.insert(0, literal_);
      if (metaspace_split_)
        emit_splits(replaced, literal_spans(literal_, replaced.text),
                    SplitBehavior::kMergedWithNext, false, out);
      else if (!replaced.text.empty())
        out.push_back(std::move(replaced));
      return;
    }
    case Kind::kSequence:
      break;  // handled in pre_tokenize
  }
}

}  // namespace vllm

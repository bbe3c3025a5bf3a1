// Pre-tokenizers of tokenizer.json ("pre_tokenizer"): ByteLevel, Split, Digits, Punctuation,
// Metaspace, Whitespace, WhitespaceSplit, Sequence. A pre-tokenizer cuts normalized text into
// words; the BPE model then encodes each word on its own.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "model/regex.hpp"

namespace vllm {

// One word in the making. at_text_start: it begins at offset 0 of the original input text
// (Metaspace's prepend_scheme "first" prepends only there).
struct PreToken {
  std::string text;
  bool at_text_start = false;
};

// How a Split keeps the delimiters it finds (Hugging Face SplitDelimiterBehavior).
enum class SplitBehavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

enum class PrependScheme { kFirst, kAlways, kNever };

// The regex sets real models use (GPT-2 is also ByteLevel's built-in one).
inline constexpr std::string_view kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
inline constexpr std::string_view kLlama3Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
inline constexpr std::string_view kQwen2Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

class PreTokenizer {
 public:
  enum class Kind {
    kByteLevel,
    kSplit,
    kDigits,
    kPunctuation,
    kMetaspace,
    kWhitespace,
    kWhitespaceSplit,
    kSequence
  };

  // Parses a tokenizer.json pre_tokenizer object; throws TokenizerError naming what is wrong.
  static PreTokenizer from_json(const nlohmann::json& json);
  static PreTokenizer byte_level(bool add_prefix_space, bool use_regex);
  static PreTokenizer split_regex(std::string_view pattern, SplitBehavior behavior, bool invert);
  static PreTokenizer digits(bool individual_digits);
  static PreTokenizer metaspace(std::string replacement, PrependScheme scheme, bool split);
  static PreTokenizer sequence(std::vector<PreTokenizer> steps);

  // Splits every token further (in place, order kept).
  void pre_tokenize(std::vector<PreToken>& tokens) const;

  // True if this pre-tokenizer (or a step of it) maps bytes to the byte-level alphabet.
  bool uses_byte_level() const;

 private:
  void apply(const PreToken& token, std::vector<PreToken>& out) const;

  Kind kind_ = Kind::kSequence;
  bool add_prefix_space_ = false;       // ByteLevel
  bool use_regex_ = true;               // ByteLevel
  std::shared_ptr<const Regex> regex_;  // Split (Regex pattern), ByteLevel, Digits, Whitespace
  std::string literal_;                 // Split (String pattern); Metaspace replacement
  SplitBehavior behavior_ = SplitBehavior::kIsolated;
  bool invert_ = false;
  PrependScheme prepend_scheme_ = PrependScheme::kAlways;
  bool metaspace_split_ = true;
  std::vector<PreTokenizer> steps_;
};

}  // namespace vllm

// Normalizers of tokenizer.json ("normalizer"): NFC, NFD, NFKC, NFKD, Prepend, Replace,
// Strip, Sequence. A normalizer rewrites each piece of text between added tokens before
// pre-tokenization.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "model/regex.hpp"

namespace vllm {

class Normalizer {
 public:
  enum class Kind { kNfc, kNfd, kNfkc, kNfkd, kPrepend, kReplace, kStrip, kSequence };

  // Parses a tokenizer.json normalizer object; throws TokenizerError naming what is wrong.
  static Normalizer from_json(const nlohmann::json& json);
  static Normalizer prepend(std::string prefix);
  static Normalizer replace_literal(std::string pattern, std::string content);
  static Normalizer sequence(std::vector<Normalizer> steps);

  std::string normalize(std::string_view text) const;

 private:
  Kind kind_ = Kind::kSequence;
  std::string text_;                    // Prepend: the prefix; Replace: the literal pattern
  std::string content_;                 // Replace: the replacement
  std::shared_ptr<const Regex> regex_;  // Replace with a Regex pattern
  bool strip_left_ = false, strip_right_ = false;
  std::vector<Normalizer> steps_;
};

}  // namespace vllm

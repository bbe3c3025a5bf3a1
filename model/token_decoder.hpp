// Decoders of tokenizer.json ("decoder"): turn token strings back into text (ByteLevel,
// Metaspace, Replace, ByteFallback, Fuse, Strip, BPEDecoder, Sequence), chained token list to
// token list as Hugging Face does, then joined.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "model/pre_tokenizer.hpp"
#include "model/regex.hpp"

namespace vllm {

class TokenDecoder {
 public:
  enum class Kind {
    kByteLevel,
    kMetaspace,
    kReplace,
    kByteFallback,
    kFuse,
    kStrip,
    kBpeSuffix,
    kSequence
  };

  // Parses a tokenizer.json decoder object; throws TokenizerError naming what is wrong.
  static TokenDecoder from_json(const nlohmann::json& json);
  static TokenDecoder byte_level();
  static TokenDecoder replace(std::string pattern, std::string content);
  static TokenDecoder byte_fallback();
  static TokenDecoder fuse();
  static TokenDecoder strip(std::string content, int start, int stop);
  static TokenDecoder sequence(std::vector<TokenDecoder> steps);

  std::vector<std::string> decode_chain(std::vector<std::string> tokens) const;
  std::string decode(std::vector<std::string> tokens) const;

 private:
  Kind kind_ = Kind::kSequence;
  std::string pattern_;  // Replace (literal); Metaspace replacement; Strip content; BPE suffix
  std::string content_;  // Replace
  std::shared_ptr<const Regex> regex_;  // Replace with a Regex pattern
  PrependScheme prepend_scheme_ = PrependScheme::kAlways;
  int strip_start_ = 0, strip_stop_ = 0;
  std::vector<TokenDecoder> steps_;
};

}  // namespace vllm

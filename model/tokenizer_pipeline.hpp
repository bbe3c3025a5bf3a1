// The parts a Tokenizer is made of (shared by its tokenizer.json and GGUF builders).
#pragma once

#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "model/added_vocabulary.hpp"
#include "model/bpe_model.hpp"
#include "model/normalizer.hpp"
#include "model/post_processor.hpp"
#include "model/pre_tokenizer.hpp"
#include "model/token_decoder.hpp"
#include "model/tokenizer.hpp"

namespace vllm {

struct Tokenizer::Impl {
  explicit Impl(BpeModel bpe) : model(std::move(bpe)) {}

  std::optional<Normalizer> normalizer;
  std::optional<PreTokenizer> pre_tokenizer;
  BpeModel model;
  std::optional<PostProcessor> post_processor;
  std::optional<TokenDecoder> decoder;

  std::vector<AddedToken> added_tokens;
  std::optional<int32_t> bos_id, eos_id, pad_id;

  // Built by finalize():
  std::unordered_map<int32_t, size_t> added_by_id;  // id -> index into added_tokens
  std::unordered_map<std::string, int32_t> added_by_content;
  AddedTokenMatcher raw_matcher;         // tokens matched on the raw input
  AddedTokenMatcher normalized_matcher;  // tokens matched after normalization

  // Indexes the added tokens and builds the matchers; call once all parts are set.
  void finalize();
  // Ids of one piece of text between raw-matched added tokens.
  void encode_segment(std::string_view text, bool at_text_start, std::vector<int32_t>& ids) const;
};

}  // namespace vllm

#include "model/tokenizer.hpp"

#include <algorithm>

#include "model/tokenizer_pipeline.hpp"
#include "model/unicode.hpp"

namespace vllm {

void Tokenizer::Impl::finalize() {
  std::vector<AddedToken> raw_tokens, normalized_tokens;
  std::vector<std::string> raw_patterns, normalized_patterns;
  for (size_t i = 0; i < added_tokens.size(); ++i) {
    const AddedToken& token = added_tokens[i];
    added_by_id.emplace(token.id, i);
    added_by_content.emplace(token.content, token.id);
    if (token.normalized) {
      // A normalized token is looked for in normalized text, so its pattern is normalized too.
      normalized_tokens.push_back(token);
      normalized_patterns.push_back(normalizer ? normalizer->normalize(token.content)
                                               : token.content);
    } else {
      raw_tokens.push_back(token);
      raw_patterns.push_back(token.content);
    }
  }
  raw_matcher = AddedTokenMatcher(std::move(raw_tokens), std::move(raw_patterns));
  normalized_matcher =
      AddedTokenMatcher(std::move(normalized_tokens), std::move(normalized_patterns));
}

void Tokenizer::Impl::encode_segment(std::string_view text, bool at_text_start,
                                     std::vector<int32_t>& ids) const {
  const std::string normalized = normalizer ? normalizer->normalize(text) : std::string(text);
  std::vector<PreToken> words;
  for (const TextSegment& segment : normalized_matcher.split(normalized)) {
    if (segment.token_id >= 0) {
      ids.push_back(segment.token_id);
      continue;
    }
    words.clear();
    words.push_back({normalized.substr(segment.start, segment.end - segment.start),
                     at_text_start && segment.start == 0});
    if (pre_tokenizer) pre_tokenizer->pre_tokenize(words);
    for (const auto& word : words) model.encode_word(word.text, ids);
  }
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special_tokens) const {
  std::string repaired;
  if (!unicode::is_valid_utf8(text)) {
    repaired = unicode::utf8_lossy(text);
    text = repaired;
  }
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 4);
  for (const TextSegment& segment : impl_->raw_matcher.split(text)) {
    if (segment.token_id >= 0)
      ids.push_back(segment.token_id);
    else
      impl_->encode_segment(text.substr(segment.start, segment.end - segment.start),
                            segment.start == 0, ids);
  }
  if (add_special_tokens && impl_->post_processor)
    return impl_->post_processor->process(std::move(ids));
  return ids;
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool skip_special_tokens) const {
  return decode(ids, DecodeOptions{.skip_special_tokens = skip_special_tokens});
}

std::string Tokenizer::decode(std::span<const int32_t> ids, const DecodeOptions& options) const {
  auto run_decoder = [&](std::vector<std::string> tokens) {
    if (impl_->decoder) return impl_->decoder->decode(std::move(tokens));
    // Without a decoder Hugging Face joins the tokens with spaces.
    std::string joined;
    for (size_t i = 0; i < tokens.size(); ++i) {
      if (i > 0) joined += ' ';
      joined += tokens[i];
    }
    return joined;
  };
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  if (!options.spaces_between_special_tokens) {
    for (int32_t id : ids) {
      if (options.skip_special_tokens && is_special(id)) continue;
      if (auto token = id_to_token(id)) tokens.push_back(std::move(*token));
    }
    return run_decoder(std::move(tokens));
  }
  std::vector<std::string> pieces;
  for (int32_t id : ids) {
    if (options.skip_special_tokens && is_special(id)) continue;
    auto token = id_to_token(id);
    if (!token) continue;
    if (is_added_token(id)) {
      if (!tokens.empty()) pieces.push_back(run_decoder(std::exchange(tokens, {})));
      pieces.push_back(std::move(*token));
    } else {
      tokens.push_back(std::move(*token));
    }
  }
  if (!tokens.empty()) pieces.push_back(run_decoder(std::move(tokens)));
  std::string text;
  for (size_t i = 0; i < pieces.size(); ++i) {
    if (i > 0) text += ' ';
    text += pieces[i];
  }
  return text;
}

std::optional<std::string> Tokenizer::id_to_token(int32_t id) const {
  if (const auto it = impl_->added_by_id.find(id); it != impl_->added_by_id.end())
    return impl_->added_tokens[it->second].content;
  if (const std::string* token = impl_->model.id_to_token(id)) return *token;
  return std::nullopt;
}

std::optional<int32_t> Tokenizer::token_to_id(std::string_view token) const {
  if (const auto it = impl_->added_by_content.find(std::string(token));
      it != impl_->added_by_content.end())
    return it->second;
  return impl_->model.token_to_id(token);
}

size_t Tokenizer::vocab_size() const {
  size_t size = impl_->model.vocab_size();
  for (const auto& token : impl_->added_tokens)
    size = std::max(size, static_cast<size_t>(token.id) + 1);
  return size;
}

bool Tokenizer::is_special(int32_t id) const {
  const auto it = impl_->added_by_id.find(id);
  return it != impl_->added_by_id.end() && impl_->added_tokens[it->second].special;
}

bool Tokenizer::is_added_token(int32_t id) const {
  return impl_->added_by_id.contains(id);
}

const std::vector<AddedToken>& Tokenizer::added_tokens() const {
  return impl_->added_tokens;
}

std::optional<int32_t> Tokenizer::bos_token_id() const {
  return impl_->bos_id;
}
std::optional<int32_t> Tokenizer::eos_token_id() const {
  return impl_->eos_id;
}
std::optional<int32_t> Tokenizer::pad_token_id() const {
  return impl_->pad_id;
}

std::string Tokenizer::bos_token() const {
  return impl_->bos_id ? id_to_token(*impl_->bos_id).value_or("") : "";
}

std::string Tokenizer::eos_token() const {
  return impl_->eos_id ? id_to_token(*impl_->eos_id).value_or("") : "";
}

}  // namespace vllm

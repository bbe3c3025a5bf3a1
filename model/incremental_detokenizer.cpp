#include "model/incremental_detokenizer.hpp"

namespace vllm {
namespace {

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD

}  // namespace

IncrementalDetokenizer::IncrementalDetokenizer(const Tokenizer& tokenizer,
                                               std::span<const int32_t> prompt_ids,
                                               DecodeOptions options)
    : tokenizer_(&tokenizer), options_(options), ids_(prompt_ids.begin(), prompt_ids.end()) {
  read_offset_ = ids_.size();
  prefix_offset_ = ids_.size() > kInitialContextTokens ? ids_.size() - kInitialContextTokens : 0;
}

std::string IncrementalDetokenizer::push(std::span<const int32_t> new_ids) {
  ids_.insert(ids_.end(), new_ids.begin(), new_ids.end());
  return emit(false);
}

std::string IncrementalDetokenizer::finish() {
  return emit(true);
}

std::string IncrementalDetokenizer::emit(bool force) {
  if (read_offset_ >= ids_.size()) return "";
  const std::span<const int32_t> all(ids_);
  const std::string prefix_text =
      tokenizer_->decode(all.subspan(prefix_offset_, read_offset_ - prefix_offset_), options_);
  const std::string new_text = tokenizer_->decode(all.subspan(prefix_offset_), options_);
  // Hold back while the newest text ends in an incomplete character, unless finishing.
  if (!force && (new_text.ends_with(kReplacement) || new_text.size() <= prefix_text.size()))
    return "";
  std::string delta;
  if (new_text.size() > prefix_text.size()) {
    // Decoding whole tokens is prefix-stable, so new_text extends prefix_text; the boundary
    // check only guards against emitting half a character if a decoder ever breaks that.
    size_t start = prefix_text.size();
    while (start < new_text.size() && (static_cast<unsigned char>(new_text[start]) & 0xC0) == 0x80)
      ++start;
    delta = new_text.substr(start);
  }
  prefix_offset_ = read_offset_;
  read_offset_ = ids_.size();
  text_ += delta;
  return delta;
}

}  // namespace vllm

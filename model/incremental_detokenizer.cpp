#include "model/incremental_detokenizer.hpp"

#include <algorithm>

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
  if (!force && new_text.ends_with(kReplacement)) return "";
  if (new_text.size() <= prefix_text.size() && !force) return "";
  std::string delta;
  if (new_text.size() > prefix_text.size()) {
    // Decoding is prefix-stable for whole tokens, so new_text extends prefix_text; if it ever
    // does not, emit from the first differing byte's character boundary of what is new.
    const size_t common = static_cast<size_t>(
        std::mismatch(prefix_text.begin(), prefix_text.end(), new_text.begin()).first -
        prefix_text.begin());
    size_t start = std::max(common, prefix_text.size());
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

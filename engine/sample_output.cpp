#include "engine/sample_output.hpp"

#include <algorithm>

namespace vllm {

SampleOutput::SampleOutput(const Tokenizer* tokenizer, std::span<const int32_t> prompt_ids,
                           const SamplingParams& params)
    : stop_(params.stop), include_stop_(params.include_stop_str_in_output) {
  if (tokenizer != nullptr) {
    DecodeOptions options;
    options.skip_special_tokens = params.skip_special_tokens;
    detokenizer_.emplace(*tokenizer, prompt_ids, options);
  }
  for (const auto& s : stop_) {
    if (!include_stop_ && !s.empty()) hold_back_ = std::max(hold_back_, s.size() - 1);
  }
}

SampleOutput::Delta SampleOutput::push(std::span<const int32_t> new_ids, bool finished) {
  Delta delta;
  if (!detokenizer_ || stopped_) return delta;
  size_t previous_size = full_text_.size();
  full_text_ += detokenizer_->push(new_ids);
  if (finished) full_text_ += detokenizer_->finish();

  // A stop string can only end in the new text, and start at most (its length - 1) before it.
  size_t best = std::string::npos;
  const std::string* matched = nullptr;
  for (const auto& stop : stop_) {
    if (stop.empty()) continue;
    size_t from = previous_size >= stop.size() ? previous_size - stop.size() + 1 : 0;
    size_t at = full_text_.find(stop, from);
    if (at != std::string::npos && at < best) {
      best = at;
      matched = &stop;
    }
  }
  if (matched != nullptr) {
    full_text_.resize(include_stop_ ? best + matched->size() : best);
    delta.matched_stop = *matched;
    stopped_ = true;
  }

  size_t emit_up_to = full_text_.size();
  if (!stopped_ && !finished)
    emit_up_to = full_text_.size() > hold_back_ ? full_text_.size() - hold_back_ : 0;
  // Never emit a partial UTF-8 character because of the hold-back.
  while (emit_up_to > output_text_.size() && emit_up_to < full_text_.size() &&
         (static_cast<unsigned char>(full_text_[emit_up_to]) & 0xC0) == 0x80) {
    --emit_up_to;
  }
  if (emit_up_to > output_text_.size()) {
    delta.text = full_text_.substr(output_text_.size(), emit_up_to - output_text_.size());
    output_text_ += delta.text;
  }
  return delta;
}

}  // namespace vllm

// IncrementalDetokenizer: streaming text for a growing list of token ids (vLLM's prefix/read
// offset scheme). Each step decodes a short window of recent ids and emits only text past what
// was already emitted; text that still ends in U+FFFD (a character whose bytes have not all
// arrived) is held back until it completes or finish() is called. The concatenation of all
// deltas equals Tokenizer::decode of all ids.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "model/tokenizer.hpp"

namespace vllm {

class IncrementalDetokenizer {
 public:
  // prompt_ids: context decoded for spacing only (their text is never emitted). The tokenizer
  // must outlive this object.
  IncrementalDetokenizer(const Tokenizer& tokenizer, std::span<const int32_t> prompt_ids = {},
                         DecodeOptions options = {});

  // Appends ids and returns the newly completed text ("" if none yet).
  std::string push(std::span<const int32_t> new_ids);
  std::string push(int32_t id) { return push(std::span<const int32_t>(&id, 1)); }

  // Returns whatever is held back (e.g. a trailing incomplete character, as U+FFFD).
  std::string finish();

  // All text emitted so far (for stop-string matching).
  const std::string& text() const { return text_; }
  const std::vector<int32_t>& ids() const { return ids_; }

 private:
  std::string emit(bool force);

  // How many prompt ids before the first generated one are decoded as context (vLLM's value).
  static constexpr size_t kInitialContextTokens = 5;

  const Tokenizer* tokenizer_;
  DecodeOptions options_;
  std::vector<int32_t> ids_;
  size_t prefix_offset_ = 0;  // start of the decode window
  size_t read_offset_ = 0;    // ids before this have had their text emitted
  std::string text_;
};

}  // namespace vllm

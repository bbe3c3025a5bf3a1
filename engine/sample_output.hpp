// SampleOutput: the frontend side of one sequence: turns its token updates into text deltas
// (incremental detokenization, never a broken UTF-8 character) and matches stop strings as vLLM
// does: the text is cut before the stop string (or after it with include_stop_str_in_output),
// and while streaming the last (longest stop string - 1) characters are held back so that a
// stop string split across tokens is never emitted.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <vector>

#include "model/incremental_detokenizer.hpp"
#include "model/sampling_params.hpp"
#include "model/tokenizer.hpp"

namespace vllm {

class SampleOutput {
 public:
  // tokenizer may be null (no text is produced then).
  SampleOutput(const Tokenizer* tokenizer, std::span<const int32_t> prompt_ids,
               const SamplingParams& params);

  struct Delta {
    std::string text;
    std::optional<std::string> matched_stop;  // set when a stop string ended the sequence
  };
  // New tokens; `finished`: the sequence ended for another reason (flush what is held back).
  Delta push(std::span<const int32_t> new_ids, bool finished);

  const std::string& text() const { return output_text_; }  // everything emitted so far
  bool stopped() const { return stopped_; }

 private:
  std::optional<IncrementalDetokenizer> detokenizer_;
  std::vector<std::string> stop_;
  bool include_stop_;
  size_t hold_back_ = 0;
  std::string full_text_;    // detokenized text (cut at a matched stop string)
  std::string output_text_;  // emitted text
  bool stopped_ = false;
};

}  // namespace vllm

// The one exception type of the tokenizer: a malformed or unsupported tokenizer description
// (tokenizer.json, GGUF tokenizer metadata) or a failure while loading it.
#pragma once

#include <stdexcept>
#include <string>

namespace vllm {

class TokenizerError : public std::runtime_error {
 public:
  explicit TokenizerError(const std::string& message) : std::runtime_error(message) {}
};

}  // namespace vllm

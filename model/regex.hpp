// A compiled PCRE2 regular expression (UTF + UCP, JIT when available) for pre-tokenizer and
// normalizer patterns. Patterns are written for Oniguruma (what Hugging Face tokenizers uses);
// the differences that show on real patterns are translated: Oniguruma's \s also matches U+0085,
// and its \w is the Unicode word property (marks and all alphabetics included).
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

namespace vllm {

class Regex {
 public:
  // Throws TokenizerError naming `origin` (where the pattern came from) if it does not compile.
  Regex(const std::string& pattern, std::string_view origin);
  ~Regex();
  Regex(Regex&&) noexcept;
  Regex& operator=(Regex&&) noexcept;

  // Calls on_match(start, end) (byte offsets into text) for each successive non-overlapping
  // match, leftmost first. text must be valid UTF-8. Thread-safe. Throws TokenizerError if
  // PCRE2 cannot complete a match (resource limits).
  void for_each_match(std::string_view text,
                      const std::function<void(size_t start, size_t end)>& on_match) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace vllm

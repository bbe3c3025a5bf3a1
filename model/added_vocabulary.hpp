// Added tokens (special and not): matched in the input text before pre-tokenization so they are
// never split, with Hugging Face's flags (single_word, lstrip, rstrip, normalized).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace vllm {

struct AddedToken {
  std::string content;
  int32_t id = -1;
  bool special = false;
  bool single_word = false;
  bool lstrip = false;
  bool rstrip = false;
  bool normalized = false;  // matched on normalized text rather than the raw input
};

// A piece of text: either an added token (token_id >= 0) or text still to tokenize.
struct TextSegment {
  size_t start = 0, end = 0;  // byte offsets into the searched text
  int32_t token_id = -1;
};

// Finds added tokens leftmost-longest, as an Aho-Corasick LeftmostLongest automaton would.
class AddedTokenMatcher {
 public:
  AddedTokenMatcher() = default;
  // patterns[i] is what to look for (a token's content, normalized for normalized tokens).
  AddedTokenMatcher(std::vector<AddedToken> tokens, std::vector<std::string> patterns);

  bool empty() const { return tokens_.empty(); }

  // Cuts text into alternating plain-text and token segments (empty plain segments omitted).
  std::vector<TextSegment> split(std::string_view text) const;

 private:
  std::vector<AddedToken> tokens_;
  std::vector<std::string> patterns_;
  // By first byte: candidate indices into tokens_, longest pattern first.
  std::array<std::vector<uint32_t>, 256> by_first_byte_;
};

}  // namespace vllm

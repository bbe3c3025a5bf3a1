#include "model/added_vocabulary.hpp"

#include <algorithm>

#include "model/regex.hpp"
#include "model/unicode.hpp"

namespace vllm {
namespace {

// Hugging Face's word character test for single_word tokens: what a Unicode regex \w matches
// (alphabetic, marks, decimal digits, connector punctuation, joiners).
bool is_word_character(char32_t c) {
  if (c < 0x80)
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
  static const Regex word(R"(\w)", "word character class");
  std::string utf8;
  unicode::append_utf8(utf8, c);
  bool matched = false;
  word.for_each_match(utf8, [&](size_t, size_t) { matched = true; });
  return matched;
}

char32_t last_char(std::string_view s) {
  size_t start = s.size() - 1;
  while (start > 0 && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) --start;
  char32_t c = 0;
  return unicode::decode_utf8(s, start, &c) ? c : 0;
}

char32_t first_char(std::string_view s) {
  char32_t c = 0;
  return unicode::decode_utf8(s, 0, &c) ? c : 0;
}

}  // namespace

AddedTokenMatcher::AddedTokenMatcher(std::vector<AddedToken> tokens,
                                     std::vector<std::string> patterns)
    : tokens_(std::move(tokens)), patterns_(std::move(patterns)) {
  for (uint32_t i = 0; i < patterns_.size(); ++i) {
    if (patterns_[i].empty()) continue;
    by_first_byte_[static_cast<unsigned char>(patterns_[i][0])].push_back(i);
  }
  for (auto& candidates : by_first_byte_) {
    std::stable_sort(candidates.begin(), candidates.end(), [&](uint32_t a, uint32_t b) {
      return patterns_[a].size() > patterns_[b].size();
    });
  }
}

std::vector<TextSegment> AddedTokenMatcher::split(std::string_view text) const {
  std::vector<TextSegment> segments;
  size_t plain_start = 0;  // start of the plain text not yet emitted
  size_t pos = 0;
  while (pos < text.size()) {
    const auto& candidates = by_first_byte_[static_cast<unsigned char>(text[pos])];
    const AddedToken* found = nullptr;
    size_t found_length = 0;
    for (uint32_t index : candidates) {
      const std::string& pattern = patterns_[index];
      if (text.compare(pos, pattern.size(), pattern) != 0) continue;
      found = &tokens_[index];
      found_length = pattern.size();
      break;  // longest first
    }
    if (found == nullptr) {
      ++pos;
      continue;
    }
    size_t start = pos, stop = pos + found_length;
    if (found->single_word) {
      const bool start_ok = start == 0 || !is_word_character(last_char(text.substr(0, start)));
      const bool stop_ok = stop == text.size() || !is_word_character(first_char(text.substr(stop)));
      if (!start_ok || !stop_ok) {
        ++pos;
        continue;
      }
    }
    if (found->lstrip) {
      // Absorb the whitespace before the token (never past the previous match).
      while (start > plain_start) {
        size_t prev = start - 1;
        while (prev > plain_start && (static_cast<unsigned char>(text[prev]) & 0xC0) == 0x80)
          --prev;
        char32_t c = 0;
        if (!unicode::decode_utf8(text, prev, &c) || !unicode::is_whitespace(c)) break;
        start = prev;
      }
    }
    if (found->rstrip) {
      char32_t c = 0;
      while (stop < text.size()) {
        const size_t n = unicode::decode_utf8(text, stop, &c);
        if (n == 0 || !unicode::is_whitespace(c)) break;
        stop += n;
      }
    }
    if (start > plain_start) segments.push_back({plain_start, start, -1});
    segments.push_back({start, stop, found->id});
    plain_start = pos = stop;
  }
  if (plain_start < text.size()) segments.push_back({plain_start, text.size(), -1});
  return segments;
}

}  // namespace vllm

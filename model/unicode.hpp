// UTF-8 and Unicode helpers the tokenizer needs: decoding/encoding code points, lossy repair
// of invalid UTF-8 (the same replacement policy as Rust's String::from_utf8_lossy, which the
// Hugging Face decoders use), and NFC/NFKC normalization from generated tables.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace vllm::unicode {

inline constexpr char32_t kReplacementCharacter = 0xFFFD;

// Decodes one well-formed UTF-8 character at s[pos]; returns its byte length, or 0 when the
// bytes there are not a well-formed character (then *code_point is untouched).
size_t decode_utf8(std::string_view s, size_t pos, char32_t* code_point);

void append_utf8(std::string& out, char32_t code_point);

bool is_valid_utf8(std::string_view s);

// Replaces each maximal ill-formed subsequence by U+FFFD (Unicode "substitution of maximal
// subparts", as Rust's from_utf8_lossy does).
std::string utf8_lossy(std::string_view bytes);

// Length of the longest prefix of s that ends on a character boundary and holds no incomplete
// trailing character (s itself when s is valid UTF-8 or ends in a complete character).
size_t complete_utf8_prefix_length(std::string_view s);

// Rust char::is_whitespace (the Unicode White_Space property).
bool is_whitespace(char32_t c);

// Canonical combining class (0 for starters).
int combining_class(char32_t c);

// Unicode normalization forms (input must be valid UTF-8; invalid bytes are kept unchanged).
std::string nfc(std::string_view s);
std::string nfd(std::string_view s);
std::string nfkc(std::string_view s);
std::string nfkd(std::string_view s);

}  // namespace vllm::unicode

// The few Unicode facts Python's str methods rely on, over UTF-8 strings: code point
// decoding (a Python str is indexed by code point), whitespace as str.isspace()/strip() see it,
// case mapping, and which characters repr() prints as escapes.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace vllm::jinja::unicode {

// Decodes UTF-8 into code points; invalid bytes decode as U+FFFD.
std::vector<char32_t> decode(std::string_view text);
void append_utf8(std::string& out, char32_t code_point);
std::string encode(const std::vector<char32_t>& code_points);
// Number of code points.
std::size_t length(std::string_view text);
bool is_ascii(std::string_view text);

bool is_space(char32_t c);      // str.isspace()
bool is_printable(char32_t c);  // str.isprintable(), approximately (no unassigned table)
bool is_alpha(char32_t c);
bool is_digit(char32_t c);
bool is_upper(char32_t c);
bool is_lower(char32_t c);
char32_t to_upper(char32_t c);
char32_t to_lower(char32_t c);

std::string upper(std::string_view text);
std::string lower(std::string_view text);

}  // namespace vllm::jinja::unicode

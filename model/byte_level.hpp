// GPT-2's reversible byte <-> printable-character map that byte-level BPE vocabularies are
// written in: printable Latin-1 bytes map to themselves, the other 68 bytes to U+0100.. in order.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace vllm::byte_level {

// The character byte b is written as.
char32_t byte_to_char(unsigned char b);

// The byte that character c stands for, if c is one of the 256 characters of the map.
std::optional<unsigned char> char_to_byte(char32_t c);

// Appends the byte-level form of raw bytes (each byte becomes its character, UTF-8 encoded).
void append_encoded(std::string& out, std::string_view bytes);

// Decodes a byte-level string back to raw bytes; nullopt if a character is not in the map.
std::optional<std::string> decode(std::string_view encoded);

}  // namespace vllm::byte_level

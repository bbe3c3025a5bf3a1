#include "model/byte_level.hpp"

#include <array>

#include "model/unicode.hpp"

namespace vllm::byte_level {
namespace {

struct Tables {
  std::array<char32_t, 256> to_char{};
  std::array<std::string, 256> to_utf8{};
  std::array<int, 324> to_byte{};  // characters of the map are all below U+0144

  Tables() {
    to_byte.fill(-1);
    int next = 0;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
      to_char[b] = printable ? static_cast<char32_t>(b) : static_cast<char32_t>(256 + next++);
      to_byte[to_char[b]] = b;
      unicode::append_utf8(to_utf8[b], to_char[b]);
    }
  }
};

const Tables& tables() {
  static const Tables instance;
  return instance;
}

}  // namespace

char32_t byte_to_char(unsigned char b) {
  return tables().to_char[b];
}

std::optional<unsigned char> char_to_byte(char32_t c) {
  if (c >= tables().to_byte.size() || tables().to_byte[c] < 0) return std::nullopt;
  return static_cast<unsigned char>(tables().to_byte[c]);
}

void append_encoded(std::string& out, std::string_view bytes) {
  const Tables& t = tables();
  for (char ch : bytes) out += t.to_utf8[static_cast<unsigned char>(ch)];
}

std::optional<std::string> decode(std::string_view encoded) {
  std::string out;
  out.reserve(encoded.size());
  size_t pos = 0;
  while (pos < encoded.size()) {
    char32_t c = 0;
    const size_t n = unicode::decode_utf8(encoded, pos, &c);
    if (n == 0) return std::nullopt;
    const auto b = char_to_byte(c);
    if (!b) return std::nullopt;
    out.push_back(static_cast<char>(*b));
    pos += n;
  }
  return out;
}

}  // namespace vllm::byte_level

// UTF-8 helpers and NFC/NFKC normalization (the corpus tests cover them at scale through the
// NFC (qwen2) and NFKC (claude) tokenizers; these pin down the rules).
#include <catch2/catch.hpp>

#include "model/byte_level.hpp"
#include "model/unicode.hpp"

using namespace vllm;

TEST_CASE("NFC composes, reorders and keeps exclusions", "[tokenizer][unicode]") {
  CHECK(unicode::nfc("e\xCC\x81") == "\xC3\xA9");                                 // e + acute -> é
  CHECK(unicode::nfc("a\xCC\xA3\xCC\x80") == unicode::nfc("a\xCC\x80\xCC\xA3"));  // canonical order
  CHECK(unicode::nfc("\xE1\x84\x80\xE1\x85\xA1\xE1\x86\xA8") ==
        "\xEA\xB0\x81");  // Hangul L V T -> 각
  CHECK(unicode::nfc("\xE0\xA4\x95\xE0\xA4\xBC") ==
        "\xE0\xA4\x95\xE0\xA4\xBC");                  // क + nukta: excluded
  CHECK(unicode::nfc("\xE2\x84\xAB") == "\xC3\x85");  // Angstrom sign -> Å (singleton)
  CHECK(unicode::nfc("plain ascii") == "plain ascii");
  CHECK(unicode::nfkc("\xEF\xAC\x81") == "fi");  // ﬁ ligature
  CHECK(unicode::nfkc("\xE2\x91\xA0") == "1");   // ①
  CHECK(unicode::nfd("\xC3\xA9") == "e\xCC\x81");
}

TEST_CASE("lossy UTF-8 repair replaces maximal ill-formed subparts", "[tokenizer][unicode]") {
  CHECK(unicode::utf8_lossy("ok") == "ok");
  CHECK(unicode::utf8_lossy("\xFF") == "\xEF\xBF\xBD");
  CHECK(unicode::utf8_lossy("\xE2\x82") == "\xEF\xBF\xBD");  // truncated: one U+FFFD
  CHECK(unicode::utf8_lossy("\xE2\x82x") == "\xEF\xBF\xBDx");
  CHECK(unicode::utf8_lossy("\xED\xA0\x80") ==
        "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // surrogate
  CHECK(unicode::utf8_lossy("\xF0\x9F\x98\x80") == "\xF0\x9F\x98\x80");
  CHECK_FALSE(unicode::is_valid_utf8("\xC0\xAF"));
  CHECK(unicode::is_valid_utf8("\xF4\x8F\xBF\xBF"));
  CHECK_FALSE(unicode::is_valid_utf8("\xF4\x90\x80\x80"));
}

TEST_CASE("the GPT-2 byte map round-trips every byte", "[tokenizer][unicode]") {
  std::string all;
  for (int b = 0; b < 256; ++b) all.push_back(static_cast<char>(b));
  std::string encoded;
  byte_level::append_encoded(encoded, all);
  CHECK(byte_level::decode(encoded) == all);
  CHECK(byte_level::byte_to_char(' ') == U'\u0120');   // 'Ġ'
  CHECK(byte_level::byte_to_char('\n') == U'\u010A');  // 'Ċ'
  CHECK(byte_level::byte_to_char('A') == U'A');
}

#include "model/regex.hpp"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <fmt/format.h>

#include "model/tokenizer_error.hpp"

namespace vllm {
namespace {

// Oniguruma's \w: the Unicode "word" property (alphabetic, marks, decimal digits, connector
// punctuation, joiners); PCRE2's UCP \w (10.42) lacks marks and non-letter alphabetics.
constexpr std::string_view kWordClassBody = R"(\p{Alphabetic}\p{M}\p{Nd}\p{Pc}\x{200C}\x{200D})";

// Rewrites \s, \S, \w and \W so they match what Oniguruma's do.
std::string translate_oniguruma(std::string_view pattern) {
  std::string out;
  out.reserve(pattern.size() + 16);
  bool in_class = false;
  for (size_t i = 0; i < pattern.size(); ++i) {
    const char c = pattern[i];
    if (c == '\\' && i + 1 < pattern.size()) {
      const char next = pattern[++i];
      if (next == 's') {
        out += in_class ? "\\s\\x{85}" : "[\\s\\x{85}]";
      } else if (next == 'S' && !in_class) {
        out += "[^\\s\\x{85}]";
      } else if (next == 'w') {
        out += in_class ? std::string(kWordClassBody) : "[" + std::string(kWordClassBody) + "]";
      } else if (next == 'W' && !in_class) {
        out += "[^" + std::string(kWordClassBody) + "]";
      } else {
        out += c;
        out += next;
      }
      continue;
    }
    if (c == '[' && !in_class) {
      in_class = true;
      out += c;
      // A ']' (or '^]') right after the opening bracket is a literal.
      if (i + 1 < pattern.size() && pattern[i + 1] == '^') out += pattern[++i];
      if (i + 1 < pattern.size() && pattern[i + 1] == ']') out += pattern[++i];
      continue;
    }
    if (c == ']' && in_class) in_class = false;
    out += c;
  }
  return out;
}

}  // namespace

struct Regex::Impl {
  pcre2_code* code = nullptr;
  bool jit = false;
  ~Impl() { pcre2_code_free(code); }
};

Regex::Regex(const std::string& pattern, std::string_view origin)
    : impl_(std::make_unique<Impl>()) {
  const std::string translated = translate_oniguruma(pattern);
  int error_code = 0;
  PCRE2_SIZE error_offset = 0;
  impl_->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(translated.data()), translated.size(),
                              PCRE2_UTF | PCRE2_UCP, &error_code, &error_offset, nullptr);
  if (impl_->code == nullptr) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(error_code, message, sizeof(message));
    throw TokenizerError(fmt::format("{}: invalid regular expression '{}': {} (at offset {})",
                                     origin, pattern, reinterpret_cast<const char*>(message),
                                     error_offset));
  }
  impl_->jit = pcre2_jit_compile(impl_->code, PCRE2_JIT_COMPLETE) == 0;
}

Regex::~Regex() = default;
Regex::Regex(Regex&&) noexcept = default;
Regex& Regex::operator=(Regex&&) noexcept = default;

void Regex::for_each_match(std::string_view text,
                           const std::function<void(size_t, size_t)>& on_match) const {
  pcre2_match_data* data = pcre2_match_data_create_from_pattern(impl_->code, nullptr);
  if (data == nullptr) throw std::bad_alloc();
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t offset = 0;
  while (offset <= text.size()) {
    // The caller guarantees valid UTF-8, so skip PCRE2's check (it would rescan the whole
    // subject on every call).
    int rc = impl_->jit ? pcre2_jit_match(impl_->code, subject, text.size(), offset,
                                          PCRE2_NO_UTF_CHECK, data, nullptr)
                        : pcre2_match(impl_->code, subject, text.size(), offset, PCRE2_NO_UTF_CHECK,
                                      data, nullptr);
    if (rc < 0 && rc != PCRE2_ERROR_NOMATCH && impl_->jit) {
      // The JIT ran out of its stack: the interpreter (heap-backed) can still match.
      rc =
          pcre2_match(impl_->code, subject, text.size(), offset, PCRE2_NO_UTF_CHECK, data, nullptr);
    }
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      PCRE2_UCHAR message[256];
      pcre2_get_error_message(rc, message, sizeof(message));
      pcre2_match_data_free(data);
      throw TokenizerError(fmt::format("regular expression match failed at byte {} of {}: {}",
                                       offset, text.size(),
                                       reinterpret_cast<const char*>(message)));
    }
    const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(data);
    const size_t start = ovector[0], end = ovector[1];
    on_match(start, end);
    if (end > start) {
      offset = end;
    } else {
      // Empty match: step over one whole character.
      if (end >= text.size()) break;
      offset = end + 1;
      while (offset < text.size() && (static_cast<unsigned char>(text[offset]) & 0xC0) == 0x80)
        ++offset;
    }
  }
  pcre2_match_data_free(data);
}

}  // namespace vllm

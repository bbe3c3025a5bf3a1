#include "model/unicode.hpp"

#include <algorithm>
#include <vector>

#include "model/unicode_nfc_data.hpp"

namespace vllm::unicode {
namespace {

// Allowed range of the second byte for a lead byte (Unicode Table 3-7); later bytes are 80..BF.
struct LeadInfo {
  int length;  // 0: not a valid lead byte
  unsigned char second_min, second_max;
};

LeadInfo lead_info(unsigned char b) {
  if (b < 0x80) return {1, 0, 0};
  if (b < 0xC2) return {0, 0, 0};
  if (b < 0xE0) return {2, 0x80, 0xBF};
  if (b == 0xE0) return {3, 0xA0, 0xBF};
  if (b == 0xED) return {3, 0x80, 0x9F};
  if (b < 0xF0) return {3, 0x80, 0xBF};
  if (b == 0xF0) return {4, 0x90, 0xBF};
  if (b < 0xF4) return {4, 0x80, 0xBF};
  if (b == 0xF4) return {4, 0x80, 0x8F};
  return {0, 0, 0};
}

// Number of bytes at s[pos] that form a valid (possibly incomplete) prefix of a character,
// and whether that prefix is a complete character.
size_t valid_prefix(std::string_view s, size_t pos, bool* complete) {
  const auto lead = static_cast<unsigned char>(s[pos]);
  const LeadInfo info = lead_info(lead);
  *complete = false;
  if (info.length == 0) return 0;
  if (info.length == 1) {
    *complete = true;
    return 1;
  }
  size_t n = 1;
  for (int k = 1; k < info.length; ++k) {
    if (pos + n >= s.size()) return n;
    const auto b = static_cast<unsigned char>(s[pos + n]);
    const unsigned char lo = k == 1 ? info.second_min : 0x80;
    const unsigned char hi = k == 1 ? info.second_max : 0xBF;
    if (b < lo || b > hi) return n;
    ++n;
  }
  *complete = true;
  return n;
}

constexpr char32_t kHangulSBase = 0xAC00, kHangulLBase = 0x1100, kHangulVBase = 0x1161,
                   kHangulTBase = 0x11A7;
constexpr int kHangulLCount = 19, kHangulVCount = 21, kHangulTCount = 28,
              kHangulNCount = kHangulVCount * kHangulTCount,
              kHangulSCount = kHangulLCount * kHangulNCount;

const unicode_data::Decomposition* find_decomposition(const unicode_data::Decomposition* table,
                                                      size_t size, char32_t c) {
  const auto* end = table + size;
  const auto* it = std::lower_bound(
      table, end, c,
      [](const unicode_data::Decomposition& d, char32_t v) { return d.code_point < v; });
  return it != end && it->code_point == c ? it : nullptr;
}

void decompose_into(char32_t c, bool compatibility, std::vector<char32_t>& out) {
  if (c >= kHangulSBase && c < kHangulSBase + kHangulSCount) {
    const int s_index = static_cast<int>(c - kHangulSBase);
    out.push_back(kHangulLBase + s_index / kHangulNCount);
    out.push_back(kHangulVBase + (s_index % kHangulNCount) / kHangulTCount);
    if (const int t = s_index % kHangulTCount; t != 0) out.push_back(kHangulTBase + t);
    return;
  }
  if (compatibility) {
    if (const auto* d = find_decomposition(unicode_data::kCompatibilityDecompositions,
                                           unicode_data::kNumCompatibilityDecompositions, c)) {
      const char32_t* cps = unicode_data::kCompatibilityDecompositionsCodePoints + d->offset;
      out.insert(out.end(), cps, cps + d->length);
      return;
    }
  }
  if (const auto* d = find_decomposition(unicode_data::kCanonicalDecompositions,
                                         unicode_data::kNumCanonicalDecompositions, c)) {
    const char32_t* cps = unicode_data::kCanonicalDecompositionsCodePoints + d->offset;
    out.insert(out.end(), cps, cps + d->length);
    return;
  }
  out.push_back(c);
}

char32_t compose_pair(char32_t a, char32_t b) {
  if (a >= kHangulLBase && a < kHangulLBase + kHangulLCount && b >= kHangulVBase &&
      b < kHangulVBase + kHangulVCount) {
    return kHangulSBase + ((a - kHangulLBase) * kHangulVCount + (b - kHangulVBase)) * kHangulTCount;
  }
  if (a >= kHangulSBase && a < kHangulSBase + kHangulSCount &&
      (a - kHangulSBase) % kHangulTCount == 0 && b > kHangulTBase &&
      b < kHangulTBase + kHangulTCount) {
    return a + (b - kHangulTBase);
  }
  const auto* begin = unicode_data::kCompositions;
  const auto* end = begin + unicode_data::kNumCompositions;
  const auto* it =
      std::lower_bound(begin, end, std::pair{a, b},
                       [](const unicode_data::Composition& c, std::pair<char32_t, char32_t> v) {
                         return c.starter != v.first ? c.starter < v.first : c.combining < v.second;
                       });
  return it != end && it->starter == a && it->combining == b ? it->composite : 0;
}

// Stable-sorts each run of non-starters by combining class (canonical ordering).
void canonical_order(std::vector<char32_t>& cps) {
  size_t i = 0;
  while (i < cps.size()) {
    if (combining_class(cps[i]) == 0) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < cps.size() && combining_class(cps[j]) != 0) ++j;
    std::stable_sort(cps.begin() + i, cps.begin() + j, [](char32_t a, char32_t b) {
      return combining_class(a) < combining_class(b);
    });
    i = j;
  }
}

void compose(std::vector<char32_t>& cps) {
  std::vector<char32_t> result;
  result.reserve(cps.size());
  std::ptrdiff_t starter = -1;
  int previous_class = 0;
  for (char32_t c : cps) {
    const int cc = combining_class(c);
    if (starter >= 0) {
      const bool adjacent = static_cast<std::ptrdiff_t>(result.size()) - 1 == starter;
      if (adjacent || (previous_class != 0 && previous_class < cc)) {
        if (const char32_t composite = compose_pair(result[starter], c)) {
          result[starter] = composite;
          continue;
        }
      }
    }
    if (cc == 0) starter = static_cast<std::ptrdiff_t>(result.size());
    previous_class = cc;
    result.push_back(c);
  }
  cps.swap(result);
}

// Normalizes one segment of valid UTF-8 text.
void normalize_valid(std::string_view s, bool compatibility, bool composed, std::string& out) {
  std::vector<char32_t> cps;
  cps.reserve(s.size());
  size_t pos = 0;
  while (pos < s.size()) {
    char32_t c = 0;
    pos += decode_utf8(s, pos, &c);
    decompose_into(c, compatibility, cps);
  }
  canonical_order(cps);
  if (composed) compose(cps);
  for (char32_t c : cps) append_utf8(out, c);
}

std::string normalize(std::string_view s, bool compatibility, bool composed) {
  // For NFC, code points below U+0300 are stable unless a combining mark follows, so text with
  // no byte >= 0xCC (lead of U+0300) is already normalized; for the other forms only ASCII is.
  const unsigned char stable_below = composed && !compatibility ? 0xCC : 0x80;
  if (std::all_of(s.begin(), s.end(),
                  [&](char ch) { return static_cast<unsigned char>(ch) < stable_below; }))
    return std::string(s);
  std::string out;
  out.reserve(s.size());
  size_t pos = 0;
  while (pos < s.size()) {
    // Normalize each maximal valid run; invalid bytes pass through unchanged.
    size_t end = pos;
    char32_t c = 0;
    while (end < s.size()) {
      const size_t n = decode_utf8(s, end, &c);
      if (n == 0) break;
      end += n;
    }
    normalize_valid(s.substr(pos, end - pos), compatibility, composed, out);
    if (end < s.size()) out.push_back(s[end++]);
    pos = end;
  }
  return out;
}

}  // namespace

size_t decode_utf8(std::string_view s, size_t pos, char32_t* code_point) {
  bool complete = false;
  const size_t n = valid_prefix(s, pos, &complete);
  if (!complete) return 0;
  const auto b0 = static_cast<unsigned char>(s[pos]);
  char32_t c = 0;
  switch (n) {
    case 1:
      c = b0;
      break;
    case 2:
      c = (b0 & 0x1Fu) << 6 | (s[pos + 1] & 0x3Fu);
      break;
    case 3:
      c = (b0 & 0x0Fu) << 12 | (s[pos + 1] & 0x3Fu) << 6 | (s[pos + 2] & 0x3Fu);
      break;
    default:
      c = (b0 & 0x07u) << 18 | (s[pos + 1] & 0x3Fu) << 12 | (s[pos + 2] & 0x3Fu) << 6 |
          (s[pos + 3] & 0x3Fu);
  }
  *code_point = c;
  return n;
}

void append_utf8(std::string& out, char32_t c) {
  if (c < 0x80) {
    out.push_back(static_cast<char>(c));
  } else if (c < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (c >> 6)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else if (c < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (c >> 12)));
    out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (c >> 18)));
    out.push_back(static_cast<char>(0x80 | ((c >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  }
}

bool is_valid_utf8(std::string_view s) {
  size_t pos = 0;
  char32_t c = 0;
  while (pos < s.size()) {
    const size_t n = decode_utf8(s, pos, &c);
    if (n == 0) return false;
    pos += n;
  }
  return true;
}

std::string utf8_lossy(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  size_t pos = 0;
  while (pos < bytes.size()) {
    bool complete = false;
    const size_t n = valid_prefix(bytes, pos, &complete);
    if (complete) {
      out.append(bytes.substr(pos, n));
      pos += n;
    } else {
      append_utf8(out, kReplacementCharacter);
      pos += std::max<size_t>(n, 1);
    }
  }
  return out;
}

size_t complete_utf8_prefix_length(std::string_view s) {
  // Look back at most 3 bytes for the lead byte of a trailing incomplete character.
  for (size_t back = 1; back <= 3 && back <= s.size(); ++back) {
    const size_t pos = s.size() - back;
    const auto b = static_cast<unsigned char>(s[pos]);
    if ((b & 0xC0) == 0x80) continue;  // continuation byte: keep looking for the lead
    bool complete = false;
    const size_t n = valid_prefix(s, pos, &complete);
    return (!complete && n == back) ? pos : s.size();
  }
  return s.size();
}

bool is_whitespace(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
         c == 0x3000;
}

int combining_class(char32_t c) {
  if (c < 0x300) return 0;
  const auto* begin = unicode_data::kCombiningClasses;
  const auto* end = begin + unicode_data::kNumCombiningClasses;
  const auto* it = std::lower_bound(
      begin, end, c,
      [](const unicode_data::CombiningClass& e, char32_t v) { return e.code_point < v; });
  return it != end && it->code_point == c ? it->ccc : 0;
}

std::string nfc(std::string_view s) {
  return normalize(s, false, true);
}
std::string nfd(std::string_view s) {
  return normalize(s, false, false);
}
std::string nfkc(std::string_view s) {
  return normalize(s, true, true);
}
std::string nfkd(std::string_view s) {
  return normalize(s, true, false);
}

}  // namespace vllm::unicode

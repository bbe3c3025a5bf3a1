#include "model/jinja/lexer.hpp"

#include <cctype>
#include <cstring>

#include "model/jinja/error.hpp"
#include "model/jinja/unicode.hpp"
#include "model/jinja/value.hpp"

namespace vllm::jinja {
namespace {

// Bytes of the (Python \s) whitespace character starting at pos, or 0.
std::size_t space_at(const std::string& s, std::size_t pos) {
  if (pos >= s.size()) return 0;
  auto c = static_cast<unsigned char>(s[pos]);
  if (c < 0x80) return unicode::is_space(c) ? 1 : 0;
  std::size_t len = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
  if (pos + len > s.size()) return 0;
  auto cps = unicode::decode(std::string_view(s).substr(pos, len));
  return cps.size() == 1 && unicode::is_space(cps[0]) ? len : 0;
}

std::size_t skip_spaces(const std::string& s, std::size_t pos) {
  while (std::size_t n = space_at(s, pos)) pos += n;
  return pos;
}

// Python str.rstrip(): length of text without trailing whitespace.
std::size_t rstrip_length(const std::string& s, std::size_t begin, std::size_t end) {
  while (end > begin) {
    std::size_t start = end - 1;
    while (start > begin && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) --start;
    if (space_at(s, start) != end - start) break;
    end = start;
  }
  return end;
}

bool all_spaces(const std::string& s, std::size_t begin, std::size_t end) {
  if (begin >= end) return false;
  return skip_spaces(s, begin) >= end;
}

bool starts_with_at(const std::string& s, std::size_t pos, const char* what) {
  return s.compare(pos, std::strlen(what), what) == 0;
}

std::string normalize_newlines(const std::string& source) {
  std::string out;
  out.reserve(source.size());
  for (std::size_t i = 0; i < source.size(); ++i) {
    if (source[i] == '\r') {
      out += '\n';
      if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
    } else {
      out += source[i];
    }
  }
  // keep_trailing_newline=False drops one final newline.
  if (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

// Python's "unicode-escape" decoding of a string literal's body.
std::string unescape(const std::string& body) {
  std::string out;
  out.reserve(body.size());
  for (std::size_t i = 0; i < body.size(); ++i) {
    char c = body[i];
    if (c != '\\' || i + 1 >= body.size()) {
      out += c;
      continue;
    }
    char next = body[++i];
    auto hex_escape = [&](std::size_t digits) {
      if (i + digits >= body.size()) {
        throw ChatTemplateError("TemplateSyntaxError",
                                "truncated \\x, \\u or \\U escape in a string");
      }
      std::uint32_t cp = 0;
      for (std::size_t k = 1; k <= digits; ++k) {
        char h = body[i + k];
        int v = (h >= '0' && h <= '9')   ? h - '0'
                : (h >= 'a' && h <= 'f') ? h - 'a' + 10
                : (h >= 'A' && h <= 'F') ? h - 'A' + 10
                                         : -1;
        if (v < 0)
          throw ChatTemplateError("TemplateSyntaxError",
                                  "invalid \\x, \\u or \\U escape in a string literal");
        cp = cp * 16 + static_cast<std::uint32_t>(v);
      }
      i += digits;
      unicode::append_utf8(out, cp);
    };
    switch (next) {
      case '\n':
        break;  // line continuation
      case '\\':
        out += '\\';
        break;
      case '\'':
        out += '\'';
        break;
      case '"':
        out += '"';
        break;
      case 'a':
        out += '\a';
        break;
      case 'b':
        out += '\b';
        break;
      case 'f':
        out += '\f';
        break;
      case 'n':
        out += '\n';
        break;
      case 'r':
        out += '\r';
        break;
      case 't':
        out += '\t';
        break;
      case 'v':
        out += '\v';
        break;
      case 'x':
        hex_escape(2);
        break;
      case 'u':
        hex_escape(4);
        break;
      case 'U':
        hex_escape(8);
        break;
      default:
        if (next >= '0' && next <= '7') {
          std::uint32_t cp = static_cast<std::uint32_t>(next - '0');
          for (int k = 0; k < 2 && i + 1 < body.size() && body[i + 1] >= '0' && body[i + 1] <= '7';
               ++k)
            cp = cp * 8 + static_cast<std::uint32_t>(body[++i] - '0');
          unicode::append_utf8(out, cp);
        } else {
          out += '\\';
          out += next;
        }
    }
  }
  return out;
}

bool is_name_start(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c >= 0x80;
}
bool is_name_char(unsigned char c) {
  return is_name_start(c) || (c >= '0' && c <= '9');
}
bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

class Lexer {
 public:
  explicit Lexer(std::string source) { result_.source = std::move(source); }

  LexedTemplate run() {
    const std::string& s = result_.source;
    std::size_t pos = 0;
    bool line_starting = true;
    while (pos < s.size()) {
      std::size_t tag = find_tag(pos);
      if (tag == std::string::npos) {
        push(TokenType::kData, s.substr(pos), pos);
        break;
      }
      char kind = s[tag + 1];  // '{', '%' or '#'
      char sign = tag + 2 < s.size() && (s[tag + 2] == '-' || s[tag + 2] == '+') ? s[tag + 2] : 0;
      std::size_t raw_end = kind == '%' ? match_raw_begin(tag) : 0;
      std::size_t text_end = strip_text(pos, tag, sign, kind != '{', line_starting);
      if (text_end > pos) push(TokenType::kData, s.substr(pos, text_end - pos), pos);
      std::size_t after_begin = tag + 2 + (sign ? 1 : 0);
      if (raw_end) {
        line_starting = s[raw_end - 1] == '\n';
        pos = lex_raw(raw_end, line_starting);
      } else if (kind == '#') {
        pos = lex_comment(tag, after_begin);
      } else {
        push(kind == '{' ? TokenType::kVariableBegin : TokenType::kBlockBegin,
             kind == '{' ? "{{" : "{%", tag);
        pos = lex_tag(after_begin, kind == '{');
      }
      line_starting = pos > 0 && s[pos - 1] == '\n';
    }
    push(TokenType::kEnd, "", s.size());
    return std::move(result_);
  }

 private:
  [[noreturn]] void fail(const std::string& message, std::size_t offset) {
    auto [line, column] = line_and_column(result_.source, offset);
    throw ChatTemplateError("TemplateSyntaxError", message, line, column);
  }

  // Jinja2's message: unexpected char '?' at 5 (the character's repr and its index).
  [[noreturn]] void fail_unexpected_char(std::size_t offset) {
    const std::string& s = result_.source;
    std::size_t end = offset + 1;
    while (end < s.size() && (static_cast<unsigned char>(s[end]) & 0xC0) == 0x80) ++end;
    fail("unexpected char " + Value(s.substr(offset, end - offset)).repr() + " at " +
             std::to_string(unicode::length(std::string_view(s).substr(0, offset))),
         offset);
  }

  void push(TokenType type, std::string value, std::size_t offset) {
    result_.tokens.push_back(Token{type, std::move(value), 0, 0.0, offset});
  }

  std::size_t find_tag(std::size_t pos) const {
    const std::string& s = result_.source;
    while (true) {
      pos = s.find('{', pos);
      if (pos == std::string::npos || pos + 1 >= s.size()) return std::string::npos;
      char next = s[pos + 1];
      if (next == '{' || next == '%' || next == '#') return pos;
      ++pos;
    }
  }

  // `{%(-|+|)\s*raw\s*(-%}\s*|%})` at tag: the end of the match, or 0.
  std::size_t match_raw_begin(std::size_t tag) const {
    const std::string& s = result_.source;
    std::size_t p = tag + 2;
    if (p < s.size() && (s[p] == '-' || s[p] == '+')) ++p;
    p = skip_spaces(s, p);
    if (!starts_with_at(s, p, "raw")) return 0;
    p = skip_spaces(s, p + 3);
    if (starts_with_at(s, p, "-%}")) return skip_spaces(s, p + 3);
    if (starts_with_at(s, p, "%}")) return p + 2;
    return 0;
  }

  // Applies `-` stripping and lstrip_blocks to the text [begin, tag): returns its new end.
  std::size_t strip_text(std::size_t begin, std::size_t tag, char sign, bool is_block,
                         bool line_starting) const {
    const std::string& s = result_.source;
    if (sign == '-') return rstrip_length(s, begin, tag);
    if (sign == '+' || !is_block) return tag;
    std::size_t newline = s.rfind('\n', tag == 0 ? 0 : tag - 1);
    std::size_t line_begin =
        (newline == std::string::npos || newline < begin) ? begin : newline + 1;
    if ((line_begin > begin || line_starting) && all_spaces(s, line_begin, tag)) return line_begin;
    return tag;
  }

  // Comment body up to the earliest `+#}`, `-#}\s*` or `#}\n?`.
  std::size_t lex_comment(std::size_t tag, std::size_t pos) {
    const std::string& s = result_.source;
    for (std::size_t i = pos; i < s.size(); ++i) {
      if (starts_with_at(s, i, "+#}")) return i + 3;
      if (starts_with_at(s, i, "-#}")) return skip_spaces(s, i + 3);
      if (starts_with_at(s, i, "#}")) return i + 2 + (i + 2 < s.size() && s[i + 2] == '\n');
    }
    fail("Missing end of comment tag", tag);
  }

  // Raw body up to `{%(-|+|)\s*endraw\s*(+%}|-%}\s*|%}\n?)`.
  std::size_t lex_raw(std::size_t pos, bool line_starting) {
    const std::string& s = result_.source;
    for (std::size_t i = pos; (i = s.find("{%", i)) != std::string::npos; ++i) {
      std::size_t p = i + 2;
      char sign = 0;
      if (p < s.size() && (s[p] == '-' || s[p] == '+')) sign = s[p++];
      p = skip_spaces(s, p);
      if (!starts_with_at(s, p, "endraw")) continue;
      p = skip_spaces(s, p + 6);
      std::size_t end;
      if (starts_with_at(s, p, "+%}")) {
        end = p + 3;
      } else if (starts_with_at(s, p, "-%}")) {
        end = skip_spaces(s, p + 3);
      } else if (starts_with_at(s, p, "%}")) {
        end = p + 2 + (p + 2 < s.size() && s[p + 2] == '\n');
      } else {
        continue;
      }
      std::size_t text_end = strip_text(pos, i, sign, true, line_starting);
      if (text_end > pos) push(TokenType::kData, s.substr(pos, text_end - pos), pos);
      return end;
    }
    fail("Missing end of raw directive", pos);
  }

  std::size_t lex_tag(std::size_t pos, bool variable) {
    const std::string& s = result_.source;
    std::vector<char> balance;
    while (true) {
      if (balance.empty()) {
        if (variable) {
          if (starts_with_at(s, pos, "-}}")) {
            push(TokenType::kVariableEnd, "}}", pos);
            return skip_spaces(s, pos + 3);
          }
          if (starts_with_at(s, pos, "}}")) {
            push(TokenType::kVariableEnd, "}}", pos);
            return pos + 2;
          }
        } else {
          if (starts_with_at(s, pos, "+%}")) {
            push(TokenType::kBlockEnd, "%}", pos);
            return pos + 3;
          }
          if (starts_with_at(s, pos, "-%}")) {
            push(TokenType::kBlockEnd, "%}", pos);
            return skip_spaces(s, pos + 3);
          }
          if (starts_with_at(s, pos, "%}")) {
            push(TokenType::kBlockEnd, "%}", pos);
            return pos + 2 + (pos + 2 < s.size() && s[pos + 2] == '\n');
          }
        }
      }
      if (std::size_t n = space_at(s, pos)) {
        pos += n;
        continue;
      }
      if (pos >= s.size()) return pos;  // the parser reports the missing end tag
      char c = s[pos];
      if (is_digit(c)) {
        pos = lex_number(pos);
      } else if (is_name_start(static_cast<unsigned char>(c))) {
        std::size_t end = pos;
        while (end < s.size() && is_name_char(static_cast<unsigned char>(s[end]))) ++end;
        push(TokenType::kName, s.substr(pos, end - pos), pos);
        pos = end;
      } else if (c == '\'' || c == '"') {
        pos = lex_string(pos);
      } else {
        pos = lex_operator(pos, balance);
      }
    }
  }

  std::size_t lex_number(std::size_t pos) {
    const std::string& s = result_.source;
    auto digits = [&](std::size_t p) {  // (\d+_)*\d+
      std::size_t q = p;
      while (q < s.size() &&
             (is_digit(s[q]) || (s[q] == '_' && q + 1 < s.size() && is_digit(s[q + 1]) && q > p)))
        ++q;
      return q;
    };
    std::size_t int_end = digits(pos);
    std::size_t end = int_end;
    bool is_float = false;
    if (end + 1 < s.size() && s[end] == '.' && is_digit(s[end + 1])) {
      end = digits(end + 1);
      is_float = true;
    }
    if (end < s.size() && (s[end] == 'e' || s[end] == 'E')) {
      std::size_t p = end + 1;
      if (p < s.size() && (s[p] == '+' || s[p] == '-')) ++p;
      if (p < s.size() && is_digit(s[p])) {
        end = digits(p);
        is_float = true;
      }
    }
    std::string text;
    for (std::size_t i = pos; i < end; ++i)
      if (s[i] != '_') text += s[i];
    if (is_float) {
      Token token{TokenType::kFloat, s.substr(pos, end - pos), 0, std::stod(text), pos};
      result_.tokens.push_back(token);
      return end;
    }
    // Integers: 0b / 0o / 0x prefixes, or decimal.
    if (s[pos] == '0' && pos + 1 < s.size() &&
        (s[pos + 1] == 'b' || s[pos + 1] == 'B' || s[pos + 1] == 'o' || s[pos + 1] == 'O' ||
         s[pos + 1] == 'x' || s[pos + 1] == 'X')) {
      int base = (s[pos + 1] == 'b' || s[pos + 1] == 'B')   ? 2
                 : (s[pos + 1] == 'o' || s[pos + 1] == 'O') ? 8
                                                            : 16;
      std::size_t p = pos + 2;
      std::string body;
      while (p < s.size() && (std::isxdigit(static_cast<unsigned char>(s[p])) || s[p] == '_')) {
        if (s[p] != '_') body += s[p];
        ++p;
      }
      if (body.empty()) fail("invalid integer literal", pos);
      Token token{TokenType::kInteger, s.substr(pos, p - pos),
                  static_cast<std::int64_t>(std::stoull(body, nullptr, base)), 0.0, pos};
      result_.tokens.push_back(token);
      return p;
    }
    std::int64_t value = 0;
    try {
      value = std::stoll(text);
    } catch (const std::exception&) {
      fail("integer literal too large: " + text, pos);
    }
    result_.tokens.push_back(Token{TokenType::kInteger, text, value, 0.0, pos});
    return int_end;
  }

  std::size_t lex_string(std::size_t pos) {
    const std::string& s = result_.source;
    char quote = s[pos];
    std::size_t p = pos + 1;
    while (p < s.size() && s[p] != quote) {
      if (s[p] == '\\') ++p;
      ++p;
    }
    if (p >= s.size()) fail_unexpected_char(pos);
    push(TokenType::kString, unescape(s.substr(pos + 1, p - pos - 1)), pos);
    return p + 1;
  }

  std::size_t lex_operator(std::size_t pos, std::vector<char>& balance) {
    const std::string& s = result_.source;
    static const char* const kTwo[] = {"//", "**", "==", "!=", ">=", "<="};
    for (const char* op : kTwo) {
      if (starts_with_at(s, pos, op)) {
        push(TokenType::kOperator, op, pos);
        return pos + 2;
      }
    }
    char c = s[pos];
    if (std::strchr("+-/*%~[](){}><=.:|,;", c) == nullptr) fail_unexpected_char(pos);
    if (c == '{') balance.push_back('}');
    if (c == '(') balance.push_back(')');
    if (c == '[') balance.push_back(']');
    if (c == '}' || c == ')' || c == ']') {
      if (balance.empty()) fail(std::string("unexpected '") + c + "'", pos);
      char expected = balance.back();
      balance.pop_back();
      if (expected != c)
        fail(std::string("unexpected '") + c + "', expected '" + expected + "'", pos);
    }
    push(TokenType::kOperator, std::string(1, c), pos);
    return pos + 1;
  }

  LexedTemplate result_;
};

}  // namespace

std::pair<int, int> line_and_column(const std::string& source, std::size_t offset) {
  int line = 1;
  std::size_t line_start = 0;
  for (std::size_t i = 0; i < offset && i < source.size(); ++i) {
    if (source[i] == '\n') {
      ++line;
      line_start = i + 1;
    }
  }
  return {line, static_cast<int>(unicode::length(
                    std::string_view(source).substr(line_start, offset - line_start))) +
                    1};
}

LexedTemplate tokenize(const std::string& source) {
  return Lexer(normalize_newlines(source)).run();
}

}  // namespace vllm::jinja

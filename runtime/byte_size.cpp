#include "runtime/byte_size.hpp"

#include <cctype>
#include <stdexcept>
#include <string>

namespace vllm {

std::optional<int64_t> parse_byte_size(std::string_view text) {
  const std::string s(text);
  size_t used = 0;
  double value = 0;
  try {
    value = std::stod(s, &used);
  } catch (const std::exception&) {
    return std::nullopt;
  }
  std::string suffix = s.substr(used);
  for (char& c : suffix) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (suffix.ends_with("ib")) suffix.resize(suffix.size() - 2);
  if (suffix.ends_with("b")) suffix.resize(suffix.size() - 1);
  double scale = 0;
  if (suffix.empty()) scale = 1;
  if (suffix == "k") scale = 1024.0;
  if (suffix == "m") scale = 1024.0 * 1024;
  if (suffix == "g") scale = 1024.0 * 1024 * 1024;
  if (suffix == "t") scale = 1024.0 * 1024 * 1024 * 1024;
  if (scale == 0 || value <= 0) return std::nullopt;
  return static_cast<int64_t>(value * scale);
}

}  // namespace vllm

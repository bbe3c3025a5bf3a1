#include "apps/command_line.hpp"

#include <charconv>

#include "runtime/byte_size.hpp"

namespace vllm::apps {
namespace {

int64_t parse_int(std::string_view name, std::string_view text) {
  int64_t value = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size()) {
    throw UsageError(std::string(name) + ": expected an integer, got '" + std::string(text) + "'");
  }
  return value;
}

}  // namespace

ParsedArgs ParsedArgs::parse(const std::vector<std::string>& args,
                             std::span<const FlagSpec> flags) {
  ParsedArgs parsed;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg.rfind("--", 0) != 0 || arg == "--") {
      parsed.positionals_.push_back(arg);
      continue;
    }
    std::string name = arg;
    std::optional<std::string> inline_value;
    if (auto eq = arg.find('='); eq != std::string::npos) {
      name = arg.substr(0, eq);
      inline_value = arg.substr(eq + 1);
    }
    const FlagSpec* spec = nullptr;
    for (const auto& flag : flags) {
      if (flag.name == name) spec = &flag;
    }
    if (spec == nullptr) throw UsageError("unknown flag " + name + " (see --help)");
    if (!spec->takes_value) {
      if (inline_value) throw UsageError(name + " takes no value");
      parsed.values_[name] = "";
    } else if (inline_value) {
      parsed.values_[name] = *inline_value;
    } else {
      if (i + 1 >= args.size()) throw UsageError(name + " needs a value");
      parsed.values_[name] = args[++i];
    }
  }
  return parsed;
}

std::optional<std::string> ParsedArgs::value(std::string_view name) const {
  auto it = values_.find(std::string(name));
  if (it == values_.end()) return std::nullopt;
  return it->second;
}

int64_t ParsedArgs::int_value(std::string_view name, int64_t fallback) const {
  auto text = value(name);
  return text ? parse_int(name, *text) : fallback;
}

double ParsedArgs::float_value(std::string_view name, double fallback) const {
  auto text = value(name);
  if (!text) return fallback;
  try {
    size_t used = 0;
    double v = std::stod(*text, &used);
    if (used == text->size()) return v;
  } catch (const std::exception&) {
  }
  throw UsageError(std::string(name) + ": expected a number, got '" + *text + "'");
}

std::vector<int64_t> ParsedArgs::int_list(std::string_view name) const {
  std::vector<int64_t> out;
  auto text = value(name);
  if (!text) return out;
  std::string_view rest = *text;
  while (!rest.empty()) {
    const size_t comma = rest.find(',');
    out.push_back(parse_int(name, rest.substr(0, comma)));
    if (comma == std::string_view::npos) break;
    rest.remove_prefix(comma + 1);
  }
  return out;
}

std::string flags_help(std::span<const FlagSpec> flags) {
  std::string out;
  for (const auto& flag : flags) {
    std::string left = "  " + std::string(flag.name) + (flag.takes_value ? " VALUE" : "");
    if (left.size() < 30) left.resize(30, ' ');
    out += left + " " + std::string(flag.help) + "\n";
  }
  return out;
}

// "1G", "512M", "64k", "1GiB", "1073741824" -> bytes.
int64_t parse_bytes(std::string_view flag, const std::string& text) {
  if (auto bytes = parse_byte_size(text)) return *bytes;
  throw UsageError(std::string(flag) + ": expected a size like 1073741824, 512M or 1G, got '" +
                   text + "'");
}

}  // namespace vllm::apps

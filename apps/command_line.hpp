// A small command-line flag parser shared by the subcommands: `--name value`, `--name=value`
// and boolean `--name`, plus positional arguments. Unknown flags and bad values raise
// UsageError with a message naming the flag.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace vllm::apps {

class UsageError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

struct FlagSpec {
  std::string_view name;  // with the leading "--"
  bool takes_value;
  std::string_view help;
};

class ParsedArgs {
 public:
  static ParsedArgs parse(const std::vector<std::string>& args, std::span<const FlagSpec> flags);

  const std::vector<std::string>& positionals() const { return positionals_; }
  bool has(std::string_view name) const { return values_.count(std::string(name)) > 0; }
  std::optional<std::string> value(std::string_view name) const;
  int64_t int_value(std::string_view name, int64_t fallback) const;
  double float_value(std::string_view name, double fallback) const;
  // A comma-separated list of integers ("1,2,3").
  std::vector<int64_t> int_list(std::string_view name) const;

 private:
  std::vector<std::string> positionals_;
  std::map<std::string, std::string> values_;
};

// "  --name VALUE   help" lines for a --help text.
std::string flags_help(std::span<const FlagSpec> flags);

// "1G", "512M", "64k", "1GiB", "1073741824" -> bytes; UsageError naming `flag` otherwise.
int64_t parse_bytes(std::string_view flag, const std::string& text);

}  // namespace vllm::apps

#include "model/jinja/error.hpp"

namespace vllm {
namespace {

std::string describe(const std::string& kind, const std::string& detail, int line, int column) {
  std::string out = "chat template " + kind + ": " + detail;
  if (line > 0) {
    out += " (line " + std::to_string(line);
    if (column > 0) out += ", column " + std::to_string(column);
    out += ")";
  }
  return out;
}

}  // namespace

ChatTemplateError::ChatTemplateError(std::string kind, std::string detail, int line, int column)
    : std::invalid_argument(describe(kind, detail, line, column)),
      kind_(std::move(kind)),
      detail_(std::move(detail)),
      line_(line),
      column_(column) {}

}  // namespace vllm

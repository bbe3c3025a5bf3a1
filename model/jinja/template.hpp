// A compiled Jinja2 template and its renderer, configured as transformers renders chat
// templates: ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True) with the
// loopcontrols extension (`break`/`continue`), the `generation` tag, transformers' `tojson`,
// `raise_exception` and `strftime_now`, and Jinja2's default Undefined.
#pragma once

#include <ctime>
#include <functional>
#include <memory>
#include <string>

#include "model/jinja/ast.hpp"
#include "model/jinja/error.hpp"
#include "model/jinja/value.hpp"

namespace vllm::jinja {

struct RenderLimits {
  std::size_t max_output_bytes = 64u << 20;
  int max_call_depth = 200;  // nested macro calls
};

class Template {
 public:
  // Throws ChatTemplateError (TemplateSyntaxError / TemplateAssertionError) with line/column.
  static Template parse(const std::string& source);

  // Renders with `context` as the template's variables. `now` gives the time strftime_now
  // formats (default: the local time). Throws ChatTemplateError naming the problem and where.
  std::string render(const Dict& context, std::function<std::tm()> now = nullptr,
                     const RenderLimits& limits = {}) const;

 private:
  std::shared_ptr<const std::string> source_;
  std::shared_ptr<const Body> body_;
};

}  // namespace vllm::jinja

// Malformed templates and template errors: each becomes a ChatTemplateError carrying the same
// exception type, message and line as Python jinja2 (errors.json, written by
// tests/reference/make_chat_template_vectors.py); never a crash.
#include <catch2/catch.hpp>
#include <fstream>
#include <nlohmann/json.hpp>

#include "model/chat_template.hpp"
#include "tests/support/test_paths.hpp"

namespace {

using json = nlohmann::ordered_json;

json load_errors() {
  std::ifstream in(vllm::test::reference_data("chat_templates/errors.json"));
  REQUIRE(in.good());
  return json::parse(in)["cases"];
}

}  // namespace

TEST_CASE("template errors match jinja2's type, message and line", "[chat_template][errors]") {
  json cases = load_errors();
  REQUIRE(cases.size() >= 40);
  for (const auto& c : cases) {
    const std::string name = c["name"];
    INFO(name << ": " << c["source"].get<std::string>());
    std::string stage;
    std::string kind;
    std::string message;
    int line = -1;
    try {
      auto t = vllm::ChatTemplate::from_string(c["source"]);
      stage = "render";
      vllm::ChatTemplateOptions options;
      options.bos_token = "<s>";
      options.eos_token = "</s>";
      t.render(c["messages"], options);
      stage = "none";
    } catch (const vllm::ChatTemplateError& e) {
      if (stage.empty()) stage = "compile";
      kind = e.kind();
      message = e.detail();
      line = e.line();
      // The full message names the problem and where it is.
      CHECK(std::string(e.what()).find(e.detail()) != std::string::npos);
      if (e.line() > 0)
        CHECK(std::string(e.what()).find("line " + std::to_string(e.line())) != std::string::npos);
    }
    CHECK(stage == c["stage"].get<std::string>());
    CHECK(kind == c["type"].get<std::string>());
    CHECK(message == c["message"].get<std::string>());
    if (c["line"].get<int>() > 0) CHECK(line == c["line"].get<int>());
  }
}

TEST_CASE("a syntax error reports its line and column", "[chat_template][errors]") {
  try {
    vllm::ChatTemplate::from_string("{{ messages }}\n  {% if %}");
    FAIL("no error");
  } catch (const vllm::ChatTemplateError& e) {
    CHECK(e.kind() == "TemplateSyntaxError");
    CHECK(e.line() == 2);
    CHECK(e.column() == 9);
    CHECK(std::string(e.what()) ==
          "chat template TemplateSyntaxError: Expected an expression, got 'end of statement "
          "block' (line 2, column 9)");
  }
}

TEST_CASE("runtime errors point at the failing expression", "[chat_template][errors]") {
  auto t = vllm::ChatTemplate::from_string(
      "{% for m in messages %}\n{{ m.role }}: {{ m.content.upper() }}\n{% endfor %}");
  try {
    t.render(nlohmann::json::parse(R"([{"role": "user", "content": "hi"}, {"role": "user"}])"), {});
    FAIL("no error");
  } catch (const vllm::ChatTemplateError& e) {
    CHECK(e.kind() == "UndefinedError");
    CHECK(e.detail() == "'dict object' has no attribute 'content'");
    CHECK(e.line() == 2);
    CHECK(e.column() > 1);
  }
}

TEST_CASE("ChatTemplateError is an invalid_argument", "[chat_template][errors]") {
  CHECK_THROWS_AS(vllm::ChatTemplate::from_string("{% if %}"), std::invalid_argument);
  auto t = vllm::ChatTemplate::from_string("{{ raise_exception('no ' ~ messages | length) }}");
  CHECK_THROWS_WITH(t.render(nlohmann::json::array(), {}),
                    Catch::Contains("TemplateError") && Catch::Contains("no 0"));
}

TEST_CASE("runaway templates stop with an error, not a crash", "[chat_template][errors]") {
  SECTION("unbounded macro recursion") {
    auto t =
        vllm::ChatTemplate::from_string("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}");
    CHECK_THROWS_AS(t.render(nlohmann::json::array(), {}), vllm::ChatTemplateError);
  }
  SECTION("deeply nested expressions") {
    std::string deep = "{{ " + std::string(100000, '(') + "1" + std::string(100000, ')') + " }}";
    CHECK_THROWS_AS(vllm::ChatTemplate::from_string(deep), vllm::ChatTemplateError);
    std::string nots = "{{ " + std::string(100000, '-') + "1 }}";
    CHECK_THROWS_AS(vllm::ChatTemplate::from_string(nots), vllm::ChatTemplateError);
  }
  SECTION("deeply nested blocks") {
    std::string deep;
    for (int i = 0; i < 20000; ++i) deep += "{% if true %}";
    CHECK_THROWS_AS(vllm::ChatTemplate::from_string(deep), vllm::ChatTemplateError);
  }
  SECTION("huge output") {
    auto t = vllm::ChatTemplate::from_string(
        "{% for i in range(100000) %}{% for j in range(100000) %}{{ 'x' * 1000 }}{% endfor %}"
        "{% endfor %}");
    CHECK_THROWS_AS(t.render(nlohmann::json::array(), {}), vllm::ChatTemplateError);
  }
}

TEST_CASE("mutated real templates fail cleanly or render", "[chat_template][errors]") {
  // Every prefix cut and a byte flip at many points of a real template: each either renders or
  // raises ChatTemplateError.
  std::ifstream in(vllm::test::reference_data("chat_templates/templates_own.json"));
  REQUIRE(in.good());
  json templates = json::parse(in)["templates"];
  json messages = json::parse(R"([
    {"role": "system", "content": "sys"}, {"role": "user", "content": "hi"},
    {"role": "assistant", "content": null, "tool_calls": [{"type": "function",
      "function": {"name": "f", "arguments": {"a": 1}}}]},
    {"role": "tool", "content": "42"}, {"role": "user", "content": [{"type": "text", "text": "x"}]}
  ])");
  int attempts = 0;
  int rendered = 0;
  const char flips[] = {'{', '}', '%', '-', '(', ')', '\'', '"', '|', '.', '[', 'x', ' '};
  for (const auto& t : templates) {
    const std::string source = t["source"];
    for (std::size_t cut = 0; cut < source.size(); cut += 7) {
      for (int variant = 0; variant < 2; ++variant) {
        std::string mutated = variant == 0 ? source.substr(0, cut) : source;
        if (variant == 1) mutated[cut] = flips[(cut / 7) % sizeof(flips)];
        ++attempts;
        try {
          auto chat_template = vllm::ChatTemplate::from_string(mutated);
          vllm::ChatTemplateOptions options;
          options.add_generation_prompt = (cut & 1) != 0;
          chat_template.render(messages, options);
          ++rendered;
        } catch (const vllm::ChatTemplateError&) {
        }
      }
    }
  }
  INFO(attempts << " attempts, " << rendered << " rendered");
  CHECK(attempts > 1000);
  CHECK(rendered > 0);
}

TEST_CASE("values built too deep or containing themselves are errors", "[chat_template][errors]") {
  auto deep = vllm::ChatTemplate::from_string(
      "{% set ns = namespace(x=[]) %}{% for i in range(100000) %}{% set ns.x = [ns.x] %}"
      "{% endfor %}{{ ns.x | length }}");
  CHECK_THROWS_WITH(deep.render(nlohmann::json::array(), {}), Catch::Contains("RecursionError"));
  auto cycle =
      vllm::ChatTemplate::from_string("{% set ns = namespace() %}{% set ns.me = ns %}{{ ns }}");
  CHECK_THROWS_WITH(cycle.render(nlohmann::json::array(), {}), Catch::Contains("RecursionError"));
  std::string deep_json(1000, '[');
  deep_json += std::string(1000, ']');
  auto t = vllm::ChatTemplate::from_string("{{ messages }}");
  CHECK_THROWS_AS(t.render(nlohmann::json::parse(deep_json), {}), vllm::ChatTemplateError);
}

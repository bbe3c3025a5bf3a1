// 2,500 random expressions over literals, operators, filters, tests, str/dict/list methods and
// slices, rendered by Python jinja2 (tests/reference/make_chat_template_vectors.py): the
// interpreter must print the same text or raise the same error type with the same message.
#include <catch2/catch.hpp>
#include <fstream>
#include <nlohmann/json.hpp>

#include "model/chat_template.hpp"
#include "tests/support/test_paths.hpp"

TEST_CASE("random expressions evaluate as in jinja2", "[chat_template][expressions]") {
  using json = nlohmann::ordered_json;
  std::ifstream in(vllm::test::reference_data("chat_templates/expressions.json"));
  REQUIRE(in.good());
  json vectors = json::parse(in);
  const std::string prelude = vectors["prelude"];
  int mismatches = 0;
  std::string report;
  for (const auto& c : vectors["cases"]) {
    const std::string expression = c["expression"];
    std::string got;
    std::string expected;
    try {
      auto t = vllm::ChatTemplate::from_string(prelude + "{{ " + expression + " }}");
      got = "output: " + t.render(vectors["messages"], {});
    } catch (const vllm::ChatTemplateError& e) {
      got = "error " + e.kind() + ": " + e.detail();
    }
    if (c.contains("output"))
      expected = "output: " + c["output"].get<std::string>();
    else
      expected = "error " + c["error"]["type"].get<std::string>() + ": " +
                 c["error"]["message"].get<std::string>();
    if (got != expected && ++mismatches <= 10)
      report += "\n{{ " + expression + " }}\n  jinja2: " + expected + "\n  ours:   " + got;
  }
  INFO(vectors["cases"].size() << " expressions" << report);
  CHECK(vectors["cases"].size() > 2000);
  CHECK(mismatches == 0);
}

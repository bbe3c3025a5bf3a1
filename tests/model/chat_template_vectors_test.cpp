// Renders every reference chat template (SmolLM2's from its GGUF, every template shipped in the
// axolotl and trl PyPI wheels, and this project's own feature templates) on every reference
// conversation, with add_generation_prompt off and on, and compares with Python jinja2's render
// byte for byte (tests/reference/make_chat_template_vectors.py wrote the vectors).
#include <catch2/catch.hpp>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>

#include "model/chat_template.hpp"
#include "tests/support/test_paths.hpp"

namespace {

using json = nlohmann::ordered_json;

json load(const std::string& name) {
  std::ifstream in(vllm::test::reference_data("chat_templates/" + name));
  REQUIRE(in.good());
  return json::parse(in);
}

std::string fnv1a64(const std::string& data) {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : data) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  char buffer[17];
  std::snprintf(buffer, sizeof(buffer), "%016llx", static_cast<unsigned long long>(h));
  return buffer;
}

std::tm fixed_now() {  // FIXED_NOW in the reference script
  std::tm t{};
  t.tm_year = 2026 - 1900;
  t.tm_mon = 2;
  t.tm_mday = 14;
  t.tm_hour = 15;
  t.tm_min = 9;
  t.tm_sec = 26;
  t.tm_wday = 6;
  t.tm_yday = 72;
  return t;
}

struct Tally {
  int renders = 0;
  int errors = 0;
  int mismatches = 0;
  std::string report;  // the first mismatches, in full
};

void check_group(const std::string& file, Tally& tally) {
  json conversations = load("conversations.json")["conversations"];
  json templates = load(file)["templates"];
  REQUIRE(!templates.empty());
  for (const auto& t : templates) {
    const std::string name = t["name"];
    if (t.contains("compile_error")) {
      CHECK_THROWS_AS(vllm::ChatTemplate::from_string(t["source"]), vllm::ChatTemplateError);
      continue;
    }
    vllm::ChatTemplate chat_template = [&] {
      try {
        return vllm::ChatTemplate::from_string(t["source"]);
      } catch (const vllm::ChatTemplateError& e) {
        FAIL(name << ": " << e.what());
        throw;
      }
    }();
    for (const auto& c : t["cases"]) {
      const json& conversation = conversations[c["conversation"].get<std::size_t>()];
      vllm::ChatTemplateOptions options;
      options.add_generation_prompt = c["add_generation_prompt"];
      options.continue_final_message = c.value("continue_final_message", false);
      options.bos_token = t["bos_token"].get<std::string>();
      options.eos_token = t["eos_token"].get<std::string>();
      options.tools = conversation["tools"];
      options.documents = conversation["documents"];
      options.extra_kwargs = conversation["kwargs"];
      options.now = fixed_now;
      std::string where =
          name + " on '" + conversation["name"].get<std::string>() +
          "' (add_generation_prompt=" + (options.add_generation_prompt ? "true" : "false") + ")";
      std::string output;
      std::string error_kind;
      std::string error_message;
      try {
        output = chat_template.render(conversation["messages"], options);
      } catch (const vllm::ChatTemplateError& e) {
        error_kind = e.kind();
        error_message = e.detail();
      }
      bool ok;
      std::string expected_description;
      if (c.contains("error")) {
        ++tally.errors;
        std::string kind = c["error"]["type"];
        ok = error_kind == kind;
        // The error type and message must be jinja2's (raise_exception's text included).
        if (ok) ok = error_message == c["error"]["message"];
        expected_description = "error " + kind + ": " + c["error"]["message"].get<std::string>();
      } else {
        ++tally.renders;
        if (c.contains("output")) {
          ok = error_kind.empty() && output == c["output"].get<std::string>();
          expected_description = c["output"].get<std::string>();
        } else {
          ok = error_kind.empty() && output.size() == c["output_bytes"].get<std::size_t>() &&
               fnv1a64(output) == c["output_fnv1a64"].get<std::string>();
          expected_description = "fnv1a64 " + c["output_fnv1a64"].get<std::string>();
        }
      }
      if (!ok) {
        ++tally.mismatches;
        if (const char* dir = std::getenv("CHAT_TEMPLATE_MISMATCH_DIR")) {  // for debugging
          std::ofstream(std::string(dir) + "/" + std::to_string(tally.mismatches) + ".txt")
              << where << "\n--- expected ---\n"
              << expected_description << "\n--- got ---\n"
              << (error_kind.empty() ? output : error_kind + ": " + error_message);
        }
        if (tally.mismatches <= 8) {
          tally.report += "\n=== " + where + "\n--- expected ---\n" + expected_description +
                          "\n--- got ---\n" +
                          (error_kind.empty() ? output : error_kind + ": " + error_message) + "\n";
        }
      }
    }
  }
}

}  // namespace

TEST_CASE("chat templates render as Python jinja2 does", "[chat_template][jinja]") {
  for (const char* group :
       {"templates_smollm2.json", "templates_own.json", "templates_pypi.json"}) {
    Tally tally;
    check_group(group, tally);
    INFO(group << ": " << tally.renders << " renders, " << tally.errors << " expected errors"
               << tally.report);
    CHECK(tally.renders > 0);
    CHECK(tally.mismatches == 0);
  }
}

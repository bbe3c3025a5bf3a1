// ChatTemplate loading: tokenizer_config.json (string or named list, picked as transformers
// picks), the bundled GGUF's tokenizer.chat_template, and the render options.
#include <atomic>
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>
#include <vector>

#include "model/chat_template.hpp"
#include "tests/support/test_paths.hpp"

namespace {

using json = nlohmann::ordered_json;

const char* kConversation = R"([{"role": "user", "content": "Hi"}])";

std::filesystem::path temp_file(const std::string& name, const std::string& content) {
  auto path = std::filesystem::temp_directory_path() / ("vllm_cpp_chat_template_" + name);
  std::ofstream(path) << content;
  return path;
}

}  // namespace

TEST_CASE("tokenizer_config.json with a single chat_template", "[chat_template][loading]") {
  auto config = nlohmann::json::parse(R"({
    "bos_token": {"content": "<s>", "lstrip": false},
    "eos_token": "</s>",
    "chat_template": "{{ bos_token }}{% for m in messages %}[{{ m.role }}] {{ m.content }}{{ eos_token }}{% endfor %}"
  })");
  auto t = vllm::ChatTemplate::from_tokenizer_config(config);
  CHECK(t.names() == std::vector<std::string>{"default"});
  CHECK(t.default_bos_token() == "<s>");
  CHECK(t.default_eos_token() == "</s>");
  CHECK(t.render(json::parse(kConversation), {}) == "<s>[user] Hi</s>");
  vllm::ChatTemplateOptions options;
  options.bos_token = "";
  options.eos_token = "<|end|>";
  CHECK(t.render(json::parse(kConversation), options) == "[user] Hi<|end|>");
}

TEST_CASE("named chat templates are picked as transformers picks them",
          "[chat_template][loading]") {
  auto config = nlohmann::json::parse(R"({"chat_template": [
    {"name": "default", "template": "default:{{ messages | length }}"},
    {"name": "tool_use", "template": "tools:{{ tools | length }}"},
    {"name": "rag", "template": "rag:{{ documents | length }}"}
  ]})");
  auto t = vllm::ChatTemplate::from_tokenizer_config(config);
  CHECK(t.names() == std::vector<std::string>{"default", "tool_use", "rag"});
  vllm::ChatTemplateOptions options;
  CHECK(t.render(json::parse(kConversation), options) == "default:1");
  options.tools = json::parse(R"([{"type": "function", "function": {"name": "f"}}])");
  CHECK(t.render(json::parse(kConversation), options) == "tools:1");
  options.template_name = "rag";
  options.documents = json::parse(R"([{"text": "a"}, {"text": "b"}])");
  CHECK(t.render(json::parse(kConversation), options) == "rag:2");
  options.template_name = "missing";
  CHECK_THROWS_WITH(t.render(json::parse(kConversation), options),
                    Catch::Contains("no chat template named 'missing'"));

  auto no_default = nlohmann::json::parse(
      R"({"chat_template": [{"name": "a", "template": "A"}, {"name": "b", "template": "B"}]})");
  auto ambiguous = vllm::ChatTemplate::from_tokenizer_config(no_default);
  CHECK_THROWS_WITH(ambiguous.render(json::parse(kConversation), {}),
                    Catch::Contains("none is named 'default'"));
}

TEST_CASE("bad tokenizer configs are clear errors", "[chat_template][loading]") {
  using vllm::ChatTemplate;
  using vllm::ChatTemplateError;
  CHECK_THROWS_WITH(ChatTemplate::from_tokenizer_config(nlohmann::json::parse("{}")),
                    Catch::Contains("no 'chat_template'"));
  CHECK_THROWS_AS(
      ChatTemplate::from_tokenizer_config(nlohmann::json::parse(R"({"chat_template": 3})")),
      ChatTemplateError);
  CHECK_THROWS_WITH(ChatTemplate::from_tokenizer_config(nlohmann::json::parse(
                        R"({"chat_template": [{"name": "x", "template": "{% if %}"}]})")),
                    Catch::Contains("in chat template 'x'") && Catch::Contains("line 1"));
  CHECK_THROWS_AS(ChatTemplate::from_tokenizer_config(
                      nlohmann::json::parse(R"({"chat_template": [{"template": "x"}]})")),
                  ChatTemplateError);
  auto bad_json = temp_file("bad.json", "{ not json");
  CHECK_THROWS_WITH(ChatTemplate::from_tokenizer_config_file(bad_json),
                    Catch::Contains("is not valid JSON"));
  std::filesystem::remove(bad_json);
  CHECK_THROWS_WITH(ChatTemplate::from_tokenizer_config_file("/nonexistent/tokenizer_config.json"),
                    Catch::Contains("cannot open"));
  auto good = temp_file("good.json", R"({"chat_template": "ok {{ messages[0].content }}"})");
  CHECK(ChatTemplate::from_tokenizer_config_file(good).render(json::parse(kConversation), {}) ==
        "ok Hi");
  std::filesystem::remove(good);
}

TEST_CASE("the bundled GGUF's chat template renders as transformers would",
          "[chat_template][loading][gguf]") {
  auto model = vllm::test::bundled_model_path();
  if (!std::filesystem::exists(model)) {
    WARN("bundled model not found at " << model << "; run scripts/fetch-model");
    return;
  }
  auto t = vllm::ChatTemplate::from_gguf(model);
  CHECK(t.default_bos_token() == "<|im_start|>");
  CHECK(t.default_eos_token() == "<|im_end|>");
  // The same template and tokens as the reference vectors, read with the Python gguf package.
  std::ifstream in(vllm::test::reference_data("chat_templates/templates_smollm2.json"));
  json reference = json::parse(in)["templates"][0];
  CHECK(t.source() == reference["source"].get<std::string>());
  CHECK(reference["bos_token"] == t.default_bos_token());
  vllm::ChatTemplateOptions options;
  options.add_generation_prompt = true;
  CHECK(t.render(json::parse(kConversation), options) ==
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
        "Face<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
  auto no_template = vllm::test::reference_data("tokenizers/no_tokens.gguf");
  if (std::filesystem::exists(no_template)) {
    CHECK_THROWS(vllm::ChatTemplate::from_gguf(no_template));
  }
}

TEST_CASE("render options reach the template", "[chat_template][loading]") {
  auto t = vllm::ChatTemplate::from_string(
      "{{ add_generation_prompt }}|{{ tools }}|{{ documents }}|{{ custom }}|{{ enable_thinking "
      "is defined }}|{{ strftime_now('%Y-%m-%d') | length }}|{{ messages[0] }}");
  vllm::ChatTemplateOptions options;
  options.add_generation_prompt = true;
  options.extra_kwargs = json::parse(R"({"custom": {"b": 1, "a": [true, null]}})");
  // Key order is the document's, as Python's json.loads keeps it.
  CHECK(t.render(json::parse(R"([{"role": "user", "content": "x"}])"), options) ==
        "True|None|None|{'b': 1, 'a': [True, None]}|False|10|{'role': 'user', 'content': 'x'}");
  CHECK_THROWS_AS(t.render(json::parse(R"({"role": "user"})"), options), vllm::ChatTemplateError);
  options.extra_kwargs = json::parse("[1]");
  CHECK_THROWS_AS(t.render(json::parse("[]"), options), vllm::ChatTemplateError);
}

TEST_CASE("one ChatTemplate renders from several threads at once", "[chat_template][loading]") {
  std::ifstream in(vllm::test::reference_data("chat_templates/templates_own.json"));
  json templates = json::parse(in)["templates"];
  auto t = vllm::ChatTemplate::from_string(templates[0]["source"].get<std::string>());
  json messages =
      json::parse(R"([{"role": "system", "content": "s"}, {"role": "user", "content": "héllo"}])");
  vllm::ChatTemplateOptions options;
  options.add_generation_prompt = true;
  const std::string expected = t.render(messages, options);
  std::atomic<int> mismatches{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&] {
      for (int k = 0; k < 200; ++k)
        if (t.render(messages, options) != expected) ++mismatches;
    });
  }
  for (auto& thread : threads) thread.join();
  CHECK(mismatches == 0);
}

TEST_CASE("continue_final_message cuts after the final message", "[chat_template][loading]") {
  auto t = vllm::ChatTemplate::from_string(
      "{% for m in messages %}<{{ m.role }}>{{ m.content }}</{{ m.role }}>{% endfor %}");
  json messages = json::parse(
      R"([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Sure, "}])");
  vllm::ChatTemplateOptions options;
  options.continue_final_message = true;
  CHECK(t.render(messages, options) == "<user>Hi</user><assistant>Sure, ");
  options.add_generation_prompt = true;
  CHECK_THROWS_WITH(t.render(messages, options), Catch::Contains("not compatible"));
  auto dropping = vllm::ChatTemplate::from_string("{{ messages[0].content }}");
  options.add_generation_prompt = false;
  CHECK_THROWS_WITH(dropping.render(messages, options),
                    Catch::Contains("final message does not appear"));
}

TEST_CASE("--chat-template takes a file or the template itself", "[chat_template][loading]") {
  auto file = temp_file("cli.jinja", "{% for m in messages %}{{ m.content }}{% endfor %}\n");
  json messages = json::parse(kConversation);
  CHECK(vllm::ChatTemplate::from_cli_argument(file.string()).render(messages, {}) == "Hi");
  CHECK(vllm::ChatTemplate::from_file(file).render(messages, {}) == "Hi");
  std::filesystem::remove(file);
  CHECK(
      vllm::ChatTemplate::from_cli_argument("{{ messages[0].content }}\\n!").render(messages, {}) ==
      "Hi\n!");
  CHECK_THROWS_WITH(vllm::ChatTemplate::from_cli_argument("/no/such/template.jinja"),
                    Catch::Contains("looks like a file path"));
  auto bad = temp_file("bad.jinja", "ok\n{% if %}");
  CHECK_THROWS_WITH(vllm::ChatTemplate::from_file(bad),
                    Catch::Contains("bad.jinja") && Catch::Contains("line 2"));
  std::filesystem::remove(bad);
}

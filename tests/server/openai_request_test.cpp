// Request parsing and validation of the OpenAI API: what a client sends becomes SamplingParams,
// and every bad input is a 400 naming the field.
#include <catch2/catch.hpp>

#include "server/http_error.hpp"
#include "server/openai_request.hpp"

namespace vllm::server {
namespace {

Json body(const char* text) {
  return parse_json_body(text);
}

// The status and the param of the HttpError that `f` throws.
template <class F>
std::pair<int, std::string> error_of(F f) {
  try {
    f();
  } catch (const HttpError& e) {
    return {e.status(), e.param()};
  }
  FAIL("no HttpError thrown");
  return {0, ""};
}

SamplingParams defaults() {
  SamplingParams p;
  p.temperature = 0.6f;  // as if from a generation_config
  p.top_p = 0.9f;
  return p;
}

}  // namespace

TEST_CASE("malformed, non-object and non-UTF-8 bodies are 400", "[server]") {
  CHECK(error_of([] { parse_json_body("{\"prompt\": "); }).first == 400);
  CHECK(error_of([] { parse_json_body("[1, 2]"); }).first == 400);
  CHECK(error_of([] { parse_json_body(""); }).first == 400);
  CHECK(error_of([] { parse_json_body("{\"prompt\": \"a\xff\xfe b\"}"); }).first == 400);
  CHECK(error_of([] { parse_json_body("{\"prompt\": \"\\ud800\"}"); }).first == 400);
  CHECK(parse_json_body("{\"prompt\": \"caf\xc3\xa9\"}")["prompt"] == "caf\xc3\xa9");
}

TEST_CASE("completion prompts: string, strings, token ids, lists of token ids", "[server]") {
  auto r = parse_completion_request(body(R"({"prompt": "Hello"})"), defaults());
  REQUIRE(r.prompts.size() == 1);
  CHECK(*r.prompts[0].text == "Hello");
  r = parse_completion_request(body(R"({"prompt": ["a", "b"]})"), defaults());
  REQUIRE(r.prompts.size() == 2);
  CHECK(*r.prompts[1].text == "b");
  r = parse_completion_request(body(R"({"prompt": [1, 2, 3]})"), defaults());
  REQUIRE(r.prompts.size() == 1);
  CHECK(!r.prompts[0].text);
  CHECK(r.prompts[0].token_ids == std::vector<int32_t>{1, 2, 3});
  r = parse_completion_request(body(R"({"prompt": [[1, 2], [3]]})"), defaults());
  REQUIRE(r.prompts.size() == 2);
  CHECK(r.prompts[1].token_ids == std::vector<int32_t>{3});

  for (const char* bad :
       {R"({})", R"({"prompt": 5})", R"({"prompt": []})", R"({"prompt": [[]]})",
        R"({"prompt": [1, "a"]})", R"({"prompt": [-1]})", R"({"prompt": [{"x": 1}]})"}) {
    INFO(bad);
    CHECK(error_of([&] { parse_completion_request(body(bad), defaults()); }) ==
          std::pair<int, std::string>{400, "prompt"});
  }
}

TEST_CASE("unset parameters come from the defaults, set ones override them", "[server]") {
  auto r = parse_completion_request(body(R"({"prompt": "x"})"), defaults());
  CHECK(r.params.temperature == Approx(0.6f));
  CHECK(r.params.top_p == Approx(0.9f));
  CHECK(r.params.max_tokens == 16);
  r = parse_completion_request(
      body(R"({"prompt": "x", "temperature": 0, "top_p": 0.5, "top_k": 40, "min_p": 0.1,
               "max_tokens": 7, "n": 3, "seed": -1, "stop": "\n", "stop_token_ids": [2],
               "presence_penalty": 0.5, "frequency_penalty": -0.5, "repetition_penalty": 1.1,
               "logit_bias": {"42": -100, "7": 5.5}, "logprobs": 2, "echo": false,
               "ignore_eos": true, "min_tokens": 3, "skip_special_tokens": false,
               "include_stop_str_in_output": true, "user": "someone", "model": "m",
               "stream": true, "stream_options": {"include_usage": true}, "best_of": 3,
               "suffix": null, "temperature_unused": null})"),
      defaults());
  CHECK(r.params.temperature == 0.0f);
  CHECK(r.params.greedy());
  CHECK(r.params.top_p == Approx(0.5f));
  CHECK(r.params.top_k == 40);
  CHECK(r.params.min_p == Approx(0.1f));
  CHECK(r.params.max_tokens == 7);
  CHECK(r.params.n == 3);
  CHECK(r.params.seed == std::numeric_limits<uint64_t>::max());
  CHECK(r.params.stop == std::vector<std::string>{"\n"});
  CHECK(r.params.stop_token_ids == std::vector<int32_t>{2});
  CHECK(r.params.presence_penalty == Approx(0.5f));
  CHECK(r.params.frequency_penalty == Approx(-0.5f));
  CHECK(r.params.repetition_penalty == Approx(1.1f));
  CHECK(r.params.logit_bias == std::vector<std::pair<int32_t, float>>{{42, -100.0f}, {7, 5.5f}});
  CHECK(r.params.logprobs == 2);
  CHECK(r.params.ignore_eos);
  CHECK(r.params.min_tokens == 3);
  CHECK(!r.params.skip_special_tokens);
  CHECK(r.params.include_stop_str_in_output);
  CHECK(r.model == "m");
  CHECK(r.stream.stream);
  CHECK(r.stream.include_usage);
}

TEST_CASE("wrong types and out-of-range values are 400 naming the field", "[server]") {
  const std::pair<const char*, const char*> cases[] = {
      {R"({"prompt": "x", "max_tokens": -1})", "max_tokens"},
      {R"({"prompt": "x", "max_tokens": 0})", "max_tokens"},
      {R"({"prompt": "x", "max_tokens": "16"})", "max_tokens"},
      {R"({"prompt": "x", "max_tokens": 1.5})", "max_tokens"},
      {R"({"prompt": "x", "max_tokens": 1e30})", "max_tokens"},
      {R"({"prompt": "x", "temperature": "hot"})", "temperature"},
      {R"({"prompt": "x", "temperature": -0.1})", "temperature"},
      {R"({"prompt": "x", "top_p": 0})", "top_p"},
      {R"({"prompt": "x", "top_p": 1.5})", "top_p"},
      {R"({"prompt": "x", "top_k": -2})", "top_k"},
      {R"({"prompt": "x", "min_p": 2})", "min_p"},
      {R"({"prompt": "x", "n": 0})", "n"},
      {R"({"prompt": "x", "presence_penalty": 3})", "presence_penalty"},
      {R"({"prompt": "x", "repetition_penalty": 0})", "repetition_penalty"},
      {R"({"prompt": "x", "stop": 5})", "stop"},
      {R"({"prompt": "x", "stop": ["a", 1]})", "stop"},
      {R"({"prompt": "x", "stop": [""]})", "stop"},
      {R"({"prompt": "x", "logit_bias": {"a": 1}})", "logit_bias"},
      {R"({"prompt": "x", "logit_bias": {"1": 500}})", "logit_bias"},
      {R"({"prompt": "x", "logprobs": 21})", "logprobs"},
      {R"({"prompt": "x", "logprobs": true})", "logprobs"},
      {R"({"prompt": "x", "echo": "yes"})", "echo"},
      {R"({"prompt": "x", "stream": 1})", "stream"},
      {R"({"prompt": "x", "stream_options": {"include_usage": true}})", "stream_options"},
      {R"({"prompt": "x", "min_tokens": 20, "max_tokens": 10})", "min_tokens"},
      {R"({"prompt": "x", "seed": "1"})", "seed"},
      {R"({"prompt": "x", "model": 3})", "model"},
  };
  for (const auto& [text, param] : cases) {
    INFO(text);
    CHECK(error_of([&] { parse_completion_request(body(text), defaults()); }) ==
          std::pair<int, std::string>{400, param});
  }
}

TEST_CASE("parameters the engine cannot honour are refused, not ignored", "[server]") {
  const std::pair<const char*, const char*> cases[] = {
      {R"({"prompt": "x", "suffix": "end"})", "suffix"},
      {R"({"prompt": "x", "best_of": 4})", "best_of"},
      {R"({"prompt": "x", "guided_json": {}})", "guided_json"},
      {R"({"prompt": "x", "guided_regex": "a+"})", "guided_regex"},
      {R"({"prompt": "x", "response_format": {"type": "json_object"}})", "response_format"},
      {R"({"prompt": "x", "use_beam_search": true})", "use_beam_search"},
      {R"({"prompt": "x", "prompt_logprobs": 1})", "prompt_logprobs"},
      {R"({"prompt": "x", "echo": true, "logprobs": 1})", "echo"},
      {R"({"prompt": "x", "max_tokenz": 5})", "max_tokenz"},
  };
  for (const auto& [text, param] : cases) {
    INFO(text);
    CHECK(error_of([&] { parse_completion_request(body(text), defaults()); }) ==
          std::pair<int, std::string>{400, param});
  }
  // Harmless values of the same fields pass.
  CHECK_NOTHROW(parse_completion_request(
      body(R"({"prompt": "x", "suffix": null, "best_of": 1, "response_format": {"type": "text"},
               "use_beam_search": false, "user": "u"})"),
      defaults()));
}

TEST_CASE("chat requests: messages, max_completion_tokens, logprobs, template kwargs", "[server]") {
  auto r = parse_chat_completion_request(
      body(R"({"messages": [{"role": "system", "content": "Be brief."},
                            {"role": "user", "content": [{"type": "text", "text": "Hi"},
                                                         {"type": "text", "text": "there"}]}],
               "max_completion_tokens": 9, "max_tokens": 100, "logprobs": true,
               "top_logprobs": 3, "chat_template_kwargs": {"enable_thinking": false},
               "add_generation_prompt": false, "tools": [], "tool_choice": "none"})"),
      defaults());
  CHECK(r.messages.size() == 2);
  CHECK(r.messages[1]["content"] == "Hi\nthere");
  CHECK(r.params.max_tokens == 9);
  CHECK(r.max_tokens_set);
  CHECK(r.params.logprobs == 3);
  CHECK(!r.add_generation_prompt);
  CHECK(!r.add_special_tokens);
  CHECK(r.chat_template_kwargs["enable_thinking"] == false);

  r = parse_chat_completion_request(body(R"({"messages": [{"role": "user", "content": "x"}]})"),
                                    defaults());
  CHECK(!r.max_tokens_set);
  CHECK(!r.params.logprobs);
  CHECK(r.add_generation_prompt);

  const std::pair<const char*, const char*> cases[] = {
      {R"({"messages": []})", "messages"},
      {R"({})", "messages"},
      {R"({"messages": "hi"})", "messages"},
      {R"({"messages": [{"content": "x"}]})", "messages[0].role"},
      {R"({"messages": [{"role": "user", "content": 5}]})", "messages[0].content"},
      {R"({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]})",
       "messages[0].content"},
      {R"({"messages": [{"role": "user", "content": "x"}], "top_logprobs": 2})", "top_logprobs"},
      {R"({"messages": [{"role": "user", "content": "x"}], "logprobs": 1})", "logprobs"},
      {R"({"messages": [{"role": "user", "content": "x"}],
           "tools": [{"type": "function", "function": {"name": "f"}}]})",
       "tools"},
      {R"({"messages": [{"role": "user", "content": "x"}], "tool_choice": "required"})",
       "tool_choice"},
      {R"({"messages": [{"role": "user", "content": "x"}],
           "response_format": {"type": "json_schema", "json_schema": {}}})",
       "response_format"},
      {R"({"messages": [{"role": "user", "content": "x"}], "chat_template_kwargs": 1})",
       "chat_template_kwargs"},
      {R"({"messages": [{"role": "user", "content": "x"}], "max_completion_tokens": -5})",
       "max_completion_tokens"},
  };
  for (const auto& [text, param] : cases) {
    INFO(text);
    CHECK(error_of([&] { parse_chat_completion_request(body(text), defaults()); }) ==
          std::pair<int, std::string>{400, param});
  }
}

TEST_CASE("continue_final_message needs an assistant message and no generation prompt",
          "[server]") {
  auto r = parse_chat_completion_request(
      body(
          R"({"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}],
               "continue_final_message": true, "add_generation_prompt": false})"),
      defaults());
  CHECK(r.continue_final_message);
  CHECK(error_of([] {
          parse_chat_completion_request(
              body(R"({"messages": [{"role": "assistant", "content": "y"}],
                       "continue_final_message": true})"),
              defaults());
        }) == std::pair<int, std::string>{400, "continue_final_message"});
  CHECK(error_of([] {
          parse_chat_completion_request(body(R"({"messages": [{"role": "user", "content": "y"}],
                       "continue_final_message": true, "add_generation_prompt": false})"),
                                        defaults());
        }) == std::pair<int, std::string>{400, "continue_final_message"});
}

TEST_CASE("tokenize and detokenize requests", "[server]") {
  auto t = parse_tokenize_request(body(R"({"prompt": "Hello", "add_special_tokens": false})"));
  CHECK(*t.prompt == "Hello");
  CHECK(!t.add_special_tokens);
  t = parse_tokenize_request(body(R"({"messages": [{"role": "user", "content": "x"}]})"));
  CHECK(!t.prompt);
  CHECK(!t.add_special_tokens);  // chat: the template writes the special tokens
  CHECK(t.add_generation_prompt);
  CHECK(error_of([] { parse_tokenize_request(body(R"({})")); }).first == 400);
  auto d = parse_detokenize_request(body(R"({"tokens": [1, 2]})"));
  CHECK(d.tokens == std::vector<int32_t>{1, 2});
  CHECK(error_of([] { parse_detokenize_request(body(R"({"tokens": "1"})")); }) ==
        std::pair<int, std::string>{400, "tokens"});
}

}  // namespace vllm::server

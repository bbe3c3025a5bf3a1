// Response shapes: SSE framing, usage, logprobs (completions' offsets and top dicts, chat's
// token bytes), completion and chunk objects.
#include <catch2/catch.hpp>

#include "server/openai_response.hpp"

namespace vllm::server {
namespace {

std::string fake_text(int32_t id) {
  switch (id) {
    case 1:
      return "Hel";
    case 2:
      return "lo";
    case 3:
      return " w\xc3\xa9";
    default:
      return "<" + std::to_string(id) + ">";
  }
}

}  // namespace

TEST_CASE("SSE events are 'data: <json>' and a blank line; the stream ends with [DONE]",
          "[server]") {
  CHECK(sse_event(Json{{"a", 1}}) == "data: {\"a\":1}\n\n");
  CHECK(kSseDone == "data: [DONE]\n\n");
  // A model's partial UTF-8 byte never breaks the JSON.
  CHECK(sse_event(Json{{"text", "\xe2\x82"}}) == "data: {\"text\":\"\xef\xbf\xbd\"}\n\n");
}

TEST_CASE("usage counts prompt, completion and total tokens", "[server]") {
  Usage usage{.prompt_tokens = 5, .completion_tokens = 7};
  const Json j = usage_json(usage);
  CHECK(j["prompt_tokens"] == 5);
  CHECK(j["completion_tokens"] == 7);
  CHECK(j["total_tokens"] == 12);
  CHECK(j["prompt_tokens_details"].is_null());
  usage.cached_tokens = 4;
  CHECK(usage_json(usage)["prompt_tokens_details"]["cached_tokens"] == 4);
}

TEST_CASE("completion logprobs: offsets, tokens, top dicts with the sampled token", "[server]") {
  const std::vector<int32_t> ids = {1, 2, 3};
  std::vector<SampleLogprobs> lps(3);
  lps[0] = {-0.5f, 1, {{1, -0.5f}, {9, -1.5f}}};
  lps[1] = {-2.0f, 2, {{8, -0.25f}, {2, -2.0f}}};
  lps[2] = {-3.0f, 5, {{7, -0.1f}, {6, -0.2f}}};
  const Json j = completion_logprobs_json(ids, lps, fake_text, 4);
  CHECK(j["tokens"] == Json::array({"Hel", "lo", " w\xc3\xa9"}));
  CHECK(j["text_offset"] == Json::array({4, 7, 9}));
  CHECK(j["token_logprobs"][1] == Approx(-2.0));
  CHECK(j["top_logprobs"][0].size() == 2);  // the sampled token is one of the top two
  CHECK(j["top_logprobs"][2].size() == 3);  // two alternatives and the sampled token
  CHECK(j["top_logprobs"][2][" w\xc3\xa9"] == Approx(-3.0));
  CHECK(j["top_logprobs"][2]["<7>"] == Approx(-0.1));
}

TEST_CASE("chat logprobs: token, logprob, UTF-8 bytes and top alternatives", "[server]") {
  const std::vector<int32_t> ids = {3};
  std::vector<SampleLogprobs> lps(1);
  lps[0] = {-0.75f, 1, {{3, -0.75f}, {2, -1.0f}}};
  const Json j = chat_logprobs_json(ids, lps, fake_text);
  REQUIRE(j["content"].size() == 1);
  const Json& entry = j["content"][0];
  CHECK(entry["token"] == " w\xc3\xa9");
  CHECK(entry["logprob"] == Approx(-0.75));
  CHECK(entry["bytes"] == Json::array({32, 119, 195, 169}));
  REQUIRE(entry["top_logprobs"].size() == 2);
  CHECK(entry["top_logprobs"][1]["token"] == "lo");
  CHECK(entry["top_logprobs"][1]["bytes"] == Json::array({108, 111}));
}

TEST_CASE("completion and chat objects", "[server]") {
  const ResponseHeader header{"cmpl-1", 1700000000, "smol"};
  Json choice = completion_choice_json(0, "hi", nullptr, "stop", std::string("\n"));
  const Json c = completion_object_json(header, Json::array({choice}),
                                        Usage{.prompt_tokens = 1, .completion_tokens = 1});
  CHECK(c["object"] == "text_completion");
  CHECK(c["choices"][0]["finish_reason"] == "stop");
  CHECK(c["choices"][0]["stop_reason"] == "\n");
  CHECK(c["usage"]["total_tokens"] == 2);

  const Json chat = chat_object_json(
      header, Json::array({chat_choice_json(1, "yes", nullptr, "length", std::nullopt)}), Usage{});
  CHECK(chat["object"] == "chat.completion");
  CHECK(chat["choices"][0]["message"]["role"] == "assistant");
  CHECK(chat["choices"][0]["message"]["content"] == "yes");
  CHECK(chat["choices"][0]["index"] == 1);

  const Json chunk = chat_chunk_json(
      header,
      Json::array(
          {chat_chunk_choice_json(0, Json{{"content", "x"}}, nullptr, std::nullopt, int32_t{2})}),
      std::nullopt);
  CHECK(chunk["object"] == "chat.completion.chunk");
  CHECK(chunk["choices"][0]["delta"]["content"] == "x");
  CHECK(chunk["choices"][0]["finish_reason"].is_null());
  CHECK(chunk["choices"][0]["stop_reason"] == 2);
  CHECK(!chunk.contains("usage"));
}

}  // namespace vllm::server

// IncrementalDetokenizer: streaming deltas never split a character, honour skip_special_tokens,
// keep the spacing of the full decode (prompt context), and flush on finish().
#include <catch2/catch.hpp>

#include <map>
#include <string>
#include <thread>
#include <vector>

#include "model/incremental_detokenizer.hpp"
#include "model/tokenizer.hpp"
#include "model/unicode.hpp"
#include "tests/support/test_paths.hpp"

namespace {

using vllm::IncrementalDetokenizer;
using vllm::Tokenizer;

const Tokenizer& tokenizer(const std::string& name) {
  static std::map<std::string, Tokenizer> cache;
  auto it = cache.find(name);
  if (it == cache.end())
    it = cache
             .emplace(name, Tokenizer::from_tokenizer_json(
                                vllm::test::reference_data("tokenizers") / name / "tokenizer.json"))
             .first;
  return it->second;
}

std::vector<std::string> stream_all(const Tokenizer& tok, const std::vector<int32_t>& ids,
                                    vllm::DecodeOptions options = {}) {
  IncrementalDetokenizer stream(tok, {}, options);
  std::vector<std::string> deltas;
  for (int32_t id : ids) deltas.push_back(stream.push(id));
  deltas.push_back(stream.finish());
  return deltas;
}

}  // namespace

TEST_CASE("byte-fallback tokens are held until the character completes",
          "[tokenizer][detokenizer]") {
  const auto& tok = tokenizer("llama2");
  const auto e2 = *tok.token_to_id("<0xE2>"), x82 = *tok.token_to_id("<0x82>"),
             xac = *tok.token_to_id("<0xAC>");
  const std::vector<int32_t> ids{*tok.token_to_id("<s>"), e2, x82, xac};
  REQUIRE(tok.decode(ids) == "\xE2\x82\xAC");  // €
  const auto deltas = stream_all(tok, ids);
  CHECK(deltas == std::vector<std::string>{"", "", "", "\xE2\x82\xAC", ""});
}

TEST_CASE("finish() flushes an incomplete trailing character", "[tokenizer][detokenizer]") {
  const auto& tok = tokenizer("llama2");
  IncrementalDetokenizer stream(tok);
  CHECK(stream.push(*tok.token_to_id("<0xE2>")) == "");
  CHECK(stream.finish() == "\xEF\xBF\xBD");
  CHECK(stream.text() == "\xEF\xBF\xBD");
}

TEST_CASE("byte-level deltas are whole characters and add up to the decode",
          "[tokenizer][detokenizer]") {
  const auto& tok = tokenizer("gpt2");
  const std::string text = "Ünïcödé 😀👨‍👩‍👧 中文 ok";
  const auto ids = tok.encode(text);
  std::string joined;
  for (const auto& delta : stream_all(tok, ids)) {
    CHECK(vllm::unicode::is_valid_utf8(delta));
    joined += delta;
  }
  CHECK(joined == text);
}

TEST_CASE("prompt context keeps the leading space of the first generated token",
          "[tokenizer][detokenizer]") {
  // Metaspace-style decoders drop the space of the first token they see; the window that starts
  // inside the prompt keeps it, as vLLM's prefix/read offsets do.
  const auto& tok = tokenizer("mistral");
  const auto prompt = tok.encode("The answer is", true);
  const auto full = tok.encode("The answer is forty two", true);
  REQUIRE(std::equal(prompt.begin(), prompt.end() - 1, full.begin()));
  size_t common = 0;
  while (common < prompt.size() && prompt[common] == full[common]) ++common;
  const std::vector<int32_t> context(full.begin(), full.begin() + common);
  IncrementalDetokenizer stream(tok, context);
  std::string generated;
  for (size_t i = common; i < full.size(); ++i) generated += stream.push(full[i]);
  generated += stream.finish();
  const std::string whole = tok.decode(full);
  const std::string head = tok.decode(context);
  REQUIRE(whole.starts_with(head));
  CHECK(generated == whole.substr(head.size()));
  CHECK(generated.starts_with(" "));
}

TEST_CASE("skip_special_tokens and spaces_between_special_tokens", "[tokenizer][detokenizer]") {
  const auto& tok = tokenizer("qwen2");
  const int32_t start = *tok.token_to_id("<|im_start|>"), end = *tok.token_to_id("<|im_end|>");
  std::vector<int32_t> ids{start};
  for (int32_t id : tok.encode("hello there")) ids.push_back(id);
  ids.push_back(end);
  CHECK(tok.decode(ids, true) == "hello there");
  CHECK(tok.decode(ids, false) == "<|im_start|>hello there<|im_end|>");
  CHECK(tok.decode(ids, vllm::DecodeOptions{.skip_special_tokens = false,
                                            .spaces_between_special_tokens = true}) ==
        "<|im_start|> hello there <|im_end|>");
  std::string streamed;
  for (const auto& d : stream_all(tok, ids, {.skip_special_tokens = true})) streamed += d;
  CHECK(streamed == "hello there");
  streamed.clear();
  for (const auto& d : stream_all(tok, ids, {.skip_special_tokens = false})) streamed += d;
  CHECK(streamed == "<|im_start|>hello there<|im_end|>");
}

TEST_CASE("stop strings can be matched on the emitted text", "[tokenizer][detokenizer]") {
  const auto& tok = tokenizer("gpt2");
  const auto ids = tok.encode("first line\nSTOP here");
  IncrementalDetokenizer stream(tok);
  size_t consumed = 0;
  for (int32_t id : ids) {
    stream.push(id);
    ++consumed;
    if (stream.text().find("STOP") != std::string::npos) break;
  }
  CHECK(stream.text().starts_with("first line\nSTOP"));
  CHECK(consumed < ids.size());
}

TEST_CASE("encode is thread-safe and deterministic", "[tokenizer][threads]") {
  const auto& tok = tokenizer("llama3");
  std::vector<std::string> texts;
  for (int i = 0; i < 200; ++i)
    texts.push_back("sample " + std::to_string(i * 7919) + " with wörds ünd ☃ " +
                    std::string(i % 13, ' ') + "end");
  std::vector<std::vector<int32_t>> expected;
  for (const auto& t : texts) expected.push_back(tok.encode(t));
  const Tokenizer fresh = Tokenizer::from_tokenizer_json(
      vllm::test::reference_data("tokenizers") / "llama3" / "tokenizer.json");  // empty cache
  std::vector<int> mismatches(4, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < 3; ++round)
        for (size_t i = t; i < texts.size() + t; ++i) {
          const size_t k = i % texts.size();
          if (fresh.encode(texts[k]) != expected[k]) ++mismatches[t];
        }
    });
  }
  for (auto& th : threads) th.join();
  CHECK(mismatches == std::vector<int>(4, 0));
}

// Malformed or unsupported tokenizer descriptions give a TokenizerError that names the problem.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "model/gguf.hpp"
#include "model/tokenizer.hpp"
#include "tests/support/test_paths.hpp"

namespace {

using Catch::Matchers::Contains;
using vllm::Tokenizer;
using vllm::TokenizerError;

// A minimal valid byte-level tokenizer.json with one part replaced.
std::string tokenizer_json(
    const std::string& model = R"({"type":"BPE","vocab":{"a":0,"b":1,"ab":2},"merges":["a b"]})",
    const std::string& extra = "") {
  return R"({"version":"1.0","added_tokens":[],"normalizer":null,"pre_tokenizer":null,)"
         R"("post_processor":null,"decoder":null,)" +
         extra + R"("model":)" + model + "}";
}

void require_error(const std::string& json, const std::string& expected_message) {
  REQUIRE_THROWS_MATCHES(Tokenizer::from_json_string(json, "test.json"), TokenizerError,
                         Catch::Matchers::Predicate<TokenizerError>(
                             [&](const TokenizerError& e) {
                               const std::string what = e.what();
                               return what.find(expected_message) != std::string::npos &&
                                      what.find("test.json") != std::string::npos;
                             },
                             "message names test.json and contains '" + expected_message + "'"));
}

}  // namespace

TEST_CASE("a minimal tokenizer.json loads and encodes", "[tokenizer][errors]") {
  const auto tokenizer = Tokenizer::from_json_string(tokenizer_json());
  CHECK(tokenizer.encode("abab") == std::vector<int32_t>{2, 2});
  CHECK(tokenizer.encode("ba") == std::vector<int32_t>{1, 0});
  CHECK(tokenizer.vocab_size() == 3);
  // No decoder: Hugging Face joins the token strings with spaces.
  CHECK(tokenizer.decode(std::vector<int32_t>{2, 0, 1}) == "ab a b");
}

TEST_CASE("malformed tokenizer.json is a clear error", "[tokenizer][errors]") {
  require_error("{\"model\": ", "malformed JSON");
  require_error("[1, 2]", "top level must be an object");
  require_error(R"({"added_tokens": []})", "missing key 'model'");
  require_error(tokenizer_json(R"({"type":"WordPiece","vocab":{}})"),
                "unsupported model type 'WordPiece'");
  require_error(tokenizer_json(R"({"type":"BPE","vocab":[1,2],"merges":[]})"),
                "key 'vocab' must be an object");
  require_error(tokenizer_json(R"({"type":"BPE","vocab":{"a":"zero"},"merges":[]})"),
                "vocab entry 'a' must map to an integer id");
  require_error(tokenizer_json(R"({"type":"BPE","vocab":{"a":0,"b":1},"merges":["a c"]})"),
                "uses token 'c' which is not in the vocabulary");
  require_error(tokenizer_json(R"({"type":"BPE","vocab":{"a":0,"b":1},"merges":["a b"]})"),
                "produces 'ab' which is not in the vocabulary");
  require_error(tokenizer_json(R"({"type":"BPE","vocab":{"a":0},"merges":[7]})"),
                "merge #0 must be");
  require_error(tokenizer_json(R"({"type":"BPE","vocab":{"a":0},"merges":["ab"]})"),
                "is not of the form 'left right'");
  require_error(tokenizer_json(R"({"type":"BPE","vocab":{"a":0},"merges":[],"unk_token":"<unk>"})"),
                "unk_token '<unk>' is not in the vocabulary");
  require_error(tokenizer_json(R"({"type":"BPE","vocab":{"a":0},"merges":[]})",
                               R"("added_tokens":[{"id":5}],)"),
                "added_tokens[0]: missing key 'content'");
}

TEST_CASE("unsupported or malformed pipeline parts are clear errors", "[tokenizer][errors]") {
  const std::string model = R"({"type":"BPE","vocab":{"a":0},"merges":[]})";
  auto with = [&](const std::string& key, const std::string& value) {
    std::string json = tokenizer_json(model);
    const std::string null_part = "\"" + key + "\":null";
    json.replace(json.find(null_part), null_part.size(), "\"" + key + "\":" + value);
    return json;
  };
  require_error(with("pre_tokenizer", R"({"type":"BertPreTokenizer"})"),
                "unsupported pre_tokenizer type 'BertPreTokenizer'");
  require_error(
      with(
          "pre_tokenizer",
          R"({"type":"Split","pattern":{"Regex":"(unclosed"},"behavior":"Isolated","invert":false})"),
      "invalid regular expression '(unclosed'");
  require_error(
      with("pre_tokenizer",
           R"({"type":"Split","pattern":{"Regex":"a"},"behavior":"Sideways","invert":false})"),
      "unknown behavior 'Sideways'");
  require_error(with("pre_tokenizer", R"({"type":"Split","pattern":"a","behavior":"Isolated"})"),
                "key 'pattern' must be an object");
  require_error(with("pre_tokenizer",
                     R"({"type":"Metaspace","replacement":"_","prepend_scheme":"sometimes"})"),
                "unknown prepend_scheme 'sometimes'");
  require_error(with("pre_tokenizer", R"({"type":"Sequence"})"), "missing key 'pretokenizers'");
  require_error(with("normalizer", R"({"type":"Lowercase"})"),
                "unsupported normalizer type 'Lowercase'");
  require_error(with("normalizer", R"({"prepend":"x"})"), "normalizer: missing key 'type'");
  require_error(with("normalizer", R"({"type":"Prepend","prepend":3})"),
                "key 'prepend' must be a string");
  require_error(with("decoder", R"({"type":"WordPiece"})"), "unsupported decoder type 'WordPiece'");
  require_error(with("decoder", R"({"type":"Strip","content":" ","start":"one","stop":0})"),
                "key 'start' must be an integer");
  require_error(
      with(
          "post_processor",
          R"({"type":"TemplateProcessing","single":[{"SpecialToken":{"id":"<s>","type_id":0}}],"pair":[],"special_tokens":{}})"),
      "special token '<s>' is used in 'single' but missing");
  require_error(with("post_processor", R"({"type":"Nope"})"),
                "unsupported post_processor type 'Nope'");
}

TEST_CASE("a missing tokenizer file is a clear error", "[tokenizer][errors]") {
  REQUIRE_THROWS_WITH(Tokenizer::from_tokenizer_json("/nonexistent/dir/tokenizer.json"),
                      Contains("cannot open tokenizer file '/nonexistent/dir/tokenizer.json'"));
}

TEST_CASE("bad GGUF tokenizer metadata is a clear error", "[tokenizer][errors][gguf]") {
  auto load = [](const char* name) {
    return Tokenizer::from_gguf(
        vllm::GgufFile::open(vllm::test::reference_data("tokenizers") / name));
  };
  REQUIRE_THROWS_WITH(
      load("bad_model.gguf"),
      Contains("tokenizer.ggml.model 'bert' is not supported") && Contains("bad_model.gguf"));
  REQUIRE_THROWS_WITH(load("bad_pre.gguf"),
                      Contains("tokenizer.ggml.pre 'no-such-pre' is not supported"));
  REQUIRE_THROWS_WITH(load("bad_merges.gguf"),
                      Contains("uses token 'c' which is not in the vocabulary"));
  REQUIRE_THROWS_WITH(load("bad_types.gguf"), Contains("tokenizer.ggml.token_type has 1 entries"));
  REQUIRE_THROWS_WITH(load("no_tokens.gguf"), Contains("missing or empty tokenizer.ggml.tokens"));
}

TEST_CASE("tokenizer_config.json beside tokenizer.json names BOS/EOS/PAD", "[tokenizer]") {
  const auto dir =
      std::filesystem::temp_directory_path() / ("vllm_tok_config_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::filesystem::copy_file(vllm::test::reference_data("tokenizers") / "qwen2" / "tokenizer.json",
                             dir / "tokenizer.json",
                             std::filesystem::copy_options::overwrite_existing);
  {
    std::ofstream config(dir / "tokenizer_config.json");
    config
        << R"({"bos_token": null, "eos_token": {"content": "<|im_end|>"}, "pad_token": "<|endoftext|>"})";
  }
  const auto tokenizer = Tokenizer::from_tokenizer_json(dir / "tokenizer.json");
  CHECK(tokenizer.eos_token() == "<|im_end|>");
  CHECK(tokenizer.eos_token_id() == tokenizer.token_to_id("<|im_end|>"));
  CHECK(tokenizer.pad_token_id() == tokenizer.token_to_id("<|endoftext|>"));
  CHECK_FALSE(tokenizer.bos_token_id().has_value());
  CHECK(tokenizer.bos_token().empty());
  {
    std::ofstream config(dir / "tokenizer_config.json");
    config << "{not json";
  }
  REQUIRE_THROWS_WITH(Tokenizer::from_tokenizer_json(dir / "tokenizer.json"),
                      Contains("tokenizer_config.json' is not a valid JSON object"));
  std::filesystem::remove_all(dir);
}

TEST_CASE("invalid UTF-8 input is read as U+FFFD, never a crash", "[tokenizer]") {
  const auto tokenizer = Tokenizer::from_tokenizer_json(vllm::test::reference_data("tokenizers") /
                                                        "gpt2" / "tokenizer.json");
  CHECK(tokenizer.encode("\xFF abc \xE2\x82") == tokenizer.encode("\xEF\xBF\xBD abc \xEF\xBF\xBD"));
  std::string bytes;
  for (int i = 0; i < 4096; ++i) bytes.push_back(static_cast<char>((i * 7919) & 0xFF));
  const auto ids = tokenizer.encode(bytes);
  CHECK_FALSE(ids.empty());
  CHECK(tokenizer.decode(ids) == tokenizer.decode(tokenizer.encode(tokenizer.decode(ids))));
}

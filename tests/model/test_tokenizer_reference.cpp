// Tokenizers against Hugging Face `tokenizers`: ids, decoding and streaming detokenization on
// every string of the reference corpus, for every tokenizer style
// (tests/reference/make_tokenizer_vectors.py writes the data).
#include <fmt/format.h>
#include <catch2/catch.hpp>

#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/gguf.hpp"
#include "model/incremental_detokenizer.hpp"
#include "model/tokenizer.hpp"
#include "model/unicode.hpp"
#include "tests/support/test_paths.hpp"

namespace {

using vllm::Tokenizer;

std::filesystem::path data_path(const std::string& name) {
  return vllm::test::reference_data("tokenizers") / name;
}

std::vector<nlohmann::json> read_jsonl(const std::filesystem::path& path) {
  std::ifstream in(path);
  REQUIRE(in.good());
  std::vector<nlohmann::json> lines;
  std::string line;
  while (std::getline(in, line)) lines.push_back(nlohmann::json::parse(line));
  return lines;
}

const std::vector<std::string>& corpus() {
  static const std::vector<std::string> strings = [] {
    std::vector<std::string> out;
    for (const auto& j : read_jsonl(data_path("corpus.jsonl"))) out.push_back(j.get<std::string>());
    return out;
  }();
  return strings;
}

std::string show(const std::vector<int32_t>& ids) {
  return fmt::format("[{}]", fmt::join(ids, ","));
}

// Streams ids one at a time and checks every step against one-shot decoding.
void check_streaming(const Tokenizer& tokenizer, const std::vector<int32_t>& ids, bool skip_special,
                     const std::string& label, int& failures) {
  vllm::DecodeOptions options{.skip_special_tokens = skip_special};
  const std::string expected = tokenizer.decode(ids, options);
  vllm::IncrementalDetokenizer stream(tokenizer, {}, options);
  for (int32_t id : ids) {
    const std::string delta = stream.push(id);
    if (!vllm::unicode::is_valid_utf8(delta) || !expected.starts_with(stream.text())) {
      if (++failures <= 5)
        FAIL_CHECK(label << ": streamed text '" << stream.text() << "' is not a prefix of '"
                         << expected << "'");
      return;
    }
  }
  stream.finish();
  if (stream.text() != expected && ++failures <= 5)
    FAIL_CHECK(label << ": streamed '" << stream.text() << "' != one-shot '" << expected << "'");
}

// lossless: the tokenizer has no normalizer and byte-level BPE, so
// decode(encode(s, no special tokens), keep special tokens) == s must hold on every string.
void check_against_reference(const Tokenizer& tokenizer, const std::string& vectors_file,
                             bool lossless = false) {
  const auto records = read_jsonl(data_path(vectors_file));
  const auto& strings = corpus();
  REQUIRE(records.size() == strings.size() + 1);
  const auto prefix = records[0]["prefix"].get<std::vector<int32_t>>();
  const auto suffix = records[0]["suffix"].get<std::vector<int32_t>>();
  int id_failures = 0, decode_failures = 0, stream_failures = 0;
  size_t lossless_count = 0;
  for (size_t i = 0; i < strings.size(); ++i) {
    const std::string& text = strings[i];
    const auto& record = records[i + 1];
    const auto expected = record["ids"].get<std::vector<int32_t>>();
    const auto ids = tokenizer.encode(text, true);
    if (ids != expected && ++id_failures <= 5)
      FAIL_CHECK(vectors_file << " #" << i << " '" << text << "': ids " << show(ids) << " expected "
                              << show(expected));
    std::vector<int32_t> expected_plain;
    if (record.contains("plain")) {
      expected_plain = record["plain"].get<std::vector<int32_t>>();
    } else if (expected.size() >= prefix.size() + suffix.size()) {
      expected_plain.assign(expected.begin() + prefix.size(), expected.end() - suffix.size());
    }
    const auto plain = tokenizer.encode(text, false);
    if (plain != expected_plain && ++id_failures <= 5)
      FAIL_CHECK(vectors_file << " #" << i << " '" << text << "': ids without specials "
                              << show(plain) << " expected " << show(expected_plain));

    const std::string expected_decoded = record.value("dec", text);
    const std::string expected_skipped = record.value("skip", expected_decoded);
    if (!record.contains("dec")) ++lossless_count;
    const std::string decoded = tokenizer.decode(expected, false);
    const std::string skipped = tokenizer.decode(expected, true);
    if ((decoded != expected_decoded || skipped != expected_skipped) && ++decode_failures <= 5)
      FAIL_CHECK(vectors_file << " #" << i << " decode " << show(expected) << " = '" << decoded
                              << "' / '" << skipped << "' expected '" << expected_decoded << "' / '"
                              << expected_skipped << "'");
    if (lossless && tokenizer.decode(plain, false) != text && ++decode_failures <= 5)
      FAIL_CHECK(vectors_file << " #" << i << " '" << text << "' does not round-trip: '"
                              << tokenizer.decode(plain, false) << "'");
    check_streaming(tokenizer, expected, true, vectors_file + " #" + std::to_string(i),
                    stream_failures);
    check_streaming(tokenizer, expected, false, vectors_file + " #" + std::to_string(i),
                    stream_failures);
  }
  INFO(vectors_file << ": " << strings.size() << " strings, " << lossless_count
                    << " decode back to themselves");
  CHECK(id_failures == 0);
  CHECK(decode_failures == 0);
  CHECK(stream_failures == 0);
  CHECK(strings.size() >= 2000);
}

}  // namespace

TEST_CASE("tokenizer.json tokenizers match Hugging Face on the corpus", "[tokenizer][reference]") {
  struct Case {
    std::string directory, vectors;
    bool lossless;
  };
  const std::vector<Case> cases = {
      {"gpt2", "gpt2.jsonl", true},
      {"gpt2_legacy_merges", "gpt2.jsonl", true},
      {"llama3", "llama3.jsonl", true},
      {"qwen2", "qwen2.jsonl", false},  // NFC
      {"llama2", "llama2.jsonl", false},
      {"mistral", "mistral.jsonl", false},
      {"metaspace_split", "metaspace_split.jsonl", false},
      {"deepseek", "deepseek.jsonl", true},
      {"roberta_digits", "roberta_digits.jsonl", false},  // add_prefix_space, lstrip/rstrip
      {"split_behaviors", "split_behaviors.jsonl", false},
      {"claude", "claude.jsonl", false},  // NFKC
      {"falcon", "falcon.jsonl", true},
      {"whitespace_suffix", "whitespace_suffix.jsonl", false},
  };
  for (const auto& c : cases) {
    DYNAMIC_SECTION(c.directory) {
      const auto tokenizer =
          Tokenizer::from_tokenizer_json(data_path(c.directory) / "tokenizer.json");
      check_against_reference(tokenizer, c.vectors, c.lossless);
    }
  }
}

TEST_CASE("GGUF tokenizers match Hugging Face on the corpus", "[tokenizer][reference][gguf]") {
  SECTION("llama (SentencePiece-style) GGUF") {
    const auto gguf = vllm::GgufFile::open(data_path("llama_spm.gguf"));
    check_against_reference(Tokenizer::from_gguf(gguf), "llama_spm_gguf.jsonl");
  }
  SECTION("gpt2 GGUF with pre llama-bpe") {
    const auto gguf = vllm::GgufFile::open(data_path("llama3_bpe.gguf"));
    check_against_reference(Tokenizer::from_gguf(gguf), "llama3.jsonl", true);
  }
  SECTION("gpt2 GGUF with pre qwen2") {
    const auto gguf = vllm::GgufFile::open(data_path("qwen2_bpe.gguf"));
    check_against_reference(Tokenizer::from_gguf(gguf), "qwen2.jsonl");
  }
  SECTION("gpt2 GGUF with pre gpt2") {
    const auto gguf = vllm::GgufFile::open(data_path("gpt2_bpe.gguf"));
    check_against_reference(Tokenizer::from_gguf(gguf), "gpt2.jsonl", true);
  }
  SECTION("gpt2 GGUF with pre deepseek-v3") {
    const auto gguf = vllm::GgufFile::open(data_path("deepseek_bpe.gguf"));
    check_against_reference(Tokenizer::from_gguf(gguf), "deepseek.jsonl", true);
  }
  SECTION("SmolLM2 (the bundled model)") {
    const auto path = vllm::test::bundled_model_path();
    REQUIRE(std::filesystem::exists(path));
    const auto gguf = vllm::GgufFile::open(path);
    const auto tokenizer = Tokenizer::from_gguf(gguf);
    check_against_reference(tokenizer, "smollm2_gguf.jsonl", true);
    CHECK(tokenizer.vocab_size() == 49152);
    CHECK(tokenizer.bos_token_id() == 1);
    CHECK(tokenizer.eos_token_id() == 2);
    CHECK(tokenizer.bos_token() == "<|im_start|>");
    CHECK(tokenizer.eos_token() == "<|im_end|>");
    CHECK(tokenizer.is_special(2));
    CHECK_FALSE(tokenizer.is_special(100));
  }
}

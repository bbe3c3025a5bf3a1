// Tokenizer: text <-> token ids exactly as Hugging Face `tokenizers` does, built from a
// tokenizer.json or from GGUF tokenizer metadata (tokenizer.ggml.*). The pipeline is
// added tokens -> normalizer -> pre-tokenizer -> BPE model -> post-processor for encoding, and
// ids -> token strings -> decoder for decoding. All const methods are thread-safe.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "model/added_vocabulary.hpp"
#include "model/tokenizer_error.hpp"

namespace vllm {

class GgufFile;
class BpeModel;
class Normalizer;
class PreTokenizer;
class PostProcessor;
class TokenDecoder;

struct DecodeOptions {
  bool skip_special_tokens = true;
  // false: Hugging Face fast-tokenizer decoding (every token through the decoder).
  // true: the slow-tokenizer rule of transformers: text between added tokens is decoded on its
  // own and the pieces (added tokens included) are joined with single spaces.
  bool spaces_between_special_tokens = false;
};

class Tokenizer {
 public:
  // Reads a tokenizer.json file. If a tokenizer_config.json lies beside it, its bos_token,
  // eos_token and pad_token name the special tokens. Throws TokenizerError (unreadable file,
  // malformed JSON, missing or ill-typed keys, unsupported component types).
  static Tokenizer from_tokenizer_json(const std::filesystem::path& path);
  // Parses tokenizer.json text; `origin` names it in error messages.
  static Tokenizer from_json_string(std::string_view json,
                                    std::string_view origin = "tokenizer.json");
  // Builds the tokenizer from tokenizer.ggml.* metadata (model "gpt2" or "llama").
  static Tokenizer from_gguf(const GgufFile& gguf);

  // Text (UTF-8; invalid bytes are read as U+FFFD) -> ids. add_special_tokens applies the
  // post-processor (e.g. BOS); added tokens written in the text are matched either way.
  std::vector<int32_t> encode(std::string_view text, bool add_special_tokens = true) const;

  // Ids -> text. Unknown ids are skipped, as Hugging Face does.
  std::string decode(std::span<const int32_t> ids, bool skip_special_tokens = true) const;
  std::string decode(std::span<const int32_t> ids, const DecodeOptions& options) const;

  std::optional<std::string> id_to_token(int32_t id) const;
  std::optional<int32_t> token_to_id(std::string_view token) const;
  // One past the largest id (model vocabulary and added tokens).
  size_t vocab_size() const;
  bool is_special(int32_t id) const;
  bool is_added_token(int32_t id) const;
  const std::vector<AddedToken>& added_tokens() const;

  std::optional<int32_t> bos_token_id() const;
  std::optional<int32_t> eos_token_id() const;
  std::optional<int32_t> pad_token_id() const;
  // Token strings for chat templates ("" when the tokenizer has none).
  std::string bos_token() const;
  std::string eos_token() const;

  // The parts (model/tokenizer_pipeline.hpp); public only so the builders can assemble one.
  struct Impl;

 private:
  explicit Tokenizer(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<const Impl> impl_;
};

}  // namespace vllm

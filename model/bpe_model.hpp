// The BPE model: encodes one pre-tokenized word into token ids by applying ranked merges
// (Hugging Face models.BPE: unk token, fuse_unk, byte_fallback <0xXX>, ignore_merges,
// continuing_subword_prefix, end_of_word_suffix). Results are cached per word (bounded).
#pragma once

#include <array>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace vllm {

struct BpeOptions {
  std::optional<std::string> unk_token;
  std::string continuing_subword_prefix;
  std::string end_of_word_suffix;
  bool fuse_unk = false;
  bool byte_fallback = false;
  bool ignore_merges = false;
};

class BpeModel {
 public:
  // vocab: token text -> id; merges: pairs of token texts in rank order (rank = index).
  // Throws TokenizerError if a merge names a token the vocabulary lacks.
  BpeModel(std::vector<std::pair<std::string, int32_t>> vocab,
           const std::vector<std::pair<std::string, std::string>>& merges, BpeOptions options);

  // Parses a tokenizer.json "model" object of type BPE (merges as "a b" strings or [a, b]).
  static BpeModel from_json(const nlohmann::json& model);

  BpeModel(const BpeModel& other);
  BpeModel(BpeModel&& other) noexcept;

  // Appends the ids of one word. Thread-safe.
  void encode_word(std::string_view word, std::vector<int32_t>& ids) const;

  std::optional<int32_t> token_to_id(std::string_view token) const;
  // nullptr if no token has this id.
  const std::string* id_to_token(int32_t id) const;
  // One past the largest id of the model's vocabulary.
  size_t vocab_size() const { return id_to_token_.size(); }

 private:
  void merge_word(std::string_view word, std::vector<int32_t>& ids) const;

  struct StringHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  struct MergeTarget {
    int32_t rank;
    int32_t new_id;
  };

  std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>> token_to_id_;
  std::vector<std::string> id_to_token_;
  std::vector<bool> has_id_;
  std::unordered_map<uint64_t, MergeTarget> merges_;  // (left id << 32 | right id) -> target
  BpeOptions options_;
  std::optional<int32_t> unk_id_;
  std::array<int32_t, 256> byte_ids_{};  // <0xXX> token ids, -1 where absent
  // Ids of single-character tokens below U+3000 (-1 where absent): the first step of every word
  // looks characters up, and this avoids hashing each one.
  static constexpr char32_t kDirectCharLimit = 0x3000;
  std::vector<int32_t> char_ids_;

  // Per-word result cache; cleared when full to keep memory bounded. Longer words are not cached
  // (like Hugging Face, which caches words under 256 characters).
  static constexpr size_t kCacheCapacity = 50000;
  static constexpr size_t kMaxCachedWordBytes = 256;
  mutable std::mutex cache_mutex_;
  mutable std::unordered_map<std::string, std::vector<int32_t>, StringHash, std::equal_to<>> cache_;
};

}  // namespace vllm

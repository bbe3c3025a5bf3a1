#include "model/bpe_model.hpp"

#include <fmt/format.h>

#include <queue>

#include <nlohmann/json.hpp>

#include "model/json_fields.hpp"
#include "model/tokenizer_error.hpp"
#include "model/unicode.hpp"

namespace vllm {
namespace {

uint64_t pair_key(int32_t left, int32_t right) {
  return static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32 | static_cast<uint32_t>(right);
}

size_t utf8_char_length_at(std::string_view s, size_t pos) {
  const auto b = static_cast<unsigned char>(s[pos]);
  const size_t n = b < 0x80 ? 1 : b < 0xE0 ? 2 : b < 0xF0 ? 3 : 4;
  return std::min(n, s.size() - pos);
}

// A symbol of a word being merged: a doubly linked list over a vector (as Hugging Face does).
struct Symbol {
  int32_t id;
  int32_t prev;
  int32_t next;
  bool alive;
};

struct Candidate {
  int32_t rank;
  int32_t position;
  int32_t new_id;
  // Lowest rank first, then leftmost.
  bool operator<(const Candidate& other) const {
    return rank != other.rank ? rank > other.rank : position > other.position;
  }
};

}  // namespace

BpeModel::BpeModel(std::vector<std::pair<std::string, int32_t>> vocab,
                   const std::vector<std::pair<std::string, std::string>>& merges,
                   BpeOptions options)
    : options_(std::move(options)) {
  byte_ids_.fill(-1);
  int32_t max_id = -1;
  for (const auto& [token, id] : vocab) {
    if (id < 0)
      throw TokenizerError(fmt::format("BPE vocab: token '{}' has negative id {}", token, id));
    max_id = std::max(max_id, id);
  }
  id_to_token_.resize(static_cast<size_t>(max_id + 1));
  has_id_.assign(static_cast<size_t>(max_id + 1), false);
  token_to_id_.reserve(vocab.size());
  for (auto& [token, id] : vocab) {
    id_to_token_[id] = token;
    has_id_[id] = true;
    token_to_id_[std::move(token)] = id;
  }
  for (int b = 0; b < 256; ++b) {
    if (auto id = token_to_id(fmt::format("<0x{:02X}>", b))) byte_ids_[b] = *id;
  }
  char_ids_.assign(kDirectCharLimit, -1);
  for (const auto& [token, id] : token_to_id_) {
    char32_t c = 0;
    if (!token.empty() && unicode::decode_utf8(token, 0, &c) == token.size() &&
        c < kDirectCharLimit)
      char_ids_[c] = id;
  }
  if (options_.unk_token) {
    unk_id_ = token_to_id(*options_.unk_token);
    if (!unk_id_)
      throw TokenizerError(
          fmt::format("BPE: unk_token '{}' is not in the vocabulary", *options_.unk_token));
  }
  merges_.reserve(merges.size());
  const size_t prefix_length = options_.continuing_subword_prefix.size();
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const auto& [left, right] = merges[rank];
    const auto left_id = token_to_id(left);
    const auto right_id = token_to_id(right);
    if (!left_id || !right_id) {
      throw TokenizerError(fmt::format(
          "BPE merges: merge #{} '{} {}' uses token '{}' which is not in the vocabulary", rank,
          left, right, !left_id ? left : right));
    }
    std::string merged = left;
    merged.append(right.size() >= prefix_length &&
                          right.starts_with(options_.continuing_subword_prefix)
                      ? std::string_view(right).substr(prefix_length)
                      : std::string_view(right));
    const auto new_id = token_to_id(merged);
    if (!new_id) {
      throw TokenizerError(
          fmt::format("BPE merges: merge #{} '{} {}' produces '{}' which is not in the vocabulary",
                      rank, left, right, merged));
    }
    merges_.insert_or_assign(pair_key(*left_id, *right_id),
                             MergeTarget{static_cast<int32_t>(rank), *new_id});
  }
}

BpeModel::BpeModel(const BpeModel& other)
    : token_to_id_(other.token_to_id_),
      id_to_token_(other.id_to_token_),
      has_id_(other.has_id_),
      merges_(other.merges_),
      options_(other.options_),
      unk_id_(other.unk_id_),
      byte_ids_(other.byte_ids_),
      char_ids_(other.char_ids_) {}

BpeModel::BpeModel(BpeModel&& other) noexcept
    : token_to_id_(std::move(other.token_to_id_)),
      id_to_token_(std::move(other.id_to_token_)),
      has_id_(std::move(other.has_id_)),
      merges_(std::move(other.merges_)),
      options_(std::move(other.options_)),
      unk_id_(other.unk_id_),
      byte_ids_(other.byte_ids_),
      char_ids_(std::move(other.char_ids_)) {}

BpeModel BpeModel::from_json(const nlohmann::json& model) {
  constexpr std::string_view where = "model (BPE)";
  const auto& vocab_json = json_fields::get_object(model, "vocab", where);
  std::vector<std::pair<std::string, int32_t>> vocab;
  vocab.reserve(vocab_json.size());
  for (const auto& [token, id] : vocab_json.items()) {
    if (!id.is_number_integer())
      throw TokenizerError(fmt::format("{}: vocab entry '{}' must map to an integer id, got {}",
                                       where, token, id.dump()));
    vocab.emplace_back(token, id.get<int32_t>());
  }
  std::vector<std::pair<std::string, std::string>> merges;
  if (model.contains("merges")) {
    const auto& merges_json = json_fields::get_array(model, "merges", where);
    merges.reserve(merges_json.size());
    for (size_t i = 0; i < merges_json.size(); ++i) {
      const auto& m = merges_json[i];
      if (m.is_string()) {
        // Legacy form "a b": split at the first space (tokens never contain a plain space here).
        const auto& s = m.get_ref<const std::string&>();
        const size_t space = s.find(' ');
        if (space == std::string::npos)
          throw TokenizerError(
              fmt::format("{}: merge #{} '{}' is not of the form 'left right'", where, i, s));
        merges.emplace_back(s.substr(0, space), s.substr(space + 1));
      } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
        merges.emplace_back(m[0].get<std::string>(), m[1].get<std::string>());
      } else {
        throw TokenizerError(fmt::format(
            "{}: merge #{} must be a string 'left right' or a pair [left, right], got {}", where, i,
            m.dump()));
      }
    }
  }
  BpeOptions options;
  if (model.contains("unk_token") && !model["unk_token"].is_null())
    options.unk_token = json_fields::get_string(model, "unk_token", where);
  options.continuing_subword_prefix =
      json_fields::get_string_or(model, "continuing_subword_prefix", "", where);
  options.end_of_word_suffix = json_fields::get_string_or(model, "end_of_word_suffix", "", where);
  options.fuse_unk = json_fields::get_bool(model, "fuse_unk", false);
  options.byte_fallback = json_fields::get_bool(model, "byte_fallback", false);
  options.ignore_merges = json_fields::get_bool(model, "ignore_merges", false);
  return BpeModel(std::move(vocab), merges, std::move(options));
}

std::optional<int32_t> BpeModel::token_to_id(std::string_view token) const {
  const auto it = token_to_id_.find(token);
  if (it == token_to_id_.end()) return std::nullopt;
  return it->second;
}

const std::string* BpeModel::id_to_token(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= id_to_token_.size() || !has_id_[id]) return nullptr;
  return &id_to_token_[id];
}

void BpeModel::encode_word(std::string_view word, std::vector<int32_t>& ids) const {
  if (word.empty()) return;
  if (options_.ignore_merges) {
    if (auto id = token_to_id(word)) {
      ids.push_back(*id);
      return;
    }
  }
  {
    std::lock_guard lock(cache_mutex_);
    if (const auto it = cache_.find(word); it != cache_.end()) {
      ids.insert(ids.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<int32_t> result;
  merge_word(word, result);
  ids.insert(ids.end(), result.begin(), result.end());
  if (word.size() > kMaxCachedWordBytes) return;
  std::lock_guard lock(cache_mutex_);
  if (cache_.size() >= kCacheCapacity) cache_.clear();
  cache_.emplace(std::string(word), std::move(result));
}

void BpeModel::merge_word(std::string_view word, std::vector<int32_t>& ids) const {
  std::vector<Symbol> symbols;
  symbols.reserve(word.size());
  auto add = [&](int32_t id) {
    symbols.push_back({id, static_cast<int32_t>(symbols.size()) - 1, -1, true});
  };
  int32_t pending_unk = -1;  // an unknown run not yet emitted (fuse_unk joins runs)
  std::string piece;
  for (size_t pos = 0; pos < word.size();) {
    const size_t length = utf8_char_length_at(word, pos);
    const bool first = pos == 0, last = pos + length >= word.size();
    std::string_view ch = word.substr(pos, length);
    pos += length;
    std::string_view key = ch;
    if ((!first && !options_.continuing_subword_prefix.empty()) ||
        (last && !options_.end_of_word_suffix.empty())) {
      piece.clear();
      if (!first) piece += options_.continuing_subword_prefix;
      piece += ch;
      if (last) piece += options_.end_of_word_suffix;
      key = piece;
    }
    std::optional<int32_t> id;
    if (key.data() == ch.data()) {
      char32_t c = 0;
      if (unicode::decode_utf8(ch, 0, &c) == ch.size() && c < kDirectCharLimit) {
        if (char_ids_[c] >= 0) id = char_ids_[c];
      } else {
        id = token_to_id(key);
      }
    } else {
      id = token_to_id(key);
    }
    if (id) {
      if (pending_unk >= 0) {
        add(pending_unk);
        pending_unk = -1;
      }
      add(*id);
      continue;
    }
    if (options_.byte_fallback) {
      bool all_bytes = true;
      for (char b : key) all_bytes = all_bytes && byte_ids_[static_cast<unsigned char>(b)] >= 0;
      if (all_bytes) {
        // Hugging Face emits the bytes without first flushing a pending unknown run.
        for (char b : key) add(byte_ids_[static_cast<unsigned char>(b)]);
        continue;
      }
    }
    if (unk_id_) {
      if (pending_unk >= 0 && !options_.fuse_unk) add(pending_unk);
      pending_unk = *unk_id_;
    }
    // Without an unk token an unknown character is dropped, as Hugging Face does.
  }
  if (pending_unk >= 0) add(pending_unk);
  for (size_t i = 0; i + 1 < symbols.size(); ++i) symbols[i].next = static_cast<int32_t>(i + 1);

  auto lookup = [&](int32_t left, int32_t right) -> const MergeTarget* {
    const auto it = merges_.find(pair_key(left, right));
    return it == merges_.end() ? nullptr : &it->second;
  };
  std::priority_queue<Candidate> queue;
  for (size_t i = 0; i + 1 < symbols.size(); ++i) {
    if (const auto* m = lookup(symbols[i].id, symbols[i + 1].id))
      queue.push({m->rank, static_cast<int32_t>(i), m->new_id});
  }
  while (!queue.empty()) {
    const Candidate top = queue.top();
    queue.pop();
    Symbol& current = symbols[top.position];
    if (!current.alive || current.next < 0) continue;
    const int32_t next_position = current.next;
    Symbol& right = symbols[next_position];
    const auto* m = lookup(current.id, right.id);
    if (m == nullptr || m->new_id != top.new_id) continue;  // a stale candidate
    current.id = top.new_id;
    current.next = right.next;
    right.alive = false;
    if (right.next >= 0) symbols[right.next].prev = top.position;
    if (current.prev >= 0) {
      if (const auto* p = lookup(symbols[current.prev].id, current.id))
        queue.push({p->rank, current.prev, p->new_id});
    }
    if (current.next >= 0) {
      if (const auto* n = lookup(current.id, symbols[current.next].id))
        queue.push({n->rank, top.position, n->new_id});
    }
  }
  for (const auto& s : symbols)
    if (s.alive) ids.push_back(s.id);
}

}  // namespace vllm

// Post-processors of tokenizer.json ("post_processor"): add the model's special tokens around
// an encoded sequence (TemplateProcessing, RobertaProcessing, BertProcessing; ByteLevel adds
// nothing to ids; Sequence chains them).
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace vllm {

class PostProcessor {
 public:
  // Parses a tokenizer.json post_processor object; throws TokenizerError naming what is wrong.
  static PostProcessor from_json(const nlohmann::json& json);
  // Adds optional BOS before and EOS after every single sequence (GGUF add_bos/add_eos).
  static PostProcessor bos_eos(std::optional<int32_t> bos, std::optional<int32_t> eos);

  // Ids of a single sequence with the special tokens added.
  std::vector<int32_t> process(std::vector<int32_t> ids) const;

  // The id added first, if any (a template's leading special token is the BOS token).
  std::optional<int32_t> leading_special_id() const;

 private:
  // A template item: special token ids, or the sequence itself (empty ids, is_sequence).
  struct Item {
    bool is_sequence = false;
    std::vector<int32_t> ids;
  };
  std::vector<Item> items_{Item{true, {}}};
  std::vector<PostProcessor> steps_;  // Sequence
};

}  // namespace vllm

#include "model/post_processor.hpp"

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "model/json_fields.hpp"
#include "model/tokenizer_error.hpp"

namespace vllm {
namespace {

int32_t pair_id(const nlohmann::json& json, const char* key, std::string_view where) {
  const auto& pair = json_fields::get_array(json, key, where);
  if (pair.size() != 2 || !pair[1].is_number_integer())
    throw TokenizerError(
        fmt::format("{}: '{}' must be [token, id], got {}", where, key, pair.dump()));
  return pair[1].get<int32_t>();
}

}  // namespace

PostProcessor PostProcessor::from_json(const nlohmann::json& json) {
  const std::string type = json_fields::get_string(json, "type", "post_processor");
  PostProcessor p;
  if (type == "ByteLevel") return p;  // only trims offsets, which ids do not carry
  if (type == "TemplateProcessing") {
    constexpr std::string_view where = "post_processor TemplateProcessing";
    const auto& specials = json_fields::get_object(json, "special_tokens", where);
    p.items_.clear();
    for (const auto& piece : json_fields::get_array(json, "single", where)) {
      if (piece.contains("Sequence")) {
        p.items_.push_back({true, {}});
      } else if (piece.contains("SpecialToken")) {
        const std::string name = json_fields::get_string(piece["SpecialToken"], "id", where);
        if (!specials.contains(name))
          throw TokenizerError(
              fmt::format("{}: special token '{}' is used in 'single' but missing "
                          "from 'special_tokens'",
                          where, name));
        Item item;
        for (const auto& id : json_fields::get_array(specials[name], "ids", where)) {
          if (!id.is_number_integer())
            throw TokenizerError(fmt::format("{}: ids of '{}' must be integers", where, name));
          item.ids.push_back(id.get<int32_t>());
        }
        p.items_.push_back(std::move(item));
      } else {
        throw TokenizerError(fmt::format("{}: unknown template piece {}", where, piece.dump()));
      }
    }
    return p;
  }
  if (type == "RobertaProcessing" || type == "BertProcessing") {
    const std::string where = "post_processor " + type;
    p.items_ = {Item{false, {pair_id(json, "cls", where)}}, Item{true, {}},
                Item{false, {pair_id(json, "sep", where)}}};
    return p;
  }
  if (type == "Sequence") {
    p.items_ = {Item{true, {}}};
    for (const auto& step : json_fields::get_array(json, "processors", "post_processor Sequence"))
      p.steps_.push_back(from_json(step));
    return p;
  }
  throw TokenizerError(
      fmt::format("unsupported post_processor type '{}' (supported: TemplateProcessing, ByteLevel, "
                  "RobertaProcessing, BertProcessing, Sequence)",
                  type));
}

PostProcessor PostProcessor::bos_eos(std::optional<int32_t> bos, std::optional<int32_t> eos) {
  PostProcessor p;
  p.items_.clear();
  if (bos) p.items_.push_back({false, {*bos}});
  p.items_.push_back({true, {}});
  if (eos) p.items_.push_back({false, {*eos}});
  return p;
}

std::vector<int32_t> PostProcessor::process(std::vector<int32_t> ids) const {
  if (!steps_.empty()) {
    for (const auto& step : steps_) ids = step.process(std::move(ids));
    return ids;
  }
  std::vector<int32_t> out;
  out.reserve(ids.size() + 4);
  for (const auto& item : items_) {
    if (item.is_sequence)
      out.insert(out.end(), ids.begin(), ids.end());
    else
      out.insert(out.end(), item.ids.begin(), item.ids.end());
  }
  return out;
}

std::optional<int32_t> PostProcessor::leading_special_id() const {
  if (!steps_.empty()) {
    for (const auto& step : steps_)
      if (auto id = step.leading_special_id()) return id;
    return std::nullopt;
  }
  if (!items_.empty() && !items_.front().is_sequence && !items_.front().ids.empty())
    return items_.front().ids.front();
  return std::nullopt;
}

}  // namespace vllm

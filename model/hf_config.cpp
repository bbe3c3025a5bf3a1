#include "model/hf_config.hpp"

#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "model/model_load_error.hpp"
#include "runtime/logging.hpp"

namespace vllm {

namespace {

using Json = nlohmann::json;

class ConfigReader {
 public:
  ConfigReader(const Json& config, const std::filesystem::path& source)
      : config_(config), source_(source) {}

  [[noreturn]] void fail(const std::string& problem) const {
    throw ModelLoadError(source_, problem);
  }

  // A present, non-null field.
  const Json* field(const char* key) const {
    const auto it = config_.find(key);
    return (it == config_.end() || it->is_null()) ? nullptr : &*it;
  }

  int64_t integer(const char* key) const {
    const Json* value = field(key);
    if (value == nullptr) fail(std::string("missing required field '") + key + "'");
    return as_integer(*value, key);
  }

  int64_t integer_or(const char* key, int64_t fallback) const {
    const Json* value = field(key);
    return value == nullptr ? fallback : as_integer(*value, key);
  }

  int64_t as_integer(const Json& value, const std::string& key) const {
    if (!value.is_number_integer())
      fail("field '" + key + "' must be an integer, found " + value.dump());
    return value.get<int64_t>();
  }

  double number_or(const Json& object, const char* key, double fallback,
                   const std::string& where) const {
    const auto it = object.find(key);
    if (it == object.end() || it->is_null()) return fallback;
    if (!it->is_number()) fail("field '" + where + key + "' must be a number, found " + it->dump());
    return it->get<double>();
  }

  double number_or(const char* key, double fallback) const {
    return number_or(config_, key, fallback, "");
  }

  bool boolean_or(const char* key, bool fallback) const {
    const Json* value = field(key);
    if (value == nullptr) return fallback;
    if (!value->is_boolean()) fail(std::string("field '") + key + "' must be true or false");
    return value->get<bool>();
  }

  std::string string_or(const char* key, const std::string& fallback) const {
    const Json* value = field(key);
    if (value == nullptr) return fallback;
    if (!value->is_string()) fail(std::string("field '") + key + "' must be a string");
    return value->get<std::string>();
  }

  // An int or a list of ints (eos_token_id may be either).
  std::vector<int64_t> integer_list(const char* key) const {
    const Json* value = field(key);
    if (value == nullptr) return {};
    if (value->is_array()) {
      std::vector<int64_t> ids;
      for (const auto& item : *value) ids.push_back(as_integer(item, key));
      return ids;
    }
    return {as_integer(*value, key)};
  }

 private:
  const Json& config_;
  const std::filesystem::path& source_;
};

RopeScaling parse_rope_scaling(const ConfigReader& reader, const Json& scaling) {
  RopeScaling rope;
  if (!scaling.is_object()) reader.fail("field 'rope_scaling' must be an object or null");
  std::string type = "default";
  for (const char* key : {"rope_type", "type"}) {
    const auto it = scaling.find(key);
    if (it != scaling.end() && it->is_string()) {
      type = it->get<std::string>();
      break;
    }
  }
  if (type == "default") return rope;
  const std::string where = "rope_scaling.";
  if (type == "linear") {
    rope.type = RopeScaling::Type::kLinear;
    rope.factor = reader.number_or(scaling, "factor", 1.0, where);
  } else if (type == "llama3") {
    rope.type = RopeScaling::Type::kLlama3;
    rope.factor = reader.number_or(scaling, "factor", 8.0, where);
    rope.low_freq_factor = reader.number_or(scaling, "low_freq_factor", 1.0, where);
    rope.high_freq_factor = reader.number_or(scaling, "high_freq_factor", 4.0, where);
    rope.original_max_position_embeddings = static_cast<int64_t>(
        reader.number_or(scaling, "original_max_position_embeddings", 8192, where));
    if (rope.high_freq_factor <= rope.low_freq_factor) {
      reader.fail("rope_scaling: high_freq_factor must exceed low_freq_factor");
    }
  } else {
    reader.fail("unsupported rope_scaling type '" + type + "' (supported: linear, llama3)");
  }
  if (rope.factor <= 0) reader.fail("rope_scaling.factor must be positive");
  return rope;
}

}  // namespace

ModelConfig parse_hf_config(const Json& json, const std::filesystem::path& source) {
  const ConfigReader reader(json, source);
  if (!json.is_object()) reader.fail("config.json must hold a JSON object");
  ModelConfig config;

  const Json* architectures = reader.field("architectures");
  if (architectures == nullptr || !architectures->is_array() || architectures->empty() ||
      !(*architectures)[0].is_string()) {
    reader.fail("missing 'architectures' (expected e.g. [\"LlamaForCausalLM\"])");
  }
  config.architecture = (*architectures)[0].get<std::string>();
  const bool is_qwen2 = config.architecture == "Qwen2ForCausalLM";
  if (config.architecture != "LlamaForCausalLM" && config.architecture != "MistralForCausalLM" &&
      !is_qwen2) {
    reader.fail("unsupported architecture '" + config.architecture +
                "' (supported: LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM)");
  }

  config.vocab_size = reader.integer("vocab_size");
  config.hidden_size = reader.integer("hidden_size");
  config.intermediate_size = reader.integer("intermediate_size");
  config.num_hidden_layers = reader.integer("num_hidden_layers");
  config.num_attention_heads = reader.integer("num_attention_heads");
  config.num_key_value_heads = reader.integer_or("num_key_value_heads", config.num_attention_heads);
  for (const auto& [name, value] :
       {std::pair{"vocab_size", config.vocab_size}, std::pair{"hidden_size", config.hidden_size},
        std::pair{"intermediate_size", config.intermediate_size},
        std::pair{"num_hidden_layers", config.num_hidden_layers},
        std::pair{"num_attention_heads", config.num_attention_heads},
        std::pair{"num_key_value_heads", config.num_key_value_heads}}) {
    if (value <= 0) reader.fail(std::string("field '") + name + "' must be positive");
  }
  if (config.num_attention_heads % config.num_key_value_heads != 0) {
    reader.fail("num_attention_heads (" + std::to_string(config.num_attention_heads) +
                ") is not a multiple of num_key_value_heads (" +
                std::to_string(config.num_key_value_heads) + ")");
  }
  const int64_t default_head_dim = config.hidden_size / config.num_attention_heads;
  config.head_dim = reader.integer_or("head_dim", default_head_dim);
  if (config.head_dim <= 0 || config.head_dim % 2 != 0) {
    reader.fail("head_dim " + std::to_string(config.head_dim) + " must be positive and even");
  }
  config.max_position_embeddings = reader.integer_or("max_position_embeddings", 2048);
  config.rms_norm_eps = reader.number_or("rms_norm_eps", 1e-6);  // HF's default for all three
  config.tie_word_embeddings = reader.boolean_or("tie_word_embeddings", false);

  // transformers >= 5 moves rope_theta and the scaling into "rope_parameters".
  config.rope_theta = reader.number_or("rope_theta", 10000.0);
  if (const Json* parameters = reader.field("rope_parameters")) {
    config.rope_theta =
        reader.number_or(*parameters, "rope_theta", config.rope_theta, "rope_parameters.");
    config.rope_scaling = parse_rope_scaling(reader, *parameters);
  }
  if (const Json* scaling = reader.field("rope_scaling")) {
    config.rope_scaling = parse_rope_scaling(reader, *scaling);
  }

  // Qwen2 always has a bias on q/k/v (and none on o_proj); Llama's attention_bias would also put
  // one on o_proj, which LlamaWeights does not carry.
  config.attention_bias = is_qwen2;
  if (!is_qwen2 && reader.boolean_or("attention_bias", false)) {
    reader.fail("attention_bias=true (a bias on o_proj too) is not supported for " +
                config.architecture);
  }
  if (reader.boolean_or("mlp_bias", false)) reader.fail("mlp_bias=true is not supported");
  const std::string activation = reader.string_or("hidden_act", "silu");
  if (activation != "silu") {
    reader.fail("unsupported hidden_act '" + activation + "' (the Llama family uses silu)");
  }
  const bool sliding = is_qwen2 ? reader.boolean_or("use_sliding_window", false)
                                : reader.field("sliding_window") != nullptr;
  if (sliding) {
    logger("model")->warn(
        "{}: sliding_window attention is not implemented; attending to the full "
        "context (exact for sequences up to the window)",
        source.string());
  }

  config.bos_token_id = reader.integer_or("bos_token_id", -1);
  config.eos_token_ids = reader.integer_list("eos_token_id");
  return config;
}

namespace {

Json read_json_file(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) throw ModelLoadError(path, "cannot open file");
  try {
    return Json::parse(in);
  } catch (const Json::exception& error) {
    throw ModelLoadError(path, std::string("invalid JSON: ") + error.what());
  }
}

}  // namespace

ModelConfig load_hf_config(const std::filesystem::path& config_json) {
  return parse_hf_config(read_json_file(config_json), config_json);
}

GenerationDefaults load_generation_defaults(const std::filesystem::path& path) {
  GenerationDefaults defaults;
  if (!std::filesystem::exists(path)) return defaults;
  const Json json = read_json_file(path);
  const ConfigReader reader(json, path);
  if (!json.is_object()) reader.fail("generation_config.json must hold a JSON object");
  auto number = [&](const char* key) -> std::optional<float> {
    const Json* value = reader.field(key);
    if (value == nullptr) return std::nullopt;
    if (!value->is_number()) reader.fail(std::string("field '") + key + "' must be a number");
    return value->get<float>();
  };
  auto integer = [&](const char* key) -> std::optional<int> {
    const Json* value = reader.field(key);
    if (value == nullptr) return std::nullopt;
    return static_cast<int>(reader.as_integer(*value, key));
  };
  defaults.temperature = number("temperature");
  defaults.top_p = number("top_p");
  defaults.top_k = integer("top_k");
  defaults.min_p = number("min_p");
  defaults.repetition_penalty = number("repetition_penalty");
  defaults.max_new_tokens = integer("max_new_tokens");
  defaults.eos_token_ids = reader.integer_list("eos_token_id");
  return defaults;
}

}  // namespace vllm

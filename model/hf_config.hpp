// Hugging Face model directories: config.json -> ModelConfig (Llama family: LlamaForCausalLM,
// MistralForCausalLM, Qwen2ForCausalLM) and generation_config.json -> GenerationDefaults.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "model/model_config.hpp"

namespace vllm {

// A checkpoint's recommended sampling defaults (generation_config.json, or GGUF
// general.sampling.*). Only the fields the file sets are present, as vLLM applies them.
struct GenerationDefaults {
  std::optional<float> temperature;
  std::optional<float> top_p;
  std::optional<int> top_k;
  std::optional<float> min_p;
  std::optional<float> repetition_penalty;
  std::optional<int> max_new_tokens;
  std::vector<int64_t> eos_token_ids;  // empty when not set
};

// Parses a config.json object; `source` names the file in errors. Throws ModelLoadError for an
// unsupported architecture or rope scaling, a missing or ill-typed field.
ModelConfig parse_hf_config(const nlohmann::json& config, const std::filesystem::path& source);

// Reads and parses a config.json file. Throws ModelLoadError (missing file, bad JSON, ...).
ModelConfig load_hf_config(const std::filesystem::path& config_json);

// Reads generation_config.json; a missing file gives empty defaults.
GenerationDefaults load_generation_defaults(const std::filesystem::path& generation_config_json);

}  // namespace vllm

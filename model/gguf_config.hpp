// GGUF metadata -> ModelConfig: the `llama.*` (or `qwen2.*`) hyper-parameters, the tokenizer's
// special ids, and whether the output projection is tied to the embedding (no output.weight).
#pragma once

#include "model/gguf.hpp"
#include "model/hf_config.hpp"
#include "model/model_config.hpp"

namespace vllm {

// Throws ModelLoadError (naming the file) for an unsupported architecture, a missing required
// key or an unsupported rope scaling.
ModelConfig model_config_from_gguf(const GgufFile& file);

// general.sampling.* (newer GGUF writers record the model's recommended sampling) and the
// tokenizer's eos id.
GenerationDefaults generation_defaults_from_gguf(const GgufFile& file);

}  // namespace vllm

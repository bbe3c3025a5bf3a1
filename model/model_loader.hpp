// Model loading: a checkpoint path (GGUF file, Hugging Face directory with config.json and
// safetensors, or --load-format dummy) -> ModelConfig and LlamaWeights (fp32, Hugging Face
// layout). Both real formats give identical weights for the same model: GGUF tensors are
// dequantized exactly as GGML defines them and their rope-permuted Q/K rows are put back in
// Hugging Face order.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string_view>

#include "model/hf_config.hpp"
#include "model/llama_checkpoint.hpp"
#include "model/llama_weights.hpp"
#include "model/model_config.hpp"

namespace vllm {

enum class LoadFormat { kAuto, kGguf, kSafetensors, kDummy };

// "auto" | "gguf" | "safetensors" | "dummy" (vLLM's --load-format names). Throws
// std::invalid_argument for any other name.
LoadFormat parse_load_format(std::string_view name);
std::string_view load_format_name(LoadFormat format);

struct LoadOptions {
  int num_threads = 0;  // dequantization / fill threads; 0: all hardware threads
  uint64_t seed = 0;    // dummy weights only
  // load_llama_checkpoint, GGUF only: keep Q4_0/Q4_1/Q5_0/Q5_1/Q8_0 matrices (linear layers,
  // embedding, LM head) in their blocks for the quantized kernel; false: everything fp32.
  bool keep_quantized = true;
};

// The format `auto` resolves to for this path: a directory or a *.safetensors / config.json file
// is safetensors, a file starting with the GGUF magic is GGUF. Throws ModelLoadError otherwise.
LoadFormat detect_load_format(const std::filesystem::path& path);

// The hyper-parameters of the model at `path`: a GGUF file, a Hugging Face directory, or its
// config.json. Throws ModelLoadError.
ModelConfig load_model_config(const std::filesystem::path& path);

// The checkpoint's sampling defaults (generation_config.json beside config.json, or GGUF
// general.sampling.*); empty when it has none.
GenerationDefaults load_model_generation_defaults(const std::filesystem::path& path);

// Loads every weight of a Llama-family model as fp32. With kDummy, `path` only supplies the
// config (any of the forms load_model_config takes). Throws ModelLoadError naming the file and
// the problem: missing tensor or shard, shape that disagrees with the config, unsupported type.
LlamaWeights load_llama_weights(const std::filesystem::path& path_or_dir,
                                LoadFormat format = LoadFormat::kAuto,
                                const LoadOptions& options = {});

// load_llama_weights, keeping GGUF block-quantized matrices as blocks (options.keep_quantized).
// safetensors and dummy checkpoints come back all fp32, as from load_llama_weights.
LlamaCheckpoint load_llama_checkpoint(const std::filesystem::path& path_or_dir,
                                      LoadFormat format = LoadFormat::kAuto,
                                      const LoadOptions& options = {});

// Random weights of the config's shapes (vLLM's dummy format; see dummy_weights.hpp, which a
// GPU loader can use chunk by chunk without fp32 host tensors): linear layers, embeddings and
// biases uniform in [-0.02, 0.02], norm weights in [0.98, 1.02]. Deterministic in (config,
// seed), whatever the thread count.
LlamaWeights make_dummy_llama_weights(const ModelConfig& config, const LoadOptions& options = {});

}  // namespace vllm

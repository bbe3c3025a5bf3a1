#include "model/model_loader.hpp"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <fstream>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "model/dummy_weights.hpp"
#include "model/gguf.hpp"
#include "model/gguf_config.hpp"
#include "model/gguf_dequantize.hpp"
#include "model/linear_weight.hpp"
#include "model/llama_weight_specs.hpp"
#include "model/model_load_error.hpp"
#include "model/safetensors.hpp"
#include "runtime/logging.hpp"

namespace vllm {

namespace {

namespace fs = std::filesystem;

int resolve_threads(int requested) {
  if (requested > 0) return requested;
  return std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
}

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string text = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    text += (i ? ", " : "") + std::to_string(shape[i]);
  }
  return text + "]";
}

void convert_into(HostTensor& dest, const std::vector<int64_t>& shape, GgmlType type,
                  std::span<const std::byte> src, int threads) {
  dest.shape = shape;
  dest.data.resize(static_cast<std::size_t>(dest.numel()));
  dequantize_parallel(type, src, dest.data, threads);
}

// GGUF's llama converter permutes each head's Q/K rows from Hugging Face's [2][head_dim/2]
// (rotate-half pairs) to [head_dim/2][2] (interleaved pairs); this undoes it, as transformers'
// GGUF loader does: HF row (h, j, i) = GGUF row (h, i, j). Rows are moved whole, so it works on
// fp32 rows and on rows of quantized blocks alike.
void unpermute_rope_rows(std::byte* data, int64_t rows, int64_t row_bytes, int64_t num_heads) {
  const int64_t head_dim = rows / num_heads;
  const int64_t half = head_dim / 2;
  const std::vector<std::byte> gguf(data, data + rows * row_bytes);
  for (int64_t h = 0; h < num_heads; ++h) {
    for (int64_t i = 0; i < half; ++i) {
      for (int64_t j = 0; j < 2; ++j) {
        const int64_t hf_row = h * head_dim + j * half + i;
        const int64_t gguf_row = h * head_dim + i * 2 + j;
        std::memcpy(data + hf_row * row_bytes, gguf.data() + gguf_row * row_bytes, row_bytes);
      }
    }
  }
}

void unpermute_rope_rows(HostTensor& tensor, int64_t num_heads) {
  const int64_t rows = tensor.shape[0];
  const int64_t row_length = tensor.shape.size() > 1 ? tensor.shape[1] : 1;
  unpermute_rope_rows(reinterpret_cast<std::byte*>(tensor.data.data()), rows,
                      row_length * static_cast<int64_t>(sizeof(float)), num_heads);
}

// A GGUF matrix the quantized kernel computes directly: its blocks, copied out of the mapping.
LinearWeight quantized_linear_weight(const std::vector<int64_t>& shape, cpu::BlockQuantType type,
                                     std::span<const std::byte> data) {
  LinearWeight weight;
  weight.out_features = shape[0];
  weight.in_features = shape[1];
  weight.block_type = type;
  const auto* bytes = reinterpret_cast<const uint8_t*>(data.data());
  weight.blocks.assign(bytes, bytes + data.size());
  return weight;
}

LlamaCheckpoint load_gguf_checkpoint(const fs::path& path, int threads, bool keep_quantized) {
  const GgufFile file = GgufFile::open(path);
  LlamaCheckpoint checkpoint;
  LlamaWeights& weights = checkpoint.weights;
  weights.config = model_config_from_gguf(file);
  const bool permuted = file.get_string("general.architecture") == "llama";
  weights.layers.resize(static_cast<std::size_t>(weights.config.num_hidden_layers));
  for (const LlamaWeightSpec& slot : llama_weight_specs(weights.config)) {
    HostTensor& dest = weight_tensor(weights, slot);
    const GgufTensorInfo* tensor = file.find_tensor(slot.gguf_name);
    if (tensor == nullptr) {
      throw ModelLoadError(path, "missing tensor '" + slot.gguf_name + "'");
    }
    if (tensor->shape() != slot.shape) {
      throw ModelLoadError(
          path, "tensor '" + slot.gguf_name + "' has shape " + shape_string(tensor->shape()) +
                    ", but the model's metadata implies " + shape_string(slot.shape));
    }
    if (!can_dequantize(tensor->type)) {
      throw ModelLoadError(path, "tensor '" + slot.gguf_name + "' has type " +
                                     ggml_type_name(tensor->type) +
                                     ", which cannot be dequantized (supported: F32, F16, BF16, "
                                     "Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, "
                                     "IQ4_NL, IQ4_XS)");
    }
    const std::optional<cpu::BlockQuantType> block_type = kernel_block_type(tensor->type);
    if (keep_quantized && block_type && slot.shape.size() == 2 && !slot.is_norm &&
        slot.shape[1] % cpu::kQuantBlockElements == 0) {
      LinearWeight weight =
          quantized_linear_weight(slot.shape, *block_type, file.tensor_data(*tensor));
      if (permuted && slot.rope_heads > 0) {
        unpermute_rope_rows(reinterpret_cast<std::byte*>(weight.blocks.data()), weight.out_features,
                            weight.row_bytes(), slot.rope_heads);
      }
      checkpoint.quantized.emplace(slot.hf_name, std::move(weight));
      continue;
    }
    convert_into(dest, slot.shape, tensor->type, file.tensor_data(*tensor), threads);
    if (permuted && slot.rope_heads > 0) unpermute_rope_rows(dest, slot.rope_heads);
  }
  return checkpoint;
}

fs::path model_directory(const fs::path& path) {
  return fs::is_directory(path) ? path : path.parent_path();
}

LlamaWeights load_safetensors_weights(const fs::path& path, int threads) {
  const fs::path dir = model_directory(path);
  LlamaWeights weights;
  weights.config = load_hf_config(dir / "config.json");
  const SafetensorsCheckpoint checkpoint = SafetensorsCheckpoint::open(dir);
  weights.layers.resize(static_cast<std::size_t>(weights.config.num_hidden_layers));
  for (const LlamaWeightSpec& slot : llama_weight_specs(weights.config)) {
    const auto* entry = checkpoint.find(slot.hf_name);
    if (entry == nullptr) {
      throw ModelLoadError(dir, "checkpoint lacks tensor '" + slot.hf_name + "'");
    }
    const SafetensorsTensorInfo& info = *entry->info;
    if (info.shape != slot.shape) {
      throw ModelLoadError(entry->file->path(),
                           "tensor '" + slot.hf_name + "' has shape " + shape_string(info.shape) +
                               ", but config.json implies " + shape_string(slot.shape));
    }
    GgmlType type;
    if (info.dtype == "F32") {
      type = GgmlType::kF32;
    } else if (info.dtype == "F16") {
      type = GgmlType::kF16;
    } else if (info.dtype == "BF16") {
      type = GgmlType::kBF16;
    } else {
      throw ModelLoadError(entry->file->path(), "tensor '" + slot.hf_name + "' has dtype " +
                                                    info.dtype + " (supported: F32, F16, BF16)");
    }
    convert_into(weight_tensor(weights, slot), slot.shape, type, entry->file->data(info), threads);
  }
  return weights;
}

}  // namespace

LoadFormat parse_load_format(std::string_view name) {
  if (name == "auto") return LoadFormat::kAuto;
  if (name == "gguf") return LoadFormat::kGguf;
  if (name == "safetensors") return LoadFormat::kSafetensors;
  if (name == "dummy") return LoadFormat::kDummy;
  throw std::invalid_argument("unknown load format '" + std::string(name) +
                              "' (choose auto, gguf, safetensors or dummy)");
}

std::string_view load_format_name(LoadFormat format) {
  switch (format) {
    case LoadFormat::kAuto:
      return "auto";
    case LoadFormat::kGguf:
      return "gguf";
    case LoadFormat::kSafetensors:
      return "safetensors";
    case LoadFormat::kDummy:
      return "dummy";
  }
  return "auto";
}

LoadFormat detect_load_format(const fs::path& path) {
  std::error_code error;
  if (fs::is_directory(path, error)) return LoadFormat::kSafetensors;
  if (!fs::exists(path, error)) throw ModelLoadError(path, "no such file or directory");
  if (path.extension() == ".safetensors" || path.filename() == "config.json") {
    return LoadFormat::kSafetensors;
  }
  std::ifstream in(path, std::ios::binary);
  char magic[4] = {};
  if (in.read(magic, 4) && std::memcmp(magic, "GGUF", 4) == 0) return LoadFormat::kGguf;
  throw ModelLoadError(path,
                       "cannot tell the model format: not a GGUF file (no 'GGUF' magic), "
                       "not a directory, *.safetensors or config.json");
}

ModelConfig load_model_config(const fs::path& path) {
  if (detect_load_format(path) == LoadFormat::kGguf) {
    return model_config_from_gguf(GgufFile::open(path));
  }
  const fs::path config =
      path.filename() == "config.json" ? path : model_directory(path) / "config.json";
  return load_hf_config(config);
}

GenerationDefaults load_model_generation_defaults(const fs::path& path) {
  if (detect_load_format(path) == LoadFormat::kGguf) {
    return generation_defaults_from_gguf(GgufFile::open(path));
  }
  return load_generation_defaults(model_directory(path) / "generation_config.json");
}

LlamaWeights make_dummy_llama_weights(const ModelConfig& config, const LoadOptions& options) {
  return make_dummy_weights(config, options.seed, options.num_threads);
}

LlamaCheckpoint load_llama_checkpoint(const fs::path& path_or_dir, LoadFormat format,
                                      const LoadOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  if (format == LoadFormat::kAuto) format = detect_load_format(path_or_dir);
  const int threads = resolve_threads(options.num_threads);
  LlamaCheckpoint checkpoint;
  switch (format) {
    case LoadFormat::kGguf:
      checkpoint = load_gguf_checkpoint(path_or_dir, threads, options.keep_quantized);
      break;
    case LoadFormat::kSafetensors:
      checkpoint.weights = load_safetensors_weights(path_or_dir, threads);
      break;
    default:
      checkpoint.weights = make_dummy_llama_weights(load_model_config(path_or_dir), options);
      break;
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const ModelConfig& config = checkpoint.weights.config;
  logger("model")->info(
      "loaded {} ({}, {} layers, hidden {}, {} matrices kept quantized) in {:.2f} s",
      path_or_dir.string(), load_format_name(format), config.num_hidden_layers, config.hidden_size,
      checkpoint.quantized.size(), seconds);
  return checkpoint;
}

LlamaWeights load_llama_weights(const fs::path& path_or_dir, LoadFormat format,
                                const LoadOptions& options) {
  LoadOptions fp32_options = options;
  fp32_options.keep_quantized = false;
  return load_llama_checkpoint(path_or_dir, format, fp32_options).weights;
}

}  // namespace vllm

#include "model/model_loader.hpp"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <fstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "model/gguf.hpp"
#include "model/gguf_config.hpp"
#include "model/gguf_dequantize.hpp"
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

// One parameter of the model: where it goes, its names in both formats, the shape the config
// implies.
struct WeightSlot {
  std::string hf_name;
  std::string gguf_name;
  std::vector<int64_t> shape;
  HostTensor* dest = nullptr;
  int64_t rope_heads = 0;  // q/k weights and biases: heads whose rows GGUF llama permutes
  bool is_norm = false;
  uint64_t id = 0;  // stable per parameter: seeds the dummy fill
};

std::vector<WeightSlot> weight_slots(LlamaWeights& weights) {
  const ModelConfig& c = weights.config;
  weights.layers.assign(static_cast<std::size_t>(c.num_hidden_layers), LlamaLayerWeights{});
  std::vector<WeightSlot> slots;
  slots.push_back({"model.embed_tokens.weight",
                   "token_embd.weight",
                   {c.vocab_size, c.hidden_size},
                   &weights.embed_tokens,
                   0,
                   false,
                   0});
  slots.push_back(
      {"model.norm.weight", "output_norm.weight", {c.hidden_size}, &weights.norm, 0, true, 1});
  if (!c.tie_word_embeddings) {
    slots.push_back({"lm_head.weight",
                     "output.weight",
                     {c.vocab_size, c.hidden_size},
                     &weights.lm_head,
                     0,
                     false,
                     2});
  }
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    LlamaLayerWeights& layer = weights.layers[static_cast<std::size_t>(i)];
    const std::string hf = "model.layers." + std::to_string(i) + ".";
    const std::string gg = "blk." + std::to_string(i) + ".";
    const uint64_t base = 16 + static_cast<uint64_t>(i) * 16;
    auto add = [&](const std::string& hf_name, const std::string& gguf_name,
                   std::vector<int64_t> shape, HostTensor* dest, int64_t rope_heads, bool is_norm,
                   uint64_t field) {
      slots.push_back({hf + hf_name, gg + gguf_name, std::move(shape), dest, rope_heads, is_norm,
                       base + field});
    };
    add("input_layernorm.weight", "attn_norm.weight", {c.hidden_size}, &layer.input_layernorm, 0,
        true, 0);
    add("self_attn.q_proj.weight", "attn_q.weight", {c.q_size(), c.hidden_size}, &layer.q_proj,
        c.num_attention_heads, false, 1);
    add("self_attn.k_proj.weight", "attn_k.weight", {c.kv_size(), c.hidden_size}, &layer.k_proj,
        c.num_key_value_heads, false, 2);
    add("self_attn.v_proj.weight", "attn_v.weight", {c.kv_size(), c.hidden_size}, &layer.v_proj, 0,
        false, 3);
    if (c.attention_bias) {
      add("self_attn.q_proj.bias", "attn_q.bias", {c.q_size()}, &layer.q_bias,
          c.num_attention_heads, false, 4);
      add("self_attn.k_proj.bias", "attn_k.bias", {c.kv_size()}, &layer.k_bias,
          c.num_key_value_heads, false, 5);
      add("self_attn.v_proj.bias", "attn_v.bias", {c.kv_size()}, &layer.v_bias, 0, false, 6);
    }
    add("self_attn.o_proj.weight", "attn_output.weight", {c.hidden_size, c.q_size()}, &layer.o_proj,
        0, false, 7);
    add("post_attention_layernorm.weight", "ffn_norm.weight", {c.hidden_size},
        &layer.post_attention_layernorm, 0, true, 8);
    add("mlp.gate_proj.weight", "ffn_gate.weight", {c.intermediate_size, c.hidden_size},
        &layer.gate_proj, 0, false, 9);
    add("mlp.up_proj.weight", "ffn_up.weight", {c.intermediate_size, c.hidden_size}, &layer.up_proj,
        0, false, 10);
    add("mlp.down_proj.weight", "ffn_down.weight", {c.hidden_size, c.intermediate_size},
        &layer.down_proj, 0, false, 11);
  }
  return slots;
}

void convert_into(HostTensor& dest, const std::vector<int64_t>& shape, GgmlType type,
                  std::span<const std::byte> src, int threads) {
  dest.shape = shape;
  dest.data.resize(static_cast<std::size_t>(dest.numel()));
  dequantize_parallel(type, src, dest.data, threads);
}

// GGUF's llama converter permutes each head's Q/K rows from Hugging Face's [2][head_dim/2]
// (rotate-half pairs) to [head_dim/2][2] (interleaved pairs); this undoes it, as transformers'
// GGUF loader does: HF row (h, j, i) = GGUF row (h, i, j).
void unpermute_rope_rows(HostTensor& tensor, int64_t num_heads) {
  const int64_t rows = tensor.shape[0];
  const int64_t row_length = tensor.shape.size() > 1 ? tensor.shape[1] : 1;
  const int64_t head_dim = rows / num_heads;
  const int64_t half = head_dim / 2;
  const std::vector<float> gguf = tensor.data;
  for (int64_t h = 0; h < num_heads; ++h) {
    for (int64_t i = 0; i < half; ++i) {
      for (int64_t j = 0; j < 2; ++j) {
        const int64_t hf_row = h * head_dim + j * half + i;
        const int64_t gguf_row = h * head_dim + i * 2 + j;
        std::memcpy(tensor.data.data() + hf_row * row_length, gguf.data() + gguf_row * row_length,
                    sizeof(float) * row_length);
      }
    }
  }
}

LlamaWeights load_gguf_weights(const fs::path& path, int threads) {
  const GgufFile file = GgufFile::open(path);
  LlamaWeights weights;
  weights.config = model_config_from_gguf(file);
  const bool permuted = file.get_string("general.architecture") == "llama";
  for (WeightSlot& slot : weight_slots(weights)) {
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
                                     "Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K)");
    }
    convert_into(*slot.dest, slot.shape, tensor->type, file.tensor_data(*tensor), threads);
    if (permuted && slot.rope_heads > 0) unpermute_rope_rows(*slot.dest, slot.rope_heads);
  }
  return weights;
}

fs::path model_directory(const fs::path& path) {
  return fs::is_directory(path) ? path : path.parent_path();
}

LlamaWeights load_safetensors_weights(const fs::path& path, int threads) {
  const fs::path dir = model_directory(path);
  LlamaWeights weights;
  weights.config = load_hf_config(dir / "config.json");
  const SafetensorsCheckpoint checkpoint = SafetensorsCheckpoint::open(dir);
  for (WeightSlot& slot : weight_slots(weights)) {
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
    convert_into(*slot.dest, slot.shape, type, entry->file->data(info), threads);
  }
  return weights;
}

// Counter-based generator: element i of parameter `id` is a pure function of (seed, id, i), so
// any split of the work (threads, devices) gives the same values.
uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

void fill_uniform(std::span<float> out, uint64_t seed, uint64_t id, float low, float high,
                  int threads) {
  const uint64_t stream = splitmix64(seed ^ splitmix64(id));
  const float scale = (high - low) / 16777216.0f;  // 24 random bits
  auto fill = [&](std::size_t first, std::size_t last) {
    for (std::size_t i = first; i < last; ++i) {
      const auto bits = static_cast<uint32_t>(splitmix64(stream + i) >> 40);
      out[i] = low + static_cast<float>(bits) * scale;
    }
  };
  const std::size_t n = out.size();
  const auto workers = static_cast<std::size_t>(
      std::min<std::size_t>(static_cast<std::size_t>(threads), n / (1 << 16) + 1));
  if (workers <= 1) {
    fill(0, n);
    return;
  }
  std::vector<std::jthread> pool;
  const std::size_t chunk = (n + workers - 1) / workers;
  for (std::size_t w = 1; w < workers; ++w) {
    pool.emplace_back([&, w] { fill(std::min(n, w * chunk), std::min(n, (w + 1) * chunk)); });
  }
  fill(0, std::min(n, chunk));
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
  const int threads = resolve_threads(options.num_threads);
  LlamaWeights weights;
  weights.config = config;
  for (WeightSlot& slot : weight_slots(weights)) {
    slot.dest->shape = slot.shape;
    slot.dest->data.resize(static_cast<std::size_t>(slot.dest->numel()));
    const float center = slot.is_norm ? 1.0f : 0.0f;
    fill_uniform(slot.dest->data, options.seed, slot.id, center - 0.02f, center + 0.02f, threads);
  }
  return weights;
}

LlamaWeights load_llama_weights(const fs::path& path_or_dir, LoadFormat format,
                                const LoadOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  if (format == LoadFormat::kAuto) format = detect_load_format(path_or_dir);
  const int threads = resolve_threads(options.num_threads);
  LlamaWeights weights;
  switch (format) {
    case LoadFormat::kGguf:
      weights = load_gguf_weights(path_or_dir, threads);
      break;
    case LoadFormat::kSafetensors:
      weights = load_safetensors_weights(path_or_dir, threads);
      break;
    default:
      weights = make_dummy_llama_weights(load_model_config(path_or_dir), options);
      break;
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  logger("model")->info("loaded {} ({}, {} layers, hidden {}) in {:.2f} s", path_or_dir.string(),
                        load_format_name(format), weights.config.num_hidden_layers,
                        weights.config.hidden_size, seconds);
  return weights;
}

}  // namespace vllm

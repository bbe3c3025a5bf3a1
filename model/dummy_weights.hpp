// Dummy weights (vLLM's --load-format dummy): random values of a config's shapes, no checkpoint.
// Values are counter-based: element i of a parameter is a pure function of (seed, parameter id,
// i), so any split of the work (threads, chunks streamed to a GPU) produces the same model.
// Linear layers, embeddings and biases are uniform in [-0.02, 0.02]; norm weights uniform in
// [0.98, 1.02], so activations keep a realistic scale through the layers.
#pragma once

#include <cstdint>
#include <span>

#include "model/llama_weight_specs.hpp"
#include "model/llama_weights.hpp"

namespace vllm {

// Fills out[k] with the value of element first_element + k of the parameter `spec`.
void fill_dummy_values(const LlamaWeightSpec& spec, uint64_t seed, int64_t first_element,
                       std::span<float> out);

// The whole model as fp32 host tensors (`num_threads` 0: all hardware threads).
LlamaWeights make_dummy_weights(const ModelConfig& config, uint64_t seed, int num_threads);

}  // namespace vllm

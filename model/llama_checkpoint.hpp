// LlamaCheckpoint: a model's weights as the CPU forward pass takes them: LlamaWeights (fp32), plus
// the matrices a GGUF file stores in a block format the quantized kernel computes directly,
// keyed by Hugging Face name ("model.layers.0.self_attn.q_proj.weight"); a matrix found here has
// an empty HostTensor in `weights`.
#pragma once

#include <map>
#include <string>

#include "model/linear_weight.hpp"
#include "model/llama_weights.hpp"

namespace vllm {

struct LlamaCheckpoint {
  LlamaWeights weights;
  std::map<std::string, LinearWeight> quantized;
};

}  // namespace vllm

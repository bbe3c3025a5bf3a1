// EngineArgs: everything `Engine::create` needs, with vLLM's flag names and defaults where the
// meaning is the same (`--max-num-seqs` -> max_num_seqs, ...).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <asio/awaitable.hpp>

namespace vllm {

class Worker;

// What a worker made outside the engine (e.g. on node agents, behind RPC) is told.
struct WorkerLaunch {
  std::string model;        // the resolved model path
  std::string load_format;  // as given
  std::vector<int32_t> eos_token_ids;
  int32_t block_size = 16;
  int64_t kv_cache_memory_bytes = 0;
  int32_t num_kv_blocks_override = 0;
  int32_t max_num_batched_tokens = 0;
  int32_t max_model_len = 0;
  uint64_t seed = 0;
};
using WorkerFactory = std::function<asio::awaitable<std::shared_ptr<Worker>>(WorkerLaunch)>;

struct EngineArgs {
  std::string model;                 // GGUF file or Hugging Face directory; empty: bundled model
  std::string load_format = "auto";  // auto | gguf | safetensors | dummy
  std::string served_model_name;     // empty: the model path's file name
  std::string device = "auto";       // auto | cpu | cuda
  std::string chat_template;         // a file path or inline Jinja; empty: the model's own
  int32_t max_model_len = 0;         // 0: the model's max_position_embeddings
  int32_t max_num_seqs = 256;
  int32_t max_num_batched_tokens = 2048;
  int32_t block_size = 16;
  bool enable_prefix_caching = true;
  bool enable_chunked_prefill = true;
  int32_t long_prefill_token_threshold = 0;  // > 0: at most this many tokens per request per step
  // A step with D decode tokens takes at most max(16, this * D) tokens of long prompts (longer
  // than max_num_batched_tokens): bounds the
  // decoders' gap between tokens when a long prompt arrives. -1: auto (2 on the CPU, where a
  // step costs about its token count; off on CUDA, where small steps are memory-bound). 0: off.
  int32_t max_prefill_tokens_per_decode = -1;
  std::string scheduling_policy = "fcfs";            // fcfs | priority
  int64_t kv_cache_memory_bytes = int64_t{1} << 30;  // CPU KV cache size
  int32_t num_kv_blocks_override = 0;                // > 0: exactly this many blocks (tests)
  double gpu_memory_utilization = 0.9;
  uint64_t seed = 0;
  int32_t max_waiting_requests = 4096;  // admission limit: more are refused (HTTP 503)
  int32_t num_cpu_threads = 0;          // CPU forward threads; 0: all cores
  // The single CPU worker computes a GGUF's Q4_0/Q4_1/Q5_0/Q5_1/Q8_0 matrices in their blocks
  // with Q8 activations, as llama.cpp does; true: dequantized to fp32 at load (OpenBLAS), as the
  // CUDA and parallel workers always do.
  bool dequantize_gguf = false;
  // Activation type of the CUDA backend: auto | bfloat16 | float16 | half | float32 | float.
  // auto: float16 for a GGUF checkpoint (its block values hold 4x more precisely in fp16, and
  // vLLM computes GGUF models in half precision), else the checkpoint's torch_dtype when it is
  // float16 or bfloat16, else bfloat16. The CPU backend computes in float32 (any value but
  // bfloat16/float16 is fine there; those two log that the CPU uses float32).
  std::string dtype = "auto";
  // Parallel layout in this process (CPU): TP ranks of a stage share a Gloo group over loopback;
  // PP stages split the layers. --kv-cache-memory is per rank.
  int32_t tensor_parallel_size = 1;
  int32_t pipeline_parallel_size = 1;
  // Set: the model runs on the worker this makes (this process loads only the model's config
  // and tokenizer); unset: on a local CPU or CUDA worker.
  WorkerFactory worker_factory;
};

}  // namespace vllm

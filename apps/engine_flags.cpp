#include "apps/engine_flags.hpp"

#include <string>

#include "model/dtype.hpp"

namespace vllm::apps {

void read_shared_engine_flags(const ParsedArgs& args, EngineArgs& engine) {
  if (auto v = args.value("--gpu-memory-utilization")) {
    try {
      engine.gpu_memory_utilization = std::stod(*v);
    } catch (const std::exception&) {
      throw UsageError("--gpu-memory-utilization must be a number in (0, 1], got '" + *v + "'");
    }
    if (!(engine.gpu_memory_utilization > 0.0 && engine.gpu_memory_utilization <= 1.0)) {
      throw UsageError("--gpu-memory-utilization must be in (0, 1], got '" + *v + "'");
    }
  }
  engine.tensor_parallel_size = static_cast<int32_t>(args.int_value("--tensor-parallel-size", 1));
  engine.pipeline_parallel_size =
      static_cast<int32_t>(args.int_value("--pipeline-parallel-size", 1));
  engine.max_prefill_tokens_per_decode =
      static_cast<int32_t>(args.int_value("--max-prefill-tokens-per-decode", -1));
  engine.dequantize_gguf = args.has("--dequantize-gguf");
  engine.dtype = args.value("--dtype").value_or("auto");
  parse_dtype(engine.dtype);  // refused here, before the model loads
}

}  // namespace vllm::apps

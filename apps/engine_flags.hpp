// The engine flags that `serve` and `bench throughput|latency` read the same way (GPU memory
// share, parallel layout, GGUF weight format, mixed-step cap), parsed and checked in one place.
#pragma once

#include "apps/command_line.hpp"
#include "engine/engine_args.hpp"

namespace vllm::apps {

// Sets those fields of `engine` from `args` (absent flags keep vLLM's defaults); throws
// UsageError naming the flag on a bad value.
void read_shared_engine_flags(const ParsedArgs& args, EngineArgs& engine);

}  // namespace vllm::apps

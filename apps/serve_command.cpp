// vllm-cpp serve [MODEL]: the OpenAI-compatible server, with vLLM's flag names.
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "apps/command_line.hpp"
#include "apps/engine_flags.hpp"
#include "apps/subcommands.hpp"
#include "engine/default_model.hpp"
#include "runtime/logging.hpp"
#include "server/serve.hpp"

namespace vllm::apps {
namespace {

constexpr FlagSpec kFlags[] = {
    {"--model", true, "the model (same as the positional MODEL)"},
    {"--host", true, "address to listen on (default 0.0.0.0)"},
    {"--port", true, "port to listen on (default 8000)"},
    {"--api-key", true, "require 'Authorization: Bearer KEY' on /v1/* (default: $VLLM_API_KEY)"},
    {"--served-model-name", true, "the model name clients use (default: the model file's name)"},
    {"--max-model-len", true, "context length (default: the model's)"},
    {"--max-num-seqs", true, "most sequences in one batch (default 256)"},
    {"--max-num-batched-tokens", true, "token budget of one step (default 2048)"},
    {"--long-prefill-token-threshold", true,
     "most prompt tokens of one request in one step (default 0: no limit)"},
    {"--max-prefill-tokens-per-decode", true,
     "a step with D decodes takes at most max(16, this*D) prompt tokens (default -1: 2 on cpu, "
     "off on cuda; 0: off)"},
    {"--block-size", true, "KV cache block size in tokens (default 16)"},
    {"--tensor-parallel-size", true,
     "tensor-parallel ranks in this process (CPU threads, or CUDA GPUs 0..N-1; default 1)"},
    {"--pipeline-parallel-size", true, "pipeline stages in this process (CPU; default 1)"},
    {"--enable-prefix-caching", false, "reuse KV blocks of shared prefixes (default)"},
    {"--no-enable-prefix-caching", false, "turn prefix caching off"},
    {"--dequantize-gguf", false,
     "CPU: compute GGUF quantized matrices in fp32 instead of in their blocks with Q8 activations"},
    {"--chat-template", true, "a chat template file or inline Jinja (default: the model's)"},
    {"--seed", true, "seed of the sampler for requests without their own (default 0)"},
    {"--dtype", true,
     "auto | bfloat16 | float16 | half | float32 | float: CUDA activations (auto: float16 for "
     "GGUF, else the checkpoint's torch_dtype, else bfloat16); the CPU computes in float32"},
    {"--load-format", true, "auto | gguf | safetensors | dummy (default auto)"},
    {"--kv-cache-memory", true, "KV cache size in bytes; suffixes K, M, G (default 1G)"},
    {"--device", true, "auto | cpu | cuda (default auto)"},
    {"--gpu-memory-utilization", true,
     "fraction of GPU memory for weights, activations and KV cache (default 0.9)"},
    {"--max-waiting-requests", true, "more waiting requests are refused with 503 (default 4096)"},
    {"--threads", true, "CPU forward threads (default: all cores)"},
    {"--log-level", true, "trace | debug | info | warning | error (default info)"},
    {"--max-request-body-bytes", true, "larger request bodies get 413 (default 16M)"},
    {"--max-connections", true, "most open connections (default 1024)"},
    {"--http-read-timeout", true, "seconds to read a request, and keep-alive idle (default 30)"},
    {"--shutdown-timeout", true, "seconds to let requests finish on SIGTERM/SIGINT (default 30)"},
    {"--help", false, "show this help"},
};

int32_t positive_int(const ParsedArgs& args, std::string_view flag, int64_t fallback) {
  const int64_t v = args.int_value(flag, fallback);
  if (v < 1 || v > (int64_t{1} << 31) - 1) throw UsageError(std::string(flag) + " must be >= 1");
  return static_cast<int32_t>(v);
}

std::chrono::milliseconds seconds_flag(const ParsedArgs& args, std::string_view flag,
                                       double fallback) {
  const double s = args.float_value(flag, fallback);
  if (!(s > 0)) throw UsageError(std::string(flag) + " must be > 0 seconds");
  return std::chrono::milliseconds(static_cast<int64_t>(s * 1000));
}

}  // namespace

int run_serve(const Args& raw_args) {
  const ParsedArgs args = ParsedArgs::parse(raw_args, kFlags);
  if (args.has("--help")) {
    std::printf("usage: vllm-cpp serve [MODEL] [flags]\n\nMODEL defaults to the bundled %s.\n\n%s",
                vllm::bundled_model_path().c_str(), flags_help(kFlags).c_str());
    return 0;
  }
  if (args.positionals().size() > 1) throw UsageError("expected at most one MODEL");
  if (args.has("--enable-prefix-caching") && args.has("--no-enable-prefix-caching")) {
    throw UsageError("--enable-prefix-caching and --no-enable-prefix-caching contradict");
  }
  if (auto level = args.value("--log-level")) {
    try {
      set_log_level(*level == "warning" ? "warn" : *level);
    } catch (const std::invalid_argument& e) {
      throw UsageError(std::string("--log-level: ") + e.what());
    }
  }

  EngineArgs engine;
  if (!args.positionals().empty()) {
    engine.model = args.positionals()[0];
    if (args.has("--model") && *args.value("--model") != engine.model) {
      throw UsageError("MODEL and --model name different models");
    }
  } else {
    engine.model = args.value("--model").value_or(vllm::bundled_model_path().string());
  }
  engine.load_format = args.value("--load-format").value_or("auto");
  engine.served_model_name = args.value("--served-model-name").value_or("");
  engine.device = args.value("--device").value_or("auto");
  read_shared_engine_flags(args, engine);
  engine.chat_template = args.value("--chat-template").value_or("");
  engine.max_model_len = static_cast<int32_t>(args.int_value("--max-model-len", 0));
  if (engine.max_model_len < 0) throw UsageError("--max-model-len must be >= 1");
  engine.max_num_seqs = positive_int(args, "--max-num-seqs", engine.max_num_seqs);
  engine.max_num_batched_tokens =
      positive_int(args, "--max-num-batched-tokens", engine.max_num_batched_tokens);
  engine.block_size = positive_int(args, "--block-size", engine.block_size);
  engine.long_prefill_token_threshold =
      static_cast<int32_t>(args.int_value("--long-prefill-token-threshold", 0));
  engine.enable_prefix_caching = !args.has("--no-enable-prefix-caching");
  if (auto v = args.value("--kv-cache-memory")) {
    engine.kv_cache_memory_bytes = parse_bytes("--kv-cache-memory", *v);
  }
  const int64_t seed = args.int_value("--seed", 0);
  engine.seed = static_cast<uint64_t>(seed);
  engine.max_waiting_requests =
      positive_int(args, "--max-waiting-requests", engine.max_waiting_requests);
  engine.num_cpu_threads = static_cast<int32_t>(args.int_value("--threads", 0));
  if (engine.num_cpu_threads < 0) throw UsageError("--threads must be >= 0");

  server::ServeOptions options;
  options.http.host = args.value("--host").value_or("0.0.0.0");
  const int64_t port = args.int_value("--port", 8000);
  if (port < 1 || port > 65535) throw UsageError("--port must be in [1, 65535]");
  options.http.port = static_cast<uint16_t>(port);
  if (auto v = args.value("--max-request-body-bytes")) {
    options.http.max_body_bytes = static_cast<size_t>(parse_bytes("--max-request-body-bytes", *v));
  }
  options.http.max_connections = static_cast<size_t>(positive_int(args, "--max-connections", 1024));
  options.http.read_timeout = seconds_flag(args, "--http-read-timeout", 30);
  options.shutdown_timeout = seconds_flag(args, "--shutdown-timeout", 30);
  if (auto key = args.value("--api-key")) {
    options.api_key = *key;
  } else if (const char* env = std::getenv("VLLM_API_KEY")) {
    options.api_key = env;
  }
  return server::serve(std::move(engine), std::move(options));
}

}  // namespace vllm::apps

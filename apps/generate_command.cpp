// vllm-cpp generate: one prompt, offline, through the engine on either backend (--device
// cpu|cuda|auto, the CUDA flags as serve's). Prints the continuation and the prefill / decode
// throughput: prefill = prompt tokens / time to the first token; decode = the later tokens /
// the time after the first.
#include <chrono>
#include <cstdio>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>

#include "apps/command_line.hpp"
#include "apps/engine_flags.hpp"
#include "apps/subcommands.hpp"
#include "engine/engine.hpp"

namespace vllm::apps {
namespace {

constexpr FlagSpec kFlags[] = {
    {"--prompt", true, "the prompt text (tokenized with the model's tokenizer)"},
    {"--prompt-token-ids", true, "the prompt as comma-separated token ids, e.g. 1,2,3"},
    {"--max-tokens", true, "tokens to generate (default 16)"},
    {"--temperature", true, "0 = greedy (default: the model's generation config, else 1.0)"},
    {"--top-p", true, "nucleus sampling mass in (0, 1]"},
    {"--top-k", true, "keep the k most likely tokens (0 or -1: off)"},
    {"--min-p", true, "drop tokens below min_p * the top probability"},
    {"--repetition-penalty", true, "> 1 discourages tokens of the prompt and output"},
    {"--presence-penalty", true, "subtracted once from tokens already generated"},
    {"--frequency-penalty", true, "subtracted per occurrence in the output"},
    {"--seed", true, "per-request seed: the same seed gives the same tokens"},
    {"--ignore-eos", false, "keep generating past EOS"},
    {"--load-format", true, "auto | gguf | safetensors | dummy (default auto)"},
    {"--device", true, "auto | cpu | cuda (default auto)"},
    {"--dtype", true,
     "auto | bfloat16 | float16 | half | float32 | float: CUDA activations (auto: float16 for "
     "GGUF, else the checkpoint's torch_dtype, else bfloat16)"},
    {"--gpu-memory-utilization", true, "share of the GPU for this engine (default 0.9)"},
    {"--tensor-parallel-size", true, "tensor-parallel ranks (CPU threads, or GPUs 0..N-1)"},
    {"--dequantize-gguf", false,
     "CPU: compute GGUF quantized matrices in fp32 instead of in their blocks with Q8 activations"},
    {"--threads", true, "CPU threads for kernels and BLAS (default: all)"},
    {"--block-size", true, "KV cache block size in tokens (default 16)"},
    {"--max-num-batched-tokens", true, "prefill chunk size (default 2048)"},
    {"--kv-cache-memory", true, "CPU KV cache size in bytes; suffixes K, M, G (default 1G)"},
    {"--help", false, "show this help"},
};

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// The flags given, over the engine's defaults (the model's generation config, as vLLM applies it).
SamplingParams sampling_params(const ParsedArgs& args, SamplingParams p) {
  p.temperature = static_cast<float>(args.float_value("--temperature", p.temperature));
  p.top_p = static_cast<float>(args.float_value("--top-p", p.top_p));
  p.top_k = static_cast<int>(args.int_value("--top-k", p.top_k));
  p.min_p = static_cast<float>(args.float_value("--min-p", p.min_p));
  p.repetition_penalty =
      static_cast<float>(args.float_value("--repetition-penalty", p.repetition_penalty));
  p.presence_penalty = static_cast<float>(args.float_value("--presence-penalty", 0.0));
  p.frequency_penalty = static_cast<float>(args.float_value("--frequency-penalty", 0.0));
  p.max_tokens = static_cast<int>(args.int_value("--max-tokens", 16));
  if (args.has("--seed")) p.seed = static_cast<uint64_t>(args.int_value("--seed", 0));
  p.ignore_eos = args.has("--ignore-eos");
  if (p.max_tokens < 1) throw UsageError("--max-tokens must be >= 1");
  return p;
}

std::string join(const std::vector<int32_t>& ids) {
  std::string out;
  for (size_t i = 0; i < ids.size(); ++i) out += (i ? "," : "") + std::to_string(ids[i]);
  return out;
}

}  // namespace

int run_generate(const Args& raw_args) {
  const ParsedArgs args = ParsedArgs::parse(raw_args, kFlags);
  if (args.has("--help")) {
    std::printf(
        "usage: vllm-cpp generate MODEL (--prompt TEXT | --prompt-token-ids IDS) [flags]\n\n%s",
        flags_help(kFlags).c_str());
    return 0;
  }
  if (args.positionals().size() != 1) {
    throw UsageError("expected exactly one MODEL (a GGUF file or a Hugging Face directory)");
  }
  const std::string model_path = args.positionals()[0];
  if (args.has("--prompt") == args.has("--prompt-token-ids")) {
    throw UsageError(
        "give the prompt as --prompt TEXT or as --prompt-token-ids 1,2,3 (one of them)");
  }
  Prompt prompt;
  if (auto text = args.value("--prompt")) {
    prompt = *text;
  } else {
    std::vector<int32_t> ids;
    for (int64_t id : args.int_list("--prompt-token-ids")) ids.push_back(static_cast<int32_t>(id));
    if (ids.empty()) throw UsageError("the prompt is empty");
    prompt = std::move(ids);
  }
  // Checked before the model loads (the values are checked again against the model).
  if (args.int_value("--max-tokens", 16) < 1) throw UsageError("--max-tokens must be >= 1");

  EngineArgs engine_args;
  engine_args.model = model_path;
  engine_args.load_format = args.value("--load-format").value_or("auto");
  engine_args.device = args.value("--device").value_or("auto");
  read_shared_engine_flags(args, engine_args);
  engine_args.num_cpu_threads = static_cast<int32_t>(args.int_value("--threads", 0));
  engine_args.block_size = static_cast<int32_t>(args.int_value("--block-size", 16));
  engine_args.max_num_batched_tokens =
      static_cast<int32_t>(args.int_value("--max-num-batched-tokens", 2048));
  if (engine_args.num_cpu_threads < 0 || engine_args.block_size < 1 ||
      engine_args.max_num_batched_tokens < 1) {
    throw UsageError("--threads must be >= 0, --block-size and --max-num-batched-tokens >= 1");
  }
  if (auto bytes = args.value("--kv-cache-memory")) {
    engine_args.kv_cache_memory_bytes = parse_bytes("--kv-cache-memory", *bytes);
  }

  Completion completion;
  double load_s = 0.0, prefill_s = 0.0, decode_s = 0.0;
  std::string device;
  asio::io_context context;
  std::exception_ptr failure;
  auto body = [&]() -> asio::awaitable<void> {
    const auto load_start = Clock::now();
    Engine engine = co_await Engine::create(engine_args);
    load_s = seconds_since(load_start);
    device = engine.device_name();
    const ModelConfig& config = engine.model_config();
    std::printf("model: %s (%s, %lld layers, hidden %lld, vocab %lld) loaded in %.2f s on %s\n",
                model_path.c_str(), config.architecture.c_str(),
                static_cast<long long>(config.num_hidden_layers),
                static_cast<long long>(config.hidden_size),
                static_cast<long long>(config.vocab_size), load_s, device.c_str());
    const SamplingParams params = sampling_params(args, engine.default_sampling_params());
    std::optional<Clock::time_point> first_token;
    // Named, not a temporary inside the co_await (GCC 12 destroys such temporaries twice).
    std::function<void(const TokenDelta&)> on_delta = [&](const TokenDelta& delta) {
      if (!first_token && !delta.token_ids.empty()) first_token = Clock::now();
    };
    const auto start = Clock::now();
    completion = co_await engine.generate(prompt, params, on_delta);
    const auto end = Clock::now();
    if (first_token) {
      prefill_s = std::chrono::duration<double>(*first_token - start).count();
      decode_s = std::chrono::duration<double>(end - *first_token).count();
    }
    co_await engine.shutdown();
  };
  asio::co_spawn(context, body(), [&](std::exception_ptr e) { failure = e; });
  context.run();
  if (failure) std::rethrow_exception(failure);

  const std::vector<int32_t>& output = completion.outputs.at(0).token_ids;
  const size_t prompt_tokens = completion.prompt_token_ids.size();
  std::printf("prompt: %zu tokens\n", prompt_tokens);
  std::printf("output token ids: %s\n", join(output).c_str());
  if (!completion.outputs[0].text.empty()) {
    std::printf("output text: %s\n", completion.outputs[0].text.c_str());
  }
  if (prefill_s > 0.0) {
    std::printf("prefill: %zu tokens in %.3f s = %.1f tokens/s\n", prompt_tokens, prefill_s,
                static_cast<double>(prompt_tokens) / prefill_s);
  }
  if (output.size() > 1 && decode_s > 0.0) {
    const auto decoded = static_cast<long long>(output.size() - 1);
    std::printf("decode: %lld tokens in %.3f s = %.1f tokens/s\n", decoded, decode_s,
                static_cast<double>(decoded) / decode_s);
  }
  return 0;
}

}  // namespace vllm::apps

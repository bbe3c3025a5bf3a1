// vllm-cpp bench throughput | latency: offline benchmarks of the engine (vLLM's names and
// workloads): random token-id prompts of --input-len, --output-len tokens each (EOS ignored).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>

#include "apps/command_line.hpp"
#include "apps/engine_flags.hpp"
#include "apps/subcommands.hpp"
#include "engine/engine.hpp"
#include "runtime/logging.hpp"

namespace vllm::apps {
namespace {

using Clock = std::chrono::steady_clock;

constexpr FlagSpec kFlags[] = {
    {"--model", true, "GGUF file or Hugging Face directory (default: the bundled model)"},
    {"--load-format", true, "auto | gguf | safetensors | dummy"},
    {"--device", true, "auto | cpu | cuda"},
    {"--gpu-memory-utilization", true,
     "fraction of GPU memory for weights, activations and KV cache (default 0.9)"},
    {"--num-prompts", true, "throughput: requests (default 64)"},
    {"--input-len", true, "prompt tokens per request (default 128; latency: 32)"},
    {"--output-len", true, "output tokens per request (default 128)"},
    {"--batch-size", true, "latency: requests per batch (default 1)"},
    {"--num-iters", true, "latency: measured iterations (default 3)"},
    {"--num-iters-warmup", true, "latency: warm-up iterations (default 1)"},
    {"--max-num-seqs", true, "sequences per step (default 256)"},
    {"--dequantize-gguf", false, "CPU: GGUF weights to fp32 (OpenBLAS) instead of kept in blocks"},
    {"--dtype", true,
     "auto | bfloat16 | float16 | half | float32 | float: CUDA activations (auto: float16 for "
     "GGUF, else the checkpoint's torch_dtype, else bfloat16)"},
    {"--tensor-parallel-size", true,
     "tensor-parallel ranks in this process (CPU threads, or CUDA GPUs 0..N-1; default 1)"},
    {"--pipeline-parallel-size", true, "pipeline stages in this process (CPU; default 1)"},
    {"--max-num-batched-tokens", true, "tokens per step (default 2048)"},
    {"--max-prefill-tokens-per-decode", true,
     "prompt tokens per decode in a mixed step (default -1: auto)"},
    {"--kv-cache-memory", true, "CPU KV cache size in bytes; suffixes K, M, G (default 1G)"},
    {"--no-enable-prefix-caching", false, "turn the prefix cache off"},
    {"--threads", true, "CPU threads (default: all)"},
    {"--seed", true, "seed of the random prompts (default 0)"},
    {"--help", false, "show this help"},
};

template <class F>
void run_async(F body) {
  asio::io_context context;
  std::exception_ptr failure;
  asio::co_spawn(context, body(), [&](std::exception_ptr e) { failure = e; });
  context.run();
  if (failure) std::rethrow_exception(failure);
}

EngineArgs engine_args(const ParsedArgs& args) {
  EngineArgs engine;
  if (!args.positionals().empty()) engine.model = args.positionals()[0];
  if (auto model = args.value("--model")) engine.model = *model;
  if (auto format = args.value("--load-format")) engine.load_format = *format;
  if (auto device = args.value("--device")) engine.device = *device;
  read_shared_engine_flags(args, engine);
  engine.max_num_seqs = static_cast<int32_t>(args.int_value("--max-num-seqs", 256));
  engine.max_num_batched_tokens =
      static_cast<int32_t>(args.int_value("--max-num-batched-tokens", 2048));
  if (auto bytes = args.value("--kv-cache-memory")) {
    engine.kv_cache_memory_bytes = parse_bytes("--kv-cache-memory", *bytes);
  }
  engine.enable_prefix_caching = !args.has("--no-enable-prefix-caching");
  engine.num_cpu_threads = static_cast<int32_t>(args.int_value("--threads", 0));
  return engine;
}

std::vector<Prompt> random_prompts(int count, int length, int64_t vocab, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int32_t> token(10, static_cast<int32_t>(vocab) - 1);
  std::vector<Prompt> prompts;
  for (int i = 0; i < count; ++i) {
    std::vector<int32_t> ids(length);
    for (auto& id : ids) id = token(rng);
    prompts.emplace_back(std::move(ids));
  }
  return prompts;
}

SamplingParams fixed_length(int output_len) {
  SamplingParams params;
  params.temperature = 1.0f;
  params.max_tokens = output_len;
  params.ignore_eos = true;
  return params;
}

ParsedArgs parse(const Args& raw, const char* usage) {
  ParsedArgs args = ParsedArgs::parse(raw, kFlags);
  if (args.has("--help")) {
    std::printf("usage: %s\n\n%s", usage, flags_help(kFlags).c_str());
    std::exit(0);
  }
  return args;
}

}  // namespace

int run_bench_throughput(const Args& raw) {
  ParsedArgs args = parse(raw, "vllm-cpp bench throughput [MODEL] [flags]");
  const int num_prompts = static_cast<int>(args.int_value("--num-prompts", 64));
  const int input_len = static_cast<int>(args.int_value("--input-len", 128));
  const int output_len = static_cast<int>(args.int_value("--output-len", 128));
  set_log_level("warn");
  run_async([&]() -> asio::awaitable<void> {
    Engine engine = co_await Engine::create(engine_args(args));
    auto prompts = random_prompts(num_prompts, input_len, engine.model_config().vocab_size,
                                  static_cast<uint64_t>(args.int_value("--seed", 0)));
    SamplingParams params = fixed_length(output_len);
    auto start = Clock::now();
    auto results = co_await engine.generate_batch(std::move(prompts), params);
    double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    int64_t in = 0, out = 0;
    for (const auto& r : results) {
      in += r.usage.prompt_tokens;
      out += r.usage.completion_tokens;
    }
    std::printf("workload: %s, device %s, %d prompts x (%d in -> %d out), max_num_seqs %d\n",
                engine.args().served_model_name.c_str(), engine.device_name().c_str(), num_prompts,
                input_len, output_len, engine.args().max_num_seqs);
    std::printf("| requests/s | input tok/s | output tok/s | total tok/s | elapsed s |\n");
    std::printf("|-----------:|------------:|-------------:|------------:|----------:|\n");
    std::printf("| %10.2f | %11.1f | %12.1f | %11.1f | %9.2f |\n", num_prompts / seconds,
                in / seconds, out / seconds, (in + out) / seconds, seconds);
    co_await engine.shutdown();
  });
  return 0;
}

int run_bench_latency(const Args& raw) {
  ParsedArgs args = parse(raw, "vllm-cpp bench latency [MODEL] [flags]");
  const int batch = static_cast<int>(args.int_value("--batch-size", 1));
  const int input_len = static_cast<int>(args.int_value("--input-len", 32));
  const int output_len = static_cast<int>(args.int_value("--output-len", 128));
  const int iters = static_cast<int>(args.int_value("--num-iters", 3));
  const int warmup = static_cast<int>(args.int_value("--num-iters-warmup", 1));
  set_log_level("warn");
  run_async([&]() -> asio::awaitable<void> {
    Engine engine = co_await Engine::create(engine_args(args));
    SamplingParams params = fixed_length(output_len);
    std::vector<double> latencies;
    for (int i = 0; i < warmup + iters; ++i) {
      auto prompts = random_prompts(batch, input_len, engine.model_config().vocab_size, 1000 + i);
      auto start = Clock::now();
      co_await engine.generate_batch(std::move(prompts), params);
      double seconds = std::chrono::duration<double>(Clock::now() - start).count();
      if (i >= warmup) latencies.push_back(seconds);
    }
    std::sort(latencies.begin(), latencies.end());
    double mean = 0;
    for (double l : latencies) mean += l;
    mean /= latencies.size();
    std::printf("workload: %s, device %s, batch %d, %d in -> %d out, %d iterations (+%d warm-up)\n",
                engine.args().served_model_name.c_str(), engine.device_name().c_str(), batch,
                input_len, output_len, iters, warmup);
    std::printf("| mean s | p50 s | p99 s | ms per output token |\n");
    std::printf("|-------:|------:|------:|--------------------:|\n");
    std::printf("| %6.3f | %5.3f | %5.3f | %19.2f |\n", mean, latencies[latencies.size() / 2],
                latencies[latencies.size() * 99 / 100], 1000.0 * mean / output_len);
    co_await engine.shutdown();
  });
  return 0;
}

}  // namespace vllm::apps

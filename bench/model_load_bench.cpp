// model_load_bench: how long loading a model into fp32 LlamaWeights takes and how much memory
// it peaks at (the resources row: the bundled model in <= 2 s and <= 1.5 GB peak RSS).
//
//   model_load_bench [MODEL] [--format auto|gguf|safetensors|dummy] [--threads N] [--reps N]
//
// Each repetition loads and frees the model; peak RSS is the process high-water mark, so it
// covers the largest single load (weights are freed between repetitions).
#include <sys/resource.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "model/model_load_error.hpp"
#include "model/model_loader.hpp"
#include "runtime/logging.hpp"

namespace {

std::string default_model() {
  if (const char* env = std::getenv("VLLM_CPP_MODEL")) return env;
  const char* home = std::getenv("HOME");
  return std::string(home ? home : "/root") + "/.cache/vllm-cpp/SmolLM2-135M-Instruct.Q4_1.gguf";
}

double peak_rss_mib() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024.0;  // ru_maxrss is in KiB on Linux
}

int64_t num_parameters(const vllm::LlamaWeights& w) {
  int64_t n = w.embed_tokens.numel() + w.norm.numel() + w.lm_head.numel();
  for (const auto& l : w.layers) {
    for (const auto* t :
         {&l.input_layernorm, &l.q_proj, &l.k_proj, &l.v_proj, &l.q_bias, &l.k_bias, &l.v_bias,
          &l.o_proj, &l.post_attention_layernorm, &l.gate_proj, &l.up_proj, &l.down_proj}) {
      n += t->numel();
    }
  }
  return n;
}

}  // namespace

int main(int argc, char** argv) {
  std::string model = default_model();
  std::string format_name = "auto";
  int threads = 0;
  int reps = 3;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", arg.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (arg == "--format") {
      format_name = value();
    } else if (arg == "--threads") {
      threads = std::atoi(value().c_str());
    } else if (arg == "--reps") {
      reps = std::max(1, std::atoi(value().c_str()));
    } else if (arg == "-h" || arg == "--help") {
      std::printf(
          "usage: %s [MODEL] [--format auto|gguf|safetensors|dummy] [--threads N] "
          "[--reps N]\n",
          argv[0]);
      return 0;
    } else {
      model = arg;
    }
  }
  vllm::set_log_level("warn");
  const int used_threads =
      threads > 0 ? threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));

  std::vector<double> seconds;
  int64_t params = 0;
  try {
    const vllm::LoadFormat format = vllm::parse_load_format(format_name);
    for (int r = 0; r < reps; ++r) {
      const auto start = std::chrono::steady_clock::now();
      const vllm::LlamaWeights weights =
          vllm::load_llama_weights(model, format, {.num_threads = threads});
      seconds.push_back(
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
      params = num_parameters(weights);
    }
  } catch (const std::exception& error) {
    std::fprintf(stderr, "model_load_bench: %s\n", error.what());
    return 1;
  }
  double mean = 0;
  for (const double s : seconds) mean += s;
  mean /= static_cast<double>(seconds.size());
  double var = 0;
  for (const double s : seconds) var += (s - mean) * (s - mean);
  const double stddev = seconds.size() > 1 ? std::sqrt(var / (seconds.size() - 1)) : 0.0;
  const double rss = peak_rss_mib();

  const std::string name = model.substr(model.find_last_of('/') + 1);
  std::printf(
      "| model | format | params | threads | reps | load s (first) | load s (mean ± sd) "
      "| peak RSS MiB |\n");
  std::printf("|---|---|---|---|---|---|---|---|\n");
  std::printf("| %s | %s | %.1fM | %d | %d | %.3f | %.3f ± %.3f | %.0f |\n", name.c_str(),
              format_name.c_str(), static_cast<double>(params) / 1e6, used_threads, reps,
              seconds.front(), mean, stddev, rss);
  std::printf("target (issue 3, bundled model): load <= 2 s, peak RSS <= 1536 MiB -> %s\n",
              (mean <= 2.0 && rss <= 1536.0) ? "met" : "NOT met");
  return 0;
}

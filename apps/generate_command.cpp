// vllm-cpp generate: one prompt, offline, on the CPU backend. Prefill (in chunks of
// --max-num-batched-tokens), then one decode step per token until --max-tokens or EOS; prints
// the continuation and the prefill / decode throughput.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "apps/command_line.hpp"
#include "apps/subcommands.hpp"
#include "kernels/cpu/cpu_threads.hpp"
#include "model/gguf.hpp"
#include "model/kv_cache.hpp"
#include "model/llama_model.hpp"
#include "model/model_loader.hpp"
#include "model/sampler.hpp"
#include "model/tokenizer.hpp"

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
    {"--dequantize-gguf", false,
     "compute GGUF quantized matrices in fp32 instead of in their blocks with Q8 activations"},
    {"--threads", true, "CPU threads for kernels and BLAS (default: all)"},
    {"--block-size", true, "KV cache block size in tokens (default 16)"},
    {"--max-num-batched-tokens", true, "prefill chunk size (default 2048)"},
    {"--help", false, "show this help"},
};

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

SamplingParams sampling_params(const ParsedArgs& args, const GenerationDefaults& defaults) {
  SamplingParams p;
  // Like vLLM: the model's generation config supplies defaults the user did not set.
  p.temperature =
      static_cast<float>(args.float_value("--temperature", defaults.temperature.value_or(1.0f)));
  p.top_p = static_cast<float>(args.float_value("--top-p", defaults.top_p.value_or(1.0f)));
  p.top_k = static_cast<int>(args.int_value("--top-k", defaults.top_k.value_or(0)));
  p.min_p = static_cast<float>(args.float_value("--min-p", defaults.min_p.value_or(0.0f)));
  p.repetition_penalty = static_cast<float>(
      args.float_value("--repetition-penalty", defaults.repetition_penalty.value_or(1.0f)));
  p.presence_penalty = static_cast<float>(args.float_value("--presence-penalty", 0.0));
  p.frequency_penalty = static_cast<float>(args.float_value("--frequency-penalty", 0.0));
  p.max_tokens = static_cast<int>(args.int_value("--max-tokens", 16));
  if (args.has("--seed")) p.seed = static_cast<uint64_t>(args.int_value("--seed", 0));
  p.ignore_eos = args.has("--ignore-eos");
  if (p.max_tokens < 1) throw UsageError("--max-tokens must be >= 1");
  return p;
}

// One sequence's batch: tokens [begin, end) of `tokens`, whose first begin are already cached.
ForwardBatch sequence_batch(const std::vector<int32_t>& tokens, int64_t begin, int64_t end,
                            const std::vector<int32_t>& block_table, int64_t block_size) {
  ForwardBatch batch;
  for (int64_t i = begin; i < end; ++i) {
    batch.token_ids.push_back(tokens[i]);
    batch.positions.push_back(static_cast<int32_t>(i));
    batch.slot_mapping.push_back(block_table[i / block_size] * block_size + i % block_size);
  }
  batch.query_start_loc = {0, static_cast<int32_t>(end - begin)};
  batch.seq_lens = {static_cast<int32_t>(end)};
  batch.block_tables = block_table;
  batch.max_blocks_per_seq = static_cast<int32_t>(block_table.size());
  batch.logits_indices = {static_cast<int32_t>(end - begin - 1)};
  return batch;
}

// The model's tokenizer: tokenizer.json of a Hugging Face directory, or a GGUF's metadata.
// Empty when the checkpoint has none.
std::optional<Tokenizer> load_tokenizer(const std::filesystem::path& model) {
  std::filesystem::path dir = model;
  if (!std::filesystem::is_directory(model)) {
    if (model.filename() != "config.json") {
      if (detect_load_format(model) == LoadFormat::kGguf) {
        return Tokenizer::from_gguf(GgufFile::open(model));
      }
    }
    dir = model.parent_path();
  }
  if (std::filesystem::exists(dir / "tokenizer.json")) {
    return Tokenizer::from_tokenizer_json(dir / "tokenizer.json");
  }
  return std::nullopt;
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
  const std::optional<Tokenizer> tokenizer = load_tokenizer(model_path);
  std::vector<int32_t> prompt;
  if (args.has("--prompt")) {
    if (!tokenizer) {
      throw UsageError(model_path +
                       " has no tokenizer (tokenizer.json or GGUF tokenizer "
                       "metadata): use --prompt-token-ids");
    }
    prompt = tokenizer->encode(*args.value("--prompt"));
  } else {
    for (int64_t id : args.int_list("--prompt-token-ids")) {
      prompt.push_back(static_cast<int32_t>(id));
    }
  }
  if (prompt.empty()) throw UsageError("the prompt is empty");

  const int threads = static_cast<int>(args.int_value("--threads", 0));
  set_cpu_num_threads(threads);
  const LoadFormat format = parse_load_format(args.value("--load-format").value_or("auto"));
  const GenerationDefaults defaults = format == LoadFormat::kDummy
                                          ? GenerationDefaults{}
                                          : load_model_generation_defaults(model_path);
  const SamplingParams params = sampling_params(args, defaults);

  const auto load_start = Clock::now();
  LoadOptions load_options;
  load_options.num_threads = threads;
  load_options.keep_quantized = !args.has("--dequantize-gguf");
  LlamaModel model(load_llama_checkpoint(model_path, format, load_options));
  const double load_s = seconds_since(load_start);
  const ModelConfig& config = model.config();
  std::printf("model: %s (%s, %lld layers, hidden %lld, vocab %lld) loaded in %.2f s, %d threads\n",
              model_path.c_str(), config.architecture.c_str(),
              static_cast<long long>(config.num_hidden_layers),
              static_cast<long long>(config.hidden_size), static_cast<long long>(config.vocab_size),
              load_s, cpu_num_threads());

  const int64_t block_size = args.int_value("--block-size", 16);
  const int64_t chunk = args.int_value("--max-num-batched-tokens", 2048);
  if (block_size < 1 || chunk < 1) {
    throw UsageError("--block-size and --max-num-batched-tokens must be >= 1");
  }
  const int64_t max_len = static_cast<int64_t>(prompt.size()) + params.max_tokens;
  const int64_t num_blocks = (max_len + block_size - 1) / block_size;
  KvCache cache(model.kv_cache_shape(num_blocks, block_size));
  std::vector<int32_t> block_table(num_blocks);
  for (int64_t b = 0; b < num_blocks; ++b) block_table[b] = static_cast<int32_t>(b);

  std::vector<int32_t> eos;
  for (int64_t id : defaults.eos_token_ids.empty() ? config.eos_token_ids : defaults.eos_token_ids)
    eos.push_back(static_cast<int32_t>(id));
  Sampler sampler(eos);
  std::vector<int32_t> tokens = prompt;
  std::vector<int32_t> output;
  auto sample = [&](const HostTensor& logits) {
    SamplingRequest request{&params, prompt, output};
    const int32_t token = sampler.sample(logits, std::span(&request, 1))[0].token_id;
    output.push_back(token);
    tokens.push_back(token);
    return !params.ignore_eos && std::find(eos.begin(), eos.end(), token) != eos.end();
  };

  const auto prefill_start = Clock::now();
  HostTensor logits;
  for (int64_t begin = 0; begin < static_cast<int64_t>(prompt.size()); begin += chunk) {
    const int64_t end = std::min<int64_t>(begin + chunk, static_cast<int64_t>(prompt.size()));
    logits = model.forward(sequence_batch(tokens, begin, end, block_table, block_size), cache);
  }
  const double prefill_s = seconds_since(prefill_start);
  bool stopped = sample(logits);

  const auto decode_start = Clock::now();
  int64_t decode_steps = 0;
  while (!stopped && static_cast<int>(output.size()) < params.max_tokens) {
    const auto n = static_cast<int64_t>(tokens.size());
    logits = model.forward(sequence_batch(tokens, n - 1, n, block_table, block_size), cache);
    stopped = sample(logits);
    ++decode_steps;
  }
  const double decode_s = seconds_since(decode_start);

  std::printf("prompt: %zu tokens\n", prompt.size());
  std::printf("output token ids: %s\n", join(output).c_str());
  if (tokenizer) std::printf("output text: %s\n", tokenizer->decode(output).c_str());
  std::printf("prefill: %zu tokens in %.3f s = %.1f tokens/s\n", prompt.size(), prefill_s,
              static_cast<double>(prompt.size()) / prefill_s);
  if (decode_steps > 0) {
    std::printf("decode: %lld tokens in %.3f s = %.1f tokens/s\n",
                static_cast<long long>(decode_steps), decode_s,
                static_cast<double>(decode_steps) / decode_s);
  }
  return 0;
}

}  // namespace vllm::apps

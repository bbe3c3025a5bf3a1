#include "engine/engine.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <sstream>
#include <unordered_map>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>

#include "actors/cpu_worker.hpp"
#include "actors/local_pipeline.hpp"
#if VLLM_HAVE_CUDA
#include "actors/cuda/cuda_worker.hpp"
#include "model/cuda/activation_dtype.hpp"
#include "runtime/cuda/cuda_await.hpp"
#endif
#include "actors/scheduler_actor.hpp"
#include "engine/default_model.hpp"
#include "engine/sample_output.hpp"
#include "kernels/cpu/cpu_threads.hpp"
#include "model/chat_template.hpp"
#include "model/dtype.hpp"
#include "model/gguf.hpp"
#include "model/model_loader.hpp"
#include "model/tokenizer.hpp"
#include "runtime/logging.hpp"
#include "runtime/thread_model.hpp"

namespace vllm {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

std::vector<double> latency_buckets() {
  return {0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1,  0.25, 0.5,
          0.75,  1.0,   2.5,  5.0,  7.5,  10.0, 20.0, 40.0, 80.0};
}

std::string finish_reason_name(FinishReason reason) {
  switch (reason) {
    case FinishReason::kStop:
      return "stop";
    case FinishReason::kLength:
      return "length";
    default:
      return "abort";
  }
}

}  // namespace

// One user request (n samples) on its way: shared by the consumers of its samples' updates
// and by the caller reading its deltas.
struct RequestRun {
  std::string id;
  std::vector<int32_t> prompt_ids;
  SamplingParams params;
  std::vector<RequestId> child_ids;
  AsyncStream<TokenDelta> deltas;
  Clock::time_point arrival = Clock::now();

  std::mutex mutex;  // the samples' consumers may run on different threads
  int remaining = 0;
  bool first_token_seen = false;
  Usage usage;
  std::optional<std::string> error;
};

struct CompletionStream::State {
  std::shared_ptr<RequestRun> run;
  std::weak_ptr<Engine::Impl> engine;
  bool ended = false;
};

struct Engine::Impl : std::enable_shared_from_this<Engine::Impl> {
  EngineArgs args;
  std::unique_ptr<ThreadModel> threads;
  ModelConfig config;
  GenerationDefaults generation_defaults;
  std::optional<Tokenizer> tokenizer;
  std::optional<ChatTemplate> chat_template;
  std::vector<int32_t> eos_token_ids;
  std::shared_ptr<Worker> worker;
  std::function<std::optional<std::string>()> worker_fatal_error;  // set for a CUDA worker
  std::shared_ptr<SchedulerActor> scheduler;

  std::atomic<uint64_t> next_request_number{0};
  std::atomic<int32_t> num_unfinished{0};
  std::atomic<bool> accepting{true};

  std::mutex requests_mutex;
  std::unordered_map<std::string, std::shared_ptr<RequestRun>> requests;

  mutable std::mutex metrics_mutex;
  EngineStats metrics;

  ~Impl() {
    if (threads) threads->shutdown();
  }

  std::vector<int32_t> tokenize(const Prompt& prompt, bool add_special_tokens) const {
    if (const auto* ids = std::get_if<std::vector<int32_t>>(&prompt)) return *ids;
    if (!tokenizer) {
      throw InvalidRequestError("this model has no tokenizer: send the prompt as token ids");
    }
    return tokenizer->encode(std::get<std::string>(prompt), add_special_tokens);
  }

  asio::awaitable<std::shared_ptr<RequestRun>> start(Prompt prompt, SamplingParams params,
                                                     GenerateOptions options);
  asio::awaitable<void> consume(std::shared_ptr<RequestRun> run, int32_t index, RequestSink sink);
  void record_token_latency(RequestRun& run, Clock::time_point& last_token, size_t num_tokens);
  asio::awaitable<bool> abort(const std::string& request_id);
};

// ---- validation ----------------------------------------------------------------------

void Engine::validate(const std::vector<int32_t>& prompt_ids, const SamplingParams& p) const {
  const auto& a = impl_->args;
  const int64_t vocab = impl_->config.vocab_size;
  auto bad = [](const std::string& message) { throw InvalidRequestError(message); };
  if (prompt_ids.empty()) bad("the prompt is empty");
  for (int32_t id : prompt_ids) {
    if (id < 0 || id >= vocab) {
      bad("prompt token id " + std::to_string(id) + " is outside the vocabulary [0, " +
          std::to_string(vocab) + ")");
    }
  }
  if (static_cast<int64_t>(prompt_ids.size()) >= a.max_model_len) {
    bad("this model's maximum context length is " + std::to_string(a.max_model_len) +
        " tokens, but the prompt has " + std::to_string(prompt_ids.size()) +
        " tokens (at least one must remain for the output)");
  }
  if (p.n < 1 || p.n > 128) bad("n must be between 1 and 128, got " + std::to_string(p.n));
  if (!std::isfinite(p.temperature) || p.temperature < 0) bad("temperature must be >= 0");
  if (!(p.top_p > 0 && p.top_p <= 1)) bad("top_p must be in (0, 1]");
  if (p.top_k < -1) bad("top_k must be -1 (disabled), 0 (disabled) or positive");
  if (!(p.min_p >= 0 && p.min_p <= 1)) bad("min_p must be in [0, 1]");
  if (!(p.presence_penalty >= -2 && p.presence_penalty <= 2)) {
    bad("presence_penalty must be in [-2, 2]");
  }
  if (!(p.frequency_penalty >= -2 && p.frequency_penalty <= 2)) {
    bad("frequency_penalty must be in [-2, 2]");
  }
  if (!(p.repetition_penalty > 0 && std::isfinite(p.repetition_penalty))) {
    bad("repetition_penalty must be > 0");
  }
  if (p.max_tokens < 1) bad("max_tokens must be at least 1, got " + std::to_string(p.max_tokens));
  if (p.min_tokens < 0 || p.min_tokens > p.max_tokens) {
    bad("min_tokens must be in [0, max_tokens]");
  }
  if (p.logprobs && (*p.logprobs < 0 || *p.logprobs > 20)) bad("logprobs must be in [0, 20]");
  for (auto [id, bias] : p.logit_bias) {
    if (id < 0 || id >= vocab) bad("logit_bias token id " + std::to_string(id) + " is invalid");
    if (!std::isfinite(bias)) bad("logit_bias values must be finite");
  }
  for (int32_t id : p.stop_token_ids) {
    if (id < 0 || id >= vocab) bad("stop_token_ids holds an invalid id " + std::to_string(id));
  }
}

// ---- requests ------------------------------------------------------------------------------

asio::awaitable<std::shared_ptr<RequestRun>> Engine::Impl::start(Prompt prompt,
                                                                 SamplingParams params,
                                                                 GenerateOptions options) {
  if (!accepting.load()) throw EngineUnavailableError("the engine is shutting down");
  if (worker_fatal_error) {
    if (auto fatal = worker_fatal_error()) throw EngineUnavailableError(*fatal);
  }
  auto run = std::make_shared<RequestRun>();
  run->prompt_ids = tokenize(prompt, options.add_special_tokens);
  Engine(shared_from_this()).validate(run->prompt_ids, params);
  const int32_t limit = args.max_waiting_requests + args.max_num_seqs;
  if (num_unfinished.fetch_add(1) >= limit) {
    num_unfinished.fetch_sub(1);
    throw EngineOverloadedError("the engine's queue is full (" + std::to_string(limit) +
                                " requests); retry later");
  }
  run->id = options.request_id.empty() ? "req-" + std::to_string(next_request_number.fetch_add(1))
                                       : options.request_id;
  run->params = params;

  NewRequest parent;
  parent.id = run->id;
  parent.prompt_token_ids = run->prompt_ids;
  parent.params = params;
  parent.eos_token_ids = eos_token_ids;
  parent.priority = options.priority;
  std::vector<NewRequest> children;
  if (params.n > 1) {
    children = split_parallel_samples(parent);
  } else {
    children.push_back(std::move(parent));
  }
  run->remaining = static_cast<int32_t>(children.size());
  for (const auto& child : children) run->child_ids.push_back(child.id);
  {
    std::lock_guard lock(requests_mutex);
    if (!requests.emplace(run->id, run).second) {
      num_unfinished.fetch_sub(1);
      throw InvalidRequestError("a request with id '" + run->id + "' is already running");
    }
  }

  auto executor = co_await asio::this_coro::executor;
  std::exception_ptr failure;
  for (size_t i = 0; i < children.size(); ++i) {
    auto sink = std::make_shared<AsyncStream<RequestEvent>>();
    try {
      co_await scheduler->add_request(std::move(children[i]), sink);
    } catch (...) {
      failure = std::current_exception();
    }
    if (failure) {
      for (size_t j = 0; j < i; ++j) {
        co_await scheduler->finish_request(run->child_ids[j], FinishReason::kAbort);
      }
      break;
    }
    auto self = shared_from_this();
    asio::co_spawn(
        executor,
        [self, run, i, sink] { return self->consume(run, static_cast<int32_t>(i), sink); },
        asio::detached);
  }
  if (failure) {
    {
      std::lock_guard lock(requests_mutex);
      requests.erase(run->id);
    }
    num_unfinished.fetch_sub(1);
    try {
      std::rethrow_exception(failure);
    } catch (const ActorStoppedError& e) {
      throw EngineUnavailableError(e.what());
    }
  }
  co_return run;
}

void Engine::Impl::record_token_latency(RequestRun& run, Clock::time_point& last_token,
                                        size_t num_tokens) {
  auto now = Clock::now();
  std::lock_guard lock(metrics_mutex);
  bool first;
  {
    first = !run.first_token_seen;
    run.first_token_seen = true;
  }
  if (first) {
    metrics.time_to_first_token_seconds.observe(
        std::chrono::duration<double>(now - run.arrival).count());
  } else if (last_token != Clock::time_point{} && num_tokens > 0) {
    double gap = std::chrono::duration<double>(now - last_token).count() / num_tokens;
    for (size_t i = 0; i < num_tokens; ++i) metrics.inter_token_latency_seconds.observe(gap);
  }
  last_token = now;
}

asio::awaitable<void> Engine::Impl::consume(std::shared_ptr<RequestRun> run, int32_t index,
                                            RequestSink sink) {
  const Tokenizer* tok = tokenizer ? &*tokenizer : nullptr;
  SampleOutput output(tok, run->prompt_ids, run->params);
  Clock::time_point last_token{};
  int32_t num_tokens = 0;
  int32_t num_cached = 0;
  bool done = false;
  FinishReason reason = FinishReason::kNone;
  std::optional<std::variant<std::string, int32_t>> stop_reason;
  std::optional<std::string> error;

  while (auto event = co_await sink->next()) {
    if (done) continue;  // tokens that were in flight when a stop string matched
    const RequestUpdate& update = event->update;
    if (event->error) error = event->error;
    num_cached = std::max(num_cached, update.num_cached_tokens);
    TokenDelta delta;
    delta.request_id = run->id;
    delta.index = index;
    delta.token_ids = update.new_token_ids;
    delta.logprobs = update.new_logprobs;
    num_tokens += static_cast<int32_t>(update.new_token_ids.size());
    if (!update.new_token_ids.empty()) {
      record_token_latency(*run, last_token, update.new_token_ids.size());
    }
    SampleOutput::Delta text = output.push(update.new_token_ids, update.finished);
    delta.text = std::move(text.text);
    if (text.matched_stop) {
      done = true;
      reason = FinishReason::kStop;
      stop_reason = *text.matched_stop;
      auto self = shared_from_this();
      RequestId child = run->child_ids[index];
      auto executor = co_await asio::this_coro::executor;
      auto finish = [self, child]() -> asio::awaitable<void> {
        co_await self->scheduler->finish_request(child, FinishReason::kStop);
      };
      asio::co_spawn(executor, std::move(finish), asio::detached);
    } else if (update.finished) {
      done = true;
      reason = update.finish_reason;
      if (update.stop_token_id >= 0 && std::find(eos_token_ids.begin(), eos_token_ids.end(),
                                                 update.stop_token_id) == eos_token_ids.end()) {
        stop_reason = update.stop_token_id;
      }
    }
    if (done) {
      delta.finish_reason = finish_reason_name(reason);
      delta.stop_reason = stop_reason;
      bool last;
      {
        std::lock_guard lock(run->mutex);
        run->usage.completion_tokens += num_tokens;
        if (index == 0) run->usage.cached_tokens = num_cached;
        if (error && !run->error) run->error = error;
        last = --run->remaining == 0;
        if (last) {
          run->usage.prompt_tokens = static_cast<int32_t>(run->prompt_ids.size());
          delta.usage = run->usage;
        }
      }
      {
        std::lock_guard lock(metrics_mutex);
        metrics.generation_tokens += num_tokens;
        if (reason == FinishReason::kStop) ++metrics.request_success_stop;
        if (reason == FinishReason::kLength) ++metrics.request_success_length;
        if (reason == FinishReason::kAbort) ++metrics.request_success_abort;
        if (last) {
          metrics.prompt_tokens += static_cast<int64_t>(run->prompt_ids.size());
          metrics.e2e_request_latency_seconds.observe(
              std::chrono::duration<double>(Clock::now() - run->arrival).count());
        }
      }
      run->deltas.push(std::move(delta));
      if (last) {
        run->deltas.close();
        {
          std::lock_guard lock(requests_mutex);
          requests.erase(run->id);
        }
        num_unfinished.fetch_sub(1);
      }
    } else if (!delta.text.empty() || !delta.token_ids.empty()) {
      run->deltas.push(std::move(delta));
    }
  }
}

asio::awaitable<bool> Engine::Impl::abort(const std::string& request_id) {
  std::shared_ptr<RequestRun> run;
  {
    std::lock_guard lock(requests_mutex);
    auto it = requests.find(request_id);
    if (it == requests.end()) co_return false;
    run = it->second;
  }
  bool any = false;
  for (const auto& child : run->child_ids) {
    any = co_await scheduler->finish_request(child, FinishReason::kAbort) || any;
  }
  co_return any;
}

// ---- Engine ------------------------------------------------------------------------------

asio::awaitable<Engine> Engine::create(EngineArgs args) {
  auto impl = std::make_shared<Impl>();
  auto log = logger("engine");
  if (args.model.empty()) args.model = bundled_model_path().string();
  if (args.device != "auto" && args.device != "cpu" && args.device != "cuda") {
    throw std::invalid_argument("--device must be auto, cpu or cuda, got '" + args.device + "'");
  }
#if VLLM_HAVE_CUDA
  const bool have_gpu = cuda_device_available();
#else
  const bool have_gpu = false;
#endif
  if (args.device == "cuda" && !have_gpu) {
    throw std::invalid_argument(
        "--device cuda: no CUDA device is available (or this build has no CUDA); use --device cpu");
  }
  const bool use_cuda = args.device == "cuda" || (args.device == "auto" && have_gpu);
  args.device = use_cuda ? "cuda" : "cpu";
  const DtypeChoice dtype = parse_dtype(args.dtype);
  if (!use_cuda && (dtype == DtypeChoice::kBfloat16 || dtype == DtypeChoice::kFloat16)) {
    log->warn("--dtype {}: the CPU backend computes in float32", args.dtype);
  }
  if (args.block_size < 1 || args.max_num_seqs < 1 || args.max_num_batched_tokens < 1) {
    throw std::invalid_argument(
        "--block-size, --max-num-seqs and --max-num-batched-tokens must be positive");
  }
  if (args.long_prefill_token_threshold < 0 || args.max_prefill_tokens_per_decode < -1) {
    throw std::invalid_argument(
        "--long-prefill-token-threshold must be >= 0 and --max-prefill-tokens-per-decode >= -1 "
        "(-1: auto)");
  }
  if (args.scheduling_policy != "fcfs" && args.scheduling_policy != "priority") {
    throw std::invalid_argument("--scheduling-policy must be fcfs or priority, got '" +
                                args.scheduling_policy + "'");
  }
  if (args.tensor_parallel_size < 1 || args.pipeline_parallel_size < 1) {
    throw std::invalid_argument("--tensor-parallel-size (" +
                                std::to_string(args.tensor_parallel_size) +
                                ") and --pipeline-parallel-size (" +
                                std::to_string(args.pipeline_parallel_size) + ") must be >= 1");
  }
  const bool parallel = args.tensor_parallel_size * args.pipeline_parallel_size > 1;
  if (use_cuda && args.pipeline_parallel_size > 1) {
    throw std::invalid_argument(
        "--pipeline-parallel-size > 1 runs on the CPU backend only in this build (CUDA runs "
        "--tensor-parallel-size); use --device cpu");
  }
  if (args.num_cpu_threads > 0) set_cpu_num_threads(args.num_cpu_threads);
  LoadFormat format = parse_load_format(args.load_format);
  fs::path model_path = args.model;
#if VLLM_HAVE_CUDA
  // Resolved, or refused (float32), before the model loads.
  const cuda::ActivationType cuda_dtype =
      use_cuda ? cuda_activation_type(dtype, model_path, format) : cuda::ActivationType::kBf16;
#endif
  if (args.served_model_name.empty()) args.served_model_name = model_path.filename().string();

  impl->threads = std::make_unique<ThreadModel>(1);
  const bool external_worker = static_cast<bool>(args.worker_factory);
  auto worker_executor = external_worker
                             ? impl->threads->frontend()
                             : impl->threads->add_dedicated_thread(args.device + "-worker");

  // Load on the worker's thread: the caller's executor stays free.
  auto start_time = Clock::now();
  // Named, not a temporary inside the co_await: GCC 12 destroys such temporaries twice.
  // The single CPU worker keeps GGUF block-quantized matrices as blocks; the others take fp32.
  const bool keep_quantized = !use_cuda && !parallel && !external_worker && !args.dequantize_gguf;
  auto load = [model_path, format, seed = args.seed, external_worker,
               keep_quantized]() -> asio::awaitable<LlamaCheckpoint> {
    if (external_worker) {  // the weights live with the worker: only the config here
      LlamaCheckpoint config_only;
      config_only.weights.config = load_model_config(model_path);
      co_return config_only;
    }
    co_return load_llama_checkpoint(model_path, format,
                                    LoadOptions{.seed = seed, .keep_quantized = keep_quantized});
  };
  auto loading = asio::co_spawn(worker_executor, std::move(load), asio::use_awaitable);
  LlamaCheckpoint checkpoint = co_await std::move(loading);
  LlamaWeights& weights = checkpoint.weights;
  impl->config = weights.config;
  impl->generation_defaults = load_model_generation_defaults(model_path);
  log->info("loaded {} ({} layers, hidden {}, vocab {}) in {:.2f} s", model_path.string(),
            impl->config.num_hidden_layers, impl->config.hidden_size, impl->config.vocab_size,
            std::chrono::duration<double>(Clock::now() - start_time).count());

  // Tokenizer and chat template.
  fs::path model_dir = fs::is_directory(model_path) ? model_path : model_path.parent_path();
  if (format != LoadFormat::kDummy && detect_load_format(model_path) == LoadFormat::kGguf) {
    impl->tokenizer.emplace(Tokenizer::from_gguf(GgufFile::open(model_path)));
    try {
      impl->chat_template.emplace(ChatTemplate::from_gguf(model_path));
    } catch (const std::exception&) {
    }
  } else if (fs::exists(model_dir / "tokenizer.json")) {
    impl->tokenizer.emplace(Tokenizer::from_tokenizer_json(model_dir / "tokenizer.json"));
    if (fs::exists(model_dir / "tokenizer_config.json")) {
      try {
        impl->chat_template.emplace(
            ChatTemplate::from_tokenizer_config_file(model_dir / "tokenizer_config.json"));
      } catch (const std::exception&) {
      }
    }
  } else {
    log->warn("no tokenizer found beside {}: prompts must be token ids", model_path.string());
  }
  if (!args.chat_template.empty()) {
    std::string source = args.chat_template;
    if (fs::exists(source)) {
      std::ifstream in(source);
      std::stringstream text;
      text << in.rdbuf();
      source = text.str();
    }
    impl->chat_template.emplace(ChatTemplate::from_string(source));
  }

  for (int64_t id : impl->config.eos_token_ids) impl->eos_token_ids.push_back(int32_t(id));
  for (int64_t id : impl->generation_defaults.eos_token_ids) {
    impl->eos_token_ids.push_back(static_cast<int32_t>(id));
  }
  if (impl->tokenizer && impl->tokenizer->eos_token_id()) {
    impl->eos_token_ids.push_back(*impl->tokenizer->eos_token_id());
  }
  std::sort(impl->eos_token_ids.begin(), impl->eos_token_ids.end());
  impl->eos_token_ids.erase(std::unique(impl->eos_token_ids.begin(), impl->eos_token_ids.end()),
                            impl->eos_token_ids.end());

  int64_t model_max = impl->config.max_position_embeddings;
  if (args.max_model_len <= 0) {
    args.max_model_len = static_cast<int32_t>(model_max);
  } else if (args.max_model_len > model_max) {
    throw std::invalid_argument("--max-model-len " + std::to_string(args.max_model_len) +
                                " exceeds the model's max_position_embeddings " +
                                std::to_string(model_max));
  }

  if (external_worker) {
    WorkerLaunch launch;
    launch.model = model_path.string();
    launch.load_format = args.load_format;
    launch.eos_token_ids = impl->eos_token_ids;
    launch.block_size = args.block_size;
    launch.kv_cache_memory_bytes = args.kv_cache_memory_bytes;
    launch.num_kv_blocks_override = args.num_kv_blocks_override;
    launch.max_num_batched_tokens = args.max_num_batched_tokens;
    launch.max_model_len = args.max_model_len;
    launch.seed = args.seed;
    auto making = args.worker_factory(std::move(launch));
    impl->worker = co_await std::move(making);
  } else if (use_cuda) {
#if VLLM_HAVE_CUDA
    CudaWorkerConfig cuda_config;
    cuda_config.block_size = args.block_size;
    cuda_config.gpu_memory_utilization = args.gpu_memory_utilization;
    cuda_config.num_kv_blocks_override = args.num_kv_blocks_override;
    cuda_config.max_num_batched_tokens = args.max_num_batched_tokens;
    cuda_config.seed = args.seed;
    cuda_config.dtype = cuda_dtype;
    log->info("CUDA activations: {}{}", cuda::activation_type_name(cuda_config.dtype),
              args.dtype == "auto" ? " (--dtype auto)" : "");
    if (args.tensor_parallel_size > 1) {
      // Cut the shards and form the NCCL group off the caller's executor.
      auto build = [&threads = *impl->threads, frontend = impl->threads->frontend(), &weights,
                    eos = impl->eos_token_ids, cuda_config,
                    tp = args.tensor_parallel_size]() -> asio::awaitable<std::shared_ptr<Worker>> {
        co_return make_cuda_tensor_parallel_worker(threads, frontend, weights, eos, cuda_config,
                                                   tp);
      };
      auto building = asio::co_spawn(worker_executor, std::move(build), asio::use_awaitable);
      impl->worker = co_await std::move(building);
    } else {
      auto cuda_worker =
          make_cuda_worker(worker_executor, std::move(weights), impl->eos_token_ids, cuda_config);
      impl->worker_fatal_error = [weak = std::weak_ptr<CudaWorker>(cuda_worker)] {
        auto worker = weak.lock();
        return worker ? worker->fatal_error() : std::nullopt;
      };
      impl->worker = std::move(cuda_worker);
    }
#endif
  } else if (parallel) {
    LocalPipelineConfig pipeline_config;
    pipeline_config.tensor_parallel_size = args.tensor_parallel_size;
    pipeline_config.pipeline_parallel_size = args.pipeline_parallel_size;
    pipeline_config.block_size = args.block_size;
    pipeline_config.kv_cache_memory_bytes = args.kv_cache_memory_bytes;
    pipeline_config.num_kv_blocks_override = args.num_kv_blocks_override;
    pipeline_config.seed = args.seed;
    // Cut the shards and connect the Gloo groups off the caller's executor.
    auto build = [&threads = *impl->threads, frontend = impl->threads->frontend(),
                  weights = std::move(weights), eos = impl->eos_token_ids,
                  pipeline_config]() -> asio::awaitable<std::shared_ptr<PipelineWorker>> {
      co_return make_local_pipeline_worker(threads, frontend, weights, eos, pipeline_config);
    };
    auto building = asio::co_spawn(worker_executor, std::move(build), asio::use_awaitable);
    impl->worker = co_await std::move(building);
  } else {
    CpuWorkerConfig worker_config;
    worker_config.block_size = args.block_size;
    worker_config.kv_cache_memory_bytes = args.kv_cache_memory_bytes;
    worker_config.num_kv_blocks_override = args.num_kv_blocks_override;
    worker_config.seed = args.seed;
    impl->worker = std::make_shared<CpuWorker>(worker_executor, LlamaModel(std::move(checkpoint)),
                                               impl->eos_token_ids, worker_config);
  }
  auto& worker = impl->worker;
  const int64_t num_blocks = worker->num_kv_blocks();
  log->info("{} worker; KV cache: {} blocks of {} tokens ({} tokens), max_model_len {}",
            worker->device_name(), num_blocks, args.block_size, num_blocks * args.block_size,
            args.max_model_len);

  SchedulerConfig scheduler_config;
  scheduler_config.max_num_batched_tokens = args.max_num_batched_tokens;
  scheduler_config.max_num_seqs = args.max_num_seqs;
  scheduler_config.max_model_len = args.max_model_len;
  scheduler_config.enable_chunked_prefill = args.enable_chunked_prefill;
  scheduler_config.long_prefill_token_threshold = args.long_prefill_token_threshold;
  scheduler_config.max_prefill_tokens_per_decode = args.max_prefill_tokens_per_decode >= 0
                                                       ? args.max_prefill_tokens_per_decode
                                                   : args.device == "cpu" ? 2
                                                                          : 0;
  scheduler_config.policy =
      args.scheduling_policy == "priority" ? SchedulingPolicy::kPriority : SchedulingPolicy::kFcfs;
  KvBlockManagerConfig kv_config;
  kv_config.num_blocks = static_cast<int32_t>(num_blocks);
  kv_config.block_size = args.block_size;
  kv_config.enable_prefix_caching = args.enable_prefix_caching;
  // With pipeline stages, as many steps in flight as there are stages, so that none idles.
  impl->scheduler = std::make_shared<SchedulerActor>(impl->threads->frontend(),
                                                     Scheduler(scheduler_config, kv_config),
                                                     impl->worker, args.pipeline_parallel_size);

  impl->metrics.time_to_first_token_seconds = Histogram(latency_buckets());
  impl->metrics.inter_token_latency_seconds = Histogram(latency_buckets());
  impl->metrics.e2e_request_latency_seconds = Histogram(latency_buckets());
  impl->metrics.num_kv_blocks = static_cast<int32_t>(num_blocks);
  impl->args = std::move(args);
  co_return Engine(std::move(impl));
}

asio::awaitable<Completion> Engine::generate(Prompt prompt, SamplingParams params) {
  GenerateOptions options;
  return generate(std::move(prompt), std::move(params), nullptr, std::move(options));
}

asio::awaitable<Completion> Engine::generate(Prompt prompt, SamplingParams params,
                                             GenerateOptions options) {
  return generate(std::move(prompt), std::move(params), nullptr, std::move(options));
}

asio::awaitable<Completion> Engine::generate(Prompt prompt, SamplingParams params,
                                             std::function<void(const TokenDelta&)> on_delta) {
  GenerateOptions options;
  return generate(std::move(prompt), std::move(params), std::move(on_delta), std::move(options));
}

asio::awaitable<CompletionStream> Engine::stream(Prompt prompt, SamplingParams params) {
  GenerateOptions options;
  return stream(std::move(prompt), std::move(params), std::move(options));
}

asio::awaitable<Completion> Engine::generate(Prompt prompt, SamplingParams params,
                                             std::function<void(const TokenDelta&)> on_delta,
                                             GenerateOptions options) {
  auto starting = impl_->start(std::move(prompt), params, std::move(options));
  auto run = co_await std::move(starting);
  Completion completion;
  completion.request_id = run->id;
  completion.prompt_token_ids = run->prompt_ids;
  completion.outputs.resize(run->child_ids.size());
  for (size_t i = 0; i < completion.outputs.size(); ++i) {
    completion.outputs[i].index = static_cast<int32_t>(i);
  }
  while (auto delta = co_await run->deltas.next()) {
    auto& out = completion.outputs.at(delta->index);
    out.text += delta->text;
    out.token_ids.insert(out.token_ids.end(), delta->token_ids.begin(), delta->token_ids.end());
    out.logprobs.insert(out.logprobs.end(), delta->logprobs.begin(), delta->logprobs.end());
    if (delta->finish_reason) {
      out.finish_reason = *delta->finish_reason;
      out.stop_reason = delta->stop_reason;
    }
    if (delta->usage) completion.usage = *delta->usage;
    if (on_delta) on_delta(*delta);
  }
  if (run->error) throw EngineUnavailableError(*run->error);
  co_return completion;
}

asio::awaitable<CompletionStream> Engine::stream(Prompt prompt, SamplingParams params,
                                                 GenerateOptions options) {
  auto state = std::make_shared<CompletionStream::State>();
  auto starting = impl_->start(std::move(prompt), std::move(params), std::move(options));
  state->run = co_await std::move(starting);
  state->engine = impl_;
  co_return CompletionStream(std::move(state));
}

asio::awaitable<std::vector<Completion>> Engine::generate_batch(std::vector<Prompt> prompts,
                                                                SamplingParams params) {
  std::vector<asio::awaitable<Completion>> runs;
  runs.reserve(prompts.size());
  for (auto& prompt : prompts) runs.push_back(generate(std::move(prompt), params));
  co_return co_await when_all(std::move(runs));
}

asio::awaitable<bool> Engine::abort(const std::string& request_id) {
  return impl_->abort(request_id);
}

const Tokenizer& Engine::tokenizer() const {
  if (!impl_->tokenizer) throw EngineUnavailableError("this model has no tokenizer");
  return *impl_->tokenizer;
}
bool Engine::has_tokenizer() const {
  return impl_->tokenizer.has_value();
}
const ModelConfig& Engine::model_config() const {
  return impl_->config;
}
const ChatTemplate* Engine::chat_template() const {
  return impl_->chat_template ? &*impl_->chat_template : nullptr;
}
const EngineArgs& Engine::args() const {
  return impl_->args;
}
std::string Engine::device_name() const {
  return impl_->worker->device_name();
}

SamplingParams Engine::default_sampling_params() const {
  SamplingParams params;
  const auto& g = impl_->generation_defaults;
  if (g.temperature) params.temperature = *g.temperature;
  if (g.top_p) params.top_p = *g.top_p;
  if (g.top_k) params.top_k = *g.top_k;
  if (g.min_p) params.min_p = *g.min_p;
  if (g.repetition_penalty) params.repetition_penalty = *g.repetition_penalty;
  if (g.max_new_tokens) params.max_tokens = *g.max_new_tokens;
  return params;
}

std::optional<std::string> Engine::health_error() const {
  if (impl_->worker_fatal_error) return impl_->worker_fatal_error();
  return std::nullopt;
}

EngineStats Engine::stats() const {
  EngineStats stats;
  {
    std::lock_guard lock(impl_->metrics_mutex);
    stats = impl_->metrics;
  }
  SchedulerStats scheduler = impl_->scheduler->stats();
  stats.num_requests_running = scheduler.num_running;
  stats.num_requests_waiting = scheduler.num_waiting;
  stats.kv_cache_usage = scheduler.kv_cache_usage;
  stats.num_preemptions = scheduler.num_preemptions;
  stats.prefix_cache_queries = scheduler.prefix_cache.num_query_tokens;
  stats.prefix_cache_hits = scheduler.prefix_cache.num_hit_tokens;
  return stats;
}

asio::awaitable<void> Engine::shutdown(int64_t deadline_ms) {
  impl_->accepting = false;
  auto executor = co_await asio::this_coro::executor;
  asio::steady_timer timer(executor);
  auto deadline = Clock::now() + std::chrono::milliseconds(deadline_ms);
  while (impl_->num_unfinished.load() > 0 && Clock::now() < deadline) {
    timer.expires_after(std::chrono::milliseconds(10));
    co_await timer.async_wait(asio::use_awaitable);
  }
  std::vector<std::string> left;
  {
    std::lock_guard lock(impl_->requests_mutex);
    for (const auto& [id, run] : impl_->requests) left.push_back(id);
  }
  for (const auto& id : left) co_await impl_->abort(id);
  while (impl_->num_unfinished.load() > 0) {
    timer.expires_after(std::chrono::milliseconds(5));
    co_await timer.async_wait(asio::use_awaitable);
  }
  co_await impl_->scheduler->stop();
  co_await impl_->worker->stop();
}

// ---- CompletionStream ----------------------------------------------------------------------

CompletionStream::CompletionStream(std::shared_ptr<State> state) : state_(std::move(state)) {}
CompletionStream::CompletionStream(CompletionStream&&) noexcept = default;
CompletionStream& CompletionStream::operator=(CompletionStream&&) noexcept = default;

CompletionStream::~CompletionStream() {
  if (!state_ || state_->ended) return;
  auto engine = state_->engine.lock();
  if (!engine) return;
  // Dropped before its end (e.g. the client went away): abort, without waiting.
  std::string id = state_->run->id;
  asio::co_spawn(
      engine->threads->frontend(),
      [engine, id]() -> asio::awaitable<void> { co_await engine->abort(id); }, asio::detached);
}

const std::string& CompletionStream::request_id() const {
  return state_->run->id;
}

asio::awaitable<std::optional<TokenDelta>> CompletionStream::next() {
  auto delta = co_await state_->run->deltas.next();
  if (!delta) {
    state_->ended = true;
    // As generate(): a request whose step failed (e.g. its node went down) ends in an error.
    if (state_->run->error) throw EngineUnavailableError(*state_->run->error);
  }
  co_return delta;
}

}  // namespace vllm

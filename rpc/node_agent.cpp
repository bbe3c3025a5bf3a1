#include "rpc/node_agent.hpp"

#include <unistd.h>

#include <chrono>
#include <csignal>
#include <map>

#include <capnp/rpc-twoparty.h>
#include <kj/async-io.h>
#include <kj/async-unix.h>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>

#include <cstring>

#include "actors/cpu_stage_worker.hpp"
#include "actors/cpu_worker.hpp"
#if VLLM_HAVE_CUDA
#include "actors/cuda/cuda_worker.hpp"
#include "kernels/cuda/cuda_check.hpp"
#include "model/cuda/activation_dtype.hpp"
#include "model/cuda/nccl_group.hpp"
#endif
#include "kernels/cpu/cpu_threads.hpp"
#include "model/gloo_communicator.hpp"
#include "model/llama_weight_shards.hpp"
#include "model/model_loader.hpp"
#include "rpc/kj_from_asio.hpp"
#include "rpc/kj_loop.hpp"
#include "rpc/plan_codec.hpp"
#include "rpc/rpc_rendezvous_store.hpp"
#include "rpc/worker_protocol.capnp.h"
#include "rpc/worker_spec.hpp"
#include "runtime/logging.hpp"
#include "runtime/thread_model.hpp"

namespace vllm::rpc {
namespace {

using Clock = std::chrono::steady_clock;

// What a worker slot hosts: a whole-model Worker, or one rank of a TP x PP layout.
struct Hosted {
  std::shared_ptr<Worker> whole;
  std::shared_ptr<StageWorker> stage;
  std::shared_ptr<RendezvousStore> store;  // the stage's TP group met through it
  int64_t num_kv_blocks() const { return whole ? whole->num_kv_blocks() : stage->num_kv_blocks(); }
  std::string device_name() const { return whole ? whole->device_name() : stage->device_name(); }
};

// Builds the worker a spec asks for, on the slot's thread (a TP rank blocks here until its
// group has met).
#if VLLM_HAVE_CUDA
// A CUDA worker on GPU spec.device_index of this node: the whole model, or one TP rank whose NCCL
// group forms from a unique id that TP rank 0 publishes through the head's rendezvous (over RPC).
Hosted make_cuda_worker(asio::any_io_executor executor, const WorkerSpec& spec,
                        RendezvousStore* store) {
  const LoadFormat format = parse_load_format(spec.load_format);
  const ParallelLayout layout{spec.tensor_rank, spec.tensor_size, spec.pipeline_rank,
                              spec.pipeline_size};
  validate_layout(layout);
  if (layout.pp_size > 1) {
    throw ParallelLayoutError("CUDA workers run tensor parallel only (pipeline_parallel_size " +
                              std::to_string(layout.pp_size) + " needs CPU workers)");
  }
  CudaWorkerConfig config;
  config.block_size = spec.block_size;
  config.num_kv_blocks_override = spec.num_kv_blocks_override;
  config.seed = spec.seed;
  config.device = spec.device_index;
  config.dtype = cuda_activation_type(DtypeChoice::kAuto, spec.model_path, format);
  LlamaWeights weights =
      load_llama_weights(spec.model_path, format, LoadOptions{.seed = spec.seed});
  Hosted hosted;
  if (layout.tp_size == 1) {
    hosted.whole =
        std::make_shared<CudaWorker>(executor, std::move(weights), spec.eos_token_ids, config);
    return hosted;
  }
  const std::string key = "nccl-unique-id-tp-group";
  const auto timeout = std::chrono::milliseconds(spec.collective_timeout_ms);
  std::string unique_id;
  if (layout.tp_rank == 0) {
    unique_id = cuda::NcclGroup::new_unique_id();
    store->set(key, std::vector<char>(unique_id.begin(), unique_id.end()));
  } else {
    const std::vector<char> bytes = store->get(key, timeout);
    unique_id.assign(bytes.begin(), bytes.end());
  }
  cuda::check_cuda(cudaSetDevice(spec.device_index), "cudaSetDevice");  // the group's device
  auto group = cuda::NcclGroup::join(unique_id, layout.tp_rank, layout.tp_size);
  hosted.stage = std::make_shared<CudaWorker>(executor, shard_llama_weights(weights, layout),
                                              spec.eos_token_ids, config, layout, group);
  return hosted;
}
#endif

asio::awaitable<Hosted> make_worker(asio::any_io_executor executor, WorkerSpec spec,
                                    RendezvousStore* store) {
  if (spec.device == "cuda") {
#if VLLM_HAVE_CUDA
    co_return make_cuda_worker(executor, spec, store);
#else
    throw std::invalid_argument("this node agent was built without CUDA: no 'cuda' workers");
#endif
  }
  if (spec.device != "cpu") {
    throw std::invalid_argument("a node agent hosts 'cpu' or 'cuda' workers, not '" + spec.device +
                                "'");
  }
  if (spec.num_cpu_threads > 0) set_cpu_num_threads(spec.num_cpu_threads);
  LoadFormat format = parse_load_format(spec.load_format);
  Hosted hosted;
  if (spec.pipeline_size == 1 && spec.tensor_size == 1) {
    // A whole model computes as the engine's own single CPU worker does: GGUF blocks kept.
    LlamaCheckpoint checkpoint = load_llama_checkpoint(
        spec.model_path, format, LoadOptions{.seed = spec.seed, .keep_quantized = true});
    CpuWorkerConfig config;
    config.block_size = spec.block_size;
    config.kv_cache_memory_bytes = spec.kv_cache_memory_bytes;
    config.num_kv_blocks_override = spec.num_kv_blocks_override;
    config.seed = spec.seed;
    hosted.whole = std::make_shared<CpuWorker>(executor, LlamaModel(std::move(checkpoint)),
                                               spec.eos_token_ids, config);
    co_return hosted;
  }
  LlamaWeights weights =
      load_llama_weights(spec.model_path, format, LoadOptions{.seed = spec.seed});
  const ParallelLayout layout{spec.tensor_rank, spec.tensor_size, spec.pipeline_rank,
                              spec.pipeline_size};
  validate_layout(layout);
  std::shared_ptr<Communicator> group;
  if (layout.tp_size > 1) {
    GlooOptions options;
    options.rank = layout.tp_rank;
    options.size = layout.tp_size;
    options.prefix = "tp-stage-" + std::to_string(layout.pp_rank);
    options.hostname = spec.collective_host;
    options.timeout = std::chrono::milliseconds(spec.collective_timeout_ms);
    group = std::make_shared<GlooCommunicator>(*store, options);
  }
  LlamaModel model(shard_llama_weights(weights, layout), layout, std::move(group));
  weights = LlamaWeights{};  // only the shard stays
  CpuStageWorkerConfig config;
  config.block_size = spec.block_size;
  config.num_kv_blocks = spec.num_kv_blocks_override > 0
                             ? spec.num_kv_blocks_override
                             : CpuStageWorker::kv_blocks_for_memory(model, spec.block_size,
                                                                    spec.kv_cache_memory_bytes);
  config.seed = spec.seed;
  hosted.stage =
      std::make_shared<CpuStageWorker>(executor, std::move(model), spec.eos_token_ids, config);
  co_return hosted;
}

// A float32 tensor from its wire form (one copy, into the HostTensor the model reads).
std::shared_ptr<const HostTensor> read_tensor(wire::Tensor::Reader in) {
  if (in.getData().size() == 0) return nullptr;
  auto tensor = std::make_shared<HostTensor>();
  for (int64_t d : in.getShape()) tensor->shape.push_back(d);
  const auto bytes = in.getData();
  if (bytes.size() != static_cast<size_t>(tensor->numel()) * sizeof(float)) {
    throw std::invalid_argument("hidden states: " + std::to_string(bytes.size()) +
                                " bytes do not match their shape");
  }
  tensor->data.resize(static_cast<size_t>(tensor->numel()));
  std::memcpy(tensor->data.data(), bytes.begin(), bytes.size());
  return tensor;
}

}  // namespace

// The agent's state while it runs (KJ thread only, except the ThreadModel's executors).
struct NodeAgent::State {
  NodeAgentOptions options;
  Clock::time_point started = Clock::now();
  ThreadModel threads{1};
  std::map<int32_t, asio::any_io_executor> slots;  // device index -> its worker thread
  int32_t num_open_workers = 0;
  kj::Own<kj::PromiseFulfiller<void>> shutdown;  // a shutdown RPC fulfills it

  asio::any_io_executor slot(int32_t index) {
    auto it = slots.find(index);
    if (it != slots.end()) return it->second;
    auto executor = threads.add_dedicated_thread("worker-" + std::to_string(index));
    slots.emplace(index, executor);
    return executor;
  }
};

namespace {

class WorkerServer final : public wire::Worker::Server {
 public:
  WorkerServer(NodeAgent::State& state, Hosted hosted, asio::any_io_executor executor)
      : state_(state), hosted_(std::move(hosted)), executor_(std::move(executor)) {
    ++state_.num_open_workers;
  }
  ~WorkerServer() {
    // The head dropped it (closed or lost the connection): let the step in flight end.
    --state_.num_open_workers;
    auto whole = hosted_.whole;
    auto stage = hosted_.stage;
    asio::co_spawn(
        executor_,
        [whole, stage]() -> asio::awaitable<void> {
          if (whole) co_await whole->stop();
          if (stage) co_await stage->stop();
        },
        asio::detached);
    logger("node")->info("worker on {} released", hosted_.device_name());
  }

  kj::Promise<void> execute(ExecuteContext context) override {
    auto params = context.getParams();
    auto plan = std::make_shared<const SchedulerOutput>(read_plan(params.getPlan()));
    if (hosted_.whole) {
      auto worker = hosted_.whole;
      auto step =
          run_on_asio<StepResult>(executor_, [worker, plan]() -> asio::awaitable<StepResult> {
            co_return co_await worker->execute(plan);
          });
      return step.then([context](StepResult result) mutable {
        auto samples =
            context.getResults().initSamples(static_cast<unsigned>(result.samples.size()));
        write_samples(result.samples, samples);
      });
    }
    auto hidden = params.hasHiddenIn() ? read_tensor(params.getHiddenIn()) : nullptr;
    auto stage = hosted_.stage;
    auto step = run_on_asio<StageOutput>(executor_,
                                         [stage, plan, hidden]() -> asio::awaitable<StageOutput> {
                                           co_return co_await stage->execute(plan, hidden);
                                         });
    return step.then([context](StageOutput output) mutable {
      auto results = context.getResults();
      auto samples = results.initSamples(static_cast<unsigned>(output.step.samples.size()));
      write_samples(output.step.samples, samples);
      if (output.hidden_states) {
        const HostTensor& h = *output.hidden_states;
        auto tensor = results.initHiddenOut();
        auto shape = tensor.initShape(static_cast<unsigned>(h.shape.size()));
        for (unsigned i = 0; i < h.shape.size(); ++i) shape.set(i, h.shape[i]);
        // Written straight into the answer's buffer, which goes to the socket as it is.
        auto bytes = tensor.initData(static_cast<unsigned>(h.data.size() * sizeof(float)));
        std::memcpy(bytes.begin(), h.data.data(), bytes.size());
      }
    });
  }

  kj::Promise<void> stop(StopContext) override {
    auto whole = hosted_.whole;
    auto stage = hosted_.stage;
    return run_on_asio<void>(executor_, [whole, stage]() -> asio::awaitable<void> {
      if (whole) co_await whole->stop();
      if (stage) co_await stage->stop();
    });
  }

 private:
  NodeAgent::State& state_;
  Hosted hosted_;
  asio::any_io_executor executor_;
};

class AgentServer final : public wire::NodeAgent::Server {
 public:
  explicit AgentServer(NodeAgent::State& state) : state_(state) {}

  kj::Promise<void> health(HealthContext context) override {
    auto status = context.getResults().initStatus();
    status.setName(state_.options.name);
    status.setNumDevices(state_.options.num_devices);
    status.setNumWorkers(state_.num_open_workers);
    status.setUptimeMs(
        std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - state_.started)
            .count());
    status.setPid(static_cast<int64_t>(::getpid()));
    return kj::READY_NOW;
  }

  kj::Promise<void> openWorker(OpenWorkerContext context) override {
    auto params = context.getParams();
    WorkerSpec spec = read_worker_spec(params.getSpec());
    if (spec.device_index < 0 || spec.device_index >= state_.options.num_devices) {
      throw std::invalid_argument("device index " + std::to_string(spec.device_index) +
                                  " is outside this node's " +
                                  std::to_string(state_.options.num_devices) + " devices");
    }
    auto executor = state_.slot(spec.device_index);
    logger("node")->info("loading {} (pipeline {}/{}, tensor {}/{}) on device {}", spec.model_path,
                         spec.pipeline_rank, spec.pipeline_size, spec.tensor_rank, spec.tensor_size,
                         spec.device_index);
    // The store lives on this (KJ) thread, which alone may drop its capability.
    auto store = std::make_shared<RpcRendezvousStore>(kj::getCurrentThreadExecutor(),
                                                      params.getRendezvous());
    RendezvousStore* raw_store = store.get();
    auto loading = run_on_asio<Hosted>(
        executor, [executor, spec, raw_store]() { return make_worker(executor, spec, raw_store); });
    return loading.then([this, context, executor, store](Hosted hosted) mutable {
      hosted.store = store;
      auto results = context.getResults();
      auto info = results.initInfo();
      info.setNumKvBlocks(hosted.num_kv_blocks());
      info.setDeviceName(hosted.device_name());
      logger("node")->info("worker ready: {} KV blocks on {}", hosted.num_kv_blocks(),
                           hosted.device_name());
      results.setWorker(kj::heap<WorkerServer>(state_, std::move(hosted), executor));
    });
  }

  kj::Promise<void> shutdown(ShutdownContext) override {
    logger("node")->info("shutdown requested by the head");
    // Answer first; the agent ends on the next turn of the loop.
    if (state_.shutdown) state_.shutdown->fulfill();
    return kj::READY_NOW;
  }

 private:
  NodeAgent::State& state_;
};

}  // namespace

NodeAgent::NodeAgent(NodeAgentOptions options) : options_(std::move(options)) {}
NodeAgent::~NodeAgent() = default;

void NodeAgent::stop() {
  std::lock_guard lock(mutex_);
  stop_requested_ = true;
  if (stop_fulfiller_ != nullptr) {
    stop_fulfiller_->fulfill();
    stop_fulfiller_ = nullptr;
  }
}

void NodeAgent::run(const std::function<void(uint16_t port)>& on_listening, bool handle_signals) {
  if (handle_signals) {
    kj::UnixEventPort::captureSignal(SIGTERM);
    kj::UnixEventPort::captureSignal(SIGINT);
  }
  auto io = kj::setupAsyncIo();
  State state;
  state.options = options_;
  auto shutdown = kj::newPromiseAndFulfiller<void>();
  state.shutdown = kj::mv(shutdown.fulfiller);
  auto stopped = kj::newPromiseAndCrossThreadFulfiller<void>();
  {
    std::lock_guard lock(mutex_);
    if (stop_requested_) return;
    stop_fulfiller_ = stopped.fulfiller.get();
  }
  struct ClearFulfiller {
    NodeAgent& agent;
    ~ClearFulfiller() {
      std::lock_guard lock(agent.mutex_);
      agent.stop_fulfiller_ = nullptr;
    }
  } clear{*this};

  kj::Own<kj::ConnectionReceiver> listener;
  try {
    auto address =
        io.provider->getNetwork().parseAddress(options_.host, options_.port).wait(io.waitScope);
    listener = address->listen();
  } catch (const kj::Exception& e) {
    throw RpcError("cannot listen on " + options_.host + ":" + std::to_string(options_.port) +
                   ": " + e.getDescription().cStr());
  }
  const uint16_t port = static_cast<uint16_t>(listener->getPort());
  {
    capnp::TwoPartyServer server(kj::heap<AgentServer>(state));
    auto serving = server.listen(*listener);
    logger("node")->info("node agent '{}' listening on {}:{} ({} device slots)", options_.name,
                         options_.host, port, options_.num_devices);
    on_listening(port);
    kj::Promise<void> done = stopped.promise.exclusiveJoin(kj::mv(serving));
    // A shutdown RPC: let its answer go out before the connections close.
    done = done.exclusiveJoin(shutdown.promise.then(
        [&io] { return io.provider->getTimer().afterDelay(100 * kj::MILLISECONDS); }));
    if (handle_signals) {
      auto signal = [&io](int number) {
        return io.unixEventPort.onSignal(number).then(
            [number](siginfo_t) { logger("node")->info("signal {}: stopping", number); });
      };
      done = done.exclusiveJoin(signal(SIGTERM)).exclusiveJoin(signal(SIGINT));
    }
    done.wait(io.waitScope);
  }  // closes the connections: every worker is released
  state.threads.shutdown();
  logger("node")->info("node agent '{}' stopped", options_.name);
}

}  // namespace vllm::rpc

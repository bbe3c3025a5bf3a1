# The worker protocol between the head (scheduler) and a node agent (hosting a node's workers).
# The head opens one Worker per model shard it needs (a whole model, or one pipeline stage / tensor
# shard of it), sends it every step plan and gets back the sampled tokens (last pipeline stage) or
# the hidden states for the next stage. C++ conversions to and from the engine's own types live in
# rpc/plan_codec.hpp.
@0x9e5ff21d9b09b101;

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("vllm::rpc::wire");

# ---- step plan (actors/scheduler.hpp: SchedulerOutput) -------------------------------------

struct LogitBias {
  tokenId @0 :Int32;
  bias @1 :Float32;
}

# model/sampling_params.hpp, field for field; optionals as has* + value.
struct SamplingParams {
  n @0 :Int32;
  temperature @1 :Float32;
  topP @2 :Float32;
  topK @3 :Int32;
  minP @4 :Float32;
  presencePenalty @5 :Float32;
  frequencyPenalty @6 :Float32;
  repetitionPenalty @7 :Float32;
  hasSeed @8 :Bool;
  seed @9 :UInt64;
  logitBias @10 :List(LogitBias);
  maxTokens @11 :Int32;
  minTokens @12 :Int32;
  stop @13 :List(Text);
  stopTokenIds @14 :List(Int32);
  ignoreEos @15 :Bool;
  includeStopStrInOutput @16 :Bool;
  skipSpecialTokens @17 :Bool;
  hasLogprobs @18 :Bool;
  logprobs @19 :Int32;
}

struct ScheduledRequest {
  requestId @0 :Text;
  isNew @1 :Bool;
  numComputedTokens @2 :Int32;
  numCachedTokens @3 :Int32;
  tokenIds @4 :List(Int32);
  blockIds @5 :List(Int32);
  samples @6 :Bool;
  numOutputTokens @7 :Int32;
  hasParams @8 :Bool;
  params @9 :SamplingParams;
  promptTokenIds @10 :List(Int32);
  outputTokenIds @11 :List(Int32);
}

struct SchedulerOutput {
  requests @0 :List(ScheduledRequest);
  numScheduledTokens @1 :Int32;
  preemptedIds @2 :List(Text);
  finishedIds @3 :List(Text);
}

# ---- step result (actors/worker.hpp: StepResult) -------------------------------------------

struct TokenLogprob {
  tokenId @0 :Int32;
  logprob @1 :Float32;
}

struct SampleLogprobs {
  logprob @0 :Float32;
  rank @1 :Int32;
  top @2 :List(TokenLogprob);
}

struct RequestSample {
  requestId @0 :Text;
  tokenId @1 :Int32;
  hasLogprobs @2 :Bool;
  logprobs @3 :SampleLogprobs;
}

# A dense float32 tensor, row-major. `data` is the raw little-endian bytes: it travels as one
# Data blob, written in place by the producer and read in place by the consumer.
struct Tensor {
  shape @0 :List(Int64);
  data @1 :Data;
}

# ---- loading a shard -----------------------------------------------------------------------

# Which part of the model a worker holds: pipeline stage `pipelineRank` of `pipelineSize` (its
# contiguous layers) and tensor shard `tensorRank` of `tensorSize`.
struct Layout {
  pipelineRank @0 :Int32;
  pipelineSize @1 :Int32;
  tensorRank @2 :Int32;
  tensorSize @3 :Int32;
}

struct LoadSpec {
  modelPath @0 :Text;          # the checkpoint as the node sees it
  loadFormat @1 :Text;         # auto | gguf | safetensors | dummy
  layout @2 :Layout;
  blockSize @3 :Int32;
  kvCacheMemoryBytes @4 :Int64;
  numKvBlocksOverride @5 :Int32;  # > 0: exactly this many blocks
  seed @6 :UInt64;
  eosTokenIds @7 :List(Int32);
  device @8 :Text;             # cpu | cuda
  deviceIndex @9 :Int32;       # which of the node's devices
  numCpuThreads @10 :Int32;    # 0: all cores
  collectiveHost @11 :Text;    # the address this rank's Gloo endpoint listens on (tensorSize > 1)
  collectiveTimeoutMs @12 :Int64;
}

struct WorkerInfo {
  numKvBlocks @0 :Int64;
  deviceName @1 :Text;
  numLayers @2 :Int32;         # the layers this shard holds
}

struct NodeStatus {
  name @0 :Text;
  numDevices @1 :Int32;
  numWorkers @2 :Int32;        # workers open now
  uptimeMs @3 :Int64;
  pid @4 :Int64;
}

# ---- interfaces ----------------------------------------------------------------------------

interface Worker {
  # Runs one step. `hiddenIn` is the previous pipeline stage's output (empty for the first stage);
  # the last stage returns `samples`, the others `hiddenOut`.
  execute @0 (plan :SchedulerOutput, hiddenIn :Tensor) -> (samples :List(RequestSample), hiddenOut :Tensor);
  # Finishes the step in flight and frees the worker (also done when the capability is dropped).
  stop @1 () -> ();
}

# The key-value store where the ranks of a tensor-parallel group find each other (Gloo
# publishes each rank's address); held by the head, passed to the agents with openWorker.
interface Rendezvous {
  set @0 (key :Text, value :Data) -> ();
  get @1 (key :Text, timeoutMs :Int64) -> (value :Data);
  wait @2 (keys :List(Text), timeoutMs :Int64) -> ();
}

# A node agent's bootstrap capability.
interface NodeAgent {
  health @0 () -> (status :NodeStatus);
  # A whole-model worker (layout 1 x 1), or one rank of a TP x PP layout (a stage worker, whose
  # tensor-parallel group meets through `rendezvous`).
  openWorker @1 (spec :LoadSpec, rendezvous :Rendezvous) -> (worker :Worker, info :WorkerInfo);
  # Stops every worker and ends the agent process.
  shutdown @2 () -> ();
}

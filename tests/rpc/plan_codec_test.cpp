// The step plan and its results survive the trip through their Cap'n Proto form unchanged,
// field for field (random plans, every optional both set and unset).
#include <random>

#include <capnp/message.h>
#include <capnp/serialize.h>
#include <catch2/catch.hpp>

#include "rpc/plan_codec.hpp"
#include "rpc/worker_spec.hpp"

namespace vllm::rpc {
namespace {

std::vector<int32_t> random_ints(std::mt19937& rng, int max_len) {
  std::vector<int32_t> values(std::uniform_int_distribution<int>(0, max_len)(rng));
  for (auto& v : values) v = std::uniform_int_distribution<int32_t>(-5, 50000)(rng);
  return values;
}

SamplingParams random_params(std::mt19937& rng) {
  auto f = [&] { return std::uniform_real_distribution<float>(-2, 2)(rng); };
  auto coin = [&] { return std::bernoulli_distribution(0.5)(rng); };
  SamplingParams p;
  p.n = std::uniform_int_distribution<int>(1, 8)(rng);
  p.temperature = f();
  p.top_p = f();
  p.top_k = std::uniform_int_distribution<int>(-1, 100)(rng);
  p.min_p = f();
  p.presence_penalty = f();
  p.frequency_penalty = f();
  p.repetition_penalty = f();
  if (coin()) p.seed = rng() * uint64_t{0x100000001};
  for (int i = 0; i < std::uniform_int_distribution<int>(0, 3)(rng); ++i) {
    p.logit_bias.emplace_back(static_cast<int32_t>(rng() % 1000), f());
  }
  p.max_tokens = static_cast<int>(rng() % 1000);
  p.min_tokens = static_cast<int>(rng() % 10);
  if (coin()) p.stop = {"\n\n", "stop ü", ""};
  p.stop_token_ids = random_ints(rng, 3);
  p.ignore_eos = coin();
  p.include_stop_str_in_output = coin();
  p.skip_special_tokens = coin();
  if (coin()) p.logprobs = static_cast<int>(rng() % 21);
  return p;
}

void require_equal(const SamplingParams& a, const SamplingParams& b) {
  CHECK(a.n == b.n);
  CHECK(a.temperature == b.temperature);
  CHECK(a.top_p == b.top_p);
  CHECK(a.top_k == b.top_k);
  CHECK(a.min_p == b.min_p);
  CHECK(a.presence_penalty == b.presence_penalty);
  CHECK(a.frequency_penalty == b.frequency_penalty);
  CHECK(a.repetition_penalty == b.repetition_penalty);
  CHECK(a.seed == b.seed);
  CHECK(a.logit_bias == b.logit_bias);
  CHECK(a.max_tokens == b.max_tokens);
  CHECK(a.min_tokens == b.min_tokens);
  CHECK(a.stop == b.stop);
  CHECK(a.stop_token_ids == b.stop_token_ids);
  CHECK(a.ignore_eos == b.ignore_eos);
  CHECK(a.include_stop_str_in_output == b.include_stop_str_in_output);
  CHECK(a.skip_special_tokens == b.skip_special_tokens);
  CHECK(a.logprobs == b.logprobs);
}

SchedulerOutput random_plan(std::mt19937& rng) {
  SchedulerOutput plan;
  const int num_requests = std::uniform_int_distribution<int>(0, 6)(rng);
  for (int i = 0; i < num_requests; ++i) {
    ScheduledRequest r;
    r.request_id = "req-" + std::to_string(rng()) + (i % 2 ? "-ß" : "");
    r.is_new = i % 2 == 0;
    r.num_computed_tokens = static_cast<int32_t>(rng() % 4096);
    r.num_cached_tokens = static_cast<int32_t>(rng() % 64);
    r.token_ids = random_ints(rng, 40);
    r.block_ids = random_ints(rng, 12);
    r.samples = i % 3 != 0;
    r.num_output_tokens = static_cast<int32_t>(rng() % 100);
    if (i != 3) r.params = std::make_shared<const SamplingParams>(random_params(rng));
    r.prompt_token_ids = random_ints(rng, 30);
    r.output_token_ids = random_ints(rng, 5);
    plan.num_scheduled_tokens += r.num_scheduled_tokens();
    plan.requests.push_back(std::move(r));
  }
  plan.preempted_ids = {"p-1", "p-" + std::to_string(rng())};
  if (num_requests % 2) plan.finished_ids = {"f-1"};
  return plan;
}

// Through a real serialized message: builder -> flat words -> reader.
template <class Root, class Write, class Read>
auto round_trip(Write write, Read read) {
  capnp::MallocMessageBuilder builder;
  write(builder.initRoot<Root>());
  kj::Array<capnp::word> words = capnp::messageToFlatArray(builder);
  capnp::FlatArrayMessageReader reader(words);
  return read(reader.getRoot<Root>());
}

}  // namespace

TEST_CASE("a scheduler output survives the wire form field for field", "[rpc]") {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 50; ++trial) {
    const SchedulerOutput plan = random_plan(rng);
    const SchedulerOutput back = round_trip<wire::SchedulerOutput>(
        [&](auto out) { write_plan(plan, out); }, [](auto in) { return read_plan(in); });
    REQUIRE(back.requests.size() == plan.requests.size());
    CHECK(back.num_scheduled_tokens == plan.num_scheduled_tokens);
    CHECK(back.preempted_ids == plan.preempted_ids);
    CHECK(back.finished_ids == plan.finished_ids);
    for (size_t i = 0; i < plan.requests.size(); ++i) {
      const auto& a = plan.requests[i];
      const auto& b = back.requests[i];
      CHECK(a.request_id == b.request_id);
      CHECK(a.is_new == b.is_new);
      CHECK(a.num_computed_tokens == b.num_computed_tokens);
      CHECK(a.num_cached_tokens == b.num_cached_tokens);
      CHECK(a.token_ids == b.token_ids);
      CHECK(a.block_ids == b.block_ids);
      CHECK(a.samples == b.samples);
      CHECK(a.num_output_tokens == b.num_output_tokens);
      CHECK(a.prompt_token_ids == b.prompt_token_ids);
      CHECK(a.output_token_ids == b.output_token_ids);
      REQUIRE((a.params == nullptr) == (b.params == nullptr));
      if (a.params) require_equal(*a.params, *b.params);
    }
  }
}

TEST_CASE("default sampling params survive the wire form", "[rpc]") {
  const SamplingParams defaults;
  const SamplingParams back =
      round_trip<wire::SamplingParams>([&](auto out) { write_sampling_params(defaults, out); },
                                       [](auto in) { return read_sampling_params(in); });
  require_equal(defaults, back);
}

TEST_CASE("sampled tokens and logprobs survive the wire form", "[rpc]") {
  std::vector<RequestSample> samples(3);
  samples[0] = {"a", 17, std::nullopt};
  samples[1] = {"b", 0, SampleLogprobs{-0.25f, 3, {{5, -0.1f}, {9, -1.5f}}}};
  samples[2] = {"c-ü", 49151, SampleLogprobs{-3.0f, 1, {}}};
  capnp::MallocMessageBuilder builder;
  auto root = builder.initRoot<wire::Worker::ExecuteResults>();
  write_samples(samples, root.initSamples(static_cast<unsigned>(samples.size())));
  kj::Array<capnp::word> words = capnp::messageToFlatArray(builder);
  capnp::FlatArrayMessageReader reader(words);
  const auto read = read_samples(reader.getRoot<wire::Worker::ExecuteResults>().getSamples());
  REQUIRE(read.size() == 3);
  for (size_t i = 0; i < 3; ++i) {
    CHECK(read[i].request_id == samples[i].request_id);
    CHECK(read[i].token_id == samples[i].token_id);
    REQUIRE(read[i].logprobs.has_value() == samples[i].logprobs.has_value());
    if (!samples[i].logprobs) continue;
    CHECK(read[i].logprobs->logprob == samples[i].logprobs->logprob);
    CHECK(read[i].logprobs->rank == samples[i].logprobs->rank);
    REQUIRE(read[i].logprobs->top.size() == samples[i].logprobs->top.size());
    for (size_t j = 0; j < samples[i].logprobs->top.size(); ++j) {
      CHECK(read[i].logprobs->top[j].token_id == samples[i].logprobs->top[j].token_id);
      CHECK(read[i].logprobs->top[j].logprob == samples[i].logprobs->top[j].logprob);
    }
  }
}

TEST_CASE("a worker spec survives the wire form", "[rpc]") {
  WorkerSpec spec;
  spec.model_path = "/models/x.gguf";
  spec.load_format = "dummy";
  spec.pipeline_rank = 1;
  spec.pipeline_size = 2;
  spec.tensor_rank = 1;
  spec.tensor_size = 2;
  spec.block_size = 32;
  spec.kv_cache_memory_bytes = int64_t{5} << 32;
  spec.num_kv_blocks_override = 77;
  spec.seed = 0xfeedfacecafebeefULL;
  spec.eos_token_ids = {2, 0};
  spec.device = "cuda";
  spec.device_index = 3;
  spec.num_cpu_threads = 4;
  spec.collective_host = "10.0.0.1";
  spec.collective_timeout_ms = 1234;
  const WorkerSpec back =
      round_trip<wire::LoadSpec>([&](auto out) { write_worker_spec(spec, out); },
                                 [](auto in) { return read_worker_spec(in); });
  CHECK(back.model_path == spec.model_path);
  CHECK(back.load_format == spec.load_format);
  CHECK(back.pipeline_rank == spec.pipeline_rank);
  CHECK(back.pipeline_size == spec.pipeline_size);
  CHECK(back.tensor_rank == spec.tensor_rank);
  CHECK(back.tensor_size == spec.tensor_size);
  CHECK(back.block_size == spec.block_size);
  CHECK(back.kv_cache_memory_bytes == spec.kv_cache_memory_bytes);
  CHECK(back.num_kv_blocks_override == spec.num_kv_blocks_override);
  CHECK(back.seed == spec.seed);
  CHECK(back.eos_token_ids == spec.eos_token_ids);
  CHECK(back.device == spec.device);
  CHECK(back.device_index == spec.device_index);
  CHECK(back.num_cpu_threads == spec.num_cpu_threads);
  CHECK(back.collective_host == spec.collective_host);
  CHECK(back.collective_timeout_ms == spec.collective_timeout_ms);
}

}  // namespace vllm::rpc

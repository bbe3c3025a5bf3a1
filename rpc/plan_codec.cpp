#include "rpc/plan_codec.hpp"

#include <string>

namespace vllm::rpc {
namespace {

template <class T>
void write_ints(const std::vector<T>& values, typename capnp::List<T>::Builder out) {
  for (unsigned i = 0; i < values.size(); ++i) out.set(i, values[i]);
}

template <class T>
std::vector<T> read_ints(typename capnp::List<T>::Reader in) {
  std::vector<T> values;
  values.reserve(in.size());
  for (T value : in) values.push_back(value);
  return values;
}

std::vector<std::string> read_texts(capnp::List<capnp::Text>::Reader in) {
  std::vector<std::string> values;
  values.reserve(in.size());
  for (auto text : in) values.emplace_back(text.cStr(), text.size());
  return values;
}

void write_texts(const std::vector<std::string>& values, capnp::List<capnp::Text>::Builder out) {
  for (unsigned i = 0; i < values.size(); ++i) {
    out.set(i, capnp::Text::Reader(values[i].data(), values[i].size()));
  }
}

}  // namespace

void write_sampling_params(const SamplingParams& p, wire::SamplingParams::Builder out) {
  out.setN(p.n);
  out.setTemperature(p.temperature);
  out.setTopP(p.top_p);
  out.setTopK(p.top_k);
  out.setMinP(p.min_p);
  out.setPresencePenalty(p.presence_penalty);
  out.setFrequencyPenalty(p.frequency_penalty);
  out.setRepetitionPenalty(p.repetition_penalty);
  out.setHasSeed(p.seed.has_value());
  out.setSeed(p.seed.value_or(0));
  auto bias = out.initLogitBias(static_cast<unsigned>(p.logit_bias.size()));
  for (unsigned i = 0; i < p.logit_bias.size(); ++i) {
    bias[i].setTokenId(p.logit_bias[i].first);
    bias[i].setBias(p.logit_bias[i].second);
  }
  out.setMaxTokens(p.max_tokens);
  out.setMinTokens(p.min_tokens);
  write_texts(p.stop, out.initStop(static_cast<unsigned>(p.stop.size())));
  write_ints<int32_t>(p.stop_token_ids,
                      out.initStopTokenIds(static_cast<unsigned>(p.stop_token_ids.size())));
  out.setIgnoreEos(p.ignore_eos);
  out.setIncludeStopStrInOutput(p.include_stop_str_in_output);
  out.setSkipSpecialTokens(p.skip_special_tokens);
  out.setHasLogprobs(p.logprobs.has_value());
  out.setLogprobs(p.logprobs.value_or(0));
}

SamplingParams read_sampling_params(wire::SamplingParams::Reader in) {
  SamplingParams p;
  p.n = in.getN();
  p.temperature = in.getTemperature();
  p.top_p = in.getTopP();
  p.top_k = in.getTopK();
  p.min_p = in.getMinP();
  p.presence_penalty = in.getPresencePenalty();
  p.frequency_penalty = in.getFrequencyPenalty();
  p.repetition_penalty = in.getRepetitionPenalty();
  if (in.getHasSeed()) p.seed = in.getSeed();
  for (auto bias : in.getLogitBias()) p.logit_bias.emplace_back(bias.getTokenId(), bias.getBias());
  p.max_tokens = in.getMaxTokens();
  p.min_tokens = in.getMinTokens();
  p.stop = read_texts(in.getStop());
  p.stop_token_ids = read_ints<int32_t>(in.getStopTokenIds());
  p.ignore_eos = in.getIgnoreEos();
  p.include_stop_str_in_output = in.getIncludeStopStrInOutput();
  p.skip_special_tokens = in.getSkipSpecialTokens();
  if (in.getHasLogprobs()) p.logprobs = in.getLogprobs();
  return p;
}

void write_plan(const SchedulerOutput& plan, wire::SchedulerOutput::Builder out) {
  auto requests = out.initRequests(static_cast<unsigned>(plan.requests.size()));
  for (unsigned i = 0; i < plan.requests.size(); ++i) {
    const ScheduledRequest& r = plan.requests[i];
    auto w = requests[i];
    w.setRequestId(capnp::Text::Reader(r.request_id.data(), r.request_id.size()));
    w.setIsNew(r.is_new);
    w.setNumComputedTokens(r.num_computed_tokens);
    w.setNumCachedTokens(r.num_cached_tokens);
    write_ints<int32_t>(r.token_ids, w.initTokenIds(static_cast<unsigned>(r.token_ids.size())));
    write_ints<int32_t>(r.block_ids, w.initBlockIds(static_cast<unsigned>(r.block_ids.size())));
    w.setSamples(r.samples);
    w.setNumOutputTokens(r.num_output_tokens);
    w.setHasParams(r.params != nullptr);
    if (r.params) write_sampling_params(*r.params, w.initParams());
    write_ints<int32_t>(r.prompt_token_ids,
                        w.initPromptTokenIds(static_cast<unsigned>(r.prompt_token_ids.size())));
    write_ints<int32_t>(r.output_token_ids,
                        w.initOutputTokenIds(static_cast<unsigned>(r.output_token_ids.size())));
  }
  out.setNumScheduledTokens(plan.num_scheduled_tokens);
  write_texts(plan.preempted_ids,
              out.initPreemptedIds(static_cast<unsigned>(plan.preempted_ids.size())));
  write_texts(plan.finished_ids,
              out.initFinishedIds(static_cast<unsigned>(plan.finished_ids.size())));
}

SchedulerOutput read_plan(wire::SchedulerOutput::Reader in) {
  SchedulerOutput plan;
  plan.requests.reserve(in.getRequests().size());
  for (auto w : in.getRequests()) {
    ScheduledRequest r;
    r.request_id = std::string(w.getRequestId().cStr(), w.getRequestId().size());
    r.is_new = w.getIsNew();
    r.num_computed_tokens = w.getNumComputedTokens();
    r.num_cached_tokens = w.getNumCachedTokens();
    r.token_ids = read_ints<int32_t>(w.getTokenIds());
    r.block_ids = read_ints<int32_t>(w.getBlockIds());
    r.samples = w.getSamples();
    r.num_output_tokens = w.getNumOutputTokens();
    if (w.getHasParams()) {
      r.params = std::make_shared<const SamplingParams>(read_sampling_params(w.getParams()));
    }
    r.prompt_token_ids = read_ints<int32_t>(w.getPromptTokenIds());
    r.output_token_ids = read_ints<int32_t>(w.getOutputTokenIds());
    plan.requests.push_back(std::move(r));
  }
  plan.num_scheduled_tokens = in.getNumScheduledTokens();
  plan.preempted_ids = read_texts(in.getPreemptedIds());
  plan.finished_ids = read_texts(in.getFinishedIds());
  return plan;
}

void write_samples(std::span<const RequestSample> samples,
                   capnp::List<wire::RequestSample>::Builder out) {
  for (unsigned i = 0; i < samples.size(); ++i) {
    const RequestSample& s = samples[i];
    auto w = out[i];
    w.setRequestId(capnp::Text::Reader(s.request_id.data(), s.request_id.size()));
    w.setTokenId(s.token_id);
    w.setHasLogprobs(s.logprobs.has_value());
    if (s.logprobs) {
      auto lp = w.initLogprobs();
      lp.setLogprob(s.logprobs->logprob);
      lp.setRank(s.logprobs->rank);
      auto top = lp.initTop(static_cast<unsigned>(s.logprobs->top.size()));
      for (unsigned j = 0; j < s.logprobs->top.size(); ++j) {
        top[j].setTokenId(s.logprobs->top[j].token_id);
        top[j].setLogprob(s.logprobs->top[j].logprob);
      }
    }
  }
}

std::vector<RequestSample> read_samples(capnp::List<wire::RequestSample>::Reader in) {
  std::vector<RequestSample> samples;
  samples.reserve(in.size());
  for (auto w : in) {
    RequestSample s;
    s.request_id = std::string(w.getRequestId().cStr(), w.getRequestId().size());
    s.token_id = w.getTokenId();
    if (w.getHasLogprobs()) {
      SampleLogprobs lp;
      lp.logprob = w.getLogprobs().getLogprob();
      lp.rank = w.getLogprobs().getRank();
      for (auto top : w.getLogprobs().getTop()) {
        lp.top.push_back(TokenLogprob{top.getTokenId(), top.getLogprob()});
      }
      s.logprobs = std::move(lp);
    }
    samples.push_back(std::move(s));
  }
  return samples;
}

}  // namespace vllm::rpc

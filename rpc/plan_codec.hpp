// Conversions between the engine's step types (SchedulerOutput, StepResult, SamplingParams) and
// their Cap'n Proto wire form (rpc/worker_protocol.capnp). Faithful both ways: read(write(x))
// equals x field for field.
#pragma once

#include <memory>
#include <span>
#include <vector>

#include "actors/scheduler.hpp"
#include "actors/worker.hpp"
#include "model/sampling_params.hpp"
#include "rpc/worker_protocol.capnp.h"

namespace vllm::rpc {

void write_sampling_params(const SamplingParams& params, wire::SamplingParams::Builder out);
SamplingParams read_sampling_params(wire::SamplingParams::Reader in);

void write_plan(const SchedulerOutput& plan, wire::SchedulerOutput::Builder out);
SchedulerOutput read_plan(wire::SchedulerOutput::Reader in);

void write_samples(std::span<const RequestSample> samples,
                   capnp::List<wire::RequestSample>::Builder out);
std::vector<RequestSample> read_samples(capnp::List<wire::RequestSample>::Reader in);

}  // namespace vllm::rpc

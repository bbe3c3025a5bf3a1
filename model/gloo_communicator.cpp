#include "model/gloo_communicator.hpp"

#include <gloo/allgather.h>
#include <gloo/allreduce.h>
#include <gloo/broadcast.h>
#include <gloo/math.h>
#include <gloo/rendezvous/context.h>
#include <gloo/rendezvous/store.h>
#include <gloo/transport/tcp/device.h>

namespace vllm {
namespace {

// Gloo's view of our store: every key under the group's prefix, with our timeout.
class GlooStoreAdapter final : public gloo::rendezvous::Store {
 public:
  GlooStoreAdapter(RendezvousStore& store, std::string prefix, std::chrono::milliseconds timeout)
      : store_(store), prefix_(std::move(prefix)), timeout_(timeout) {}

  void set(const std::string& key, const std::vector<char>& data) override {
    store_.set(prefix_ + "/" + key, data);
  }
  std::vector<char> get(const std::string& key) override {
    return store_.get(prefix_ + "/" + key, timeout_);
  }
  void wait(const std::vector<std::string>& keys) override { wait(keys, timeout_); }
  void wait(const std::vector<std::string>& keys,
            const std::chrono::milliseconds& timeout) override {
    std::vector<std::string> prefixed;
    for (const auto& key : keys) prefixed.push_back(prefix_ + "/" + key);
    store_.wait(prefixed, timeout);
  }

 private:
  RendezvousStore& store_;
  std::string prefix_;
  std::chrono::milliseconds timeout_;
};

}  // namespace

GlooCommunicator::GlooCommunicator(RendezvousStore& store, const GlooOptions& options)
    : rank_(options.rank), size_(options.size), timeout_(options.timeout) {
  if (options.size < 1 || options.rank < 0 || options.rank >= options.size) {
    throw std::invalid_argument("GlooCommunicator: rank " + std::to_string(options.rank) +
                                " is outside a group of size " + std::to_string(options.size));
  }
  try {
    gloo::transport::tcp::attr attr;
    if (!options.interface.empty()) {
      attr.iface = options.interface;
    } else {
      attr.hostname = options.hostname;
    }
    auto device = gloo::transport::tcp::CreateDevice(attr);
    auto context = std::make_shared<gloo::rendezvous::Context>(rank_, size_);
    context->setTimeout(timeout_);
    GlooStoreAdapter adapter(store, options.prefix, timeout_);
    context->connectFullMesh(adapter, device);
    context_ = std::move(context);
  } catch (const CollectiveError&) {
    throw;
  } catch (const std::exception& e) {
    throw CollectiveError("Gloo group '" + options.prefix + "' (rank " + std::to_string(rank_) +
                          " of " + std::to_string(size_) + ", address '" +
                          (options.interface.empty() ? options.hostname : options.interface) +
                          "'): cannot connect: " + e.what());
  }
}

GlooCommunicator::~GlooCommunicator() = default;

void GlooCommunicator::all_reduce_sum(std::span<float> data) {
  if (size_ == 1 || data.empty()) return;
  try {
    gloo::AllreduceOptions options(context_);
    options.setOutput(data.data(), data.size());
    options.setReduceFunction(
        static_cast<void (*)(void*, const void*, const void*, size_t)>(&gloo::sum<float>));
    options.setTag(next_tag_++);
    options.setTimeout(timeout_);
    gloo::allreduce(options);
  } catch (const std::exception& e) {
    throw CollectiveError("Gloo all_reduce of " + std::to_string(data.size()) +
                          " floats failed on rank " + std::to_string(rank_) + ": " + e.what());
  }
}

void GlooCommunicator::all_gather(std::span<const float> input, std::span<float> output) {
  if (output.size() != input.size() * static_cast<size_t>(size_)) {
    throw std::invalid_argument("all_gather: output holds " + std::to_string(output.size()) +
                                " floats, needs " + std::to_string(input.size() * size_));
  }
  if (size_ == 1) {
    std::copy(input.begin(), input.end(), output.begin());
    return;
  }
  if (input.empty()) return;
  try {
    gloo::AllgatherOptions options(context_);
    options.setInput(const_cast<float*>(input.data()), input.size());
    options.setOutput(output.data(), output.size());
    options.setTag(next_tag_++);
    options.setTimeout(timeout_);
    gloo::allgather(options);
  } catch (const std::exception& e) {
    throw CollectiveError("Gloo all_gather of " + std::to_string(input.size()) +
                          " floats failed on rank " + std::to_string(rank_) + ": " + e.what());
  }
}

void GlooCommunicator::broadcast(std::span<float> data, int root) {
  if (root < 0 || root >= size_) {
    throw std::invalid_argument("broadcast: root " + std::to_string(root) +
                                " is outside a group of size " + std::to_string(size_));
  }
  if (size_ == 1 || data.empty()) return;
  try {
    gloo::BroadcastOptions options(context_);
    // Output only: Gloo then broadcasts the root's output buffer in place.
    options.setOutput(data.data(), data.size());
    options.setRoot(root);
    options.setTag(next_tag_++);
    options.setTimeout(timeout_);
    gloo::broadcast(options);
  } catch (const std::exception& e) {
    throw CollectiveError("Gloo broadcast of " + std::to_string(data.size()) +
                          " floats failed on rank " + std::to_string(rank_) + ": " + e.what());
  }
}

}  // namespace vllm

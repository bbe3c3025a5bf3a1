#include "rpc/rendezvous_service.hpp"

#include <future>
#include <map>
#include <string>
#include <vector>

#include <kj/async-io.h>
#include <kj/debug.h>

namespace vllm::rpc {
namespace {

class RendezvousServer final : public wire::Rendezvous::Server {
 public:
  explicit RendezvousServer(kj::Timer& timer) : timer_(timer) {}

  kj::Promise<void> set(SetContext context) override {
    std::string key = context.getParams().getKey().cStr();
    auto data = context.getParams().getValue();
    values_[key] = std::vector<kj::byte>(data.begin(), data.end());
    auto range = waiters_.equal_range(key);
    for (auto it = range.first; it != range.second; ++it) it->second->fulfill();
    waiters_.erase(range.first, range.second);
    return kj::READY_NOW;
  }

  kj::Promise<void> get(GetContext context) override {
    std::string key = context.getParams().getKey().cStr();
    return until_set(key, context.getParams().getTimeoutMs()).then([this, key, context]() mutable {
      const auto& value = values_.at(key);
      context.getResults().setValue(kj::arrayPtr(value.data(), value.size()));
    });
  }

  kj::Promise<void> wait(WaitContext context) override {
    const int64_t timeout_ms = context.getParams().getTimeoutMs();
    kj::Vector<kj::Promise<void>> all;
    for (auto key : context.getParams().getKeys()) all.add(until_set(key.cStr(), timeout_ms));
    return kj::joinPromises(all.releaseAsArray());
  }

 private:
  kj::Promise<void> until_set(const std::string& key, int64_t timeout_ms) {
    if (values_.count(key)) return kj::READY_NOW;
    auto pair = kj::newPromiseAndFulfiller<void>();
    waiters_.emplace(key, kj::mv(pair.fulfiller));
    return timer_.timeoutAfter(timeout_ms * kj::MILLISECONDS, kj::mv(pair.promise))
        .catch_([key, timeout_ms](kj::Exception&&) -> kj::Promise<void> {
          return KJ_EXCEPTION(
              FAILED, kj::str("rendezvous: key '", key.c_str(), "' was not set within ", timeout_ms,
                              " ms (a rank of the group never came)"));
        });
  }

  kj::Timer& timer_;
  std::map<std::string, std::vector<kj::byte>> values_;
  std::multimap<std::string, kj::Own<kj::PromiseFulfiller<void>>> waiters_;
};

}  // namespace

struct RendezvousService::Holder {
  wire::Rendezvous::Client client;
};

wire::Rendezvous::Client make_rendezvous_server(kj::Timer& timer) {
  return kj::heap<RendezvousServer>(timer);
}

RendezvousService::RendezvousService(std::shared_ptr<KjLoop> loop) : loop_(std::move(loop)) {
  std::promise<Holder*> made;
  auto made_future = made.get_future();
  loop_->post([&made](KjContext& context) {
    auto holder = std::make_shared<Holder>(
        Holder{kj::heap<RendezvousServer>(context.io.provider->getTimer())});
    made.set_value(context.keep(std::move(holder)));
  });
  holder_ = made_future.get();
}

RendezvousService::~RendezvousService() {
  try {
    loop_->post([holder = holder_](KjContext& context) { context.drop(holder); });
  } catch (const ActorStoppedError&) {
  }
}

wire::Rendezvous::Client RendezvousService::client() const {
  return holder_->client;
}

}  // namespace vllm::rpc

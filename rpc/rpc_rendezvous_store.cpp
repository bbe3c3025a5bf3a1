#include "rpc/rpc_rendezvous_store.hpp"

#include <kj/debug.h>

#include "model/communicator.hpp"

namespace vllm::rpc {
namespace {

template <class F>
auto as_collective_error(F f) {
  try {
    return f();
  } catch (const kj::Exception& e) {
    throw CollectiveError(std::string("rendezvous through the head failed: ") +
                          e.getDescription().cStr());
  }
}

}  // namespace

void RpcRendezvousStore::set(const std::string& key, const std::vector<char>& value) {
  as_collective_error([&] {
    kj_thread_->executeSync([&] {
      auto request = rendezvous_.setRequest();
      request.setKey(key);
      request.setValue(kj::arrayPtr(reinterpret_cast<const kj::byte*>(value.data()), value.size()));
      return request.send().ignoreResult();
    });
  });
}

std::vector<char> RpcRendezvousStore::get(const std::string& key,
                                          std::chrono::milliseconds timeout) {
  return as_collective_error([&] {
    return kj_thread_->executeSync([&] {
      auto request = rendezvous_.getRequest();
      request.setKey(key);
      request.setTimeoutMs(timeout.count());
      return request.send().then([](auto response) {
        auto data = response.getValue();
        return std::vector<char>(reinterpret_cast<const char*>(data.begin()),
                                 reinterpret_cast<const char*>(data.end()));
      });
    });
  });
}

void RpcRendezvousStore::wait(const std::vector<std::string>& keys,
                              std::chrono::milliseconds timeout) {
  as_collective_error([&] {
    kj_thread_->executeSync([&] {
      auto request = rendezvous_.waitRequest();
      auto list = request.initKeys(static_cast<unsigned>(keys.size()));
      for (unsigned i = 0; i < keys.size(); ++i) list.set(i, keys[i]);
      request.setTimeoutMs(timeout.count());
      return request.send().ignoreResult();
    });
  });
}

}  // namespace vllm::rpc

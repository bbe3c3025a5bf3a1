// The runtime's typed errors.
#pragma once

#include <stdexcept>
#include <string>

namespace vllm {

// A message was sent to an actor that has been stopped.
class ActorStoppedError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// An awaited operation did not finish before its deadline.
class TimeoutError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// An operation was abandoned because its cancellation token fired.
class OperationCancelled : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace vllm

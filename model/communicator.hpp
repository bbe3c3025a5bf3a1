// Communicator: the collectives a tensor-parallel group needs in the forward pass, on float
// buffers. Every rank of the group must make the same calls in the same order with the same
// sizes (as with NCCL or Gloo); a call blocks until the whole group has joined it. The CPU
// implementation is GlooCommunicator; a CUDA one would wrap NCCL.
#pragma once

#include <span>
#include <stdexcept>

namespace vllm {

// A collective failed: a peer went away, timed out or disagreed on sizes. The group is unusable
// afterwards.
class CollectiveError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class Communicator {
 public:
  virtual ~Communicator() = default;

  virtual int rank() const = 0;
  virtual int size() const = 0;

  // data = the element-wise sum of every rank's data (in place).
  virtual void all_reduce_sum(std::span<float> data) = 0;
  // output = the ranks' inputs concatenated in rank order; output.size() must be
  // size() * input.size().
  virtual void all_gather(std::span<const float> input, std::span<float> output) = 0;
  // data = root's data on every rank.
  virtual void broadcast(std::span<float> data, int root) = 0;
};

}  // namespace vllm

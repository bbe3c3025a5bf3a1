// NcclGroup: one rank's membership of a tensor-parallel group on GPUs, the device counterpart of
// the CPU Communicator (communicator.hpp). The collectives are queued on the caller's stream
// (stream-ordered, asynchronous), so a rank queues its whole forward pass, collectives included,
// and awaits the stream once. Every rank must queue the same collectives in the same order with
// the same sizes.
//
// Groups form either within one process (create_local: one rank per listed device, NCCL's
// ncclCommInitAll) or across processes (join: every rank calls it with the same unique id, made
// by one of them with new_unique_id and passed around by the caller, e.g. over RPC).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace vllm::cuda {

class NcclGroup {
 public:
  // One group member per device of `devices` (rank i on devices[i]), in this process.
  // Throws CollectiveError when NCCL cannot form the group.
  static std::vector<std::shared_ptr<NcclGroup>> create_local(const std::vector<int>& devices);
  // A unique id for join(), as bytes (NCCL's ncclUniqueId).
  static std::string new_unique_id();
  // This process's rank of a group of `size` formed with `unique_id`, on the current device.
  // Blocks until every rank has joined.
  static std::shared_ptr<NcclGroup> join(const std::string& unique_id, int rank, int size);

  ~NcclGroup();
  NcclGroup(const NcclGroup&) = delete;
  NcclGroup& operator=(const NcclGroup&) = delete;

  int rank() const { return rank_; }
  int size() const { return size_; }
  int device() const { return device_; }

  // data[0, count) = the element-wise sum over the ranks (in place), queued on `stream`.
  void all_reduce_sum(float* data, int64_t count, cudaStream_t stream);
  // output = the ranks' `count` inputs concatenated in rank order (size() * count floats).
  void all_gather(const float* input, float* output, int64_t count, cudaStream_t stream);

 private:
  struct Comm;
  NcclGroup(std::unique_ptr<Comm> comm, int rank, int size, int device);

  std::unique_ptr<Comm> comm_;
  int rank_ = 0;
  int size_ = 1;
  int device_ = 0;
};

}  // namespace vllm::cuda

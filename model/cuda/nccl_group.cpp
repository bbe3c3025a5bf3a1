#include "model/cuda/nccl_group.hpp"

#include <nccl.h>

#include <cstring>
#include <string>
#include <utility>

#include "kernels/cuda/cuda_check.hpp"
#include "model/communicator.hpp"

namespace vllm::cuda {
namespace {

void check_nccl(ncclResult_t result, const std::string& what) {
  if (result == ncclSuccess) return;
  throw CollectiveError("NCCL " + what + " failed: " + ncclGetErrorString(result) +
                        (result == ncclSystemError || result == ncclRemoteError
                             ? " (a peer may be gone; see NCCL_DEBUG=WARN)"
                             : ""));
}

}  // namespace

struct NcclGroup::Comm {
  ncclComm_t comm = nullptr;
  ~Comm() {
    if (comm) ncclCommDestroy(comm);
  }
};

NcclGroup::NcclGroup(std::unique_ptr<Comm> comm, int rank, int size, int device)
    : comm_(std::move(comm)), rank_(rank), size_(size), device_(device) {}

NcclGroup::~NcclGroup() = default;

std::vector<std::shared_ptr<NcclGroup>> NcclGroup::create_local(const std::vector<int>& devices) {
  const int n = static_cast<int>(devices.size());
  if (n < 1) throw CollectiveError("NCCL group: no devices given");
  std::vector<ncclComm_t> comms(static_cast<size_t>(n), nullptr);
  check_nccl(ncclCommInitAll(comms.data(), n, devices.data()),
             "ncclCommInitAll over " + std::to_string(n) + " devices");
  std::vector<std::shared_ptr<NcclGroup>> group;
  for (int i = 0; i < n; ++i) {
    auto comm = std::make_unique<Comm>();
    comm->comm = comms[static_cast<size_t>(i)];
    group.push_back(std::shared_ptr<NcclGroup>(
        new NcclGroup(std::move(comm), i, n, devices[static_cast<size_t>(i)])));
  }
  return group;
}

std::string NcclGroup::new_unique_id() {
  ncclUniqueId id;
  check_nccl(ncclGetUniqueId(&id), "ncclGetUniqueId");
  return std::string(id.internal, sizeof(id.internal));
}

std::shared_ptr<NcclGroup> NcclGroup::join(const std::string& unique_id, int rank, int size) {
  ncclUniqueId id;
  if (unique_id.size() != sizeof(id.internal)) {
    throw CollectiveError("NCCL group: a unique id has " + std::to_string(sizeof(id.internal)) +
                          " bytes, got " + std::to_string(unique_id.size()));
  }
  std::memcpy(id.internal, unique_id.data(), sizeof(id.internal));
  int device = 0;
  check_cuda(cudaGetDevice(&device), "cudaGetDevice");
  auto comm = std::make_unique<Comm>();
  check_nccl(
      ncclCommInitRank(&comm->comm, size, id, rank),
      "ncclCommInitRank (rank " + std::to_string(rank) + " of " + std::to_string(size) + ")");
  return std::shared_ptr<NcclGroup>(new NcclGroup(std::move(comm), rank, size, device));
}

void NcclGroup::all_reduce_sum(float* data, int64_t count, cudaStream_t stream) {
  if (size_ == 1 || count == 0) return;
  check_nccl(ncclAllReduce(data, data, static_cast<size_t>(count), ncclFloat, ncclSum, comm_->comm,
                           stream),
             "ncclAllReduce");
}

void NcclGroup::all_gather(const float* input, float* output, int64_t count, cudaStream_t stream) {
  if (count == 0) return;
  if (size_ == 1) {
    check_cuda(cudaMemcpyAsync(output, input, static_cast<size_t>(count) * sizeof(float),
                               cudaMemcpyDeviceToDevice, stream),
               "cudaMemcpyAsync (all_gather of one rank)");
    return;
  }
  check_nccl(
      ncclAllGather(input, output, static_cast<size_t>(count), ncclFloat, comm_->comm, stream),
      "ncclAllGather");
}

}  // namespace vllm::cuda

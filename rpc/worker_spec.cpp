#include "rpc/worker_spec.hpp"

namespace vllm::rpc {

void write_worker_spec(const WorkerSpec& spec, wire::LoadSpec::Builder out) {
  out.setModelPath(spec.model_path);
  out.setLoadFormat(spec.load_format);
  auto layout = out.initLayout();
  layout.setPipelineRank(spec.pipeline_rank);
  layout.setPipelineSize(spec.pipeline_size);
  layout.setTensorRank(spec.tensor_rank);
  layout.setTensorSize(spec.tensor_size);
  out.setBlockSize(spec.block_size);
  out.setKvCacheMemoryBytes(spec.kv_cache_memory_bytes);
  out.setNumKvBlocksOverride(spec.num_kv_blocks_override);
  out.setSeed(spec.seed);
  auto eos = out.initEosTokenIds(static_cast<unsigned>(spec.eos_token_ids.size()));
  for (unsigned i = 0; i < spec.eos_token_ids.size(); ++i) eos.set(i, spec.eos_token_ids[i]);
  out.setDevice(spec.device);
  out.setDeviceIndex(spec.device_index);
  out.setNumCpuThreads(spec.num_cpu_threads);
  out.setCollectiveHost(spec.collective_host);
  out.setCollectiveTimeoutMs(spec.collective_timeout_ms);
}

WorkerSpec read_worker_spec(wire::LoadSpec::Reader in) {
  WorkerSpec spec;
  spec.model_path = in.getModelPath().cStr();
  spec.load_format = in.getLoadFormat().cStr();
  spec.pipeline_rank = in.getLayout().getPipelineRank();
  spec.pipeline_size = in.getLayout().getPipelineSize();
  spec.tensor_rank = in.getLayout().getTensorRank();
  spec.tensor_size = in.getLayout().getTensorSize();
  spec.block_size = in.getBlockSize();
  spec.kv_cache_memory_bytes = in.getKvCacheMemoryBytes();
  spec.num_kv_blocks_override = in.getNumKvBlocksOverride();
  spec.seed = in.getSeed();
  for (int32_t id : in.getEosTokenIds()) spec.eos_token_ids.push_back(id);
  spec.device = in.getDevice().cStr();
  spec.device_index = in.getDeviceIndex();
  spec.num_cpu_threads = in.getNumCpuThreads();
  spec.collective_host = in.getCollectiveHost().cStr();
  spec.collective_timeout_ms = in.getCollectiveTimeoutMs();
  return spec;
}

}  // namespace vllm::rpc

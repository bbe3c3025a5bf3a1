// SafetensorsFile: one .safetensors file, memory-mapped read-only: the JSON header's tensor
// entries (dtype, shape, byte range) and each tensor's bytes in place. Opening validates the
// header (size, JSON, dtypes, that shapes match byte ranges, that ranges lie inside the file)
// and throws ModelLoadError naming the file and the problem.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace vllm {

class MappedFile;

struct SafetensorsTensorInfo {
  std::string name;
  std::string dtype;  // "F32", "F16", "BF16", "I64", ... as the file spells it
  std::vector<int64_t> shape;
  uint64_t begin = 0;  // byte range within the data section
  uint64_t end = 0;
  int64_t num_elements() const;
};

class SafetensorsFile {
 public:
  static SafetensorsFile open(const std::filesystem::path& path);

  const std::filesystem::path& path() const { return path_; }
  const std::map<std::string, SafetensorsTensorInfo, std::less<>>& tensors() const {
    return tensors_;
  }
  const std::map<std::string, std::string, std::less<>>& metadata() const { return metadata_; }
  const SafetensorsTensorInfo* find(std::string_view name) const;  // nullptr when absent
  std::span<const std::byte> data(const SafetensorsTensorInfo& tensor) const;

 private:
  SafetensorsFile() = default;

  std::filesystem::path path_;
  std::shared_ptr<const MappedFile> file_;
  uint64_t data_offset_ = 0;
  std::map<std::string, SafetensorsTensorInfo, std::less<>> tensors_;
  std::map<std::string, std::string, std::less<>> metadata_;
};

// Bytes per element of a safetensors dtype, or 0 when the dtype is unknown.
int64_t safetensors_dtype_size(std::string_view dtype);

// A checkpoint of one or more safetensors files: model.safetensors, or the shards that
// model.safetensors.index.json names. Tensor names map to the shard that holds them.
class SafetensorsCheckpoint {
 public:
  // `dir` holds model.safetensors.index.json or model.safetensors (else any single *.safetensors).
  // Throws ModelLoadError for a missing shard, a tensor the index places in a shard that lacks
  // it, or no weights at all.
  static SafetensorsCheckpoint open(const std::filesystem::path& dir);

  // Entries point into files_: moving keeps them valid, copying would not.
  SafetensorsCheckpoint(SafetensorsCheckpoint&&) = default;
  SafetensorsCheckpoint& operator=(SafetensorsCheckpoint&&) = default;
  SafetensorsCheckpoint(const SafetensorsCheckpoint&) = delete;
  SafetensorsCheckpoint& operator=(const SafetensorsCheckpoint&) = delete;

  struct Entry {
    const SafetensorsFile* file;
    const SafetensorsTensorInfo* info;
  };
  const Entry* find(std::string_view name) const;  // nullptr when absent
  const std::map<std::string, Entry, std::less<>>& tensors() const { return entries_; }
  const std::vector<SafetensorsFile>& files() const { return files_; }

 private:
  SafetensorsCheckpoint() = default;

  std::vector<SafetensorsFile> files_;
  std::map<std::string, Entry, std::less<>> entries_;
};

}  // namespace vllm

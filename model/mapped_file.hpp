// MappedFile: a whole file memory-mapped read-only, so weights are read in place and never copied
// twice. Move-only; the mapping lives as long as the object.
#pragma once

#include <cstddef>
#include <filesystem>
#include <span>

namespace vllm {

class MappedFile {
 public:
  // Throws ModelLoadError when the file is missing, unreadable or cannot be mapped.
  static MappedFile open(const std::filesystem::path& path);

  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile();

  const std::filesystem::path& path() const { return path_; }
  std::size_t size() const { return size_; }
  std::span<const std::byte> bytes() const { return {data_, size_}; }

 private:
  MappedFile(std::filesystem::path path, const std::byte* data, std::size_t size)
      : path_(std::move(path)), data_(data), size_(size) {}
  void unmap() noexcept;

  std::filesystem::path path_;
  const std::byte* data_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace vllm

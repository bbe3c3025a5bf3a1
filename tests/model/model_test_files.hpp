// Helpers for the model-format tests: a temporary directory that cleans up after itself and
// byte-level file editing (to build corrupt checkpoints from good ones).
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace vllm::test {

class TempDir {
 public:
  TempDir() {
    static std::atomic<int> counter{0};
    std::random_device seed;
    path_ = std::filesystem::temp_directory_path() /
            ("vllm_cpp_test_" + std::to_string(seed()) + "_" + std::to_string(counter++));
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

inline std::vector<uint8_t> read_bytes(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

inline void write_bytes(const std::filesystem::path& path, std::span<const uint8_t> bytes) {
  // Unlink first: truncating a file in place makes ext4 flush it to disk (auto_da_alloc), which
  // turns a loop over many corrupt variants into seconds of I/O waits.
  std::error_code ignored;
  std::filesystem::remove(path, ignored);
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
}

inline void write_text(const std::filesystem::path& path, std::string_view text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(text.data(), static_cast<std::streamsize>(text.size()));
}

template <typename T>
void poke(std::vector<uint8_t>& bytes, std::size_t offset, T value) {
  std::memcpy(bytes.data() + offset, &value, sizeof(T));
}

template <typename T>
T peek(const std::vector<uint8_t>& bytes, std::size_t offset) {
  T value;
  std::memcpy(&value, bytes.data() + offset, sizeof(T));
  return value;
}

// Offset of the first occurrence of `needle` in `bytes` (throws when absent: a broken test).
inline std::size_t find_bytes(const std::vector<uint8_t>& bytes, std::string_view needle) {
  const auto it = std::search(bytes.begin(), bytes.end(), needle.begin(), needle.end());
  if (it == bytes.end())
    throw std::runtime_error("test fixture lacks '" + std::string(needle) + "'");
  return static_cast<std::size_t>(it - bytes.begin());
}

// sum(byte[i] * (i % 65521 + 1)) mod 2^64, as tests/reference/make_gguf_fixtures.py computes it.
inline uint64_t byte_checksum(std::span<const std::byte> bytes) {
  uint64_t sum = 0;
  uint64_t weight = 1;
  for (const std::byte b : bytes) {
    sum += static_cast<uint64_t>(b) * weight;
    weight = weight == 65521 ? 1 : weight + 1;
  }
  return sum;
}

}  // namespace vllm::test

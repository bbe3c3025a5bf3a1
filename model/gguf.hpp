// GgufFile: a GGUF (v2 or v3) file, memory-mapped read-only: its metadata key/values (every value
// type, arrays included, nested arrays too), its tensor infos and each tensor's bytes in place.
// Opening validates the whole header (magic, version, counts, strings, alignment, tensor types,
// that every tensor's data lies inside the file) and throws ModelLoadError naming the file and the
// problem; once open, a tensor's byte span is always safe to read.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "model/ggml_type.hpp"

namespace vllm {

class MappedFile;

enum class GgufValueType : uint32_t {
  kUint8 = 0,
  kInt8 = 1,
  kUint16 = 2,
  kInt16 = 3,
  kUint32 = 4,
  kInt32 = 5,
  kFloat32 = 6,
  kBool = 7,
  kString = 8,
  kArray = 9,
  kUint64 = 10,
  kInt64 = 11,
  kFloat64 = 12,
};

std::string_view gguf_value_type_name(GgufValueType type);

// One metadata value. Integers (and bools, as 0/1) are kept in `int_value` (a UINT64 above
// INT64_MAX keeps its bit pattern; the typed getters refuse it), floats in `float_value`. An
// array keeps its elements in the one vector that fits its element type.
struct GgufValue {
  GgufValueType type = GgufValueType::kUint8;
  int64_t int_value = 0;
  double float_value = 0.0;
  std::string string_value;

  GgufValueType element_type = GgufValueType::kUint8;  // arrays only
  std::vector<int64_t> ints;                           // integer and bool elements
  std::vector<double> floats;                          // float elements
  std::vector<std::string> strings;                    // string elements
  std::vector<GgufValue> arrays;                       // nested array elements

  std::size_t array_size() const;
};

struct GgufTensorInfo {
  std::string name;
  GgmlType type = GgmlType::kF32;
  std::vector<int64_t> dims;  // GGML order: dims[0] is the fastest-varying (ne0)
  uint64_t offset = 0;        // bytes from the start of the data section
  int64_t num_elements = 0;
  uint64_t num_bytes = 0;

  // Row-major shape as PyTorch/Hugging Face write it: dims reversed ([out, in] for a linear).
  std::vector<int64_t> shape() const { return {dims.rbegin(), dims.rend()}; }
};

class GgufFile {
 public:
  // Maps and validates the file. Throws ModelLoadError (missing file, wrong magic, unsupported
  // version, truncated header, unknown tensor type, tensor data outside the file, ...).
  static GgufFile open(const std::filesystem::path& path);

  uint32_t version() const { return version_; }
  const std::filesystem::path& path() const { return path_; }
  uint64_t alignment() const { return alignment_; }
  uint64_t data_offset() const { return data_offset_; }  // file offset of the data section

  // ---- metadata ----
  // Scalar getters return nullopt when the key is absent and throw ModelLoadError when it is
  // present with a type that cannot be read as asked (e.g. a string read as an integer).
  bool has(std::string_view key) const;
  const GgufValue* find(std::string_view key) const;  // nullptr when absent
  std::vector<std::string> keys() const;              // in file order
  std::optional<std::string> get_string(std::string_view key) const;
  std::optional<int64_t> get_int(std::string_view key) const;   // any integer type; bool -> 0/1
  std::optional<double> get_float(std::string_view key) const;  // float32/64 or any integer
  std::optional<bool> get_bool(std::string_view key) const;
  // Array getters return an empty vector when the key is absent (same type rules as above).
  std::vector<std::string> get_string_array(std::string_view key) const;
  std::vector<int64_t> get_int_array(std::string_view key) const;
  std::vector<double> get_float_array(std::string_view key) const;

  // ---- tensors ----
  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
  const GgufTensorInfo* find_tensor(std::string_view name) const;  // nullptr when absent
  // The tensor's bytes inside the mapping (valid while this GgufFile or a copy lives).
  std::span<const std::byte> tensor_data(const GgufTensorInfo& tensor) const;
  // Throws ModelLoadError when there is no tensor of that name.
  std::span<const std::byte> tensor_data(std::string_view name) const;

 private:
  friend class GgufParser;
  GgufFile() = default;
  [[noreturn]] void throw_type_error(std::string_view key, const GgufValue& value,
                                     std::string_view wanted) const;

  std::filesystem::path path_;
  std::shared_ptr<const MappedFile> file_;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  uint64_t data_offset_ = 0;
  std::vector<std::pair<std::string, GgufValue>> metadata_;
  std::map<std::string, std::size_t, std::less<>> metadata_index_;
  std::vector<GgufTensorInfo> tensors_;
  std::map<std::string, std::size_t, std::less<>> tensor_index_;
};

}  // namespace vllm

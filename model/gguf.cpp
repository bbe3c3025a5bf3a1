#include "model/gguf.hpp"

#include <bit>
#include <cstring>
#include <limits>
#include <utility>

#include "model/mapped_file.hpp"
#include "model/model_load_error.hpp"

namespace vllm {

namespace {

constexpr uint64_t kDefaultAlignment = 32;
constexpr int kMaxTensorDims = 4;                        // GGML_MAX_DIMS
constexpr int kMaxArrayNesting = 16;                     // deeper nesting is surely a corrupt file
constexpr uint64_t kMinKeyValueBytes = 8 + 4 + 1;        // empty key, type, one-byte value
constexpr uint64_t kMinTensorInfoBytes = 8 + 4 + 4 + 8;  // empty name, n_dims, type, offset

bool is_integer_type(GgufValueType type) {
  switch (type) {
    case GgufValueType::kUint8:
    case GgufValueType::kInt8:
    case GgufValueType::kUint16:
    case GgufValueType::kInt16:
    case GgufValueType::kUint32:
    case GgufValueType::kInt32:
    case GgufValueType::kUint64:
    case GgufValueType::kInt64:
    case GgufValueType::kBool:
      return true;
    default:
      return false;
  }
}

bool is_float_type(GgufValueType type) {
  return type == GgufValueType::kFloat32 || type == GgufValueType::kFloat64;
}

// Fixed byte size of a scalar value type (0 for string/array).
uint64_t scalar_size(GgufValueType type) {
  switch (type) {
    case GgufValueType::kUint8:
    case GgufValueType::kInt8:
    case GgufValueType::kBool:
      return 1;
    case GgufValueType::kUint16:
    case GgufValueType::kInt16:
      return 2;
    case GgufValueType::kUint32:
    case GgufValueType::kInt32:
    case GgufValueType::kFloat32:
      return 4;
    case GgufValueType::kUint64:
    case GgufValueType::kInt64:
    case GgufValueType::kFloat64:
      return 8;
    default:
      return 0;
  }
}

}  // namespace

std::string_view gguf_value_type_name(GgufValueType type) {
  switch (type) {
    case GgufValueType::kUint8:
      return "uint8";
    case GgufValueType::kInt8:
      return "int8";
    case GgufValueType::kUint16:
      return "uint16";
    case GgufValueType::kInt16:
      return "int16";
    case GgufValueType::kUint32:
      return "uint32";
    case GgufValueType::kInt32:
      return "int32";
    case GgufValueType::kFloat32:
      return "float32";
    case GgufValueType::kBool:
      return "bool";
    case GgufValueType::kString:
      return "string";
    case GgufValueType::kArray:
      return "array";
    case GgufValueType::kUint64:
      return "uint64";
    case GgufValueType::kInt64:
      return "int64";
    case GgufValueType::kFloat64:
      return "float64";
  }
  return "unknown";
}

std::size_t GgufValue::array_size() const {
  return ints.size() + floats.size() + strings.size() + arrays.size();
}

// Reads the header sequentially with a bounds check on every read, so a truncated or corrupt
// file is reported instead of read past its end.
class GgufParser {
 public:
  explicit GgufParser(GgufFile& out) : out_(out), bytes_(out.file_->bytes()) {}

  void parse() {
    parse_preamble();
    const uint64_t tensor_count = read<uint64_t>("tensor count");
    const uint64_t kv_count = read<uint64_t>("metadata key/value count");
    if (kv_count > remaining() / kMinKeyValueBytes) {
      fail("truncated file or corrupt header: metadata count " + std::to_string(kv_count) +
           " cannot fit in the file's " + std::to_string(bytes_.size()) + " bytes");
    }
    for (uint64_t i = 0; i < kv_count; ++i) parse_key_value(i);
    if (tensor_count > remaining() / kMinTensorInfoBytes) {
      fail("truncated file or corrupt header: tensor count " + std::to_string(tensor_count) +
           " cannot fit in the file's " + std::to_string(bytes_.size()) + " bytes");
    }
    read_alignment();
    out_.tensors_.reserve(tensor_count);
    for (uint64_t i = 0; i < tensor_count; ++i) parse_tensor_info(i);
    const uint64_t data_offset = align_up(pos_, out_.alignment_);
    out_.data_offset_ = data_offset;
    for (const auto& tensor : out_.tensors_) check_tensor_bounds(tensor);
  }

 private:
  [[noreturn]] void fail(const std::string& problem) const {
    throw ModelLoadError(out_.path_, problem);
  }

  uint64_t remaining() const { return bytes_.size() - pos_; }

  void need(uint64_t count, std::string_view what) const {
    if (count > remaining()) {
      fail("truncated file: reading " + std::string(what) + " at byte offset " +
           std::to_string(pos_) + " needs " + std::to_string(count) + " bytes, but the file has " +
           std::to_string(bytes_.size()) + " bytes");
    }
  }

  template <typename T>
  T read(std::string_view what) {
    need(sizeof(T), what);
    T value;
    std::memcpy(&value, bytes_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return value;
  }

  std::string read_string(std::string_view what) {
    const uint64_t length = read<uint64_t>(what);
    need(length, what);
    std::string text(reinterpret_cast<const char*>(bytes_.data() + pos_), length);
    pos_ += length;
    return text;
  }

  static uint64_t align_up(uint64_t offset, uint64_t alignment) {
    return (offset + alignment - 1) / alignment * alignment;
  }

  void parse_preamble() {
    static_assert(std::endian::native == std::endian::little, "GGUF reader assumes little-endian");
    if (bytes_.size() < 4) {
      fail("truncated file: " + std::to_string(bytes_.size()) +
           " bytes, too short to be a GGUF file (no magic)");
    }
    const char* magic = reinterpret_cast<const char*>(bytes_.data());
    if (std::memcmp(magic, "GGUF", 4) != 0) {
      std::string shown;
      for (int i = 0; i < 4; ++i) {
        const unsigned char c = static_cast<unsigned char>(magic[i]);
        shown += (c >= 0x20 && c < 0x7f) ? std::string(1, static_cast<char>(c)) : "\\x" + to_hex(c);
      }
      fail("not a GGUF file: magic is '" + shown + "', expected 'GGUF'");
    }
    pos_ = 4;
    const uint32_t version = read<uint32_t>("version");
    if ((version & 0xffffu) == 0 && version != 0) {
      fail("big-endian GGUF files are not supported (version field reads " +
           std::to_string(version) + ")");
    }
    if (version != 2 && version != 3) {
      fail("unsupported GGUF version " + std::to_string(version) + " (supported: 2 and 3)");
    }
    out_.version_ = version;
  }

  static std::string to_hex(unsigned char c) {
    static constexpr char kDigits[] = "0123456789abcdef";
    return {kDigits[c >> 4], kDigits[c & 15]};
  }

  GgufValueType read_value_type(std::string_view key) {
    const uint32_t raw = read<uint32_t>("value type");
    if (raw > static_cast<uint32_t>(GgufValueType::kFloat64)) {
      fail("metadata key '" + std::string(key) + "' has unknown value type " + std::to_string(raw));
    }
    return static_cast<GgufValueType>(raw);
  }

  int64_t read_integer(GgufValueType type) {
    switch (type) {
      case GgufValueType::kUint8:
        return read<uint8_t>("uint8 value");
      case GgufValueType::kInt8:
        return read<int8_t>("int8 value");
      case GgufValueType::kUint16:
        return read<uint16_t>("uint16 value");
      case GgufValueType::kInt16:
        return read<int16_t>("int16 value");
      case GgufValueType::kUint32:
        return read<uint32_t>("uint32 value");
      case GgufValueType::kInt32:
        return read<int32_t>("int32 value");
      case GgufValueType::kUint64:
        return static_cast<int64_t>(read<uint64_t>("uint64 value"));
      case GgufValueType::kInt64:
        return read<int64_t>("int64 value");
      case GgufValueType::kBool:
        return read<uint8_t>("bool value") != 0 ? 1 : 0;
      default:
        return 0;
    }
  }

  double read_float(GgufValueType type) {
    if (type == GgufValueType::kFloat32) return read<float>("float32 value");
    return read<double>("float64 value");
  }

  GgufValue read_value(GgufValueType type, std::string_view key, int depth) {
    GgufValue value;
    value.type = type;
    if (is_integer_type(type)) {
      value.int_value = read_integer(type);
    } else if (is_float_type(type)) {
      value.float_value = read_float(type);
    } else if (type == GgufValueType::kString) {
      value.string_value = read_string("string value");
    } else {
      read_array(value, key, depth);
    }
    return value;
  }

  void read_array(GgufValue& value, std::string_view key, int depth) {
    if (depth >= kMaxArrayNesting) {
      fail("metadata key '" + std::string(key) + "' nests arrays deeper than " +
           std::to_string(kMaxArrayNesting) + " levels");
    }
    const GgufValueType element = read_value_type(key);
    value.element_type = element;
    const uint64_t count = read<uint64_t>("array length");
    // Every element takes at least one byte (strings 8), so a count beyond the rest of the file
    // is corrupt; checking first avoids a huge allocation.
    const uint64_t min_element = element == GgufValueType::kString  ? 8
                                 : element == GgufValueType::kArray ? 12
                                                                    : scalar_size(element);
    if (count > remaining() / min_element) {
      fail("truncated file: metadata key '" + std::string(key) + "' declares " +
           std::to_string(count) + " " + std::string(gguf_value_type_name(element)) +
           " elements, more than the remaining " + std::to_string(remaining()) + " bytes hold");
    }
    if (is_integer_type(element)) {
      value.ints.reserve(count);
      for (uint64_t i = 0; i < count; ++i) value.ints.push_back(read_integer(element));
    } else if (is_float_type(element)) {
      value.floats.reserve(count);
      for (uint64_t i = 0; i < count; ++i) value.floats.push_back(read_float(element));
    } else if (element == GgufValueType::kString) {
      value.strings.reserve(count);
      for (uint64_t i = 0; i < count; ++i) value.strings.push_back(read_string("array string"));
    } else {
      value.arrays.reserve(count);
      for (uint64_t i = 0; i < count; ++i) {
        value.arrays.push_back(read_value(GgufValueType::kArray, key, depth + 1));
      }
    }
  }

  void parse_key_value(uint64_t index) {
    std::string key = read_string("metadata key #" + std::to_string(index));
    const GgufValueType type = read_value_type(key);
    GgufValue value = read_value(type, key, 0);
    if (out_.metadata_index_.count(key) != 0) fail("duplicate metadata key '" + key + "'");
    out_.metadata_index_.emplace(key, out_.metadata_.size());
    out_.metadata_.emplace_back(std::move(key), std::move(value));
  }

  void read_alignment() {
    const GgufValue* value = out_.find("general.alignment");
    if (value == nullptr) return;
    if (value->type != GgufValueType::kUint32) {
      fail("general.alignment must be a uint32, found " +
           std::string(gguf_value_type_name(value->type)));
    }
    const auto alignment = static_cast<uint64_t>(value->int_value);
    if (alignment == 0 || (alignment & (alignment - 1)) != 0) {
      fail("general.alignment " + std::to_string(alignment) + " is not a power of two");
    }
    out_.alignment_ = alignment;
  }

  void parse_tensor_info(uint64_t index) {
    GgufTensorInfo tensor;
    tensor.name = read_string("name of tensor #" + std::to_string(index));
    const uint32_t num_dims = read<uint32_t>("tensor dimension count");
    if (num_dims > kMaxTensorDims) {
      fail("tensor '" + tensor.name + "' has " + std::to_string(num_dims) +
           " dimensions (at most " + std::to_string(kMaxTensorDims) + ")");
    }
    int64_t num_elements = 1;
    for (uint32_t d = 0; d < num_dims; ++d) {
      const uint64_t dim = read<uint64_t>("tensor dimension");
      if (dim > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) ||
          (dim != 0 && static_cast<uint64_t>(num_elements) >
                           static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) / dim)) {
        fail("tensor '" + tensor.name + "' has an impossible size (dimension " +
             std::to_string(dim) + " overflows)");
      }
      tensor.dims.push_back(static_cast<int64_t>(dim));
      num_elements *= static_cast<int64_t>(dim);
    }
    const uint32_t type_id = read<uint32_t>("tensor type");
    const auto traits = ggml_type_traits(type_id);
    if (!traits) {
      fail("tensor '" + tensor.name + "' has unknown GGML type " + std::to_string(type_id));
    }
    tensor.type = static_cast<GgmlType>(type_id);
    tensor.offset = read<uint64_t>("tensor data offset");
    const int64_t row_length = tensor.dims.empty() ? 1 : tensor.dims[0];
    if (row_length % traits->block_size != 0) {
      fail("tensor '" + tensor.name + "' of type " + std::string(traits->name) +
           " has a first dimension " + std::to_string(row_length) +
           " that is not a multiple of the block size " + std::to_string(traits->block_size));
    }
    tensor.num_elements = num_elements;
    // num_elements < 2^63 and type_size <= 292 with block_size >= 1: no overflow in uint64.
    tensor.num_bytes = static_cast<uint64_t>(num_elements / traits->block_size) *
                       static_cast<uint64_t>(traits->type_size);
    if (tensor.offset % out_.alignment_ != 0) {
      fail("tensor '" + tensor.name + "' data offset " + std::to_string(tensor.offset) +
           " is not a multiple of the alignment " + std::to_string(out_.alignment_));
    }
    if (out_.tensor_index_.count(tensor.name) != 0) {
      fail("duplicate tensor name '" + tensor.name + "'");
    }
    out_.tensor_index_.emplace(tensor.name, out_.tensors_.size());
    out_.tensors_.push_back(std::move(tensor));
  }

  void check_tensor_bounds(const GgufTensorInfo& tensor) const {
    const uint64_t size = bytes_.size();
    const uint64_t data_offset = out_.data_offset_;
    const bool outside = data_offset > size || tensor.offset > size - data_offset ||
                         tensor.num_bytes > size - data_offset - tensor.offset;
    if (outside) {
      fail("tensor '" + tensor.name + "' data lies outside the file: it spans bytes " +
           std::to_string(data_offset + tensor.offset) + ".." +
           std::to_string(data_offset + tensor.offset + tensor.num_bytes) + " but the file has " +
           std::to_string(size) + " bytes (truncated file?)");
    }
  }

  GgufFile& out_;
  std::span<const std::byte> bytes_;
  uint64_t pos_ = 0;
};

GgufFile GgufFile::open(const std::filesystem::path& path) {
  GgufFile file;
  file.path_ = path;
  file.file_ = std::make_shared<const MappedFile>(MappedFile::open(path));
  GgufParser(file).parse();
  return file;
}

bool GgufFile::has(std::string_view key) const {
  return find(key) != nullptr;
}

const GgufValue* GgufFile::find(std::string_view key) const {
  const auto it = metadata_index_.find(key);
  return it == metadata_index_.end() ? nullptr : &metadata_[it->second].second;
}

std::vector<std::string> GgufFile::keys() const {
  std::vector<std::string> names;
  names.reserve(metadata_.size());
  for (const auto& [key, value] : metadata_) names.push_back(key);
  return names;
}

void GgufFile::throw_type_error(std::string_view key, const GgufValue& value,
                                std::string_view wanted) const {
  std::string found(gguf_value_type_name(value.type));
  if (value.type == GgufValueType::kArray) {
    found = "array of " + std::string(gguf_value_type_name(value.element_type));
  }
  throw ModelLoadError(path_, "metadata key '" + std::string(key) + "' is " + found + ", not " +
                                  std::string(wanted));
}

namespace {

// A UINT64 above INT64_MAX was stored with its bit pattern; it does not fit an int64.
bool fits_int64(GgufValueType type, int64_t stored) {
  return !(type == GgufValueType::kUint64 && stored < 0);
}

}  // namespace

std::optional<std::string> GgufFile::get_string(std::string_view key) const {
  const GgufValue* value = find(key);
  if (value == nullptr) return std::nullopt;
  if (value->type != GgufValueType::kString) throw_type_error(key, *value, "a string");
  return value->string_value;
}

std::optional<int64_t> GgufFile::get_int(std::string_view key) const {
  const GgufValue* value = find(key);
  if (value == nullptr) return std::nullopt;
  if (!is_integer_type(value->type)) throw_type_error(key, *value, "an integer");
  if (!fits_int64(value->type, value->int_value)) {
    throw ModelLoadError(path_, "metadata key '" + std::string(key) + "' value " +
                                    std::to_string(static_cast<uint64_t>(value->int_value)) +
                                    " does not fit in int64");
  }
  return value->int_value;
}

std::optional<double> GgufFile::get_float(std::string_view key) const {
  const GgufValue* value = find(key);
  if (value == nullptr) return std::nullopt;
  if (is_float_type(value->type)) return value->float_value;
  if (value->type == GgufValueType::kUint64) {
    return static_cast<double>(static_cast<uint64_t>(value->int_value));
  }
  if (is_integer_type(value->type) && value->type != GgufValueType::kBool) {
    return static_cast<double>(value->int_value);
  }
  throw_type_error(key, *value, "a number");
}

std::optional<bool> GgufFile::get_bool(std::string_view key) const {
  const GgufValue* value = find(key);
  if (value == nullptr) return std::nullopt;
  if (value->type != GgufValueType::kBool) throw_type_error(key, *value, "a bool");
  return value->int_value != 0;
}

std::vector<std::string> GgufFile::get_string_array(std::string_view key) const {
  const GgufValue* value = find(key);
  if (value == nullptr) return {};
  if (value->type != GgufValueType::kArray ||
      (value->element_type != GgufValueType::kString && value->array_size() != 0)) {
    throw_type_error(key, *value, "an array of strings");
  }
  return value->strings;
}

std::vector<int64_t> GgufFile::get_int_array(std::string_view key) const {
  const GgufValue* value = find(key);
  if (value == nullptr) return {};
  if (value->type != GgufValueType::kArray ||
      (!is_integer_type(value->element_type) && value->array_size() != 0)) {
    throw_type_error(key, *value, "an array of integers");
  }
  for (const int64_t element : value->ints) {
    if (!fits_int64(value->element_type, element)) {
      throw ModelLoadError(path_, "metadata key '" + std::string(key) + "' holds value " +
                                      std::to_string(static_cast<uint64_t>(element)) +
                                      " that does not fit in int64");
    }
  }
  return value->ints;
}

std::vector<double> GgufFile::get_float_array(std::string_view key) const {
  const GgufValue* value = find(key);
  if (value == nullptr) return {};
  if (value->type != GgufValueType::kArray) throw_type_error(key, *value, "an array of numbers");
  if (is_float_type(value->element_type)) return value->floats;
  if (is_integer_type(value->element_type) && value->element_type != GgufValueType::kBool) {
    std::vector<double> converted;
    converted.reserve(value->ints.size());
    for (const int64_t element : value->ints) {
      converted.push_back(value->element_type == GgufValueType::kUint64
                              ? static_cast<double>(static_cast<uint64_t>(element))
                              : static_cast<double>(element));
    }
    return converted;
  }
  if (value->array_size() == 0) return {};
  throw_type_error(key, *value, "an array of numbers");
}

const GgufTensorInfo* GgufFile::find_tensor(std::string_view name) const {
  const auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

std::span<const std::byte> GgufFile::tensor_data(const GgufTensorInfo& tensor) const {
  return file_->bytes().subspan(data_offset_ + tensor.offset, tensor.num_bytes);
}

std::span<const std::byte> GgufFile::tensor_data(std::string_view name) const {
  const GgufTensorInfo* tensor = find_tensor(name);
  if (tensor == nullptr) {
    throw ModelLoadError(path_, "no tensor named '" + std::string(name) + "'");
  }
  return tensor_data(*tensor);
}

}  // namespace vllm

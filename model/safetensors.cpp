#include "model/safetensors.hpp"

#include <cstring>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>

#include "model/mapped_file.hpp"
#include "model/model_load_error.hpp"

namespace vllm {

namespace {

using Json = nlohmann::json;

// The reference implementation caps the header at 100 MB; a larger one is a corrupt length.
constexpr uint64_t kMaxHeaderBytes = 100u * 1024 * 1024;

}  // namespace

int64_t safetensors_dtype_size(std::string_view dtype) {
  if (dtype == "F64" || dtype == "I64" || dtype == "U64") return 8;
  if (dtype == "F32" || dtype == "I32" || dtype == "U32") return 4;
  if (dtype == "F16" || dtype == "BF16" || dtype == "I16" || dtype == "U16") return 2;
  if (dtype == "I8" || dtype == "U8" || dtype == "BOOL" || dtype == "F8_E4M3" ||
      dtype == "F8_E5M2") {
    return 1;
  }
  return 0;
}

int64_t SafetensorsTensorInfo::num_elements() const {
  int64_t n = 1;
  for (const int64_t d : shape) n *= d;
  return n;
}

SafetensorsFile SafetensorsFile::open(const std::filesystem::path& path) {
  SafetensorsFile result;
  result.path_ = path;
  result.file_ = std::make_shared<const MappedFile>(MappedFile::open(path));
  const auto bytes = result.file_->bytes();
  auto fail = [&](const std::string& problem) -> void { throw ModelLoadError(path, problem); };

  if (bytes.size() < 8) {
    fail("truncated file: " + std::to_string(bytes.size()) +
         " bytes, too short for a safetensors header length");
  }
  uint64_t header_size = 0;
  std::memcpy(&header_size, bytes.data(), 8);
  if (header_size > kMaxHeaderBytes) {
    fail("not a safetensors file: header length " + std::to_string(header_size) +
         " is implausible (wrong format?)");
  }
  if (header_size > bytes.size() - 8) {
    fail("truncated file: header needs " + std::to_string(header_size) +
         " bytes after the length, the file has " + std::to_string(bytes.size() - 8));
  }
  result.data_offset_ = 8 + header_size;
  const uint64_t data_size = bytes.size() - result.data_offset_;

  Json header;
  try {
    header = Json::parse(reinterpret_cast<const char*>(bytes.data()) + 8,
                         reinterpret_cast<const char*>(bytes.data()) + 8 + header_size);
  } catch (const Json::exception& error) {
    fail(std::string("not a safetensors file: header is not valid JSON (") + error.what() + ")");
  }
  if (!header.is_object()) fail("not a safetensors file: header is not a JSON object");

  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      if (!entry.is_object()) fail("__metadata__ must be an object of strings");
      for (const auto& [key, value] : entry.items()) {
        if (!value.is_string()) fail("__metadata__['" + key + "'] must be a string");
        result.metadata_.emplace(key, value.get<std::string>());
      }
      continue;
    }
    const std::string where = "tensor '" + name + "': ";
    if (!entry.is_object() || !entry.contains("dtype") || !entry["dtype"].is_string() ||
        !entry.contains("shape") || !entry["shape"].is_array() || !entry.contains("data_offsets") ||
        !entry["data_offsets"].is_array() || entry["data_offsets"].size() != 2) {
      fail(where + "entry must have a string dtype, a shape list and two data_offsets");
    }
    SafetensorsTensorInfo info;
    info.name = name;
    info.dtype = entry["dtype"].get<std::string>();
    const int64_t element_size = safetensors_dtype_size(info.dtype);
    if (element_size == 0) fail(where + "unknown dtype '" + info.dtype + "'");
    uint64_t num_elements = 1;
    for (const auto& dim : entry["shape"]) {
      if (!dim.is_number_unsigned()) fail(where + "shape entries must be non-negative integers");
      const auto d = dim.get<uint64_t>();
      if (d != 0 && num_elements > (std::numeric_limits<uint64_t>::max() / 16) / d) {
        fail(where + "shape overflows");
      }
      num_elements *= d;
      info.shape.push_back(static_cast<int64_t>(d));
    }
    for (const auto& offset : entry["data_offsets"]) {
      if (!offset.is_number_unsigned()) fail(where + "data_offsets must be non-negative integers");
    }
    info.begin = entry["data_offsets"][0].get<uint64_t>();
    info.end = entry["data_offsets"][1].get<uint64_t>();
    if (info.begin > info.end) fail(where + "data_offsets are reversed");
    if (info.end - info.begin != num_elements * static_cast<uint64_t>(element_size)) {
      fail(where + "shape and dtype " + info.dtype + " need " +
           std::to_string(num_elements * static_cast<uint64_t>(element_size)) +
           " bytes, but data_offsets span " + std::to_string(info.end - info.begin));
    }
    if (info.end > data_size) {
      fail(where + "data lies outside the file: bytes " + std::to_string(info.begin) + ".." +
           std::to_string(info.end) + " of a data section of " + std::to_string(data_size) +
           " bytes (truncated file?)");
    }
    result.tensors_.emplace(name, std::move(info));
  }
  return result;
}

const SafetensorsTensorInfo* SafetensorsFile::find(std::string_view name) const {
  const auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : &it->second;
}

std::span<const std::byte> SafetensorsFile::data(const SafetensorsTensorInfo& tensor) const {
  return file_->bytes().subspan(data_offset_ + tensor.begin, tensor.end - tensor.begin);
}

SafetensorsCheckpoint SafetensorsCheckpoint::open(const std::filesystem::path& dir) {
  SafetensorsCheckpoint checkpoint;
  const auto index_path = dir / "model.safetensors.index.json";
  std::vector<std::filesystem::path> shard_paths;
  std::map<std::string, std::string> weight_map;

  if (std::filesystem::exists(index_path)) {
    Json index;
    try {
      std::ifstream in(index_path);
      index = Json::parse(in);
    } catch (const Json::exception& error) {
      throw ModelLoadError(index_path, std::string("invalid JSON: ") + error.what());
    }
    if (!index.is_object() || !index.contains("weight_map") || !index["weight_map"].is_object()) {
      throw ModelLoadError(index_path, "missing 'weight_map' object");
    }
    std::set<std::string> shards;
    for (const auto& [name, shard] : index["weight_map"].items()) {
      if (!shard.is_string()) {
        throw ModelLoadError(index_path, "weight_map['" + name + "'] must be a file name");
      }
      weight_map.emplace(name, shard.get<std::string>());
      shards.insert(shard.get<std::string>());
    }
    for (const auto& shard : shards) {
      const auto shard_path = dir / shard;
      if (!std::filesystem::exists(shard_path)) {
        throw ModelLoadError(index_path,
                             "missing shard '" + shard_path.string() + "' (named in weight_map)");
      }
      shard_paths.push_back(shard_path);
    }
  } else if (std::filesystem::exists(dir / "model.safetensors")) {
    shard_paths.push_back(dir / "model.safetensors");
  } else {
    std::error_code ignored;
    for (const auto& entry : std::filesystem::directory_iterator(dir, ignored)) {
      if (entry.path().extension() == ".safetensors") shard_paths.push_back(entry.path());
    }
    std::sort(shard_paths.begin(), shard_paths.end());
    if (shard_paths.empty()) {
      throw ModelLoadError(dir,
                           "no model.safetensors, model.safetensors.index.json or other "
                           "*.safetensors file in this directory");
    }
  }

  checkpoint.files_.reserve(shard_paths.size());  // entries point into files_: no reallocation
  for (const auto& shard_path : shard_paths) {
    checkpoint.files_.push_back(SafetensorsFile::open(shard_path));
    const SafetensorsFile& file = checkpoint.files_.back();
    for (const auto& [name, info] : file.tensors()) {
      if (!weight_map.empty()) {
        const auto it = weight_map.find(name);
        // A tensor the index does not place here is ignored (the index is authoritative).
        if (it == weight_map.end() || dir / it->second != shard_path) continue;
      }
      if (!checkpoint.entries_.emplace(name, Entry{&file, &info}).second) {
        throw ModelLoadError(shard_path, "tensor '" + name + "' appears in more than one file");
      }
    }
  }
  for (const auto& [name, shard] : weight_map) {
    if (checkpoint.entries_.count(name) == 0) {
      throw ModelLoadError(dir / shard, "lacks tensor '" + name +
                                            "' that model.safetensors.index.json places in it");
    }
  }
  return checkpoint;
}

const SafetensorsCheckpoint::Entry* SafetensorsCheckpoint::find(std::string_view name) const {
  const auto it = entries_.find(name);
  return it == entries_.end() ? nullptr : &it->second;
}

}  // namespace vllm

// Sizes as people write them in flags and manifests: "1073741824", "512M", "1G", "64k", "1GiB",
// "2GB" (powers of 1024; case does not matter).
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace vllm {

// The size in bytes, or nothing when `text` is not a positive size.
std::optional<int64_t> parse_byte_size(std::string_view text);

}  // namespace vllm

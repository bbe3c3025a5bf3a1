#include <catch2/catch.hpp>

#include "runtime/byte_size.hpp"

TEST_CASE("byte sizes as written in flags and manifests", "[runtime]") {
  using vllm::parse_byte_size;
  CHECK(parse_byte_size("1073741824") == int64_t{1} << 30);
  CHECK(parse_byte_size("512M") == int64_t{512} << 20);
  CHECK(parse_byte_size("1G") == int64_t{1} << 30);
  CHECK(parse_byte_size("1GiB") == int64_t{1} << 30);
  CHECK(parse_byte_size("2gb") == int64_t{2} << 30);
  CHECK(parse_byte_size("64k") == int64_t{64} << 10);
  CHECK(parse_byte_size("1.5M") == int64_t{3} << 19);
  CHECK_FALSE(parse_byte_size("lots"));
  CHECK_FALSE(parse_byte_size("0"));
  CHECK_FALSE(parse_byte_size("-1G"));
  CHECK_FALSE(parse_byte_size("12Q"));
  CHECK_FALSE(parse_byte_size(""));
}

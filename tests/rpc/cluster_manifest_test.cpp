// The cluster manifest: what a good one resolves to, and the message each kind of bad one gets.
#include <filesystem>
#include <fstream>

#include <catch2/catch.hpp>

#include "rpc/cluster_manifest.hpp"

namespace vllm::rpc {
namespace {

std::filesystem::path write(const std::string& name, const std::string& text) {
  auto path = std::filesystem::temp_directory_path() / ("vllm-manifest-" + name + ".toml");
  std::ofstream(path) << text;
  return path;
}

const char* kGood = R"(
[model]
path = "/models/m.gguf"
[parallel]
tensor_parallel_size = 2
pipeline_parallel_size = 2
[engine]
kv_cache_memory = "512M"
max_num_seqs = 8
[[nodes]]
name = "a"
address = "127.0.0.1"
port = 7001
devices = 3
[[nodes]]
address = "10.1.2.3"
port = 7002
ssh_user = "llm"
ssh_options = ["StrictHostKeyChecking=no"]
)";

std::string error_of(const std::string& name, const std::string& text) {
  try {
    read_cluster_manifest(write(name, text));
  } catch (const ManifestError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("a manifest resolves nodes, defaults and the rank placement", "[rpc]") {
  const ClusterManifest m = read_cluster_manifest(write("good", kGood));
  REQUIRE(m.nodes.size() == 2);
  CHECK(m.model == "/models/m.gguf");
  CHECK(m.load_format == "auto");
  CHECK(m.world_size() == 4);
  CHECK(m.micro_batches == 0);  // auto: one per stage when the stages are on separate nodes
  CHECK(m.kv_cache_memory_bytes == int64_t{512} << 20);
  CHECK(m.max_num_seqs == 8);
  CHECK(m.head_port == 8000);
  CHECK(m.nodes[0].local);
  CHECK_FALSE(m.nodes[1].local);  // another host: over ssh
  CHECK(m.nodes[1].name == "10.1.2.3:7002");
  CHECK(m.nodes[1].ssh_options == std::vector<std::string>{"StrictHostKeyChecking=no"});
  CHECK(m.nodes[1].ssh_port == 22);
  // Ranks fill the nodes' devices in order: a0 a1 a2 b0.
  const auto placement = m.placement();
  REQUIRE(placement.size() == 4);
  CHECK(placement[2] == std::pair<size_t, int32_t>{0, 2});
  CHECK(placement[3] == std::pair<size_t, int32_t>{1, 0});
}

TEST_CASE("bad manifests name the key and the problem", "[rpc]") {
  std::string text = kGood;
  CHECK_THAT(error_of("typo", text + "\n[engine2]\n"),
             Catch::Contains("'engine2' is not a known key"));
  std::string typo = text;
  typo.replace(typo.find("max_num_seqs"), 12, "max_num_seq");
  CHECK_THAT(error_of("key", typo), Catch::Contains("'engine.max_num_seq' is not a known key"));
  std::string no_port = text;
  no_port.replace(no_port.find("port = 7002"), 11, "");
  CHECK_THAT(error_of("port", no_port), Catch::Contains("'nodes[1].port' is missing"));
  std::string layout = text;
  layout.replace(layout.find("devices = 3"), 11, "devices = 1");
  CHECK_THAT(error_of("layout", layout), Catch::Contains("needs 4 devices, but the nodes have 2"));
  std::string range = text;
  range.replace(range.find("port = 7001"), 11, "port = 70000");
  CHECK_THAT(error_of("range", range), Catch::Contains("'nodes[0].port' must be in [1, 65535]"));
  std::string type = text;
  type.replace(type.find("max_num_seqs = 8"), 16, "max_num_seqs = \"8\"");
  CHECK_THAT(error_of("type", type), Catch::Contains("'engine.max_num_seqs' must be an integer"));
  std::string one_step = text;
  one_step.replace(one_step.find("pipeline_parallel_size = 2"), 26,
                   "pipeline_parallel_size = 2\nmicro_batches = 1");
  CHECK(read_cluster_manifest(write("one-step", one_step)).micro_batches == 1);
  std::string no_steps = text;
  no_steps.replace(no_steps.find("pipeline_parallel_size = 2"), 26,
                   "pipeline_parallel_size = 2\nmicro_batches = 0");
  CHECK_THAT(error_of("micro", no_steps),
             Catch::Contains("'parallel.micro_batches' must be in [1, 1024]"));
  std::string gpu = text;
  gpu.replace(gpu.find("max_num_seqs = 8"), 16, "max_num_seqs = 8\ndevice = \"cuda\"");
  CHECK(read_cluster_manifest(write("gpu", gpu)).device == "cuda");
  std::string tpu = text;
  tpu.replace(tpu.find("max_num_seqs = 8"), 16, "max_num_seqs = 8\ndevice = \"tpu\"");
  CHECK_THAT(error_of("device", tpu),
             Catch::Contains("'engine.device' must be \"cpu\" or \"cuda\", got \"tpu\""));
  std::string too_many = text;
  too_many.replace(too_many.find("pipeline_parallel_size = 2"), 26,
                   "pipeline_parallel_size = 2\nmicro_batches = 3");
  CHECK_THAT(
      error_of("micro3", too_many),
      Catch::Contains("'parallel.micro_batches' must be at most pipeline_parallel_size (2)"));
  CHECK_THAT(error_of("syntax", "[model\n"), Catch::Contains("is not valid TOML (line 1"));
  CHECK_THAT(error_of("nomodel", "[[nodes]]\naddress = \"x\"\nport = 1\n"),
             Catch::Contains("'model' is missing"));
  std::string twice = text + "\n[[nodes]]\nname = \"a\"\naddress = \"127.0.0.1\"\nport = 7003\n";
  CHECK_THAT(error_of("twice", twice), Catch::Contains("'a' is used twice"));
  CHECK_THAT(error_of("missing-file", ""), Catch::Contains("'model' is missing"));
  try {
    read_cluster_manifest("/nonexistent/cluster.toml");
    FAIL("no error");
  } catch (const ManifestError& e) {
    CHECK_THAT(e.what(), Catch::Contains("/nonexistent/cluster.toml: does not exist"));
  }
}

}  // namespace vllm::rpc

#include "rpc/cluster_manifest.hpp"

#include <unistd.h>

#include <set>

#include <toml++/toml.h>

#include "runtime/byte_size.hpp"

namespace vllm::rpc {
namespace {

class Reader {
 public:
  explicit Reader(const std::filesystem::path& path) : file_(path.string()) {}

  [[noreturn]] void fail(const std::string& key, const std::string& problem) const {
    throw ManifestError(file_ + ": " + (key.empty() ? "" : "'" + key + "' ") + problem);
  }

  void only_keys(const toml::table& table, const std::string& where,
                 const std::set<std::string>& allowed) const {
    for (const auto& [key, value] : table) {
      const std::string name(key.str());
      if (!allowed.count(name)) {
        std::string list;
        for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
        fail(where.empty() ? name : where + "." + name,
             "is not a known key (known " + (where.empty() ? std::string("sections") : where) +
                 " keys: " + list + ")");
      }
    }
  }

  const toml::table* table(const toml::table& parent, const std::string& key, bool required) const {
    const toml::node* node = parent.get(key);
    if (node == nullptr) {
      if (required) fail(key, "is missing: the manifest needs a [" + key + "] section");
      return nullptr;
    }
    if (!node->is_table()) fail(key, "must be a table ([" + key + "])");
    return node->as_table();
  }

  std::optional<std::string> text(const toml::table& t, const std::string& where,
                                  const std::string& key, bool required) const {
    const toml::node* node = t.get(key);
    if (node == nullptr) {
      if (required) fail(where + "." + key, "is missing");
      return std::nullopt;
    }
    if (!node->is_string()) fail(where + "." + key, "must be a string");
    return node->as_string()->get();
  }

  std::optional<int64_t> integer(const toml::table& t, const std::string& where,
                                 const std::string& key, bool required, int64_t min,
                                 int64_t max) const {
    const toml::node* node = t.get(key);
    if (node == nullptr) {
      if (required) fail(where + "." + key, "is missing");
      return std::nullopt;
    }
    if (!node->is_integer()) fail(where + "." + key, "must be an integer");
    const int64_t value = node->as_integer()->get();
    if (value < min || value > max) {
      fail(where + "." + key, "must be in [" + std::to_string(min) + ", " + std::to_string(max) +
                                  "], got " + std::to_string(value));
    }
    return value;
  }

  std::optional<bool> boolean(const toml::table& t, const std::string& where,
                              const std::string& key) const {
    const toml::node* node = t.get(key);
    if (node == nullptr) return std::nullopt;
    if (!node->is_boolean()) fail(where + "." + key, "must be true or false");
    return node->as_boolean()->get();
  }

  // "1G", "512M", 1073741824 (runtime/byte_size.hpp)
  std::optional<int64_t> bytes(const toml::table& t, const std::string& where,
                               const std::string& key) const {
    const toml::node* node = t.get(key);
    if (node == nullptr) return std::nullopt;
    if (node->is_integer() && node->as_integer()->get() > 0) return node->as_integer()->get();
    if (node->is_string()) {
      if (auto bytes = parse_byte_size(node->as_string()->get())) return bytes;
    }
    fail(where + "." + key, "must be a size like 1073741824, \"512M\" or \"1G\"");
  }

 private:
  std::string file_;
};

}  // namespace

bool is_local_address(const std::string& address) {
  if (address == "localhost" || address == "::1" || address.rfind("127.", 0) == 0) return true;
  char host[256] = {};
  if (::gethostname(host, sizeof(host) - 1) == 0 && address == host) return true;
  return false;
}

int32_t ClusterManifest::num_devices() const {
  int32_t total = 0;
  for (const auto& node : nodes) total += node.devices;
  return total;
}

std::vector<std::pair<size_t, int32_t>> ClusterManifest::placement() const {
  std::vector<std::pair<size_t, int32_t>> ranks;
  for (size_t n = 0; n < nodes.size(); ++n) {
    for (int32_t d = 0; d < nodes[n].devices; ++d) ranks.emplace_back(n, d);
  }
  ranks.resize(static_cast<size_t>(world_size()));
  return ranks;
}

ClusterManifest read_cluster_manifest(const std::filesystem::path& path) {
  Reader r(path);
  if (!std::filesystem::exists(path)) r.fail("", "does not exist");
  toml::table root;
  try {
    root = toml::parse_file(path.string());
  } catch (const toml::parse_error& e) {
    r.fail("", "is not valid TOML (line " + std::to_string(e.source().begin.line) + ", column " +
                   std::to_string(e.source().begin.column) + "): " + std::string(e.description()));
  }
  ClusterManifest m;
  m.path = path;
  r.only_keys(root, "", {"model", "parallel", "head", "engine", "heartbeat", "nodes"});

  const toml::table* model = r.table(root, "model", true);
  r.only_keys(*model, "model", {"path", "load_format", "served_model_name", "chat_template"});
  m.model = *r.text(*model, "model", "path", true);
  m.load_format = r.text(*model, "model", "load_format", false).value_or("auto");
  if (m.load_format != "auto" && m.load_format != "gguf" && m.load_format != "safetensors" &&
      m.load_format != "dummy") {
    r.fail("model.load_format",
           "must be auto, gguf, safetensors or dummy, got '" + m.load_format + "'");
  }
  m.served_model_name = r.text(*model, "model", "served_model_name", false).value_or("");
  m.chat_template = r.text(*model, "model", "chat_template", false).value_or("");

  if (const toml::table* parallel = r.table(root, "parallel", false)) {
    r.only_keys(*parallel, "parallel",
                {"tensor_parallel_size", "pipeline_parallel_size", "micro_batches"});
    m.tensor_parallel_size = static_cast<int32_t>(
        r.integer(*parallel, "parallel", "tensor_parallel_size", false, 1, 1024).value_or(1));
    m.pipeline_parallel_size = static_cast<int32_t>(
        r.integer(*parallel, "parallel", "pipeline_parallel_size", false, 1, 1024).value_or(1));
    m.micro_batches = static_cast<int32_t>(
        r.integer(*parallel, "parallel", "micro_batches", false, 1, 1024).value_or(0));
  }
  if (m.micro_batches > m.pipeline_parallel_size) {
    r.fail("parallel.micro_batches", "must be at most pipeline_parallel_size (" +
                                         std::to_string(m.pipeline_parallel_size) + "), got " +
                                         std::to_string(m.micro_batches));
  }

  if (const toml::table* head = r.table(root, "head", false)) {
    r.only_keys(*head, "head", {"host", "port", "api_key"});
    m.head_host = r.text(*head, "head", "host", false).value_or(m.head_host);
    m.head_port = static_cast<uint16_t>(
        r.integer(*head, "head", "port", false, 1, 65535).value_or(m.head_port));
    m.api_key = r.text(*head, "head", "api_key", false).value_or("");
  }

  if (const toml::table* engine = r.table(root, "engine", false)) {
    r.only_keys(*engine, "engine",
                {"max_model_len", "max_num_seqs", "max_num_batched_tokens", "block_size",
                 "enable_prefix_caching", "kv_cache_memory", "seed", "threads",
                 "max_waiting_requests", "device"});
    const std::string e = "engine";
    m.device = r.text(*engine, e, "device", false).value_or(m.device);
    if (m.device != "cpu" && m.device != "cuda") {
      r.fail("engine.device", "must be \"cpu\" or \"cuda\", got \"" + m.device + "\"");
    }
    m.max_model_len =
        static_cast<int32_t>(r.integer(*engine, e, "max_model_len", false, 1, 1 << 24).value_or(0));
    m.max_num_seqs = static_cast<int32_t>(
        r.integer(*engine, e, "max_num_seqs", false, 1, 1 << 20).value_or(m.max_num_seqs));
    m.max_num_batched_tokens =
        static_cast<int32_t>(r.integer(*engine, e, "max_num_batched_tokens", false, 1, 1 << 24)
                                 .value_or(m.max_num_batched_tokens));
    m.block_size = static_cast<int32_t>(
        r.integer(*engine, e, "block_size", false, 1, 1024).value_or(m.block_size));
    m.enable_prefix_caching = r.boolean(*engine, e, "enable_prefix_caching").value_or(true);
    m.kv_cache_memory_bytes =
        r.bytes(*engine, e, "kv_cache_memory").value_or(m.kv_cache_memory_bytes);
    m.seed = static_cast<uint64_t>(r.integer(*engine, e, "seed", false, 0, INT64_MAX).value_or(0));
    m.threads = static_cast<int32_t>(r.integer(*engine, e, "threads", false, 0, 4096).value_or(0));
    m.max_waiting_requests =
        static_cast<int32_t>(r.integer(*engine, e, "max_waiting_requests", false, 1, 1 << 24)
                                 .value_or(m.max_waiting_requests));
  }

  if (const toml::table* heartbeat = r.table(root, "heartbeat", false)) {
    r.only_keys(*heartbeat, "heartbeat", {"interval_ms", "deadline_ms", "startup_timeout_s"});
    m.heartbeat_interval = std::chrono::milliseconds(
        r.integer(*heartbeat, "heartbeat", "interval_ms", false, 10, 60000).value_or(500));
    m.heartbeat_deadline = std::chrono::milliseconds(
        r.integer(*heartbeat, "heartbeat", "deadline_ms", false, 10, 600000).value_or(2000));
    m.startup_timeout = std::chrono::seconds(
        r.integer(*heartbeat, "heartbeat", "startup_timeout_s", false, 1, 3600).value_or(120));
  }

  const toml::node* nodes = root.get("nodes");
  if (nodes == nullptr) r.fail("nodes", "is missing: list the nodes as [[nodes]] tables");
  if (!nodes->is_array_of_tables() || nodes->as_array()->empty()) {
    r.fail("nodes", "must be one or more [[nodes]] tables");
  }
  std::set<std::string> names;
  std::set<std::pair<std::string, uint16_t>> endpoints;
  size_t index = 0;
  for (const auto& item : *nodes->as_array()) {
    const toml::table& t = *item.as_table();
    const std::string where = "nodes[" + std::to_string(index++) + "]";
    r.only_keys(t, where,
                {"name", "address", "port", "devices", "listen_host", "ssh_user", "ssh_port",
                 "ssh_key", "ssh_options", "binary"});
    ManifestNode node;
    node.address = *r.text(t, where, "address", true);
    if (node.address.empty()) r.fail(where + ".address", "must not be empty");
    node.port = static_cast<uint16_t>(*r.integer(t, where, "port", true, 1, 65535));
    node.name =
        r.text(t, where, "name", false).value_or(node.address + ":" + std::to_string(node.port));
    node.devices = static_cast<int32_t>(r.integer(t, where, "devices", false, 1, 1024).value_or(1));
    node.listen_host = r.text(t, where, "listen_host", false).value_or(node.address);
    node.ssh_user = r.text(t, where, "ssh_user", false).value_or("");
    node.ssh_port =
        static_cast<uint16_t>(r.integer(t, where, "ssh_port", false, 1, 65535).value_or(22));
    node.ssh_key = r.text(t, where, "ssh_key", false).value_or("");
    if (const toml::node* options = t.get("ssh_options")) {
      if (!options->is_array()) r.fail(where + ".ssh_options", "must be a list of strings");
      for (const auto& option : *options->as_array()) {
        if (!option.is_string()) r.fail(where + ".ssh_options", "must be a list of strings");
        node.ssh_options.push_back(option.as_string()->get());
      }
    }
    node.binary = r.text(t, where, "binary", false).value_or("");
    node.local = node.ssh_user.empty() && is_local_address(node.address);
    if (!names.insert(node.name).second)
      r.fail(where + ".name", "'" + node.name + "' is used twice");
    if (!endpoints.insert({node.address, node.port}).second) {
      r.fail(where, "has the same address and port as another node (" + node.address + ":" +
                        std::to_string(node.port) + ")");
    }
    m.nodes.push_back(std::move(node));
  }

  if (m.world_size() != m.num_devices()) {
    r.fail("parallel", "tensor_parallel_size " + std::to_string(m.tensor_parallel_size) +
                           " x pipeline_parallel_size " + std::to_string(m.pipeline_parallel_size) +
                           " needs " + std::to_string(m.world_size()) +
                           " devices, but the nodes have " + std::to_string(m.num_devices()) +
                           " (the sum of their 'devices'): make them match");
  }
  return m;
}

}  // namespace vllm::rpc

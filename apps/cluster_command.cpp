// vllm-cpp cluster up|down MANIFEST: a whole cluster from one manifest (rpc/cluster_manifest.hpp).
//   up:   validates the manifest, checks every node can be reached (ssh) and every local port is
//         free, starts each node's agent (a local process, or over ssh), waits until every agent
//         answers its health check, then runs the head (scheduler + OpenAI server) on the remote
//         workers until SIGINT/SIGTERM, and stops the agents it started.
//   down: stops the head that `up` started for this manifest (its pid is in a state file) and
//         asks every node agent of the manifest that still answers to exit.
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <thread>

#include <fmt/format.h>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <nlohmann/json.hpp>

#include "apps/child_process.hpp"
#include "apps/command_line.hpp"
#include "apps/subcommands.hpp"
#include "rpc/cluster_manifest.hpp"
#include "rpc/kj_loop.hpp"
#include "rpc/node_client.hpp"
#include "rpc/remote_pipeline.hpp"
#include "runtime/logging.hpp"
#include "server/serve.hpp"

namespace vllm::apps {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using rpc::ClusterManifest;
using rpc::ManifestError;
using rpc::ManifestNode;

constexpr FlagSpec kFlags[] = {
    {"--state-file", true,
     "where `up` records what it started (default: under /tmp, per manifest)"},
    {"--log-dir", true, "where the agents' logs go (default: beside the state file)"},
    {"--log-level", true, "trace | debug | info | warning | error (default info)"},
    {"--timeout", true, "down: seconds to wait for the head to exit (default 30)"},
    {"--help", false, "show this help"},
};

// Something the cluster needs is missing or unreachable: nothing was started.
class ClusterError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A SIGINT/SIGTERM while the agents start: stop them (they run in their own process groups, so
// the signal does not reach them) instead of leaving them behind.
std::atomic<int> startup_signal{0};
extern "C" void on_startup_signal(int signal) {
  startup_signal = signal;
}

fs::path default_state_file(const fs::path& manifest) {
  const std::string key = fs::absolute(manifest).lexically_normal().string();
  return fs::temp_directory_path() /
         fmt::format("vllm-cpp-cluster-{:016x}.json", std::hash<std::string>{}(key));
}

std::string this_binary() {
  return fs::read_symlink("/proc/self/exe").string();
}

std::vector<std::string> ssh_prefix(const ManifestNode& node) {
  std::vector<std::string> argv{"ssh", "-n",
                                "-o",  "BatchMode=yes",
                                "-o",  "ConnectTimeout=5",
                                "-p",  std::to_string(node.ssh_port)};
  if (!node.ssh_key.empty()) {
    argv.insert(argv.end(), {"-i", node.ssh_key});
  }
  for (const auto& option : node.ssh_options) argv.insert(argv.end(), {"-o", option});
  argv.push_back(node.ssh_user.empty() ? node.address : node.ssh_user + "@" + node.address);
  return argv;
}

std::vector<std::string> agent_command(const ManifestNode& node, const std::string& log_level) {
  std::vector<std::string> command{node.binary.empty() ? this_binary() : node.binary,
                                   "node",
                                   "--listen",
                                   node.listen_host + ":" + std::to_string(node.port),
                                   "--name",
                                   node.name,
                                   "--devices",
                                   std::to_string(node.devices),
                                   "--log-level",
                                   log_level};
  if (node.local) return command;
  std::vector<std::string> argv = ssh_prefix(node);
  std::string remote = "exec";
  for (const auto& part : command) remote += " " + shell_quote(part);
  argv.push_back(remote);
  return argv;
}

bool port_is_free(const std::string& host, uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return true;
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  const std::string ip = host == "localhost" ? "127.0.0.1" : host;
  if (inet_pton(AF_INET, ip.c_str(), &address.sin_addr) != 1) {
    close(fd);
    return true;  // a name or IPv6: the agent itself will say if it cannot listen
  }
  const bool free = bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0;
  close(fd);
  return free;
}

// Everything that can be checked before starting anything.
void preflight(const ClusterManifest& m) {
  if (m.load_format != "dummy" && !fs::exists(m.model)) {
    throw ClusterError(m.path.string() + ": model.path '" + m.model +
                       "' does not exist on this host (the head reads its config and tokenizer)");
  }
  if (!port_is_free(m.head_host, m.head_port)) {
    throw ClusterError(fmt::format("{}: head.port {} on {} is already in use", m.path.string(),
                                   m.head_port, m.head_host));
  }
  for (const auto& node : m.nodes) {
    if (node.local) {
      if (!port_is_free(node.listen_host, node.port)) {
        throw ClusterError(
            fmt::format("node '{}': port {} on {} is already in use (another agent?)", node.name,
                        node.port, node.listen_host));
      }
      continue;
    }
    std::vector<std::string> probe = ssh_prefix(node);
    probe.push_back("true");
    auto [code, output] = run_command(probe, 15s);
    if (code != 0) {
      throw ClusterError(fmt::format(
          "node '{}': cannot reach {} over ssh (port {}{}): {}", node.name, node.address,
          node.ssh_port, node.ssh_user.empty() ? "" : ", user " + node.ssh_user,
          code == -1 ? "no answer within 15 s" : "exit " + std::to_string(code) + ": " + output));
    }
  }
}

struct StartedNode {
  ManifestNode node;
  std::optional<ChildProcess> process;
  std::shared_ptr<rpc::NodeClient> client;
};

// Stops what `up` started, whatever happened: agents by RPC first, then their processes.
class Cluster {
 public:
  ~Cluster() { stop(); }

  std::shared_ptr<rpc::KjLoop> loop = std::make_shared<rpc::KjLoop>("cluster-rpc");
  std::vector<StartedNode> nodes;
  fs::path state_file;

  void stop() {
    if (stopped_) return;
    stopped_ = true;
    asio::io_context io;
    std::vector<bool> asked;
    for (auto& started : nodes) {
      asked.push_back(started.client && started.client->health().state == rpc::NodeState::kUp);
      if (!asked.back()) continue;
      asio::co_spawn(
          io,
          [client = started.client]() -> asio::awaitable<void> {
            try {
              co_await client->shutdown_agent(3s);
            } catch (const std::exception&) {
            }
          },
          asio::detached);
    }
    io.run();
    for (size_t i = 0; i < nodes.size(); ++i) {
      StartedNode& started = nodes[i];
      if (started.client) started.client->close();
      if (started.process) {
        // One that was asked to exit gets a moment; one that never came up, a signal now.
        if (!asked[i] || !started.process->wait_for(5s)) started.process->stop(3s);
        logger("cluster")->info("node '{}' stopped", started.node.name);
      }
    }
    nodes.clear();
    loop->stop();
    if (!state_file.empty()) fs::remove(state_file);
  }

 private:
  bool stopped_ = false;
};

nlohmann::json node_json(const rpc::NodeHealth& health) {
  nlohmann::json node{{"name", health.name},
                      {"address", health.address},
                      {"state", std::string(rpc::node_state_name(health.state))}};
  if (health.state != rpc::NodeState::kUp) node["error"] = health.error;
  if (health.pid > 0) node["pid"] = health.pid;
  node["workers"] = health.num_workers;
  return node;
}

int cluster_up(const fs::path& manifest_path, const ParsedArgs& args) {
  const ClusterManifest m = rpc::read_cluster_manifest(manifest_path);
  preflight(m);
  auto log = logger("cluster");
  const std::string log_level = args.value("--log-level").value_or("info");

  std::signal(SIGINT, on_startup_signal);
  std::signal(SIGTERM, on_startup_signal);
  Cluster cluster;
  cluster.state_file = args.value("--state-file") ? fs::path(*args.value("--state-file"))
                                                  : default_state_file(manifest_path);
  const fs::path log_dir = args.value("--log-dir")
                               ? fs::path(*args.value("--log-dir"))
                               : fs::path(cluster.state_file.string() + ".logs");
  fs::create_directories(log_dir);

  // Start every agent.
  nlohmann::json state{{"manifest", fs::absolute(manifest_path).string()},
                       {"head_pid", static_cast<int64_t>(getpid())},
                       {"nodes", nlohmann::json::array()}};
  for (const auto& node : m.nodes) {
    StartedNode started{node, std::nullopt, nullptr};
    const std::string log_path = (log_dir / ("node-" + node.name + ".log")).string();
    started.process = ChildProcess::spawn(agent_command(node, log_level), log_path);
    log->info("node '{}': starting its agent {} (pid {}, log {})", node.name,
              node.local ? "locally" : "over ssh on " + node.address, started.process->pid(),
              log_path);
    state["nodes"].push_back(
        {{"name", node.name}, {"pid", started.process->pid()}, {"local", node.local}});
    started.client =
        rpc::NodeClient::create(cluster.loop, {node.name, node.address, node.port},
                                rpc::HeartbeatOptions{m.heartbeat_interval, m.heartbeat_deadline});
    cluster.nodes.push_back(std::move(started));
  }
  std::ofstream(cluster.state_file) << state.dump(2) << "\n";

  // Wait for every agent's health, watching that its process still runs.
  const auto deadline = std::chrono::steady_clock::now() + m.startup_timeout;
  for (auto& started : cluster.nodes) {
    for (;;) {
      std::exception_ptr failure;
      asio::io_context io;
      asio::co_spawn(io, started.client->connect(1s), [&](std::exception_ptr e) { failure = e; });
      io.run();
      if (startup_signal != 0) {
        throw ClusterError(
            fmt::format("signal {} while the agents started: stopped them", startup_signal.load()));
      }
      if (!failure) break;
      if (auto code = started.process->poll()) {
        throw ClusterError(fmt::format("node '{}': its agent exited ({}) before answering:\n{}",
                                       started.node.name, *code, started.process->log_tail()));
      }
      if (std::chrono::steady_clock::now() > deadline) {
        throw ClusterError(fmt::format("node '{}' ({}:{}) did not answer within {} s: {}",
                                       started.node.name, started.node.address, started.node.port,
                                       m.startup_timeout.count() / 1000,
                                       started.client->health().error));
      }
    }
    log->info("node '{}' ({}:{}) is healthy", started.node.name, started.node.address,
              started.node.port);
  }

  // The head: the engine's worker is the layout's ranks on the agents.
  rpc::RemoteLayout layout;
  layout.tensor_parallel_size = m.tensor_parallel_size;
  layout.pipeline_parallel_size = m.pipeline_parallel_size;
  layout.num_cpu_threads = m.threads;
  layout.device = m.device;
  layout.micro_batches = m.micro_batches;
  for (auto [node_index, device] : m.placement()) {
    layout.ranks.push_back({cluster.nodes[node_index].client, device});
  }
  EngineArgs engine;
  engine.model = m.model;
  engine.load_format = m.load_format;
  engine.served_model_name = m.served_model_name;
  engine.chat_template = m.chat_template;
  engine.device = "cpu";
  engine.max_model_len = m.max_model_len;
  engine.max_num_seqs = m.max_num_seqs;
  engine.max_num_batched_tokens = m.max_num_batched_tokens;
  engine.block_size = m.block_size;
  engine.enable_prefix_caching = m.enable_prefix_caching;
  engine.kv_cache_memory_bytes = m.kv_cache_memory_bytes;
  engine.seed = m.seed;
  engine.max_waiting_requests = m.max_waiting_requests;
  engine.num_cpu_threads = 1;  // the head only tokenizes and schedules
  engine.worker_factory = [layout](WorkerLaunch launch) {
    return rpc::open_remote_worker(layout, std::move(launch));
  };

  std::vector<std::shared_ptr<rpc::NodeClient>> clients;
  for (const auto& started : cluster.nodes) clients.push_back(started.client);
  server::ServeOptions options;
  options.http.host = m.head_host;
  options.http.port = m.head_port;
  options.api_key = m.api_key;
  options.backend_status = [clients] {
    server::BackendStatus status;
    nlohmann::json nodes = nlohmann::json::array();
    for (const auto& client : clients) {
      const rpc::NodeHealth health = client->health();
      nodes.push_back(node_json(health));
      if (health.state != rpc::NodeState::kUp && status.ok) {
        status.ok = false;
        status.problem = "node '" + health.name + "' (" + health.address +
                         ") is down: " + health.error +
                         "; the cluster is not whole, so requests are refused until it is back";
      }
    }
    status.nodes_json = nodes.dump();
    return status;
  };
  log->info(
      "all {} nodes are healthy; starting the head (TP {} x PP {}, {} micro-batches) on {}:{}",
      cluster.nodes.size(), m.tensor_parallel_size, m.pipeline_parallel_size,
      m.micro_batches == 0 ? std::string("auto") : std::to_string(m.micro_batches), m.head_host,
      m.head_port);
  // serve() takes SIGINT/SIGTERM over (a clean shutdown); one that came before still counts.
  if (startup_signal != 0) {
    throw ClusterError(
        fmt::format("signal {} while the agents started: stopped them", startup_signal.load()));
  }
  const int code = server::serve(std::move(engine), std::move(options));
  log->info("the head has stopped; stopping the node agents");
  cluster.stop();
  return code;
}

int cluster_down(const fs::path& manifest_path, const ParsedArgs& args) {
  const ClusterManifest m = rpc::read_cluster_manifest(manifest_path);
  const fs::path state_file = args.value("--state-file") ? fs::path(*args.value("--state-file"))
                                                         : default_state_file(manifest_path);
  const auto timeout =
      std::chrono::milliseconds(static_cast<int64_t>(args.float_value("--timeout", 30) * 1000));
  bool stopped_anything = false;
  if (fs::exists(state_file)) {
    nlohmann::json state = nlohmann::json::parse(std::ifstream(state_file), nullptr, false);
    const pid_t head = state.is_object() ? state.value("head_pid", 0) : 0;
    if (head > 0 && kill(head, 0) == 0) {
      std::printf("stopping the head (pid %d)\n", head);
      kill(head, SIGTERM);
      const auto deadline = std::chrono::steady_clock::now() + timeout;
      while (kill(head, 0) == 0 && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(50ms);
      }
      if (kill(head, 0) == 0) {
        std::fprintf(stderr, "the head (pid %d) did not exit within %lld s; sending SIGKILL\n",
                     head, static_cast<long long>(timeout.count() / 1000));
        kill(head, SIGKILL);
      }
      stopped_anything = true;
    }
  }
  // Agents that still run (the head was killed, or never got to stop them).
  auto loop = std::make_shared<rpc::KjLoop>("cluster-down");
  for (const auto& node : m.nodes) {
    auto client = rpc::NodeClient::create(loop, {node.name, node.address, node.port});
    asio::io_context io;
    bool stopped = false;
    asio::co_spawn(
        io,
        [client, &stopped]() -> asio::awaitable<void> {
          co_await client->connect(2s);
          co_await client->shutdown_agent(3s);
          stopped = true;
        },
        [](std::exception_ptr) {});
    io.run();
    client->close();
    if (stopped) {
      std::printf("stopped the agent of node '%s' (%s:%u)\n", node.name.c_str(),
                  node.address.c_str(), node.port);
      stopped_anything = true;
    }
  }
  loop->stop();
  if (!stopped_anything) std::printf("nothing of this cluster was running\n");
  std::error_code ignored;
  fs::remove(state_file, ignored);
  return 0;
}

}  // namespace

int run_cluster(const Args& raw_args) {
  const ParsedArgs args = ParsedArgs::parse(raw_args, kFlags);
  if (args.has("--help") || args.positionals().empty()) {
    std::printf(
        "usage: vllm-cpp cluster up MANIFEST [flags]   start the node agents and the head\n"
        "       vllm-cpp cluster down MANIFEST [flags] stop what `up` started\n\n"
        "MANIFEST is a TOML file: see examples/cluster.toml.\n\n%s",
        flags_help(kFlags).c_str());
    return args.has("--help") ? 0 : 2;
  }
  if (auto level = args.value("--log-level")) {
    try {
      set_log_level(*level == "warning" ? "warn" : *level);
    } catch (const std::invalid_argument& e) {
      throw UsageError(std::string("--log-level: ") + e.what());
    }
  }
  const std::string& action = args.positionals()[0];
  if (args.positionals().size() != 2) throw UsageError("expected: cluster up|down MANIFEST");
  const fs::path manifest = args.positionals()[1];
  if (action == "up") return cluster_up(manifest, args);
  if (action == "down") return cluster_down(manifest, args);
  throw UsageError("unknown cluster action '" + action + "' (expected up or down)");
}

}  // namespace vllm::apps

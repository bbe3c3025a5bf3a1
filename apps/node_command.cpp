// vllm-cpp node --listen HOST:PORT: a node agent, hosting this node's workers for a head (see
// rpc/node_agent.hpp). `vllm-cpp cluster up` starts one per node of a manifest.
#include <cstdio>
#include <string>

#include "apps/command_line.hpp"
#include "apps/subcommands.hpp"
#include "rpc/node_agent.hpp"
#include "runtime/logging.hpp"

namespace vllm::apps {
namespace {

constexpr FlagSpec kFlags[] = {
    {"--listen", true, "HOST:PORT to serve the worker protocol on (port 0: any free one)"},
    {"--name", true, "this node's name in the head's logs and /health (default: HOST:PORT)"},
    {"--devices", true, "device slots (ranks) this node hosts (default 1)"},
    {"--log-level", true, "trace | debug | info | warning | error (default info)"},
    {"--help", false, "show this help"},
};

}  // namespace

int run_node(const Args& raw_args) {
  const ParsedArgs args = ParsedArgs::parse(raw_args, kFlags);
  if (args.has("--help")) {
    std::printf("usage: vllm-cpp node --listen HOST:PORT [flags]\n\n%s",
                flags_help(kFlags).c_str());
    return 0;
  }
  if (!args.positionals().empty()) throw UsageError("node takes no positional arguments");
  if (auto level = args.value("--log-level")) {
    try {
      set_log_level(*level == "warning" ? "warn" : *level);
    } catch (const std::invalid_argument& e) {
      throw UsageError(std::string("--log-level: ") + e.what());
    }
  }
  const auto listen = args.value("--listen");
  if (!listen) throw UsageError("--listen HOST:PORT is required");
  const size_t colon = listen->rfind(':');
  if (colon == std::string::npos || colon == 0) {
    throw UsageError("--listen: expected HOST:PORT, got '" + *listen + "'");
  }
  rpc::NodeAgentOptions options;
  options.host = listen->substr(0, colon);
  if (options.host.size() > 2 && options.host.front() == '[' && options.host.back() == ']') {
    options.host = options.host.substr(1, options.host.size() - 2);
  }
  int64_t port = -1;
  try {
    port = std::stoll(listen->substr(colon + 1));
  } catch (const std::exception&) {
  }
  if (port < 0 || port > 65535) throw UsageError("--listen: bad port in '" + *listen + "'");
  options.port = static_cast<uint16_t>(port);
  options.name = args.value("--name").value_or(*listen);
  const int64_t devices = args.int_value("--devices", 1);
  if (devices < 1 || devices > 1024) throw UsageError("--devices must be in [1, 1024]");
  options.num_devices = static_cast<int32_t>(devices);

  rpc::NodeAgent agent(options);
  agent.run(
      [&](uint16_t bound) {
        std::printf("vllm-cpp node '%s': listening on %s:%u\n", options.name.c_str(),
                    options.host.c_str(), bound);
        std::fflush(stdout);
      },
      true);
  return 0;
}

}  // namespace vllm::apps

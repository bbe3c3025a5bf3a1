// vllm-cpp: the command line. `vllm-cpp SUBCOMMAND [ARGS...]`.
#include <cstdio>
#include <exception>
#include <string>
#include <string_view>

#include "apps/subcommands.hpp"

namespace {

struct Subcommand {
  std::string_view name;
  std::string_view summary;
  int (*run)(const vllm::apps::Args& args);
};

// One line per subcommand.
constexpr Subcommand kSubcommands[] = {
    {"generate", "run one prompt offline and print the continuation and tokens/s",
     vllm::apps::run_generate},
    {"serve", "run the OpenAI-compatible server", vllm::apps::run_serve},
    {"node", "run a node agent: this node's workers, served to a head over RPC",
     vllm::apps::run_node},
    {"cluster", "cluster up|down MANIFEST: node agents and the head from one manifest",
     vllm::apps::run_cluster},
    {"bench",
     "benchmarks: bench serve (an OpenAI-compatible server), throughput, latency (offline)",
     vllm::apps::run_bench},
};

void print_usage(std::FILE* out) {
  std::fprintf(out, "usage: vllm-cpp SUBCOMMAND [ARGS...]\n\nsubcommands:\n");
  for (const auto& command : kSubcommands) {
    std::fprintf(out, "  %-10.*s %.*s\n", static_cast<int>(command.name.size()),
                 command.name.data(), static_cast<int>(command.summary.size()),
                 command.summary.data());
  }
  std::fprintf(out, "\n`vllm-cpp SUBCOMMAND --help` describes a subcommand's flags.\n");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    print_usage(stderr);
    return 2;
  }
  const std::string_view name = argv[1];
  if (name == "--help" || name == "-h" || name == "help") {
    print_usage(stdout);
    return 0;
  }
  for (const auto& command : kSubcommands) {
    if (command.name != name) continue;
    vllm::apps::Args args(argv + 2, argv + argc);
    try {
      return command.run(args);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "vllm-cpp %s: error: %s\n", argv[1], e.what());
      return 1;
    }
  }
  std::fprintf(stderr, "vllm-cpp: unknown subcommand '%s'\n\n", argv[1]);
  print_usage(stderr);
  return 2;
}

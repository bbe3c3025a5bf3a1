// The vllm-cpp subcommands. Each takes the arguments after its name and returns the process
// exit code; main.cpp maps names to them in one table (add a line there for a new one).
#pragma once

#include <string>
#include <vector>

namespace vllm::apps {

using Args = std::vector<std::string>;

// vllm-cpp generate MODEL (--prompt TEXT | --prompt-token-ids 1,2,3) [--max-tokens N ...]
int run_generate(const Args& args);
// vllm-cpp serve [MODEL] [--port 8000 ...]: the OpenAI-compatible server
int run_serve(const Args& args);
// vllm-cpp node --listen HOST:PORT: a node agent serving its workers over RPC
int run_node(const Args& args);
// vllm-cpp cluster up|down MANIFEST: a whole cluster (node agents + head) from one manifest
int run_cluster(const Args& args);
// vllm-cpp bench serve --base-url URL ...: load generator against an OpenAI-compatible server
int run_bench(const Args& args);

// vllm-cpp bench throughput|latency [MODEL] ...: offline engine benchmarks
int run_bench_throughput(const Args& args);
int run_bench_latency(const Args& args);

}  // namespace vllm::apps

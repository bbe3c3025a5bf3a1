// ChildProcess: a process `vllm-cpp cluster up` starts (a local node agent, or the ssh client
// that runs a remote one), in its own process group (a Ctrl-C reaches only the head, which
// stops the agents in order), its output appended to a log file.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace vllm::apps {

class ChildProcess {
 public:
  // Starts argv[0] (searched in PATH) with stdin from /dev/null. Throws std::runtime_error.
  static ChildProcess spawn(const std::vector<std::string>& argv, const std::string& log_path);

  pid_t pid() const { return pid_; }
  const std::string& log_path() const { return log_path_; }
  // The exit status once it has ended (reaped), or nothing while it runs.
  std::optional<int> poll();
  // Waits up to `timeout` for it to end; true when it has.
  bool wait_for(std::chrono::milliseconds timeout);
  // SIGTERM, then SIGKILL after `grace`.
  void stop(std::chrono::milliseconds grace);
  // The last `bytes` of its log.
  std::string log_tail(size_t bytes = 2000) const;

 private:
  pid_t pid_ = -1;
  std::string log_path_;
  std::optional<int> status_;
};

// Runs a command to its end (stdout and stderr captured) within `timeout`: (exit code, output);
// exit code -1 on timeout (the command is killed).
std::pair<int, std::string> run_command(const std::vector<std::string>& argv,
                                        std::chrono::milliseconds timeout);

// 'text' quoted for a POSIX shell.
std::string shell_quote(const std::string& text);

}  // namespace vllm::apps

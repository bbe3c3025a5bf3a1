// RendezvousStore: the key-value store through which the ranks of a collective group find each
// other (each publishes its address, then reads its peers'). It is the seam between the
// collectives and whatever connects the processes: InProcessStore for ranks on threads of one
// process, FileStore for processes sharing a directory, and (in rpc/) a store held by the head
// and reached over RPC. Keys are written once.
#pragma once

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "model/communicator.hpp"

namespace vllm {

class RendezvousStore {
 public:
  virtual ~RendezvousStore() = default;

  virtual void set(const std::string& key, const std::vector<char>& value) = 0;
  // The value of `key`, waiting for it up to `timeout`; throws CollectiveError on timeout
  // (naming the key).
  virtual std::vector<char> get(const std::string& key, std::chrono::milliseconds timeout) = 0;
  // Returns when every key is set; throws CollectiveError on timeout (naming a missing key).
  virtual void wait(const std::vector<std::string>& keys, std::chrono::milliseconds timeout) = 0;
};

// Ranks on threads of one process share one of these.
class InProcessStore final : public RendezvousStore {
 public:
  void set(const std::string& key, const std::vector<char>& value) override;
  std::vector<char> get(const std::string& key, std::chrono::milliseconds timeout) override;
  void wait(const std::vector<std::string>& keys, std::chrono::milliseconds timeout) override;

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  std::unordered_map<std::string, std::vector<char>> values_;
};

// Processes on one host (or a shared file system) share a directory: one file per key, written
// to a temporary name and renamed so a reader never sees half a value.
class FileStore final : public RendezvousStore {
 public:
  // Creates the directory if needed; throws CollectiveError when it cannot.
  explicit FileStore(std::filesystem::path directory);

  void set(const std::string& key, const std::vector<char>& value) override;
  std::vector<char> get(const std::string& key, std::chrono::milliseconds timeout) override;
  void wait(const std::vector<std::string>& keys, std::chrono::milliseconds timeout) override;

 private:
  std::filesystem::path path_of(const std::string& key) const;

  std::filesystem::path directory_;
};

}  // namespace vllm

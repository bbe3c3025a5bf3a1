#include "model/rendezvous_store.hpp"

#include <unistd.h>
#include <fstream>
#include <iterator>
#include <thread>

namespace vllm {
namespace {

[[noreturn]] void throw_timeout(const std::string& key, std::chrono::milliseconds timeout) {
  throw CollectiveError("rendezvous: key '" + key + "' was not published within " +
                        std::to_string(timeout.count()) +
                        " ms (is every rank of the group started, with the same group name?)");
}

}  // namespace

void InProcessStore::set(const std::string& key, const std::vector<char>& value) {
  {
    std::lock_guard lock(mutex_);
    values_[key] = value;
  }
  changed_.notify_all();
}

std::vector<char> InProcessStore::get(const std::string& key, std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  if (!changed_.wait_for(lock, timeout, [&] { return values_.count(key) != 0; })) {
    throw_timeout(key, timeout);
  }
  return values_.at(key);
}

void InProcessStore::wait(const std::vector<std::string>& keys, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::unique_lock lock(mutex_);
  for (const auto& key : keys) {
    if (!changed_.wait_until(lock, deadline, [&] { return values_.count(key) != 0; })) {
      throw_timeout(key, timeout);
    }
  }
}

FileStore::FileStore(std::filesystem::path directory) : directory_(std::move(directory)) {
  std::error_code error;
  std::filesystem::create_directories(directory_, error);
  if (error || !std::filesystem::is_directory(directory_)) {
    throw CollectiveError("rendezvous: cannot create the store directory " + directory_.string() +
                          ": " + error.message());
  }
}

std::filesystem::path FileStore::path_of(const std::string& key) const {
  // Keys may hold '/' (group prefixes): keep one flat directory.
  std::string name;
  for (char c : key) name += (c == '/' ? '%' : c);
  return directory_ / name;
}

void FileStore::set(const std::string& key, const std::vector<char>& value) {
  const auto final_path = path_of(key);
  auto temporary = final_path;
  temporary += ".tmp." + std::to_string(::getpid()) + "." +
               std::to_string(std::hash<std::thread::id>{}(std::this_thread::get_id()));
  {
    std::ofstream out(temporary, std::ios::binary | std::ios::trunc);
    out.write(value.data(), static_cast<std::streamsize>(value.size()));
    if (!out) throw CollectiveError("rendezvous: cannot write " + temporary.string());
  }
  std::error_code error;
  std::filesystem::rename(temporary, final_path, error);
  if (error) {
    throw CollectiveError("rendezvous: cannot publish " + final_path.string() + ": " +
                          error.message());
  }
}

std::vector<char> FileStore::get(const std::string& key, std::chrono::milliseconds timeout) {
  wait({key}, timeout);
  std::ifstream in(path_of(key), std::ios::binary);
  if (!in) throw CollectiveError("rendezvous: cannot read " + path_of(key).string());
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void FileStore::wait(const std::vector<std::string>& keys, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (const auto& key : keys) {
    while (!std::filesystem::exists(path_of(key))) {
      if (std::chrono::steady_clock::now() >= deadline) throw_timeout(key, timeout);
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
}

}  // namespace vllm

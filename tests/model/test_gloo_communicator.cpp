// GlooCommunicator over loopback TCP: ranks on threads of one process meet through an
// InProcessStore (or a FileStore) and their collectives give the sums and gathers computed here.
#include <catch2/catch.hpp>

#include <filesystem>
#include <functional>
#include <future>
#include <thread>
#include <vector>

#include <sys/wait.h>
#include <unistd.h>

#include "model/gloo_communicator.hpp"

using namespace vllm;

namespace {

// Runs body(rank, communicator) for every rank of a group on its own thread.
void run_group(RendezvousStore& store, int size, const std::string& prefix,
               const std::function<void(int, Communicator&)>& body) {
  std::vector<std::future<void>> ranks;
  for (int rank = 0; rank < size; ++rank) {
    ranks.push_back(std::async(std::launch::async, [&, rank] {
      GlooOptions options;
      options.rank = rank;
      options.size = size;
      options.prefix = prefix;
      options.timeout = std::chrono::seconds(10);
      GlooCommunicator communicator(store, options);
      body(rank, communicator);
    }));
  }
  for (auto& rank : ranks) rank.get();
}

}  // namespace

TEST_CASE("gloo: all_reduce_sum, all_gather and broadcast over 3 ranks", "[parallel][gloo]") {
  InProcessStore store;
  run_group(store, 3, "group-a", [](int rank, Communicator& communicator) {
    CHECK(communicator.rank() == rank);
    CHECK(communicator.size() == 3);
    // A buffer large enough for Gloo to split it into ring segments.
    std::vector<float> data(10007);
    for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<float>(rank * 1000 + i % 97);
    communicator.all_reduce_sum(data);
    for (size_t i = 0; i < data.size(); i += 331) {
      REQUIRE(data[i] == static_cast<float>(3000 + 3 * (i % 97)));
    }

    std::vector<float> mine = {float(rank), float(rank) + 0.5f};
    std::vector<float> all(6, -1.0f);
    communicator.all_gather(mine, all);
    CHECK(all == std::vector<float>{0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 2.5f});

    std::vector<float> value = {float(rank), float(rank * 2)};
    communicator.broadcast(value, 2);
    CHECK(value == std::vector<float>{2.0f, 4.0f});

    // Many small collectives in a row keep their order (the forward pass makes two per layer).
    for (int i = 0; i < 50; ++i) {
      std::vector<float> one = {1.0f};
      communicator.all_reduce_sum(one);
      REQUIRE(one[0] == 3.0f);
    }
  });
}

TEST_CASE("gloo: two groups share one store under different prefixes; FileStore works",
          "[parallel][gloo]") {
  InProcessStore store;
  auto both = std::async(std::launch::async, [&] {
    run_group(store, 2, "stage-1", [](int rank, Communicator& c) {
      std::vector<float> x = {float(rank + 10)};
      c.all_reduce_sum(x);
      CHECK(x[0] == 21.0f);
    });
  });
  run_group(store, 2, "stage-0", [](int rank, Communicator& c) {
    std::vector<float> x = {float(rank + 1)};
    c.all_reduce_sum(x);
    CHECK(x[0] == 3.0f);
  });
  both.get();

  auto directory =
      std::filesystem::temp_directory_path() / ("vllm-gloo-store-" + std::to_string(::getpid()));
  std::filesystem::remove_all(directory);
  {
    FileStore file_store(directory);
    run_group(file_store, 2, "files", [](int rank, Communicator& c) {
      std::vector<float> x = {float(rank), 1.0f};
      c.all_reduce_sum(x);
      CHECK(x == std::vector<float>{1.0f, 2.0f});
    });
  }
  std::filesystem::remove_all(directory);
}

TEST_CASE("gloo: a missing peer is a CollectiveError naming the key, not a hang",
          "[parallel][gloo]") {
  InProcessStore store;
  GlooOptions options;
  options.rank = 0;
  options.size = 2;
  options.prefix = "lonely";
  options.timeout = std::chrono::milliseconds(300);
  CHECK_THROWS_AS(GlooCommunicator(store, options), CollectiveError);
  try {
    GlooCommunicator communicator(store, options);
  } catch (const CollectiveError& e) {
    CHECK_THAT(e.what(), Catch::Contains("lonely"));
  }
  options.rank = 2;
  CHECK_THROWS_AS(GlooCommunicator(store, options), std::invalid_argument);

  CHECK_THROWS_AS(store.get("never", std::chrono::milliseconds(10)), CollectiveError);
}

TEST_CASE("gloo: ranks in two processes meet through a FileStore", "[parallel][gloo]") {
  // The node agents' case: each rank in its own process, the store shared between them.
  auto directory = std::filesystem::temp_directory_path() /
                   ("vllm-gloo-processes-" + std::to_string(::getpid()));
  std::filesystem::remove_all(directory);
  auto run_rank = [&](int rank) {
    FileStore store(directory);
    GlooOptions options;
    options.rank = rank;
    options.size = 2;
    options.prefix = "processes";
    options.timeout = std::chrono::seconds(20);
    GlooCommunicator communicator(store, options);
    std::vector<float> data(1000, static_cast<float>(rank + 1));
    communicator.all_reduce_sum(data);
    std::vector<float> gathered(4);
    std::vector<float> mine = {float(rank), float(rank * 10)};
    communicator.all_gather(mine, gathered);
    return data[0] == 3.0f && data[999] == 3.0f &&
           gathered == std::vector<float>{0.0f, 0.0f, 1.0f, 10.0f};
  };
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    bool ok = false;
    try {
      ok = run_rank(1);
    } catch (...) {
    }
    ::_exit(ok ? 0 : 1);
  }
  CHECK(run_rank(0));
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  std::filesystem::remove_all(directory);
}

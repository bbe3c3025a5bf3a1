#include <catch2/catch.hpp>

#if VLLM_HAVE_CUDA
#include <chrono>
#include <cstdint>

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>

#include "runtime/cuda/cuda_await.hpp"

cudaError_t launch_spin_kernel(cudaStream_t stream, uint64_t nanoseconds);
cudaError_t launch_fault_kernel(cudaStream_t stream);

using namespace std::chrono_literals;

TEST_CASE("a coroutine awaits a CUDA stream while another makes progress on the same executor",
          "[runtime][cuda]") {
  if (!vllm::cuda_device_available()) {
    WARN("skipped: no CUDA device");
    return;
  }
  cudaStream_t stream = nullptr;
  vllm::check_cuda(cudaStreamCreate(&stream), "cudaStreamCreate");
  asio::io_context context;  // one thread: the awaiting coroutine must not block it
  int ticks = 0;
  bool gpu_done = false;
  std::chrono::steady_clock::duration gpu_elapsed{};
  asio::co_spawn(
      context,
      [&]() -> asio::awaitable<void> {
        auto start = std::chrono::steady_clock::now();
        vllm::check_cuda(launch_spin_kernel(stream, 50'000'000), "spin kernel launch");
        co_await vllm::await_stream(stream);
        gpu_elapsed = std::chrono::steady_clock::now() - start;
        gpu_done = true;
      },
      [](std::exception_ptr e) {
        if (e) std::rethrow_exception(e);
      });
  asio::co_spawn(
      context,
      [&]() -> asio::awaitable<void> {
        asio::steady_timer timer(co_await asio::this_coro::executor);
        while (!gpu_done) {
          timer.expires_after(1ms);
          co_await timer.async_wait(asio::use_awaitable);
          ++ticks;
        }
      },
      [](std::exception_ptr e) {
        if (e) std::rethrow_exception(e);
      });
  context.run();
  cudaStreamDestroy(stream);
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(gpu_elapsed).count();
  WARN("GPU spin awaited for " << ms << " ms; the other coroutine ticked " << ticks << " times");
  CHECK(ms >= 45);
  CHECK(ticks >= 10);
}

// Named to run last: the injected fault poisons the CUDA context of this process.
TEST_CASE("zz: a CUDA error on an awaited stream surfaces as an exception", "[runtime][cuda]") {
  if (!vllm::cuda_device_available()) {
    WARN("skipped: no CUDA device");
    return;
  }
  cudaStream_t stream = nullptr;
  vllm::check_cuda(cudaStreamCreate(&stream), "cudaStreamCreate");
  asio::io_context context;
  std::string message;
  asio::co_spawn(
      context,
      [&]() -> asio::awaitable<void> {
        try {
          vllm::check_cuda(launch_fault_kernel(stream), "fault kernel launch");
          co_await vllm::await_stream(stream);
        } catch (const vllm::CudaError& e) {
          message = e.what();
        }
      },
      [](std::exception_ptr e) {
        if (e) std::rethrow_exception(e);
      });
  context.run();
  WARN("surfaced: " << message);
  REQUIRE(message.find("CUDA stream failed") != std::string::npos);
}
#else
TEST_CASE("CUDA awaitables", "[runtime][cuda]") {
  WARN("skipped: built without CUDA");
}
#endif

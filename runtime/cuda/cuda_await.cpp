#include "runtime/cuda/cuda_await.hpp"

#include <exception>
#include <memory>
#include <mutex>

#include <asio/associated_executor.hpp>
#include <asio/async_result.hpp>
#include <asio/post.hpp>
#include <asio/use_awaitable.hpp>

#include "runtime/unique_function.hpp"

namespace vllm {

void check_cuda(cudaError_t code, const char* what) {
  if (code != cudaSuccess) throw CudaError(code, what);
}

bool cuda_device_available() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();  // clear the non-sticky "no driver" error
    return false;
  }
  return count > 0;
}

namespace {

// Lives from the enqueue of the callback until the driver calls it.
struct PendingWait {
  UniqueFunction<void(cudaError_t)> resume;
};

// Runs on a CUDA driver thread: only hands the status over to the waiting coroutine's executor.
void CUDART_CB on_stream_done(cudaStream_t, cudaError_t status, void* user_data) {
  std::unique_ptr<PendingWait> wait(static_cast<PendingWait*>(user_data));
  wait->resume(status);
}

}  // namespace

asio::awaitable<void> await_stream(cudaStream_t stream) {
  cudaError_t status =
      co_await asio::async_initiate<const asio::use_awaitable_t<>, void(cudaError_t)>(
          [stream](auto handler) {
            auto wait = std::make_unique<PendingWait>();
            // Called at most once: by the driver, or below if the enqueue itself fails.
            auto shared_handler = std::make_shared<decltype(handler)>(std::move(handler));
            wait->resume = [shared_handler](cudaError_t code) {
              auto executor = asio::get_associated_executor(*shared_handler);
              asio::post(executor, [shared_handler, code] { std::move (*shared_handler)(code); });
            };
            // cudaStreamAddCallback (unlike cudaLaunchHostFunc) also runs when the stream has
            // failed, passing the error, so a faulting kernel cannot leave the coroutine hanging.
            PendingWait* raw = wait.release();
            cudaError_t enqueued = cudaStreamAddCallback(stream, on_stream_done, raw, 0);
            if (enqueued != cudaSuccess) {
              std::unique_ptr<PendingWait> owned(raw);
              owned->resume(enqueued);
            }
          },
          asio::use_awaitable);
  if (status != cudaSuccess) throw CudaError(status, "awaited CUDA stream failed");
  // A launch error left on this thread by an earlier kernel launch also belongs to this wait.
  // cudaErrorNotReady is no error: the driver may not have returned from our callback yet (the
  // coroutine resumes as soon as it posts), and the caller may have queued more work meanwhile.
  const cudaError_t query = cudaStreamQuery(stream);
  if (query != cudaErrorNotReady) check_cuda(query, "awaited CUDA stream failed");
}

asio::awaitable<void> await_event(cudaEvent_t event) {
  static cudaStream_t helper_stream = [] {
    cudaStream_t s = nullptr;
    check_cuda(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), "creating a helper stream");
    return s;
  }();
  check_cuda(cudaStreamWaitEvent(helper_stream, event, 0), "waiting on a CUDA event");
  co_await await_stream(helper_stream);
}

}  // namespace vllm

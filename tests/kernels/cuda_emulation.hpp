// A CPU emulation of the small part of CUDA the kernels in kernels/cuda/ use, so their device
// code can be tested on a machine without a GPU (CI, the build machine). Test-only.
//
// Each CTA runs as blockDim.x cooperative fibers (ucontext) on the calling thread, one CTA after
// another: __syncthreads / __syncwarp are barriers over the block's / warp's fibers, shuffles
// exchange through a per-warp buffer between two warp barriers, __shared__ becomes a function
// static (one CTA runs at a time), WMMA fragments hold the whole 16x16 tile in every lane. A
// barrier that can never complete (divergent __syncthreads) is reported as a deadlock.
//
// Use: include this header first in a translation unit, then `#define vllm vllm_emulated` (so
// the emulated kernels get their own symbols and never clash with the real ones), then include
// the kernels' .cu files. "Device" pointers are host pointers.
#pragma once

// The kernels reinterpret shared and global memory between element and vector types, as device
// code may; on the host that needs the aliasing rules relaxed for everything compiled after this.
#pragma GCC optimize("no-strict-aliasing")

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime_api.h>
#include <ucontext.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <stdexcept>
#include <string>
#include <tuple>
#include <type_traits>
#include <vector>

namespace vllm_emu {

class EmulationError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

enum class FiberState { kRunnable, kBlockBarrier, kWarpBarrier, kDone };

struct Fiber {
  ucontext_t context{};
  char* stack = nullptr;
  dim3 thread_idx;
  FiberState state = FiberState::kRunnable;
};

struct Emulator {
  static constexpr size_t kStackBytes = size_t{256} << 10;
  std::vector<Fiber> fibers;  // stacks kept across blocks
  ucontext_t scheduler{};
  int current = -1;
  std::function<void()> body;
  std::vector<unsigned char> dynamic_shared;
  std::vector<uint64_t> exchange;      // [warp][lane] shuffle slots
  std::vector<uint32_t> mma_exchange;  // [warp][lane][6] mma.sync A and B registers
  dim3 block_idx, block_dim, grid_dim;
  // Run the fibers between barriers in descending instead of ascending thread order: a missing
  // barrier then shows up whichever thread writes first (one order hides half of them).
  bool reverse_order = false;

  ~Emulator() {
    for (Fiber& f : fibers) std::free(f.stack);
  }
};

inline Emulator& emulator() {
  static Emulator instance;
  return instance;
}

inline Fiber& self() {
  return emulator().fibers[emulator().current];
}

inline void wait(FiberState state) {
  Fiber& f = self();
  f.state = state;
  swapcontext(&f.context, &emulator().scheduler);
}

inline void syncthreads() {
  wait(FiberState::kBlockBarrier);
}
inline void syncwarp() {
  wait(FiberState::kWarpBarrier);
}

inline void fiber_entry() {
  emulator().body();
  Fiber& f = self();
  f.state = FiberState::kDone;
  swapcontext(&f.context, &emulator().scheduler);
}

// Runs one CTA of `threads` fibers to completion.
inline void run_block(unsigned threads) {
  Emulator& e = emulator();
  if (threads == 0 || threads > 1024) throw EmulationError("bad block size");
  while (e.fibers.size() < threads) {
    e.fibers.emplace_back();
    e.fibers.back().stack = static_cast<char*>(std::malloc(Emulator::kStackBytes));
  }
  e.exchange.assign((threads + 31) / 32 * 32, 0);
  e.mma_exchange.assign((threads + 31) / 32 * 32 * 6, 0);
  for (unsigned i = 0; i < threads; ++i) {
    Fiber& f = e.fibers[i];
    getcontext(&f.context);
    f.context.uc_stack.ss_sp = f.stack;
    f.context.uc_stack.ss_size = Emulator::kStackBytes;
    f.context.uc_link = nullptr;
    makecontext(&f.context, fiber_entry, 0);
    f.thread_idx = dim3(i, 0, 0);
    f.state = FiberState::kRunnable;
  }
  for (;;) {
    for (unsigned n = 0; n < threads; ++n) {
      const unsigned i = e.reverse_order ? threads - 1 - n : n;
      if (e.fibers[i].state != FiberState::kRunnable) continue;
      e.current = static_cast<int>(i);
      swapcontext(&e.scheduler, &e.fibers[i].context);
    }
    bool all_done = true, all_at_block_barrier = true;
    for (unsigned i = 0; i < threads; ++i) {
      const FiberState s = e.fibers[i].state;
      all_done = all_done && s == FiberState::kDone;
      all_at_block_barrier =
          all_at_block_barrier && (s == FiberState::kDone || s == FiberState::kBlockBarrier);
    }
    if (all_done) break;
    bool released = false;
    if (all_at_block_barrier) {
      for (unsigned i = 0; i < threads; ++i) {
        if (e.fibers[i].state == FiberState::kBlockBarrier)
          e.fibers[i].state = FiberState::kRunnable;
      }
      released = true;
    } else {
      for (unsigned w = 0; w * 32 < threads; ++w) {
        bool all_at_warp_barrier = true, any = false;
        for (unsigned i = w * 32; i < std::min(threads, w * 32 + 32); ++i) {
          const FiberState s = e.fibers[i].state;
          if (s == FiberState::kDone) continue;
          any = true;
          all_at_warp_barrier = all_at_warp_barrier && s == FiberState::kWarpBarrier;
        }
        if (any && all_at_warp_barrier) {
          for (unsigned i = w * 32; i < std::min(threads, w * 32 + 32); ++i) {
            if (e.fibers[i].state == FiberState::kWarpBarrier)
              e.fibers[i].state = FiberState::kRunnable;
          }
          released = true;
        }
      }
    }
    if (!released) {
      throw EmulationError("deadlock: threads wait at different barriers in block (" +
                           std::to_string(e.block_idx.x) + ", " + std::to_string(e.block_idx.y) +
                           ", " + std::to_string(e.block_idx.z) + ")");
    }
  }
  e.current = -1;
}

template <typename T>
T shfl_xor(T value, int lane_mask) {
  static_assert(sizeof(T) <= 8);
  const unsigned tid = self().thread_idx.x, lane = tid % 32, warp = tid / 32;
  uint64_t* slots = &emulator().exchange[warp * 32];
  std::memcpy(&slots[lane], &value, sizeof(T));
  syncwarp();
  T result;
  std::memcpy(&result, &slots[(lane ^ static_cast<unsigned>(lane_mask)) % 32], sizeof(T));
  syncwarp();
  return result;
}

template <typename T>
T shfl_up(T value, int delta) {
  static_assert(sizeof(T) <= 8);
  const unsigned tid = self().thread_idx.x, lane = tid % 32, warp = tid / 32;
  uint64_t* slots = &emulator().exchange[warp * 32];
  std::memcpy(&slots[lane], &value, sizeof(T));
  syncwarp();
  T result = value;
  if (static_cast<int>(lane) >= delta) std::memcpy(&result, &slots[lane - delta], sizeof(T));
  syncwarp();
  return result;
}

// Launch checks and kernel attributes: nothing can fail in the emulation.
inline cudaError_t no_error() {
  return cudaSuccess;
}

inline unsigned char* dynamic_shared_memory() {
  return emulator().dynamic_shared.data();
}

// kernel<<<grid, block, shared_bytes>>>(args...): every CTA in turn, blockIdx.x fastest.
template <typename... Params>
struct Launcher {
  dim3 grid, block;
  size_t shared_bytes;
  void (*kernel)(Params...);

  Launcher(dim3 g, dim3 b, size_t s, void (*k)(Params...))
      : grid(g), block(b), shared_bytes(s), kernel(k) {}

  template <typename... Args>
  void operator()(Args&&... args) const {
    if (block.y != 1 || block.z != 1) throw EmulationError("only 1-D blocks are emulated");
    std::tuple<std::decay_t<Params>...> parameters(std::forward<Args>(args)...);
    Emulator& e = emulator();
    e.grid_dim = grid;
    e.block_dim = block;
    e.dynamic_shared.assign(shared_bytes + 16, 0xCD);  // garbage, as on a GPU
    auto* kernel_pointer = kernel;
    e.body = [&parameters, kernel_pointer] { std::apply(kernel_pointer, parameters); };
    for (unsigned z = 0; z < grid.z; ++z) {
      for (unsigned y = 0; y < grid.y; ++y) {
        for (unsigned x = 0; x < grid.x; ++x) {
          e.block_idx = dim3(x, y, z);
          run_block(block.x);
        }
      }
    }
  }
};
template <typename... Params>
Launcher(dim3, dim3, size_t, void (*)(Params...)) -> Launcher<Params...>;

}  // namespace vllm_emu

// ---- the CUDA vocabulary the kernels use, mapped onto the emulator ----------------------------
#undef __global__
#define __global__
#undef __device__
#define __device__
#undef __host__
#define __host__
#undef __forceinline__
#define __forceinline__ inline
#undef __launch_bounds__
#define __launch_bounds__(...)
#undef __shared__
#define __shared__ static

#define threadIdx (::vllm_emu::self().thread_idx)
#define blockIdx (::vllm_emu::emulator().block_idx)
#define blockDim (::vllm_emu::emulator().block_dim)
#define gridDim (::vllm_emu::emulator().grid_dim)
#define __syncthreads() ::vllm_emu::syncthreads()
#define __syncwarp(...) ::vllm_emu::syncwarp()
#define __shfl_xor_sync(mask, value, lane_mask) ::vllm_emu::shfl_xor((value), (lane_mask))
#define __shfl_up_sync(mask, value, delta) ::vllm_emu::shfl_up((value), (delta))
#define VLLM_LAUNCH(grid, block, shared_bytes, stream, ...) \
  ((void)(stream), ::vllm_emu::Launcher((grid), (block), (shared_bytes), __VA_ARGS__))
#define VLLM_UNROLL
#define VLLM_DYNAMIC_SHARED_MEMORY(name) unsigned char* name = ::vllm_emu::dynamic_shared_memory()
#define VLLM_EMULATED_MMA
#define cudaFuncSetAttribute(...) ::vllm_emu::no_error()
#define cudaGetLastError() ::vllm_emu::no_error()

using std::max;
using std::min;

inline float rsqrtf(float x) {
  return 1.0f / std::sqrt(x);
}
inline float __expf(float x) {
  return std::exp(x);
}
inline unsigned int __float_as_uint(float x) {
  unsigned int bits;
  std::memcpy(&bits, &x, 4);
  return bits;
}
inline float atomicAdd(float* address, float value) {
  const float old = *address;
  *address = old + value;  // fibers never interleave inside this call
  return old;
}

// WMMA 16x16x16 with every lane holding the whole tile (lanes compute identical results). The
// warp-collective loads and stores synchronize the warp as the hardware's lockstep does: every
// lane has loaded before any lane stores.
namespace nvcuda::wmma {
struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
struct col_major {};
enum layout_t { mem_row_major, mem_col_major };

template <typename Use, int M, int N, int K, typename T, typename Layout = void>
struct fragment {
  float x[16 * 16];  // [row][col]
};

template <typename Use, typename T, typename Layout>
void fill_fragment(fragment<Use, 16, 16, 16, T, Layout>& f, float value) {
  for (float& v : f.x) v = value;
}

inline float element_to_float(__nv_bfloat16 v) {
  return __bfloat162float(v);
}
inline float element_to_float(__half v) {
  return __half2float(v);
}
inline float element_to_float(float v) {
  return v;
}

template <typename Use, typename T, typename Layout, typename E>
void load_matrix_sync(fragment<Use, 16, 16, 16, T, Layout>& f, const E* p, unsigned ldm) {
  static_assert(!std::is_same_v<Use, accumulator>);
  for (int r = 0; r < 16; ++r) {
    for (int c = 0; c < 16; ++c) {
      const size_t index =
          std::is_same_v<Layout, row_major> ? size_t(r) * ldm + c : size_t(c) * ldm + r;
      f.x[r * 16 + c] = element_to_float(p[index]);
    }
  }
  ::vllm_emu::syncwarp();
}

template <typename T>
void load_matrix_sync(fragment<accumulator, 16, 16, 16, T>& f, const float* p, unsigned ldm,
                      layout_t layout) {
  for (int r = 0; r < 16; ++r) {
    for (int c = 0; c < 16; ++c) {
      f.x[r * 16 + c] = layout == mem_row_major ? p[size_t(r) * ldm + c] : p[size_t(c) * ldm + r];
    }
  }
  ::vllm_emu::syncwarp();
}

template <typename T>
void store_matrix_sync(float* p, const fragment<accumulator, 16, 16, 16, T>& f, unsigned ldm,
                       layout_t layout) {
  ::vllm_emu::syncwarp();
  for (int r = 0; r < 16; ++r) {
    for (int c = 0; c < 16; ++c) {
      (layout == mem_row_major ? p[size_t(r) * ldm + c] : p[size_t(c) * ldm + r]) = f.x[r * 16 + c];
    }
  }
}

template <typename T, typename E, typename LayoutA, typename LayoutB>
void mma_sync(fragment<accumulator, 16, 16, 16, T>& d,
              const fragment<matrix_a, 16, 16, 16, E, LayoutA>& a,
              const fragment<matrix_b, 16, 16, 16, E, LayoutB>& b,
              const fragment<accumulator, 16, 16, 16, T>& c) {
  float out[16 * 16];
  for (int r = 0; r < 16; ++r) {
    for (int n = 0; n < 16; ++n) {
      float sum = c.x[r * 16 + n];
      for (int k = 0; k < 16; ++k) sum += a.x[r * 16 + k] * b.x[k * 16 + n];
      out[r * 16 + n] = sum;
    }
  }
  std::memcpy(d.x, out, sizeof(out));
}
}  // namespace nvcuda::wmma

// mma.sync m16n8k16 (kernels/cuda/mma_sync.cuh's layout): the warp's lanes publish their A and B
// registers, every lane rebuilds the full A (16x16) and B (16x8) and computes its own D elements.
template <typename T>
float emulated_half_to_float(uint32_t bits16) {
  const uint16_t raw = static_cast<uint16_t>(bits16);
  T value;
  std::memcpy(static_cast<void*>(&value), &raw, 2);
  return nvcuda::wmma::element_to_float(value);
}

template <typename T>
void mma_m16n8k16(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
  using vllm_emu::emulator;
  const unsigned tid = vllm_emu::self().thread_idx.x, lane = tid % 32, warp = tid / 32;
  uint32_t* slots = &emulator().mma_exchange[warp * 32 * 6];
  for (int i = 0; i < 4; ++i) slots[lane * 6 + i] = a[i];
  for (int i = 0; i < 2; ++i) slots[lane * 6 + 4 + i] = b[i];
  vllm_emu::syncwarp();
  float matrix_a[16][16], matrix_b[16][8];
  for (unsigned l = 0; l < 32; ++l) {
    const unsigned group = l / 4, t = l % 4;
    for (int i = 0; i < 8; ++i) {  // a_i: register i / 2, half i % 2
      const uint32_t reg = slots[l * 6 + i / 2];
      const uint32_t bits = (i % 2) ? reg >> 16 : reg & 0xffffu;
      const unsigned row = group + ((i / 2) % 2 == 1 ? 8 : 0);
      const unsigned col = 2 * t + (i % 2) + (i >= 4 ? 8 : 0);
      matrix_a[row][col] = emulated_half_to_float<T>(bits);
    }
    for (int i = 0; i < 4; ++i) {  // b_i: register i / 2, half i % 2
      const uint32_t reg = slots[l * 6 + 4 + i / 2];
      const uint32_t bits = (i % 2) ? reg >> 16 : reg & 0xffffu;
      const unsigned k = 2 * t + (i % 2) + (i >= 2 ? 8 : 0);
      matrix_b[k][group] = emulated_half_to_float<T>(bits);
    }
  }
  const unsigned group = lane / 4, t = lane % 4;
  for (int e = 0; e < 4; ++e) {
    const unsigned row = group + (e >= 2 ? 8 : 0), col = 2 * t + (e % 2);
    float sum = d[e];
    for (int k = 0; k < 16; ++k) sum += matrix_a[row][k] * matrix_b[k][col];
    d[e] = sum;
  }
  vllm_emu::syncwarp();  // nobody republishes before every lane has read
}

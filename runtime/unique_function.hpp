// UniqueFunction: a move-only type-erased callable, for storing completion handlers (which are
// move-only) until a producer on another thread completes them.
#pragma once

#include <memory>
#include <utility>

namespace vllm {

template <class Signature>
class UniqueFunction;

template <class R, class... Args>
class UniqueFunction<R(Args...)> {
 public:
  UniqueFunction() = default;
  template <class F>
  UniqueFunction(F f) : impl_(std::make_unique<Impl<F>>(std::move(f))) {}  // NOLINT: implicit

  explicit operator bool() const { return impl_ != nullptr; }
  R operator()(Args... args) { return impl_->call(std::forward<Args>(args)...); }

 private:
  struct Base {
    virtual ~Base() = default;
    virtual R call(Args... args) = 0;
  };
  template <class F>
  struct Impl final : Base {
    explicit Impl(F f) : fn(std::move(f)) {}
    R call(Args... args) override { return fn(std::forward<Args>(args)...); }
    F fn;
  };
  std::unique_ptr<Base> impl_;
};

}  // namespace vllm

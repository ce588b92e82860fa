// Task<T>: the coroutine type every handler returns.
//
// Lazy (nothing runs until awaited) and awaitable with symmetric transfer, so a
// chain of handlers awaiting helpers costs no stack depth. The worker is the
// framework that drives it: in the blocking workers every await completes on
// the spot and the whole chain runs to its end inside one call; in the event
// loops an await suspends the chain and the loop resumes it later.
#pragma once

#include <coroutine>
#include <exception>
#include <optional>
#include <utility>

#include "app/frame_cache.hpp"

namespace qilin::app {

template <class T>
class Task;

namespace detail {

// Resumes whoever awaited the finished task (or nobody, for the top level).
struct FinalAwaiter {
  bool await_ready() const noexcept { return false; }
  template <class Promise>
  std::coroutine_handle<> await_suspend(std::coroutine_handle<Promise> done) const noexcept {
    auto next = done.promise().continuation;
    return next ? next : std::noop_coroutine();
  }
  void await_resume() const noexcept {}
};

struct PromiseBase {
  std::coroutine_handle<> continuation;
  std::exception_ptr error;
  std::suspend_always initial_suspend() const noexcept { return {}; }
  FinalAwaiter final_suspend() const noexcept { return {}; }
  void unhandled_exception() noexcept { error = std::current_exception(); }
  // A handler's frame lives for one request: recycled (see frame_cache.hpp).
  static void* operator new(std::size_t size) { return FrameCache::allocate(size); }
  static void operator delete(void* frame, std::size_t size) noexcept {
    FrameCache::release(frame, size);
  }
};

}  // namespace detail

template <class T>
class [[nodiscard]] Task {
 public:
  struct promise_type : detail::PromiseBase {
    std::optional<T> value;
    Task get_return_object() noexcept { return Task(Handle::from_promise(*this)); }
    template <class U>
    void return_value(U&& result) {
      value.emplace(std::forward<U>(result));
    }
  };
  using Handle = std::coroutine_handle<promise_type>;

  Task(Task&& other) noexcept : coroutine_(std::exchange(other.coroutine_, {})) {}
  Task& operator=(Task&& other) noexcept {
    if (this != &other) {
      if (coroutine_) coroutine_.destroy();
      coroutine_ = std::exchange(other.coroutine_, {});
    }
    return *this;
  }
  ~Task() {
    if (coroutine_) coroutine_.destroy();
  }

  bool await_ready() const noexcept { return false; }
  std::coroutine_handle<> await_suspend(std::coroutine_handle<> awaiting) noexcept {
    coroutine_.promise().continuation = awaiting;
    return coroutine_;
  }
  T await_resume() {
    auto& promise = coroutine_.promise();
    if (promise.error) std::rethrow_exception(promise.error);
    return std::move(*promise.value);
  }

 private:
  explicit Task(Handle coroutine) noexcept : coroutine_(coroutine) {}
  Handle coroutine_;
};

template <>
class [[nodiscard]] Task<void> {
 public:
  struct promise_type : detail::PromiseBase {
    Task get_return_object() noexcept { return Task(Handle::from_promise(*this)); }
    void return_void() const noexcept {}
  };
  using Handle = std::coroutine_handle<promise_type>;

  Task(Task&& other) noexcept : coroutine_(std::exchange(other.coroutine_, {})) {}
  Task& operator=(Task&&) = delete;
  ~Task() {
    if (coroutine_) coroutine_.destroy();
  }

  bool await_ready() const noexcept { return false; }
  std::coroutine_handle<> await_suspend(std::coroutine_handle<> awaiting) noexcept {
    coroutine_.promise().continuation = awaiting;
    return coroutine_;
  }
  void await_resume() const {
    if (coroutine_.promise().error) std::rethrow_exception(coroutine_.promise().error);
  }

 private:
  explicit Task(Handle coroutine) noexcept : coroutine_(coroutine) {}
  Handle coroutine_;
};

}  // namespace qilin::app

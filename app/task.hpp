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
#include <type_traits>
#include <utility>

#include "app/frame_cache.hpp"

namespace qilin::app {

template <class T>
class Task;

namespace detail {

// Resumes whoever awaited the finished task (or nobody, for the top level).
struct FinalAwaiter {
  bool await_ready() const noexcept { return false; }
  template <class FinishedPromise>
  std::coroutine_handle<> await_suspend(std::coroutine_handle<FinishedPromise> done) const noexcept {
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

// What a handler returns: a value (T) or nothing (void). The rest of the
// promise is the same for both, and so is the Task that owns it.
template <class T>
struct Promise : PromiseBase {
  std::optional<T> value;
  Task<T> get_return_object() noexcept;
  template <class U>
  void return_value(U&& result) {
    value.emplace(std::forward<U>(result));
  }
};

template <>
struct Promise<void> : PromiseBase {
  Task<void> get_return_object() noexcept;
  void return_void() const noexcept {}
};

}  // namespace detail

template <class T>
class [[nodiscard]] Task {
 public:
  using promise_type = detail::Promise<T>;
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
    promise_type& promise = coroutine_.promise();
    if (promise.error) std::rethrow_exception(promise.error);
    if constexpr (!std::is_void_v<T>) return std::move(*promise.value);
  }

 private:
  friend promise_type;
  explicit Task(Handle coroutine) noexcept : coroutine_(coroutine) {}
  Handle coroutine_;
};

template <class T>
Task<T> detail::Promise<T>::get_return_object() noexcept {
  return Task<T>(Task<T>::Handle::from_promise(*this));
}

inline Task<void> detail::Promise<void>::get_return_object() noexcept {
  return Task<void>(Task<void>::Handle::from_promise(*this));
}

}  // namespace qilin::app

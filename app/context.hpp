// Context: the slow things an app may await, implemented by each worker.
//
// This is where the IO model shows through to the app. The same
// `co_await ctx.sleep(10ms)` blocks the process in `sync`, blocks one pool
// thread in `threaded`, and in `epoll`/`io_uring` suspends the handler while
// the loop serves other connections, resuming it when a timer fires.
#pragma once

#include <chrono>
#include <coroutine>

namespace qilin::app {

class Context {
 public:
  virtual ~Context() = default;

  struct SleepAwaiter {
    Context& context;
    std::chrono::milliseconds duration;
    bool await_ready() const noexcept { return duration.count() <= 0; }
    bool await_suspend(std::coroutine_handle<> waiter) {
      return context.suspend_for(duration, waiter);
    }
    void await_resume() const noexcept {}
  };

  // Cooperative sleep: gives the worker back to other requests where the IO
  // model allows it.
  SleepAwaiter sleep(std::chrono::milliseconds duration) { return {*this, duration}; }

 protected:
  // Called once per awaited sleep. A blocking worker sleeps right here and
  // returns false (the coroutine continues at once); an event loop arms a
  // timer that will call waiter.resume() on the loop thread and returns true.
  virtual bool suspend_for(std::chrono::milliseconds duration, std::coroutine_handle<> waiter) = 0;
};

// The Context of the blocking workers (sync, threaded): the await blocks the
// calling thread, which is exactly what those IO models do.
class BlockingContext final : public Context {
 protected:
  bool suspend_for(std::chrono::milliseconds duration, std::coroutine_handle<>) override;
};

}  // namespace qilin::app

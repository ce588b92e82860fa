// Deadlines for the event-loop workers: keep-alive idle time and request-read
// time (epoll, io_uring), and the app's sleeps (epoll; io_uring hands each
// sleep to the kernel as a timeout operation). One min-heap per loop.
//
// Connection deadlines are lazy. A connection keeps its own current deadline
// and the heap holds at most a few stale entries for it: when an entry fires,
// the loop compares it with the connection's deadline and either acts or
// re-arms. So a request that pushes a keep-alive deadline further costs a
// store, not a heap operation; the heap sees a connection about once per
// deadline period. Entries carry a generation so a slot reused by a new
// connection never inherits the old one's timer.
#pragma once

#include <algorithm>
#include <chrono>
#include <coroutine>
#include <cstdint>
#include <queue>
#include <vector>

#include "app/context.hpp"
#include "master/scoreboard.hpp"

namespace qilin::workers {

using master::kNsPerMs;
using master::kNsPerSecond;

// Nanoseconds as the kernel's timespec: timespec for epoll_pwait2,
// __kernel_timespec for io_uring (the same two fields, other types).
template <class Timespec>
constexpr Timespec timespec_of_ns(int64_t ns) noexcept {
  return {.tv_sec = ns / kNsPerSecond, .tv_nsec = ns % kNsPerSecond};
}

class DeadlineQueue {
 public:
  // A connection slot and its generation, as the loop numbers them.
  struct ConnectionRef {
    uint32_t slot;
    uint32_t generation;
  };

  void add_sleeper(int64_t deadline_ms, std::coroutine_handle<> waiter) {
    heap_.push({deadline_ms, sequence_++, waiter, {}});
  }
  void add_connection(int64_t deadline_ms, ConnectionRef connection) {
    heap_.push({deadline_ms, sequence_++, {}, connection});
  }

  // How long the loop may sleep, in nanoseconds from `now_ns`: until the
  // earliest deadline, at most `cap_ms` (the heartbeat), never negative.
  // Nanoseconds, so that a wait computed mid-millisecond ends on the
  // deadline and not up to a millisecond after it.
  int64_t wait_ns(int64_t now_ns, int64_t cap_ms) const {
    const int64_t cap_ns = cap_ms * kNsPerMs;
    if (heap_.empty()) return cap_ns;
    const int64_t wait = heap_.top().deadline_ms * kNsPerMs - now_ns;
    return std::clamp<int64_t>(wait, 0, cap_ns);
  }

  // Resumes every sleeper due by `now_ms` and calls on_connection(ref) for
  // every connection entry due; the loop decides whether that entry is stale.
  template <class OnConnection>
  void expire(int64_t now_ms, OnConnection&& on_connection) {
    while (!heap_.empty() && heap_.top().deadline_ms <= now_ms) {
      Entry due = heap_.top();
      heap_.pop();
      if (due.waiter)
        due.waiter.resume();  // may add entries: the loop re-reads top()
      else
        on_connection(due.connection);
    }
  }

  size_t size() const { return heap_.size(); }

 private:
  struct Entry {
    int64_t deadline_ms;
    uint64_t sequence;  // equal deadlines fire in the order they were set
    std::coroutine_handle<> waiter;
    ConnectionRef connection;
    bool operator>(const Entry& other) const {
      return deadline_ms != other.deadline_ms ? deadline_ms > other.deadline_ms
                                              : sequence > other.sequence;
    }
  };
  std::priority_queue<Entry, std::vector<Entry>, std::greater<Entry>> heap_;
  uint64_t sequence_ = 0;
};

// When a sleep that starts now ends, in CLOCK_MONOTONIC milliseconds: never
// sooner than `duration` from now, at most a millisecond later. Read from
// the clock, not the loop turn's copy of it, which a handler that ran long
// before it awaited would have left behind. Whole milliseconds, so the
// sleeps due in one millisecond end together, in one wake-up of the loop.
inline int64_t sleep_deadline_ms(std::chrono::milliseconds duration) noexcept {
  return (master::monotonic_ns() + kNsPerMs - 1) / kNsPerMs + duration.count();
}

// The Context of the epoll worker: an awaited sleep suspends the
// handler and the loop resumes it from its DeadlineQueue, on the loop thread,
// while other connections are served meanwhile.
class LoopContext final : public app::Context {
 public:
  explicit LoopContext(DeadlineQueue& deadlines) : deadlines_(deadlines) {}

 protected:
  bool suspend_for(std::chrono::milliseconds duration, std::coroutine_handle<> waiter) override {
    deadlines_.add_sleeper(sleep_deadline_ms(duration), waiter);
    return true;
  }

 private:
  DeadlineQueue& deadlines_;
};

}  // namespace qilin::workers

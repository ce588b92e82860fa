// The event loops' deadline heap (workers/deadlines.hpp), without a loop:
// how long a loop may sleep, the order deadlines fire in, and when an app's
// sleep ends.
#include "workers/deadlines.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <coroutine>
#include <cstdint>
#include <vector>

#include "master/scoreboard.hpp"

namespace qilin::workers {
namespace {

using namespace std::chrono_literals;
using Ref = DeadlineQueue::ConnectionRef;

// A suspended handler that, when the queue resumes it, writes its id down.
struct Handler {
  struct promise_type {
    Handler get_return_object() {
      return {std::coroutine_handle<promise_type>::from_promise(*this)};
    }
    std::suspend_always initial_suspend() noexcept { return {}; }
    std::suspend_always final_suspend() noexcept { return {}; }
    void return_void() noexcept {}
    void unhandled_exception() noexcept {}
  };
  std::coroutine_handle<promise_type> handle;
};
Handler resumed_into(std::vector<int>& order, int id) {
  order.push_back(id);
  co_return;
}

TEST(DeadlineQueue, NothingDueSleepsOneHeartbeat) {
  DeadlineQueue deadlines;
  EXPECT_EQ(deadlines.wait_ns(5 * kNsPerMs, 1000), 1000 * kNsPerMs);
}

// The turn's clock read 100.6 ms: a deadline at 110 ms is 9.4 ms away, not
// the 10 ms that whole milliseconds would make of it.
TEST(DeadlineQueue, WaitEndsOnTheDeadlineNotAfterItsMillisecond) {
  DeadlineQueue deadlines;
  deadlines.add_connection(110, Ref{1, 1});
  EXPECT_EQ(deadlines.wait_ns(100'600'000, 1000), 9'400'000);
}

TEST(DeadlineQueue, WaitIsNeverNegativeNorPastTheHeartbeat) {
  DeadlineQueue past;
  past.add_connection(100, Ref{1, 1});
  EXPECT_EQ(past.wait_ns(100'000'001, 1000), 0);
  DeadlineQueue far;
  far.add_connection(60'000, Ref{1, 1});
  EXPECT_EQ(far.wait_ns(0, 1000), 1000 * kNsPerMs);
}

TEST(DeadlineQueue, ExpiresWhatIsDueInDeadlineThenArrivalOrder) {
  DeadlineQueue deadlines;
  std::vector<int> order;
  Handler first = resumed_into(order, 1), second = resumed_into(order, 2);
  deadlines.add_connection(20, Ref{7, 3});
  deadlines.add_sleeper(10, first.handle);
  deadlines.add_connection(10, Ref{8, 4});
  deadlines.add_sleeper(10, second.handle);
  deadlines.add_connection(11, Ref{9, 5});

  deadlines.expire(10, [&](Ref ref) { order.push_back(-static_cast<int>(ref.slot)); });
  EXPECT_EQ(order, (std::vector<int>{1, -8, 2}));
  EXPECT_EQ(deadlines.size(), 2u);
  EXPECT_EQ(deadlines.wait_ns(10 * kNsPerMs, 1000), 1 * kNsPerMs);
  first.handle.destroy();
  second.handle.destroy();
}

// Never sooner than asked, at most a millisecond (plus this test's own
// time between the clock reads) later.
TEST(SleepDeadline, NeverEndsEarly) {
  for (auto duration : {0ms, 1ms, 10ms, 250ms}) {
    const int64_t before = master::monotonic_ns();
    const int64_t due_ns = sleep_deadline_ms(duration) * kNsPerMs;
    const int64_t after = master::monotonic_ns();
    const int64_t asked = std::chrono::nanoseconds(duration).count();
    EXPECT_GE(due_ns, before + asked) << duration.count();
    EXPECT_LE(due_ns, after + asked + kNsPerMs) << duration.count();
  }
}

}  // namespace
}  // namespace qilin::workers

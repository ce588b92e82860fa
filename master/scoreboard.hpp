// The scoreboard: one shared-memory slot per worker, written by that worker
// and read by the master (heartbeats) and the status process (/metrics,
// /status.json), plus one server-wide header written by the master.
//
// Fixed layout, no pointers, no locks: the mapping is MAP_SHARED|MAP_ANONYMOUS,
// made by the master before the first fork, so every worker sees the same
// pages at the same address. Fields are lock-free atomics, which are
// address-free and so valid across processes (C++20 [atomics.lockfree]).
// A heartbeat in shared memory costs a store, where gunicorn's temp-file
// heartbeat costs an fchmod that can stall on a slow disk.
//
// Who writes what:
//   ScoreboardHeader        the master only (restarts, retired workers' totals)
//   ScoreboardSlot          the master at claim(); then only the worker that owns it
//   ScoreboardSlot::io      the worker class, one call per syscall it makes (see IoCounters)
// Counters are bumped with memory_order_relaxed: readers want totals, not an
// ordering between them. A reader may see one counter a step ahead of another.
// On x86 a relaxed fetch_add is still a locked instruction (5.1 ns in a
// tight loop here, against 0.45 for a plain add), but the dozen a request
// makes cost nothing measurable: a relaxed load and store instead (exact for
// a single-threaded worker) moved plaintext CPU per request by under 1% in
// two A/B runs, so every worker class keeps the one simple rule.
#pragma once

#include <sys/types.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include "http/status_codes.hpp"

namespace qilin::master {

enum class WorkerState : uint32_t { Free = 0, Booting, Ready, Stopping };

// The states of an open connection, counted as gauges in IoCounters.
enum class ConnState : uint8_t { Closed = 0, Reading, Writing, Idle, App };

using Counter = std::atomic<uint64_t>;
using Gauge = std::atomic<int64_t>;

inline void bump(Counter& counter, uint64_t by = 1) noexcept {
  counter.fetch_add(by, std::memory_order_relaxed);
}

// What a worker class does with the kernel, counted where the call is made:
// one line per syscall ("no syscall to count a syscall"). The readiness and
// blocking models (sync, threaded, epoll) call the verb named after the
// syscall right after making it; io_uring counts its io_uring_enter calls
// with submit()/submit_and_wait() and each CQE with completed().
//
//   syscall                                    call
//   accept4 (any result, EAGAIN included)      io().accept()
//   recv/read (any result)                     io().read(result)
//   send/sendmsg/writev                        io().write()
//   sendfile/splice                            io().sendfile()
//   poll/epoll_wait                            io().wait(returned)
//   epoll_ctl, setsockopt, close, shutdown...  io().syscall()
//   io_uring_enter that only submits           io().submit(sqes)
//   io_uring_enter that submits and waits      io().submit_and_wait(sqes, cqes)
//   a CQE of an accept/recv/send/splice        io().completed(ConnOp::Read, result) …
// Gauges of open connections: hold a ConnTracker per connection (below).
enum class ConnOp : uint8_t { Accept, Read, Write, Sendfile };

struct IoCounters {
  Counter accepts{0};      // accept4 calls, or accept CQEs (io_uring)
  Counter reads{0};        // recv/read calls, or recv CQEs
  Counter writes{0};       // send/sendmsg/writev calls, or send CQEs
  Counter sendfiles{0};    // sendfile/splice calls, or their CQEs
  Counter waits{0};        // poller waits: poll, epoll_wait, io_uring_enter that waited
  Counter empty_waits{0};  // ... of which returned nothing (timeout, EINTR): not a wake-up for work
  Counter events{0};       // ready fds or CQEs those waits returned
  Counter submits{0};      // io_uring_enter calls that submitted (io_uring only)
  Counter sqes{0};         // SQEs those calls submitted (io_uring only)
  Counter syscalls{0};     // every syscall on the IO path, all of the above included
  Counter bytes_in{0};     // bytes received from clients, request heads included
  // Open connections by state; each connection is in at most one.
  Gauge reading{0};  // waiting for or receiving a request
  Gauge writing{0};  // a response is being written
  Gauge idle{0};     // keep-alive, between requests
  Gauge in_app{0};   // a request is with the app

  // ---- readiness and blocking models: one call right after each syscall ----
  void accept() noexcept { op(accepts); }
  void read(ssize_t result) noexcept {
    op(reads);
    if (result > 0) bump(bytes_in, static_cast<uint64_t>(result));
  }
  void write() noexcept { op(writes); }
  void sendfile() noexcept { op(sendfiles); }
  void wait(int returned) noexcept {
    op(waits);
    if (returned > 0)
      bump(events, static_cast<uint64_t>(returned));
    else
      bump(empty_waits);
  }
  void syscall(uint64_t count = 1) noexcept { bump(syscalls, count); }

  // ---- io_uring: the syscalls are the enters, the operations are CQEs ----
  void submit(unsigned submitted) noexcept {
    bump(submits);
    bump(sqes, submitted);
    bump(syscalls);
  }
  void submit_and_wait(unsigned submitted, unsigned completions) noexcept {
    submit(submitted);
    bump(waits);
    if (completions > 0)
      bump(events, completions);
    else
      bump(empty_waits);
  }
  void completed(ConnOp operation, int result) noexcept {
    switch (operation) {
      case ConnOp::Accept:
        bump(accepts);
        break;
      case ConnOp::Read:
        bump(reads);
        if (result > 0) bump(bytes_in, static_cast<uint64_t>(result));
        break;
      case ConnOp::Write:
        bump(writes);
        break;
      case ConnOp::Sendfile:
        bump(sendfiles);
        break;
    }
  }

  // A connection left `from` for `to` (Closed on either side: opened, closed).
  void moved(ConnState from, ConnState to) noexcept {
    if (Gauge* gauge = gauge_of(from)) gauge->fetch_sub(1, std::memory_order_relaxed);
    if (Gauge* gauge = gauge_of(to)) gauge->fetch_add(1, std::memory_order_relaxed);
  }
  Gauge* gauge_of(ConnState state) noexcept {
    switch (state) {
      case ConnState::Reading:
        return &reading;
      case ConnState::Writing:
        return &writing;
      case ConnState::Idle:
        return &idle;
      case ConnState::App:
        return &in_app;
      case ConnState::Closed:
        break;
    }
    return nullptr;
  }

  void clear() noexcept;

 private:
  void op(Counter& counter) noexcept {
    bump(counter);
    bump(syscalls);
  }
};

// One per connection, in the worker's own memory (not in the mapping): keeps
// the gauges right on every path, the destructor included. Move-only.
class ConnTracker {
 public:
  explicit ConnTracker(IoCounters& io, ConnState initial = ConnState::Reading) noexcept
      : io_(&io), state_(initial) {
    io.moved(ConnState::Closed, initial);
  }
  ConnTracker(ConnTracker&& other) noexcept
      : io_(other.io_), state_(std::exchange(other.state_, ConnState::Closed)) {}
  ConnTracker& operator=(ConnTracker&& other) noexcept {
    if (this != &other) {
      set(ConnState::Closed);
      io_ = other.io_;
      state_ = std::exchange(other.state_, ConnState::Closed);
    }
    return *this;
  }
  ConnTracker(const ConnTracker&) = delete;
  ConnTracker& operator=(const ConnTracker&) = delete;
  ~ConnTracker() { set(ConnState::Closed); }

  void set(ConnState next) noexcept {
    if (next == state_) return;
    io_->moved(state_, next);
    state_ = next;
  }
  ConnState state() const noexcept { return state_; }

 private:
  IoCounters* io_;
  ConnState state_;
};

// Request latency, from a complete request to its response handed to the
// session (app time plus any queueing before it), in fixed log-spaced
// buckets so that workers merge by adding and quantiles can be estimated.
inline constexpr std::array<uint64_t, 16> kLatencyBoundsUs = {
    100,    250,     500,     1'000,   2'500,     5'000,     10'000,    25'000,
    50'000, 100'000, 250'000, 500'000, 1'000'000, 2'500'000, 5'000'000, 10'000'000};
inline constexpr size_t kLatencyBuckets = kLatencyBoundsUs.size() + 1;  // the last is +Inf

struct LatencyHistogram {
  std::array<Counter, kLatencyBuckets> buckets{};  // per bucket, not cumulative
  Counter sum_us{0};
  Counter count{0};

  void record(uint64_t microseconds) noexcept;
  void add(const LatencyHistogram& other) noexcept;  // for the master's retired totals
  void clear() noexcept;
};

// Responses by status code (the app's Response::status, and the errors the
// session answers itself before a request reaches the app): one counter
// for each code qilin knows by name (http/status_codes.hpp, RFC 9110's) and
// one "other" for the rest, so the buckets always add up to `requests` and
// recording is one table load and one relaxed add. 51 counters x 8 bytes =
// 408 bytes a slot, 0.8 MiB over the master's kScoreboardSlots; a counter
// for every code 100..599 would be 9 MiB, mostly zeros the status process
// reads every second, for codes that an app would have to invent.
inline constexpr size_t kStatusCodeBuckets = http::kKnownStatuses.size() + 1;
inline constexpr size_t kOtherStatusBucket = kStatusCodeBuckets - 1;

namespace detail {
// Bucket by code - 100, for codes 100..599.
inline constexpr auto kStatusBucketByCode = [] {
  std::array<uint8_t, 500> table{};
  table.fill(static_cast<uint8_t>(kOtherStatusBucket));
  for (size_t i = 0; i < http::kKnownStatuses.size(); ++i)
    table[static_cast<size_t>(http::kKnownStatuses[i] - 100)] = static_cast<uint8_t>(i);
  return table;
}();
}  // namespace detail

constexpr size_t status_bucket(int status) noexcept {
  if (status < 100 || status > 599) return kOtherStatusBucket;
  return detail::kStatusBucketByCode[static_cast<size_t>(status - 100)];
}
// "200", or "other": the label, JSON key and StatsD name part of a bucket.
std::string status_bucket_name(size_t bucket);

struct StatusCodeCounters {
  std::array<Counter, kStatusCodeBuckets> buckets{};

  void record(int status) noexcept { bump(buckets[status_bucket(status)]); }
  void add(const StatusCodeCounters& other) noexcept;  // for the master's retired totals
  void clear() noexcept;
};
static_assert(sizeof(StatusCodeCounters) == kStatusCodeBuckets * sizeof(Counter));

// The process as the kernel sees it, refreshed once a second by the worker's
// notify() (stores, not increments).
struct ProcessStats {
  Counter voluntary_switches{0};    // getrusage ru_nvcsw: the process blocked
  Counter involuntary_switches{0};  // ru_nivcsw: the scheduler preempted it
  Counter user_cpu_us{0};
  Counter system_cpu_us{0};
  Counter threads{0};    // /proc/self/stat field 20
  Counter rss_bytes{0};  // /proc/self/statm resident × page size

  void clear() noexcept;
};

inline constexpr size_t kWorkerClassLength = 16;

struct alignas(64) ScoreboardSlot {
  std::atomic<pid_t> pid{0};
  std::atomic<WorkerState> state{WorkerState::Free};
  std::atomic<int64_t> heartbeat_ms{0};  // CLOCK_MONOTONIC, refreshed at least once a second
  std::atomic<int64_t> started_ms{0};    // CLOCK_REALTIME at spawn (the master, at claim)
  // The worker_class name, NUL-padded; written by the master at claim.
  std::array<std::atomic<char>, kWorkerClassLength> worker_class{};
  Counter requests{0};        // answered (the base, request_done and count_rejection)
  Counter connections{0};     // accepted since boot (the base, connection_accepted)
  Counter body_bytes_out{0};  // response body bytes, files included, streams not (the base)
  IoCounters io;
  LatencyHistogram latency;         // the base, request_done
  StatusCodeCounters status_codes;  // the base, request_done and count_rejection
  ProcessStats process;             // the base, notify()

  std::string_view worker_class_name(std::array<char, kWorkerClassLength + 1>& into) const noexcept;

  static_assert(std::atomic<int64_t>::is_always_lock_free &&
                std::atomic<pid_t>::is_always_lock_free && std::atomic<char>::is_always_lock_free &&
                Counter::is_always_lock_free);
};

// Why a worker was replaced, as the master saw it when it reaped the worker.
enum class RestartReason : uint32_t { Crash = 0, Timeout, MaxRequests, Reload };
inline constexpr size_t kRestartReasons = 4;
std::string_view restart_reason_name(RestartReason reason) noexcept;

struct RestartEvent {
  std::atomic<int64_t> time_ms{0};  // CLOCK_REALTIME
  std::atomic<pid_t> pid{0};
  std::atomic<RestartReason> reason{RestartReason::Crash};
};

// Server-wide, the first thing in the mapping; written by the master only.
struct alignas(64) ScoreboardHeader {
  std::atomic<pid_t> master_pid{0};
  std::atomic<int64_t> started_ms{0};  // CLOCK_REALTIME
  std::atomic<int32_t> target_workers{0};
  // The master a USR2 started, while it runs (0: none). Both masters serve
  // then, each with its own scoreboard; the successor's status process
  // reports the StatsD workers gauge, so this one's stays quiet rather than
  // flip the gauge between two values once a second.
  std::atomic<pid_t> upgraded_master_pid{0};
  std::array<Counter, kRestartReasons> restarts{};
  // The last kRecentRestarts restarts, a seqlock-style ring: event n goes to
  // recent[n % size]; the writer bumps `recording` before writing it and
  // `recorded` after. A reader loads `recorded` (acquire), copies, then loads
  // `recording` (after an acquire fence) and keeps only the events the writer
  // cannot have been overwriting meanwhile: index >= recording - size.
  static constexpr size_t kRecentRestarts = 16;
  std::array<RestartEvent, kRecentRestarts> recent{};
  Counter recording{0};
  Counter recorded{0};
  // What workers that have exited had counted, so server totals never go back.
  Counter retired_requests{0};
  Counter retired_connections{0};
  LatencyHistogram retired_latency;
  StatusCodeCounters retired_status_codes;
};

// Owns the mapping; constructed in the master before any fork.
class Scoreboard {
 public:
  explicit Scoreboard(size_t slots);
  ~Scoreboard();
  Scoreboard(const Scoreboard&) = delete;
  Scoreboard& operator=(const Scoreboard&) = delete;

  std::span<ScoreboardSlot> slots() noexcept { return {slots_, count_}; }
  std::span<const ScoreboardSlot> slots() const noexcept { return {slots_, count_}; }
  ScoreboardHeader& header() noexcept { return *header_; }
  const ScoreboardHeader& header() const noexcept { return *header_; }

  // A Free slot, cleared and marked Booting for a worker of `worker_class`,
  // or nullptr when all are taken. The master only.
  ScoreboardSlot* claim(std::string_view worker_class) noexcept;
  // The master, after reaping the slot's worker: its counts go to the retired totals.
  void release(ScoreboardSlot& slot) noexcept;
  // The master, when it reaps a worker it will replace.
  void record_restart(pid_t pid, RestartReason reason) noexcept;

 private:
  void* mapping_;
  size_t bytes_;
  ScoreboardHeader* header_;
  ScoreboardSlot* slots_;
  size_t count_;
};

// The clocks every process here reads, and their one set of unit conversions.
inline constexpr int64_t kNsPerMs = 1'000'000;
inline constexpr int64_t kNsPerSecond = 1'000'000'000;
int64_t monotonic_ms() noexcept;
int64_t monotonic_ns() noexcept;
int64_t realtime_ms() noexcept;

}  // namespace qilin::master

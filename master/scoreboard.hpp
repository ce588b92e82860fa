// The scoreboard: one shared-memory slot per worker, written by that worker
// and read by the master (heartbeats) and, later, the status listener.
//
// Fixed layout, no pointers, no locks: the mapping is MAP_SHARED|MAP_ANONYMOUS,
// made by the master before the first fork, so every worker sees the same
// pages at the same address. Fields are lock-free atomics, which are
// address-free and so valid across processes (C++20 [atomics.lockfree]).
// A heartbeat in shared memory costs a store, where gunicorn's temp-file
// heartbeat costs an fchmod that can stall on a slow disk.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <span>

namespace qilin::master {

enum class WorkerState : uint32_t { Free = 0, Booting, Ready, Stopping };

struct alignas(64) ScoreboardSlot {
  std::atomic<pid_t> pid{0};
  std::atomic<WorkerState> state{WorkerState::Free};
  std::atomic<int64_t> heartbeat_ms{0};  // CLOCK_MONOTONIC, refreshed at least once a second
  std::atomic<uint64_t> requests{0};
  std::atomic<uint64_t> connections{0};  // accepted since boot

  static_assert(std::atomic<int64_t>::is_always_lock_free &&
                std::atomic<pid_t>::is_always_lock_free);
};

// Owns the mapping; constructed in the master before any fork.
class Scoreboard {
 public:
  explicit Scoreboard(size_t slots);
  ~Scoreboard();
  Scoreboard(const Scoreboard&) = delete;
  Scoreboard& operator=(const Scoreboard&) = delete;

  std::span<ScoreboardSlot> slots() noexcept { return {slots_, count_}; }
  // A Free slot, or nullptr when all are taken.
  ScoreboardSlot* claim() noexcept;
  static void release(ScoreboardSlot& slot) noexcept;

 private:
  ScoreboardSlot* slots_;
  size_t count_;
};

int64_t monotonic_ms() noexcept;

}  // namespace qilin::master

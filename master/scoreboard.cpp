#include "master/scoreboard.hpp"

#include <sys/mman.h>

#include <cerrno>
#include <ctime>
#include <new>

#include "sys/error.hpp"

namespace qilin::master {

Scoreboard::Scoreboard(size_t slots) : count_(slots) {
  void* memory = ::mmap(nullptr, sizeof(ScoreboardSlot) * slots, PROT_READ | PROT_WRITE,
                        MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (memory == MAP_FAILED) throw sys::SysError("mmap", errno);
  slots_ = static_cast<ScoreboardSlot*>(memory);
  for (size_t i = 0; i < slots; ++i) new (&slots_[i]) ScoreboardSlot{};
}

Scoreboard::~Scoreboard() { ::munmap(slots_, sizeof(ScoreboardSlot) * count_); }

ScoreboardSlot* Scoreboard::claim() noexcept {
  for (auto& slot : slots()) {
    if (slot.state.load() == WorkerState::Free) {
      slot.pid = 0;
      slot.state = WorkerState::Booting;
      slot.heartbeat_ms = monotonic_ms();
      slot.requests = 0;
      slot.connections = 0;
      return &slot;
    }
  }
  return nullptr;
}

void Scoreboard::release(ScoreboardSlot& slot) noexcept {
  slot.pid = 0;
  slot.state = WorkerState::Free;
}

int64_t monotonic_ms() noexcept {
  timespec now{};
  ::clock_gettime(CLOCK_MONOTONIC, &now);
  return int64_t{now.tv_sec} * 1000 + now.tv_nsec / 1'000'000;
}

}  // namespace qilin::master

#include "master/scoreboard.hpp"

#include <sys/mman.h>

#include <algorithm>
#include <cerrno>
#include <ctime>
#include <new>

#include "sys/error.hpp"

namespace qilin::master {

namespace {

constexpr auto relaxed = std::memory_order_relaxed;

void zero(Counter& counter) noexcept { counter.store(0, relaxed); }

size_t header_bytes() noexcept {
  // The slots start on a cache line of their own.
  return (sizeof(ScoreboardHeader) + alignof(ScoreboardSlot) - 1) / alignof(ScoreboardSlot) *
         alignof(ScoreboardSlot);
}

}  // namespace

void IoCounters::clear() noexcept {
  for (Counter* counter : {&accepts, &reads, &writes, &sendfiles, &waits, &empty_waits, &events,
                           &submits, &sqes, &syscalls, &bytes_in})
    zero(*counter);
  for (Gauge* gauge : {&reading, &writing, &idle, &in_app}) gauge->store(0, relaxed);
}

void LatencyHistogram::record(uint64_t microseconds) noexcept {
  // Upper bounds are inclusive, as Prometheus' `le` says.
  auto bound = std::lower_bound(kLatencyBoundsUs.begin(), kLatencyBoundsUs.end(), microseconds);
  bump(buckets[static_cast<size_t>(bound - kLatencyBoundsUs.begin())]);
  bump(sum_us, microseconds);
  bump(count);
}

void LatencyHistogram::add(const LatencyHistogram& other) noexcept {
  for (size_t i = 0; i < kLatencyBuckets; ++i) bump(buckets[i], other.buckets[i].load(relaxed));
  bump(sum_us, other.sum_us.load(relaxed));
  bump(count, other.count.load(relaxed));
}

void LatencyHistogram::clear() noexcept {
  for (auto& bucket : buckets) zero(bucket);
  zero(sum_us);
  zero(count);
}

std::string status_bucket_name(size_t bucket) {
  if (bucket >= kOtherStatusBucket) return "other";
  return std::to_string(http::kKnownStatuses[bucket]);
}

void StatusCodeCounters::add(const StatusCodeCounters& other) noexcept {
  for (size_t i = 0; i < kStatusCodeBuckets; ++i) bump(buckets[i], other.buckets[i].load(relaxed));
}

void StatusCodeCounters::clear() noexcept {
  for (auto& bucket : buckets) zero(bucket);
}

void ProcessStats::clear() noexcept {
  for (Counter* counter : {&voluntary_switches, &involuntary_switches, &user_cpu_us, &system_cpu_us,
                           &threads, &rss_bytes})
    zero(*counter);
}

std::string_view ScoreboardSlot::worker_class_name(
    std::array<char, kWorkerClassLength + 1>& into) const noexcept {
  size_t length = 0;
  for (; length < kWorkerClassLength; ++length) {
    into[length] = worker_class[length].load(relaxed);
    if (into[length] == '\0') break;
  }
  into[length] = '\0';
  return {into.data(), length};
}

std::string_view restart_reason_name(RestartReason reason) noexcept {
  switch (reason) {
    case RestartReason::Crash:
      return "crash";
    case RestartReason::Timeout:
      return "timeout";
    case RestartReason::MaxRequests:
      return "max_requests";
    case RestartReason::Reload:
      return "reload";
  }
  return "unknown";
}

Scoreboard::Scoreboard(size_t slots)
    : bytes_(header_bytes() + sizeof(ScoreboardSlot) * slots), count_(slots) {
  mapping_ = ::mmap(nullptr, bytes_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (mapping_ == MAP_FAILED) throw sys::SysError("mmap", errno);
  auto* base = static_cast<char*>(mapping_);
  header_ = new (base) ScoreboardHeader{};
  slots_ = reinterpret_cast<ScoreboardSlot*>(base + header_bytes());
  for (size_t i = 0; i < slots; ++i) new (&slots_[i]) ScoreboardSlot{};
  header_->started_ms.store(realtime_ms());
}

Scoreboard::~Scoreboard() { ::munmap(mapping_, bytes_); }

ScoreboardSlot* Scoreboard::claim(std::string_view worker_class) noexcept {
  for (auto& slot : slots()) {
    if (slot.state.load() != WorkerState::Free) continue;
    slot.pid = 0;
    slot.heartbeat_ms = monotonic_ms();
    slot.started_ms = realtime_ms();
    for (size_t i = 0; i < kWorkerClassLength; ++i)
      slot.worker_class[i].store(i < worker_class.size() ? worker_class[i] : '\0', relaxed);
    zero(slot.requests);
    zero(slot.connections);
    zero(slot.body_bytes_out);
    slot.io.clear();
    slot.latency.clear();
    slot.status_codes.clear();
    slot.process.clear();
    // Last: a reader that sees Booting sees the cleared slot.
    slot.state = WorkerState::Booting;
    return &slot;
  }
  return nullptr;
}

void Scoreboard::release(ScoreboardSlot& slot) noexcept {
  bump(header_->retired_requests, slot.requests.load(relaxed));
  bump(header_->retired_connections, slot.connections.load(relaxed));
  header_->retired_latency.add(slot.latency);
  header_->retired_status_codes.add(slot.status_codes);
  slot.pid = 0;
  slot.state = WorkerState::Free;
}

void Scoreboard::record_restart(pid_t pid, RestartReason reason) noexcept {
  bump(header_->restarts[static_cast<size_t>(reason)]);
  const uint64_t n = header_->recorded.load(relaxed);
  header_->recording.store(n + 1, relaxed);
  std::atomic_thread_fence(std::memory_order_release);
  auto& event = header_->recent[n % ScoreboardHeader::kRecentRestarts];
  event.time_ms.store(realtime_ms(), relaxed);
  event.pid.store(pid, relaxed);
  event.reason.store(reason, relaxed);
  header_->recorded.store(n + 1, std::memory_order_release);
}

int64_t monotonic_ms() noexcept { return monotonic_ns() / kNsPerMs; }

int64_t monotonic_ns() noexcept {
  timespec now{};
  ::clock_gettime(CLOCK_MONOTONIC, &now);
  return int64_t{now.tv_sec} * kNsPerSecond + now.tv_nsec;
}

int64_t realtime_ms() noexcept {
  timespec now{};
  ::clock_gettime(CLOCK_REALTIME, &now);
  return int64_t{now.tv_sec} * 1000 + now.tv_nsec / kNsPerMs;
}

}  // namespace qilin::master

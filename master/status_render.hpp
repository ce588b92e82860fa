// What the status process serves, as pure functions: a scoreboard snapshot in,
// text out (Prometheus exposition, JSON, the HTML page, the terminal table).
// No IO, no clock reads of their own: the unit tests build a snapshot by hand.
//
// Derived figures, the point of the page: they tell the IO models apart.
//   syscalls per request     IoCounters::syscalls / requests
//   requests per wake-up     requests / poller waits that returned something
//   events per wake-up       events / poller waits that returned something
//   completions per submit   CQEs / io_uring_enter calls that submitted (io_uring)
//   switches per request     (voluntary + involuntary context switches) / requests
// Each is null (JSON) or absent (metrics: they are for rate() to compute)
// when its denominator is still 0.
#pragma once

#include <sys/types.h>

#include <array>
#include <cstdint>
#include <deque>
#include <map>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "http/message.hpp"
#include "master/scoreboard.hpp"

namespace qilin::master {

struct LatencySnapshot {
  std::array<uint64_t, kLatencyBuckets> buckets{};  // per bucket, not cumulative
  uint64_t sum_us = 0;
  uint64_t count = 0;

  void add(const LatencySnapshot& other) noexcept;
  // What was recorded since `earlier` (the same worker, or the server's totals).
  LatencySnapshot since(const LatencySnapshot& earlier) const noexcept;
};

// The q-quantile (0 < q < 1) in seconds, interpolated linearly inside the
// bucket it falls in, as Prometheus' histogram_quantile() does; a quantile in
// the +Inf bucket is reported as the largest finite bound. nullopt when empty.
std::optional<double> latency_quantile(const LatencySnapshot& latency, double q) noexcept;

// Responses by status code, in the scoreboard's buckets (status_bucket()).
struct StatusCodeSnapshot {
  std::array<uint64_t, kStatusCodeBuckets> buckets{};

  void add(const StatusCodeSnapshot& other) noexcept;
};

struct IoSnapshot {
  uint64_t accepts = 0, reads = 0, writes = 0, sendfiles = 0;
  uint64_t waits = 0, empty_waits = 0, events = 0, submits = 0, sqes = 0, syscalls = 0,
           bytes_in = 0;
  int64_t reading = 0, writing = 0, idle = 0, in_app = 0;

  void add(const IoSnapshot& other) noexcept;
  int64_t open() const noexcept { return reading + writing + idle + in_app; }
};

struct ProcessSnapshot {
  uint64_t voluntary_switches = 0, involuntary_switches = 0;
  uint64_t user_cpu_us = 0, system_cpu_us = 0;
  uint64_t threads = 0, rss_bytes = 0;
};

struct WorkerSnapshot {
  pid_t pid = 0;
  std::string worker_class;
  WorkerState state = WorkerState::Booting;
  int64_t started_ms = 0;  // CLOCK_REALTIME
  int64_t heartbeat_age_ms = 0;
  uint64_t requests = 0;
  uint64_t connections = 0;  // accepted since boot
  uint64_t body_bytes_out = 0;
  IoSnapshot io;
  LatencySnapshot latency;
  StatusCodeSnapshot status_codes;
  ProcessSnapshot process;
};

struct RestartSnapshot {
  int64_t time_ms = 0;  // CLOCK_REALTIME
  pid_t pid = 0;
  RestartReason reason = RestartReason::Crash;
};

struct Snapshot {
  int64_t now_ms = 0;        // CLOCK_REALTIME when taken
  int64_t monotonic_ms = 0;  // CLOCK_MONOTONIC when taken (rates)
  pid_t master_pid = 0;
  pid_t upgraded_master_pid = 0;  // a USR2 successor still running (0: none)
  int64_t started_ms = 0;         // the master's start, CLOCK_REALTIME
  int target_workers = 0;
  std::array<uint64_t, kRestartReasons> restarts{};
  std::vector<RestartSnapshot> recent_restarts;  // oldest first
  uint64_t retired_requests = 0;                 // of workers that have exited
  uint64_t retired_connections = 0;
  LatencySnapshot retired_latency;
  StatusCodeSnapshot retired_status_codes;
  std::vector<WorkerSnapshot> workers;  // live slots, oldest first

  // Since the master started: the live workers' counts plus the retired ones'.
  uint64_t total_requests() const noexcept;
  uint64_t total_connections() const noexcept;
  LatencySnapshot total_latency() const noexcept;
  StatusCodeSnapshot total_status_codes() const noexcept;
};

// Copies every live slot (atomic loads only; the slots keep changing).
Snapshot take_snapshot(const Scoreboard& scoreboard, int64_t now_ms, int64_t monotonic_now_ms);

struct Ratios {
  std::optional<double> syscalls_per_request;
  std::optional<double> requests_per_wakeup;
  std::optional<double> events_per_wakeup;
  std::optional<double> completions_per_submit;
  std::optional<double> switches_per_request;
};
Ratios ratios(uint64_t requests, const IoSnapshot& io, const ProcessSnapshot& process) noexcept;

// Throughput and windowed p99 over the last minute, for the sparklines and
// the req/s column: sample() once a second, per worker (by pid) and for the
// server. The window of a point is the time since the previous sample.
class StatusHistory {
 public:
  static constexpr size_t kPoints = 60;
  struct Series {
    std::deque<double> requests_per_second;
    std::deque<std::optional<double>> p99_ms;  // nullopt: no request in that window
  };

  void sample(const Snapshot& snapshot);
  const Series& server() const noexcept { return server_; }
  const Series* worker(pid_t pid) const noexcept;

 private:
  struct Last {
    int64_t at_ms = 0;
    uint64_t requests = 0;
    LatencySnapshot latency;
  };
  static void push(Series& series, const Last& last, uint64_t requests,
                   const LatencySnapshot& latency, int64_t now_ms);

  Series server_;
  std::optional<Last> server_last_;
  std::map<pid_t, std::pair<Series, Last>> workers_;
};

// GET /metrics: Prometheus text exposition format 0.0.4.
std::string render_metrics(const Snapshot& snapshot);
// GET /status.json.
nlohmann::json status_json(const Snapshot& snapshot, const StatusHistory& history);
std::string render_status_json(const Snapshot& snapshot, const StatusHistory& history);
// GET /: a self-contained page that polls /status.json every second.
std::string_view status_page_html() noexcept;
// The status listener's routes: /metrics, /status.json, / (GET and HEAD).
http::Response status_response(const http::Request& request, const Snapshot& snapshot,
                               const StatusHistory& history);

// `qilin status`: /status.json as a terminal table, one row per worker.
std::string render_status_table(const nlohmann::json& status);

std::string_view worker_state_name(WorkerState state) noexcept;

}  // namespace qilin::master

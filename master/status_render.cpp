#include "master/status_render.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <nlohmann/json.hpp>

namespace qilin::master {

namespace {

constexpr auto relaxed = std::memory_order_relaxed;

std::optional<double> ratio(uint64_t numerator, uint64_t denominator) noexcept {
  if (denominator == 0) return std::nullopt;
  return static_cast<double>(numerator) / static_cast<double>(denominator);
}

double seconds_of_us(uint64_t microseconds) noexcept {
  return static_cast<double>(microseconds) / 1e6;
}
double seconds_of_ms(int64_t milliseconds) noexcept {
  return static_cast<double>(milliseconds) / 1e3;
}
// Milliseconds to the microsecond: the buckets are no finer than that.
double milliseconds_of(double seconds) noexcept { return std::round(seconds * 1e6) / 1e3; }

LatencySnapshot copy(const LatencyHistogram& histogram) noexcept {
  LatencySnapshot latency;
  for (size_t i = 0; i < kLatencyBuckets; ++i)
    latency.buckets[i] = histogram.buckets[i].load(relaxed);
  latency.sum_us = histogram.sum_us.load(relaxed);
  latency.count = histogram.count.load(relaxed);
  return latency;
}

StatusCodeSnapshot copy(const StatusCodeCounters& counters) noexcept {
  StatusCodeSnapshot status_codes;
  for (size_t i = 0; i < kStatusCodeBuckets; ++i)
    status_codes.buckets[i] = counters.buckets[i].load(relaxed);
  return status_codes;
}

IoSnapshot copy(const IoCounters& io) noexcept {
  IoSnapshot out;
  out.accepts = io.accepts.load(relaxed);
  out.reads = io.reads.load(relaxed);
  out.writes = io.writes.load(relaxed);
  out.sendfiles = io.sendfiles.load(relaxed);
  out.waits = io.waits.load(relaxed);
  out.empty_waits = io.empty_waits.load(relaxed);
  out.events = io.events.load(relaxed);
  out.submits = io.submits.load(relaxed);
  out.sqes = io.sqes.load(relaxed);
  out.syscalls = io.syscalls.load(relaxed);
  out.bytes_in = io.bytes_in.load(relaxed);
  out.reading = io.reading.load(relaxed);
  out.writing = io.writing.load(relaxed);
  out.idle = io.idle.load(relaxed);
  out.in_app = io.in_app.load(relaxed);
  return out;
}

ProcessSnapshot copy(const ProcessStats& process) noexcept {
  return {.voluntary_switches = process.voluntary_switches.load(relaxed),
          .involuntary_switches = process.involuntary_switches.load(relaxed),
          .user_cpu_us = process.user_cpu_us.load(relaxed),
          .system_cpu_us = process.system_cpu_us.load(relaxed),
          .threads = process.threads.load(relaxed),
          .rss_bytes = process.rss_bytes.load(relaxed)};
}

// ---- Prometheus text exposition format 0.0.4 ----

// Label values escape backslash, double quote and newline.
std::string escape_label(std::string_view value) {
  std::string out;
  for (char c : value) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

class Exposition {
 public:
  void family(std::string_view name, std::string_view type, std::string_view help) {
    fmt::format_to(std::back_inserter(out_), "# HELP {} {}\n# TYPE {} {}\n", name, help, name,
                   type);
  }
  template <class Value>
  void sample(std::string_view name, std::string_view labels, Value value) {
    if (labels.empty())
      fmt::format_to(std::back_inserter(out_), "{} {}\n", name, value);
    else
      fmt::format_to(std::back_inserter(out_), "{}{{{}}} {}\n", name, labels, value);
  }
  void histogram(std::string_view name, std::string_view labels, const LatencySnapshot& latency) {
    const std::string prefix = labels.empty() ? std::string() : std::string(labels) + ",";
    uint64_t cumulative = 0;
    for (size_t i = 0; i < kLatencyBuckets; ++i) {
      cumulative += latency.buckets[i];
      const std::string le = i < kLatencyBoundsUs.size()
                                 ? fmt::format("{}", seconds_of_us(kLatencyBoundsUs[i]))
                                 : "+Inf";
      sample(fmt::format("{}_bucket", name), fmt::format("{}le=\"{}\"", prefix, le), cumulative);
    }
    sample(fmt::format("{}_sum", name), labels, seconds_of_us(latency.sum_us));
    // _count equals the +Inf bucket, as the format requires, even if a
    // relaxed read saw `count` a step apart from the buckets.
    sample(fmt::format("{}_count", name), labels, cumulative);
  }
  std::string take() { return std::move(out_); }

 private:
  std::string out_;
};

std::string worker_labels(const WorkerSnapshot& worker) {
  return fmt::format("worker=\"{}\",class=\"{}\"", worker.pid, escape_label(worker.worker_class));
}

// A per-worker family: one sample per worker, labelled worker= and class=,
// with `extra` labels appended.
template <class Value>
void per_worker(Exposition& out, const Snapshot& snapshot, std::string_view name,
                std::string_view type, std::string_view help,
                Value (*value)(const WorkerSnapshot&)) {
  out.family(name, type, help);
  for (const auto& worker : snapshot.workers)
    out.sample(name, worker_labels(worker), value(worker));
}

// ---- JSON ----

nlohmann::json number_or_null(std::optional<double> value) {
  return value ? nlohmann::json(*value) : nlohmann::json(nullptr);
}

nlohmann::json latency_json(const LatencySnapshot& latency) {
  auto ms = [&](double q) {
    auto seconds = latency_quantile(latency, q);
    return seconds ? nlohmann::json(milliseconds_of(*seconds)) : nlohmann::json(nullptr);
  };
  nlohmann::json buckets = nlohmann::json::array();
  for (uint64_t count : latency.buckets) buckets.push_back(count);
  return {{"count", latency.count}, {"sum_seconds", seconds_of_us(latency.sum_us)},
          {"p50_ms", ms(0.50)},     {"p90_ms", ms(0.90)},
          {"p99_ms", ms(0.99)},     {"buckets", std::move(buckets)}};
}

// Codes never answered are left out: most of the 51 buckets stay empty.
nlohmann::json status_codes_json(const StatusCodeSnapshot& status_codes) {
  nlohmann::json out = nlohmann::json::object();
  for (size_t i = 0; i < kStatusCodeBuckets; ++i)
    if (status_codes.buckets[i] > 0) out[status_bucket_name(i)] = status_codes.buckets[i];
  return out;
}

nlohmann::json io_json(const IoSnapshot& io) {
  return {{"accepts", io.accepts},
          {"reads", io.reads},
          {"writes", io.writes},
          {"sendfiles", io.sendfiles},
          {"waits", io.waits},
          {"empty_waits", io.empty_waits},
          {"events", io.events},
          {"submits", io.submits},
          {"sqes", io.sqes},
          {"syscalls", io.syscalls},
          {"bytes_received", io.bytes_in}};
}

nlohmann::json open_json(const IoSnapshot& io) {
  return {{"reading", io.reading},
          {"writing", io.writing},
          {"idle", io.idle},
          {"app", io.in_app},
          {"total", io.open()}};
}

nlohmann::json ratios_json(const Ratios& r) {
  return {{"syscalls_per_request", number_or_null(r.syscalls_per_request)},
          {"requests_per_wakeup", number_or_null(r.requests_per_wakeup)},
          {"events_per_wakeup", number_or_null(r.events_per_wakeup)},
          {"completions_per_submit", number_or_null(r.completions_per_submit)},
          {"switches_per_request", number_or_null(r.switches_per_request)}};
}

nlohmann::json process_json(const ProcessSnapshot& p) {
  return {{"voluntary_switches", p.voluntary_switches},
          {"involuntary_switches", p.involuntary_switches},
          {"context_switches", p.voluntary_switches + p.involuntary_switches},
          {"user_cpu_seconds", seconds_of_us(p.user_cpu_us)},
          {"system_cpu_seconds", seconds_of_us(p.system_cpu_us)},
          {"threads", p.threads},
          {"rss_bytes", p.rss_bytes}};
}

nlohmann::json series_json(const StatusHistory::Series* series) {
  nlohmann::json rps = nlohmann::json::array();
  nlohmann::json p99 = nlohmann::json::array();
  if (series) {
    for (double value : series->requests_per_second) rps.push_back(value);
    for (const auto& value : series->p99_ms) p99.push_back(number_or_null(value));
  }
  return {{"requests_per_second", std::move(rps)}, {"p99_ms", std::move(p99)}};
}

nlohmann::json last_rps(const StatusHistory::Series* series) {
  if (!series || series->requests_per_second.empty()) return nullptr;
  return series->requests_per_second.back();
}

// ---- the terminal table ----

std::string cell(const nlohmann::json& value, int precision = 1) {
  if (value.is_number_integer() || value.is_number_unsigned())
    return fmt::format("{}", value.get<int64_t>());
  if (value.is_number()) return fmt::format("{:.{}f}", value.get<double>(), precision);
  if (value.is_string()) return value.get<std::string>();
  return "-";
}

std::string age_text(double seconds) {
  const auto total = static_cast<int64_t>(seconds);
  if (total < 60) return fmt::format("{}s", total);
  if (total < 3600) return fmt::format("{}m{:02}s", total / 60, total % 60);
  if (total < 86400) return fmt::format("{}h{:02}m", total / 3600, total % 3600 / 60);
  return fmt::format("{}d{:02}h", total / 86400, total % 86400 / 3600);
}

std::string bytes_text(double bytes) {
  if (bytes < 1024) return fmt::format("{:.0f}B", bytes);
  if (bytes < 1024 * 1024) return fmt::format("{:.1f}K", bytes / 1024);
  if (bytes < 1024.0 * 1024 * 1024) return fmt::format("{:.1f}M", bytes / (1024 * 1024));
  return fmt::format("{:.1f}G", bytes / (1024.0 * 1024 * 1024));
}

const nlohmann::json& at(const nlohmann::json& object, std::string_view key) {
  static const nlohmann::json none;
  if (!object.is_object()) return none;
  auto found = object.find(key);
  return found == object.end() ? none : *found;
}

}  // namespace

// ---- snapshots ----

void LatencySnapshot::add(const LatencySnapshot& other) noexcept {
  for (size_t i = 0; i < kLatencyBuckets; ++i) buckets[i] += other.buckets[i];
  sum_us += other.sum_us;
  count += other.count;
}

LatencySnapshot LatencySnapshot::since(const LatencySnapshot& earlier) const noexcept {
  // Saturating: a counter that went back means a different worker, so the
  // window holds what this one counted.
  auto minus = [](uint64_t now, uint64_t before) { return now >= before ? now - before : now; };
  LatencySnapshot window;
  for (size_t i = 0; i < kLatencyBuckets; ++i)
    window.buckets[i] = minus(buckets[i], earlier.buckets[i]);
  window.sum_us = minus(sum_us, earlier.sum_us);
  window.count = minus(count, earlier.count);
  return window;
}

std::optional<double> latency_quantile(const LatencySnapshot& latency, double q) noexcept {
  uint64_t total = 0;
  for (uint64_t count : latency.buckets) total += count;
  if (total == 0) return std::nullopt;
  const double rank = q * static_cast<double>(total);
  uint64_t below = 0;
  for (size_t i = 0; i < kLatencyBuckets; ++i) {
    const uint64_t here = latency.buckets[i];
    if (here == 0 || static_cast<double>(below + here) < rank) {
      below += here;
      continue;
    }
    if (i == kLatencyBoundsUs.size()) return seconds_of_us(kLatencyBoundsUs.back());
    const double lower = i == 0 ? 0.0 : static_cast<double>(kLatencyBoundsUs[i - 1]);
    const double upper = static_cast<double>(kLatencyBoundsUs[i]);
    const double fraction = (rank - static_cast<double>(below)) / static_cast<double>(here);
    return (lower + (upper - lower) * fraction) / 1e6;
  }
  return seconds_of_us(kLatencyBoundsUs.back());
}

void StatusCodeSnapshot::add(const StatusCodeSnapshot& other) noexcept {
  for (size_t i = 0; i < kStatusCodeBuckets; ++i) buckets[i] += other.buckets[i];
}

void IoSnapshot::add(const IoSnapshot& other) noexcept {
  accepts += other.accepts;
  reads += other.reads;
  writes += other.writes;
  sendfiles += other.sendfiles;
  waits += other.waits;
  empty_waits += other.empty_waits;
  events += other.events;
  submits += other.submits;
  sqes += other.sqes;
  syscalls += other.syscalls;
  bytes_in += other.bytes_in;
  reading += other.reading;
  writing += other.writing;
  idle += other.idle;
  in_app += other.in_app;
}

uint64_t Snapshot::total_requests() const noexcept {
  uint64_t total = retired_requests;
  for (const auto& worker : workers) total += worker.requests;
  return total;
}

uint64_t Snapshot::total_connections() const noexcept {
  uint64_t total = retired_connections;
  for (const auto& worker : workers) total += worker.connections;
  return total;
}

LatencySnapshot Snapshot::total_latency() const noexcept {
  LatencySnapshot total = retired_latency;
  for (const auto& worker : workers) total.add(worker.latency);
  return total;
}

StatusCodeSnapshot Snapshot::total_status_codes() const noexcept {
  StatusCodeSnapshot total = retired_status_codes;
  for (const auto& worker : workers) total.add(worker.status_codes);
  return total;
}

Snapshot take_snapshot(const Scoreboard& scoreboard, int64_t now_ms, int64_t monotonic_now_ms) {
  Snapshot snapshot;
  snapshot.now_ms = now_ms;
  snapshot.monotonic_ms = monotonic_now_ms;
  const ScoreboardHeader& header = scoreboard.header();
  snapshot.master_pid = header.master_pid.load(relaxed);
  snapshot.upgraded_master_pid = header.upgraded_master_pid.load(relaxed);
  snapshot.started_ms = header.started_ms.load(relaxed);
  snapshot.target_workers = header.target_workers.load(relaxed);
  for (size_t i = 0; i < kRestartReasons; ++i)
    snapshot.restarts[i] = header.restarts[i].load(relaxed);
  snapshot.retired_requests = header.retired_requests.load(relaxed);
  snapshot.retired_connections = header.retired_connections.load(relaxed);
  snapshot.retired_latency = copy(header.retired_latency);
  snapshot.retired_status_codes = copy(header.retired_status_codes);

  // The restart ring, read as the seqlock in scoreboard.hpp says.
  constexpr uint64_t ring = ScoreboardHeader::kRecentRestarts;
  const uint64_t recorded = header.recorded.load(std::memory_order_acquire);
  const uint64_t first = recorded > ring ? recorded - ring : 0;
  std::vector<RestartSnapshot> events;
  for (uint64_t n = first; n < recorded; ++n) {
    const RestartEvent& event = header.recent[n % ring];
    events.push_back(
        {event.time_ms.load(relaxed), event.pid.load(relaxed), event.reason.load(relaxed)});
  }
  std::atomic_thread_fence(std::memory_order_acquire);
  const uint64_t recording = header.recording.load(relaxed);
  for (uint64_t n = first; n < recorded; ++n)
    if (n + ring >= recording) snapshot.recent_restarts.push_back(events[n - first]);

  for (const ScoreboardSlot& slot : scoreboard.slots()) {
    const WorkerState state = slot.state.load();
    const pid_t pid = slot.pid.load(relaxed);
    if (state == WorkerState::Free || pid == 0) continue;
    WorkerSnapshot worker;
    worker.pid = pid;
    std::array<char, kWorkerClassLength + 1> name{};
    worker.worker_class = std::string(slot.worker_class_name(name));
    worker.state = state;
    worker.started_ms = slot.started_ms.load(relaxed);
    worker.heartbeat_age_ms =
        std::max<int64_t>(0, monotonic_now_ms - slot.heartbeat_ms.load(relaxed));
    worker.requests = slot.requests.load(relaxed);
    worker.connections = slot.connections.load(relaxed);
    worker.body_bytes_out = slot.body_bytes_out.load(relaxed);
    worker.io = copy(slot.io);
    worker.latency = copy(slot.latency);
    worker.status_codes = copy(slot.status_codes);
    worker.process = copy(slot.process);
    snapshot.workers.push_back(std::move(worker));
  }
  std::stable_sort(snapshot.workers.begin(), snapshot.workers.end(),
                   [](const auto& a, const auto& b) { return a.started_ms < b.started_ms; });
  return snapshot;
}

Ratios ratios(uint64_t requests, const IoSnapshot& io, const ProcessSnapshot& process) noexcept {
  const uint64_t wakeups = io.waits >= io.empty_waits ? io.waits - io.empty_waits : 0;
  Ratios out;
  out.syscalls_per_request = ratio(io.syscalls, requests);
  out.requests_per_wakeup = ratio(requests, wakeups);
  out.events_per_wakeup = ratio(io.events, wakeups);
  out.completions_per_submit = ratio(io.events, io.submits);
  out.switches_per_request =
      ratio(process.voluntary_switches + process.involuntary_switches, requests);
  return out;
}

// ---- history ----

void StatusHistory::push(Series& series, const Last& last, uint64_t requests,
                         const LatencySnapshot& latency, int64_t now_ms) {
  const int64_t elapsed = now_ms - last.at_ms;
  if (elapsed <= 0) return;
  const uint64_t served = requests >= last.requests ? requests - last.requests : requests;
  series.requests_per_second.push_back(static_cast<double>(served) * 1000.0 /
                                       static_cast<double>(elapsed));
  auto p99 = latency_quantile(latency.since(last.latency), 0.99);
  series.p99_ms.push_back(p99 ? std::optional<double>(milliseconds_of(*p99)) : std::nullopt);
  while (series.requests_per_second.size() > kPoints) series.requests_per_second.pop_front();
  while (series.p99_ms.size() > kPoints) series.p99_ms.pop_front();
}

void StatusHistory::sample(const Snapshot& snapshot) {
  const int64_t now = snapshot.monotonic_ms;
  const uint64_t requests = snapshot.total_requests();
  const LatencySnapshot latency = snapshot.total_latency();
  if (server_last_) push(server_, *server_last_, requests, latency, now);
  if (!server_last_ || now > server_last_->at_ms) server_last_ = Last{now, requests, latency};

  std::map<pid_t, std::pair<Series, Last>> kept;
  for (const auto& worker : snapshot.workers) {
    auto found = workers_.find(worker.pid);
    if (found == workers_.end()) {
      kept.emplace(worker.pid, std::pair{Series{}, Last{now, worker.requests, worker.latency}});
      continue;
    }
    auto& [series, last] = found->second;
    push(series, last, worker.requests, worker.latency, now);
    if (now > last.at_ms) last = Last{now, worker.requests, worker.latency};
    kept.emplace(worker.pid, std::move(found->second));
  }
  workers_ = std::move(kept);  // exited workers' history goes with them
}

const StatusHistory::Series* StatusHistory::worker(pid_t pid) const noexcept {
  auto found = workers_.find(pid);
  return found == workers_.end() ? nullptr : &found->second.first;
}

// ---- renderers ----

std::string_view worker_state_name(WorkerState state) noexcept {
  switch (state) {
    case WorkerState::Free:
      return "free";
    case WorkerState::Booting:
      return "booting";
    case WorkerState::Ready:
      return "ready";
    case WorkerState::Stopping:
      return "stopping";
  }
  return "unknown";
}

std::string render_metrics(const Snapshot& snapshot) {
  Exposition out;
  using W = const WorkerSnapshot&;

  // Server-wide.
  out.family("qilin_master_start_time_seconds", "gauge",
             "Start time of the master since the Unix epoch.");
  out.sample("qilin_master_start_time_seconds", "", seconds_of_ms(snapshot.started_ms));
  out.family("qilin_workers", "gauge", "Worker processes in the scoreboard.");
  out.sample("qilin_workers", "", snapshot.workers.size());
  out.family("qilin_workers_target", "gauge",
             "Workers the master keeps running (workers, TTIN, TTOU).");
  out.sample("qilin_workers_target", "", snapshot.target_workers);
  out.family("qilin_requests_total", "counter",
             "Requests answered since the master started, exited workers included.");
  out.sample("qilin_requests_total", "", snapshot.total_requests());
  out.family("qilin_connections_accepted_total", "counter",
             "Connections accepted since the master started, exited workers included.");
  out.sample("qilin_connections_accepted_total", "", snapshot.total_connections());
  // Server-wide only: per worker it would be a series per worker and code,
  // for what sum() gives anyway; /status.json has it per worker.
  out.family("qilin_requests_by_status_total", "counter",
             "Requests answered since the master started, exited workers included, by status "
             "code (code=\"other\": a code RFC 9110 does not name).");
  const StatusCodeSnapshot status_codes = snapshot.total_status_codes();
  for (size_t i = 0; i < kStatusCodeBuckets; ++i)
    if (status_codes.buckets[i] > 0)
      out.sample("qilin_requests_by_status_total",
                 fmt::format("code=\"{}\"", status_bucket_name(i)), status_codes.buckets[i]);
  out.family("qilin_worker_restarts_total", "counter",
             "Workers replaced by the master, by reason.");
  for (size_t i = 0; i < kRestartReasons; ++i)
    out.sample("qilin_worker_restarts_total",
               fmt::format("reason=\"{}\"", restart_reason_name(static_cast<RestartReason>(i))),
               snapshot.restarts[i]);
  out.family("qilin_request_duration_seconds", "histogram",
             "From a complete request to its response, all workers since the master started.");
  out.histogram("qilin_request_duration_seconds", "", snapshot.total_latency());

  // Per worker.
  out.family("qilin_worker_info", "gauge", "A worker process: its class and state.");
  for (const auto& worker : snapshot.workers)
    out.sample(
        "qilin_worker_info",
        fmt::format("{},state=\"{}\"", worker_labels(worker), worker_state_name(worker.state)), 1);
  per_worker(
      out, snapshot, "qilin_worker_start_time_seconds", "gauge",
      "Start time of the worker since the Unix epoch.",
      +[](W w) { return seconds_of_ms(w.started_ms); });
  per_worker(
      out, snapshot, "qilin_worker_heartbeat_age_seconds", "gauge",
      "Time since the worker's last heartbeat.",
      +[](W w) { return seconds_of_ms(w.heartbeat_age_ms); });
  per_worker(
      out, snapshot, "qilin_worker_requests_total", "counter", "Requests answered by the worker.",
      +[](W w) { return w.requests; });
  per_worker(
      out, snapshot, "qilin_worker_connections_accepted_total", "counter",
      "Connections accepted by the worker.", +[](W w) { return w.connections; });
  out.family("qilin_worker_open_connections", "gauge", "Open connections by state.");
  for (const auto& worker : snapshot.workers) {
    const std::string labels = worker_labels(worker);
    out.sample("qilin_worker_open_connections", labels + ",state=\"reading\"", worker.io.reading);
    out.sample("qilin_worker_open_connections", labels + ",state=\"writing\"", worker.io.writing);
    out.sample("qilin_worker_open_connections", labels + ",state=\"idle\"", worker.io.idle);
    out.sample("qilin_worker_open_connections", labels + ",state=\"app\"", worker.io.in_app);
  }
  per_worker(
      out, snapshot, "qilin_worker_received_bytes_total", "counter",
      "Bytes received from clients, request heads included.", +[](W w) { return w.io.bytes_in; });
  per_worker(
      out, snapshot, "qilin_worker_response_body_bytes_total", "counter",
      "Response body bytes, files included, streamed bodies not.",
      +[](W w) { return w.body_bytes_out; });
  out.family("qilin_worker_io_operations_total", "counter",
             "Accepts, reads, writes and sendfiles: syscalls, or completions under io_uring.");
  for (const auto& worker : snapshot.workers) {
    const std::string labels = worker_labels(worker);
    out.sample("qilin_worker_io_operations_total", labels + ",op=\"accept\"", worker.io.accepts);
    out.sample("qilin_worker_io_operations_total", labels + ",op=\"read\"", worker.io.reads);
    out.sample("qilin_worker_io_operations_total", labels + ",op=\"write\"", worker.io.writes);
    out.sample("qilin_worker_io_operations_total", labels + ",op=\"sendfile\"",
               worker.io.sendfiles);
  }
  per_worker(
      out, snapshot, "qilin_worker_poller_waits_total", "counter",
      "Poller waits: poll, epoll_wait, io_uring_enter that waited.",
      +[](W w) { return w.io.waits; });
  per_worker(
      out, snapshot, "qilin_worker_poller_empty_waits_total", "counter",
      "Poller waits that returned nothing (timeout or signal).",
      +[](W w) { return w.io.empty_waits; });
  per_worker(
      out, snapshot, "qilin_worker_poller_events_total", "counter",
      "Ready descriptors or completions the poller waits returned.",
      +[](W w) { return w.io.events; });
  per_worker(
      out, snapshot, "qilin_worker_uring_submits_total", "counter",
      "io_uring_enter calls that submitted entries.", +[](W w) { return w.io.submits; });
  per_worker(
      out, snapshot, "qilin_worker_uring_sqes_total", "counter", "io_uring entries submitted.",
      +[](W w) { return w.io.sqes; });
  per_worker(
      out, snapshot, "qilin_worker_syscalls_total", "counter", "Syscalls made on the IO path.",
      +[](W w) { return w.io.syscalls; });
  out.family("qilin_worker_context_switches_total", "counter",
             "Context switches of the worker process (getrusage).");
  for (const auto& worker : snapshot.workers) {
    const std::string labels = worker_labels(worker);
    out.sample("qilin_worker_context_switches_total", labels + ",kind=\"voluntary\"",
               worker.process.voluntary_switches);
    out.sample("qilin_worker_context_switches_total", labels + ",kind=\"involuntary\"",
               worker.process.involuntary_switches);
  }
  out.family("qilin_worker_cpu_seconds_total", "counter", "CPU time of the worker process.");
  for (const auto& worker : snapshot.workers) {
    const std::string labels = worker_labels(worker);
    out.sample("qilin_worker_cpu_seconds_total", labels + ",mode=\"user\"",
               seconds_of_us(worker.process.user_cpu_us));
    out.sample("qilin_worker_cpu_seconds_total", labels + ",mode=\"system\"",
               seconds_of_us(worker.process.system_cpu_us));
  }
  per_worker(
      out, snapshot, "qilin_worker_threads", "gauge", "Threads in the worker process.",
      +[](W w) { return w.process.threads; });
  per_worker(
      out, snapshot, "qilin_worker_resident_memory_bytes", "gauge",
      "Resident memory of the worker process.", +[](W w) { return w.process.rss_bytes; });
  out.family("qilin_worker_request_duration_seconds", "histogram",
             "From a complete request to its response, per worker.");
  for (const auto& worker : snapshot.workers)
    out.histogram("qilin_worker_request_duration_seconds", worker_labels(worker), worker.latency);
  return out.take();
}

nlohmann::json status_json(const Snapshot& snapshot, const StatusHistory& history) {
  IoSnapshot io;
  ProcessSnapshot process;
  uint64_t live_requests = 0;
  nlohmann::json workers = nlohmann::json::array();
  for (const auto& worker : snapshot.workers) {
    io.add(worker.io);
    process.voluntary_switches += worker.process.voluntary_switches;
    process.involuntary_switches += worker.process.involuntary_switches;
    live_requests += worker.requests;
    const auto* series = history.worker(worker.pid);
    workers.push_back({
        {"pid", worker.pid},
        {"class", worker.worker_class},
        {"state", worker_state_name(worker.state)},
        {"started", seconds_of_ms(worker.started_ms)},
        {"age_seconds", seconds_of_ms(std::max<int64_t>(0, snapshot.now_ms - worker.started_ms))},
        {"heartbeat_age_seconds", seconds_of_ms(worker.heartbeat_age_ms)},
        {"requests", worker.requests},
        {"requests_per_second", last_rps(series)},
        {"connections_accepted", worker.connections},
        {"open_connections", open_json(worker.io)},
        {"bytes_received", worker.io.bytes_in},
        {"response_body_bytes", worker.body_bytes_out},
        {"io", io_json(worker.io)},
        {"latency", latency_json(worker.latency)},
        {"status_codes", status_codes_json(worker.status_codes)},
        {"process", process_json(worker.process)},
        {"ratios", ratios_json(ratios(worker.requests, worker.io, worker.process))},
        {"history", series_json(series)},
    });
  }
  nlohmann::json restart_totals = nlohmann::json::object();
  for (size_t i = 0; i < kRestartReasons; ++i)
    restart_totals[std::string(restart_reason_name(static_cast<RestartReason>(i)))] =
        snapshot.restarts[i];
  nlohmann::json recent = nlohmann::json::array();
  for (const auto& event : snapshot.recent_restarts)
    recent.push_back({{"time", seconds_of_ms(event.time_ms)},
                      {"pid", event.pid},
                      {"reason", restart_reason_name(event.reason)}});

  return {
      {"now", seconds_of_ms(snapshot.now_ms)},
      {"server",
       {{"master_pid", snapshot.master_pid},
        {"upgraded_master_pid", snapshot.upgraded_master_pid != 0
                                    ? nlohmann::json(snapshot.upgraded_master_pid)
                                    : nullptr},
        {"started", seconds_of_ms(snapshot.started_ms)},
        {"uptime_seconds",
         seconds_of_ms(std::max<int64_t>(0, snapshot.now_ms - snapshot.started_ms))},
        {"target_workers", snapshot.target_workers},
        {"workers", snapshot.workers.size()},
        {"requests", snapshot.total_requests()},
        {"requests_per_second", last_rps(&history.server())},
        {"connections_accepted", snapshot.total_connections()},
        {"latency", latency_json(snapshot.total_latency())},
        {"status_codes", status_codes_json(snapshot.total_status_codes())},
        // Over the live workers: the IO counters of exited ones are not kept.
        {"open_connections", open_json(io)},
        {"io", io_json(io)},
        {"ratios", ratios_json(ratios(live_requests, io, process))}}},
      {"restarts", {{"total", std::move(restart_totals)}, {"recent", std::move(recent)}}},
      {"history", series_json(&history.server())},
      {"workers", std::move(workers)},
  };
}

std::string render_status_json(const Snapshot& snapshot, const StatusHistory& history) {
  return status_json(snapshot, history).dump() + "\n";
}

http::Response status_response(const http::Request& request, const Snapshot& snapshot,
                               const StatusHistory& history) {
  if (request.method != "GET" && request.method != "HEAD") {
    http::Response refused(405, "only GET and HEAD here\n");
    refused.set("Allow", "GET, HEAD");
    return refused;
  }
  const std::string_view path = request.path();
  http::Response response;
  if (path == "/metrics")
    response =
        http::Response(200, render_metrics(snapshot), "text/plain; version=0.0.4; charset=utf-8");
  else if (path == "/status.json")
    response = http::Response(200, render_status_json(snapshot, history), "application/json");
  else if (path == "/")
    response = http::Response(200, std::string(status_page_html()), "text/html; charset=utf-8");
  else
    return http::Response(404, "not found: try /, /status.json or /metrics\n");
  response.set("Cache-Control", "no-store");
  return response;
}

std::string render_status_table(const nlohmann::json& status) {
  std::string out;
  auto line = [&](auto... cells) {
    fmt::format_to(std::back_inserter(out),
                   "{:>8} {:<9} {:<8} {:>7} {:>9} {:>8} {:>5} {:>8} {:>8} {:>9} {:>8}\n", cells...);
  };
  line("PID", "CLASS", "STATE", "AGE", "REQUESTS", "REQ/S", "OPEN", "SYS/REQ", "REQ/WAKE", "CTX-SW",
       "RSS");
  for (const auto& worker : at(status, "workers")) {
    const auto& process = at(worker, "process");
    const auto& age = at(worker, "age_seconds");
    const auto& rss = at(process, "rss_bytes");
    line(cell(at(worker, "pid")), cell(at(worker, "class")), cell(at(worker, "state")),
         age.is_number() ? age_text(age.get<double>()) : "-", cell(at(worker, "requests")),
         cell(at(worker, "requests_per_second")), cell(at(at(worker, "open_connections"), "total")),
         cell(at(at(worker, "ratios"), "syscalls_per_request")),
         cell(at(at(worker, "ratios"), "requests_per_wakeup"), 2),
         cell(at(process, "context_switches")),
         rss.is_number() ? bytes_text(rss.get<double>()) : "-");
  }
  const auto& server = at(status, "server");
  const auto& restarts = at(at(status, "restarts"), "total");
  std::string restart_text;
  if (restarts.is_object())
    for (const auto& [reason, count] : restarts.items())
      restart_text += fmt::format("{}{} {}", restart_text.empty() ? "" : ", ", reason, cell(count));
  fmt::format_to(std::back_inserter(out),
                 "master {}: {} workers, {} requests, {} req/s, p99 {} ms; restarts: {}\n",
                 cell(at(server, "master_pid")), cell(at(server, "workers")),
                 cell(at(server, "requests")), cell(at(server, "requests_per_second")),
                 cell(at(at(server, "latency"), "p99_ms"), 2),
                 restart_text.empty() ? "-" : restart_text);
  return out;
}

}  // namespace qilin::master

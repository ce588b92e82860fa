// StatsD output (statsd_host): gunicorn's metric names, sent over UDP by the
// status process once a second, from the scoreboard it samples anyway. The
// workers do nothing for it: gunicorn sends a datagram per request from the
// worker that served it; here a worker keeps its counters in shared memory as
// before and the status process turns a second's worth into a few datagrams.
//
//   gunicorn.requests               counter   requests answered in the window
//   gunicorn.request.status.<code>  counter   of those, answered <code>; "other"
//                                             for a code RFC 9110 does not name
//   gunicorn.request.duration       timer, ms the window's latency histogram (below)
//   gunicorn.workers                gauge     worker processes in the scoreboard
//
// Not sent: gunicorn.log.* (gunicorn counts its own log lines; here every
// process logs on its own, with nothing shared to count them in).
// Names are gunicorn's exactly, so existing dashboards keep working, behind
// statsd_prefix joined with a dot as gunicorn joins it.
//
// Split like the other renderers: StatsdTally and statsd_lines/statsd_datagrams
// are pure (unit-tested with hand-made snapshots); StatsdClient does the IO.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "master/status_render.hpp"
#include "sys/fd.hpp"

namespace qilin::master {

// The usual safe UDP payload: a 1500-byte Ethernet MTU less IP and UDP
// headers with room for options and tunnels; what StatsD clients use.
inline constexpr size_t kStatsdDatagramBytes = 1432;
// Timer lines per window at most (see statsd_lines).
inline constexpr uint64_t kStatsdTimerSamples = 100;

// gunicorn's rule: trailing dots dropped, one dot added ("app" and "app." are
// "app."); empty stays empty.
std::string statsd_prefix(std::string_view configured);

// What happened since the previous report.
struct StatsdWindow {
  uint64_t requests = 0;
  size_t workers = 0;
  bool superseded = false;            // a USR2 successor runs and reports the workers gauge
  LatencySnapshot latency;            // per bucket, this window only
  StatusCodeSnapshot status_codes{};  // {}: a designated initializer may leave it out
};

// Turns server totals into windows. Totals only grow, but a reader can see a
// retiring worker's counts twice for a moment (its slot and the retired
// totals), so each total is followed by its high-water mark: a total below
// the mark adds nothing until it passes the mark again, and nothing is
// counted twice.
class StatsdTally {
 public:
  // count_from_start: the first window holds everything since the master
  // started (the first status process); otherwise the first snapshot is the
  // baseline (a respawned one must not send again what its predecessor sent).
  explicit StatsdTally(bool count_from_start);
  StatsdWindow next(const Snapshot& snapshot);

 private:
  struct Marks {
    uint64_t requests = 0;
    LatencySnapshot latency;
    StatusCodeSnapshot status_codes;
  };
  std::optional<Marks> marks_;
};

// One window as StatsD lines, "NAME:VALUE|TYPE[|@RATE]", `prefix` already
// normalized. Counters are left out when 0 (StatsD reads absence as 0), so a
// status code appears only in windows that answered it; the gauge is always
// sent.
//
// The duration: StatsD aggregates timer samples itself (mean, percentiles,
// count), so the histogram goes out as samples, each bucket's count of its
// representative value (the bucket's midpoint; the last bound for +Inf).
// A busy second would be thousands of identical lines, so all buckets are
// sampled at one common rate r = min(1, kStatsdTimerSamples / count): bucket
// i sends k = max(1, round(n × r)) lines, each tagged @k/n when k < n. The
// server adds 1/rate per line to the count, so counts stay exact; its list
// of values keeps the buckets in proportion (a rare slow bucket keeps at
// least one line), so percentiles stay right to the bucket's resolution.
std::vector<std::string> statsd_lines(const StatsdWindow& window, std::string_view prefix);

// Lines joined by '\n' into payloads of at most `limit` bytes (a longer line
// goes alone).
std::vector<std::string> statsd_datagrams(const std::vector<std::string>& lines,
                                          size_t limit = kStatsdDatagramBytes);

struct StatsdSettings {
  bool ipv6 = false;
  std::string host;  // a numeric literal (config::parse_statsd_host)
  uint16_t port = 0;
  std::string prefix;  // as configured
  bool count_from_start = true;
};

// A connected UDP socket: the destination is resolved once, and a refusal
// (ICMP port unreachable, nothing listening) comes back as ECONNREFUSED on
// a later send, a debug line. Nothing is retried: the next window follows a
// second later.
class StatsdClient {
 public:
  // Throws SysError when no socket can be made.
  explicit StatsdClient(const StatsdSettings& settings);
  void report(const Snapshot& snapshot);

 private:
  bool connect_once();
  void log_failure(const char* syscall, int err);

  StatsdSettings settings_;
  std::string prefix_;
  std::string name_;  // "host:port" for messages
  sys::Fd socket_;
  bool connected_ = false;
  int last_error_ = 0;  // a new error is a warning, the same one again a debug line
  StatsdTally tally_;
};

}  // namespace qilin::master

// StatsD output (see statsd.hpp): windows from the scoreboard's totals, the
// lines and datagrams they become, and the UDP socket that sends them.
#include "master/statsd.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <iterator>
#include <utility>

#include "sys/error.hpp"
#include "sys/socket.hpp"

namespace qilin::master {

namespace {

// What a total added since its high-water mark; the mark follows it up.
uint64_t advance(uint64_t& mark, uint64_t total) noexcept {
  if (total <= mark) return 0;
  return total - std::exchange(mark, total);
}

// Bucket i's representative latency in milliseconds: the midpoint of its
// bounds, or the largest finite bound for the +Inf bucket.
double bucket_value_ms(size_t bucket) noexcept {
  if (bucket >= kLatencyBoundsUs.size()) return static_cast<double>(kLatencyBoundsUs.back()) / 1e3;
  const uint64_t lower = bucket == 0 ? 0 : kLatencyBoundsUs[bucket - 1];
  return static_cast<double>(lower + kLatencyBoundsUs[bucket]) / 2e3;
}

}  // namespace

std::string statsd_prefix(std::string_view configured) {
  while (configured.ends_with('.')) configured.remove_suffix(1);
  if (configured.empty()) return {};
  return std::string(configured) + ".";
}

StatsdTally::StatsdTally(bool count_from_start) {
  if (count_from_start) marks_.emplace();
}

StatsdWindow StatsdTally::next(const Snapshot& snapshot) {
  const uint64_t requests = snapshot.total_requests();
  const LatencySnapshot latency = snapshot.total_latency();
  const StatusCodeSnapshot status_codes = snapshot.total_status_codes();
  StatsdWindow window;
  window.workers = snapshot.workers.size();
  window.superseded = snapshot.upgraded_master_pid != 0;
  if (!marks_) {
    marks_ = Marks{requests, latency, status_codes};
    return window;
  }
  window.requests = advance(marks_->requests, requests);
  for (size_t i = 0; i < kLatencyBuckets; ++i) {
    window.latency.buckets[i] = advance(marks_->latency.buckets[i], latency.buckets[i]);
    window.latency.count += window.latency.buckets[i];
  }
  window.latency.sum_us = advance(marks_->latency.sum_us, latency.sum_us);
  for (size_t i = 0; i < kStatusCodeBuckets; ++i)
    window.status_codes.buckets[i] =
        advance(marks_->status_codes.buckets[i], status_codes.buckets[i]);
  return window;
}

std::vector<std::string> statsd_lines(const StatsdWindow& window, std::string_view prefix) {
  std::vector<std::string> lines;
  if (window.requests > 0)
    lines.push_back(fmt::format("{}gunicorn.requests:{}|c", prefix, window.requests));
  for (size_t i = 0; i < kStatusCodeBuckets; ++i)
    if (const uint64_t n = window.status_codes.buckets[i]; n > 0)
      lines.push_back(
          fmt::format("{}gunicorn.request.status.{}:{}|c", prefix, status_bucket_name(i), n));

  uint64_t count = 0;
  for (uint64_t n : window.latency.buckets) count += n;
  const double rate = count > kStatsdTimerSamples
                          ? static_cast<double>(kStatsdTimerSamples) / static_cast<double>(count)
                          : 1.0;
  for (size_t i = 0; i < kLatencyBuckets; ++i) {
    const uint64_t n = window.latency.buckets[i];
    if (n == 0) continue;
    const auto k =
        std::max<uint64_t>(1, static_cast<uint64_t>(std::llround(static_cast<double>(n) * rate)));
    std::string line = fmt::format("{}gunicorn.request.duration:{}|ms", prefix, bucket_value_ms(i));
    if (k < n) line += fmt::format("|@{:.6g}", static_cast<double>(k) / static_cast<double>(n));
    std::fill_n(std::back_inserter(lines), k, line);
  }

  // Counters from both masters of an upgrade add up; a gauge from both
  // would flip between their two values: only the newer one sends it.
  if (!window.superseded)
    lines.push_back(fmt::format("{}gunicorn.workers:{}|g", prefix, window.workers));
  return lines;
}

std::vector<std::string> statsd_datagrams(const std::vector<std::string>& lines, size_t limit) {
  std::vector<std::string> datagrams;
  for (const std::string& line : lines) {
    if (!datagrams.empty() && datagrams.back().size() + 1 + line.size() <= limit) {
      datagrams.back() += '\n';
      datagrams.back() += line;
    } else {
      datagrams.push_back(line);
    }
  }
  return datagrams;
}

StatsdClient::StatsdClient(const StatsdSettings& settings)
    : settings_(settings),
      prefix_(statsd_prefix(settings.prefix)),
      name_(settings.ipv6 ? fmt::format("[{}]:{}", settings.host, settings.port)
                          : fmt::format("{}:{}", settings.host, settings.port)),
      socket_(::socket(settings.ipv6 ? AF_INET6 : AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)),
      tally_(settings.count_from_start) {
  if (!socket_) throw sys::SysError("socket", errno);
  spdlog::info("StatsD: sending to {} once a second", name_);
  connect_once();
}

void StatsdClient::report(const Snapshot& snapshot) {
  // The window is taken even when it cannot be sent: what a lost second
  // counted is dropped, not piled onto the next one.
  const StatsdWindow window = tally_.next(snapshot);
  if (!connected_ && !connect_once()) return;
  for (const std::string& datagram : statsd_datagrams(statsd_lines(window, prefix_))) {
    if (::send(socket_.get(), datagram.data(), datagram.size(), MSG_DONTWAIT) < 0) {
      const int err = errno;
      log_failure("send", err);
      // A refusal is reported once per ICMP message: the rest may go through.
      if (err != ECONNREFUSED) return;
    } else {
      last_error_ = 0;
    }
  }
}

// A UDP connect sends nothing: it fixes the destination and the route.
bool StatsdClient::connect_once() {
  sockaddr_storage address{};
  const socklen_t length = sys::inet_address(settings_.ipv6 ? sys::Family::Tcp6 : sys::Family::Tcp4,
                                             settings_.host, settings_.port, address);
  connected_ = ::connect(socket_.get(), reinterpret_cast<const sockaddr*>(&address), length) == 0;
  if (!connected_) log_failure("connect", errno);
  return connected_;
}

// Never an error loop: nothing listening (ECONNREFUSED) and a full socket
// buffer are debug lines; another error is a warning the first time it
// appears and a debug line while it persists.
void StatsdClient::log_failure(const char* syscall, int err) {
  const bool routine = err == ECONNREFUSED || err == EAGAIN || err == ENOBUFS;
  if (routine || err == last_error_)
    spdlog::debug("StatsD {}: {}", name_, sys::describe(syscall, err));
  else
    spdlog::warn("StatsD {}: {}", name_, sys::describe(syscall, err));
  last_error_ = err;
}

}  // namespace qilin::master

// StatsD output without IO (master/statsd.hpp): snapshots built by hand in,
// windows, lines and datagrams out, checked the way a StatsD server reads
// them (a timer line with @RATE counts 1/RATE samples).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "master/statsd.hpp"

namespace qilin::master {
namespace {

using ::testing::ElementsAre;
using ::testing::SizeIs;

Snapshot snapshot_of(uint64_t requests, size_t workers, const LatencySnapshot& latency = {}) {
  Snapshot snapshot;
  snapshot.retired_requests = requests;
  snapshot.retired_latency = latency;
  snapshot.workers.resize(workers);
  return snapshot;
}

StatusCodeSnapshot status_codes_of(std::map<int, uint64_t> counts) {
  StatusCodeSnapshot status_codes;
  for (auto [status, n] : counts) status_codes.buckets[status_bucket(status)] = n;
  return status_codes;
}

LatencySnapshot latency_of(std::map<size_t, uint64_t> buckets) {
  LatencySnapshot latency;
  for (auto [bucket, n] : buckets) {
    latency.buckets[bucket] = n;
    latency.count += n;
  }
  return latency;
}

// What a StatsD server makes of timer lines: per value, the samples it
// counts (the sum of 1/rate) and the lines it keeps for percentiles.
struct TimerTally {
  std::map<std::string, double> counted;
  std::map<std::string, int> kept;
};
TimerTally tally_timers(const std::vector<std::string>& lines, std::string_view name) {
  TimerTally tally;
  for (const std::string& line : lines) {
    if (!line.starts_with(name) || line[name.size()] != ':') continue;
    const size_t value_end = line.find("|ms");
    EXPECT_NE(value_end, std::string::npos) << line;
    const std::string value = line.substr(name.size() + 1, value_end - name.size() - 1);
    double rate = 1;
    if (const size_t at = line.find("|@"); at != std::string::npos)
      rate = std::stod(line.substr(at + 2));
    tally.counted[value] += 1 / rate;
    ++tally.kept[value];
  }
  return tally;
}

TEST(StatsdPrefix, JoinedWithOneDotAsGunicornDoes) {
  EXPECT_EQ(statsd_prefix(""), "");
  EXPECT_EQ(statsd_prefix("app"), "app.");
  EXPECT_EQ(statsd_prefix("app."), "app.");
  EXPECT_EQ(statsd_prefix("app..."), "app.");
  EXPECT_EQ(statsd_prefix("a.b"), "a.b.");
  EXPECT_EQ(statsd_prefix("."), "");
}

TEST(StatsdLines, GunicornNamesAndTypes) {
  StatsdWindow window{.requests = 3, .workers = 2, .latency = latency_of({{4, 2}, {16, 1}})};
  EXPECT_THAT(
      statsd_lines(window, "web."),
      ElementsAre("web.gunicorn.requests:3|c",
                  // (1 ms + 2.5 ms) / 2, twice
                  "web.gunicorn.request.duration:1.75|ms", "web.gunicorn.request.duration:1.75|ms",
                  // +Inf: the largest finite bound
                  "web.gunicorn.request.duration:10000|ms", "web.gunicorn.workers:2|g"));
}

TEST(StatsdLines, AQuietWindowIsTheGaugeAlone) {
  EXPECT_THAT(statsd_lines(StatsdWindow{.workers = 4, .latency = {}}, ""),
              ElementsAre("gunicorn.workers:4|g"));
}

// During a USR2 upgrade both masters send: their counters add up, but two
// gauges would take turns, so the old master leaves the gauge to the new one.
TEST(StatsdLines, ASupersededMasterLeavesTheGaugeToItsSuccessor) {
  StatsdWindow window{.requests = 3, .workers = 2, .superseded = true, .latency = {}};
  EXPECT_THAT(statsd_lines(window, ""), ElementsAre("gunicorn.requests:3|c"));
}

TEST(StatsdLines, OneCounterPerStatusCodeAnsweredInTheWindow) {
  StatsdWindow window{.requests = 6,
                      .workers = 1,
                      .latency = {},
                      .status_codes = status_codes_of({{200, 3}, {404, 2}, {700, 1}})};
  EXPECT_THAT(statsd_lines(window, "web."),
              ElementsAre("web.gunicorn.requests:6|c", "web.gunicorn.request.status.200:3|c",
                          "web.gunicorn.request.status.404:2|c",
                          "web.gunicorn.request.status.other:1|c", "web.gunicorn.workers:1|g"));
}

TEST(StatsdLines, BucketMidpoints) {
  LatencySnapshot latency;
  for (size_t i = 0; i < kLatencyBuckets; ++i) latency.buckets[i] = 1;
  auto tally = tally_timers(statsd_lines({.requests = 0, .workers = 0, .latency = latency}, ""),
                            "gunicorn.request.duration");
  EXPECT_EQ(tally.kept.size(), kLatencyBuckets);
  EXPECT_EQ(tally.kept.count("0.05"), 1u);   // [0, 100 µs]
  EXPECT_EQ(tally.kept.count("0.175"), 1u);  // [100, 250 µs]
  EXPECT_EQ(tally.kept.count("7500"), 1u);   // [5 s, 10 s]
}

TEST(StatsdLines, BusyWindowIsSampledWithExactCounts) {
  // 10 000 fast requests and 30 slow ones: about kStatsdTimerSamples lines,
  // and a StatsD server still counts every request.
  StatsdWindow window{
      .requests = 10'030, .workers = 1, .latency = latency_of({{0, 9'000}, {2, 1'000}, {9, 30}})};
  const auto lines = statsd_lines(window, "");
  auto tally = tally_timers(lines, "gunicorn.request.duration");
  EXPECT_NEAR(tally.counted["0.05"], 9'000, 0.1);
  EXPECT_NEAR(tally.counted["0.375"], 1'000, 0.1);
  EXPECT_NEAR(tally.counted["75"], 30, 0.01);
  // Kept in proportion, so percentiles hold; the slow bucket keeps a line.
  EXPECT_EQ(tally.kept["0.05"], 90);
  EXPECT_EQ(tally.kept["0.375"], 10);
  EXPECT_EQ(tally.kept["75"], 1);
  EXPECT_LE(lines.size(), kStatsdTimerSamples + kLatencyBuckets + 2);
}

TEST(StatsdTally, WindowsAreDeltasFromTheStart) {
  StatsdTally tally(/*count_from_start=*/true);
  StatsdWindow first = tally.next(snapshot_of(5, 2, latency_of({{1, 5}})));
  EXPECT_EQ(first.requests, 5u);
  EXPECT_EQ(first.workers, 2u);
  EXPECT_EQ(first.latency.buckets[1], 5u);
  EXPECT_EQ(first.latency.count, 5u);
  StatsdWindow second = tally.next(snapshot_of(12, 3, latency_of({{1, 6}, {4, 6}})));
  EXPECT_EQ(second.requests, 7u);
  EXPECT_EQ(second.workers, 3u);
  EXPECT_EQ(second.latency.buckets[1], 1u);
  EXPECT_EQ(second.latency.buckets[4], 6u);
  EXPECT_EQ(second.latency.count, 7u);
}

TEST(StatsdTally, AWindowIsSupersededWhileAnUpgradedMasterRuns) {
  StatsdTally tally(true);
  Snapshot snapshot = snapshot_of(1, 1);
  EXPECT_FALSE(tally.next(snapshot).superseded);
  snapshot.upgraded_master_pid = 4711;
  EXPECT_TRUE(tally.next(snapshot).superseded);
  snapshot.upgraded_master_pid = 0;  // the upgrade rolled back
  EXPECT_FALSE(tally.next(snapshot).superseded);
}

TEST(StatsdTally, ARespawnedProcessStartsFromItsFirstSnapshot) {
  StatsdTally tally(/*count_from_start=*/false);
  EXPECT_EQ(tally.next(snapshot_of(1'000, 1)).requests, 0u);
  EXPECT_EQ(tally.next(snapshot_of(1'004, 1)).requests, 4u);
}

TEST(StatsdTally, ATotalSeenTooHighIsNotCountedTwice) {
  // A retiring worker's 10 requests read twice (slot and retired totals),
  // then once: 110, 100, 105, 115 add up to 115, never more.
  StatsdTally tally(true);
  uint64_t sent = 0;
  for (uint64_t total : {110, 100, 105, 115}) sent += tally.next(snapshot_of(total, 1)).requests;
  EXPECT_EQ(sent, 115u);
}

TEST(StatsdTally, StatusCodeWindowsAreDeltasAndUnchangedCodesAreNotSent) {
  StatsdTally tally(/*count_from_start=*/true);
  Snapshot first = snapshot_of(4, 1);
  first.retired_status_codes = status_codes_of({{200, 3}, {404, 1}});
  StatsdWindow one = tally.next(first);
  EXPECT_EQ(one.status_codes.buckets[status_bucket(200)], 3u);
  EXPECT_EQ(one.status_codes.buckets[status_bucket(404)], 1u);

  Snapshot second = snapshot_of(9, 1);
  second.retired_status_codes = status_codes_of({{200, 7}, {404, 1}, {500, 1}});
  StatsdWindow two = tally.next(second);
  EXPECT_EQ(two.status_codes.buckets[status_bucket(200)], 4u);
  EXPECT_EQ(two.status_codes.buckets[status_bucket(404)], 0u);
  EXPECT_EQ(two.status_codes.buckets[status_bucket(500)], 1u);
  EXPECT_THAT(statsd_lines(two, ""),
              ElementsAre("gunicorn.requests:5|c", "gunicorn.request.status.200:4|c",
                          "gunicorn.request.status.500:1|c", "gunicorn.workers:1|g"));
}

TEST(StatsdTally, ARetiredWorkersStatusCodesAreSentOnce) {
  // A worker answers 5 × 200 and exits: its slot's counts move to the retired
  // totals, and for a moment a reader can see them in both places (10). Its
  // replacement then answers 7: the total sent is the 12 answered.
  StatsdTally tally(/*count_from_start=*/true);
  auto with_worker = [](const StatusCodeSnapshot& live, const StatusCodeSnapshot& retired) {
    Snapshot snapshot;
    snapshot.retired_status_codes = retired;
    snapshot.workers.resize(1);
    snapshot.workers[0].status_codes = live;
    return snapshot;
  };
  const auto five = status_codes_of({{200, 5}});
  uint64_t sent = 0;
  for (const Snapshot& snapshot :
       {with_worker(five, {}), with_worker(five, five), with_worker({}, five),
        with_worker(status_codes_of({{200, 7}}), five)})
    sent += tally.next(snapshot).status_codes.buckets[status_bucket(200)];
  EXPECT_EQ(sent, 12u);
}

TEST(StatsdDatagrams, LinesPackedUpToTheLimit) {
  const std::vector<std::string> lines(100, std::string(99, 'x'));  // 100 bytes with '\n'
  const auto datagrams = statsd_datagrams(lines);
  ASSERT_THAT(datagrams, SizeIs(8));  // 14 lines (1399 bytes) fit in 1432, 15 would not
  for (const auto& datagram : datagrams) EXPECT_LE(datagram.size(), kStatsdDatagramBytes);
  EXPECT_EQ(datagrams.front().size(), 14u * 99 + 13);
  size_t lines_seen = 0;
  for (const auto& datagram : datagrams)
    lines_seen += static_cast<size_t>(std::count(datagram.begin(), datagram.end(), '\n')) + 1;
  EXPECT_EQ(lines_seen, lines.size());
  EXPECT_THAT(statsd_datagrams({"a", "b", "c"}, 3), ElementsAre("a\nb", "c"));
  EXPECT_THAT(statsd_datagrams({"long line", "b"}, 3), ElementsAre("long line", "b"));
  EXPECT_THAT(statsd_datagrams({}), SizeIs(0));
}

}  // namespace
}  // namespace qilin::master

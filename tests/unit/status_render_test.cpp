// The status renderers without IO: a scoreboard filled by hand (or a snapshot
// built by hand) in, exposition text, JSON and tables out.
#include "master/status_render.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>

#include "master/scoreboard.hpp"

namespace qilin::master {
namespace {

ScoreboardSlot& fake_worker(Scoreboard& board, pid_t pid, std::string_view worker_class,
                            uint64_t requests) {
  ScoreboardSlot* slot = board.claim(worker_class);
  EXPECT_NE(slot, nullptr);
  slot->pid = pid;
  slot->state = WorkerState::Ready;
  slot->requests = requests;
  return *slot;
}

WorkerSnapshot worker_snapshot(pid_t pid, std::string worker_class, uint64_t requests) {
  WorkerSnapshot worker;
  worker.pid = pid;
  worker.worker_class = std::move(worker_class);
  worker.state = WorkerState::Ready;
  worker.requests = requests;
  return worker;
}

// ---- counters ----

TEST(IoCounters, EachVerbCountsItsSyscall) {
  IoCounters io;
  io.accept();
  io.read(100);
  io.read(-1);  // an error is still a syscall, and no bytes
  io.read(0);
  io.write();
  io.sendfile();
  io.wait(3);
  io.wait(0);
  io.syscall(2);
  EXPECT_EQ(io.accepts, 1u);
  EXPECT_EQ(io.reads, 3u);
  EXPECT_EQ(io.bytes_in, 100u);
  EXPECT_EQ(io.writes, 1u);
  EXPECT_EQ(io.sendfiles, 1u);
  EXPECT_EQ(io.waits, 2u);
  EXPECT_EQ(io.empty_waits, 1u);
  EXPECT_EQ(io.events, 3u);
  EXPECT_EQ(io.syscalls, 10u);
}

TEST(IoCounters, UringCountsEntersAsSyscallsAndCompletionsAsOperations) {
  IoCounters io;
  io.submit_and_wait(8, 5);
  io.submit(2);
  io.completed(ConnOp::Read, 50);
  io.completed(ConnOp::Write, 10);
  io.completed(ConnOp::Accept, 7);
  EXPECT_EQ(io.syscalls, 2u);
  EXPECT_EQ(io.submits, 2u);
  EXPECT_EQ(io.sqes, 10u);
  EXPECT_EQ(io.waits, 1u);
  EXPECT_EQ(io.events, 5u);
  EXPECT_EQ(io.reads, 1u);
  EXPECT_EQ(io.bytes_in, 50u);
  EXPECT_EQ(io.writes, 1u);
  EXPECT_EQ(io.accepts, 1u);
}

TEST(ConnTracker, GaugesFollowTheConnectionAndReturnToZero) {
  IoCounters io;
  {
    ConnTracker first(io);
    EXPECT_EQ(io.reading, 1);
    first.set(ConnState::App);
    EXPECT_EQ(io.reading, 0);
    EXPECT_EQ(io.in_app, 1);
    ConnTracker second(io, ConnState::Idle);
    ConnTracker moved(std::move(second));
    EXPECT_EQ(io.idle, 1);
    moved.set(ConnState::Writing);
    EXPECT_EQ(io.idle, 0);
    EXPECT_EQ(io.writing, 1);
    first = std::move(moved);  // the App connection closes, the Writing one lives on
    EXPECT_EQ(io.in_app, 0);
    EXPECT_EQ(io.writing, 1);
  }
  EXPECT_EQ(io.reading, 0);
  EXPECT_EQ(io.writing, 0);
  EXPECT_EQ(io.idle, 0);
  EXPECT_EQ(io.in_app, 0);
}

TEST(Latency, BoundsAreInclusiveAndTheLastBucketIsInfinite) {
  LatencyHistogram histogram;
  histogram.record(0);
  histogram.record(100);
  histogram.record(101);
  histogram.record(10'000'000);
  histogram.record(10'000'001);
  EXPECT_EQ(histogram.buckets[0], 2u);
  EXPECT_EQ(histogram.buckets[1], 1u);
  EXPECT_EQ(histogram.buckets[kLatencyBuckets - 2], 1u);
  EXPECT_EQ(histogram.buckets[kLatencyBuckets - 1], 1u);
  EXPECT_EQ(histogram.count, 5u);
  EXPECT_EQ(histogram.sum_us, 20'000'202u);
}

TEST(Latency, QuantilesInterpolateInsideTheBucket) {
  LatencySnapshot latency;
  EXPECT_FALSE(latency_quantile(latency, 0.5));
  // 100 requests between 1 ms and 2.5 ms (bucket 4).
  latency.buckets[4] = 100;
  latency.count = 100;
  EXPECT_NEAR(*latency_quantile(latency, 0.5), 0.00175, 1e-9);
  EXPECT_NEAR(*latency_quantile(latency, 0.99), 0.001 + 0.0015 * 0.99, 1e-9);
  // One slow request in +Inf: p99 stays in bucket 4, p999 is reported as 10 s.
  latency.buckets[kLatencyBuckets - 1] = 1;
  EXPECT_LT(*latency_quantile(latency, 0.99), 0.0025);
  EXPECT_DOUBLE_EQ(*latency_quantile(latency, 0.999), 10.0);
}

TEST(Latency, WindowsSubtractAndMerge) {
  LatencySnapshot before, after;
  before.buckets[0] = 5;
  before.count = 5;
  after.buckets[0] = 7;
  after.buckets[3] = 2;
  after.count = 9;
  auto window = after.since(before);
  EXPECT_EQ(window.buckets[0], 2u);
  EXPECT_EQ(window.buckets[3], 2u);
  EXPECT_EQ(window.count, 4u);
  window.add(before);
  EXPECT_EQ(window.buckets[0], 7u);
}

TEST(StatusCodes, OneBucketPerKnownCodeAndOneForAnyOther) {
  EXPECT_EQ(status_bucket(100), 0u);
  EXPECT_EQ(status_bucket(511), kOtherStatusBucket - 1);  // the last code with a name
  // Every known code has a bucket of its own, named by the code.
  for (size_t bucket = 0; bucket < kOtherStatusBucket; ++bucket) {
    const int code = std::stoi(status_bucket_name(bucket));
    EXPECT_EQ(status_bucket(code), bucket) << code;
  }
  EXPECT_EQ(status_bucket(418), kOtherStatusBucket);  // in range, without a name
  EXPECT_EQ(status_bucket(599), kOtherStatusBucket);
  EXPECT_EQ(status_bucket(99), kOtherStatusBucket);
  EXPECT_EQ(status_bucket(600), kOtherStatusBucket);  // http::Session sends it as given
  EXPECT_EQ(status_bucket(0), kOtherStatusBucket);    // http::Session sends 500 instead
  EXPECT_EQ(status_bucket_name(status_bucket(404)), "404");
  EXPECT_EQ(status_bucket_name(kOtherStatusBucket), "other");

  StatusCodeCounters counters;
  for (int status : {200, 200, 404, 999, -1}) counters.record(status);
  EXPECT_EQ(counters.buckets[status_bucket(200)], 2u);
  EXPECT_EQ(counters.buckets[status_bucket(404)], 1u);
  EXPECT_EQ(counters.buckets[kOtherStatusBucket], 2u);
  EXPECT_EQ(counters.buckets[status_bucket(500)], 0u);
}

// ---- the scoreboard as the status process reads it ----

TEST(Snapshot, ReadsLiveSlotsRetiredTotalsAndRestarts) {
  Scoreboard board(8);
  auto& a = fake_worker(board, 101, "sync", 10);
  a.started_ms = 1000;
  a.latency.record(300);
  auto& b = fake_worker(board, 102, "io_uring", 20);
  b.started_ms = 500;
  auto& gone = fake_worker(board, 103, "sync", 7);
  gone.latency.record(50);
  board.release(gone);
  board.record_restart(103, RestartReason::Crash);
  board.header().target_workers = 2;
  board.header().upgraded_master_pid = 4711;

  auto snapshot = take_snapshot(board, 5000, 100);
  ASSERT_EQ(snapshot.workers.size(), 2u);
  EXPECT_EQ(snapshot.workers[0].pid, 102);  // oldest first
  EXPECT_EQ(snapshot.workers[0].worker_class, "io_uring");
  EXPECT_EQ(snapshot.workers[1].worker_class, "sync");
  EXPECT_EQ(snapshot.total_requests(), 37u);
  EXPECT_EQ(snapshot.total_latency().count, 2u);
  EXPECT_EQ(snapshot.target_workers, 2);
  EXPECT_EQ(snapshot.upgraded_master_pid, 4711);
  EXPECT_EQ(snapshot.restarts[static_cast<size_t>(RestartReason::Crash)], 1u);
  ASSERT_EQ(snapshot.recent_restarts.size(), 1u);
  EXPECT_EQ(snapshot.recent_restarts[0].pid, 103);
}

TEST(Snapshot, StatusCodesOfAnExitedWorkerAreKept) {
  Scoreboard board(2);
  auto& gone = fake_worker(board, 201, "sync", 3);
  for (int status : {200, 200, 404}) gone.status_codes.record(status);
  auto& live = fake_worker(board, 202, "sync", 2);
  for (int status : {200, 503}) live.status_codes.record(status);
  const uint64_t before =
      take_snapshot(board, 0, 0).total_status_codes().buckets[status_bucket(200)];
  board.release(gone);
  // Its slot taken again by a new worker: the retired totals keep what it counted.
  auto& replacement = fake_worker(board, 203, "sync", 1);
  EXPECT_EQ(&replacement, &gone);
  EXPECT_EQ(replacement.status_codes.buckets[status_bucket(200)], 0u);
  replacement.status_codes.record(200);

  auto snapshot = take_snapshot(board, 0, 0);
  const auto totals = snapshot.total_status_codes();
  EXPECT_EQ(before, 3u);
  EXPECT_EQ(totals.buckets[status_bucket(200)], 4u);
  EXPECT_EQ(totals.buckets[status_bucket(404)], 1u);
  EXPECT_EQ(totals.buckets[status_bucket(503)], 1u);
  EXPECT_EQ(snapshot.retired_status_codes.buckets[status_bucket(200)], 2u);
  uint64_t all = 0;
  for (uint64_t n : totals.buckets) all += n;
  EXPECT_EQ(all, snapshot.total_requests());
}

TEST(Snapshot, TheRestartRingKeepsTheLatestInOrder) {
  Scoreboard board(2);
  for (pid_t pid = 1; pid <= 40; ++pid) board.record_restart(pid, RestartReason::Timeout);
  auto snapshot = take_snapshot(board, 0, 0);
  ASSERT_EQ(snapshot.recent_restarts.size(), ScoreboardHeader::kRecentRestarts);
  EXPECT_EQ(snapshot.recent_restarts.front().pid,
            40 - static_cast<pid_t>(ScoreboardHeader::kRecentRestarts) + 1);
  EXPECT_EQ(snapshot.recent_restarts.back().pid, 40);
  EXPECT_EQ(snapshot.restarts[static_cast<size_t>(RestartReason::Timeout)], 40u);
}

TEST(Snapshot, AReclaimedSlotStartsFromZero) {
  Scoreboard board(1);
  auto& slot = fake_worker(board, 7, "epoll", 99);
  slot.io.read(10);
  slot.process.threads = 3;
  board.release(slot);
  auto& again = fake_worker(board, 8, "sync", 0);
  EXPECT_EQ(&again, &slot);
  EXPECT_EQ(again.io.reads, 0u);
  EXPECT_EQ(again.process.threads, 0u);
  std::array<char, kWorkerClassLength + 1> name{};
  EXPECT_EQ(again.worker_class_name(name), "sync");
}

TEST(Ratios, NullUntilTheirDenominatorIsCounted) {
  IoSnapshot io;
  ProcessSnapshot process;
  auto none = ratios(0, io, process);
  EXPECT_FALSE(none.syscalls_per_request);
  EXPECT_FALSE(none.requests_per_wakeup);
  EXPECT_FALSE(none.completions_per_submit);
  io.syscalls = 800;
  io.waits = 120;
  io.empty_waits = 20;
  io.events = 150;
  process.voluntary_switches = 150;
  process.involuntary_switches = 50;
  auto some = ratios(100, io, process);
  EXPECT_DOUBLE_EQ(*some.syscalls_per_request, 8.0);
  EXPECT_DOUBLE_EQ(*some.requests_per_wakeup, 1.0);
  EXPECT_DOUBLE_EQ(*some.events_per_wakeup, 1.5);
  EXPECT_DOUBLE_EQ(*some.switches_per_request, 2.0);
  EXPECT_FALSE(some.completions_per_submit);
  io.submits = 50;
  EXPECT_DOUBLE_EQ(*ratios(100, io, process).completions_per_submit, 3.0);
}

TEST(History, RatesAndWindowedP99PerWorkerAndServer) {
  StatusHistory history;
  Snapshot snapshot;
  snapshot.monotonic_ms = 10'000;
  snapshot.workers.push_back(worker_snapshot(1, "sync", 100));
  history.sample(snapshot);
  EXPECT_TRUE(history.server().requests_per_second.empty());

  snapshot.monotonic_ms = 12'000;
  snapshot.workers[0].requests = 300;
  snapshot.workers[0].latency.buckets[2] = 200;  // 250..500 µs
  snapshot.workers.push_back(worker_snapshot(2, "sync", 5));
  history.sample(snapshot);
  ASSERT_EQ(history.server().requests_per_second.size(), 1u);
  EXPECT_DOUBLE_EQ(history.server().requests_per_second.back(),
                   102.5);  // a new worker counts from 0
  const auto* one = history.worker(1);
  ASSERT_NE(one, nullptr);
  EXPECT_DOUBLE_EQ(one->requests_per_second.back(), 100.0);
  ASSERT_TRUE(one->p99_ms.back());
  EXPECT_GT(*one->p99_ms.back(), 0.25);
  EXPECT_LE(*one->p99_ms.back(), 0.5);
  ASSERT_NE(history.worker(2), nullptr);
  EXPECT_TRUE(history.worker(2)->requests_per_second.empty());

  snapshot.workers.erase(snapshot.workers.begin());
  for (int i = 0; i < 100; ++i) {
    snapshot.monotonic_ms += 1000;
    history.sample(snapshot);
  }
  EXPECT_EQ(history.worker(1), nullptr);  // exited
  EXPECT_EQ(history.server().requests_per_second.size(), StatusHistory::kPoints);
  EXPECT_FALSE(history.server().p99_ms.back());  // no request in that second
}

// ---- Prometheus exposition ----

Snapshot loaded_snapshot() {
  Scoreboard board(4);
  auto& a = fake_worker(board, 4242, "sync", 3);
  a.latency.record(80);
  a.latency.record(400);
  a.latency.record(30'000'000);
  for (int status : {200, 200, 404}) a.status_codes.record(status);
  a.io.accept();
  a.io.wait(1);
  auto& b = fake_worker(board, 4343, "epoll", 1);
  b.latency.record(2000);
  b.status_codes.record(200);
  b.io.reading = 2;
  board.record_restart(77, RestartReason::MaxRequests);
  auto snapshot = take_snapshot(board, 1'700'000'000'000, 50'000);
  return snapshot;
}

// One exposition line: `name{label="value",...} number`; the name, or empty
// when the line is malformed.
std::string sample_name(std::string_view line) {
  auto is_name = [](char c) { return (c >= 'a' && c <= 'z') || c == '_'; };
  size_t at = 0;
  while (at < line.size() && is_name(line[at])) ++at;
  std::string name(line.substr(0, at));
  if (name.empty()) return {};
  if (at < line.size() && line[at] == '{') {
    ++at;
    while (true) {
      size_t start = at;
      while (at < line.size() && is_name(line[at])) ++at;
      if (at == start || line.substr(at, 2) != "=\"") return {};
      size_t close = line.find('"', at + 2);
      if (close == std::string_view::npos) return {};
      at = close + 1;
      if (at < line.size() && line[at] == ',') {
        ++at;
        continue;
      }
      if (at >= line.size() || line[at] != '}') return {};
      ++at;
      break;
    }
  }
  if (at >= line.size() || line[at] != ' ') return {};
  std::string value(line.substr(at + 1));
  if (value == "+Inf") return name;
  char* end = nullptr;
  std::strtod(value.c_str(), &end);
  return !value.empty() && *end == '\0' ? name : std::string();
}

TEST(Metrics, EverySampleBelongsToADeclaredFamily) {
  const std::string text = render_metrics(loaded_snapshot());
  std::istringstream lines(text);
  std::string line;
  std::map<std::string, std::string> types;
  std::set<std::string> helped;
  size_t samples = 0;
  while (std::getline(lines, line)) {
    if (line.starts_with("# HELP ")) {
      helped.insert(line.substr(7, line.find(' ', 7) - 7));
    } else if (line.starts_with("# TYPE ")) {
      const std::string family = line.substr(7, line.find(' ', 7) - 7);
      const std::string type = line.substr(8 + family.size());
      EXPECT_TRUE(helped.count(family)) << "TYPE before HELP: " << line;
      EXPECT_FALSE(types.count(family)) << "family declared twice: " << line;
      EXPECT_TRUE(type == "counter" || type == "gauge" || type == "histogram") << line;
      types[family] = type;
    } else {
      const std::string name = sample_name(line);
      ASSERT_FALSE(name.empty()) << "not a sample: " << line;
      std::string family = name;
      for (const char* suffix : {"_bucket", "_sum", "_count"})
        if (!types.count(family) && family.ends_with(suffix))
          family = family.substr(0, family.size() - std::string_view(suffix).size());
      ASSERT_TRUE(types.count(family)) << "sample of an undeclared family: " << line;
      if (types[family] == "counter") {
        EXPECT_TRUE(name.ends_with("_total")) << line;
      }
      ++samples;
    }
  }
  EXPECT_GT(samples, 50u);
  EXPECT_EQ(types["qilin_request_duration_seconds"], "histogram");
  EXPECT_EQ(types["qilin_worker_request_duration_seconds"], "histogram");
}

TEST(Metrics, WorkersAreLabelledAndHistogramsAreCumulative) {
  const std::string text = render_metrics(loaded_snapshot());
  EXPECT_NE(text.find("qilin_worker_requests_total{worker=\"4242\",class=\"sync\"} 3\n"),
            std::string::npos);
  EXPECT_NE(text.find("qilin_worker_requests_total{worker=\"4343\",class=\"epoll\"} 1\n"),
            std::string::npos);
  EXPECT_NE(
      text.find(
          "qilin_worker_open_connections{worker=\"4343\",class=\"epoll\",state=\"reading\"} 2\n"),
      std::string::npos);
  EXPECT_NE(text.find("qilin_worker_restarts_total{reason=\"max_requests\"} 1\n"),
            std::string::npos);
  // Merged: 80 µs, 400 µs, 2 ms, 30 s.
  EXPECT_NE(text.find("qilin_request_duration_seconds_bucket{le=\"0.0001\"} 1\n"),
            std::string::npos);
  EXPECT_NE(text.find("qilin_request_duration_seconds_bucket{le=\"0.0005\"} 2\n"),
            std::string::npos);
  EXPECT_NE(text.find("qilin_request_duration_seconds_bucket{le=\"0.0025\"} 3\n"),
            std::string::npos);
  EXPECT_NE(text.find("qilin_request_duration_seconds_bucket{le=\"10\"} 3\n"), std::string::npos);
  EXPECT_NE(text.find("qilin_request_duration_seconds_bucket{le=\"+Inf\"} 4\n"), std::string::npos);
  EXPECT_NE(text.find("qilin_request_duration_seconds_count 4\n"), std::string::npos);
  EXPECT_NE(text.find("qilin_worker_request_duration_seconds_bucket{worker=\"4242\",class=\"sync\","
                      "le=\"+Inf\"} 3\n"),
            std::string::npos);
}

TEST(Metrics, RequestsByStatusOnlyForCodesAnswered) {
  const std::string text = render_metrics(loaded_snapshot());
  EXPECT_NE(text.find("# TYPE qilin_requests_by_status_total counter\n"), std::string::npos);
  EXPECT_NE(text.find("qilin_requests_by_status_total{code=\"200\"} 3\n"), std::string::npos)
      << text;
  EXPECT_NE(text.find("qilin_requests_by_status_total{code=\"404\"} 1\n"), std::string::npos);
  EXPECT_EQ(text.find("qilin_requests_by_status_total{code=\"500\"}"), std::string::npos);
  EXPECT_EQ(text.find("qilin_requests_by_status_total{code=\"other\"}"), std::string::npos);

  Snapshot quiet;
  const std::string none = render_metrics(quiet);
  EXPECT_NE(none.find("# TYPE qilin_requests_by_status_total counter\n"), std::string::npos);
  EXPECT_EQ(none.find("qilin_requests_by_status_total{"), std::string::npos);

  Snapshot odd;
  odd.retired_status_codes.buckets[status_bucket(799)] = 2;
  EXPECT_NE(render_metrics(odd).find("qilin_requests_by_status_total{code=\"other\"} 2\n"),
            std::string::npos);
}

// ---- JSON, routes, the page and the table ----

TEST(StatusJson, OneObjectPerWorkerWithRatiosAndServerTotals) {
  auto snapshot = loaded_snapshot();
  StatusHistory history;
  history.sample(snapshot);
  auto json = nlohmann::json::parse(render_status_json(snapshot, history));
  ASSERT_EQ(json["workers"].size(), 2u);
  const auto& sync =
      json["workers"][0]["class"] == "sync" ? json["workers"][0] : json["workers"][1];
  EXPECT_EQ(sync["pid"], 4242);
  EXPECT_EQ(sync["requests"], 3);
  EXPECT_EQ(sync["state"], "ready");
  EXPECT_EQ(sync["io"]["accepts"], 1);
  EXPECT_DOUBLE_EQ(sync["ratios"]["syscalls_per_request"].get<double>(), 2.0 / 3.0);
  EXPECT_DOUBLE_EQ(sync["ratios"]["requests_per_wakeup"].get<double>(), 3.0);
  EXPECT_TRUE(sync["ratios"]["completions_per_submit"].is_null());
  EXPECT_EQ(sync["latency"]["count"], 3);
  EXPECT_EQ(json["server"]["requests"], 4);
  EXPECT_EQ(json["server"]["status_codes"], nlohmann::json({{"200", 3}, {"404", 1}}));
  EXPECT_EQ(sync["status_codes"], nlohmann::json({{"200", 2}, {"404", 1}}));
  EXPECT_EQ(json["server"]["workers"], 2);
  EXPECT_EQ(json["server"]["open_connections"]["reading"], 2);
  EXPECT_EQ(json["restarts"]["total"]["max_requests"], 1);
  ASSERT_EQ(json["restarts"]["recent"].size(), 1u);
  EXPECT_EQ(json["restarts"]["recent"][0]["pid"], 77);
  EXPECT_EQ(json["restarts"]["recent"][0]["reason"], "max_requests");
  EXPECT_TRUE(json["history"]["requests_per_second"].is_array());
}

http::Request request(std::string method, std::string target) {
  http::Request r;
  r.method = std::move(method);
  r.target = std::move(target);
  return r;
}

TEST(StatusJson, NamesTheUpgradedMasterWhileOneRuns) {
  Snapshot snapshot;
  EXPECT_TRUE(status_json(snapshot, StatusHistory{})["server"]["upgraded_master_pid"].is_null());
  snapshot.upgraded_master_pid = 4711;
  EXPECT_EQ(status_json(snapshot, StatusHistory{})["server"]["upgraded_master_pid"], 4711);
}

TEST(StatusJson, StatusCodesIsAnObjectEvenBeforeTheFirstRequest) {
  auto json = status_json(Snapshot{}, StatusHistory{});
  EXPECT_TRUE(json["server"]["status_codes"].is_object());
  EXPECT_TRUE(json["server"]["status_codes"].empty());
}

TEST(Routes, ServeTheThreeViewsAndRefuseTheRest) {
  auto snapshot = loaded_snapshot();
  StatusHistory history;
  auto metrics = status_response(request("GET", "/metrics"), snapshot, history);
  EXPECT_EQ(metrics.status, 200);
  EXPECT_NE(metrics.body.find("# TYPE qilin_workers gauge"), std::string::npos);
  auto json = status_response(request("GET", "/status.json?x=1"), snapshot, history);
  EXPECT_EQ(json.status, 200);
  EXPECT_TRUE(nlohmann::json::accept(json.body));
  auto page = status_response(request("HEAD", "/"), snapshot, history);
  EXPECT_EQ(page.status, 200);
  EXPECT_EQ(status_response(request("GET", "/nope"), snapshot, history).status, 404);
  EXPECT_EQ(status_response(request("POST", "/metrics"), snapshot, history).status, 405);
}

TEST(Page, IsSelfContainedAndPollsTheJson) {
  const std::string_view page = status_page_html();
  EXPECT_NE(page.find("fetch(\"/status.json\""), std::string_view::npos);
  EXPECT_NE(page.find("setInterval(refresh, 1000)"), std::string_view::npos);
  EXPECT_NE(page.find("tr.dataset.pid"), std::string_view::npos);  // data-pid, for the browser test
  // No external assets: the only absolute URL is the SVG namespace name.
  std::string rest(page);
  for (size_t at = 0; (at = rest.find("http", at)) != std::string::npos; ++at)
    EXPECT_EQ(rest.compare(at, 26, "http://www.w3.org/2000/svg"), 0) << rest.substr(at, 40);
  EXPECT_EQ(rest.find("src="), std::string::npos);
  EXPECT_EQ(rest.find("<link"), std::string::npos);
}

TEST(Table, OneRowPerWorkerAndDashesForUnknowns) {
  auto snapshot = loaded_snapshot();
  StatusHistory history;
  auto table = render_status_table(status_json(snapshot, history));
  std::istringstream lines(table);
  std::string header, first, second, summary;
  std::getline(lines, header);
  std::getline(lines, first);
  std::getline(lines, second);
  std::getline(lines, summary);
  EXPECT_NE(header.find("SYS/REQ"), std::string::npos);
  EXPECT_NE((first + second).find("4242"), std::string::npos);
  EXPECT_NE((first + second).find("epoll"), std::string::npos);
  EXPECT_NE((first + second).find(" - "), std::string::npos);  // no req/s before a second sample
  EXPECT_NE(summary.find("2 workers"), std::string::npos);
  EXPECT_NE(summary.find("max_requests 1"), std::string::npos);
  EXPECT_NE(render_status_table(nlohmann::json::object()).find("PID"), std::string::npos);
}

}  // namespace
}  // namespace qilin::master

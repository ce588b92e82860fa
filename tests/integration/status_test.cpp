// The status listener end to end: qilin with --status-bind under a short,
// bounded load; /metrics (checked by promtool when installed), /status.json,
// the restarts a killed worker causes, `qilin status`, and the live page as
// a headless Chromium renders it. Every wait is bounded; every process
// started here is gone when its test ends.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "tests/integration/harness.hpp"

namespace qilin::testing {
namespace {

std::string find_program(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::string dirs = path ? path : "/usr/bin:/bin";
  for (size_t start = 0; start <= dirs.size();) {
    size_t end = dirs.find(':', start);
    if (end == std::string::npos) end = dirs.size();
    std::string candidate = dirs.substr(start, end - start) + "/" + name;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    start = end + 1;
  }
  return {};
}

struct CommandResult {
  int code = -1;  // -1: killed at the time limit
  std::string output;
};

// Runs a program with stdin from `input` (or /dev/null) and stdout captured,
// under a supervisor that is a child subreaper: whatever the program leaves
// behind (Chromium's crash handler detaches itself) is re-parented to the
// supervisor, killed and reaped before this returns.
CommandResult run_command(const std::vector<std::string>& argv, std::chrono::milliseconds limit,
                          const std::string& input = "/dev/null") {
  TempDir dir;
  const std::string output_path = dir.file("output");
  pid_t supervisor = ::fork();
  if (supervisor == 0) {
    ::setpgid(0, 0);
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    ::prctl(PR_SET_CHILD_SUBREAPER, 1);
    pid_t program = ::fork();
    if (program == 0) {
      ::setpgid(0, 0);
      int in = ::open(input.c_str(), O_RDONLY);
      int out = ::open(output_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      int null = ::open("/dev/null", O_WRONLY);
      ::dup2(in, STDIN_FILENO);
      ::dup2(out, STDOUT_FILENO);
      ::dup2(null, STDERR_FILENO);
      std::vector<char*> args;
      std::vector<std::string> copy = argv;
      for (auto& arg : copy) args.push_back(arg.data());
      args.push_back(nullptr);
      ::execv(args[0], args.data());
      ::_exit(127);
    }
    int status = 0, code = -1;
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (true) {
      if (::waitpid(program, &status, WNOHANG) == program) {
        code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        break;
      }
      if (std::chrono::steady_clock::now() >= deadline) {
        ::kill(program, SIGKILL);
        ::waitpid(program, nullptr, 0);
        break;
      }
      ::usleep(20'000);
    }
    // Everything left: the program's group, then whatever was re-parented
    // here as its parents died, until nothing is left to reap.
    ::kill(-program, SIGKILL);
    const auto give_up = std::chrono::steady_clock::now() + 5s;
    while (std::chrono::steady_clock::now() < give_up) {
      std::ifstream children("/proc/self/task/" + std::to_string(::getpid()) + "/children");
      for (pid_t child; children >> child;) ::kill(child, SIGKILL);
      while (::waitpid(-1, nullptr, WNOHANG) > 0) {
      }
      if (::waitpid(-1, nullptr, WNOHANG) < 0 && errno == ECHILD) break;
      ::usleep(20'000);
    }
    ::_exit(code < 0 ? 255 : code);
  }
  int status = 0;
  if (!eventually([&] { return ::waitpid(supervisor, &status, WNOHANG) == supervisor; },
                  limit + 10s)) {
    ::kill(-supervisor, SIGKILL);
    ::waitpid(supervisor, &status, 0);
  }
  CommandResult result;
  result.output = read_file(output_path);
  if (WIFEXITED(status)) result.code = WEXITSTATUS(status) == 255 ? -1 : WEXITSTATUS(status);
  return result;
}

// qilin with its status listener on a port of its own.
struct StatusServer {
  StatusServer(std::vector<std::string> args, int workers)
      : status_port(free_port()),
        server(
            [&] {
              args.push_back("--status-bind");
              args.push_back("127.0.0.1:" + std::to_string(status_port));
              return args;
            }(),
            workers) {
    // The status process starts after the workers; it answers once it polls.
    if (!eventually([&] { return status_json().has_value(); }, 10s))
      throw std::runtime_error("the status listener never answered; log:\n" + server.log());
  }

  std::optional<nlohmann::json> status_json() const {
    try {
      auto response = get(status_port, "/status.json");
      if (!response || response->status != 200) return std::nullopt;
      auto json = nlohmann::json::parse(response->body, nullptr, false);
      if (json.is_discarded()) return std::nullopt;
      return json;
    } catch (const std::exception&) {
      return std::nullopt;  // not listening (yet, or while respawning)
    }
  }

  std::vector<pid_t> worker_pids() const {
    std::vector<pid_t> pids;
    if (auto json = status_json())
      for (const auto& worker : (*json)["workers"]) pids.push_back(worker["pid"].get<pid_t>());
    return pids;
  }

  // The master's one child that is not a worker.
  pid_t status_pid() const {
    auto workers = worker_pids();
    for (pid_t child : server.worker_pids())
      if (std::find(workers.begin(), workers.end(), child) == workers.end()) return child;
    return 0;
  }

  uint16_t status_port;
  Server server;
};

// `requests` GETs of `target` from `clients` threads, each on a fresh
// connection; returns how many were answered 200.
int load(uint16_t port, int requests, int clients = 4, const std::string& target = "/") {
  std::atomic<int> next{0}, answered{0};
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c)
    threads.emplace_back([&] {
      while (next.fetch_add(1) < requests) {
        try {
          auto response = get(port, target);
          if (response && response->status == 200) ++answered;
        } catch (const std::exception&) {
        }
      }
    });
  for (auto& thread : threads) thread.join();
  return answered;
}

// The IO-model figures of one worker class, summed over its workers, as
// /status.json reports them (null there: nullopt here).
struct ClassRatios {
  uint64_t requests = 0;
  std::optional<double> syscalls_per_request;
  std::optional<double> requests_per_wakeup;
  std::optional<double> completions_per_submit;
  std::optional<double> switches_per_request;
};

std::optional<double> divide(uint64_t numerator, uint64_t denominator) {
  if (denominator == 0) return std::nullopt;
  return static_cast<double>(numerator) / static_cast<double>(denominator);
}

ClassRatios ratios_from_status(const nlohmann::json& status, const std::string& worker_class) {
  uint64_t requests = 0, syscalls = 0, wakeups = 0, events = 0, submits = 0, switches = 0;
  for (const auto& worker : status["workers"]) {
    if (worker["class"] != worker_class) continue;
    const auto& io = worker["io"];
    requests += worker["requests"].get<uint64_t>();
    syscalls += io["syscalls"].get<uint64_t>();
    wakeups += io["waits"].get<uint64_t>() - io["empty_waits"].get<uint64_t>();
    events += io["events"].get<uint64_t>();
    submits += io["submits"].get<uint64_t>();
    switches += worker["process"]["context_switches"].get<uint64_t>();
  }
  return {.requests = requests,
          .syscalls_per_request = divide(syscalls, requests),
          .requests_per_wakeup = divide(requests, wakeups),
          .completions_per_submit = divide(events, submits),
          .switches_per_request = divide(switches, requests)};
}

// Each worker's context switches by pid, as /status.json shows them now.
std::map<uint64_t, uint64_t> switches_by_worker(const nlohmann::json& json) {
  std::map<uint64_t, uint64_t> switches;
  for (const auto& worker : json["workers"])
    switches[worker["pid"].get<uint64_t>()] = worker["process"]["context_switches"].get<uint64_t>();
  return switches;
}

// The status JSON once every worker's once-a-second process sample has been
// taken again since the load ended: each sample stores a count that grew,
// since even an idle worker blocks at least once a second in its poller.
std::optional<nlohmann::json> status_after_next_sample(const StatusServer& status) {
  auto before = status.status_json();
  if (!before) return std::nullopt;
  const auto then = switches_by_worker(*before);
  std::optional<nlohmann::json> after;
  const bool sampled = eventually(
      [&] {
        after = status.status_json();
        if (!after) return false;
        const auto now = switches_by_worker(*after);
        for (const auto& [pid, count] : then)
          if (!now.contains(pid) || now.at(pid) <= count) return false;
        return true;
      },
      5s);
  return sampled ? after : std::nullopt;
}

// Starts `worker_class` with `workers` workers, runs `requests` requests of
// `target` from `clients` threads, waits for the once-a-second process
// figures to catch up, and returns the class's ratios. For the cross-class
// orderings: e.g. measure_class("epoll").requests_per_wakeup > 1.
ClassRatios measure_class(const std::string& worker_class, int workers = 2, int requests = 200,
                          int clients = 4, const std::string& target = "/",
                          std::vector<std::string> extra_args = {}) {
  std::vector<std::string> args = {"-k", worker_class, "-w", std::to_string(workers)};
  args.insert(args.end(), extra_args.begin(), extra_args.end());
  args.push_back("hello");
  StatusServer status(args, workers);
  EXPECT_EQ(load(status.server.port(), requests, clients, target), requests);
  auto json = status_after_next_sample(status);
  EXPECT_TRUE(json);
  return json ? ratios_from_status(*json, worker_class) : ClassRatios{};
}

// The DOM rows of the status page: pid → the requests it showed.
std::map<pid_t, uint64_t> rows_of(const std::string& dom) {
  std::map<pid_t, uint64_t> rows;
  const std::string marker = "data-pid=\"";
  for (size_t at = 0; (at = dom.find(marker, at)) != std::string::npos; ++at) {
    const pid_t pid = std::atoi(dom.c_str() + at + marker.size());
    const size_t requests = dom.find("data-requests=\"", at);
    const size_t tag_end = dom.find('>', at);
    if (requests != std::string::npos && requests < tag_end)
      rows[pid] = std::strtoull(dom.c_str() + requests + 15, nullptr, 10);
  }
  return rows;
}

TEST(Status, OffByDefault) {
  Server server({"-k", "sync", "-w", "2", "hello"}, 2);
  EXPECT_EQ(server.log().find("Status"), std::string::npos) << server.log();
  // The master would fork a status process at the end of a loop turn. Each
  // USR1 is logged at the start of a turn, so once the second is logged a
  // whole turn has run, and only the two workers may be its children.
  auto usr1_handled = [&](size_t times) {
    return eventually([&] { return occurrences(server.log(), "Handling signal: usr1") == times; });
  };
  server.signal(SIGUSR1);
  ASSERT_TRUE(usr1_handled(1)) << server.log();
  server.signal(SIGUSR1);
  ASSERT_TRUE(usr1_handled(2)) << server.log();
  EXPECT_EQ(server.worker_pids().size(), 2u) << "a status process without status_bind";
}

TEST(Status, JsonCountsEveryRequestOfBothSyncWorkers) {
  StatusServer status({"-k", "sync", "-w", "2", "hello"}, 2);
  ASSERT_EQ(load(status.server.port(), 200), 200);
  auto json = status.status_json();
  ASSERT_TRUE(json);
  const auto& workers = (*json)["workers"];
  ASSERT_EQ(workers.size(), 2u) << json->dump(2);
  uint64_t requests = 0;
  for (const auto& worker : workers) {
    EXPECT_EQ(worker["class"], "sync");
    EXPECT_EQ(worker["state"], "ready");
    EXPECT_GT(worker["io"]["accepts"].get<uint64_t>(), 0u);
    EXPECT_EQ(worker["open_connections"]["total"], 0);
    requests += worker["requests"].get<uint64_t>();
  }
  EXPECT_GE(requests, 200u);
  EXPECT_GE((*json)["server"]["requests"].get<uint64_t>(), 200u);
  EXPECT_EQ((*json)["server"]["latency"]["count"].get<uint64_t>(), requests);

  // The once-a-second figures arrive within a second or so.
  ASSERT_TRUE(eventually(
      [&] {
        auto later = status.status_json();
        if (!later) return false;
        for (const auto& worker : (*later)["workers"])
          if (worker["process"]["rss_bytes"] == 0 || worker["process"]["threads"] != 1 ||
              worker["requests_per_second"].is_null())
            return false;
        return true;
      },
      3s));
}

// The open-connection gauges of every class say where each connection is:
// one waiting on the app (/sleep), one with half a request read, and (where
// keep-alive exists) one idle between requests. Polled, not slept for.
TEST(Status, OpenConnectionGaugesShowWhereEachConnectionIs) {
  for (const char* worker_class : {"sync", "threaded", "epoll", "io_uring"}) {
    const bool sync = std::string(worker_class) == "sync";
    // sync holds one connection per process: one process each for the app and
    // the half-read request; threaded a thread each.
    StatusServer status({"-k", worker_class, "-w", sync ? "2" : "1", "--threads", "4", "demo"},
                        sync ? 2 : 1);
    Client in_app(status.server.port());
    in_app.send("GET /sleep?ms=2000 HTTP/1.1\r\nHost: t\r\n\r\n");
    Client reading(status.server.port());
    reading.send("GET / HTTP/1.1\r\nHo");
    std::optional<Client> idle;
    if (!sync) {
      idle.emplace(status.server.port());
      idle->send("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
      ASSERT_TRUE(idle->receive()) << worker_class;
    }
    nlohmann::json last;
    const bool shown = eventually(
        [&] {
          auto json = status.status_json();
          if (!json) return false;
          last = *json;
          int64_t app = 0, half_read = 0, between = 0;
          for (const auto& worker : (*json)["workers"]) {
            app += worker["open_connections"]["app"].get<int64_t>();
            half_read += worker["open_connections"]["reading"].get<int64_t>();
            between += worker["open_connections"]["idle"].get<int64_t>();
          }
          return app == 1 && half_read == 1 && between == (sync ? 0 : 1);
        },
        3s);
    EXPECT_TRUE(shown) << worker_class << "\n" << last.dump(2);
  }
}

// The figures that tell IO models apart, through the helper the cross-class
// comparisons use. sync: one request per wake-up (an idle sibling woken for
// the same connection, the thundering herd, pulls it below 1) and ~8
// syscalls per request (poll, accept4, setsockopt ×2, recv ×2, send, close).
TEST(StatusRatios, SyncServesOneRequestPerWakeUp) {
  auto sync = measure_class("sync");
  EXPECT_GE(sync.requests, 200u);
  ASSERT_TRUE(sync.requests_per_wakeup && sync.syscalls_per_request && sync.switches_per_request);
  EXPECT_GE(*sync.requests_per_wakeup, 0.5);
  EXPECT_LE(*sync.requests_per_wakeup, 2.0);
  EXPECT_GE(*sync.syscalls_per_request, 5.0);
  EXPECT_LE(*sync.syscalls_per_request, 12.0);
  EXPECT_GT(*sync.switches_per_request, 0.0);
  EXPECT_FALSE(sync.completions_per_submit);  // no io_uring_enter
}

// The same app under the same wrk load (keep-alive, 16 connections, one
// worker each) through every IO model: what the scoreboard must show is the
// IO model itself. Orderings only, never absolute numbers.
ClassRatios measure_under_wrk(const std::string& worker_class) {
  StatusServer status({"-k", worker_class, "-w", "1", "--threads", "4", "hello"}, 1);
  const std::string command =
      "timeout 20 wrk -t1 -c16 -d2s http://127.0.0.1:" + std::to_string(status.server.port()) +
      "/ > /dev/null 2>&1";
  EXPECT_EQ(std::system(command.c_str()), 0) << "wrk failed (installed by deploy/install-deps.sh)";
  auto json = status_after_next_sample(status);
  EXPECT_TRUE(json);
  return json ? ratios_from_status(*json, worker_class) : ClassRatios{};
}

TEST(StatusRatios, EachIoModelShowsItsShapeUnderWrk) {
  if (std::system("command -v wrk > /dev/null") != 0) GTEST_SKIP() << "wrk is not installed";
  const auto epoll = measure_under_wrk("epoll");
  const auto io_uring = measure_under_wrk("io_uring");
  const auto threaded = measure_under_wrk("threaded");
  for (const auto* ratios : {&epoll, &io_uring, &threaded}) {
    ASSERT_GT(ratios->requests, 1000u);
    ASSERT_TRUE(ratios->requests_per_wakeup && ratios->syscalls_per_request &&
                ratios->switches_per_request);
  }
  // An event loop serves many ready connections per wake-up; sync's one
  // request per wake-up is asserted above.
  EXPECT_GT(*epoll.requests_per_wakeup, 1.5);
  EXPECT_GT(*io_uring.requests_per_wakeup, 1.5);
  // Completions instead of calls: one io_uring_enter covers a turn's work,
  // where epoll pays a recv and a send per request.
  EXPECT_LT(*io_uring.syscalls_per_request, *epoll.syscalls_per_request);
  ASSERT_TRUE(io_uring.completions_per_submit);
  EXPECT_GT(*io_uring.completions_per_submit, 1.0);
  // A hand-off between the poller thread and a pool thread is a context
  // switch each way; one loop thread switches only when it runs out of work.
  EXPECT_GT(*threaded.switches_per_request, *epoll.switches_per_request);
  EXPECT_GT(*threaded.switches_per_request, *io_uring.switches_per_request);
}

// The syscalls a worker counts beyond its IO model's own kinds: epoll_ctl,
// setsockopt, shutdown, close, getpeername, pipe2, and for io_uring any call
// that is not an io_uring_enter (its accepts, reads and writes are CQEs).
uint64_t other_syscalls(const nlohmann::json& status, const std::string& worker_class) {
  const std::vector<const char*> named =
      worker_class == "io_uring"
          ? std::vector<const char*>{"submits"}
          : std::vector<const char*>{"accepts", "reads", "writes", "sendfiles", "waits"};
  uint64_t other = 0;
  for (const auto& worker : status["workers"]) {
    const auto& io = worker["io"];
    other += io["syscalls"].get<uint64_t>();
    for (const char* kind : named) other -= io[kind].get<uint64_t>();
  }
  return other;
}

// "One line per syscall": the per-connection calls (registering, options,
// close) are counted as surely as the per-request ones. Connections that
// each carry one request and close show them.
TEST(StatusCounts, EveryConnectionSyscallIsCounted) {
  constexpr uint64_t kConnections = 20;
  // Per connection. epoll: epoll_ctl, setsockopt TCP_NODELAY, close.
  // threaded: two setsockopt (the 1 s IO slices), epoll_ctl, close.
  // io_uring: getpeername (a multishot accept gives no address, and the
  // default forwarded_allow_ips trusts 127.0.0.1, so the peer is needed) and
  // the recv that peeks for unread input before closing; the close is an SQE.
  for (const auto& [worker_class, per_connection] : std::vector<std::pair<std::string, uint64_t>>{
           {"epoll", 3}, {"threaded", 4}, {"io_uring", 2}}) {
    SCOPED_TRACE(worker_class);
    StatusServer status({"-k", worker_class, "-w", "1", "hello"}, 1);
    auto before = status.status_json();
    ASSERT_TRUE(before);
    for (uint64_t i = 0; i < kConnections; ++i) {
      Client client(status.server.port());
      client.send("GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
      ASSERT_TRUE(client.receive());
      ASSERT_TRUE(client.closed_by_server());
    }
    // The client saw EOF, perhaps before the worker counted its close: wait
    // for the count, and fail if it is wrong once no more is coming.
    const uint64_t expected = per_connection * kConnections;
    uint64_t counted = 0;
    std::optional<nlohmann::json> after;
    eventually(
        [&] {
          after = status.status_json();
          if (!after) return false;
          counted = other_syscalls(*after, worker_class) - other_syscalls(*before, worker_class);
          return counted >= expected;
        },
        5s);
    ASSERT_TRUE(after);
    EXPECT_EQ(counted, expected) << after->dump(2);
  }
}

TEST(Status, MetricsAreWellFormedAndPassPromtool) {
  StatusServer status({"-k", "sync", "-w", "2", "hello"}, 2);
  ASSERT_EQ(load(status.server.port(), 200), 200);
  auto response = get(status.status_port, "/metrics");
  ASSERT_TRUE(response);
  ASSERT_EQ(response->status, 200);
  EXPECT_EQ(response->header("content-type"), "text/plain; version=0.0.4; charset=utf-8");
  const std::string& text = response->body;
  for (pid_t pid : status.worker_pids())
    EXPECT_NE(text.find("qilin_worker_requests_total{worker=\"" + std::to_string(pid) +
                        "\",class=\"sync\"}"),
              std::string::npos);
  EXPECT_NE(text.find("qilin_requests_total 200\n"), std::string::npos) << text;
  EXPECT_NE(text.find("qilin_request_duration_seconds_count 200\n"), std::string::npos);

  const std::string promtool = find_program("promtool");
  if (promtool.empty()) GTEST_SKIP() << "promtool is not installed (Debian package prometheus)";
  TempDir dir;
  dir.write("metrics", text);
  auto check = run_command({promtool, "check", "metrics"}, 20s, dir.file("metrics"));
  EXPECT_EQ(check.code, 0) << check.output << "\n" << text;
}

TEST(Status, RequestsAreCountedByStatusCode) {
  StatusServer status({"-k", "sync", "-w", "1", "demo"}, 1);
  auto found = get(status.server.port(), "/");
  ASSERT_TRUE(found);
  ASSERT_EQ(found->status, 200);
  auto missing = get(status.server.port(), "/no-such-route");
  ASSERT_TRUE(missing);
  ASSERT_EQ(missing->status, 404);
  // Answered by the session, never seen by the app: counted all the same.
  Client malformed(status.server.port());
  malformed.send("GET / HTTP/1.1\r\nHost: t\r\nBad Field: x\r\n\r\n");
  auto rejected = malformed.receive();
  ASSERT_TRUE(rejected);
  ASSERT_EQ(rejected->status, 400);
  std::string text;
  ASSERT_TRUE(eventually([&] {
    auto metrics = get(status.status_port, "/metrics");
    if (!metrics) return false;
    text = metrics->body;
    return text.find("qilin_requests_by_status_total{code=\"404\"} 1\n") != std::string::npos &&
           text.find("qilin_requests_by_status_total{code=\"400\"} 1\n") != std::string::npos;
  })) << text;
  EXPECT_NE(text.find("qilin_requests_by_status_total{code=\"200\"} 1\n"), std::string::npos)
      << text;
  EXPECT_EQ(text.find("qilin_requests_by_status_total{code=\"500\"}"), std::string::npos);
  auto json = status.status_json();
  ASSERT_TRUE(json);
  EXPECT_EQ((*json)["server"]["status_codes"], nlohmann::json({{"200", 1}, {"400", 1}, {"404", 1}}))
      << json->dump(2);
  EXPECT_EQ((*json)["server"]["requests"], 3) << json->dump(2);
}

TEST(Status, KilledWorkerIsRecordedAsACrash) {
  StatusServer status({"-k", "sync", "-w", "2", "hello"}, 2);
  auto before = status.worker_pids();
  ASSERT_EQ(before.size(), 2u);
  ::kill(before[0], SIGKILL);
  nlohmann::json seen;
  ASSERT_TRUE(eventually(
      [&] {
        auto json = status.status_json();
        if (!json) return false;
        seen = *json;
        return seen["restarts"]["total"]["crash"] == 1 && seen["workers"].size() == 2 &&
               seen["workers"][0]["pid"] != before[0] && seen["workers"][1]["pid"] != before[0];
      },
      5s))
      << seen.dump(2);
  const auto& recent = seen["restarts"]["recent"];
  ASSERT_EQ(recent.size(), 1u);
  EXPECT_EQ(recent[0]["pid"], before[0]);
  EXPECT_EQ(recent[0]["reason"], "crash");
  auto metrics = get(status.status_port, "/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_NE(metrics->body.find("qilin_worker_restarts_total{reason=\"crash\"} 1\n"),
            std::string::npos);
}

TEST(Status, StatusProcessIsRespawnedAndStopsWithTheMaster) {
  StatusServer status({"-k", "sync", "-w", "1", "hello"}, 1);
  const pid_t first = status.status_pid();
  ASSERT_GT(first, 0);
  ::kill(first, SIGKILL);
  pid_t second = 0;
  ASSERT_TRUE(eventually(
      [&] {
        second = status.status_pid();
        return second != 0 && second != first && status.status_json().has_value();
      },
      5s))
      << status.server.log();
  EXPECT_EQ(status.worker_pids().size(), 1u);  // not counted as a worker
  status.server.signal(SIGTERM);
  auto exit = status.server.wait_exit(10s);
  ASSERT_TRUE(exit);
  EXPECT_EQ(exit->code, 0);
  EXPECT_TRUE(eventually([&] { return ::kill(second, 0) != 0; }, 2s))
      << "status process outlived the master";
}

TEST(Status, CommandPrintsARowPerWorker) {
  StatusServer status({"-k", "sync", "-w", "2", "hello"}, 2);
  ASSERT_EQ(load(status.server.port(), 20), 20);
  auto result = run_qilin({"status", "127.0.0.1:" + std::to_string(status.status_port)});
  ASSERT_EQ(result.code, 0) << result.output;
  EXPECT_NE(result.output.find("SYS/REQ"), std::string::npos) << result.output;
  for (pid_t pid : status.worker_pids())
    EXPECT_NE(result.output.find(std::to_string(pid) + " sync "), std::string::npos)
        << result.output;

  TempDir dir;
  dir.write("qilin.yaml", "status_bind: 127.0.0.1:" + std::to_string(status.status_port) + "\n");
  auto from_file = run_qilin({"status", "-c", dir.file("qilin.yaml")});
  EXPECT_EQ(from_file.code, 0) << from_file.output;

  auto nobody = run_qilin({"status", "127.0.0.1:" + std::to_string(free_port())});
  EXPECT_EQ(nobody.code, 1) << nobody.output;
  EXPECT_NE(nobody.output.find("Connection refused"), std::string::npos) << nobody.output;
}

TEST(Status, PageShowsEveryWorkerInHeadlessChromium) {
  std::string chromium = find_program("chromium");
  if (chromium.empty()) chromium = find_program("chromium-browser");
  if (chromium.empty()) GTEST_SKIP() << "chromium is not installed (Debian package chromium)";
  StatusServer status({"-k", "sync", "-w", "2", "hello"}, 2);
  const auto pids = status.worker_pids();
  ASSERT_EQ(pids.size(), 2u);
  TempDir profile;
  // The page as a browser renders it, its script having fetched /status.json.
  auto render = [&] {
    auto browser =
        run_command({chromium, "--headless", "--no-sandbox", "--disable-gpu",
                     "--disable-background-networking", "--disable-component-update",
                     "--disable-sync", "--no-first-run", "--disable-crash-reporter",
                     "--user-data-dir=" + profile.path(), "--virtual-time-budget=3000",
                     "--dump-dom", "http://127.0.0.1:" + std::to_string(status.status_port) + "/"},
                    60s);
    EXPECT_EQ(browser.code, 0) << browser.output;
    return browser.output;
  };
  const std::string before = render();
  auto rows_before = rows_of(before);
  ASSERT_EQ(load(status.server.port(), 100), 100);
  const std::string after = render();
  auto rows_after = rows_of(after);
  EXPECT_EQ(rows_after.size(), 2u) << after;
  uint64_t served_before = 0, served_after = 0;
  for (pid_t pid : pids) {
    ASSERT_TRUE(rows_before.count(pid)) << "no row for worker " << pid << "\n" << before;
    ASSERT_TRUE(rows_after.count(pid)) << "no row for worker " << pid << "\n" << after;
    served_before += rows_before[pid];
    served_after += rows_after[pid];
  }
  // The numbers move: the 100 requests of the load show on the page.
  EXPECT_GE(served_after, served_before + 100) << before << "\n----\n" << after;
}

}  // namespace
}  // namespace qilin::testing

// Reloads and upgrades under a real load: wrk keeps 16 keep-alive
// connections busy while the master replaces every worker, and not one
// request may fail (gunicorn's most common deployment complaint).
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <thread>

#include "tests/integration/harness.hpp"

namespace qilin::testing {
namespace {

struct WrkResult {
  std::string output;
  bool ran = false;
  bool clean() const {  // wrk prints these lines only when something failed
    return output.find("Socket errors") == std::string::npos &&
           output.find("Non-2xx") == std::string::npos;
  }
  bool served() const { return output.find("requests in") != std::string::npos; }
  // Once the server has gone, wrk's reconnects are refused, which it counts
  // as write errors (a non-blocking connect fails at the first write): fair.
  // A read error or a timeout means a request the server accepted was lost.
  int lost_after_accept() const {
    int read = 0, timeout = 0;
    const auto at = output.find("Socket errors:");
    if (at != std::string::npos)
      std::sscanf(output.c_str() + at, "Socket errors: connect %*d, read %d, write %*d, timeout %d",
                  &read, &timeout);
    return read + timeout;
  }
  bool all_2xx() const { return output.find("Non-2xx") == std::string::npos; }
};

// Starts wrk for `seconds` in the background; bounded by `timeout`.
std::future<WrkResult> start_wrk(uint16_t port, int seconds) {
  return std::async(std::launch::async, [port, seconds] {
    WrkResult result;
    const std::string command =
        "timeout " + std::to_string(seconds + 15) + " wrk -t1 -c16 -d" + std::to_string(seconds) +
        "s --timeout 5s http://127.0.0.1:" + std::to_string(port) + "/ 2>&1";
    if (FILE* pipe = ::popen(command.c_str(), "r")) {
      char chunk[512];
      while (size_t n = std::fread(chunk, 1, sizeof chunk, pipe)) result.output.append(chunk, n);
      result.ran = ::pclose(pipe) == 0;
    }
    return result;
  });
}

bool has_wrk() { return std::system("command -v wrk > /dev/null") == 0; }

bool all_replaced(const std::vector<pid_t>& before, const std::vector<pid_t>& now, size_t count) {
  if (now.size() != count) return false;
  for (pid_t pid : now)
    if (std::find(before.begin(), before.end(), pid) != before.end()) return false;
  return true;
}

TEST(ReloadUnderLoad, HupReplacesEveryWorkerWithoutAFailedRequest) {
  if (!has_wrk()) GTEST_SKIP() << "wrk is not installed (deploy/install-deps.sh installs it)";
  for (const char* worker_class : {"epoll", "io_uring", "threaded"}) {
    TempDir dir;
    dir.write("qilin.yaml",
              std::string("workers: 2\napp: hello\nworker_class: ") + worker_class + "\n");
    Server server({"-c", dir.file("qilin.yaml")}, 2);
    auto load = start_wrk(server.port(), 4);
    std::this_thread::sleep_for(1s);
    auto before = server.worker_pids();
    server.signal(SIGHUP);
    EXPECT_TRUE(eventually([&] { return all_replaced(before, server.worker_pids(), 2); }, 5s))
        << worker_class << "\n"
        << server.log();
    auto result = load.get();
    EXPECT_TRUE(result.ran && result.served()) << worker_class << "\n" << result.output;
    EXPECT_TRUE(result.clean()) << worker_class << "\n" << result.output;
  }
}

TEST(ReloadUnderLoad, HupSwitchesTheIoModelWithoutAFailedRequest) {
  if (!has_wrk()) GTEST_SKIP() << "wrk is not installed (deploy/install-deps.sh installs it)";
  TempDir dir;
  dir.write("qilin.yaml", "workers: 2\napp: hello\nworker_class: sync\n");
  Server server({"-c", dir.file("qilin.yaml")}, 2);
  auto load = start_wrk(server.port(), 7);
  std::this_thread::sleep_for(500ms);
  const char* previous = "sync";
  for (const char* next : {"epoll", "io_uring", "threaded"}) {
    auto before = server.worker_pids();
    dir.write("qilin.yaml", std::string("workers: 2\napp: hello\nworker_class: ") + next + "\n");
    server.signal(SIGHUP);
    const std::string switched = std::string("Switching worker class: ") + previous + " -> " + next;
    EXPECT_TRUE(eventually(
        [&] {
          return server.log().find(switched) != std::string::npos &&
                 all_replaced(before, server.worker_pids(), 2);
        },
        5s))
        << switched << "\n"
        << server.log();
    previous = next;
    std::this_thread::sleep_for(1s);
  }
  auto result = load.get();
  EXPECT_TRUE(result.ran && result.served()) << result.output;
  EXPECT_TRUE(result.clean()) << result.output;
}

TEST(ReloadUnderLoad, UpgradeThenRetiringTheOldMasterFailsNoRequest) {
  if (!has_wrk()) GTEST_SKIP() << "wrk is not installed (deploy/install-deps.sh installs it)";
  TempDir dir;
  const std::string pidfile = dir.file("qilin.pid");
  Server server({"-k", "epoll", "-w", "2", "-p", pidfile, "hello"}, 2);
  auto load = start_wrk(server.port(), 5);
  std::this_thread::sleep_for(1s);
  server.signal(SIGUSR2);
  ASSERT_TRUE(eventually([&] { return !read_file(pidfile + ".2").empty(); })) << server.log();
  // The new master's workers are up before the old master goes.
  ASSERT_TRUE(eventually([&] { return occurrences(server.log(), "Booting worker") >= 4; }))
      << server.log();
  const pid_t upgraded = std::stoi(read_file(pidfile + ".2"));
  server.signal(SIGTERM);
  auto status = server.wait_exit(10s);
  ASSERT_TRUE(status);
  EXPECT_EQ(status->code, 0);
  EXPECT_TRUE(eventually([&] { return read_file(pidfile) == std::to_string(upgraded) + "\n"; }))
      << server.log();
  auto result = load.get();
  EXPECT_TRUE(result.ran && result.served()) << result.output;
  EXPECT_TRUE(result.clean()) << result.output;
  ::kill(upgraded, SIGTERM);
  EXPECT_TRUE(eventually([&] { return ::kill(upgraded, 0) != 0; }, 10s));
}

// TERM under load: connections the kernel completed before the stop (in the
// listen backlog) are answered, not reset when the last listener closes.
// wrk reconnects after every Connection: close, so the backlog is never
// empty when TERM arrives; with sync (a connection per request) it is full.
void expect_term_answers_every_accepted_request(const std::vector<std::string>& args,
                                                const std::string& label) {
  Server server(args, 2);
  auto load = start_wrk(server.port(), 3);
  std::this_thread::sleep_for(1s);  // the load is running
  server.signal(SIGTERM);
  auto status = server.wait_exit(15s);
  ASSERT_TRUE(status) << label;
  EXPECT_EQ(status->code, 0) << label;
  auto result = load.get();
  EXPECT_TRUE(result.served()) << label << "\n" << result.output;
  EXPECT_EQ(result.lost_after_accept(), 0) << label << "\n" << result.output << server.log();
  EXPECT_TRUE(result.all_2xx()) << label << "\n" << result.output;
}

TEST(StopUnderLoad, TermAnswersEveryAcceptedRequest) {
  if (!has_wrk()) GTEST_SKIP() << "wrk is not installed (deploy/install-deps.sh installs it)";
  for (const char* worker_class : {"sync", "threaded", "epoll", "io_uring"})
    expect_term_answers_every_accepted_request({"-k", worker_class, "-w", "2", "hello"},
                                               worker_class);
}

// With reuse_port each worker has a listening socket of its own, which
// closes with the worker: the worker itself must serve what is queued on it.
TEST(StopUnderLoad, TermAnswersEveryAcceptedRequestWithReusePort) {
  if (!has_wrk()) GTEST_SKIP() << "wrk is not installed (deploy/install-deps.sh installs it)";
  for (const char* worker_class : {"sync", "epoll", "io_uring"}) {
    TempDir dir;
    dir.write("qilin.yaml",
              std::string("workers: 2\napp: hello\nreuse_port: true\nworker_class: ") +
                  worker_class + "\n");
    expect_term_answers_every_accepted_request({"-c", dir.file("qilin.yaml")},
                                               std::string(worker_class) + " reuse_port");
  }
}

TEST(Signals, Usr1ReopensARotatedAccessLog) {
  TempDir dir;
  const std::string access = dir.file("access.log");
  Server server({"-k", "epoll", "--access-logfile", access, "hello"});
  ASSERT_TRUE(get(server.port(), "/before"));
  ASSERT_TRUE(
      eventually([&] { return read_file(access).find("GET /before") != std::string::npos; }, 3s));
  std::filesystem::rename(access, access + ".1");  // what logrotate does
  server.signal(SIGUSR1);
  ASSERT_TRUE(eventually([&] {
    return server.log().find("reopened log files") != std::string::npos;
  })) << server.log();
  ASSERT_TRUE(eventually(
      [&] {
        get(server.port(), "/after");
        return read_file(access).find("GET /after") != std::string::npos;
      },
      5s))
      << server.log();
  EXPECT_EQ(read_file(access + ".1").find("GET /after"), std::string::npos);
}

// A rotation that cannot reopen (the log's directory replaced by a file, or
// not writable by the workers' user) must not stop anyone: every process
// says so and writes on to the files it had.
TEST(Signals, Usr1ThatCannotReopenKeepsWritingToTheOldLogs) {
  for (const char* worker_class : {"sync", "threaded", "epoll", "io_uring"}) {
    TempDir dir;
    std::filesystem::create_directory(dir.file("logs"));
    const std::string access = dir.file("logs/access.log");
    Server server({"-k", worker_class, "--access-logfile", access, "hello"});
    const pid_t worker = server.worker_pids().at(0);
    std::filesystem::rename(dir.file("logs"), dir.file("moved"));
    dir.write("logs", "a file where the directory was");
    server.signal(SIGUSR1);
    ASSERT_TRUE(eventually([&] {
      return occurrences(server.log(), "cannot reopen log files") == 2;  // master and worker
    })) << worker_class
        << "\n"
        << server.log();
    auto answer = get(server.port(), "/after");
    ASSERT_TRUE(answer) << worker_class << "\n" << server.log();
    EXPECT_EQ(answer->status, 200) << worker_class;
    EXPECT_EQ(server.worker_pids(), std::vector<pid_t>{worker}) << worker_class;
    EXPECT_TRUE(eventually([&] {
      return read_file(dir.file("moved/access.log")).find("GET /after") != std::string::npos;
    })) << worker_class;
  }
}

TEST(Supervision, KilledWorkerOfEveryClassIsReplacedWithinTwoSeconds) {
  for (const char* worker_class : {"sync", "threaded", "epoll", "io_uring"}) {
    Server server({"-k", worker_class, "-w", "2", "hello"}, 2);
    auto before = server.worker_pids();
    ASSERT_EQ(before.size(), 2u) << worker_class;
    ::kill(before[0], SIGKILL);
    EXPECT_TRUE(eventually(
        [&] {
          auto now = server.worker_pids();
          return now.size() == 2 && std::find(now.begin(), now.end(), before[0]) == now.end();
        },
        2s))
        << worker_class << "\n"
        << server.log();
    auto response = get(server.port(), "/");
    ASSERT_TRUE(response) << worker_class;
    EXPECT_EQ(response->status, 200) << worker_class;
  }
}

// In the event loops the heartbeat stops when a handler blocks the loop: the
// master sees a stuck worker and replaces it. (In `threaded` the main thread
// keeps beating while pool threads block, as in gunicorn's gthread.)
TEST(Supervision, BlockedLoopIsKilledAfterTimeoutAndReplaced) {
  for (const char* worker_class : {"epoll", "io_uring"}) {
    Server server({"-k", worker_class, "-t", "1", "demo"});
    auto before = server.worker_pids();
    Client client(server.port());
    client.send("GET /block?ms=5000 HTTP/1.1\r\nHost: t\r\n\r\n");
    EXPECT_TRUE(
        eventually([&] { return server.log().find("WORKER TIMEOUT") != std::string::npos; }, 5s))
        << worker_class << "\n"
        << server.log();
    EXPECT_TRUE(eventually(
        [&] {
          auto now = server.worker_pids();
          return now.size() == 1 && now != before;
        },
        5s))
        << worker_class << "\n"
        << server.log();
    auto response = get(server.port(), "/");
    ASSERT_TRUE(response) << worker_class;
    EXPECT_EQ(response->status, 200) << worker_class;
  }
}

}  // namespace
}  // namespace qilin::testing

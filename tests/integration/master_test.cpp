// The master's supervision: respawn, graceful stop, boot failures, bad config,
// reload. Every wait is bounded; every server is torn down by its destructor.
#include <gtest/gtest.h>
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <thread>

#include "tests/integration/harness.hpp"

namespace qilin::testing {
namespace {

std::string superseded_line(pid_t pid) {
  return "Retiring worker (pid: " + std::to_string(pid) + ") of a superseded reload";
}

// The inode of the socket listening on 127.0.0.1:PORT (/proc/net/tcp), 0 if none.
unsigned long listening_inode(uint16_t port) {
  std::ifstream table("/proc/net/tcp");
  std::string line;
  std::getline(table, line);  // the header
  char local[64];
  unsigned state = 0;
  unsigned long inode = 0;
  char wanted[16];  // 127.0.0.1 in the kernel's byte order, as /proc prints it
  std::snprintf(wanted, sizeof wanted, "0100007F:%04X", port);
  while (std::getline(table, line)) {
    // sl local rem st tx:rx tr:when retrnsmt uid timeout inode
    if (std::sscanf(line.c_str(), "%*s %63s %*s %x %*s %*s %*s %*u %*u %lu", local, &state,
                    &inode) == 3 &&
        state == 0x0A && std::string_view(wanted) == local)
      return inode;
  }
  return 0;
}

// Whether 127.0.0.1:PORT answers / now (false while nothing listens there).
bool answers(uint16_t port) {
  try {
    auto response = get(port, "/");
    return response && response->status == 200;
  } catch (const std::exception&) {
    return false;
  }
}

// What an operator does for a binary upgrade of a one-worker `server`: USR2,
// and TERM to it once the new master's worker has booted. The new master's
// pid once it holds `pidfile`; 0 if any step did not happen.
pid_t finish_an_upgrade(Server& server, const std::string& pidfile) {
  server.signal(SIGUSR2);
  pid_t upgraded = 0;
  if (!eventually([&] { return (upgraded = read_pid(pidfile + ".2")) != 0; }) ||
      !eventually([&] { return occurrences(server.log(), "Booting worker") >= 2; }))
    return 0;
  server.signal(SIGTERM);
  if (!server.wait_exit(10s) || !eventually([&] { return read_pid(pidfile) == upgraded; }))
    return 0;
  return upgraded;
}

std::string bind_config(const std::string& bind) {
  return "bind: " + bind + "\nworkers: 1\napp: hello\n";
}

TEST(Master, KilledWorkerIsReplacedWithinASecond) {
  Server server({"-k", "sync", "-w", "2", "hello"}, 2);
  auto before = server.worker_pids();
  ASSERT_EQ(before.size(), 2u);
  ::kill(before[0], SIGKILL);
  ASSERT_TRUE(eventually(
      [&] {
        auto now = server.worker_pids();
        return now.size() == 2 && std::find(now.begin(), now.end(), before[0]) == now.end();
      },
      2s))
      << server.log();
  auto response = get(server.port(), "/");
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 200);
}

// TERM with a request inside the app, for every class: the request finishes
// and says Connection: close, an idle keep-alive connection is closed after
// the stop grace (kIdleGraceOnStopMs), and the master exits 0. The request is
// known to be in the app from the scoreboard's gauge, not from a head start.
TEST(Master, TermLetsTheRequestInFlightFinishInEveryClass) {
  for (const std::string worker_class : {"sync", "threaded", "epoll", "io_uring"}) {
    SCOPED_TRACE(worker_class);
    const uint16_t status_port = free_port();
    Server server({"-k", worker_class, "-w", "1", "--threads", "2", "--status-bind",
                   "127.0.0.1:" + std::to_string(status_port), "demo"});
    ASSERT_TRUE(wait_in_app(status_port, 0)) << server.log();  // the status listener is up
    std::optional<Client> idle;
    if (worker_class != "sync") {  // sync answers every request with Connection: close
      idle.emplace(server.port());
      idle->send("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
      ASSERT_TRUE(idle->receive());
    }
    Client busy(server.port());
    busy.send("GET /sleep?ms=800 HTTP/1.1\r\nHost: t\r\n\r\n");
    ASSERT_TRUE(wait_in_app(status_port)) << server.log();
    server.signal(SIGTERM);
    if (idle) {
      EXPECT_TRUE(idle->closed_by_server(2s)) << "an idle keep-alive connection outlived TERM";
    }
    auto response = busy.receive(5s);
    ASSERT_TRUE(response);
    EXPECT_EQ(response->status, 200);
    EXPECT_EQ(response->header("connection"), "close");
    EXPECT_TRUE(busy.closed_by_server());
    auto status = server.wait_exit(10s);
    ASSERT_TRUE(status);
    EXPECT_TRUE(status->exited);
    EXPECT_EQ(status->code, 0);
  }
}

TEST(Master, PidfileWrittenAndRemoved) {
  TempDir dir;
  std::string pidfile = dir.file("qilin.pid");
  Server server({"-p", pidfile, "hello"});
  EXPECT_EQ(std::stoi(read_file(pidfile)), server.pid());
  server.signal(SIGTERM);
  ASSERT_TRUE(server.wait_exit(10s));
  EXPECT_TRUE(read_file(pidfile).empty());
}

TEST(Master, UnixSocketServedAndRemovedAtExit) {
  TempDir dir;
  std::string path = dir.file("qilin.sock");
  dir.write("qilin.sock", "stale");  // a stale file is not a live server: replaced
  std::filesystem::remove(path);
  Server server({"-b", "unix:" + path, "-b", "127.0.0.1:0", "hello"});
  EXPECT_TRUE(std::filesystem::is_socket(path));
  server.signal(SIGTERM);
  ASSERT_TRUE(server.wait_exit(10s));
  EXPECT_FALSE(std::filesystem::exists(path));
}

TEST(Master, AppThatFailsToLoadStopsTheServer) {
  auto result = run_qilin({"-b", "127.0.0.1:0", "/nonexistent/libapp.so"});
  EXPECT_EQ(result.code, 4) << result.output;
  EXPECT_NE(result.output.find("cannot load app library"), std::string::npos) << result.output;
  EXPECT_NE(result.output.find("App failed to load"), std::string::npos) << result.output;
}

TEST(Master, SharedLibraryAppIsServed) {
  Server server({QILIN_EXAMPLE_APP});
  auto response = get(server.port(), "/from-c");
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 200);
  EXPECT_NE(response->body.find("greetings from a C library: GET /from-c"), std::string::npos)
      << response->body;
}

TEST(Master, BadConfigFileNamesKeyLineAndColumn) {
  TempDir dir;
  dir.write("bad.yaml", "bind: 127.0.0.1:0\nworkers: many\n");
  auto result = run_qilin({"-c", dir.file("bad.yaml")});
  EXPECT_EQ(result.code, 2) << result.output;
  EXPECT_NE(result.output.find("workers"), std::string::npos) << result.output;
  EXPECT_NE(result.output.find(":2:"), std::string::npos) << result.output;

  dir.write("unknown.yaml", "wrokers: 2\n");
  result = run_qilin({"-c", dir.file("unknown.yaml")});
  EXPECT_EQ(result.code, 2);
  EXPECT_NE(result.output.find("wrokers"), std::string::npos) << result.output;

  result = run_qilin({"-k", "nonsense", "hello"});
  EXPECT_EQ(result.code, 2);
  EXPECT_NE(result.output.find("worker_class"), std::string::npos) << result.output;

  result = run_qilin({"nosuchapp"});
  EXPECT_EQ(result.code, 2);
  EXPECT_NE(result.output.find("no built-in app 'nosuchapp'"), std::string::npos) << result.output;
}

TEST(Master, CheckConfigPrintsTheEffectiveConfiguration) {
  auto result = run_qilin({"--check-config", "-w", "3", "-k", "sync", "demo"});
  EXPECT_EQ(result.code, 0) << result.output;
  EXPECT_NE(result.output.find("workers: 3"), std::string::npos) << result.output;
  EXPECT_NE(result.output.find("app: demo"), std::string::npos) << result.output;
}

TEST(Master, ReloadWithBrokenConfigKeepsServing) {
  TempDir dir;
  dir.write("qilin.yaml", "workers: 1\napp: hello\n");
  Server server({"-c", dir.file("qilin.yaml")});
  auto before = server.worker_pids();
  dir.write("qilin.yaml", "workers: [\n");
  server.signal(SIGHUP);
  ASSERT_TRUE(eventually([&] { return server.log().find("reload failed") != std::string::npos; }))
      << server.log();
  EXPECT_EQ(server.worker_pids(), before);
  auto response = get(server.port(), "/");
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 200);
}

// raw_env (gunicorn's -e): the workers' environment, as the access log's
// %({NAME}e)s atom reads it, and a reload's workers see the reloaded list.
TEST(Master, RawEnvReachesTheWorkersAndFollowsAReload) {
  TempDir dir;
  const std::string access = dir.file("access.log");
  auto config = [&](const std::string& raw_env) {
    return "app: hello\naccess_log_format: '%(U)s %({QILIN_TEST_GREETING}e)s'\naccesslog: " +
           access + "\nraw_env: " + raw_env + "\n";
  };
  dir.write("qilin.yaml", config("[QILIN_TEST_GREETING=hello]"));
  Server server({"-c", dir.file("qilin.yaml")});
  ASSERT_TRUE(get(server.port(), "/first"));
  EXPECT_TRUE(eventually([&] {
    return read_file(access).find("/first hello\n") != std::string::npos;
  })) << read_file(access);

  const auto before = server.worker_pids();
  dir.write("qilin.yaml", config("[]"));
  server.signal(SIGHUP);
  ASSERT_TRUE(eventually([&] {
    auto now = server.worker_pids();
    return now.size() == 1 && now != before;
  })) << server.log();
  ASSERT_TRUE(get(server.port(), "/second"));
  EXPECT_TRUE(eventually([&] {
    return read_file(access).find("/second -\n") != std::string::npos;
  })) << read_file(access);
}

// gunicorn halts when a reload's workers cannot load the app, taking the
// service down; here the workers of the configuration before keep serving.
TEST(Master, ReloadWhoseAppFailsToLoadKeepsThePreviousWorkers) {
  TempDir dir;
  dir.write("qilin.yaml", "workers: 2\napp: hello\n");
  Server server({"-c", dir.file("qilin.yaml")}, 2);
  auto before = server.worker_pids();
  std::sort(before.begin(), before.end());
  dir.write("qilin.yaml", "workers: 2\napp: /nonexistent/libapp.so\n");
  server.signal(SIGHUP);
  ASSERT_TRUE(eventually([&] {
    return server.log().find("reload failed: App failed to load.") != std::string::npos;
  })) << server.log();
  // The failed generation's workers leave; the master and the old ones stay.
  EXPECT_TRUE(eventually([&] {
    auto now = server.worker_pids();
    std::sort(now.begin(), now.end());
    return now == before;
  })) << server.log();
  auto response = get(server.port(), "/");
  ASSERT_TRUE(response);
  EXPECT_EQ(response->body, "Hello, World!");
  // A repaired file reloads as usual.
  dir.write("qilin.yaml", "workers: 1\napp: demo\n");
  server.signal(SIGHUP);
  EXPECT_TRUE(eventually([&] {
    auto now = server.worker_pids();
    return now.size() == 1 && std::find(before.begin(), before.end(), now[0]) == before.end();
  })) << server.log();
  response = get(server.port(), "/json");
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 200);
}

TEST(Master, HupReplacesWorkersAndTtinTtouChangeTheCount) {
  TempDir dir;
  dir.write("qilin.yaml", "workers: 2\napp: hello\n");
  Server server({"-c", dir.file("qilin.yaml")}, 2);
  auto before = server.worker_pids();
  server.signal(SIGHUP);
  ASSERT_TRUE(eventually(
      [&] {
        auto now = server.worker_pids();
        if (now.size() != 2) return false;
        for (pid_t pid : now)
          if (std::find(before.begin(), before.end(), pid) != before.end()) return false;
        return true;
      },
      5s))
      << server.log();
  server.signal(SIGTTIN);
  ASSERT_TRUE(eventually([&] { return server.worker_pids().size() == 3; })) << server.log();
  // Standard signals do not queue: two TTOUs sent at once may arrive as one.
  server.signal(SIGTTOU);
  ASSERT_TRUE(eventually([&] { return server.worker_pids().size() == 2; })) << server.log();
  server.signal(SIGTTOU);
  ASSERT_TRUE(eventually([&] { return server.worker_pids().size() == 1; })) << server.log();
  server.signal(SIGTTOU);  // never below one: the master logs the count it keeps
  ASSERT_TRUE(eventually([&] { return occurrences(server.log(), "Handling signal: ttou") == 3; }))
      << server.log();
  EXPECT_EQ(occurrences(server.log(), "Handling signal: ttou: 1 workers"), 2u) << server.log();
  EXPECT_EQ(server.worker_pids().size(), 1u);
  auto response = get(server.port(), "/");
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 200);
}

// qilin serving the gated test app (gated_boot_app.c), whose init waits
// while the file `gate` is missing and leaves GATE.PID behind once it waits:
// a way to hold a reload's worker in its boot. It starts with the gate open
// and the gate is then closed.
class GatedServer {
 public:
  GatedServer() : gate_(dir_.file("gate")) {
    open_gate();
    ::setenv("QILIN_TEST_BOOT_GATE", gate_.c_str(), 1);
    server_.emplace(std::vector<std::string>{QILIN_GATED_BOOT_APP});
    ::unsetenv("QILIN_TEST_BOOT_GATE");
    std::filesystem::remove(gate_);
  }
  Server& server() { return *server_; }
  void open_gate() const { dir_.write("gate", ""); }
  // HUP, then the worker it started once that waits at the gate; 0 if none does.
  pid_t reload_to_the_gate() {
    const auto before = server_->worker_pids();
    server_->signal(SIGHUP);
    pid_t booting = 0;
    eventually([&] {
      for (pid_t pid : server_->worker_pids())
        if (std::find(before.begin(), before.end(), pid) == before.end() &&
            std::filesystem::exists(gate_ + "." + std::to_string(pid)))
          booting = pid;
      return booting != 0;
    });
    return booting;
  }

 private:
  TempDir dir_;
  std::string gate_;
  std::optional<Server> server_;
};

// A HUP that comes while the previous reload's workers are still booting
// supersedes them: they are told to go at once instead of living on beside a
// generation that will never need them (a HUP storm would pile them up).
TEST(Master, HupDuringABootRetiresTheWorkersItSupersedes) {
  GatedServer gated;
  Server& server = gated.server();
  const pid_t first = gated.reload_to_the_gate();
  ASSERT_NE(first, 0) << server.log();
  const pid_t second = gated.reload_to_the_gate();
  ASSERT_NE(second, 0) << server.log();
  EXPECT_TRUE(eventually([&] {
    auto pids = server.worker_pids();
    return std::find(pids.begin(), pids.end(), first) == pids.end();
  })) << server.log();
  EXPECT_EQ(occurrences(server.log(), superseded_line(first)), 1u) << server.log();
  auto response = get(server.port(), "/");  // the old generation serves meanwhile
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 200);

  gated.open_gate();
  EXPECT_TRUE(eventually([&] { return server.worker_pids() == std::vector<pid_t>{second}; }))
      << server.log();
  response = get(server.port(), "/");
  ASSERT_TRUE(response);
  EXPECT_EQ(response->body, "booted\n");
}

// A booted worker wakes the master through the inherited pipe, so the master
// need not poll the scoreboard while a worker boots: it sleeps, and still
// retires the generation a reload replaced as soon as the new one is up.
// A reload that adds an address keeps the socket of each address it keeps
// (binding that again would fail, EADDRINUSE, and lose its queue), and one
// that drops an address closes it. localhost and 127.0.0.1 are one address.
TEST(Master, ReloadThatChangesBindKeepsTheSocketsOfTheAddressesItKeeps) {
  TempDir dir;
  const uint16_t first = free_port(), second = free_port();
  ASSERT_NE(first, second);
  const std::string first_address = "127.0.0.1:" + std::to_string(first);
  const std::string second_address = "127.0.0.1:" + std::to_string(second);
  dir.write("qilin.yaml", bind_config(first_address));
  Server server({"-c", dir.file("qilin.yaml")});
  const unsigned long first_socket = listening_inode(first);
  ASSERT_NE(first_socket, 0u);

  dir.write("qilin.yaml",
            bind_config("[localhost:" + std::to_string(first) + ", " + second_address + "]"));
  server.signal(SIGHUP);
  ASSERT_TRUE(eventually([&] { return answers(second); })) << server.log();
  EXPECT_EQ(listening_inode(first), first_socket);
  EXPECT_TRUE(answers(first));
  EXPECT_EQ(server.log().find("reload failed"), std::string::npos) << server.log();

  dir.write("qilin.yaml", bind_config(second_address));
  server.signal(SIGHUP);
  EXPECT_TRUE(eventually([&] { return listening_inode(first) == 0; })) << server.log();
  EXPECT_TRUE(answers(second));
}

TEST(Master, MasterSleepsWhileAWorkerBootsAndWakesWhenItIsReady) {
  GatedServer gated;
  Server& server = gated.server();
  const pid_t booting = gated.reload_to_the_gate();
  ASSERT_NE(booting, 0) << server.log();
  auto master_wakeups = [&] {  // each return from poll() is a voluntary switch
    std::ifstream status("/proc/" + std::to_string(server.pid()) + "/status");
    for (std::string line; std::getline(status, line);)
      if (line.starts_with("voluntary_ctxt_switches:")) return std::stol(line.substr(24));
    return -1L;
  };
  const long at_start = master_wakeups();
  std::this_thread::sleep_for(1s);  // nothing happens here: no event to wait for
  const long woken = master_wakeups() - at_start;
  EXPECT_LE(woken, 5) << "polling while a worker boots";  // 20 ms polling woke it ~50 times

  gated.open_gate();
  EXPECT_TRUE(eventually([&] { return server.worker_pids() == std::vector<pid_t>{booting}; }, 3s))
      << server.log();
}

// ps and top show which process is which: the worker carries its IO model.
TEST(Master, WorkersAreNamedForTheirIoModel) {
  auto comm_of = [](const std::filesystem::path& file) {
    std::string name;
    std::ifstream(file) >> name;
    return name;
  };
  auto comm = [&](pid_t pid) { return comm_of("/proc/" + std::to_string(pid) + "/comm"); };
  for (const char* worker_class : {"sync", "threaded", "epoll", "io_uring"}) {
    Server server({"-k", worker_class, "--threads", "3", "hello"});
    EXPECT_EQ(comm(server.pid()), "qilin");
    const auto workers = server.worker_pids();
    ASSERT_EQ(workers.size(), 1u);
    EXPECT_EQ(comm(workers[0]), std::string("qilin-") + worker_class);
    if (std::string_view(worker_class) != "threaded") continue;
    // ... and top -H tells the poller (the worker's main thread) from the pool,
    // whose threads name themselves as they start.
    auto pool_threads = [&] {
      size_t pool = 0;
      for (const auto& task :
           std::filesystem::directory_iterator("/proc/" + std::to_string(workers[0]) + "/task"))
        pool += comm_of(task.path() / "comm") == "qilin-pool";
      return pool;
    };
    EXPECT_TRUE(eventually([&] { return pool_threads() == 3; })) << pool_threads();
  }
}

// user/group/umask as gunicorn has them: the master stays root (it must
// re-bind on a reload), every process it forks runs as the user, and the
// files a worker must reopen or a proxy must connect to are the user's.
TEST(Master, WorkersRunAsTheConfiguredUser) {
  if (::geteuid() != 0) GTEST_SKIP() << "switching users needs root";
  const passwd* nobody = ::getpwnam("nobody");
  if (nobody == nullptr) GTEST_SKIP() << "no 'nobody' account";
  const uid_t uid = nobody->pw_uid;
  const gid_t gid = nobody->pw_gid;
  // "Uid:\treal\teffective\tsaved\tfs" and the same for Gid, then Groups.
  auto status_line = [](pid_t pid, const std::string& field) {
    std::ifstream status("/proc/" + std::to_string(pid) + "/status");
    for (std::string line; std::getline(status, line);)
      if (line.starts_with(field + ":")) return line.substr(field.size() + 1);
    return std::string();
  };
  auto all_four = [](auto id) {
    const std::string text = std::to_string(id);
    return "\t" + text + "\t" + text + "\t" + text + "\t" + text;
  };

  TempDir dir;
  const std::string socket = dir.file("qilin.sock"), access = dir.file("access.log");
  const uint16_t status_port = free_port();
  Server server({"-k", "epoll", "-w", "2", "-u", "nobody", "-m", "027", "-b", "unix:" + socket,
                 "-b", "127.0.0.1:0", "--status-bind", "127.0.0.1:" + std::to_string(status_port),
                 "--access-logfile", access, "hello"},
                2);
  EXPECT_EQ(status_line(server.pid(), "Uid"), all_four(0));
  // The status process logs its start once it has become the user.
  ASSERT_TRUE(
      eventually([&] { return server.log().find("Status process started") != std::string::npos; }));
  ASSERT_EQ(server.worker_pids().size(), 3u);
  for (pid_t child : server.worker_pids()) {
    EXPECT_EQ(status_line(child, "Uid"), all_four(uid)) << child;
    EXPECT_EQ(status_line(child, "Gid"), all_four(gid)) << child;
    // initgroups: nobody's groups, not the root master's.
    std::istringstream groups(status_line(child, "Groups"));
    for (gid_t group; groups >> group;) EXPECT_NE(group, 0u) << child;
  }
  auto answer = get(server.port(), "/");
  ASSERT_TRUE(answer);
  EXPECT_EQ(answer->status, 200);
  auto metrics = get(status_port, "/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_EQ(metrics->status, 200);

  struct stat info {};
  ASSERT_EQ(::stat(socket.c_str(), &info), 0);
  EXPECT_EQ(info.st_uid, uid);
  EXPECT_EQ(info.st_gid, gid);
  EXPECT_EQ(info.st_mode & 0777, 0750u);  // 0777 less the umask
  ASSERT_EQ(::stat(access.c_str(), &info), 0);
  EXPECT_EQ(info.st_uid, uid);

  // logrotate's move, then USR1: the root master makes the new file, and the
  // workers, no longer root, can open it only because it is handed to them.
  std::filesystem::rename(access, access + ".1");
  server.signal(SIGUSR1);
  ASSERT_TRUE(eventually([&] { return occurrences(server.log(), "reopened log files") == 3; }))
      << server.log();
  EXPECT_EQ(server.log().find("cannot reopen"), std::string::npos) << server.log();
  ASSERT_TRUE(eventually([&] {
    get(server.port(), "/after-rotation");
    return read_file(access).find("GET /after-rotation") != std::string::npos;
  })) << server.log();
  ASSERT_EQ(::stat(access.c_str(), &info), 0);
  EXPECT_EQ(info.st_uid, uid);
  EXPECT_EQ(info.st_mode & 0777, 0640u);
}

// A reload that changes the user or the mask, but not `bind`, keeps its
// sockets: their files are handed to the new user and mask all the same.
TEST(Master, ReloadHandsTheSocketFileToTheNewUser) {
  if (::geteuid() != 0) GTEST_SKIP() << "switching users needs root";
  // getpwnam's entry lives in static storage: copy the numbers out at once.
  const passwd* entry = ::getpwnam("nobody");
  if (entry == nullptr) GTEST_SKIP() << "no 'nobody' account";
  const uid_t first_uid = entry->pw_uid;
  entry = ::getpwnam("daemon");
  if (entry == nullptr) GTEST_SKIP() << "no 'daemon' account";
  const uid_t second_uid = entry->pw_uid;
  const gid_t second_gid = entry->pw_gid;
  TempDir dir;
  const std::string socket = dir.file("qilin.sock");
  auto config = [&](const char* user, const char* umask) {
    return std::string("user: ") + user + "\numask: '" + umask + "'\napp: hello\n";
  };
  dir.write("qilin.yaml", config("nobody", "027"));
  // Flags outlive a reload (they are applied on top of the file again).
  Server server({"-c", dir.file("qilin.yaml"), "-b", "unix:" + socket, "-b", "127.0.0.1:0"});
  struct stat info {};
  ASSERT_EQ(::stat(socket.c_str(), &info), 0);
  EXPECT_EQ(info.st_uid, first_uid);
  EXPECT_EQ(info.st_mode & 0777, 0750u);

  const auto before = server.worker_pids();
  dir.write("qilin.yaml", config("daemon", "007"));
  server.signal(SIGHUP);
  ASSERT_TRUE(eventually([&] {
    auto now = server.worker_pids();
    return now.size() == 1 && now != before;
  })) << server.log();
  ASSERT_EQ(::stat(socket.c_str(), &info), 0);
  EXPECT_EQ(info.st_uid, second_uid);
  EXPECT_EQ(info.st_gid, second_gid);
  EXPECT_EQ(info.st_mode & 0777, 0770u);
  auto answer = get(server.port(), "/");
  ASSERT_TRUE(answer);
  EXPECT_EQ(answer->status, 200);
}

TEST(Master, StuckWorkerIsKilledAfterTimeout) {
  Server server({"-k", "sync", "-t", "1", "demo"});
  auto before = server.worker_pids();
  Client client(server.port());
  client.send("GET /block?ms=4000 HTTP/1.1\r\nHost: t\r\n\r\n");
  ASSERT_TRUE(
      eventually([&] { return server.log().find("WORKER TIMEOUT") != std::string::npos; }, 5s))
      << server.log();
  ASSERT_TRUE(eventually(
      [&] {
        auto now = server.worker_pids();
        return now.size() == 1 && now != before;
      },
      5s))
      << server.log();
}

TEST(Upgrade, Usr2StartsANewMasterThatTakesOverThePidfile) {
  TempDir dir;
  const std::string pidfile = dir.file("qilin.pid");
  Server server({"-p", pidfile, "-w", "1", "hello"});
  server.signal(SIGUSR2);
  pid_t upgraded = 0;
  ASSERT_TRUE(eventually([&] {
    upgraded = read_pid(pidfile + ".2");
    return upgraded != 0 && upgraded != server.pid();
  })) << server.log();
  // Both masters serve the same sockets; the new one's workers boot too.
  ASSERT_TRUE(
      eventually([&] { return server.log().find("Upgraded from master") != std::string::npos; }));
  auto response = get(server.port(), "/");
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 200);

  server.signal(SIGTERM);  // the operator retires the old master
  auto status = server.wait_exit(10s);
  ASSERT_TRUE(status);
  EXPECT_EQ(status->code, 0);
  ASSERT_TRUE(eventually([&] { return read_pid(pidfile) == upgraded; })) << server.log();
  EXPECT_TRUE(read_file(pidfile + ".2").empty());
  for (int i = 0; i < 5; ++i) {
    auto after = get(server.port(), "/");
    ASSERT_TRUE(after) << "request " << i << " after the old master left";
    EXPECT_EQ(after->status, 200);
  }
  ::kill(upgraded, SIGTERM);
  EXPECT_TRUE(eventually([&] { return !process_alive(upgraded); }, 10s));
  EXPECT_TRUE(read_file(pidfile).empty());
}

// Once the old master has gone, the upgraded one owns the listeners it
// inherited: a reload that adds an address binds it, as any master's does.
TEST(Upgrade, TheUpgradedMasterBindsWhatAReloadAdds) {
  TempDir dir;
  const uint16_t first = free_port(), second = free_port();
  ASSERT_NE(first, second);
  const std::string pidfile = dir.file("qilin.pid");
  const std::string first_address = "127.0.0.1:" + std::to_string(first);
  dir.write("qilin.yaml", bind_config(first_address) + "pidfile: " + pidfile + "\n");
  Server server({"-c", dir.file("qilin.yaml")});
  const pid_t upgraded = finish_an_upgrade(server, pidfile);
  ASSERT_NE(upgraded, 0) << server.log();

  dir.write("qilin.yaml",
            bind_config("[" + first_address + ", 127.0.0.1:" + std::to_string(second) + "]") +
                "pidfile: " + pidfile + "\n");
  ::kill(upgraded, SIGHUP);
  EXPECT_TRUE(eventually([&] { return answers(second); })) << server.log();
  EXPECT_TRUE(answers(first));
  ::kill(upgraded, SIGTERM);
  EXPECT_TRUE(eventually([&] { return !process_alive(upgraded); }, 10s));
}

// The old master leaves the socket file to the new one, which removes it
// when it stops in turn (no stale file for the next start to step over).
TEST(Upgrade, TheUpgradedMasterRemovesTheSocketFileItInheritedAtExit) {
  TempDir dir;
  const std::string pidfile = dir.file("qilin.pid");
  const std::string path = dir.file("qilin.sock");
  Server server({"-b", "unix:" + path, "-b", "127.0.0.1:0", "-p", pidfile, "hello"});
  const pid_t upgraded = finish_an_upgrade(server, pidfile);
  ASSERT_NE(upgraded, 0) << server.log();
  EXPECT_TRUE(std::filesystem::is_socket(path));
  ::kill(upgraded, SIGTERM);
  EXPECT_TRUE(eventually([&] { return !process_alive(upgraded); }, 10s));
  EXPECT_FALSE(std::filesystem::exists(path)) << server.log();
}

// The new master binds the status socket only once the old one has left it:
// that late file is handed to the workers' user like the first.
TEST(Upgrade, TheNewMastersStatusSocketGoesToTheWorkersUser) {
  if (::geteuid() != 0) GTEST_SKIP() << "switching users needs root";
  const passwd* entry = ::getpwnam("nobody");
  if (entry == nullptr) GTEST_SKIP() << "no 'nobody' account";
  const uid_t nobody = entry->pw_uid;
  TempDir dir;
  const std::string pidfile = dir.file("qilin.pid"), status = dir.file("status.sock");
  Server server(
      {"-u", "nobody", "-m", "007", "-p", pidfile, "--status-bind", "unix:" + status, "hello"});
  struct stat first {};
  ASSERT_EQ(::stat(status.c_str(), &first), 0);
  EXPECT_EQ(first.st_uid, nobody);
  server.signal(SIGUSR2);
  pid_t upgraded = 0;
  ASSERT_TRUE(eventually([&] { return (upgraded = read_pid(pidfile + ".2")) != 0; }))
      << server.log();
  server.signal(SIGTERM);
  ASSERT_TRUE(server.wait_exit(10s));
  ASSERT_TRUE(eventually([&] {
    return server.log().find("Status at: unix:" + status + " (" + std::to_string(upgraded) + ")") !=
           std::string::npos;
  })) << server.log();
  struct stat rebound {};
  EXPECT_TRUE(eventually([&] {  // bound, then handed over
    return ::stat(status.c_str(), &rebound) == 0 && rebound.st_uid == nobody &&
           (rebound.st_mode & 0777) == 0770;
  })) << "uid "
      << rebound.st_uid << ", mode " << std::oct << (rebound.st_mode & 0777);
  ::kill(upgraded, SIGTERM);
  EXPECT_TRUE(eventually([&] { return !process_alive(upgraded); }, 10s));
}

TEST(Upgrade, TermToTheNewMasterRollsBack) {
  TempDir dir;
  const std::string pidfile = dir.file("qilin.pid");
  Server server({"-p", pidfile, "-w", "1", "hello"});
  server.signal(SIGUSR2);
  pid_t upgraded = 0;
  ASSERT_TRUE(eventually([&] { return (upgraded = read_pid(pidfile + ".2")) != 0; }))
      << server.log();
  ::kill(upgraded, SIGTERM);
  ASSERT_TRUE(eventually([&] {
    return server.log().find("upgrade rolled back") != std::string::npos;
  })) << server.log();
  EXPECT_EQ(read_pid(pidfile), server.pid());
  auto response = get(server.port(), "/");
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 200);
}

// gunicorn's --chdir: relative paths are found in `chdir`, the -c file and
// a relative `chdir` where qilin started, however often a reload moves it.
TEST(Master, ChdirIsWhereRelativePathsAreFoundAndAReloadMovesThePidfile) {
  TempDir root;
  for (const char* site : {"one", "two"}) {
    std::filesystem::create_directories(root.file(std::string(site) + "/static"));
    root.write(std::string(site) + "/static/site.txt", site);
  }
  root.write("q.yaml", "chdir: one\npidfile: q.pid\n");
  Server server({"-c", "q.yaml", "-b", "127.0.0.1:0", "-b", "unix:q.sock", "demo"}, 1, root.path());
  EXPECT_EQ(read_pid(root.file("one/q.pid")), server.pid());
  auto page = get(server.port(), "/static/site.txt");
  ASSERT_TRUE(page);
  EXPECT_EQ(page->body, "one");
  struct stat socket_file {};
  EXPECT_EQ(::stat(root.file("one/q.sock").c_str(), &socket_file), 0);
  // The master keeps its start directory open; what it forks does not.
  for (pid_t child : server.worker_pids())
    for (const auto& fd : std::filesystem::directory_iterator(
             "/proc/" + std::to_string(child) + "/fd", std::filesystem::directory_options{}))
      EXPECT_NE(std::filesystem::read_symlink(fd.path()).string(), root.path()) << child;

  root.write("q.yaml", "chdir: two\npidfile: q.pid\n");
  server.signal(SIGHUP);
  ASSERT_TRUE(eventually([&] { return read_pid(root.file("two/q.pid")) == server.pid(); }))
      << server.log();
  EXPECT_FALSE(std::filesystem::exists(root.file("one/q.pid")));
  ASSERT_TRUE(eventually([&] {
    auto moved = get(server.port(), "/static/site.txt");
    return moved && moved->body == "two";
  })) << server.log();

  // A directory that is not there fails the reload, not the server.
  root.write("q.yaml", "chdir: three\npidfile: q.pid\n");
  server.signal(SIGHUP);
  ASSERT_TRUE(eventually([&] {
    return server.log().find("q.yaml:1:1: key 'chdir': cannot change directory to 'three'") !=
           std::string::npos;
  })) << server.log();
  auto kept = get(server.port(), "/static/site.txt");
  ASSERT_TRUE(kept);
  EXPECT_EQ(kept->body, "two");

  // The new binary reads the same relative -c from where qilin started.
  root.write("q.yaml", "chdir: two\npidfile: q.pid\n");
  server.signal(SIGUSR2);
  pid_t upgraded = 0;
  ASSERT_TRUE(eventually([&] { return (upgraded = read_pid(root.file("two/q.pid.2"))) != 0; }))
      << server.log();
  ::kill(upgraded, SIGTERM);  // roll back
  ASSERT_TRUE(eventually([&] { return !process_alive(upgraded); }, 10s)) << server.log();

  server.signal(SIGTERM);
  ASSERT_TRUE(server.wait_exit(10s));
  EXPECT_FALSE(std::filesystem::exists(root.file("two/q.pid")));
  EXPECT_FALSE(std::filesystem::exists(root.file("one/q.sock")))
      << "the socket bound in the first directory is removed from there";
}

// gunicorn's preload_app: the master runs the app's init, the workers inherit it.
TEST(Preload, TheMasterLoadsTheAppOnceAndTheWorkersInheritIt) {
  auto initialised_by = [](uint16_t port) {
    auto response = get(port, "/");
    return response ? std::atoi(response->header("x-initialised-by").c_str()) : 0;
  };
  {
    Server server({"-w", "2", QILIN_GATED_BOOT_APP}, 2);
    const auto workers = server.worker_pids();
    EXPECT_NE(std::find(workers.begin(), workers.end(), initialised_by(server.port())),
              workers.end())
        << "without preload_app each worker loads the app";
  }
  TempDir dir;
  dir.write("q.yaml", std::string("preload_app: true\napp: ") + QILIN_GATED_BOOT_APP + "\n");
  Server server({"-c", dir.file("q.yaml"), "-w", "2"}, 2);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(initialised_by(server.port()), server.pid());
  EXPECT_EQ(occurrences(server.log(), "Preloaded the app"), 1u) << server.log();

  // A reload loads the app again in the master: one that cannot load is
  // refused there, and the running workers never notice.
  const auto before = server.worker_pids();
  dir.write("q.yaml", "preload_app: true\napp: /nonexistent/app.so\n");
  server.signal(SIGHUP);
  ASSERT_TRUE(eventually([&] {
    return server.log().find(
               "reload failed, keeping the running configuration: cannot load app "
               "library") != std::string::npos;
  })) << server.log();
  EXPECT_EQ(server.worker_pids(), before);
  EXPECT_EQ(server.log().find("Booting worker", server.log().find("reload failed")),
            std::string::npos);
  EXPECT_EQ(initialised_by(server.port()), server.pid());
}

TEST(Preload, AnAppThatCannotLoadStopsTheStartBeforeAnyWorker) {
  RunResult run = run_qilin({"--preload", "-b", "127.0.0.1:0", "/nonexistent/app.so"});
  EXPECT_EQ(run.code, 4) << run.output;
  EXPECT_NE(run.output.find("cannot load app library"), std::string::npos) << run.output;
  EXPECT_EQ(run.output.find("Booting worker"), std::string::npos) << run.output;
}

TEST(Master, CrashLoopBacksOff) {
  Server server({"-w", "1", "hello"});
  for (int crash = 0; crash < 3; ++crash) {
    std::vector<pid_t> pids;
    ASSERT_TRUE(eventually([&] { return (pids = server.worker_pids()).size() == 1; }, 5s))
        << server.log();
    ::kill(pids[0], SIGKILL);
    ASSERT_TRUE(
        eventually([&] { return !process_alive(pids[0]) || server.worker_pids() != pids; }));
  }
  ASSERT_TRUE(eventually([&] {
    return server.log().find("crashed soon after starting") != std::string::npos;
  })) << server.log();
  ASSERT_TRUE(eventually([&] { return server.worker_pids().size() == 1; }, 5s)) << server.log();
  auto response = get(server.port(), "/");
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 200);
}

TEST(Master, ReusePortGivesEachWorkerItsOwnSocket) {
  Server server({"--reuse-port", "-w", "2", "hello"}, 2);
  EXPECT_EQ(occurrences(server.log(), "with SO_REUSEPORT"), 2u) << server.log();
  for (int i = 0; i < 10; ++i) {
    auto response = get(server.port(), "/");
    ASSERT_TRUE(response);
    EXPECT_EQ(response->status, 200);
  }
}

}  // namespace
}  // namespace qilin::testing

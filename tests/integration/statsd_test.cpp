// StatsD output end to end: qilin with --statsd-host pointed at a UDP socket
// this test bound on 127.0.0.1, a few requests, and the datagrams the status
// process sends once a second read back as a StatsD server would (counters
// summed, the gauge's last value kept). Also: with statsd_host alone the
// status process listens on nothing, and a destination where nothing listens
// is neither a logged error nor a respawn loop. Every wait is bounded.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#include "tests/integration/harness.hpp"

namespace qilin::testing {
namespace {

// A StatsD server's view of what arrived: counters summed, gauges' last value.
struct Received {
  std::map<std::string, double> counters;
  std::map<std::string, double> gauges;
  std::vector<std::string> lines;
};

class StatsdListener {
 public:
  StatsdListener() : fd_(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)) {
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof address;
    if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &length) != 0)
      throw std::runtime_error("cannot bind a UDP socket on 127.0.0.1");
    port_ = ntohs(address.sin_port);
  }
  ~StatsdListener() { ::close(fd_); }
  StatsdListener(const StatsdListener&) = delete;
  StatsdListener& operator=(const StatsdListener&) = delete;

  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }

  // Reads datagrams into `into` until `done` holds or `limit` passes.
  bool receive_until(Received& into, const std::function<bool(const Received&)>& done,
                     std::chrono::milliseconds limit = 10s) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!done(into)) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return false;
      pollfd watched{.fd = fd_, .events = POLLIN, .revents = 0};
      if (::poll(&watched, 1, static_cast<int>(left.count())) <= 0) continue;
      char buffer[65536];
      const ssize_t n = ::recv(fd_, buffer, sizeof buffer, 0);
      if (n <= 0) continue;
      EXPECT_LE(static_cast<size_t>(n), 1432u) << "a datagram over the safe payload size";
      std::istringstream datagram(std::string(buffer, static_cast<size_t>(n)));
      for (std::string line; std::getline(datagram, line);) record(into, line);
    }
    return true;
  }

  // Drops every datagram already here.
  void drain() {
    char buffer[65536];
    while (::recv(fd_, buffer, sizeof buffer, MSG_DONTWAIT) > 0) {
    }
  }

 private:
  // NAME:VALUE|TYPE[|@RATE]
  static void record(Received& into, const std::string& line) {
    into.lines.push_back(line);
    const size_t colon = line.find(':');
    const size_t bar = line.find('|');
    ASSERT_TRUE(colon != std::string::npos && bar != std::string::npos && colon < bar) << line;
    const std::string name = line.substr(0, colon);
    const double value = std::stod(line.substr(colon + 1, bar - colon - 1));
    const std::string type = line.substr(bar + 1, line.find('|', bar + 1) - bar - 1);
    if (type == "c") into.counters[name] += value;
    if (type == "g") into.gauges[name] = value;
  }

  int fd_;
  uint16_t port_ = 0;
};

void send_requests(uint16_t port, int count) {
  for (int i = 0; i < count; ++i) {
    auto response = get(port, "/");
    ASSERT_TRUE(response) << "request " << i;
    ASSERT_EQ(response->status, 200);
  }
}

TEST(Statsd, GunicornCountersAndWorkersGauge) {
  StatsdListener statsd;
  Server server({"-w", "2", "--statsd-host", statsd.address()}, 2);
  Received received;
  ASSERT_TRUE(statsd.receive_until(received, [](const Received& r) {
    auto it = r.gauges.find("gunicorn.workers");
    return it != r.gauges.end() && it->second == 2;
  })) << server.log();

  constexpr int kRequests = 20;
  send_requests(server.port(), kRequests);
  ASSERT_TRUE(statsd.receive_until(received, [](const Received& r) {
    auto it = r.counters.find("gunicorn.requests");
    return it != r.counters.end() && it->second >= kRequests;
  })) << server.log();
  EXPECT_EQ(received.gauges["gunicorn.workers"], 2);
  // Every request was timed: the duration's samples come with them.
  bool timed = false;
  for (const auto& line : received.lines)
    if (line.starts_with("gunicorn.request.duration:") && line.find("|ms") != std::string::npos)
      timed = true;
  EXPECT_TRUE(timed);
}

// Windows received so far: each ends with the workers gauge.
size_t windows(const Received& received) {
  return static_cast<size_t>(
      std::count_if(received.lines.begin(), received.lines.end(),
                    [](const std::string& line) { return line.starts_with("gunicorn.workers:"); }));
}

TEST(Statsd, RequestsCountedByStatusCode) {
  StatsdListener statsd;
  Server server({"--statsd-host", statsd.address(), "demo"});
  for (int i = 0; i < 3; ++i) {
    auto response = get(server.port(), "/");
    ASSERT_TRUE(response);
    ASSERT_EQ(response->status, 200);
  }
  for (int i = 0; i < 2; ++i) {
    auto response = get(server.port(), "/no-such-route");
    ASSERT_TRUE(response);
    ASSERT_EQ(response->status, 404);
  }
  Received received;
  ASSERT_TRUE(statsd.receive_until(received, [](const Received& r) {
    auto ok = r.counters.find("gunicorn.request.status.200");
    auto missing = r.counters.find("gunicorn.request.status.404");
    return ok != r.counters.end() && ok->second >= 3 && missing != r.counters.end() &&
           missing->second >= 2;
  })) << server.log();
  // Two more windows, so that a count sent twice would show.
  const size_t seen = windows(received);
  ASSERT_TRUE(statsd.receive_until(
      received, [&](const Received& r) { return windows(r) >= seen + 2; }, 5s));
  EXPECT_EQ(received.counters["gunicorn.request.status.200"], 3);
  EXPECT_EQ(received.counters["gunicorn.request.status.404"], 2);
  EXPECT_EQ(received.counters["gunicorn.requests"], 5);
  for (const auto& [name, count] : received.counters) {
    if (name.starts_with("gunicorn.request.status.")) {
      EXPECT_TRUE(name.ends_with(".200") || name.ends_with(".404")) << name << " " << count;
    }
  }
}

TEST(Statsd, PrefixIsJoinedWithADot) {
  StatsdListener statsd;
  Server server({"--statsd-host", statsd.address(), "--statsd-prefix", "shop.web"});
  send_requests(server.port(), 3);
  Received received;
  ASSERT_TRUE(statsd.receive_until(received, [](const Received& r) {
    auto it = r.counters.find("shop.web.gunicorn.requests");
    return it != r.counters.end() && it->second >= 3;
  })) << server.log();
  EXPECT_EQ(received.gauges["shop.web.gunicorn.workers"], 1);
  for (const auto& line : received.lines)
    EXPECT_TRUE(line.starts_with("shop.web.gunicorn.")) << line;
}

// The master's child named qilin-status, once it is there (0 if never).
pid_t status_process(const Server& server) {
  pid_t found = 0;
  eventually([&] {
    for (pid_t child : server.worker_pids()) {
      std::string name;
      std::ifstream("/proc/" + std::to_string(child) + "/comm") >> name;
      if (name == "qilin-status") found = child;
    }
    return found != 0;
  });
  return found;
}

std::set<std::string> listening_socket_inodes() {
  std::set<std::string> inodes;
  for (const char* table : {"/proc/net/tcp", "/proc/net/tcp6"}) {
    std::ifstream in(table);
    std::string line;
    std::getline(in, line);  // the header
    while (std::getline(in, line)) {
      std::istringstream fields(line);
      std::string slot, local, remote, state, queues, timer, retransmits, uid, timeout, inode;
      fields >> slot >> local >> remote >> state >> queues >> timer >> retransmits >> uid >>
          timeout >> inode;
      if (state == "0A") inodes.insert(inode);  // TCP_LISTEN
    }
  }
  return inodes;
}

TEST(Statsd, AloneTheStatusProcessListensOnNothing) {
  StatsdListener statsd;
  Server server({"--statsd-host", statsd.address()});
  Received received;
  ASSERT_TRUE(statsd.receive_until(received, [](const Received& r) {
    return r.gauges.count("gunicorn.workers") > 0;
  })) << server.log();
  const pid_t status_pid = status_process(server);
  ASSERT_NE(status_pid, 0) << server.log();
  const auto listening = listening_socket_inodes();
  ASSERT_FALSE(listening.empty());  // the app's own listener, at least
  for (const auto& entry :
       std::filesystem::directory_iterator("/proc/" + std::to_string(status_pid) + "/fd")) {
    std::error_code error;
    const std::string target = std::filesystem::read_symlink(entry.path(), error).string();
    if (!target.starts_with("socket:[")) continue;
    const std::string inode = target.substr(8, target.size() - 9);
    EXPECT_EQ(listening.count(inode), 0u) << "the status process holds a listener: " << target;
  }
  EXPECT_EQ(server.log().find("Status at:"), std::string::npos);
}

// Datagrams the kernel found no socket for ("Udp: NoPorts" in /proc/net/snmp,
// this network namespace's): each draws an ICMP port unreachable, which the
// sender's next send() reports as ECONNREFUSED.
uint64_t udp_no_ports() {
  std::ifstream snmp("/proc/net/snmp");
  std::vector<std::string> names;
  for (std::string line; std::getline(snmp, line);) {
    if (!line.starts_with("Udp: ")) continue;
    std::istringstream fields(line.substr(5));
    if (names.empty()) {
      for (std::string name; fields >> name;) names.push_back(name);
      continue;
    }
    for (size_t i = 0; i < names.size(); ++i) {
      uint64_t value = 0;
      fields >> value;
      if (names[i] == "NoPorts") return value;
    }
  }
  return 0;
}

TEST(Statsd, NobodyListeningIsNeitherAnErrorNorALoop) {
  std::string address;
  {
    StatsdListener gone;  // its port, closed again: nothing listens there
    address = gone.address();
  }
  const uint64_t refused_before = udp_no_ports();
  Server server({"--statsd-host", address});
  const pid_t status_pid = status_process(server);
  ASSERT_NE(status_pid, 0) << server.log();
  // Three datagrams turned away mean at least two sends that reported the
  // refusal in between (other programs here may add to the count: then this
  // waits less, and checks a little less).
  ASSERT_TRUE(eventually([&] { return udp_no_ports() >= refused_before + 3; }, 15s));
  send_requests(server.port(), 2);
  // Debug lines are not flushed on their own, so none is looked for: the
  // point is that nothing louder appears and the status process is not
  // restarted.
  std::istringstream log(server.log());
  for (std::string line; std::getline(log, line);) {
    EXPECT_EQ(line.find("[W]"), std::string::npos) << line;
    EXPECT_EQ(line.find("[E]"), std::string::npos) << line;
  }
  EXPECT_EQ(::kill(status_pid, 0), 0) << server.log();
  EXPECT_EQ(::kill(server.pid(), 0), 0);
}

// While a USR2 upgrade runs both masters, each status process sends: their
// counters add up at the StatsD server, but two workers gauges would take
// turns, so the old master leaves the gauge to the new one until the new
// one goes (a rollback) or the old one does.
TEST(Statsd, DuringAnUpgradeOnlyTheNewMasterSendsTheWorkersGauge) {
  StatsdListener statsd;
  TempDir dir;
  dir.write("qilin.yaml", "workers: 1\n");
  const std::string pidfile = dir.file("qilin.pid");
  const uint16_t status_port = free_port();
  Server server({"-c", dir.file("qilin.yaml"), "-p", pidfile, "--statsd-host", statsd.address(),
                 "--status-bind", "127.0.0.1:" + std::to_string(status_port), "hello"});
  auto gauge_is = [](double workers) {
    return [workers](const Received& r) {
      auto it = r.gauges.find("gunicorn.workers");
      return it != r.gauges.end() && it->second == workers;
    };
  };
  Received received;
  ASSERT_TRUE(statsd.receive_until(received, gauge_is(1))) << server.log();

  dir.write("qilin.yaml", "workers: 3\n");  // what the upgraded master reads
  server.signal(SIGUSR2);
  pid_t upgraded = 0;
  ASSERT_TRUE(eventually([&] { return (upgraded = read_pid(pidfile + ".2")) != 0; }))
      << server.log();
  struct StopOnExit {  // whatever happens below, no master is left behind
    pid_t pid;
    ~StopOnExit() {
      ::kill(pid, SIGTERM);
      if (!eventually([&] { return !process_alive(pid); }, 10s)) ::kill(pid, SIGKILL);
    }
  } stop_upgraded{upgraded};
  received = {};
  ASSERT_TRUE(statsd.receive_until(received, gauge_is(3))) << server.log();

  // The old master's status process (it keeps the status address during an
  // upgrade) has seen the upgrade once its /status.json names the new master.
  // It samples, sends and answers in one thread, so what it sent before that
  // answer is already queued here: dropped, it cannot be mistaken for later.
  ASSERT_TRUE(eventually([&] {
    auto response = get(status_port, "/status.json");
    if (!response || response->status != 200) return false;
    return nlohmann::json::parse(response->body)["server"]["upgraded_master_pid"] == upgraded;
  })) << server.log();
  statsd.drain();
  // Three gauges from the new master span two of its seconds, so the old
  // status process has sampled and sent at least once in between.
  received = {};
  const auto sent = [&](const std::string& line) {
    return std::count(received.lines.begin(), received.lines.end(), line);
  };
  ASSERT_TRUE(statsd.receive_until(received, [&](const Received&) {
    return sent("gunicorn.workers:3|g") >= 3;
  })) << server.log();
  EXPECT_EQ(sent("gunicorn.workers:1|g"), 0) << server.log();

  ::kill(upgraded, SIGTERM);  // roll back: the old master reports the gauge again
  received = {};
  ASSERT_TRUE(statsd.receive_until(received, gauge_is(1))) << server.log();
}

}  // namespace
}  // namespace qilin::testing

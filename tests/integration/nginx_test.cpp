// qilin behind a real nginx, configured by the repository's own
// deploy/nginx/qilin.conf: the file is read as a template, its socket path,
// ports and proxy_pass target are substituted, and it is wrapped in a main
// configuration that keeps every file nginx writes inside a temp dir.
//
// One suite per worker class and upstream (unix socket, TCP). nginx runs in
// the foreground, in its own process group, with PR_SET_PDEATHSIG, and is
// stopped in teardown; every wait is bounded.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <set>
#include <sstream>
#include <stdexcept>
#include <tuple>

#include "tests/integration/harness.hpp"

namespace qilin::testing {
namespace {

enum class Upstream { Unix, Tcp };

std::string find_nginx() {
  std::vector<std::string> candidates = {"/usr/sbin/nginx", "/usr/local/sbin/nginx"};
  if (const char* path = std::getenv("PATH")) {
    std::stringstream dirs(path);
    for (std::string dir; std::getline(dirs, dir, ':');) candidates.push_back(dir + "/nginx");
  }
  for (const auto& candidate : candidates)
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  return {};
}

// `nginx -V`: the configure arguments, to know which temp-path directives
// this build has (each module compiled out also drops its directive).
std::string nginx_build_options(const std::string& binary) {
  std::string command = binary + " -V 2>&1";
  std::string output;
  if (FILE* pipe = ::popen(command.c_str(), "r")) {
    char chunk[4096];
    size_t n;
    while ((n = std::fread(chunk, 1, sizeof chunk, pipe)) > 0) output.append(chunk, n);
    ::pclose(pipe);
  }
  return output;
}

// nginx cannot bind port 0 and tell us the result: Nginx takes free_port()
// and retries with another if it is taken by the time nginx binds it.

bool accepts_connections(uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bool connected = ::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0;
  ::close(fd);
  return connected;
}

// Every occurrence; a template line the test relies on that has gone missing
// is an error here, not a puzzling proxy failure later.
void substitute(std::string& text, const std::string& from, const std::string& to) {
  size_t count = 0;
  for (size_t at = 0; (at = text.find(from, at)) != std::string::npos; at += to.size(), ++count)
    text.replace(at, from.size(), to);
  if (count == 0)
    throw std::runtime_error("deploy/nginx/qilin.conf no longer contains '" + from +
                             "', which nginx_test substitutes");
}

// A foreground nginx serving `site` (an http{}-level file with `listen 80;`)
// on 127.0.0.1 with everything it writes under `prefix`.
class Nginx {
 public:
  Nginx(const std::string& binary, const std::string& site, const std::string& prefix)
      : prefix_(prefix) {
    for (int attempt = 0; attempt < 3; ++attempt) {
      port_ = free_port();
      std::string config = site;
      substitute(config, "listen 80;", "listen 127.0.0.1:" + std::to_string(port_) + ";");
      write(prefix_ + "/nginx.conf", main_config(binary, config));
      start(binary);
      bool exited = false;
      bool ready = eventually(
          [&] {
            if (::waitpid(pid_, nullptr, WNOHANG) == pid_) return exited = true;
            return accepts_connections(port_);
          },
          10s);
      if (ready && !exited) return;
      if (!exited) stop();
      pid_ = -1;
      // Someone took the port between free_port() and nginx's bind: again.
      if (log().find("Address already in use") == std::string::npos) break;
    }
    throw std::runtime_error("nginx did not start; its error log:\n" + log());
  }

  ~Nginx() {
    if (pid_ > 0) stop();
  }

  uint16_t port() const { return port_; }
  std::string log() const { return read_file(prefix_ + "/error.log"); }

 private:
  std::string main_config(const std::string& binary, const std::string& site) const {
    std::string text = "daemon off;\nmaster_process on;\nworker_processes 1;\n";
    text += "pid " + prefix_ + "/nginx.pid;\n";
    text += "error_log " + prefix_ + "/error.log notice;\n";
    // As root, nginx's workers would switch to `nobody`, who can neither
    // enter the 0700 temp dir nor connect to qilin's socket inside it.
    if (::geteuid() == 0) text += "user root;\n";
    text += "events {\n    worker_connections 64;\n}\n";
    text += "http {\n    access_log " + prefix_ + "/nginx-access.log;\n";
    text += "    client_body_temp_path " + prefix_ + "/client_body;\n";
    text += "    proxy_temp_path " + prefix_ + "/proxy;\n";
    std::string options = nginx_build_options(binary);
    for (std::string module : {"fastcgi", "uwsgi", "scgi"})
      if (options.find("--without-http_" + module + "_module") == std::string::npos)
        text += "    " + module + "_temp_path " + prefix_ + "/" + module + ";\n";
    return text + site + "\n}\n";
  }

  static void write(const std::string& path, const std::string& content) {
    FILE* file = std::fopen(path.c_str(), "w");
    if (!file) throw std::runtime_error("cannot write " + path);
    std::fwrite(content.data(), 1, content.size(), file);
    std::fclose(file);
  }

  void start(const std::string& binary) {
    // Everything the child needs is built before fork: after it, only
    // async-signal-safe calls.
    std::vector<std::string> args = {
        "nginx", "-p", prefix_ + "/", "-c", prefix_ + "/nginx.conf", "-e", prefix_ + "/error.log"};
    std::vector<char*> argv;
    for (auto& arg : args) argv.push_back(arg.data());
    argv.push_back(nullptr);
    const pid_t parent = ::getpid();
    pid_ = ::fork();
    if (pid_ < 0) throw std::runtime_error("fork failed");
    if (pid_ != 0) return;
    // Own process group, so teardown reaches nginx's workers too; TERM (a
    // fast shutdown that also stops the workers) if this test process dies.
    ::setpgid(0, 0);
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (::getppid() != parent) ::_exit(127);
    ::execv(binary.c_str(), argv.data());
    ::_exit(127);
  }

  void stop() {
    ::kill(pid_, SIGTERM);
    if (!eventually([&] { return ::waitpid(pid_, nullptr, WNOHANG) == pid_; }, 5s)) {
      ::kill(-pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    ::kill(-pid_, SIGKILL);  // a worker that outlived its master
    pid_ = -1;
  }

  std::string prefix_;
  pid_t pid_ = -1;
  uint16_t port_ = 0;
};

// Why `-k NAME` cannot run here (empty when it can): the worker class may be
// missing from this build or need a kernel feature the machine lacks.
std::string unsupported(const std::string& worker_class) {
  static std::map<std::string, std::string> known;
  auto found = known.find(worker_class);
  if (found != known.end()) return found->second;
  auto result = run_qilin({"--check-config", "-k", worker_class, "demo"});
  std::string reason =
      result.code == 0 ? ""
                       : "qilin --check-config -k " + worker_class + " failed: " + result.output;
  return known[worker_class] = reason;
}

// The socket inodes a process holds open ("socket:[12345]" in /proc/PID/fd).
std::set<std::string> open_sockets(pid_t pid) {
  std::set<std::string> sockets;
  std::error_code error;
  for (const auto& entry :
       std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd", error)) {
    auto target = std::filesystem::read_symlink(entry.path(), error);
    if (!error && target.native().rfind("socket:", 0) == 0) sockets.insert(target.native());
  }
  return sockets;
}

// The TCP connections with one end on 127.0.0.1:PORT that the kernel knows
// of, in any state but LISTEN: TIME_WAIT keeps a closed one listed for 60 s.
// Each is the sorted pair of its endpoints, so both ends count once.
std::set<std::pair<std::string, std::string>> tcp_connections(uint16_t port) {
  std::set<std::pair<std::string, std::string>> connections;
  std::stringstream table(read_file("/proc/net/tcp"));
  std::string line;
  std::getline(table, line);  // header
  auto port_of = [](const std::string& endpoint) {
    return static_cast<uint16_t>(std::stoul(endpoint.substr(endpoint.find(':') + 1), nullptr, 16));
  };
  while (std::getline(table, line)) {
    std::stringstream fields(line);
    std::string slot, local, remote, state;
    if (!(fields >> slot >> local >> remote >> state) || state == "0A") continue;  // 0A: LISTEN
    if (port_of(local) != port && port_of(remote) != port) continue;
    connections.insert(std::minmax(local, remote));
  }
  return connections;
}

class NginxProxy : public ::testing::TestWithParam<std::tuple<std::string, Upstream>> {
 protected:
  void SetUp() override {
    nginx_binary_ = find_nginx();
    if (nginx_binary_.empty())
      GTEST_SKIP() << "no nginx binary (looked in /usr/sbin, /usr/local/sbin and PATH); "
                      "deploy/install-deps.sh installs Debian's nginx-light";
    if (auto reason = unsupported(worker_class()); !reason.empty()) GTEST_SKIP() << reason;
  }

  const std::string& worker_class() const { return std::get<0>(GetParam()); }
  Upstream upstream() const { return std::get<1>(GetParam()); }

  // qilin (one worker, both listeners, demo app) and nginx in front of it.
  void start(const std::vector<std::string>& extra = {}) {
    std::vector<std::string> args = {"-k",
                                     worker_class(),
                                     "-w",
                                     "1",
                                     "-b",
                                     "unix:" + socket_path(),
                                     "-b",
                                     "127.0.0.1:0",
                                     "--access-logfile",
                                     access_log_path()};
    args.insert(args.end(), extra.begin(), extra.end());
    args.push_back("demo");
    qilin_.emplace(args);

    std::string site = read_file(QILIN_SOURCE_DIR "/deploy/nginx/qilin.conf");
    substitute(site, "unix:/run/qilin/qilin.sock", "unix:" + socket_path());
    substitute(site, "127.0.0.1:8000", "127.0.0.1:" + std::to_string(qilin_->port()));
    if (upstream() == Upstream::Tcp)
      substitute(site, "proxy_pass http://qilin;", "proxy_pass http://qilin_tcp;");
    nginx_.emplace(nginx_binary_, site, dir_.path());
  }

  uint16_t port() const { return nginx_->port(); }
  std::string socket_path() const { return dir_.file("qilin.sock"); }
  std::string access_log_path() const { return dir_.file("qilin-access.log"); }

  // qilin's access-log lines; flushed once a second, so wait for `count`.
  std::vector<std::string> access_log(size_t count) const {
    std::vector<std::string> lines;
    eventually(
        [&] {
          lines.clear();
          std::stringstream text(read_file(access_log_path()));
          for (std::string line; std::getline(text, line);) lines.push_back(line);
          return lines.size() >= count;
        },
        5s);
    return lines;
  }

  // Who qilin's access log says connected: the client nginx names in
  // X-Forwarded-For, believed over either upstream (a unix-socket peer and
  // 127.0.0.1 are trusted proxies by default: forwarded_allow_ips).
  std::string expected_peer() const { return "127.0.0.1"; }

  std::string diagnostics() const {
    return "\n--- qilin log:\n" + qilin_->log() + "\n--- nginx error log:\n" + nginx_->log();
  }

  // Members are destroyed in reverse: nginx, then qilin, then their files.
  TempDir dir_;
  std::string nginx_binary_;
  std::optional<Server> qilin_;
  std::optional<Nginx> nginx_;
};

std::optional<Response> post(uint16_t port, const std::string& target, const std::string& body) {
  Client client(port);
  client.send("POST " + target + " HTTP/1.1\r\nHost: test\r\nContent-Length: " +
              std::to_string(body.size()) + "\r\n\r\n" + body);
  return client.receive(15s);
}

TEST_P(NginxProxy, GetReachesTheAppThroughTheChosenUpstream) {
  start();
  auto response = get(port(), "/");
  ASSERT_TRUE(response) << diagnostics();
  EXPECT_EQ(response->status, 200) << diagnostics();
  EXPECT_EQ(response->body, "Hello, World!");
  auto lines = access_log(1);
  ASSERT_EQ(lines.size(), 1u) << diagnostics();
  EXPECT_EQ(lines[0].rfind(expected_peer() + " - - [", 0), 0u) << lines[0];
  EXPECT_NE(lines[0].find("\"GET / HTTP/1.1\" 200 13"), std::string::npos) << lines[0];
}

TEST_P(NginxProxy, LargeBodyIsEchoedExactly) {
  start();
  std::string body(512 * 1024, '\0');
  for (size_t i = 0; i < body.size(); ++i)
    body[i] = static_cast<char>('a' + (i * 7 + i / 251) % 26);
  auto response = post(port(), "/echo", body);
  ASSERT_TRUE(response) << diagnostics();
  EXPECT_EQ(response->status, 200) << diagnostics();
  EXPECT_EQ(response->body.size(), body.size());
  EXPECT_TRUE(response->body == body) << "the echoed body differs from the one sent";
}

TEST_P(NginxProxy, NotFoundPassesThrough) {
  start();
  auto response = get(port(), "/no/such/route");
  ASSERT_TRUE(response) << diagnostics();
  EXPECT_EQ(response->status, 404);
  EXPECT_EQ(response->body, "Not Found\n") << "not qilin's 404 page";
}

// qilin's limit applies behind nginx too: nginx (client_max_body_size 1m)
// passes a 2000-byte body, qilin (limit 1000) refuses it, and its 413
// reaches the client rather than a 502 from a connection qilin closed.
TEST_P(NginxProxy, BodyOverQilinsLimitIsQilins413) {
  start({"--limit-request-body", "1000"});
  auto response = post(port(), "/echo", std::string(2000, 'x'));
  ASSERT_TRUE(response) << diagnostics();
  EXPECT_EQ(response->status, 413) << diagnostics();
  EXPECT_EQ(response->body.find("nginx"), std::string::npos) << "nginx's own page:\n"
                                                             << response->body;
  // Within its limit, the same route still answers.
  response = post(port(), "/echo", std::string(1000, 'y'));
  ASSERT_TRUE(response) << diagnostics();
  EXPECT_EQ(response->status, 200) << diagnostics();
}

// client_max_body_size matches qilin's default limit: a larger body is
// refused by nginx from the headers alone and never reaches a worker.
TEST_P(NginxProxy, BodyOverClientMaxBodySizeIsRefusedByNginx) {
  start();
  Client client(port());
  client.send("POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: " +
              std::to_string(1024 * 1024 + 1) + "\r\n\r\n");
  auto response = client.receive();
  ASSERT_TRUE(response) << diagnostics();
  EXPECT_EQ(response->status, 413);
  EXPECT_NE(response->body.find("nginx"), std::string::npos) << response->body;
  // Within the limit, 1 MiB exactly, passes both.
  response = post(port(), "/echo", std::string(1024 * 1024, 'z'));
  ASSERT_TRUE(response) << diagnostics();
  EXPECT_EQ(response->status, 200) << diagnostics();
}

// `keepalive 32` + HTTP/1.1 + an empty Connection header: nginx reuses its
// upstream connections, where the worker class keeps them alive. Two views:
// the connections qilin's worker holds open after each request (what nginx
// keeps idle; works for both upstreams), and, over TCP, a count of every
// connection the kernel saw to qilin's port, closed ones included (TIME_WAIT).
TEST_P(NginxProxy, UpstreamConnectionsAreReusedWhereTheWorkerKeepsThemAlive) {
  constexpr size_t kRequests = 20;
  const bool keeps_alive = worker_class() != "sync";
  if (!keeps_alive && upstream() == Upstream::Unix)
    GTEST_SKIP() << "sync closes every connection (no keep-alive); the TCP case counts those "
                    "connections exactly, a closed unix connection leaves nothing to count";
  start();
  auto workers = qilin_->worker_pids();
  ASSERT_EQ(workers.size(), 1u);
  const auto listeners = open_sockets(workers[0]);
  const auto tcp_before = tcp_connections(qilin_->port());

  std::set<std::string> seen;    // upstream connections open after some request
  std::set<std::string> always;  // ... and those open after every request
  for (size_t i = 0; i < kRequests; ++i) {
    auto response = get(port(), "/");
    ASSERT_TRUE(response) << "request " << i << diagnostics();
    ASSERT_EQ(response->status, 200) << "request " << i << diagnostics();
    std::set<std::string> now;
    for (const auto& socket : open_sockets(workers[0]))
      if (!listeners.count(socket)) now.insert(socket);
    seen.insert(now.begin(), now.end());
    if (i == 0) always = now;
    std::erase_if(always, [&](const std::string& socket) { return !now.count(socket); });
  }
  auto lines = access_log(kRequests);
  ASSERT_EQ(lines.size(), kRequests) << diagnostics();
  for (const auto& line : lines) EXPECT_EQ(line.rfind(expected_peer() + " ", 0), 0u) << line;

  size_t opened = 0;
  if (upstream() == Upstream::Tcp) {
    for (const auto& connection : tcp_connections(qilin_->port()))
      if (!tcp_before.count(connection)) ++opened;
  }
  if (keeps_alive) {
    // nginx keeps each idle connection until its keepalive_timeout and takes
    // the most recent one first: one connection, open from the first request
    // to the last, carried them all. Without reuse, each would be closed
    // before the next request's response arrived.
    EXPECT_FALSE(always.empty()) << "no upstream connection lasted through all " << kRequests
                                 << " requests (" << seen.size() << " seen)" << diagnostics();
    EXPECT_LT(seen.size(), kRequests / 2) << diagnostics();
    if (upstream() == Upstream::Tcp) {
      EXPECT_GE(opened, 1u);
      EXPECT_LT(opened, kRequests / 2) << "nginx did not reuse its upstream connections";
    }
  } else {
    EXPECT_GE(opened, kRequests) << "sync closes after each response: one connection per request";
  }
}

std::string case_name(const ::testing::TestParamInfo<NginxProxy::ParamType>& info) {
  return std::get<0>(info.param) + (std::get<1>(info.param) == Upstream::Unix ? "_unix" : "_tcp");
}

INSTANTIATE_TEST_SUITE_P(WorkerClasses, NginxProxy,
                         ::testing::Combine(::testing::Values("sync", "epoll"),
                                            ::testing::Values(Upstream::Unix, Upstream::Tcp)),
                         case_name);

}  // namespace
}  // namespace qilin::testing

#include "tests/integration/harness.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace qilin::testing {

bool eventually(const std::function<bool()>& condition, std::chrono::milliseconds limit) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (true) {
    if (condition()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(10ms);
  }
}

pid_t read_pid(const std::string& path) {
  std::string text = read_file(path);
  return text.empty() ? 0 : static_cast<pid_t>(std::stoi(text));
}

bool process_alive(pid_t pid) { return pid > 0 && ::kill(pid, 0) == 0; }

std::string read_file(const std::string& path) {
  std::ifstream file(path);
  std::stringstream text;
  text << file.rdbuf();
  return text.str();
}

size_t occurrences(const std::string& text, const std::string& needle) {
  size_t count = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1))
    ++count;
  return count;
}

uint16_t free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  const bool found = fd >= 0 &&
                     ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0 &&
                     ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0;
  if (fd >= 0) ::close(fd);
  if (!found) throw std::runtime_error("cannot find a free port on 127.0.0.1");
  return ntohs(address.sin_port);
}

TempDir::TempDir() {
  char pattern[] = "/tmp/qilin-test-XXXXXX";
  if (!::mkdtemp(pattern)) throw std::runtime_error("mkdtemp failed");
  path_ = pattern;
  // Workers told to run as another user (--user) reopen their logs here.
  ::chmod(path_.c_str(), 0755);
}

TempDir::~TempDir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

void TempDir::write(const std::string& name, const std::string& content) const {
  std::ofstream(file(name)) << content;
}

pid_t start_program(const std::string& program, const std::vector<std::string>& args, int output_fd,
                    const std::string& directory) {
  pid_t pid = ::fork();
  if (pid != 0) return pid;
  if (!directory.empty() && ::chdir(directory.c_str()) != 0) ::_exit(127);
  // Own process group: teardown kills master and workers at once. If the
  // test binary dies, the program gets TERM (qilin's master then stops its workers).
  ::setpgid(0, 0);
  ::prctl(PR_SET_PDEATHSIG, SIGTERM);
  if (output_fd >= 0) {
    ::dup2(output_fd, STDOUT_FILENO);
    ::dup2(output_fd, STDERR_FILENO);
  }
  std::vector<char*> argv;
  std::string binary = program;
  argv.push_back(binary.data());
  std::vector<std::string> copy = args;
  for (auto& arg : copy) argv.push_back(arg.data());
  argv.push_back(nullptr);
  ::execvp(binary.c_str(), argv.data());
  ::_exit(127);
}

namespace {

pid_t spawn(const std::vector<std::string>& args, int output_fd,
            const std::string& directory = {}) {
  return start_program(QILIN_BINARY, args, output_fd, directory);
}

bool has_flag(const std::vector<std::string>& args, const std::string& flag) {
  return std::find(args.begin(), args.end(), flag) != args.end();
}

// Whether the -c file of `args` sets `bind` (a test of reloads that change it).
bool config_file_binds(const std::vector<std::string>& args) {
  const auto flag = std::find(args.begin(), args.end(), "-c");
  if (flag == args.end() || std::next(flag) == args.end()) return false;
  std::istringstream lines(read_file(*std::next(flag)));
  for (std::string line; std::getline(lines, line);)
    if (line.starts_with("bind:")) return true;
  return false;
}

}  // namespace

Server::Server(std::vector<std::string> args, int workers, const std::string& directory) {
  log_path_ = dir_.file("error.log");
  if (!has_flag(args, "-b") && !has_flag(args, "--bind") && !config_file_binds(args)) {
    args.push_back("-b");
    args.push_back("127.0.0.1:0");
  }
  args.push_back("--error-logfile");
  args.push_back(log_path_);
  pid_ = spawn(args, -1, directory);
  int status = 0;
  bool exited = false;
  bool ready = eventually(
      [&] {
        if (::waitpid(pid_, &status, WNOHANG) == pid_) return exited = true;
        std::string text = log();
        // "Listening at: http://127.0.0.1:PORT (PID)": the port the kernel chose.
        size_t at = text.find("Listening at: http://");
        if (at == std::string::npos) return false;
        size_t space = text.find(" (", at);
        size_t colon = text.rfind(':', space);
        if (space == std::string::npos || colon == std::string::npos || colon < at) return false;
        port_ = static_cast<uint16_t>(std::stoi(text.substr(colon + 1, space - colon - 1)));
        size_t booted = 0;
        for (size_t next = 0; (next = text.find("Booting worker", next)) != std::string::npos;
             ++next)
          ++booted;
        return booted >= static_cast<size_t>(workers);
      },
      10s);
  if (exited) reaped_ = true;
  if (!ready || exited) throw std::runtime_error("qilin did not start; log:\n" + log());
}

Server::~Server() {
  if (!reaped_) {
    ::kill(pid_, SIGTERM);
    if (!wait_exit(10s)) {
      ::kill(-pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  // Anything left in the group (workers that outlived their master would be
  // a bug; an upgraded master is not): never leave a process behind.
  ::kill(-pid_, SIGKILL);
}

std::string Server::log() const { return read_file(log_path_); }

std::vector<pid_t> children_of(pid_t parent) {
  std::vector<pid_t> pids;
  std::ifstream children("/proc/" + std::to_string(parent) + "/task/" + std::to_string(parent) +
                         "/children");
  pid_t child;
  while (children >> child) pids.push_back(child);
  return pids;
}

std::vector<pid_t> Server::worker_pids() const { return children_of(pid_); }

void Server::signal(int number) const { ::kill(pid_, number); }

std::optional<ExitStatus> Server::wait_exit(std::chrono::milliseconds limit) {
  if (reaped_) return ExitStatus{};
  int status = 0;
  bool done = eventually([&] { return ::waitpid(pid_, &status, WNOHANG) == pid_; }, limit);
  if (!done) return std::nullopt;
  reaped_ = true;
  return ExitStatus{WIFEXITED(status), WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status)};
}

RunResult run_qilin(const std::vector<std::string>& args, std::chrono::milliseconds limit) {
  TempDir dir;
  std::string output_path = dir.file("output");
  int output = ::open(output_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  pid_t pid = spawn(args, output);
  ::close(output);
  int status = 0;
  if (!eventually([&] { return ::waitpid(pid, &status, WNOHANG) == pid; }, limit)) {
    ::kill(-pid, SIGKILL);
    ::waitpid(pid, &status, 0);
    return {-1, read_file(output_path)};
  }
  ::kill(-pid, SIGKILL);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, read_file(output_path)};
}

std::string Response::header(const std::string& name) const {
  auto found = headers.find(name);
  return found == headers.end() ? std::string() : found->second;
}

Client::Client(uint16_t port) {
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0)
    throw std::runtime_error("connect to 127.0.0.1 failed");
}

Client::~Client() { ::close(fd_); }

void Client::send(const std::string& bytes) {
  size_t sent = 0;
  while (sent < bytes.size()) {
    ssize_t n = ::send(fd_, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) return;  // the server may legitimately close early (errors)
    sent += static_cast<size_t>(n);
  }
}

void Client::shutdown_write() { ::shutdown(fd_, SHUT_WR); }

bool Client::fill(std::chrono::steady_clock::time_point deadline) {
  if (eof_) return false;
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - std::chrono::steady_clock::now());
  if (left.count() <= 0) return false;
  pollfd watched{.fd = fd_, .events = POLLIN, .revents = 0};
  if (::poll(&watched, 1, static_cast<int>(left.count())) <= 0) return false;
  char chunk[65536];
  ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
  if (n <= 0) {
    eof_ = true;
    return false;
  }
  buffer_.append(chunk, static_cast<size_t>(n));
  return true;
}

std::optional<Response> Client::receive(std::chrono::milliseconds limit, bool head) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  size_t end;
  while ((end = buffer_.find("\r\n\r\n")) == std::string::npos)
    if (!fill(deadline)) return std::nullopt;
  Response response;
  std::istringstream lines(buffer_.substr(0, end));
  std::string line;
  std::getline(lines, line);
  if (line.size() < 12) return std::nullopt;
  response.version = line.substr(0, 8);
  response.status = std::stoi(line.substr(9, 3));
  while (std::getline(lines, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string name = line.substr(0, colon);
    std::transform(name.begin(), name.end(), name.begin(), ::tolower);
    std::string value = line.substr(colon + 1);
    value.erase(0, value.find_first_not_of(' '));
    response.headers[name] = value;
  }
  buffer_.erase(0, end + 4);
  bool no_body =
      head || response.status / 100 == 1 || response.status == 204 || response.status == 304;
  if (no_body) return response;
  if (response.headers.count("content-length")) {
    size_t length = std::stoul(response.headers["content-length"]);
    while (buffer_.size() < length)
      if (!fill(deadline)) return std::nullopt;
    response.body = buffer_.substr(0, length);
    buffer_.erase(0, length);
  } else if (response.header("transfer-encoding") == "chunked") {
    while (true) {
      size_t line_end;
      while ((line_end = buffer_.find("\r\n")) == std::string::npos)
        if (!fill(deadline)) return std::nullopt;
      size_t size = std::stoul(buffer_.substr(0, line_end), nullptr, 16);
      while (buffer_.size() < line_end + 2 + size + 2)
        if (!fill(deadline)) return std::nullopt;
      response.body += buffer_.substr(line_end + 2, size);
      buffer_.erase(0, line_end + 2 + size + 2);
      if (size == 0) break;
    }
  } else {
    while (fill(deadline)) {
    }
    response.body = std::move(buffer_);
    buffer_.clear();
  }
  return response;
}

bool Client::closed_by_server(std::chrono::milliseconds limit) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (!eof_)
    if (!fill(deadline) && !eof_) return false;
  return true;
}

std::optional<Response> get(uint16_t port, const std::string& target,
                            const std::string& extra_headers) {
  Client client(port);
  client.send("GET " + target + " HTTP/1.1\r\nHost: test\r\n" + extra_headers + "\r\n");
  return client.receive();
}

bool wait_in_app(uint16_t status_port, int count, std::chrono::milliseconds limit) {
  const std::string family = "qilin_worker_open_connections{";
  return eventually(
      [&] {
        std::optional<Response> metrics;
        try {
          metrics = get(status_port, "/metrics");
        } catch (const std::exception&) {
          return false;  // the status process is not listening yet
        }
        if (!metrics || metrics->status != 200) return false;
        long in_app = 0;
        size_t at = 0;
        while ((at = metrics->body.find(family, at)) != std::string::npos) {
          const size_t end = metrics->body.find('\n', at);
          const std::string line = metrics->body.substr(at, end - at);
          if (line.find("state=\"app\"") != std::string::npos)
            in_app += std::strtol(line.c_str() + line.rfind(' ') + 1, nullptr, 10);
          at = end;
        }
        return in_app >= count;
      },
      limit);
}

}  // namespace qilin::testing

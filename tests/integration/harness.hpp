// Test harness: start the real qilin binary on loopback, talk to it over
// sockets, and leave nothing behind.
//
// Every server runs in its own process group, so teardown can kill the master
// and its workers together; every wait is bounded and polls for a condition
// instead of sleeping a fixed time.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace qilin::testing {

using namespace std::chrono_literals;

// Polls `condition` every 10 ms until it holds or `limit` passes.
bool eventually(const std::function<bool()>& condition, std::chrono::milliseconds limit = 5s);

std::string read_file(const std::string& path);
// How many times `needle` occurs in `text` (a log, say).
size_t occurrences(const std::string& text, const std::string& needle);
// The pid a pidfile holds, 0 when it is empty or missing.
pid_t read_pid(const std::string& path);
bool process_alive(pid_t pid);
// Starts PROGRAM (found on PATH unless a path) with ARGS in a process group
// of its own, stdout and stderr to `output_fd` (-1: the test's), in
// `directory` (empty: the test's); it gets TERM if the test binary dies.
pid_t start_program(const std::string& program, const std::vector<std::string>& args,
                    int output_fd = -1, const std::string& directory = {});

// The processes `parent` forked that are still running, from /proc.
std::vector<pid_t> children_of(pid_t parent);

// A port on 127.0.0.1 nobody listens on right now, for programs that cannot
// bind port 0 and report it (nginx, status_bind). Racy by nature: a caller
// that loses the port to another process retries.
uint16_t free_port();

class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }
  void write(const std::string& name, const std::string& content) const;

 private:
  std::string path_;
};

struct ExitStatus {
  bool exited = false;
  int code = -1;
};

class Server {
 public:
  // Starts `qilin ARGS... -b 127.0.0.1:0 --error-logfile LOG` (unless ARGS has
  // its own -b, or its -c file a `bind`) in `directory` (empty: the test's) and
  // waits until it listens and `workers` workers booted.
  explicit Server(std::vector<std::string> args, int workers = 1,
                  const std::string& directory = {});
  ~Server();  // TERM, then KILL of the whole process group after 10 s

  uint16_t port() const { return port_; }
  pid_t pid() const { return pid_; }
  std::string log() const;
  std::vector<pid_t> worker_pids() const;  // children of the master, from /proc
  void signal(int signal) const;
  // Waits for the master to exit; nullopt if it is still running after `limit`.
  std::optional<ExitStatus> wait_exit(std::chrono::milliseconds limit);

 private:
  pid_t pid_ = -1;
  uint16_t port_ = 0;
  std::string log_path_;
  TempDir dir_;
  bool reaped_ = false;
};

// Runs qilin to completion (for config errors); captures stdout+stderr.
struct RunResult {
  int code;
  std::string output;
};
RunResult run_qilin(const std::vector<std::string>& args, std::chrono::milliseconds limit = 10s);

struct Response {
  int status = 0;
  std::string version;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
  std::string header(const std::string& name) const;
};

class Client {
 public:
  explicit Client(uint16_t port);
  ~Client();
  void send(const std::string& bytes);
  // Reads one response (Content-Length, chunked, or until EOF); nullopt on
  // timeout or when the server closed before a status line.
  std::optional<Response> receive(std::chrono::milliseconds limit = 5s, bool head = false);
  // True when the server closed the connection (EOF) within `limit`.
  bool closed_by_server(std::chrono::milliseconds limit = 3s);
  void shutdown_write();

 private:
  bool fill(std::chrono::steady_clock::time_point deadline);
  int fd_ = -1;
  std::string buffer_;
  bool eof_ = false;
};

// One request on a fresh connection.
// For tests that must act while a request is inside the app (TERM during a
// /sleep): qilin started with --status-bind 127.0.0.1:STATUS_PORT reports its
// connections by state in /metrics. True once `count` are in state "app";
// false after `limit` (also while the status listener is not up yet: it
// comes up a moment after the workers, so wait_in_app(port, 0) first).
bool wait_in_app(uint16_t status_port, int count = 1, std::chrono::milliseconds limit = 5s);

std::optional<Response> get(uint16_t port, const std::string& target,
                            const std::string& extra_headers = "");

}  // namespace qilin::testing

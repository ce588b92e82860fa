// The worker-class interface (gunicorn's Worker base class).
//
// The master constructs a worker in the child right after fork and calls
// main(). The base owns what every IO model shares: boot (signals, app, logs),
// the heartbeat, max_requests, the access log and counters. A subclass writes
// only run(), its IO model, and the app::Context its model implies.
//
// Signals: the handlers only record the signal and poke wakeup_fd(); run()
// notices through alive()/quick_exit() and by watching wakeup_fd() in its
// poller (or, for blocking calls, through EINTR: handlers are installed
// without SA_RESTART).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "app/app.hpp"
#include "config/allow_list.hpp"
#include "config/config.hpp"
#include "http/limits.hpp"
#include "http/session.hpp"
#include "master/scoreboard.hpp"
#include "sys/fd.hpp"
#include "sys/socket.hpp"
#include "workers/access_log.hpp"

namespace qilin::workers {

// On a graceful stop an idle keep-alive connection is not closed at once:
// its client may have a request on the wire already, and would see a reset
// (wrk counts it as an error) for a request it rightly sent. Keep-alive is
// refused instead, so the next request is answered with Connection: close,
// and a connection that stays idle this long is closed.
inline constexpr int64_t kIdleGraceOnStopMs = 1000;

// An event loop's lingering close (nginx's lingering_timeout): after our FIN,
// input the client sent that we never read is drained at most this long, so
// that closing does not answer it with a RST that can destroy the response.
inline constexpr int64_t kLingerMs = 2000;
// The blocking workers' lingering close (close_lingering) waits in the
// thread that serves, the process's only one in `sync`: half as long, and
// in reads of at most kBlockingLingerSliceMs.
inline constexpr int64_t kBlockingLingerMs = 1000;
inline constexpr int kBlockingLingerSliceMs = 200;

// An event loop's connection, for the scoreboard's open-connection gauges,
// read off its session once per loop turn (blocking workers set the state
// around their own calls instead). Ordered by what holds the connection:
// bytes to send, then an app still working, then a request half read.
inline master::ConnState state_of(const http::Session& session) noexcept {
  if (session.pending_output() > 0) return master::ConnState::Writing;
  if (session.in_flight() > 0) return master::ConnState::App;
  if (session.reading_request()) return master::ConnState::Reading;
  return master::ConnState::Idle;
}

// gunicorn's exit codes, which the master reads to stop instead of respawning.
inline constexpr int kExitBootError = 3;
inline constexpr int kExitAppLoadError = 4;

// What a worker writes to the master's wake-up pipe once it has booted: not
// a signal number, so the master's loop tells it from the signals queued on
// the same pipe. A pipe, not a signal: a worker running as another user may
// not signal a root master, but it may write to a descriptor it inherited.
inline constexpr char kWorkerBooted = 0;

struct WorkerSetup {
  const config::Config& config;
  std::span<sys::Listener> listeners;
  master::ScoreboardSlot& slot;
  int master_wakeup_fd = -1;                    // owned by the worker from here; -1: none
  const app::Handler* preloaded_app = nullptr;  // preload_app: the master's; null: load it
};

class Worker {
 public:
  explicit Worker(const WorkerSetup& setup);
  virtual ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // In the child: boot, then run() until stopped. Returns the exit code.
  int main();

 protected:
  // The IO model. Returns when alive() turned false and in-flight requests
  // are done (or at once when quick_exit()). Must call notify() at least once
  // a second while it runs.
  virtual void run() = 0;
  // Per-class set-up in the child after the base has booted (a ring, a pool).
  // May throw: a std::exception here is a boot error (exit code 3), logged once.
  virtual void boot_io() {}

  // ---- services for run() ----
  // Heartbeat, Date cache, access-log flush. Once per loop turn, or at least
  // once a second; cheap (a clock read and a store). A loop that has just
  // read the monotonic clock passes it in and saves the read.
  void notify(int64_t now_ms = master::monotonic_ms());
  // False after TERM, INT/QUIT or max_requests: stop accepting, finish what
  // was accepted, close idle keep-alive connections.
  bool alive() const noexcept;
  // INT/QUIT: leave now, dropping in-flight requests.
  bool quick_exit() const noexcept;
  // Readable when a signal arrived. Level-triggered: call handle_wakeup().
  int wakeup_fd() const noexcept { return wakeup_.get(); }
  // Drains wakeup_fd() and acts on USR1 (reopen logs). Loop thread only.
  void handle_wakeup();
  // Seconds left of graceful_timeout since alive() turned false (for loops
  // that wait for in-flight requests), or a large number while alive.
  int64_t graceful_ms_left() const noexcept;

  // Once per answered request, before Session::respond(): access log and
  // counters (requests, response body bytes, the status code, and, given
  // `started_ns`, the latency histogram). `started_ns` is master::monotonic_ns() read when
  // Session::next_request() handed the request out, or, in an event loop,
  // when the turn that handed it out began (one clock read a turn, not one a
  // request; the latency then includes the wait behind that turn's earlier
  // requests); 0 leaves the request out of the histogram. Returns false
  // when this was the worker's last request (max_requests): the worker
  // should refuse keep-alive from now on.
  bool request_done(const http::Request& request, const http::Response& response,
                    std::string_view peer, int64_t started_ns = 0);
  // How a worker hands a session what it read (or that the peer closed):
  // Session::feed()/feed_eof(), then the error response the session may have
  // queued itself (a malformed or oversized request) is counted and logged
  // like an answered request, with "-" for the request line as nginx does,
  // so that /metrics and the access log show the 400s. Workers feed only
  // through these, so none can skip the count.
  void feed(http::Session& session, std::string_view bytes);
  void feed_eof(http::Session& session);
  // Once per accepted connection.
  void connection_accepted() noexcept;
  // accept4(listener, flags), counted, with its outcome sorted (STYLE 8):
  // nullopt when the backlog is empty or a sibling won the race (EAGAIN); a
  // client that gave up (ECONNABORTED) or a signal is retried; a real error is
  // logged. For the workers that accept one socket per call (sync, threaded).
  struct Accepted {
    sys::Fd fd;
    std::string peer;  // sys::peer_name: "127.0.0.1", "unix"
  };
  std::optional<Accepted> accept_client(int listener, int flags);
  // Once, when a worker stops accepting (TERM, max_requests), after its
  // listeners left its poller: the connections the kernel completed already
  // are ours to answer, not to reset. Accepts each listener's queue until
  // EAGAIN, hands every connection to `adopt`, then closes the listeners.
  // On the final stop the master has made the shared listeners refuse new
  // connections before signalling us, so the queues only shrink; a worker's
  // own reuse_port socket is made to refuse here (refuse_new_connections).
  void take_backlog_and_close_listeners(int accept_flags,
                                        const std::function<void(Accepted&&)>& adopt);
  // A worker's own reuse_port sockets stop taking SYNs (sys::refuse_new_connections);
  // handshakes already under way still complete into the queue. Called by
  // take_backlog_and_close_listeners, or earlier by a worker that takes the
  // backlog a turn after deciding to stop: then no handshake is still
  // completing when the queue is taken and closed, which would reset it.
  void refuse_new_connections();
  // Whether a peer's X-Forwarded-* headers are believed (forwarded_allow_ips;
  // a unix-socket peer is a local proxy, always trusted). Pass the answer to
  // Session::set_peer once per connection.
  bool trusts_forwarded(std::string_view peer) const noexcept;
  // Whether a peer must begin its connection with a PROXY protocol header
  // (proxy_protocol on and the peer in proxy_allow_ips; a unix-socket peer is
  // a local balancer). Pass the answer to Session::set_peer beside the above.
  bool expects_proxy_header(std::string_view peer) const noexcept;
  // A proxy's word is only needed for a peer we might trust.
  bool needs_peer_address() const noexcept;
  // The IO-model counters of this worker's scoreboard slot: one call per
  // syscall where it is made, e.g. `io().read(n)` after recv(), and a
  // master::ConnTracker per connection for the open-connection gauges. The
  // table of calls is in master/scoreboard.hpp (IoCounters). Any thread.
  master::IoCounters& io() noexcept { return slot_.io; }
  // Blocking single-connection workers (sync) around each app call: if the
  // call overruns `timeout`, the master's ABRT logs this request and answers
  // the client 500 before the worker dies.
  void serving(int client_fd, const http::Request& request, std::string_view peer) noexcept;
  void served() noexcept;

  const config::Config& config_;
  std::span<sys::Listener> listeners_;  // closed by take_backlog_and_close_listeners()
  bool refusing_ = false;               // refuse_new_connections() done
  master::ScoreboardSlot& slot_;
  http::Limits limits_;
  app::Handler app_;  // the master's copy (preload_app), or loaded at boot in the child

 private:
  void boot();
  // The one bookkeeping of a response sent: counters and the access-log line
  // (request_done for the app's, count_rejection for the session's own).
  void account(AccessRecord answered);
  void count_rejection(http::Session& session);
  // Once a second from notify(): CPU, context switches, threads, RSS.
  void sample_process() noexcept;
  sys::Fd wakeup_;
  sys::Fd proc_stat_;  // /proc/self/stat and statm, opened at boot, re-read with pread
  sys::Fd proc_statm_;
  pid_t master_pid_;       // constructed in the child: getppid() is the master
  sys::Fd master_wakeup_;  // written once (kWorkerBooted), then closed
  pid_t pid_;              // read once: getpid() is a syscall
  std::vector<config::LogPiece> access_format_;
  config::AllowList forwarded_allowed_;  // forwarded_allow_ips, parsed once
  config::AllowList proxy_allowed_;      // proxy_allow_ips
  int64_t last_second_ms_ = 0;
  // Atomics: the threaded worker answers requests on several threads.
  std::atomic<uint64_t> requests_{0};
  uint64_t max_requests_ = 0;  // 0: unlimited; jitter applied at boot
  std::atomic<bool> max_reached_{false};
  std::atomic<int64_t> max_reached_ms_{0};
};

// ---- the registry: one row per worker class (STYLE 5) ----
using WorkerFactory = std::unique_ptr<Worker> (*)(const WorkerSetup&);

struct WorkerClass {
  std::string_view name;      // the worker_class value
  std::string_view io_model;  // for --help and the README
  WorkerFactory make;
};

std::span<const WorkerClass> worker_classes() noexcept;
const WorkerClass* find_worker_class(std::string_view name) noexcept;
std::vector<std::string_view> worker_class_names();

}  // namespace qilin::workers

// epoll: one non-blocking event loop per process, the way nginx works.
//
// Stevens, UNP figure 6.3 (IO multiplexing) inside the preforked server of
// chapter 30: every process waits in epoll_wait on the listeners it shares
// with its siblings and on its own connections, and does whatever is ready
// without ever waiting for one client.
//
//   loop:
//     epoll_wait(timeout = next deadline, ≤ 1 s)   the only place the process sleeps
//     listener ready   → accept4 up to 64, register the connection once
//     connection ready → recv → Session::feed → start the app for each request
//     deadlines due    → resume sleeping handlers, close idle or stalled connections
//     flush            → one send (or sendfile) per connection with new output
//
// Syscalls per keep-alive request: recv, send, and a share of one
// epoll_wait; no epoll_ctl (interest is set once per connection). A handler
// that co_awaits ctx.sleep() costs nothing: the loop serves others and resumes
// it from the deadline heap. A handler that blocks (/block) stops every
// connection of this process until it returns: that is the lesson.
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <spdlog/spdlog.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include <algorithm>
#include <optional>
#include <string>
#include <vector>

#include "app/runner.hpp"
#include "http/session.hpp"
#include "sys/error.hpp"
#include "workers/deadlines.hpp"
#include "workers/session_output.hpp"
#include "workers/worker.hpp"

namespace qilin::workers {

namespace {

// epoll_event.data.u64: bits 63..32 a connection's generation, bits 31..0 its
// slot. Generations start at 1, so generation 0 tags the fds that are not
// connections: slot 0 is the wakeup eventfd, slot 1 + i is listener i. An
// event whose generation no longer matches its slot belongs to a connection
// closed earlier in the same batch and is dropped.
constexpr uint64_t tag(uint32_t slot, uint32_t generation) {
  return uint64_t{generation} << 32 | slot;
}
constexpr uint32_t kWakeupSlot = 0;

constexpr int kMaxEvents = 256;
constexpr int kHeartbeatMs = 1000;
constexpr int kAcceptBatch = 64;    // per listener per turn: a busy listener cannot starve the rest
constexpr int kReadsPerTurn = 4;    // recvs of kReadBuffer per connection per turn
constexpr int kWritesPerTurn = 16;  // a fast reader of a huge body yields to the others
constexpr size_t kReadBuffer = 64 * 1024;
constexpr int64_t kSendTimeoutMs = 60'000;  // nginx's send_timeout: reads nothing this long → cut
constexpr int64_t kNever = INT64_MAX;

// Which deadline a connection is under (at most one at a time).
enum Timer : uint8_t {
  kNoTimer,  // the app has its requests: no deadline of ours
  kIdle,     // between requests: keepalive seconds
  kRequest,  // from connect or a request's first byte: request_timeout_seconds
  kSend,     // output blocked on a client that does not read: kSendTimeoutMs since progress
  kLinger,   // half-closed, draining what the client still sends
  kTimers
};

// One slab slot. Small on purpose (the read buffer is the loop's, not the
// connection's): 10,000 idle keep-alive connections cost this plus a Session.
struct Connection {
  sys::Fd fd;
  uint32_t generation = 1;  // bumped at close: late completions and timers see a mismatch
  bool open = false;
  // Edge-triggered readiness not consumed yet. can_read stays true while
  // reading is paused for backpressure: no new edge will come for bytes
  // already in the socket, so the loop resumes reading on its own.
  bool can_read = false;
  bool can_write = false;
  bool peer_closing = false;  // RDHUP/HUP/ERR seen: read to the end, no short-read shortcut
  bool peer_eof = false;
  bool fresh = true;  // no byte received yet
  bool lingering = false;
  bool dirty = false;        // in dirty_: flushed at the end of this turn
  bool queued_read = false;  // in ready_: read again next turn
  Timer timer = kNoTimer;
  int64_t deadline_ms = kNever;  // when `timer` expires
  int64_t heap_ms = 0;           // when our live DeadlineQueue entry fires; 0: none
  std::optional<http::Session> session;
  std::optional<master::ConnTracker> gauge;  // the scoreboard's open-connection gauges
  std::string peer;                          // for the access log
};

class EpollWorker final : public Worker {
 public:
  using Worker::Worker;

 private:
  using Ref = DeadlineQueue::ConnectionRef;

  void run() override {
    while (!quick_exit()) {
      if (!alive() && !stopping_) begin_stop();
      if (stopping_ && (open_ == 0 || graceful_ms_left() <= 0)) break;
      // The timeout comes from last turn's clock: late by that turn's work,
      // which is only noticeable when the app blocked the loop anyway.
      const bool pending = !ready_.empty() || !dirty_.empty();
      int ready = wait_for_events(pending ? 0 : deadlines_.wait_ns(now_ns_, kHeartbeatMs));
      io().wait(ready);
      if (ready < 0 && errno != EINTR) {
        spdlog::error("{}", sys::describe("epoll_wait", errno));
        return;
      }
      now_ns_ = master::monotonic_ns();  // the one clock read of this turn
      now_ = now_ns_ / kNsPerMs;
      notify(now_);
      for (int i = 0; i < ready; ++i) dispatch(events_[i]);
      run_queue(ready_, &Connection::queued_read, &EpollWorker::on_readable);
      deadlines_.expire(now_, [this](Ref ref) { on_deadline(ref); });
      run_queue(dirty_, &Connection::dirty, &EpollWorker::on_writable);  // the one flush
      if (!accepting_ && !stopping_ && open_ < limit() && now_ >= accept_retry_ms_)
        set_accepting(true);
    }
  }

  // epoll_pwait2 takes the timeout in nanoseconds, so a sleep ends on its
  // deadline; epoll_wait's whole milliseconds, rounded up, end it up to a
  // millisecond late. epoll_wait remains for kernels before 5.11 and for
  // seccomp filters that do not know the newer call.
  int wait_for_events(int64_t wait_ns) {
    if (has_pwait2_) {
      const auto timeout = timespec_of_ns<timespec>(wait_ns);
      const int ready = ::epoll_pwait2(epoll_.get(), events_, kMaxEvents, &timeout, nullptr);
      if (ready >= 0 || errno != ENOSYS) return ready;
      has_pwait2_ = false;
    }
    return ::epoll_wait(epoll_.get(), events_, kMaxEvents,
                        static_cast<int>((wait_ns + kNsPerMs - 1) / kNsPerMs));
  }

  void dispatch(const epoll_event& event) {
    const auto slot = static_cast<uint32_t>(event.data.u64);
    const auto generation = static_cast<uint32_t>(event.data.u64 >> 32);
    if (generation == 0) {
      if (slot == kWakeupSlot)
        handle_wakeup();
      else if (accepting_)
        on_acceptable(listeners_[slot - 1].fd.get());
      return;
    }
    Connection* c = find({slot, generation});
    if (!c) return;
    if (event.events & EPOLLOUT) c->can_write = true;
    if (event.events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) c->peer_closing = true;
    if (event.events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) c->can_read = true;
    enqueue(dirty_, &Connection::dirty, *c);  // to write, or to re-decide its deadline
    if (c->can_read) on_readable(*c);
  }

  // ---- accept ----

  void on_acceptable(int listener) {
    for (int i = 0; i < kAcceptBatch; ++i) {
      if (open_ >= limit()) {
        set_accepting(false);  // resumed at the end of a turn that finds us below the limit
        return;
      }
      sockaddr_storage peer{};
      socklen_t length = sizeof peer;
      int fd = ::accept4(listener, reinterpret_cast<sockaddr*>(&peer), &length,
                         SOCK_NONBLOCK | SOCK_CLOEXEC);
      io().accept();
      if (fd < 0) {
        if (errno == EINTR || errno == ECONNABORTED) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return;  // drained, or a sibling won
        spdlog::error("{}", sys::describe("accept4", errno));
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
          // The backlog stays readable and the level-triggered listeners
          // would spin: stop listening for a second instead.
          set_accepting(false);
          accept_retry_ms_ = now_ + kHeartbeatMs;
        }
        return;
      }
      connection_accepted();
      if (peer.ss_family == AF_INET || peer.ss_family == AF_INET6) set_no_delay(fd);
      open_connection(sys::Fd(fd), sys::peer_name(peer, length));
    }
  }

  void open_connection(sys::Fd fd, std::string peer) {
    const bool reuse = !free_.empty();
    const uint32_t slot = reuse ? free_.back() : static_cast<uint32_t>(connections_.size());
    if (!reuse) connections_.emplace_back();
    Connection& c = connections_[slot];
    // Edge-triggered, registered once for both directions: the loop keeps the
    // readiness in can_read/can_write and never calls epoll_ctl again for this
    // connection (close() removes it). Level-triggered would need an epoll_ctl
    // each time output blocks or backpressure pauses reading, or it would spin.
    epoll_event event{};
    event.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
    event.data.u64 = tag(slot, c.generation);
    io().syscall();
    if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd.get(), &event) != 0) {
      spdlog::error("{}", sys::describe("epoll_ctl", errno));
      if (!reuse) free_.push_back(slot);
      return;
    }
    if (reuse) free_.pop_back();
    const uint32_t generation = c.generation;
    c = Connection{};
    c.fd = std::move(fd);
    c.generation = generation;
    c.open = true;
    c.session.emplace(limits_);
    c.gauge.emplace(io(), master::ConnState::Reading);
    if (config_.keepalive <= 0 || stopping_) c.session->refuse_keep_alive();
    c.session->set_peer(peer, trusts_forwarded(peer), expects_proxy_header(peer));
    c.peer = std::move(peer);
    ++open_;
    arm(c, kRequest);  // as nginx's client_header_timeout: the first request from connect
  }

  // ---- read, feed the session, start the app ----

  void on_readable(Connection& c) {
    enqueue(dirty_, &Connection::dirty, c);
    http::Session& session = *c.session;
    for (int reads = 0; c.can_read && (c.lingering || session.wants_input()); ++reads) {
      if (reads == kReadsPerTurn) return enqueue(ready_, &Connection::queued_read, c);
      const ssize_t n = ::recv(c.fd.get(), buffer_, sizeof buffer_, 0);
      io().read(n);
      if (n > 0 && c.lingering) continue;  // unread input after our FIN: discarded
      if (n > 0) {
        // A short read emptied the socket. Under edge triggering any byte
        // that arrives after it raises a new event, so the recv that would
        // only say EAGAIN is skipped (nginx does the same). Not once RDHUP
        // was seen: then the FIN must be read as 0.
        if (static_cast<size_t>(n) < sizeof buffer_ && !c.peer_closing) c.can_read = false;
        c.fresh = false;
        // The request may be answered and written within this turn, and the
        // connection idle again: the keep-alive period restarts regardless.
        if (c.timer == kIdle) arm(c, kNoTimer);
        feed(session, {buffer_, static_cast<size_t>(n)});
        start_requests(c);  // before reading on: answered requests free pipeline room
      } else if (n == 0) {
        if (c.lingering) return close(c);  // the client has all it will read
        c.can_read = false;
        c.peer_eof = true;
        feed_eof(session);  // pending responses are still written, then wants_close()
      } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
        c.can_read = false;
      } else if (errno != EINTR) {
        return fail(c, "recv", errno);
      }
    }
  }

  void start_requests(Connection& c) {
    const Ref ref = ref_of(c);
    while (auto request = c.session->next_request()) {
      // Runs the handler now; `done` runs now too, or later from the deadline
      // heap if the handler suspended. The connection may be gone by then.
      app::run_request(
          app_, std::move(*request), context_,
          [this, ref, started = now_ns_](http::Request& done, http::Response&& response) {
            on_response(ref, done, std::move(response), started);
          });
    }
  }

  void on_response(Ref ref, http::Request& request, http::Response&& response, int64_t started_ns) {
    Connection* c = find(ref);
    if (!c) return;  // the peer left (or timed out) while the app worked: nobody to answer
    // max_requests reached: this response already says close; run() stops
    // the others at the top of the next turn (alive() is false).
    if (!request_done(request, response, c->peer, started_ns)) c->session->refuse_keep_alive();
    c->session->respond(std::move(request), std::move(response));
    enqueue(dirty_, &Connection::dirty, *c);
  }

  // ---- write: once per turn per connection with new output ----

  // Everything the session has ready goes out in one send (a sendmsg when it
  // is several buffers): all pipelined
  // responses answered this turn, in order. A file region follows with
  // sendfile. EAGAIN keeps the rest for the next EPOLLOUT edge; nothing here
  // waits for the client.
  void on_writable(Connection& c) {
    if (c.lingering) return;
    http::Session& session = *c.session;
    bool progressed = false;
    for (int writes = 0; c.can_write; ++writes) {
      if (writes == kWritesPerTurn) {
        enqueue(dirty_, &Connection::dirty, c);  // more next turn, after the others had theirs
        break;
      }
      switch (write_output(c.fd.get(), session, io())) {
        case WriteOutcome::Wrote:
          progressed = true;
          continue;
        case WriteOutcome::Nothing:
          break;
        case WriteOutcome::WouldBlock:
          c.can_write = false;
          continue;
        case WriteOutcome::Failed:
          return close(c);
      }
      break;
    }
    if (session.wants_close()) return close_gracefully(c);
    if (c.can_read && session.wants_input()) enqueue(ready_, &Connection::queued_read, c);
    // The deadline that applies now (backpressure lifted: reading resumes above).
    Timer want = kNoTimer;
    if (!c.can_write && session.pending_output() > 0)
      want = kSend;
    else if (session.reading_request() || (c.fresh && session.idle()))
      want = kRequest;
    else if (session.idle())
      want = kIdle;
    if (want != c.timer || (want == kSend && progressed)) arm(c, want);
    c.gauge->set(state_of(session));
  }

  // ---- deadlines ----

  // Connection deadlines are lazy (see deadlines.hpp): moving a deadline later
  // is a store; the heap gets an entry only when none fires early enough.
  void arm(Connection& c, Timer timer) {
    c.timer = timer;
    c.deadline_ms = timer_ms_[timer] < 0 ? kNever : now_ + timer_ms_[timer];
    schedule(c);
  }

  void schedule(Connection& c) {
    if (c.deadline_ms == kNever || (c.heap_ms != 0 && c.heap_ms <= c.deadline_ms)) return;
    deadlines_.add_connection(c.deadline_ms, ref_of(c));
    c.heap_ms = c.deadline_ms;
  }

  void on_deadline(Ref ref) {
    Connection* c = find(ref);
    if (!c) return;                          // the slot was closed or reused since: a stale entry
    if (c->heap_ms <= now_) c->heap_ms = 0;  // our live entry fired (this one or one due with it)
    if (c->deadline_ms > now_) return schedule(*c);
    if (c->timer == kRequest || c->timer == kSend)
      spdlog::debug("closing a connection: {}", c->timer == kRequest
                                                    ? "no whole request within request_timeout"
                                                    : "the client stopped reading");
    close(*c);
  }

  // ---- close ----

  // wants_close(): everything owed is written. If the client sent bytes we
  // will never read (a pipelined request after "Connection: close", the rest
  // of a rejected body), close() would answer them with a RST, which can
  // destroy the response still on its way; so half-close and drain them
  // first (nginx's lingering close).
  void close_gracefully(Connection& c) {
    if (c.peer_eof) return close(c);
    const ssize_t unread = ::recv(c.fd.get(), buffer_, sizeof buffer_, MSG_DONTWAIT);
    io().read(unread);
    if (unread <= 0) return close(c);  // nothing unread: a plain close sends FIN, not RST
    io().syscall();
    if (::shutdown(c.fd.get(), SHUT_WR) != 0) return close(c);
    c.lingering = c.can_read = true;
    arm(c, kLinger);
    enqueue(ready_, &Connection::queued_read, c);
  }

  // STYLE 8: a peer that went away is a debug line, anything else an error.
  void fail(Connection& c, const char* call, int err) {
    if (sys::peer_gone(err))
      spdlog::debug("{}", sys::describe(call, err));
    else
      spdlog::error("{}", sys::describe(call, err));
    close(c);
  }

  void close(Connection& c) {
    c.fd.reset();  // the fd was never duplicated: closing it also leaves the epoll set
    io().syscall();
    c.session.reset();
    c.gauge.reset();
    c.open = false;
    if (++c.generation == 0) c.generation = 1;
    free_.push_back(ref_of(c).slot);
    --open_;
  }

  // ---- stop ----

  // TERM, INT/QUIT or max_requests: no new connections, no new requests on
  // kept-alive ones; in-flight requests finish within graceful_timeout.
  void begin_stop() {
    stopping_ = true;
    set_accepting(false);
    take_backlog_and_close_listeners(SOCK_NONBLOCK | SOCK_CLOEXEC, [this](Accepted&& client) {
      set_no_delay(client.fd.get());
      open_connection(std::move(client.fd), std::move(client.peer));
    });
    for (Connection& c : connections_) {
      if (!c.open || c.lingering) continue;
      c.session->refuse_keep_alive();
      if (c.session->idle()) {  // see kIdleGraceOnStopMs
        c.deadline_ms = std::min(c.deadline_ms, now_ + kIdleGraceOnStopMs);
        schedule(c);
      } else {
        enqueue(dirty_, &Connection::dirty, c);
      }
    }
  }

  // ---- helpers ----

  // A head and a file go out in two calls; Nagle would hold the second
  // behind the client's delayed ACK. (Fails harmlessly on a unix socket.)
  void set_no_delay(int fd) {
    int on = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
    io().syscall();
  }

  Connection* find(Ref ref) {
    if (ref.slot >= connections_.size()) return nullptr;
    Connection& c = connections_[ref.slot];
    return c.open && c.generation == ref.generation ? &c : nullptr;
  }
  Ref ref_of(const Connection& c) const {
    return {static_cast<uint32_t>(&c - connections_.data()), c.generation};
  }
  size_t limit() const { return static_cast<size_t>(std::max(config_.worker_connections, 1)); }

  // The two per-turn work lists, each entry once (the flag says it is queued).
  void enqueue(std::vector<Ref>& queue, bool Connection::*queued, Connection& c) {
    if (c.*queued) return;
    c.*queued = true;
    queue.push_back(ref_of(c));
  }
  // Runs `handler` once on each live connection queued; what is queued
  // meanwhile waits for the next turn (epoll_wait does not sleep then).
  void run_queue(std::vector<Ref>& queue, bool Connection::*queued,
                 void (EpollWorker::*handler)(Connection&)) {
    running_.swap(queue);
    for (Ref ref : running_) {
      if (Connection* c = find(ref)) {
        c->*queued = false;
        (this->*handler)(*c);
      }
    }
    running_.clear();
  }

  // The listeners are level-triggered (a bounded accept batch leaves the rest
  // for the next turn) and EPOLLEXCLUSIVE: every sibling process waits on
  // the same listening sockets, and without it each new connection would
  // wake all of them for one to win accept4 and the rest to find EAGAIN
  // (the thundering herd, UNP §30.6). With it the kernel wakes one waiter,
  // or a few. EPOLLEXCLUSIVE cannot be modified, only added and deleted,
  // which is how accepting pauses at worker_connections and at stop.
  bool set_accepting(bool on) {
    if (accepting_ == on) return true;
    for (size_t i = 0; i < listeners_.size(); ++i) {
      epoll_event event{};
      event.events = EPOLLIN | EPOLLEXCLUSIVE;
      event.data.u64 = tag(static_cast<uint32_t>(i + 1), 0);
      const int op = on ? EPOLL_CTL_ADD : EPOLL_CTL_DEL;
      if (::epoll_ctl(epoll_.get(), op, listeners_[i].fd.get(), &event) != 0) {
        spdlog::error("{}", sys::describe("epoll_ctl", errno));
        return false;
      }
    }
    accepting_ = on;
    return true;
  }

  // ---- setup ----

  void boot_io() override {
    epoll_.reset(::epoll_create1(EPOLL_CLOEXEC));  // in the child: each worker its own
    if (!epoll_) throw sys::SysError("epoll_create1", errno);
    epoll_event wakeup{};
    wakeup.events = EPOLLIN;  // level-triggered: handle_wakeup() drains it
    wakeup.data.u64 = tag(kWakeupSlot, 0);
    if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, wakeup_fd(), &wakeup) != 0 || !set_accepting(true))
      throw sys::SysError("epoll_ctl", errno);
    timer_ms_[kIdle] = int64_t{config_.keepalive} * 1000;
    timer_ms_[kRequest] = int64_t{limits_.request_timeout_seconds} * 1000;
    now_ns_ = master::monotonic_ns();
    now_ = now_ns_ / kNsPerMs;
  }

  sys::Fd epoll_;
  std::vector<Connection> connections_;  // the slab, indexed by slot
  std::vector<uint32_t> free_;           // closed slots, reused first
  std::vector<Ref> ready_;               // input left unread: read next turn
  std::vector<Ref> dirty_;               // new output: written at the end of this turn
  std::vector<Ref> running_;             // the list run_queue() is working through
  size_t open_ = 0;
  bool accepting_ = false;
  bool stopping_ = false;
  int64_t accept_retry_ms_ = 0;
  int64_t timer_ms_[kTimers] = {-1, 0, 0, kSendTimeoutMs, kLingerMs};  // by Timer; -1: none
  int64_t now_ = 0;     // monotonic ms, read once per turn
  int64_t now_ns_ = 0;  // the same reading in ns: when this turn's requests started
  bool has_pwait2_ = true;
  DeadlineQueue deadlines_;
  LoopContext context_{deadlines_};
  epoll_event events_[kMaxEvents];
  char buffer_[kReadBuffer];  // the one read buffer: the session copies what it keeps
};

}  // namespace

std::unique_ptr<Worker> make_epoll_worker(const WorkerSetup& setup) {
  return std::make_unique<EpollWorker>(setup);
}

}  // namespace qilin::workers

// threaded: a pool of threads doing blocking IO, one poller for idle connections.
//
// Stevens, UNP §30.12 "TCP prethreaded server, main thread accept", in the shape
// of gunicorn's `gthread`: the main thread owns an epoll set with the
// listeners and every connection that is waiting for its next request; a
// connection that becomes readable is handed to a pool of `threads` threads,
// which serve it with plain blocking calls (UNP 6.1) and park it again.
//
//   main thread:                          pool thread (× threads):
//     epoll_wait(≤ 1 s)  heartbeat tick     wait for a queued connection
//     accept4 + epoll_ctl(ADD, ONESHOT)     recv() until a request is whole (1 s slices)
//     readable → queue, wake a thread       app(request): ctx.sleep() blocks this thread
//     close what outlived its deadline      send()/sendfile(), blocking
//                                           idle: epoll_ctl(MOD) re-arms it: parked
//
// Syscalls per keep-alive request: epoll_wait (main), futex ×2 (hand-off),
// recv, send, epoll_ctl (re-arm). The main thread never blocks but in
// epoll_wait; a pool thread blocks in recv/send and in the app. A blocking app
// call holds one thread: `threads` slow requests saturate the process.
#include <pthread.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <ctime>
#include <list>
#include <mutex>
#include <thread>
#include <vector>

#include "app/runner.hpp"
#include "http/date.hpp"
#include "http/session.hpp"
#include "sys/error.hpp"
#include "sys/log.hpp"
#include "workers/blocking_io.hpp"
#include "workers/worker.hpp"

namespace qilin::workers {

namespace {

// Where a connection is, which is also who owns it. Each place is a list and a
// connection moves between them by splice (no allocation, iterators stay
// valid). Fresh and Parked connections are armed in epoll; Queued and Busy
// ones are not (EPOLLONESHOT disarmed them when their event was delivered).
enum class Place { Fresh, Parked, Queued, Busy };

struct Connection {
  Connection(sys::Fd socket, const http::Limits& limits, std::string peer_name,
             master::IoCounters& io)
      : fd(std::move(socket)), session(limits), gauge(io), peer(std::move(peer_name)) {}
  sys::Fd fd;  // blocking, with 1 s SO_RCVTIMEO/SO_SNDTIMEO slices
  http::Session session;
  master::ConnTracker gauge;  // set by whichever thread owns the connection
  std::string peer;
  int64_t deadline_ms = 0;  // Fresh: first request due; Parked: keep-alive ends
  int64_t queued_ms = 0;    // when it joined the queue for a thread
  Place place = Place::Fresh;
  std::list<Connection>::iterator self;
};

// epoll user data: these small numbers, or a Connection* (never that small).
constexpr uint64_t kWakeupTag = 0, kPoolTag = 1, kListenerTag = 2;
constexpr int kHeartbeatMs = 1000;
constexpr size_t kRecvBuffer = 64 * 1024;
constexpr int64_t kSaturatedWaitMs = 1000;

class ThreadedWorker final : public Worker {
 public:
  using Worker::Worker;

 private:
  void run() override {
    std::vector<epoll_event> events(256);
    while (!finished()) {
      notify();
      int ready =
          ::epoll_wait(epoll_.get(), events.data(), static_cast<int>(events.size()), timeout_ms());
      io().wait(ready);
      if (ready < 0 && errno != EINTR) {
        spdlog::error("{}", sys::describe("epoll_wait", errno));
        break;
      }
      for (int i = 0; i < ready; ++i) on_event(events[static_cast<size_t>(i)]);
      hand_over();
      expire(master::monotonic_ms());
      alive() ? update_accepting() : drain();
    }
    stop_pool();
  }

  bool finished() const {
    return quick_exit() || (draining_ && (open_ == 0 || graceful_ms_left() <= 0));
  }

  int timeout_ms() const {
    int64_t wait = std::min<int64_t>(kHeartbeatMs, next_deadline_ms_ - master::monotonic_ms());
    if (draining_) wait = std::min(wait, graceful_ms_left());
    return static_cast<int>(std::max<int64_t>(wait, 0));
  }

  void on_event(const epoll_event& event) {
    const uint64_t tag = event.data.u64;
    if (tag == kWakeupTag) {
      handle_wakeup();
    } else if (tag == kPoolTag) {
      uint64_t count;
      [[maybe_unused]] auto ignored = ::read(pool_wakeup_.get(), &count, sizeof count);
      io().syscall();
    } else if (tag < kListenerTag + listeners_.size()) {
      on_acceptable(listeners_[tag - kListenerTag].fd.get());
    } else {
      readable_.push_back(static_cast<Connection*>(event.data.ptr));
    }
  }

  // ---- accept: a new connection waits in the poller for its first bytes ----
  // Until then it costs no thread: a client that connects and says nothing
  // (or a slow network) cannot pin the pool.
  void on_acceptable(int listener) {
    while (accepting_ && open_ < max_connections()) {
      // No SOCK_NONBLOCK: pool threads do blocking IO on it; epoll only
      // reports readiness, which works the same on a blocking socket.
      auto client = accept_client(listener, SOCK_CLOEXEC);
      if (!client) return;  // drained, or a sibling worker won the race
      adopt(std::move(*client));
    }
  }

  void adopt(Accepted&& client) {
    set_io_timeout(client.fd.get(), kHeartbeatMs, &io());
    Connection& c =
        fresh_.emplace_back(std::move(client.fd), limits_, std::move(client.peer), io());
    c.self = std::prev(fresh_.end());
    c.session.set_peer(c.peer, trusts_forwarded(c.peer), expects_proxy_header(c.peer));
    c.deadline_ms = master::monotonic_ms() + int64_t{limits_.request_timeout_seconds} * 1000;
    next_deadline_ms_ = std::min(next_deadline_ms_, c.deadline_ms);
    if (config_.keepalive <= 0) c.session.refuse_keep_alive();
    epoll_event armed{.events = EPOLLIN | EPOLLONESHOT, .data = {.ptr = &c}};
    io().syscall();
    if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, c.fd.get(), &armed) != 0) {
      spdlog::error("{}", sys::describe("epoll_ctl", errno));
      fresh_.pop_back();
      return;
    }
    ++open_;
  }

  // ---- readable: the poller hands connections to the pool, one lock per turn ----
  void hand_over() {
    if (readable_.empty()) return;
    const int64_t now = master::monotonic_ms();
    {
      std::lock_guard lock(mutex_);
      for (Connection* c : readable_) {
        queued_.splice(queued_.end(), c->place == Place::Fresh ? fresh_ : parked_, c->self);
        c->place = Place::Queued;
        c->queued_ms = now;
      }
    }
    readable_.size() == 1 ? work_ready_.notify_one() : work_ready_.notify_all();
    readable_.clear();
  }

  void pool_thread() {
    ::prctl(PR_SET_NAME, "qilin-pool");  // top -H: the poller keeps the worker's name
    std::vector<char> buffer(kRecvBuffer);
    std::unique_lock lock(mutex_);
    for (;;) {
      work_ready_.wait(lock, [&] { return exit_ || !queued_.empty(); });
      if (exit_) break;
      Connection& c = queued_.front();
      busy_.splice(busy_.end(), queued_, queued_.begin());
      c.place = Place::Busy;
      lock.unlock();
      if (master::monotonic_ms() - c.queued_ms >= kSaturatedWaitMs) c.session.refuse_keep_alive();
      serve(c, buffer.data());  // the connection leaves parked or closed
      lock.lock();
    }
    --running_;
    pool_exited_.notify_all();
  }

  // ---- a pool thread owns the connection: blocking read, app, write ----
  // Pipelined requests already buffered are answered before the connection is
  // parked, and their responses leave in one write.
  void serve(Connection& c, char* buffer) {
    bool readable = true;         // the poller saw input (or EOF) for us
    int64_t request_started = 0;  // request_timeout_seconds run from here
    for (;;) {
      if (auto request = c.session.next_request()) {
        c.gauge.set(master::ConnState::App);
        answer(c, std::move(*request));
        continue;
      }
      if (c.session.pending_output() > 0) {  // responses, an error, or 100 Continue
        c.gauge.set(master::ConnState::Writing);
        const int64_t deadline =
            master::monotonic_ms() + int64_t{limits_.request_timeout_seconds} * 1000;
        if (!send_all(c.fd.get(), c.session, deadline, io())) return close(c, false);
        continue;
      }
      if (c.session.wants_close()) return close(c, true);
      if (!readable && c.session.idle()) return park(c);
      if (!c.session.wants_input()) return close(c, true);
      readable = false;
      c.gauge.set(master::ConnState::Reading);
      const int64_t now = master::monotonic_ms();
      if (!c.session.reading_request()) request_started = now;  // the next byte starts a request
      size_t received = 0;
      switch (receive(c.fd.get(), buffer, kRecvBuffer, received, &io())) {
        case ReadOutcome::Data:
          feed(c.session, {buffer, received});
          break;
        case ReadOutcome::PeerClosed:
          feed_eof(c.session);
          break;
        case ReadOutcome::TimedOut:  // a 1 s slice without a byte
        case ReadOutcome::Interrupted:
          if (quick_exit() ||
              master::monotonic_ms() >=
                  request_started + int64_t{limits_.request_timeout_seconds} * 1000) {
            spdlog::debug("request from {} not complete in time; closing", c.peer);
            return close(c, false);
          }
          break;
        case ReadOutcome::Failed:
          return close(c, false);
      }
    }
  }

  // The app runs to its end inside this call: every await blocks this thread.
  void answer(Connection& c, http::Request request) {
    http::refresh_date(std::time(nullptr));  // thread_local cache: each pool thread keeps its own
    const int64_t started = master::monotonic_ns();
    app::run_request(app_, std::move(request), context_,
                     [&](http::Request& done, http::Response&& response) {
                       if (!request_done(done, response, c.peer, started))
                         poke_main();  // max_requests: the main thread drains
                       if (refuse_keep_alive_now()) c.session.refuse_keep_alive();
                       c.session.respond(done.id, std::move(response));
                     });
  }

  // Keep-alive is refused (Connection: close) when
  //  - the worker is stopping (TERM, max_requests): alive() is false;
  //  - open connections ≥ worker_connections: accepting is paused, and an idle
  //    keep-alive connection would hold a slot a client in the backlog needs;
  //  - (in pool_thread) the connection waited ≥ kSaturatedWaitMs in the queue
  //    for a thread: the pool is a second behind, so the client goes back
  //    through accept, where a less loaded sibling worker may take it. A queue
  //    *length* bound (queued ≥ threads) is no measure of that: 50 wrk clients
  //    of /, each answered in microseconds, keep ~46 queued, and such a rule
  //    reconnected 60% of their requests and halved throughput.
  bool refuse_keep_alive_now() const { return !alive() || open_ >= max_connections(); }

  // ---- idle again: back to the poller with a keep-alive deadline ----
  void park(Connection& c) {
    std::unique_lock lock(mutex_);
    // Under the lock, so parked_ stays sorted by deadline, and the main thread
    // cannot close this fd between our re-arm and the splice. While draining,
    // a connection whose last response still promised keep-alive (it was
    // decided before TERM) may have its next request on the wire: it gets
    // the stop grace, like those drain() found parked, not a reset.
    c.deadline_ms = master::monotonic_ms() +
                    (draining_ ? kIdleGraceOnStopMs : int64_t{config_.keepalive} * 1000);
    epoll_event armed{.events = EPOLLIN | EPOLLONESHOT, .data = {.ptr = &c}};
    io().syscall();
    if (::epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, c.fd.get(), &armed) != 0) {
      spdlog::error("{}", sys::describe("epoll_ctl", errno));
      lock.unlock();
      return close(c, false);
    }
    parked_.splice(parked_.end(), busy_, c.self);
    c.place = Place::Parked;
    c.gauge.set(master::ConnState::Idle);
  }

  // ---- close, from a pool thread ----
  // `linger`: after a Connection: close response, when the client may have
  // sent more than we read (close_lingering keeps the RST off the response).
  void close(Connection& c, bool linger) {
    std::list<Connection> gone;
    {
      std::lock_guard lock(mutex_);
      gone.splice(gone.end(), busy_, c.self);
    }
    sys::Fd fd = std::move(c.fd);
    gone.clear();
    if (linger && !quick_exit())
      close_lingering(std::move(fd), &io());
    else
      fd.reset();    // close(2) also drops it from the epoll set
    io().syscall();  // the close
    --open_;
    if (main_waiting_) poke_main();  // paused at worker_connections, or draining
  }

  // ---- close, from the main thread: deadlines passed ----
  // Fresh connections that never sent a byte get request_timeout_seconds;
  // parked ones get keepalive seconds. Each list is sorted by deadline
  // (appended in time order with a fixed duration), so only fronts are checked.
  void expire(int64_t now) {
    if (now < next_deadline_ms_) return;
    std::list<Connection> expired;
    auto take_due = [&](std::list<Connection>& from) {
      while (!from.empty() && from.front().deadline_ms <= now)
        expired.splice(expired.end(), from, from.begin());
    };
    take_due(fresh_);
    {
      std::lock_guard lock(mutex_);
      take_due(parked_);
      next_deadline_ms_ =
          std::min({fresh_.empty() ? INT64_MAX : fresh_.front().deadline_ms,
                    parked_.empty() ? INT64_MAX : parked_.front().deadline_ms, now + kHeartbeatMs});
    }
    // Capped at a second: a connection parked after this gets a deadline of at
    // least now + 1 s (keepalive ≥ 1), so none is due before we look again.
    open_ -= expired.size();
    io().syscall(expired.size());  // their closes, as `expired` goes
  }

  // ---- worker_connections: the listeners leave the epoll set at the limit ----
  size_t max_connections() const {
    return static_cast<size_t>(std::max(config_.worker_connections, 1));
  }

  void update_accepting() {
    const bool full = open_ >= max_connections();
    if (full != accepting_) return;
    // Dekker with close(): we publish main_waiting_ and then re-read open_;
    // close() decrements open_ and then reads main_waiting_ (both seq_cst).
    main_waiting_ = full;
    if (full && open_ < max_connections()) {
      main_waiting_ = false;
      return;
    }
    set_listening(!full);
  }

  void set_listening(bool on) {
    for (size_t i = 0; i < listeners_.size(); ++i) {
      epoll_event event{.events = EPOLLIN, .data = {.u64 = kListenerTag + i}};
      if (::epoll_ctl(epoll_.get(), on ? EPOLL_CTL_ADD : EPOLL_CTL_DEL, listeners_[i].fd.get(),
                      &event) != 0)
        spdlog::error("{}", sys::describe("epoll_ctl", errno));
    }
    accepting_ = on;
  }

  void poke_main() {
    const uint64_t one = 1;
    [[maybe_unused]] auto ignored = ::write(pool_wakeup_.get(), &one, sizeof one);
    io().syscall();
  }

  // ---- stopping ----
  // TERM or max_requests: stop accepting; queued and busy connections are
  // answered (with Connection: close) and then close; idle ones get a grace.
  void drain() {
    if (accepting_) set_listening(false);
    main_waiting_ = true;
    if (draining_) return;
    // The backlog joins fresh_ first, so it gets the same grace below.
    take_backlog_and_close_listeners(SOCK_CLOEXEC,
                                     [this](Accepted&& client) { adopt(std::move(client)); });
    // Connections waiting for a request keep a short grace to send it (see
    // kIdleGraceOnStopMs); every response now says Connection: close, and
    // expire() closes those that stay idle. min() keeps both lists sorted.
    const int64_t grace = master::monotonic_ms() + kIdleGraceOnStopMs;
    for (auto& c : fresh_) c.deadline_ms = std::min(c.deadline_ms, grace);
    {
      std::lock_guard lock(mutex_);
      draining_ = true;  // from now on a pool thread closes instead of parking
      for (auto& c : parked_) c.deadline_ms = std::min(c.deadline_ms, grace);
    }
    next_deadline_ms_ = std::min(next_deadline_ms_, grace);
  }

  // Normally every connection is closed and the threads just leave. After
  // quick_exit() or the graceful timeout, SHUT_RDWR kicks threads out of recv
  // and send; a thread still inside the app (a 60 s /block) cannot be joined
  // or outlived by this object, so the process ends here without it.
  void stop_pool() {
    std::unique_lock lock(mutex_);
    exit_ = true;
    for (auto& c : busy_) {
      ::shutdown(c.fd.get(), SHUT_RDWR);
      io().syscall();
    }
    work_ready_.notify_all();
    if (!pool_exited_.wait_for(lock, std::chrono::milliseconds(200),
                               [&] { return running_ == 0; })) {
      spdlog::warn("exiting with {} requests unfinished", busy_.size());
      spdlog::default_logger()->flush();
      if (auto* access = sys::access_log()) access->flush();
      ::_exit(0);
    }
    lock.unlock();
    for (auto& thread : threads_) thread.join();
  }

  // ---- setup ----
  void boot_io() override {
    epoll_.reset(::epoll_create1(EPOLL_CLOEXEC));
    if (!epoll_) throw sys::SysError("epoll_create1", errno);
    pool_wakeup_.reset(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
    if (!pool_wakeup_) throw sys::SysError("eventfd", errno);
    for (auto [fd, tag] :
         {std::pair{wakeup_fd(), kWakeupTag}, std::pair{pool_wakeup_.get(), kPoolTag}}) {
      epoll_event event{.events = EPOLLIN, .data = {.u64 = tag}};
      if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &event) != 0)
        throw sys::SysError("epoll_ctl", errno);
    }
    set_listening(true);
    // Signals belong to the main thread (its handlers poke wakeup_fd): the
    // pool inherits a fully blocked mask.
    sigset_t all, previous;
    sigfillset(&all);
    ::pthread_sigmask(SIG_BLOCK, &all, &previous);
    try {
      for (int i = 0; i < std::max(config_.threads, 1); ++i) {
        threads_.emplace_back([this] { pool_thread(); });
        std::lock_guard lock(mutex_);
        ++running_;
      }
    } catch (...) {
      ::pthread_sigmask(SIG_SETMASK, &previous, nullptr);
      stop_pool();
      throw;
    }
    ::pthread_sigmask(SIG_SETMASK, &previous, nullptr);
  }

  sys::Fd epoll_;
  sys::Fd pool_wakeup_;  // pool → main: a slot freed while paused or draining; max_requests
  std::vector<std::thread> threads_;
  app::BlockingContext context_;  // stateless: shared by the pool threads

  // Main thread only.
  std::list<Connection> fresh_;
  std::vector<Connection*> readable_;
  int64_t next_deadline_ms_ = 0;  // no deadline in fresh_/parked_ before this
  bool accepting_ = false;

  // Shared. mutex_ guards the lists below, the flags and running_.
  std::mutex mutex_;
  std::condition_variable work_ready_, pool_exited_;
  std::list<Connection> queued_, busy_, parked_;
  bool draining_ = false, exit_ = false;
  int running_ = 0;
  // Read without the lock.
  std::atomic<size_t> open_{0};
  std::atomic<bool> main_waiting_{false};
};

}  // namespace

std::unique_ptr<Worker> make_threaded_worker(const WorkerSetup& setup) {
  return std::make_unique<ThreadedWorker>(setup);
}

}  // namespace qilin::workers

// io_uring: completion-based asynchronous IO (Stevens, UNP figure 6.5): the
// process asks the kernel for whole operations on one ring and is told when
// they are done. One multishot accept per listener, one multishot recv per
// connection into provided buffers shared by all connections.
//
//   loop:
//     expire deadlines     keep-alive and request-read: one user-space heap,
//                          lazily re-armed; the kernel sees one timeout, on the wait
//     flush                each connection touched this turn: start its requests,
//                          ONE send (or splice file → pipe → socket) for its output
//     io_uring_submit_and_wait_timeout(min(next deadline, 1 s heartbeat))
//                          ONE io_uring_enter: submit all, sleep here while idle
//     for each CQE         accept → slot, recv → Session::feed, send → written,
//                          timeout → resume the app's sleeping handler;
//                          then one io_uring_cq_advance, one buffer-ring advance
//
// Syscalls per keep-alive request: none of its own (the turn's one
// io_uring_enter covers every connection ready in it). /block stops the loop
// and every connection on it; ctx.sleep() suspends only its handler, on an
// IORING_OP_TIMEOUT whose completion resumes it. Static files go by splice
// in io-wq kernel threads, never through user space.
#include <fcntl.h>
#include <fmt/format.h>
#include <liburing.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <algorithm>
#include <chrono>
#include <coroutine>
#include <cstdlib>
#include <deque>
#include <memory>
#include <new>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "app/runner.hpp"
#include "http/session.hpp"
#include "sys/error.hpp"
#include "sys/log.hpp"
#include "workers/deadlines.hpp"
#include "workers/worker.hpp"

namespace qilin::workers {

namespace {

constexpr unsigned kSqEntries = 2048;
constexpr unsigned kCqEntries = 16384;  // multishot ops post many CQEs per SQE
// Provided buffers are shared by every connection and given back as soon as
// the session has copied their bytes: memory follows the bytes of one turn, not
// the connections. An idle connection costs a Session and a slot, no buffer.
constexpr unsigned kBufferCount = 1024;  // a power of two (the buffer ring's size)
constexpr unsigned kBufferSize = 4096;
constexpr uint16_t kBufferGroup = 0;
constexpr size_t kRingBytes = kBufferCount * sizeof(io_uring_buf);
constexpr size_t kSpliceChunk = 64 * 1024;  // a default pipe: 16 slots of one page each

// user_data, 64 bits:   | op: 8 | generation: 24 | slot: 32 |
// slot is the connection's index in slab_ (for kAccept: the listener's
// index; for kSleep: the sleeper's index in sleepers_); generation is
// slab_[slot].generation when the op was submitted, so a completion or an
// app's answer for a slot since reused is recognised.
// op 0 and 0xFF are never used: liburing's own timeout SQE carries -1.
enum class Op : uint8_t {
  kAccept = 1,
  kWakeup,
  kRecv,
  kSend,
  kSpliceIn,
  kSpliceOut,
  kSleep,
  kIgnore
};
constexpr uint32_t kGenerationMask = (1u << 24) - 1;

uint64_t user_data(Op op, DeadlineQueue::ConnectionRef ref) {
  return uint64_t{static_cast<uint8_t>(op)} << 56 |
         uint64_t{ref.generation & kGenerationMask} << 32 | ref.slot;
}

// Page-aligned memory the kernel reads and writes directly (resident once touched).
struct Free {
  void operator()(char* memory) const noexcept { std::free(memory); }
};
std::unique_ptr<char, Free> page_aligned(size_t size) {
  void* memory = nullptr;
  if (::posix_memalign(&memory, 4096, size) != 0) throw std::bad_alloc();
  return std::unique_ptr<char, Free>(static_cast<char*>(memory));
}

class IoUringWorker final : public Worker {
 public:
  using Worker::Worker;
  // The ring goes first: the kernel stops using the buffers before they are freed.
  ~IoUringWorker() override {
    if (ring_ready_) io_uring_queue_exit(&ring_);
  }

 private:
  using Ref = DeadlineQueue::ConnectionRef;

  // ---- per-connection state ----
  struct Connection {
    Connection(sys::Fd socket, const http::Limits& limits, master::IoCounters& io)
        : fd(std::move(socket)), session(limits), gauge(io) {}
    sys::Fd fd;
    http::Session session;
    master::ConnTracker gauge;      // the scoreboard's open-connection gauges
    std::string peer;               // for the access log only
    msghdr message{};               // a sendmsg in flight points here
    sys::Fd pipe_read, pipe_write;  // file → pipe → socket; made on the first file
    size_t splice_length = 0;
    int64_t deadline_ms = 0;       // 0: none (an app is working on a request)
    int64_t armed_ms = INT64_MAX;  // earliest entry this connection has in the heap
    int64_t reading_since_ms = 0;  // first byte of the request being read
    int64_t progress_ms = 0;       // when the send in flight was submitted
    uint8_t inflight = 0;          // ops whose final CQE has not arrived
    bool receiving = false, recv_cancelled = false, sending = false;
    bool peer_eof = false, eof_fed = false, served = false, lingering = false;
    bool broken = false, closing = false, dirty = false;
  };
  struct SlabEntry {
    uint32_t generation = 0;
    std::optional<Connection> connection;
  };
  struct Acceptor {
    bool armed = false, cancelling = false;
  };

  void run() override {
    add_wakeup();
    while (!quick_exit()) {
      now_ns_ = master::monotonic_ns();  // the one clock read of this turn
      now_ms_ = now_ns_ / kNsPerMs;
      notify(now_ms_);
      deadlines_.expire(now_ms_, [this](Ref ref) { on_deadline(ref); });
      if (!alive() && !stopping_) begin_stopping();
      if (stopping_ && !backlog_taken_ && accepts_disarmed()) take_backlog();
      flush();
      steer_accepts();
      if (stopping_ && ((backlog_taken_ && open_ == 0) || graceful_ms_left() <= 0)) break;
      int64_t wait_ns = deadlines_.wait_ns(now_ns_, 1000);
      if (stopping_) wait_ns = std::clamp<int64_t>(graceful_ms_left() * kNsPerMs, 0, wait_ns);
      auto timeout = timespec_of_ns<__kernel_timespec>(wait_ns);
      io_uring_cqe* cqe = nullptr;
      int waited = io_uring_submit_and_wait_timeout(&ring_, &cqe, 1, &timeout, nullptr);
      if (waited < 0 && waited != -ETIME && waited != -EINTR)
        spdlog::error("{}", sys::describe("io_uring_enter", -waited));
      unsigned head, count = 0;
      io_uring_for_each_cqe(&ring_, head, cqe) {
        ++count;
        handle(*cqe);
      }
      io_uring_cq_advance(&ring_, count);
      io().submit_and_wait(waited > 0 ? static_cast<unsigned>(waited) : 0, count);
      if (recycled_ != 0) io_uring_buf_ring_advance(buffer_ring_, std::exchange(recycled_, 0));
    }
  }

  void handle(const io_uring_cqe& cqe) {
    const auto op = static_cast<Op>(cqe.user_data >> 56);
    const Ref ref{static_cast<uint32_t>(cqe.user_data),
                  static_cast<uint32_t>(cqe.user_data >> 32) & kGenerationMask};
    if (op == Op::kAccept) {
      io().completed(master::ConnOp::Accept, cqe.res);
      return handle_accept(acceptors_[ref.slot], cqe);
    }
    if (op == Op::kRecv) {
      io().completed(master::ConnOp::Read, cqe.res);
      return handle_recv(ref, cqe);
    }
    if (op == Op::kSend || op == Op::kSpliceIn || op == Op::kSpliceOut) {
      io().completed(op == Op::kSend ? master::ConnOp::Write : master::ConnOp::Sendfile, cqe.res);
      return handle_sent(op, ref, cqe);
    }
    if (op == Op::kSleep) return wake_sleeper(ref.slot);
    if (op != Op::kWakeup) return;  // cancels, closes, liburing's own timeout
    handle_wakeup();
    if (!(cqe.flags & IORING_CQE_F_MORE)) add_wakeup();
  }

  // ---- accept ----
  // One rule each turn: armed while under worker_connections and not
  // stopping, cancelled otherwise. Sockets a multishot accept delivers before
  // its cancel lands wait unserved in waiting_ until a slot frees.
  void steer_accepts() {
    const bool want =
        !stopping_ && open_ + waiting_.size() < slab_.size() && now_ms_ >= accept_backoff_ms_;
    for (uint32_t index = 0; index < acceptors_.size(); ++index) {
      Acceptor& acceptor = acceptors_[index];
      if (want && !acceptor.armed) {
        io_uring_prep_multishot_accept(get_sqe(Op::kAccept, {index, 0}), listeners_[index].fd.get(),
                                       nullptr, nullptr, SOCK_CLOEXEC);
        acceptor.armed = true;
      } else if (!want && acceptor.armed && !acceptor.cancelling) {
        io_uring_prep_cancel64(get_sqe(), user_data(Op::kAccept, {index, 0}), 0);
        acceptor.cancelling = true;
      }
    }
  }

  void handle_accept(Acceptor& acceptor, const io_uring_cqe& cqe) {
    if (!(cqe.flags & IORING_CQE_F_MORE)) acceptor.armed = acceptor.cancelling = false;
    if (cqe.res >= 0) {
      connection_accepted();
      return admit(sys::Fd(cqe.res));
    }
    const int error = -cqe.res;
    if (error == ECANCELED || error == ECONNABORTED || error == EAGAIN || error == EINTR) return;
    // EMFILE and friends end the multishot; re-arming at once would spin.
    spdlog::error("{}", sys::describe("accept4", error));
    accept_backoff_ms_ = now_ms_ + 1000;
  }

  // A slot if one is free; otherwise the socket waits, unread, for release().
  void admit(sys::Fd socket) {
    if (open_ < slab_.size()) return open(std::move(socket));
    waiting_.push_back(std::move(socket));
  }

  void open(sys::Fd socket) {
    const uint32_t slot = free_.back();
    free_.pop_back();
    ++open_;
    SlabEntry& entry = slab_[slot];
    Connection& c = entry.connection.emplace(std::move(socket), limits_, io());
    if (needs_peer_address()) {  // a multishot accept has no per-socket address buffer
      sockaddr_storage address{};
      socklen_t length = sizeof address;
      io().syscall();
      if (::getpeername(c.fd.get(), reinterpret_cast<sockaddr*>(&address), &length) == 0)
        c.peer = sys::peer_name(address, length);
      c.session.set_peer(c.peer, trusts_forwarded(c.peer), expects_proxy_header(c.peer));
    }
    if (config_.keepalive <= 0 || stopping_) c.session.refuse_keep_alive();
    touch(c, {slot, entry.generation});
  }

  // ---- recv completion → session ----
  void add_recv(Connection& c, Ref ref) {
    io_uring_sqe* sqe = get_sqe(Op::kRecv, ref);
    io_uring_prep_recv_multishot(sqe, c.fd.get(), nullptr, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = kBufferGroup;
    c.receiving = true;
    c.recv_cancelled = false;
    ++c.inflight;
  }

  void handle_recv(Ref ref, const io_uring_cqe& cqe) {
    Connection* c = find(ref);
    if (cqe.flags & IORING_CQE_F_BUFFER) {
      const unsigned id = cqe.flags >> IORING_CQE_BUFFER_SHIFT;
      if (c != nullptr && !c->closing && !c->lingering && cqe.res > 0)
        take_input(*c, {buffer(id), static_cast<size_t>(cqe.res)});
      recycle(id);
    }
    if (c == nullptr) return;
    if (cqe.res == 0) {
      c->peer_eof = true;
    } else if (cqe.res < 0 && cqe.res != -ENOBUFS && cqe.res != -ECANCELED) {
      // (-ENOBUFS: all buffers taken this turn; they are back when flush re-arms.)
      sort_failure(*c, "recv", -cqe.res);
    }
    if (cqe.flags & IORING_CQE_F_MORE) return touch(*c, ref);
    c->receiving = false;
    finish_op(*c, ref);
  }

  void take_input(Connection& c, std::string_view bytes) {
    // Safe with a send in flight: the session never moves bytes output() gave out.
    feed(c.session, bytes);
  }

  // ---- the session decides; this carries it out (once per touched connection per turn) ----
  void flush() {
    for (size_t i = 0; i < dirty_.size(); ++i) {  // serve() may append
      Connection* c = find(dirty_[i]);
      if (c == nullptr || c->closing) continue;
      c->dirty = false;
      serve(*c, dirty_[i]);
    }
    dirty_.clear();
  }

  void serve(Connection& c, Ref ref) {
    if (c.lingering) {  // draining after our FIN: wait for the client's
      if (c.peer_eof || c.broken) return close(c, ref);
      if (!c.receiving) add_recv(c, ref);
      return;
    }
    serving_ = &c;  // an app answering synchronously needs no second serve()
    if (c.peer_eof && !c.eof_fed) feed_eof(c.session);
    c.eof_fed = c.peer_eof;
    bool started = false;
    while (auto request = c.session.next_request()) {
      start(ref, std::move(*request));
      started = c.served = true;
    }
    if (!c.sending) add_send(c, ref);
    serving_ = nullptr;
    if (c.broken) return close(c, ref);
    if (!c.sending && c.session.wants_close()) return linger(c, ref);
    steer_recv(c, ref);
    set_deadline(c, ref, started);
    c.gauge.set(state_of(c.session));  // Writing while a send is in flight
  }

  // Backpressure: the multishot recv stays armed while the session wants
  // input and is cancelled when it does not (a client that sends but never reads).
  void steer_recv(Connection& c, Ref ref) {
    const bool want = c.session.wants_input() && !c.peer_eof;
    if (want && !c.receiving) {
      add_recv(c, ref);
    } else if (!want && c.receiving && !c.recv_cancelled) {
      io_uring_prep_cancel64(get_sqe(), user_data(Op::kRecv, ref), 0);
      c.recv_cancelled = true;
    }
  }

  // ---- start or resume the app ----
  void start(Ref ref, http::Request&& request) {
    // Now, or later from the deadline heap; the client may have left meanwhile.
    auto answer = [this, ref, started = now_ns_](http::Request& done, http::Response&& response) {
      Connection* c = find(ref);
      if (c == nullptr || c->closing) return;
      if (!request_done(done, response, c->peer, started)) c->session.refuse_keep_alive();
      c->session.respond(std::move(done), std::move(response));
      touch(*c, ref);
    };
    app::run_request(app_, std::move(request), context_, answer);
  }

  // ---- the app's sleeps: one IORING_OP_TIMEOUT each ----
  // co_await ctx.sleep(d) asks the kernel for a timer on this ring; its
  // completion, in the same CQE loop as the socket ops, resumes the handler.
  // The deadline is absolute, in whole milliseconds (sleep_deadline_ms):
  // sleeps due in the same millisecond expire in one timer interrupt and
  // wake the loop once. Exact nanosecond timers each woke it on their own:
  // /sleep cost 10 CPU µs a request instead of 6.5.
  class RingContext final : public app::Context {
   public:
    explicit RingContext(IoUringWorker& worker) : worker_(worker) {}

   protected:
    bool suspend_for(std::chrono::milliseconds duration, std::coroutine_handle<> waiter) override {
      worker_.add_sleep(duration, waiter);
      return true;
    }

   private:
    IoUringWorker& worker_;
  };

  struct Sleeper {
    __kernel_timespec due{};  // the kernel copies it in at the turn's submit
    std::coroutine_handle<> waiter;
  };

  void add_sleep(std::chrono::milliseconds duration, std::coroutine_handle<> waiter) {
    uint32_t id;
    if (free_sleepers_.empty()) {
      id = static_cast<uint32_t>(sleepers_.size());
      sleepers_.emplace_back();  // a deque: earlier entries' timespecs stay put
    } else {
      id = free_sleepers_.back();
      free_sleepers_.pop_back();
    }
    Sleeper& sleeper = sleepers_[id];
    sleeper.due = timespec_of_ns<__kernel_timespec>(sleep_deadline_ms(duration) * kNsPerMs);
    sleeper.waiter = waiter;
    io_uring_prep_timeout(get_sqe(Op::kSleep, {id, 0}), &sleeper.due, 0, IORING_TIMEOUT_ABS);
  }

  // Any result resumes: -ETIME is the timer firing; nothing cancels a sleep.
  void wake_sleeper(uint32_t id) {
    const auto waiter = std::exchange(sleepers_[id].waiter, nullptr);
    free_sleepers_.push_back(id);
    waiter.resume();
  }

  // ---- send completion ----
  // One send per connection for everything output() has ready: a plain send
  // for one buffer (a lone small response, its body folded behind its head),
  // a sendmsg for several. output() is not called again until it completes,
  // so the iovec array stays valid.
  void add_send(Connection& c, Ref ref) {
    auto memory = c.session.output();
    if (memory.size() == 1) {
      io_uring_prep_send(get_sqe(Op::kSend, ref), c.fd.get(), memory[0].iov_base, memory[0].iov_len,
                         MSG_NOSIGNAL);
      ++c.inflight;
    } else if (!memory.empty()) {
      c.message.msg_iov = const_cast<iovec*>(memory.data());
      c.message.msg_iovlen = memory.size();
      io_uring_prep_sendmsg(get_sqe(Op::kSend, ref), c.fd.get(), &c.message, MSG_NOSIGNAL);
      ++c.inflight;
    } else if (auto file = c.session.file_output()) {
      if (!add_splice(c, ref, *file)) return;
    } else {
      return;
    }
    c.sending = true;
    c.progress_ms = now_ms_;
  }

  // file → pipe → socket as two linked splices. The kernel moves page
  // references, so the bytes never cross into user space; io-wq runs both,
  // and the socket is blocking, so the second completes whole (or fails). A
  // short first splice (the file shrank) breaks the link: the second ends
  // with -ECANCELED and the connection closes.
  bool add_splice(Connection& c, Ref ref, const http::FileChunk& file) {
    if (!c.pipe_write) {
      int ends[2];
      io().syscall();
      if (::pipe2(ends, O_CLOEXEC) != 0) {
        spdlog::error("{}", sys::describe("pipe2", errno));
        c.broken = true;
        return false;
      }
      c.pipe_read.reset(ends[0]);
      c.pipe_write.reset(ends[1]);
    }
    if (io_uring_sq_space_left(&ring_) < 2) submit_now();  // a link never spans two submits
    // Ends on a page boundary, or an unaligned start would need a 17th pipe slot.
    c.splice_length = std::min(file.length, kSpliceChunk - static_cast<size_t>(file.offset) % 4096);
    const auto length = static_cast<unsigned>(c.splice_length);
    io_uring_sqe* in = get_sqe(Op::kSpliceIn, ref);
    io_uring_prep_splice(in, file.fd, file.offset, c.pipe_write.get(), -1, length, 0);
    in->flags |= IOSQE_IO_LINK;
    io_uring_sqe* out = get_sqe(Op::kSpliceOut, ref);
    io_uring_prep_splice(out, c.pipe_read.get(), -1, c.fd.get(), -1, length, 0);
    c.inflight += 2;
    return true;
  }

  void handle_sent(Op op, Ref ref, const io_uring_cqe& cqe) {
    Connection* c = find(ref);
    if (c == nullptr) return;
    const int res = cqe.res;
    if (op != Op::kSpliceIn) {
      c->sending = false;
      if (res > 0) c->session.written(static_cast<size_t>(res));
    }
    if (res >= 0 && op != Op::kSend && static_cast<size_t>(res) < c->splice_length) {
      if (op == Op::kSpliceIn)
        spdlog::warn("static file shorter than announced; closing the connection");
      c->broken = true;  // bytes may be left in the pipe: this connection cannot go on
    } else if (res < 0 && res != -ECANCELED) {
      sort_failure(*c, op == Op::kSend ? "send" : "splice", -res);
    }
    finish_op(*c, ref);
  }

  // ---- close ----
  // A connection with ops in flight cannot be freed: the kernel still holds
  // its msghdr, iovecs and fd. Cancel them all; the slot is freed when the
  // last final CQE arrives.
  void close(Connection& c, Ref ref) {
    if (c.closing) return;
    c.closing = true;
    if (c.inflight == 0) return release(ref);
    io_uring_prep_cancel_fd(get_sqe(), c.fd.get(), IORING_ASYNC_CANCEL_ALL);
  }

  // Everything owed is written. Bytes the client sent that we never read (a
  // request pipelined after Connection: close, a rejected body) would turn
  // close() into a RST that can destroy the response on its way: half-close
  // and drain until the client's FIN or kLingerMs (nginx's lingering close).
  void linger(Connection& c, Ref ref) {
    char byte;
    if (c.peer_eof) return close(c, ref);
    const ssize_t unread = ::recv(c.fd.get(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    io().read(0);                           // a peek: its byte is counted when the drain reads it
    if (unread <= 0) return close(c, ref);  // nothing unread: a plain close sends FIN, not RST
    io_uring_prep_shutdown(get_sqe(), c.fd.get(), SHUT_WR);
    c.lingering = true;
    c.deadline_ms = now_ms_ + kLingerMs;
    arm(c, ref);
    if (!c.receiving) add_recv(c, ref);
  }

  void finish_op(Connection& c, Ref ref) {
    if (--c.inflight == 0 && c.closing) return release(ref);
    touch(c, ref);
  }

  void release(Ref ref) {
    SlabEntry& entry = slab_[ref.slot];
    // The close itself goes through the ring: no syscall of its own.
    io_uring_sqe* sqe = get_sqe();
    io_uring_prep_close(sqe, entry.connection->fd.release());
    sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
    entry.connection.reset();
    entry.generation = (entry.generation + 1) & kGenerationMask;
    free_.push_back(ref.slot);
    --open_;
    if (waiting_.empty()) return;
    open(std::move(waiting_.front()));
    waiting_.pop_front();
  }

  // Peer gone (reset, broken pipe) is a debug line; anything else an error.
  void sort_failure(Connection& c, const char* call, int error) {
    const auto level = sys::peer_gone(error) ? spdlog::level::debug : spdlog::level::err;
    if (!c.closing) spdlog::log(level, "{}", sys::describe(call, error));
    c.broken = true;
  }

  // ---- deadlines (lazy: see deadlines.hpp) ----
  // Idle between requests: keepalive. Reading a request: request_timeout
  // from its first byte. Writing: request_timeout for each send to make
  // progress. An app at work has none.
  void set_deadline(Connection& c, Ref ref, bool started) {
    const int64_t request_ms = int64_t{limits_.request_timeout_seconds} * 1000;
    if (started || !c.session.reading_request()) c.reading_since_ms = 0;
    if (c.sending) {
      c.deadline_ms = c.progress_ms + request_ms;
    } else if (c.session.reading_request()) {
      if (c.reading_since_ms == 0) c.reading_since_ms = now_ms_;
      c.deadline_ms = c.reading_since_ms + request_ms;
    } else if (c.session.idle()) {
      c.deadline_ms =
          now_ms_ +
          (c.served && config_.keepalive > 0 ? int64_t{config_.keepalive} * 1000 : request_ms);
      if (stopping_) c.deadline_ms = std::min(c.deadline_ms, now_ms_ + kIdleGraceOnStopMs);
    } else {
      c.deadline_ms = 0;
    }
    arm(c, ref);
  }

  void arm(Connection& c, Ref ref) {
    if (c.deadline_ms == 0 || c.deadline_ms >= c.armed_ms) return;
    deadlines_.add_connection(c.deadline_ms, ref);
    c.armed_ms = c.deadline_ms;
  }

  void on_deadline(Ref ref) {
    Connection* c = find(ref);
    if (c == nullptr || c->closing) return;
    if (c->armed_ms <= now_ms_) c->armed_ms = INT64_MAX;
    if (c->deadline_ms != 0 && c->deadline_ms <= now_ms_) {
      spdlog::debug("closing a connection: {}",
                    c->session.idle() ? "keep-alive timeout" : "request timeout");
      return close(*c, ref);
    }
    arm(*c, ref);
  }

  // ---- graceful stop ----
  // Accepts are cancelled by steer_accepts(); sockets a multishot accept
  // still delivers, and the listen backlog, are served like the rest: every
  // connection answers what it has and closes; idle ones get a short grace.
  //
  // The order matters. The kernel arms an accept's poll as an exclusive
  // waiter (EPOLLEXCLUSIVE's rule): a new connection wakes one waiting
  // worker, not all. An accept still armed here would take the wake-ups of
  // connections this worker will never accept, and its siblings, never
  // woken, would leave them queued until yet another client connects (seen:
  // after a HUP, 16 keep-alive clients reconnecting into a queue that no new
  // worker was told about). So the backlog is taken only after the kernel
  // has finished every accept (its last CQE, without F_MORE): that drain
  // collects the connections whose wake-ups this worker swallowed. It uses
  // plain accept4 calls: an io_uring accept on an empty queue would wait
  // rather than say EAGAIN. A reuse_port socket of this worker's own stops
  // taking SYNs at once, so that by the drain a turn later no handshake is
  // still completing into a queue about to close (and reset what it holds).
  void begin_stopping() {
    stopping_ = true;
    refuse_new_connections();
    for (uint32_t slot = 0; slot < slab_.size(); ++slot) {
      SlabEntry& entry = slab_[slot];
      if (!entry.connection || entry.connection->closing) continue;
      entry.connection->session.refuse_keep_alive();
      touch(*entry.connection, {slot, entry.generation});
    }
  }

  bool accepts_disarmed() const {
    return std::none_of(acceptors_.begin(), acceptors_.end(),
                        [](const Acceptor& acceptor) { return acceptor.armed; });
  }

  void take_backlog() {
    take_backlog_and_close_listeners(SOCK_CLOEXEC,
                                     [this](Accepted&& client) { admit(std::move(client.fd)); });
    backlog_taken_ = true;
  }

  // ---- small helpers ----
  Connection* find(Ref ref) {
    SlabEntry& entry = slab_[ref.slot];
    return entry.connection && entry.generation == ref.generation ? &*entry.connection : nullptr;
  }

  void touch(Connection& c, Ref ref) {
    if (c.dirty || c.closing || &c == serving_) return;
    c.dirty = true;
    dirty_.push_back(ref);
  }

  // A full SQ is submitted early rather than dropping an operation. user_data
  // is set here, before the prep: liburing's prep helpers never touch it.
  io_uring_sqe* get_sqe(Op op = Op::kIgnore, Ref ref = {}) {
    io_uring_sqe* sqe;
    while ((sqe = io_uring_get_sqe(&ring_)) == nullptr) submit_now();
    io_uring_sqe_set_data64(sqe, user_data(op, ref));
    return sqe;
  }

  // Before the turn's own submit: the SQ is full (or a link needs room).
  void submit_now() {
    const int submitted = io_uring_submit(&ring_);
    io().submit(submitted > 0 ? static_cast<unsigned>(submitted) : 0);
  }

  void add_wakeup() { io_uring_prep_poll_multishot(get_sqe(Op::kWakeup), wakeup_fd(), POLLIN); }

  char* buffer(unsigned id) const noexcept {
    return memory_.get() + kRingBytes + size_t{id} * kBufferSize;
  }

  // Given back at once (the session copied the bytes); published to the
  // kernel once per turn by io_uring_buf_ring_advance.
  void recycle(unsigned id) {
    io_uring_buf_ring_add(buffer_ring_, buffer(id), kBufferSize, static_cast<unsigned short>(id),
                          io_uring_buf_ring_mask(kBufferCount), static_cast<int>(recycled_++));
  }

  // ---- setup ----
  // The ring is made here, in the worker's own thread: DEFER_TASKRUN runs
  // completion work only in the thread that waits, which saves the
  // task-work interrupts (worth ~40% here). Older kernels refuse the flags
  // with EINVAL, so fall back step by step.
  void boot_io() override {
    static constexpr unsigned kFlagSets[] = {
        IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_SUBMIT_ALL,
        IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SUBMIT_ALL, 0};
    int result = -EINVAL;
    for (unsigned flags : kFlagSets) {
      io_uring_params params{};
      params.flags = flags | IORING_SETUP_CQSIZE;
      params.cq_entries = kCqEntries;
      result = io_uring_queue_init_params(kSqEntries, &ring_, &params);
      if (result != -EINVAL) break;
    }
    if (result < 0)
      throw std::runtime_error(fmt::format(
          "io_uring is not available: {}{}; use worker_class: epoll",
          sys::describe("io_uring_setup", -result),
          result == -EPERM ? " (kernel.io_uring_disabled or a seccomp filter forbids it)" : ""));
    ring_ready_ = true;

    // The ring of buffer descriptors (16 KiB, whole pages) first, then the buffers.
    memory_ = page_aligned(kRingBytes + size_t{kBufferCount} * kBufferSize);
    buffer_ring_ = reinterpret_cast<io_uring_buf_ring*>(memory_.get());
    io_uring_buf_ring_init(buffer_ring_);
    io_uring_buf_reg registration{};
    registration.ring_addr = reinterpret_cast<uintptr_t>(buffer_ring_);
    registration.ring_entries = kBufferCount;
    registration.bgid = kBufferGroup;
    result = io_uring_register_buf_ring(&ring_, &registration, 0);
    if (result < 0)
      throw std::runtime_error(
          fmt::format("io_uring cannot register a provided-buffer ring: {} (needs Linux 6.0 or "
                      "later); use worker_class: epoll",
                      sys::describe("io_uring_register", -result)));
    for (unsigned id = 0; id < kBufferCount; ++id) recycle(id);
    io_uring_buf_ring_advance(buffer_ring_, std::exchange(recycled_, 0));

    slab_.resize(static_cast<size_t>(config_.worker_connections));
    for (size_t slot = slab_.size(); slot > 0; --slot)
      free_.push_back(static_cast<uint32_t>(slot - 1));
    acceptors_.resize(listeners_.size());
  }

  io_uring ring_{};
  bool ring_ready_ = false;
  std::unique_ptr<char, Free> memory_;  // the buffer ring, then the buffers
  io_uring_buf_ring* buffer_ring_ = nullptr;
  unsigned recycled_ = 0;

  std::vector<SlabEntry> slab_;  // worker_connections slots, never resized
  std::vector<uint32_t> free_;
  size_t open_ = 0;  // slots in use, closing ones included
  std::vector<Ref> dirty_;
  Connection* serving_ = nullptr;
  std::deque<sys::Fd> waiting_;
  std::vector<Acceptor> acceptors_;
  int64_t accept_backoff_ms_ = 0;
  bool stopping_ = false;
  bool backlog_taken_ = false;  // and the listeners closed: after the accepts' last CQEs

  DeadlineQueue deadlines_;
  int64_t now_ns_ = master::monotonic_ns();  // read once per turn: when its requests started
  int64_t now_ms_ = now_ns_ / kNsPerMs;
  std::deque<Sleeper> sleepers_;  // sleeping handlers, by kSleep's index
  std::vector<uint32_t> free_sleepers_;
  RingContext context_{*this};
};

}  // namespace

std::unique_ptr<Worker> make_io_uring_worker(const WorkerSetup& setup) {
  return std::make_unique<IoUringWorker>(setup);
}

}  // namespace qilin::workers

// sync: blocking IO, one connection at a time.
//
// Stevens, UNP figure 6.1 (blocking IO) inside the preforked server of
// chapter 30: each process blocks in the kernel until a connection arrives,
// then blocks in recv until its request is whole, runs the app, blocks in
// send, and closes. gunicorn's `sync` worker, and the baseline every other
// worker class is measured against.
//
//   loop:
//     poll(listeners + wakeup, 1 s)  the process sleeps here while idle; the
//                                    1 s tick is the heartbeat
//     accept4()                      non-blocking listener: a sibling may win
//                                    the race (the thundering herd) → EAGAIN
//     recv() until a whole request   blocks, in 1 s slices (heartbeat)
//     app(request)                   runs to its end: ctx.sleep() blocks this process
//     send()/sendfile()              blocks until the response is in the kernel
//     close()                        always Connection: close, as in gunicorn
//   stopping: accept4() until EAGAIN, serve those, close the listeners
//
// Syscalls per request: poll, accept4, setsockopt ×2, recv, send, recv
// (lingering check), close: 8, each counted in io() where it is made (the
// blocking_io helpers count theirs). One request per wake-up, less when the
// poll of an idle sibling wakes for the same connection (the thundering herd).
// A slow app or a slow client holds the whole process; that is the lesson of
// /block and /sleep under this class.
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <vector>

#include "app/runner.hpp"
#include "http/session.hpp"
#include "sys/error.hpp"
#include "workers/blocking_io.hpp"
#include "workers/worker.hpp"

namespace qilin::workers {

namespace {

class SyncWorker final : public Worker {
 public:
  using Worker::Worker;

 private:
  void run() override {
    std::vector<pollfd> watched;
    watched.push_back({.fd = wakeup_fd(), .events = POLLIN, .revents = 0});
    for (const auto& listener : listeners_)
      watched.push_back({.fd = listener.fd.get(), .events = POLLIN, .revents = 0});

    while (alive()) {
      notify();
      int ready = ::poll(watched.data(), watched.size(), 1000);
      io().wait(ready);
      if (ready < 0 && errno != EINTR) throw sys::SysError("poll", errno);
      if (watched[0].revents & POLLIN) handle_wakeup();
      for (size_t i = 1; i < watched.size() && alive(); ++i)
        if (watched[i].revents & POLLIN) accept_and_serve(watched[i].fd);
    }
    // Stopping: connections already in the listen queue are clients too.
    take_backlog_and_close_listeners(SOCK_CLOEXEC, [this](Accepted&& client) {
      if (quick_exit()) return;
      serve(std::move(client.fd), client.peer);
      io().syscall();  // serve() closed the connection
    });
  }

  // A sibling may have won the race for this connection: then nothing to do.
  void accept_and_serve(int listener) {
    auto client = accept_client(listener, SOCK_CLOEXEC);
    if (!client) return;
    serve(std::move(client->fd), client->peer);
    io().syscall();  // serve() closed the connection
  }

  void serve(sys::Fd client, const std::string& peer) {
    // Blocking calls wait at most a second each, so the heartbeat stays fresh
    // while a slow client is served; the request as a whole gets
    // request_timeout_seconds.
    set_io_timeout(client.get(), 1000, &io());
    const int64_t deadline =
        master::monotonic_ms() + int64_t{limits_.request_timeout_seconds} * 1000;
    http::Session session(limits_);
    session.refuse_keep_alive();
    session.set_peer(peer, trusts_forwarded(peer), expects_proxy_header(peer));
    master::ConnTracker state(io(), master::ConnState::Reading);

    while (!session.wants_close()) {
      if (auto request = session.next_request()) {
        state.set(master::ConnState::App);
        answer(client.get(), session, std::move(*request), peer);
        state.set(master::ConnState::Writing);
        if (!send_all(client.get(), session, deadline, io())) return;
        state.set(master::ConnState::Reading);
        continue;
      }
      if (session.pending_output() > 0) {  // an error response, or 100 Continue
        state.set(master::ConnState::Writing);
        if (!send_all(client.get(), session, deadline, io())) return;
        state.set(master::ConnState::Reading);
        continue;
      }
      size_t received = 0;
      switch (receive(client.get(), buffer_, sizeof buffer_, received, &io())) {
        case ReadOutcome::Data:
          feed(session, {buffer_, received});
          break;
        case ReadOutcome::PeerClosed:
          feed_eof(session);
          break;
        case ReadOutcome::TimedOut:
        case ReadOutcome::Interrupted:
          notify();
          if (quick_exit() || master::monotonic_ms() >= deadline) return;
          break;
        case ReadOutcome::Failed:
          return;
      }
    }
    close_lingering(std::move(client), &io());
  }

  // The app runs to its end inside this call: every await blocks.
  // If it overruns `timeout`, the master's ABRT answers 500 (see serving()).
  void answer(int client, http::Session& session, http::Request request, const std::string& peer) {
    const int64_t started_ns = master::monotonic_ns();
    serving(client, request, peer);
    app::run_request(app_, std::move(request), context_,
                     [&](http::Request& done, http::Response&& response) {
                       request_done(done, response, peer, started_ns);
                       session.respond(done.id, std::move(response));
                     });
    served();
  }

  app::BlockingContext context_;
  char buffer_[64 * 1024];
};

}  // namespace

std::unique_ptr<Worker> make_sync_worker(const WorkerSetup& setup) {
  return std::make_unique<SyncWorker>(setup);
}

}  // namespace qilin::workers

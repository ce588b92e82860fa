// The status process's loop (see status_server.hpp):
//
//   loop:
//     once a second: is the master alive? sample the scoreboard (rates, p99
//       history, and the StatsD window when statsd_host is set)
//     poll(listener + connections, until the next second)
//     readable: recv → Session::feed; each request → status_response(snapshot)
//     writable: sendmsg(Session::output())
//     accept4 (at kMaxConnections, the longest idle one makes room); close
//     idle ones after kIdleMs
//
// Every request renders a fresh snapshot: reading 2048 slots is cheaper than
// the JSON it becomes.
#include "master/status_server.hpp"

#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <ctime>
#include <memory>
#include <optional>
#include <vector>

#include "http/date.hpp"
#include "http/session.hpp"
#include "master/status_render.hpp"
#include "sys/error.hpp"
#include "sys/fd.hpp"

namespace qilin::master {

namespace {

constexpr size_t kMaxConnections = 64;
constexpr int64_t kIdleMs = 10'000;
constexpr int64_t kSampleMs = 1000;

struct Connection {
  sys::Fd fd;
  http::Session session;
  int64_t deadline_ms;
};

class StatusServer {
 public:
  StatusServer(const StatusOptions& options, const Scoreboard& scoreboard, pid_t master_pid)
      : listener_(options.listener), scoreboard_(scoreboard), master_pid_(master_pid) {
    if (options.statsd) statsd_.emplace(*options.statsd);
  }

  int run() {
    int64_t next_sample_ms = 0;
    std::vector<pollfd> watched;
    while (true) {
      int64_t now = monotonic_ms();
      if (now >= next_sample_ms) {
        if (::getppid() != master_pid_) return 0;
        const Snapshot snapshot = take_snapshot(scoreboard_, realtime_ms(), now);
        history_.sample(snapshot);
        if (statsd_) statsd_->report(snapshot);
        next_sample_ms = now + kSampleMs;
      }
      std::erase_if(connections_, [&](const auto& c) { return c->deadline_ms <= now; });

      watched.clear();
      // Without a listener (-1) poll ignores the entry and reports nothing.
      watched.push_back({.fd = listener_, .events = POLLIN, .revents = 0});
      for (const auto& c : connections_) {
        short events = 0;
        if (c->session.wants_input()) events |= POLLIN;
        if (c->session.pending_output() > 0) events |= POLLOUT;
        watched.push_back({.fd = c->fd.get(), .events = events, .revents = 0});
      }
      const int ready =
          ::poll(watched.data(), watched.size(), static_cast<int>(next_sample_ms - now));
      if (ready < 0 && errno != EINTR) {
        spdlog::error("status: {}", sys::describe("poll", errno));
        return 1;
      }
      if (ready <= 0) continue;
      http::refresh_date(std::time(nullptr));

      for (size_t i = 0; i < connections_.size(); ++i) {
        const short revents = watched[i + 1].revents;
        if (revents == 0) continue;
        Connection& c = *connections_[i];
        bool open = true;
        if (revents & (POLLIN | POLLHUP | POLLERR)) open = on_readable(c);
        if (open) open = on_writable(c);
        if (!open || c.session.wants_close())
          connections_[i].reset();
        else
          c.deadline_ms = monotonic_ms() + kIdleMs;
      }
      std::erase(connections_, nullptr);
      if (watched[0].revents & POLLIN) on_accept();
    }
  }

 private:
  void on_accept() {
    while (true) {
      sys::Fd client(::accept4(listener_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
      if (!client) {
        if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
          spdlog::warn("status: {}", sys::describe("accept4", errno));
        return;
      }
      // Full: clients that connect and say nothing must not lock the page
      // out, so the connection idle longest goes (as nginx reuses idle
      // keep-alive connections).
      if (connections_.size() >= kMaxConnections)
        connections_.erase(std::min_element(
            connections_.begin(), connections_.end(),
            [](const auto& a, const auto& b) { return a->deadline_ms < b->deadline_ms; }));
      connections_.push_back(std::make_unique<Connection>(
          Connection{std::move(client), http::Session(limits_), monotonic_ms() + kIdleMs}));
    }
  }

  // False: close the connection.
  bool on_readable(Connection& c) {
    const ssize_t n = ::recv(c.fd.get(), buffer_, sizeof buffer_, MSG_DONTWAIT);
    if (n > 0) {
      c.session.feed({buffer_, static_cast<size_t>(n)});
    } else if (n == 0) {
      c.session.feed_eof();
    } else if (errno != EAGAIN && errno != EINTR) {
      if (!sys::peer_gone(errno)) spdlog::warn("status: {}", sys::describe("recv", errno));
      return false;
    }
    while (auto request = c.session.next_request()) {
      const Snapshot snapshot = take_snapshot(scoreboard_, realtime_ms(), monotonic_ms());
      c.session.respond(request->id, status_response(*request, snapshot, history_));
    }
    return true;
  }

  bool on_writable(Connection& c) {
    while (c.session.pending_output() > 0) {
      auto memory = c.session.output();
      if (memory.empty()) return false;  // a file region: never produced here
      msghdr message{};
      message.msg_iov = const_cast<iovec*>(memory.data());
      message.msg_iovlen = memory.size();
      const ssize_t sent = ::sendmsg(c.fd.get(), &message, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (sent < 0) {
        if (errno == EAGAIN || errno == EINTR) return true;
        if (!sys::peer_gone(errno)) spdlog::warn("status: {}", sys::describe("sendmsg", errno));
        return false;
      }
      c.session.written(static_cast<size_t>(sent));
    }
    return true;
  }

  int listener_;
  const Scoreboard& scoreboard_;
  pid_t master_pid_;
  http::Limits limits_;
  StatusHistory history_;
  std::optional<StatsdClient> statsd_;
  std::vector<std::unique_ptr<Connection>> connections_;
  char buffer_[16 * 1024];
};

}  // namespace

int run_status_server(const StatusOptions& options, const Scoreboard& scoreboard,
                      pid_t master_pid) {
  return StatusServer(options, scoreboard, master_pid).run();
}

}  // namespace qilin::master

#include "workers/blocking_io.hpp"

#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <cerrno>

#include "master/scoreboard.hpp"
#include "sys/error.hpp"
#include "workers/session_output.hpp"
#include "workers/worker.hpp"

namespace qilin::workers {

bool send_all(int fd, http::Session& session, int64_t deadline_ms, master::IoCounters& io) {
  for (;;) {
    switch (write_output(fd, session, io)) {
      case WriteOutcome::Wrote:
        break;
      case WriteOutcome::Nothing:
        return true;
      case WriteOutcome::WouldBlock:  // a send timeout slice (set_io_timeout) passed
        if (master::monotonic_ms() < deadline_ms) break;
        spdlog::debug("client too slow to read its response; closing the connection");
        return false;
      case WriteOutcome::Failed:
        return false;
    }
  }
}

ReadOutcome receive(int fd, char* buffer, size_t capacity, size_t& received,
                    master::IoCounters* io) {
  ssize_t n = ::recv(fd, buffer, capacity, 0);
  if (io) io->read(n);
  if (n > 0) {
    received = static_cast<size_t>(n);
    return ReadOutcome::Data;
  }
  if (n == 0) return ReadOutcome::PeerClosed;
  if (errno == EINTR) return ReadOutcome::Interrupted;
  if (errno == EAGAIN || errno == EWOULDBLOCK) return ReadOutcome::TimedOut;
  if (sys::peer_gone(errno)) {
    spdlog::debug("{}", sys::describe("recv", errno));
    return ReadOutcome::PeerClosed;
  }
  spdlog::error("{}", sys::describe("recv", errno));
  return ReadOutcome::Failed;
}

void close_lingering(sys::Fd connection, master::IoCounters* io) {
  char scratch[4096];
  ssize_t unread = ::recv(connection.get(), scratch, sizeof scratch, MSG_DONTWAIT);
  if (io) io->read(unread);
  if (unread <= 0) return;  // nothing unread: a plain close sends FIN, not RST
  ::shutdown(connection.get(), SHUT_WR);
  if (io) io->syscall();
  set_io_timeout(connection.get(), kBlockingLingerSliceMs, io);
  const int64_t give_up = master::monotonic_ms() + kBlockingLingerMs;
  while (master::monotonic_ms() < give_up) {
    ssize_t drained = ::recv(connection.get(), scratch, sizeof scratch, 0);
    if (io) io->read(drained);
    if (drained <= 0) break;
  }
}

void set_io_timeout(int fd, int milliseconds, master::IoCounters* io) {
  timeval limit{.tv_sec = milliseconds / 1000, .tv_usec = (milliseconds % 1000) * 1000};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof limit);
  if (io) io->syscall(2);
}

}  // namespace qilin::workers

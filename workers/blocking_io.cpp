#include "workers/blocking_io.hpp"

#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <cerrno>

#include <spdlog/spdlog.h>

#include "master/scoreboard.hpp"
#include "sys/error.hpp"

namespace qilin::workers {

bool send_all(int fd, http::Session& session, int64_t deadline_ms) {
  while (session.pending_output() > 0) {
    ssize_t sent;
    auto memory = session.output();
    if (!memory.empty()) {
      msghdr message{};
      message.msg_iov = const_cast<iovec*>(memory.data());
      message.msg_iovlen = memory.size();
      sent = ::sendmsg(fd, &message, MSG_NOSIGNAL);
    } else if (auto file = session.file_output()) {
      off_t offset = file->offset;
      sent = ::sendfile(fd, file->fd, &offset, file->length);
      if (sent == 0) {  // the file shrank under us: the promised length cannot be kept
        spdlog::warn("static file shorter than announced; closing the connection");
        return false;
      }
    } else {
      break;
    }
    if (sent < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        if (master::monotonic_ms() < deadline_ms) continue;
        spdlog::debug("client too slow to read its response; closing the connection");
        return false;
      }
      if (sys::peer_gone(errno))
        spdlog::debug("{}", sys::describe("sendmsg", errno));
      else
        spdlog::error("{}", sys::describe("sendmsg", errno));
      return false;
    }
    session.written(static_cast<size_t>(sent));
  }
  return true;
}

ReadOutcome receive(int fd, char* buffer, size_t capacity, size_t& received) {
  ssize_t n = ::recv(fd, buffer, capacity, 0);
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

void close_lingering(sys::Fd connection) {
  char scratch[4096];
  ssize_t unread = ::recv(connection.get(), scratch, sizeof scratch, MSG_DONTWAIT);
  if (unread <= 0) return;  // nothing unread: a plain close sends FIN, not RST
  ::shutdown(connection.get(), SHUT_WR);
  set_io_timeout(connection.get(), 200);
  const int64_t give_up = master::monotonic_ms() + 1000;
  while (master::monotonic_ms() < give_up && ::recv(connection.get(), scratch, sizeof scratch, 0) > 0) {
  }
}

void set_io_timeout(int fd, int milliseconds) {
  timeval limit{.tv_sec = milliseconds / 1000, .tv_usec = (milliseconds % 1000) * 1000};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof limit);
}

}  // namespace qilin::workers

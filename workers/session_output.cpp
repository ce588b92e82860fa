#include "workers/session_output.hpp"

#include <spdlog/spdlog.h>
#include <sys/sendfile.h>
#include <sys/socket.h>

#include <cerrno>

#include "sys/error.hpp"

namespace qilin::workers {

WriteOutcome write_output(int fd, http::Session& session, master::IoCounters& io) {
  for (;;) {
    const char* call = "send";
    ssize_t sent;
    if (auto memory = session.output(); memory.size() == 1) {
      sent = ::send(fd, memory[0].iov_base, memory[0].iov_len, MSG_NOSIGNAL);
      io.write();
    } else if (!memory.empty()) {
      call = "sendmsg";
      msghdr message{};
      message.msg_iov = const_cast<iovec*>(memory.data());
      message.msg_iovlen = memory.size();
      sent = ::sendmsg(fd, &message, MSG_NOSIGNAL);
      io.write();
    } else if (auto file = session.file_output()) {
      call = "sendfile";
      off_t offset = file->offset;
      sent = ::sendfile(fd, file->fd, &offset, file->length);
      io.sendfile();
      if (sent == 0) {  // the file shrank under us: the promised length cannot be kept
        spdlog::warn("static file shorter than announced; closing the connection");
        return WriteOutcome::Failed;
      }
    } else {
      return WriteOutcome::Nothing;
    }
    if (sent >= 0) {
      session.written(static_cast<size_t>(sent));
      return WriteOutcome::Wrote;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return WriteOutcome::WouldBlock;
    if (sys::peer_gone(errno))
      spdlog::debug("{}", sys::describe(call, errno));
    else
      spdlog::error("{}", sys::describe(call, errno));
    return WriteOutcome::Failed;
  }
}

}  // namespace qilin::workers

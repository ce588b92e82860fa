// The one place a worker that writes with syscalls (sync, threaded, epoll)
// moves a session's output to its socket: a send (one buffer) or sendmsg
// (several) of the memory bytes ready, or a sendfile of the file region that
// comes next, with the outcome sorted at the call (STYLE 8). Blocking workers
// call it until the session is drained (send_all); epoll calls it until the
// socket would block. The io_uring worker submits the same operations as SQEs
// instead.
#pragma once

#include "http/session.hpp"
#include "master/scoreboard.hpp"

namespace qilin::workers {

enum class WriteOutcome {
  Wrote,       // some bytes left; session.written() has been told
  Nothing,     // the session has nothing ready to write
  WouldBlock,  // the socket buffer is full (or a send timeout passed)
  Failed,      // the peer is gone, the write failed, or a file shrank: close (already logged)
};

// One write attempt; EINTR is retried here. Counted in `io`.
WriteOutcome write_output(int fd, http::Session& session, master::IoCounters& io);

}  // namespace qilin::workers

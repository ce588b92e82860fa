// Blocking socket IO shared by the workers whose model is blocking IO (sync,
// and the pool threads of threaded): the one place that writes a session's
// output with blocking calls and closes a connection without losing the
// response to a reset.
//
// Each takes the worker's io() counters (optional): the syscalls made here are
// counted here, one line per syscall, so a caller counts nothing for them;
// only the final close(2) of a connection is the caller's to count.
#pragma once

#include <cstdint>

#include "http/session.hpp"
#include "master/scoreboard.hpp"
#include "sys/fd.hpp"

namespace qilin::workers {

// Writes everything the session has ready (write_output until it has
// nothing), blocking. A socket send timeout (set_io_timeout) is retried
// until `deadline_ms` (monotonic) passes. False when the peer is gone, the
// deadline passed, or the write failed.
bool send_all(int fd, http::Session& session, int64_t deadline_ms, master::IoCounters& io);

// Why a blocking read ended.
enum class ReadOutcome { Data, PeerClosed, TimedOut, Interrupted, Failed };

// One recv into `buffer`: the sorting of outcomes at the call (STYLE 8).
ReadOutcome receive(int fd, char* buffer, size_t capacity, size_t& received,
                    master::IoCounters* io = nullptr);

// Closes after a Connection: close response. When the client has sent more
// than we read (a pipelined request we will not answer), close() would send a
// RST that can destroy the response still in flight; so shut down our side
// and drain briefly first (nginx's lingering close).
void close_lingering(sys::Fd connection, master::IoCounters* io = nullptr);

// SO_RCVTIMEO / SO_SNDTIMEO: how long one blocking call may wait.
void set_io_timeout(int fd, int milliseconds, master::IoCounters* io = nullptr);

}  // namespace qilin::workers

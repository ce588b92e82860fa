// Errors that carry the name of the syscall that failed, printed the way nginx
// prints them: "epoll_ctl() failed (9: Bad file descriptor)".
#pragma once

#include <cerrno>
#include <stdexcept>
#include <string>

namespace qilin::sys {

std::string describe(const char* syscall, int err);

// Thrown at boot (bind, ring set-up, ...); never across an event loop.
class SysError : public std::runtime_error {
 public:
  SysError(const char* syscall, int err) : std::runtime_error(describe(syscall, err)), err_(err) {}
  int code() const noexcept { return err_; }

 private:
  int err_;
};

// The peer went away: not an error worth more than a debug line (STYLE 8).
inline bool peer_gone(int err) noexcept {
  return err == ECONNRESET || err == EPIPE || err == ENOTCONN || err == ESHUTDOWN ||
         err == ETIMEDOUT;
}

}  // namespace qilin::sys

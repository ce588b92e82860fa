// Sockets shared by the master (which binds) and the workers (which accept).
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <string>

#include "sys/fd.hpp"

namespace qilin::sys {

// A listening socket, bound once by the master and inherited by every worker
// across fork (and across exec on a binary upgrade). Always non-blocking: the
// O_NONBLOCK flag lives in the open file description that all workers share,
// so one worker class flipping it would change it under the others.
struct Listener {
  Fd fd;
  std::string name;       // as configured: "127.0.0.1:8000", "unix:/run/qilin.sock"
  std::string unix_path;  // for unix sockets: the file to remove at shutdown
};

enum class Family { Tcp4, Tcp6, Unix };

// Binds and listens. Throws SysError naming the failed call. A unix socket
// file left by a dead server is removed first; one a live server still
// answers on is an error (EADDRINUSE).
Listener listen_tcp(Family family, const std::string& host, uint16_t port, int backlog,
                    const std::string& name);
Listener listen_unix(const std::string& path, int backlog, const std::string& name);

// The port actually bound (useful with port 0 in tests), or 0 for unix sockets.
uint16_t local_port(int fd);

void set_nonblocking(int fd);
void set_cloexec(int fd, bool on);

// "127.0.0.1", "::1", or "unix" for a unix-socket peer (access log %(h)s).
std::string peer_name(const sockaddr_storage& address, socklen_t length);

}  // namespace qilin::sys

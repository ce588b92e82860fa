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
  // reuse_port: this socket only reserves the address (bound, not listening);
  // each worker listens on a socket of its own there (listen_beside).
  bool per_worker = false;
  // A worker's own SO_REUSEPORT socket (listen_beside): nobody else accepts
  // on it, so the worker must serve its queue before closing it.
  bool exclusive = false;
};

enum class Family { Tcp4, Tcp6, Unix };

// Binds and listens (with `reuse_port`: binds with SO_REUSEPORT and does not
// listen, see Listener::per_worker). Throws SysError naming the failed call. A unix socket
// file left by a dead server is removed first; one a live server still
// answers on is an error (EADDRINUSE).
Listener listen_tcp(Family family, const std::string& host, uint16_t port, int backlog,
                    const std::string& name, bool reuse_port = false);
Listener listen_unix(const std::string& path, int backlog, const std::string& name);

// Takes over a listening socket this process inherited (a binary upgrade's
// QILIN_LISTEN_FDS, systemd's LISTEN_FDS). Throws SysError when `fd` is not
// a listening stream socket. The socket file of an adopted unix listener
// belongs to whoever created it: unix_path stays empty, so we never unlink it.
Listener adopt_listener(int fd);

// A listening SO_REUSEPORT socket at the address `reservation` holds: each
// worker's own, so the kernel balances connections between the workers.
Listener listen_beside(const Listener& reservation, int backlog);

// From now on the kernel drops bare SYNs sent to `listener` (a socket filter),
// so no new connection joins its accept queue, while handshakes already under
// way complete and queued connections stay. A client's SYN is retried after a
// second: by then this socket is closed and the client is refused, or, in a
// SO_REUSEPORT group, served by a sibling. Lets a stopping server empty the
// queue with accept until EAGAIN and then close, without resetting anyone it
// had already accepted. TCP only (a unix listener's file is unlinked instead).
void refuse_new_connections(int listener);

// The port actually bound (useful with port 0 in tests), or 0 for unix sockets.
uint16_t local_port(int fd);

void set_nonblocking(int fd);
void set_cloexec(int fd, bool on);

// A TCP/UDP address from a literal (IPv4, IPv6, or "localhost" = 127.0.0.1)
// and a port, into `address`; returns its length, or 0 when `host` is not a
// literal of `family` (Tcp4 or Tcp6).
socklen_t inet_address(Family family, const std::string& host, uint16_t port,
                       sockaddr_storage& address);

// Whether the socket `fd` is bound to `host`:`port` of `family` (Tcp4 or
// Tcp6), by the address the kernel reports, however `host` is spelled.
bool bound_to(int fd, Family family, const std::string& host, uint16_t port);

// "127.0.0.1", "::1", or "unix" for a unix-socket peer (access log %(h)s).
std::string peer_name(const sockaddr_storage& address, socklen_t length);

}  // namespace qilin::sys

#include "sys/socket.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/un.h>

#include <cerrno>
#include <cstring>

#include "sys/error.hpp"

namespace qilin::sys {

namespace {

Fd make_socket(int domain) {
  Fd fd(::socket(domain, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) throw SysError("socket", errno);
  return fd;
}

void listen_or_throw(const Fd& fd, int backlog) {
  if (::listen(fd.get(), backlog) != 0) throw SysError("listen", errno);
}

// A socket file is stale when nobody accepts on it any more.
bool unix_socket_is_stale(const sockaddr_un& address) {
  Fd probe(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!probe) return false;
  return ::connect(probe.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0 &&
         errno == ECONNREFUSED;
}

}  // namespace

socklen_t inet_address(Family family, const std::string& host, uint16_t port,
                       sockaddr_storage& address) {
  address = {};
  if (family == Family::Tcp6) {
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&address);
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(port);
    return ::inet_pton(AF_INET6, host.c_str(), &in6->sin6_addr) == 1 ? sizeof *in6 : 0;
  }
  auto* in4 = reinterpret_cast<sockaddr_in*>(&address);
  in4->sin_family = AF_INET;
  in4->sin_port = htons(port);
  const char* literal = host == "localhost" ? "127.0.0.1" : host.c_str();
  return ::inet_pton(AF_INET, literal, &in4->sin_addr) == 1 ? sizeof *in4 : 0;
}

bool bound_to(int fd, Family family, const std::string& host, uint16_t port) {
  sockaddr_storage wanted{}, actual{};
  socklen_t length = sizeof actual;
  if (inet_address(family, host, port, wanted) == 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&actual), &length) != 0 ||
      actual.ss_family != wanted.ss_family)
    return false;
  if (wanted.ss_family == AF_INET6) {
    const auto& a = reinterpret_cast<const sockaddr_in6&>(actual);
    const auto& w = reinterpret_cast<const sockaddr_in6&>(wanted);
    return a.sin6_port == w.sin6_port &&
           std::memcmp(&a.sin6_addr, &w.sin6_addr, sizeof a.sin6_addr) == 0;
  }
  const auto& a = reinterpret_cast<const sockaddr_in&>(actual);
  const auto& w = reinterpret_cast<const sockaddr_in&>(wanted);
  return a.sin_port == w.sin_port && a.sin_addr.s_addr == w.sin_addr.s_addr;
}

namespace {

Listener listen_tcp_with(Family family, const std::string& host, uint16_t port, int backlog,
                         const std::string& name, bool reuse_port) {
  sockaddr_storage storage{};
  const socklen_t length = inet_address(family, host, port, storage);
  if (length == 0) throw SysError("inet_pton", EINVAL);
  Fd fd = make_socket(storage.ss_family);
  int on = 1;
  // A restarted server must not wait out TIME_WAIT of its previous life.
  if (::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) != 0)
    throw SysError("setsockopt", errno);
  if (reuse_port && ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEPORT, &on, sizeof on) != 0)
    throw SysError("setsockopt", errno);
  if (family == Family::Tcp6 &&
      ::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof on) != 0)
    throw SysError("setsockopt", errno);
  // Responses are written whole; Nagle would only delay the last segment.
  if (::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &on, sizeof on) != 0)
    throw SysError("setsockopt", errno);
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&storage), length) != 0)
    throw SysError("bind", errno);
  // A reservation never listens: a listening socket in a SO_REUSEPORT group
  // gets its share of connections, and the master accepts none.
  if (reuse_port) return Listener{std::move(fd), name, {}, true};
  listen_or_throw(fd, backlog);
  return Listener{std::move(fd), name, {}};
}

}  // namespace

Listener listen_tcp(Family family, const std::string& host, uint16_t port, int backlog,
                    const std::string& name, bool reuse_port) {
  return listen_tcp_with(family, host, port, backlog, name, reuse_port);
}

Listener listen_beside(const Listener& reservation, int backlog) {
  sockaddr_storage storage{};
  socklen_t length = sizeof storage;
  if (::getsockname(reservation.fd.get(), reinterpret_cast<sockaddr*>(&storage), &length) != 0)
    throw SysError("getsockname", errno);
  Family family = storage.ss_family == AF_INET6 ? Family::Tcp6 : Family::Tcp4;
  Listener own = listen_tcp_with(family, peer_name(storage, length),
                                 local_port(reservation.fd.get()), backlog, reservation.name, true);
  listen_or_throw(own.fd, backlog);
  own.per_worker = false;
  own.exclusive = true;
  return own;
}

Listener adopt_listener(int fd) {
  int listening = 0;
  socklen_t size = sizeof listening;
  if (::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &size) != 0)
    throw SysError("getsockopt", errno);
  if (!listening) throw SysError("listen", EINVAL);
  sockaddr_storage storage{};
  socklen_t length = sizeof storage;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&storage), &length) != 0)
    throw SysError("getsockname", errno);
  set_nonblocking(fd);
  set_cloexec(fd, true);
  std::string name;
  // Appended, not "literal" + std::string: GCC 12 at -O3 warns on that
  // (-Wrestrict, a false positive: GCC PR 105329).
  if (storage.ss_family == AF_UNIX)
    name.append("unix:").append(reinterpret_cast<sockaddr_un*>(&storage)->sun_path);
  else if (storage.ss_family == AF_INET6)
    name.append("[")
        .append(peer_name(storage, length))
        .append("]:")
        .append(std::to_string(local_port(fd)));
  else
    name = peer_name(storage, length) + ":" + std::to_string(local_port(fd));
  return Listener{Fd(fd), name, {}};
}

Listener listen_unix(const std::string& path, int backlog, const std::string& name) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (path.size() >= sizeof address.sun_path) throw SysError("bind", ENAMETOOLONG);
  std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
  if (unix_socket_is_stale(address)) ::unlink(path.c_str());
  Fd fd = make_socket(AF_UNIX);
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) != 0)
    throw SysError("bind", errno);
  listen_or_throw(fd, backlog);
  return Listener{std::move(fd), name, path};
}

void refuse_new_connections(int listener) {
  // A TCP socket's filter sees each segment from its TCP header on; byte 13
  // holds the flags. SYN without ACK opens a connection: drop it. Everything
  // else passes, so handshakes in progress still complete into the queue.
  sock_filter program[] = {
      BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 13),
      BPF_STMT(BPF_ALU | BPF_AND | BPF_K, TH_SYN | TH_ACK),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, TH_SYN, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, 0),           // drop
      BPF_STMT(BPF_RET | BPF_K, 0xffffffff),  // keep, whole
  };
  sock_fprog filter{.len = std::size(program), .filter = program};
  if (::setsockopt(listener, SOL_SOCKET, SO_ATTACH_FILTER, &filter, sizeof filter) != 0)
    throw SysError("setsockopt(SO_ATTACH_FILTER)", errno);
}

uint16_t local_port(int fd) {
  sockaddr_storage storage{};
  socklen_t length = sizeof storage;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&storage), &length) != 0) return 0;
  if (storage.ss_family == AF_INET)
    return ntohs(reinterpret_cast<sockaddr_in*>(&storage)->sin_port);
  if (storage.ss_family == AF_INET6)
    return ntohs(reinterpret_cast<sockaddr_in6*>(&storage)->sin6_port);
  return 0;
}

void set_nonblocking(int fd) {
  int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0) throw SysError("fcntl", errno);
}

void set_cloexec(int fd, bool on) {
  int flags = ::fcntl(fd, F_GETFD);
  if (flags < 0) throw SysError("fcntl", errno);
  flags = on ? flags | FD_CLOEXEC : flags & ~FD_CLOEXEC;
  if (::fcntl(fd, F_SETFD, flags) != 0) throw SysError("fcntl", errno);
}

std::string peer_name(const sockaddr_storage& address, socklen_t length) {
  char text[INET6_ADDRSTRLEN] = "unix";
  if (length == 0) return text;
  if (address.ss_family == AF_INET)
    ::inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&address)->sin_addr, text,
                sizeof text);
  else if (address.ss_family == AF_INET6)
    ::inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(&address)->sin6_addr, text,
                sizeof text);
  return text;
}

}  // namespace qilin::sys

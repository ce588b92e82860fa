// idle_clients: opens N keep-alive connections to 127.0.0.1:PORT, makes one
// request on each (so the server holds them as idle keep-alive connections),
// holds them for SECONDS, then reports how many the server kept open.
//
//   idle_clients PORT N SECONDS
//   → RESULT opened=N answered=A still_open=S
//
// Used by bench/run.sh for the "10,000 idle connections" scenario; loopback only.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string_view>
#include <thread>
#include <vector>

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: idle_clients PORT N SECONDS\n");
    return 2;
  }
  const int port = std::atoi(argv[1]);
  const int count = std::atoi(argv[2]);
  const int seconds = std::atoi(argv[3]);

  rlimit files{};
  getrlimit(RLIMIT_NOFILE, &files);
  files.rlim_cur = files.rlim_max;  // one descriptor per connection
  setrlimit(RLIMIT_NOFILE, &files);

  sockaddr_in server{};
  server.sin_family = AF_INET;
  server.sin_port = htons(static_cast<uint16_t>(port));
  server.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  static constexpr std::string_view request = "GET / HTTP/1.1\r\nHost: bench\r\n\r\n";
  const timeval limit{.tv_sec = 5, .tv_usec = 0};

  std::vector<int> connections;
  int answered = 0;
  char buffer[4096];
  for (int i = 0; i < count; ++i) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) break;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof limit);
    if (connect(fd, reinterpret_cast<sockaddr*>(&server), sizeof server) != 0 ||
        send(fd, request.data(), request.size(), MSG_NOSIGNAL) !=
            static_cast<ssize_t>(request.size())) {
      close(fd);
      continue;
    }
    if (recv(fd, buffer, sizeof buffer, 0) > 0) ++answered;
    connections.push_back(fd);
  }
  std::this_thread::sleep_for(std::chrono::seconds(seconds));
  int still_open = 0;
  for (int fd : connections) {
    ssize_t n = recv(fd, buffer, sizeof buffer, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) ++still_open;
    close(fd);
  }
  std::printf("RESULT opened=%zu answered=%d still_open=%d\n", connections.size(), answered,
              still_open);
  return 0;
}

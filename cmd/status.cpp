#include "cmd/status.hpp"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "config/config.hpp"
#include "master/status_render.hpp"
#include "sys/error.hpp"
#include "sys/fd.hpp"

namespace qilin::cmd {

namespace {

constexpr const char* kDefaultAddress = "127.0.0.1:9191";
constexpr int kTimeoutMs = 5000;

constexpr const char* kUsage =
    "usage: qilin status [ADDR] [-c FILE]\n"
    "  Prints the workers of a running qilin, from its status listener.\n"
    "  ADDR   the status listener: HOST:PORT, [V6]:PORT or unix:PATH\n"
    "         (default: status_bind of FILE with -c, else 127.0.0.1:9191)\n";

struct Failure {
  int code;
  std::string message;
};

sys::Fd connect_to(const config::BindAddress& address) {
  sockaddr_storage storage{};
  socklen_t length = 0;
  int domain = AF_INET;
  switch (address.kind) {
    case config::BindAddress::Kind::Tcp4: {
      auto* in = reinterpret_cast<sockaddr_in*>(&storage);
      in->sin_family = AF_INET;
      in->sin_port = htons(address.port);
      ::inet_pton(AF_INET, address.host.c_str(), &in->sin_addr);
      length = sizeof *in;
      break;
    }
    case config::BindAddress::Kind::Tcp6: {
      auto* in6 = reinterpret_cast<sockaddr_in6*>(&storage);
      in6->sin6_family = AF_INET6;
      in6->sin6_port = htons(address.port);
      ::inet_pton(AF_INET6, address.host.c_str(), &in6->sin6_addr);
      length = sizeof *in6;
      domain = AF_INET6;
      break;
    }
    case config::BindAddress::Kind::Unix: {
      auto* un = reinterpret_cast<sockaddr_un*>(&storage);
      un->sun_family = AF_UNIX;
      if (address.path.size() >= sizeof un->sun_path) throw sys::SysError("connect", ENAMETOOLONG);
      std::memcpy(un->sun_path, address.path.c_str(), address.path.size() + 1);
      length = sizeof *un;
      domain = AF_UNIX;
      break;
    }
  }
  sys::Fd fd(::socket(domain, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) throw sys::SysError("socket", errno);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&storage), length) != 0)
    throw sys::SysError("connect", errno);
  return fd;
}

// GET /status.json with Connection: close; the body once the server closes.
std::string fetch_status(const config::BindAddress& address) {
  sys::Fd fd = connect_to(address);
  const std::string request =
      "GET /status.json HTTP/1.1\r\nHost: qilin\r\nConnection: close\r\n\r\n";
  if (::send(fd.get(), request.data(), request.size(), MSG_NOSIGNAL) !=
      static_cast<ssize_t>(request.size()))
    throw sys::SysError("send", errno);
  std::string answer;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kTimeoutMs);
  while (true) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    pollfd watched{.fd = fd.get(), .events = POLLIN, .revents = 0};
    if (left.count() <= 0 || ::poll(&watched, 1, static_cast<int>(left.count())) == 0)
      throw std::runtime_error("no answer within 5 s");
    char chunk[16384];
    const ssize_t n = ::recv(fd.get(), chunk, sizeof chunk, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw sys::SysError("recv", errno);
    if (n == 0) break;
    answer.append(chunk, static_cast<size_t>(n));
  }
  const size_t head_end = answer.find("\r\n\r\n");
  if (answer.compare(0, 9, "HTTP/1.1 ") != 0 || head_end == std::string::npos)
    throw std::runtime_error("not an HTTP response");
  if (answer.compare(9, 3, "200") != 0)
    throw std::runtime_error(fmt::format("answered '{}'", answer.substr(0, answer.find("\r\n"))));
  return answer.substr(head_end + 4);
}

}  // namespace

int status_main(int argc, char** argv) {
  std::optional<std::string> address_text;
  std::optional<std::string> config_file;
  for (int i = 2; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "-h" || arg == "--help") {
      fmt::print("{}", kUsage);
      return 0;
    }
    if ((arg == "-c" || arg == "--config") && i + 1 < argc) {
      config_file = argv[++i];
    } else if (arg.starts_with("--config=")) {
      config_file = std::string(arg.substr(9));
    } else if (!arg.starts_with("-") && !address_text) {
      address_text = std::string(arg);
    } else {
      fmt::print(stderr, "qilin status: unexpected argument '{}'\n{}", arg, kUsage);
      return 2;
    }
  }
  if (!address_text && config_file) {
    config::Config config;
    try {
      config::apply_yaml_file(config, *config_file);
    } catch (const std::exception& error) {
      fmt::print(stderr, "qilin status: {}\n", error.what());
      return 2;
    }
    if (config.status_bind.empty()) {
      fmt::print(stderr,
                 "qilin status: {} sets no status_bind: the server has no status listener\n",
                 *config_file);
      return 2;
    }
    address_text = config.status_bind;
  }
  const std::string text = address_text.value_or(kDefaultAddress);
  const auto address = config::parse_bind(text);
  if (!address) {
    fmt::print(stderr,
               "qilin status: cannot use '{}': expected HOST:PORT, [V6]:PORT or unix:PATH\n", text);
    return 2;
  }
  nlohmann::json status;
  try {
    status = nlohmann::json::parse(fetch_status(*address));
  } catch (const nlohmann::json::exception& error) {
    fmt::print(stderr, "qilin status: {} answered something that is not JSON: {}\n", text,
               error.what());
    return 1;
  } catch (const sys::SysError& error) {
    const bool nobody = error.code() == ECONNREFUSED || error.code() == ENOENT;
    fmt::print(stderr, "qilin status: {}: {}{}\n", text, error.what(),
               nobody ? " (is qilin running, with status_bind set to this address?)" : "");
    return 1;
  } catch (const std::exception& error) {
    fmt::print(stderr, "qilin status: {}: {}\n", text, error.what());
    return 1;
  }
  fmt::print("{}", master::render_status_table(status));
  return 0;
}

}  // namespace qilin::cmd

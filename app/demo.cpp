// demo: one route per thing a user wants to see an IO model do.
//
//   /               plaintext "Hello, World!"
//   /json           a small JSON document
//   /echo           the request body back, with its Content-Type
//   /sleep?ms=N     co_await ctx.sleep(N): cooperative, the worker may serve others
//   /block?ms=N     a blocking sleep inside the handler: what a careless app does
//   /cpu?n=N        N rounds of arithmetic: CPU-bound work
//   /stream?n=N     N lines, streamed with chunked transfer coding
//   /static/PATH    a file under static_dir, sent by the worker without copying
//
// /sleep and /block look alike and are the lesson: in `sync` and `threaded`
// both hold a process or a thread; in `epoll` and `io_uring` /sleep costs
// nothing while /block stops the whole loop.
#include <fcntl.h>
#include <fmt/format.h>
#include <linux/openat2.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include <charconv>
#include <cstdint>
#include <thread>

#include "app/app.hpp"

namespace qilin::app {

namespace {

constexpr int64_t kMaxSleepMs = 60'000;
constexpr int64_t kMaxCpuRounds = 1'000'000'000;
constexpr int64_t kMaxStreamLines = 1'000'000;

// A whole-number query parameter in [0, max], or nullopt when it is missing,
// malformed or out of range (the caller answers 400).
std::optional<int64_t> bounded_param(const http::Request& request, std::string_view key,
                                     int64_t max) {
  auto text = request.query_param(key);
  if (!text) return std::nullopt;
  int64_t value = 0;
  auto [end, error] = std::from_chars(text->data(), text->data() + text->size(), value);
  if (error != std::errc{} || end != text->data() + text->size() || value < 0 || value > max)
    return std::nullopt;
  return value;
}

http::Response bad_param(std::string_view key, int64_t max) {
  return http::Response(
      400, fmt::format("query parameter '{}' must be a whole number from 0 to {}\n", key, max));
}

std::string_view content_type_for(std::string_view path) {
  static constexpr std::pair<std::string_view, std::string_view> types[] = {
      {".html", "text/html; charset=utf-8"},
      {".css", "text/css"},
      {".js", "text/javascript"},
      {".json", "application/json"},
      {".txt", "text/plain; charset=utf-8"},
      {".png", "image/png"},
      {".jpg", "image/jpeg"},
      {".svg", "image/svg+xml"},
      {".ico", "image/x-icon"},
      {".wasm", "application/wasm"}};
  for (auto [suffix, type] : types)
    if (path.ends_with(suffix)) return type;
  return "application/octet-stream";
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Percent-decodes a path; nullopt for bad escapes or a decoded NUL.
std::optional<std::string> decode_path(std::string_view encoded) {
  std::string out;
  out.reserve(encoded.size());
  for (size_t i = 0; i < encoded.size(); ++i) {
    if (encoded[i] != '%') {
      out += encoded[i];
      continue;
    }
    if (i + 2 >= encoded.size()) return std::nullopt;
    int high = hex_value(encoded[i + 1]), low = hex_value(encoded[i + 2]);
    if (high < 0 || low < 0 || (high == 0 && low == 0)) return std::nullopt;
    out += static_cast<char>(high * 16 + low);
    i += 2;
  }
  return out;
}

class StaticFiles {
 public:
  explicit StaticFiles(const std::string& root) {
    if (root.empty()) return;
    root_.reset(::open(root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (!root_) spdlog::warn("static_dir '{}' cannot be opened: /static/ will answer 404", root);
  }

  http::Response serve(std::string_view relative) const {
    auto path = decode_path(relative);
    if (!path) return http::Response(400, "bad percent-encoding in path\n");
    if (!root_ || path->empty()) return http::Response(404, "Not Found\n");
    // RESOLVE_BENEATH makes the kernel refuse any escape from the root, by
    // "..", an absolute path or a symlink, atomically with the open: no
    // check-then-open race and no hand-written path normalisation to get wrong.
    open_how how{};
    how.flags = O_RDONLY | O_CLOEXEC;
    how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
    int fd = static_cast<int>(::syscall(SYS_openat2, root_.get(), path->c_str(), &how, sizeof how));
    if (fd < 0) {
      if (errno == EXDEV) return http::Response(403, "Forbidden\n");
      return http::Response(404, "Not Found\n");
    }
    sys::Fd file(fd);
    struct stat info {};
    if (::fstat(file.get(), &info) != 0 || !S_ISREG(info.st_mode))
      return http::Response(404, "Not Found\n");
    http::Response response;
    response.set("Content-Type", content_type_for(*path));
    // For HEAD too: the session sends the length and skips the bytes.
    response.file = std::move(file);
    response.file_length = static_cast<size_t>(info.st_size);
    return response;
  }

 private:
  sys::Fd root_;
};

}  // namespace

Handler make_demo_app(const AppOptions& options) {
  auto files = std::make_shared<StaticFiles>(options.static_dir);
  return [files](http::Request& request, Context& context) -> Task<http::Response> {
    const std::string_view path = request.path();
    if (path == "/") co_return http::Response(200, "Hello, World!");
    if (path == "/json")
      co_return http::Response(200, R"({"message":"Hello, World!"})", "application/json");
    if (path == "/echo") {
      http::Response response(200, std::move(request.body));
      if (auto type = request.header("Content-Type")) response.set("Content-Type", *type);
      co_return response;
    }
    if (path == "/sleep") {
      auto ms = bounded_param(request, "ms", kMaxSleepMs);
      if (!ms) co_return bad_param("ms", kMaxSleepMs);
      co_await context.sleep(std::chrono::milliseconds(*ms));
      co_return http::Response(200, fmt::format("slept {} ms without blocking the worker\n", *ms));
    }
    if (path == "/block") {
      auto ms = bounded_param(request, "ms", kMaxSleepMs);
      if (!ms) co_return bad_param("ms", kMaxSleepMs);
      std::this_thread::sleep_for(std::chrono::milliseconds(*ms));
      co_return http::Response(200, fmt::format("blocked the worker for {} ms\n", *ms));
    }
    if (path == "/cpu") {
      auto rounds = bounded_param(request, "n", kMaxCpuRounds);
      if (!rounds) co_return bad_param("n", kMaxCpuRounds);
      uint64_t x = 88172645463325252ull;  // xorshift64: cheap, and the optimiser cannot skip it
      for (int64_t i = 0; i < *rounds; ++i) x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      co_return http::Response(200, fmt::format("{} rounds: {:016x}\n", *rounds, x));
    }
    if (path == "/stream") {
      auto lines = bounded_param(request, "n", kMaxStreamLines);
      if (!lines) co_return bad_param("n", kMaxStreamLines);
      http::Response response;
      response.set("Content-Type", "text/plain");
      response.stream = [next = int64_t{0},
                         total = *lines]() mutable -> std::optional<std::string> {
        if (next == total) return std::nullopt;
        return fmt::format("line {} of {}\n", ++next, total);
      };
      co_return response;
    }
    if (path.starts_with("/static/")) co_return files->serve(path.substr(8));
    co_return http::Response(404, "Not Found\n");
  };
}

}  // namespace qilin::app

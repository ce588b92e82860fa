// demo: one route per thing a user wants to see an IO model do.
//
//   /               plaintext "Hello, World!"
//   /json           a small JSON document
//   /echo           the request body back, with its Content-Type
//   /sleep?ms=N     co_await ctx.sleep(N): cooperative, the worker may serve others
//   /block?ms=N     a blocking sleep inside the handler: what a careless app does
//   /cpu?n=N        N rounds of arithmetic: CPU-bound work
//   /stream?n=N     N lines, streamed with chunked transfer coding
//   /static/PATH    a file under static_dir (app/static_files.hpp), sent by the
//                   worker without copying
//
// /sleep and /block look alike and are the lesson: in `sync` and `threaded`
// both hold a process or a thread; in `epoll` and `io_uring` /sleep costs
// nothing while /block stops the whole loop.
#include <fmt/format.h>

#include <charconv>
#include <cstdint>
#include <thread>

#include "app/app.hpp"
#include "app/static_files.hpp"

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
    if (path.starts_with("/static/")) co_return files->serve(request, path.substr(8));
    co_return http::Response(404, "Not Found\n");
  };
}

}  // namespace qilin::app

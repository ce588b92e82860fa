#include "app/app.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <thread>

#include "app/runner.hpp"

namespace qilin::app {

bool BlockingContext::suspend_for(std::chrono::milliseconds duration, std::coroutine_handle<>) {
  std::this_thread::sleep_for(duration);
  return false;
}

Handler from_plain(PlainHandler plain) {
  // The lambda object (and so `plain`) lives in the Handler, which outlives
  // every request it serves, so the coroutine may refer to it.
  return [plain = std::move(plain)](http::Request& request, Context&) -> Task<http::Response> {
    co_return plain(request);
  };
}

std::vector<std::string_view> builtin_app_names() { return {"hello", "demo"}; }

bool is_shared_library_spec(std::string_view spec) {
  return spec.find('/') != std::string_view::npos || spec.ends_with(".so");
}

Handler load_app(const std::string& spec, const AppOptions& options) {
  if (is_shared_library_spec(spec)) return load_shared_library_app(spec);
  if (spec == "hello") return make_hello_app();
  if (spec == "demo") return make_demo_app(options);
  throw AppLoadError(
      fmt::format("app '{}' not found: built-in apps are {}; a shared library is given by path",
                  spec, fmt::join(builtin_app_names(), ", ")));
}

namespace detail {

http::Response internal_error(const http::Request& request, const char* what) {
  spdlog::error("app failed on \"{} {}\": {}", request.method, request.target, what);
  return http::Response(500, "Internal Server Error\n");
}

http::Response invalid_status(const http::Request& request, int status) {
  return internal_error(request,
                        fmt::format("status {} is not a final HTTP status", status).c_str());
}

}  // namespace detail

}  // namespace qilin::app

// An application: a coroutine handler `Task<Response>(Request&, Context&)`.
//
// Built-in apps are found by name; anything that looks like a path is loaded
// as a shared library through the C entry point in qilin_app.h (gunicorn's
// `module:app`, for C and C++).
#pragma once

#include <functional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "app/context.hpp"
#include "app/task.hpp"
#include "http/message.hpp"

namespace qilin::app {

using Handler = std::function<Task<http::Response>(http::Request&, Context&)>;
using PlainHandler = std::function<http::Response(http::Request&)>;

// A plain synchronous function is a handler too: it just never awaits.
Handler from_plain(PlainHandler plain);

struct AppOptions {
  std::string static_dir;  // the demo app's /static/ root
};

// Thrown at worker boot when the app cannot be found or loaded (exit code 4).
class AppLoadError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

std::vector<std::string_view> builtin_app_names();
bool is_shared_library_spec(std::string_view spec);
// A built-in name ("hello", "demo") or a path to a shared library.
Handler load_app(const std::string& spec, const AppOptions& options);

// The built-in apps (app/hello.cpp, app/demo.cpp).
Handler make_hello_app();
Handler make_demo_app(const AppOptions& options);
Handler load_shared_library_app(const std::string& path);

}  // namespace qilin::app

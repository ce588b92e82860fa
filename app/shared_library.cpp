// Loading an app from a shared library through the C ABI in qilin_app.h.
#include <dlfcn.h>
#include <fmt/format.h>

#include <memory>

#include "app/app.hpp"
#include "app/qilin_app.h"

// The opaque response of the C API is our http::Response.
struct qilin_response {
  qilin::http::Response response;
};

namespace qilin::app {

namespace {

const qilin_response_api response_api = {
    .set_status = [](qilin_response* r, int status) { r->response.status = status; },
    .add_header =
        [](qilin_response* r, const char* name, const char* value) {
          r->response.headers.push_back({name, value});
        },
    .write = [](qilin_response* r, const char* data,
                size_t len) { r->response.body.append(data, len); },
};

struct LibraryCloser {
  void operator()(void* library) const noexcept { dlclose(library); }
};

}  // namespace

Handler load_shared_library_app(const std::string& path) {
  void* opened = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!opened) throw AppLoadError(fmt::format("cannot load app library: {}", dlerror()));
  std::shared_ptr<void> library(opened, LibraryCloser{});

  auto handle =
      reinterpret_cast<qilin_app_handle_v1_fn>(dlsym(library.get(), "qilin_app_handle_v1"));
  if (!handle)
    throw AppLoadError(
        fmt::format("{}: no symbol qilin_app_handle_v1 (see app/qilin_app.h)", path));
  if (auto init =
          reinterpret_cast<qilin_app_init_v1_fn>(dlsym(library.get(), "qilin_app_init_v1"))) {
    if (int status = init(); status != 0)
      throw AppLoadError(fmt::format("{}: qilin_app_init_v1 returned {}", path, status));
  }

  return from_plain([library, handle](http::Request& request) {
    std::vector<qilin_header> headers;
    headers.reserve(request.headers.size());
    for (const auto& h : request.headers)
      headers.push_back({h.name.data(), h.name.size(), h.value.data(), h.value.size()});
    const qilin_request c_request = {
        .method = request.method.data(),
        .method_len = request.method.size(),
        .target = request.target.data(),
        .target_len = request.target.size(),
        .headers = headers.data(),
        .header_count = headers.size(),
        .body = request.body.data(),
        .body_len = request.body.size(),
    };
    qilin_response c_response;
    if (handle(&c_request, &c_response, &response_api) != 0)
      return http::Response(500, "Internal Server Error\n");
    return std::move(c_response.response);
  });
}

}  // namespace qilin::app

// run_request: the framework side of a handler call.
//
// Starts the handler's coroutine chain and, whenever it finishes, hands the
// response to `done` on the same thread. In the blocking workers that is
// before run_request returns; in the event loops it may be much later, from
// the loop resuming a suspended await. An exception from the app becomes a
// 500 here, at the session boundary, and never reaches the worker's loop.
#pragma once

#include <spdlog/spdlog.h>

#include <coroutine>
#include <exception>
#include <utility>

#include "app/app.hpp"
#include "app/frame_cache.hpp"

namespace qilin::app {

namespace detail {

// A coroutine nobody awaits: it starts at once and frees itself at the end.
struct Detached {
  struct promise_type {
    Detached get_return_object() const noexcept { return {}; }
    std::suspend_never initial_suspend() const noexcept { return {}; }
    std::suspend_never final_suspend() const noexcept { return {}; }
    void return_void() const noexcept {}
    void unhandled_exception() const noexcept { std::terminate(); }
    static void* operator new(std::size_t size) { return FrameCache::allocate(size); }
    static void operator delete(void* frame, std::size_t size) noexcept {
      FrameCache::release(frame, size);
    }
  };
};

http::Response internal_error(const http::Request& request, const char* what);
http::Response invalid_status(const http::Request& request, int status);

}  // namespace detail

// `done(http::Request&, http::Response&&)` must not throw. The request lives in
// this coroutine's frame, so the worker's connection may go away meanwhile:
// `done` has to find out whether it still exists (e.g. by a generation number).
template <class Done>
detail::Detached run_request(const Handler& handler, http::Request&& request_in, Context& context,
                             Done done) {
  // Moved into the frame before anything can suspend, so the caller's object
  // may go at once; one move here, where a by-value parameter costs two.
  http::Request request = std::move(request_in);
  http::Response response;
  try {
    response = co_await handler(request, context);
  } catch (const std::exception& error) {
    response = detail::internal_error(request, error.what());
  } catch (...) {
    response = detail::internal_error(request, "unknown exception");
  }
  // Any other status is the app's error: logged, counted and sent as a 500.
  if (!http::is_final_status(response.status))
    response = detail::invalid_status(request, response.status);
  done(request, std::move(response));
}

}  // namespace qilin::app

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
  };
};

http::Response internal_error(const http::Request& request, const char* what);

}  // namespace detail

// `done(http::Request&, http::Response&&)` must not throw. The request lives in
// this coroutine's frame, so the worker's connection may go away meanwhile:
// `done` has to find out whether it still exists (e.g. by a generation number).
template <class Done>
detail::Detached run_request(const Handler& handler, http::Request request, Context& context,
                             Done done) {
  http::Response response;
  try {
    response = co_await handler(request, context);
  } catch (const std::exception& error) {
    response = detail::internal_error(request, error.what());
  } catch (...) {
    response = detail::internal_error(request, "unknown exception");
  }
  done(request, std::move(response));
}

}  // namespace qilin::app

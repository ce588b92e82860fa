// The coroutine machinery without any IO: Task chains, run_request's 500 on
// exceptions, and a Context that suspends like an event loop would.
#include <gtest/gtest.h>

#include <coroutine>
#include <deque>
#include <stdexcept>

#include "app/runner.hpp"

namespace qilin::app {
namespace {

// Suspends every sleep; the test plays the event loop and resumes by hand.
class ManualContext final : public Context {
 public:
  std::deque<std::coroutine_handle<>> sleepers;
  void resume_one() {
    auto next = sleepers.front();
    sleepers.pop_front();
    next.resume();
  }

 protected:
  bool suspend_for(std::chrono::milliseconds, std::coroutine_handle<> waiter) override {
    sleepers.push_back(waiter);
    return true;
  }
};

Task<int> add_after_sleep(Context& context, int a, int b) {
  co_await context.sleep(std::chrono::milliseconds(5));
  co_return a + b;
}

Handler nested_handler() {
  return [](http::Request& request, Context& context) -> Task<http::Response> {
    int sum = co_await add_after_sleep(context, 2, 3);
    sum += co_await add_after_sleep(context, 10, 20);
    co_return http::Response(200, request.target + " " + std::to_string(sum));
  };
}

http::Request request_for(std::string target) {
  http::Request request;
  request.id = 7;
  request.method = "GET";
  request.target = std::move(target);
  return request;
}

TEST(Runner, BlockingContextCompletesBeforeReturning) {
  BlockingContext context;
  Handler handler = nested_handler();
  std::optional<http::Response> result;
  uint64_t id = 0;
  run_request(handler, request_for("/x"), context,
              [&](http::Request& r, http::Response&& response) {
                id = r.id;
                result = std::move(response);
              });
  ASSERT_TRUE(result);
  EXPECT_EQ(id, 7u);
  EXPECT_EQ(result->body, "/x 35");
}

TEST(Runner, SuspendingContextCompletesWhenResumed) {
  ManualContext context;
  Handler handler = nested_handler();
  std::optional<http::Response> result;
  run_request(handler, request_for("/y"), context,
              [&](http::Request&, http::Response&& response) { result = std::move(response); });
  EXPECT_FALSE(result);
  ASSERT_EQ(context.sleepers.size(), 1u);
  context.resume_one();
  EXPECT_FALSE(result);
  ASSERT_EQ(context.sleepers.size(), 1u);
  context.resume_one();
  ASSERT_TRUE(result);
  EXPECT_EQ(result->body, "/y 35");
}

TEST(Runner, ManyRequestsInterleave) {
  ManualContext context;
  Handler handler = nested_handler();
  std::vector<std::string> finished;
  for (int i = 0; i < 3; ++i)  // append, not "/" + ...: see sys/socket.cpp (-Wrestrict)
    run_request(handler, request_for(std::string("/").append(std::to_string(i))), context,
                [&](http::Request& r, http::Response&&) { finished.push_back(r.target); });
  while (!context.sleepers.empty()) context.resume_one();
  EXPECT_EQ(finished, (std::vector<std::string>{"/0", "/1", "/2"}));
}

TEST(Runner, ExceptionBecomes500) {
  BlockingContext context;
  Handler throwing = [](http::Request&, Context& ctx) -> Task<http::Response> {
    co_await ctx.sleep(std::chrono::milliseconds(0));
    throw std::runtime_error("boom");
  };
  Handler throwing_plain =
      from_plain([](http::Request&) -> http::Response { throw std::logic_error("bang"); });
  for (auto* handler : {&throwing, &throwing_plain}) {
    std::optional<http::Response> result;
    run_request(*handler, request_for("/"), context,
                [&](http::Request&, http::Response&& response) { result = std::move(response); });
    ASSERT_TRUE(result);
    EXPECT_EQ(result->status, 500);
  }
}

TEST(Runner, NonFinalStatusBecomes500) {
  BlockingContext context;
  for (int status : {0, 100, 101, 103, 200, 299, 599, 600, 999}) {
    Handler handler = from_plain([status](http::Request&) {
      http::Response response(200, "x");
      response.status = status;
      return response;
    });
    std::optional<http::Response> result;
    run_request(handler, request_for("/"), context,
                [&](http::Request&, http::Response&& response) { result = std::move(response); });
    ASSERT_TRUE(result);
    EXPECT_EQ(result->status, status >= 200 && status <= 599 ? status : 500) << status;
  }
}

TEST(Apps, HelloAndDemoRoutes) {
  BlockingContext context;
  auto call = [&](Handler& handler, std::string target) {
    std::optional<http::Response> result;
    run_request(handler, request_for(std::move(target)), context,
                [&](http::Request&, http::Response&& response) { result = std::move(response); });
    return std::move(*result);
  };
  Handler hello = load_app("hello", {});
  EXPECT_EQ(call(hello, "/anything").body, "Hello, World!");
  Handler demo = load_app("demo", {.static_dir = ""});
  EXPECT_EQ(call(demo, "/").body, "Hello, World!");
  EXPECT_EQ(call(demo, "/sleep?ms=1").status, 200);
  EXPECT_EQ(call(demo, "/sleep?ms=99999999").status, 400);
  EXPECT_EQ(call(demo, "/sleep?ms=").status, 400);
  EXPECT_EQ(call(demo, "/cpu?n=1000").status, 200);
  EXPECT_EQ(call(demo, "/static/x").status, 404);
  EXPECT_EQ(call(demo, "/nope").status, 404);
  EXPECT_THROW(load_app("nope", {}), AppLoadError);
  EXPECT_THROW(load_app("/no/such/lib.so", {}), AppLoadError);
}

}  // namespace
}  // namespace qilin::app

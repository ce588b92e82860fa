// The coroutine machinery without any IO: Task chains, run_request's 500 on
// exceptions, and a Context that suspends like an event loop would.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <coroutine>
#include <cstdlib>
#include <deque>
#include <fstream>
#include <stdexcept>
#include <string>
#include <utility>

#include "app/runner.hpp"
#include "app/static_files.hpp"
#include "http/date.hpp"
#include "http/session.hpp"

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

// A directory with one file of known bytes and time, removed at the end.
class StaticFilesTest : public ::testing::Test {
 protected:
  static constexpr std::time_t kModified = 784111777;  // Sun, 06 Nov 1994 08:49:37 GMT

  void SetUp() override {
    char pattern[] = "/tmp/qilin-static-XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    root_ = pattern;
    std::ofstream(root_ + "/page.html") << "0123456789";
    const timespec times[2] = {{kModified, 0}, {kModified, 0}};
    ASSERT_EQ(::utimensat(AT_FDCWD, (root_ + "/page.html").c_str(), times, 0), 0);
    ::mkdir((root_ + "/dir").c_str(), 0700);
  }
  void TearDown() override {
    ::unlink((root_ + "/page.html").c_str());
    ::unlink((root_ + "/large.bin").c_str());
    ::rmdir((root_ + "/dir").c_str());
    ::rmdir(root_.c_str());
  }

  http::Response serve(std::string_view relative, std::vector<http::Header> headers = {},
                       std::string method = "GET") {
    http::Request request;
    request.method = std::move(method);
    request.headers = std::move(headers);
    return StaticFiles(root_).serve(request, relative);
  }
  static std::string header(const http::Response& response, std::string_view name) {
    return std::string(response.header(name).value_or("(none)"));
  }

  std::string root_;
};

TEST_F(StaticFilesTest, WholeFileWithValidators) {
  auto response = serve("page.html");
  EXPECT_EQ(response.status, 200);
  EXPECT_TRUE(response.file);
  EXPECT_EQ(response.file_offset, 0);
  EXPECT_EQ(response.file_length, 10u);
  EXPECT_EQ(header(response, "Content-Type"), "text/html; charset=utf-8");
  EXPECT_EQ(header(response, "Last-Modified"), "Sun, 06 Nov 1994 08:49:37 GMT");
  EXPECT_EQ(header(response, "ETag"), "\"2ebc98a1-a\"");
  EXPECT_EQ(header(response, "Accept-Ranges"), "bytes");
  EXPECT_EQ(serve("page.html", {}, "HEAD").file_length, 10u);
}

TEST_F(StaticFilesTest, NotModifiedForTheClientsCopy) {
  auto by_tag = serve("page.html", {{"If-None-Match", "\"2ebc98a1-a\""}});
  EXPECT_EQ(by_tag.status, 304);
  EXPECT_FALSE(by_tag.file);
  EXPECT_EQ(header(by_tag, "ETag"), "\"2ebc98a1-a\"");
  EXPECT_EQ(header(by_tag, "Content-Type"), "(none)");
  EXPECT_EQ(serve("page.html", {{"If-Modified-Since", "Sun, 06 Nov 1994 08:49:37 GMT"}}).status,
            304);
  EXPECT_EQ(serve("page.html", {{"If-Modified-Since", "Sat, 05 Nov 1994 08:49:37 GMT"}}).status,
            200);
  EXPECT_EQ(serve("page.html", {{"If-None-Match", "\"other\""}}).status, 200);
  auto changed = serve("page.html", {{"If-Match", "\"other\""}});
  EXPECT_EQ(changed.status, 412);
  EXPECT_FALSE(changed.file);
  EXPECT_EQ(serve("page.html", {{"If-Match", "\"2ebc98a1-a\""}}).status, 200);
  EXPECT_EQ(serve("page.html", {{"If-Unmodified-Since", "Sat, 05 Nov 1994 08:49:37 GMT"}}).status,
            412);
}

TEST_F(StaticFilesTest, OneByteRange) {
  auto part = serve("page.html", {{"Range", "bytes=2-4"}});
  EXPECT_EQ(part.status, 206);
  EXPECT_EQ(part.file_offset, 2);
  EXPECT_EQ(part.file_length, 3u);
  EXPECT_EQ(header(part, "Content-Range"), "bytes 2-4/10");
  auto tail = serve("page.html", {{"Range", "bytes=-3"}});
  EXPECT_EQ(tail.status, 206);
  EXPECT_EQ(tail.file_offset, 7);
  auto beyond = serve("page.html", {{"Range", "bytes=10-"}});
  EXPECT_EQ(beyond.status, 416);
  EXPECT_EQ(header(beyond, "Content-Range"), "bytes */10");
  EXPECT_FALSE(beyond.file);
  // Of several ranges only one is satisfiable: a plain 206, not multipart.
  auto one_left = serve("page.html", {{"Range", "bytes=50-60, 8-"}});
  EXPECT_EQ(one_left.status, 206);
  EXPECT_EQ(one_left.file_offset, 8);
  EXPECT_EQ(one_left.file_length, 2u);
  EXPECT_EQ(header(one_left, "Content-Range"), "bytes 8-9/10");
  // Ignored: HEAD, or an If-Range naming another version.
  EXPECT_EQ(serve("page.html", {{"Range", "bytes=0-1"}}, "HEAD").status, 200);
  EXPECT_EQ(serve("page.html", {{"Range", "bytes=0-1"}, {"If-Range", "\"old\""}}).status, 200);
  EXPECT_EQ(serve("page.html", {{"Range", "bytes=0-1"}, {"If-Range", "\"2ebc98a1-a\""}}).status,
            206);
}

// The response through a session, as a worker would send it: head and body.
std::pair<std::string, std::string> on_the_wire(http::Response response) {
  http::Session session{http::Limits{}};
  session.feed("GET /static/page.html HTTP/1.1\r\nHost: t\r\n\r\n");
  auto request = session.next_request();
  EXPECT_TRUE(request);
  if (!request) return {};
  session.respond(request->id, std::move(response));
  std::string wire;
  for (auto iov = session.output(); !iov.empty(); iov = session.output()) {
    size_t written = 0;
    for (const iovec& piece : iov) {
      wire.append(static_cast<const char*>(piece.iov_base), piece.iov_len);
      written += piece.iov_len;
    }
    session.written(written);
  }
  EXPECT_FALSE(session.file_output());  // a multipart body is all in memory
  const size_t head_end = wire.find("\r\n\r\n");
  if (head_end == std::string::npos) return {wire, ""};
  return {wire.substr(0, head_end + 2), wire.substr(head_end + 4)};
}

TEST_F(StaticFilesTest, SeveralByteRangesAsMultipart) {
  auto parts = serve("page.html", {{"Range", "bytes=0-1, -3"}});
  EXPECT_EQ(parts.status, 206);
  EXPECT_FALSE(parts.file);
  EXPECT_EQ(header(parts, "Content-Range"), "(none)");  // each part has its own
  EXPECT_EQ(header(parts, "ETag"), "\"2ebc98a1-a\"");
  const std::string type = header(parts, "Content-Type");
  const std::string prefix = "multipart/byteranges; boundary=";
  ASSERT_TRUE(type.starts_with(prefix)) << type;
  const std::string boundary = type.substr(prefix.size());
  EXPECT_EQ(boundary.size(), 20u);
  EXPECT_EQ(boundary.find_first_not_of("0123456789abcdef"), std::string::npos) << boundary;
  auto part = [&](std::string_view range, std::string_view bytes) {
    return "\r\n--" + boundary + "\r\nContent-Type: text/html; charset=utf-8\r\n" +
           "Content-Range: bytes " + std::string(range) + "\r\n\r\n" + std::string(bytes);
  };
  const std::string expected =
      part("0-1/10", "01") + part("7-9/10", "789") + "\r\n--" + boundary + "--\r\n";
  EXPECT_EQ(parts.body, expected);
  // Each response draws its own boundary.
  EXPECT_NE(header(serve("page.html", {{"Range", "bytes=0-1, -3"}}), "Content-Type"), type);

  auto [head, body] = on_the_wire(std::move(parts));
  EXPECT_TRUE(head.starts_with("HTTP/1.1 206 ")) << head;
  EXPECT_NE(head.find("\r\nContent-Length: " + std::to_string(expected.size()) + "\r\n"),
            std::string::npos)
      << head;
  EXPECT_EQ(body, expected);

  // Overlaps adding up to more than the file, or a HEAD: the whole file.
  auto overlapping = serve("page.html", {{"Range", "bytes=0-6, 3-9"}});
  EXPECT_EQ(overlapping.status, 200);
  EXPECT_EQ(overlapping.file_length, 10u);
  EXPECT_EQ(serve("page.html", {{"Range", "bytes=0-1, -3"}}, "HEAD").status, 200);
  EXPECT_EQ(serve("page.html", {{"Range", "bytes=0-1, -3"}, {"If-Range", "\"old\""}}).status, 200);
}

// The parts are copied into memory: past 1 MiB of them, the whole file is
// sent instead, from the file, as for no Range at all.
TEST_F(StaticFilesTest, MultipartBoundedToAMebibyte) {
  constexpr size_t kMebibyte = 1 << 20;
  std::string content(kMebibyte + 4096, '\0');
  for (size_t i = 0; i < content.size(); ++i) content[i] = static_cast<char>('a' + i % 26);
  std::ofstream(root_ + "/large.bin", std::ios::binary) << content;
  const std::string half = std::to_string(kMebibyte / 2);
  // Exactly 1 MiB of parts: still multipart.
  auto within = serve("large.bin",
                      {{"Range", "bytes=0-" + std::to_string(kMebibyte / 2 - 1) + ", -" + half}});
  EXPECT_EQ(within.status, 206);
  EXPECT_FALSE(within.file);
  EXPECT_GT(within.body.size(), kMebibyte);
  EXPECT_NE(within.body.find(content.substr(content.size() - kMebibyte / 2)), std::string::npos);
  // One byte more: the whole file, zero-copy.
  auto beyond = serve("large.bin", {{"Range", "bytes=0-" + half + ", -" + half}});
  EXPECT_EQ(beyond.status, 200);
  EXPECT_TRUE(beyond.file);
  EXPECT_EQ(beyond.file_offset, 0);
  EXPECT_EQ(beyond.file_length, content.size());
  EXPECT_TRUE(beyond.body.empty());
  EXPECT_EQ(header(beyond, "Content-Type"), "application/octet-stream");
}

TEST_F(StaticFilesTest, PathsAndMethods) {
  EXPECT_EQ(serve("/page.html").status, 200);  // "/static//page.html": slashes merge
  EXPECT_EQ(serve("dir//..//page.html").status, 200);
  EXPECT_EQ(serve("p%61ge.html").status, 200);
  EXPECT_EQ(serve("../page.html").status, 403);  // the kernel refuses the escape
  EXPECT_EQ(serve("dir").status, 404);
  EXPECT_EQ(serve("missing").status, 404);
  EXPECT_EQ(serve("").status, 404);
  EXPECT_EQ(serve("bad%2").status, 400);
  EXPECT_EQ(serve("nul%00").status, 400);
  auto post = serve("page.html", {}, "POST");
  EXPECT_EQ(post.status, 405);
  EXPECT_EQ(header(post, "Allow"), "GET, HEAD");
}

}  // namespace
}  // namespace qilin::app

// The same HTTP conformance suite against every worker class (STYLE 12):
// the real binary on loopback, raw bytes over a socket.
#include <gtest/gtest.h>

#include <random>
#include <string>

#include "tests/integration/harness.hpp"

namespace qilin::testing {
namespace {

class Conformance : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    server_ = std::make_unique<Server>(std::vector<std::string>{
        "-k", GetParam(), "-w", "1", "--threads", "4", "--limit-request-line", "200",
        "--limit-request-fields", "20", "--limit-request-body", "1000", "--static-dir",
        QILIN_SOURCE_DIR "/app/static", "demo"});
  }
  // gunicorn's sync worker answers one request per connection.
  bool keeps_alive() const { return GetParam() != "sync"; }
  uint16_t port() const { return server_->port(); }

  std::unique_ptr<Server> server_;
};

TEST_P(Conformance, PlainGet) {
  auto response = get(port(), "/");
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(response->body, "Hello, World!");
  EXPECT_EQ(response->header("content-length"), "13");
  EXPECT_EQ(response->header("server"), "qilin");
  EXPECT_FALSE(response->header("date").empty());
}

TEST_P(Conformance, AbsoluteFormTargetIsServed) {
  auto response = get(port(), "http://127.0.0.1/json?from=proxy");
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 200);
  EXPECT_NE(response->body.find("\"message\""), std::string::npos) << response->body;
}

TEST_P(Conformance, KeepAliveRules) {
  {  // HTTP/1.1 persists by default (except under sync)
    Client client(port());
    client.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    auto first = client.receive();
    ASSERT_TRUE(first);
    if (!keeps_alive()) {
      EXPECT_EQ(first->header("connection"), "close");
      EXPECT_TRUE(client.closed_by_server());
    } else {
      EXPECT_NE(first->header("connection"), "close");
      client.send("GET /json HTTP/1.1\r\nHost: t\r\n\r\n");
      auto second = client.receive();
      ASSERT_TRUE(second);
      EXPECT_EQ(second->status, 200);
      EXPECT_EQ(second->header("content-type"), "application/json");
    }
  }
  {  // Connection: close is honoured
    Client client(port());
    client.send("GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    auto response = client.receive();
    ASSERT_TRUE(response);
    EXPECT_EQ(response->header("connection"), "close");
    EXPECT_TRUE(client.closed_by_server());
  }
  {  // HTTP/1.0 closes unless asked to keep alive
    Client client(port());
    client.send("GET / HTTP/1.0\r\n\r\n");
    ASSERT_TRUE(client.receive());
    EXPECT_TRUE(client.closed_by_server());
  }
  if (keeps_alive()) {
    Client client(port());
    client.send("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    auto response = client.receive();
    ASSERT_TRUE(response);
    EXPECT_EQ(response->header("connection"), "keep-alive");
    client.send("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    EXPECT_TRUE(client.receive());
  }
}

TEST_P(Conformance, PipelinedRequestsAnsweredInOrder) {
  Client client(port());
  client.send(
      "GET /sleep?ms=50 HTTP/1.1\r\nHost: t\r\n\r\n"
      "GET /json HTTP/1.1\r\nHost: t\r\n\r\n"
      "GET / HTTP/1.1\r\nHost: t\r\n\r\n");
  auto first = client.receive();
  ASSERT_TRUE(first);
  EXPECT_NE(first->body.find("slept 50 ms"), std::string::npos);
  if (!keeps_alive()) {
    EXPECT_TRUE(client.closed_by_server());
    return;
  }
  auto second = client.receive();
  auto third = client.receive();
  ASSERT_TRUE(second && third);
  EXPECT_EQ(second->header("content-type"), "application/json");
  EXPECT_EQ(third->body, "Hello, World!");
}

TEST_P(Conformance, ChunkedRequestBodyIsEchoed) {
  Client client(port());
  client.send(
      "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nContent-Type: "
      "text/x-test\r\n\r\n"
      "5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\nTrailer: yes\r\n\r\n");
  auto response = client.receive();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(response->body, "hello, world");
  EXPECT_EQ(response->header("content-type"), "text/x-test");
}

TEST_P(Conformance, ContentLengthBodyAndExpectContinue) {
  Client client(port());
  client.send(
      "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n");
  auto interim = client.receive();
  ASSERT_TRUE(interim);
  EXPECT_EQ(interim->status, 100);
  client.send("abcde");
  auto response = client.receive();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(response->body, "abcde");
}

TEST_P(Conformance, HeadHasLengthButNoBody) {
  Client client(port());
  client.send("HEAD / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
  auto response = client.receive(5s, /*head=*/true);
  ASSERT_TRUE(response);
  EXPECT_EQ(response->header("content-length"), "13");
  EXPECT_TRUE(client.closed_by_server());
}

TEST_P(Conformance, StreamedResponseIsChunked) {
  auto response = get(port(), "/stream?n=3");
  ASSERT_TRUE(response);
  EXPECT_EQ(response->header("transfer-encoding"), "chunked");
  EXPECT_EQ(response->body, "line 1 of 3\nline 2 of 3\nline 3 of 3\n");
}

TEST_P(Conformance, StaticFileAndTraversal) {
  auto file = get(port(), "/static/index.html");
  ASSERT_TRUE(file);
  EXPECT_EQ(file->status, 200);
  EXPECT_NE(file->body.find("qilin static file"), std::string::npos);
  EXPECT_EQ(file->header("content-type"), "text/html; charset=utf-8");
  for (const char* escape : {"/static/../config/qilin.yaml", "/static/%2e%2e/config/qilin.yaml",
                             "/static//etc/passwd"}) {
    auto refused = get(port(), escape);
    ASSERT_TRUE(refused) << escape;
    EXPECT_TRUE(refused->status == 403 || refused->status == 404)
        << escape << " got " << refused->status;
  }
  auto missing = get(port(), "/static/nope.txt");
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 404);
}

// Each worker sends the file region the app chose: a range from its offset;
// several ranges are a multipart body in memory, framed by its exact length;
// a 304 has no body. On a kept-alive connection both leave it in step.
TEST_P(Conformance, StaticFileRangesAndRevalidation) {
  const std::string path = "/static/index.html";
  auto whole = get(port(), path);
  ASSERT_TRUE(whole);
  ASSERT_EQ(whole->status, 200);
  ASSERT_GT(whole->body.size(), 20u);
  const std::string tag = whole->header("etag"), size = std::to_string(whole->body.size());
  ASSERT_FALSE(tag.empty());
  EXPECT_EQ(whole->header("accept-ranges"), "bytes");

  auto part = get(port(), path, "Range: bytes=5-14\r\n");
  ASSERT_TRUE(part);
  EXPECT_EQ(part->status, 206);
  EXPECT_EQ(part->header("content-range"), "bytes 5-14/" + size);
  EXPECT_EQ(part->body, whole->body.substr(5, 10));
  auto tail = get(port(), path, "Range: bytes=-7\r\n");
  ASSERT_TRUE(tail);
  EXPECT_EQ(tail->status, 206);
  EXPECT_EQ(tail->body, whole->body.substr(whole->body.size() - 7));
  auto beyond = get(port(), path, "Range: bytes=" + size + "-\r\n");
  ASSERT_TRUE(beyond);
  EXPECT_EQ(beyond->status, 416);
  EXPECT_EQ(beyond->header("content-range"), "bytes */" + size);

  // Two ranges: one multipart/byteranges body, its length exact, so the next
  // response on the connection is read from the right byte.
  Client ranges(port());
  ranges.send("GET " + path + " HTTP/1.1\r\nHost: t\r\nRange: bytes=0-4, -6\r\n\r\n" +
              "GET / HTTP/1.1\r\nHost: t\r\n\r\n");
  auto multipart = ranges.receive();
  ASSERT_TRUE(multipart);
  EXPECT_EQ(multipart->status, 206);
  EXPECT_EQ(multipart->header("content-range"), "");
  const std::string type = multipart->header("content-type");
  const std::string prefix = "multipart/byteranges; boundary=";
  ASSERT_TRUE(type.starts_with(prefix)) << type;
  const std::string delimiter = "\r\n--" + type.substr(prefix.size());
  const size_t length = whole->body.size();
  auto expected_part = [&](size_t first, size_t last) {
    return delimiter + "\r\nContent-Type: text/html; charset=utf-8\r\nContent-Range: bytes " +
           std::to_string(first) + "-" + std::to_string(last) + "/" + size + "\r\n\r\n" +
           whole->body.substr(first, last - first + 1);
  };
  EXPECT_EQ(multipart->body,
            expected_part(0, 4) + expected_part(length - 6, length - 1) + delimiter + "--\r\n");
  if (keeps_alive()) {
    auto next = ranges.receive();
    ASSERT_TRUE(next);
    EXPECT_EQ(next->body, "Hello, World!");
  }

  Client client(port());
  client.send("GET " + path + " HTTP/1.1\r\nHost: t\r\nIf-None-Match: " + tag +
              "\r\n\r\nGET / HTTP/1.1\r\nHost: t\r\n\r\n");
  auto unchanged = client.receive();
  ASSERT_TRUE(unchanged);
  EXPECT_EQ(unchanged->status, 304);
  EXPECT_EQ(unchanged->header("etag"), tag);
  EXPECT_EQ(unchanged->header("content-length"), "");
  if (!keeps_alive()) return;
  auto after = client.receive();
  ASSERT_TRUE(after);
  EXPECT_EQ(after->body, "Hello, World!");
}

struct Rejection {
  const char* name;
  std::string request;
  int status;
};

TEST_P(Conformance, MalformedRequestsGetTheirStatusAndClose) {
  const std::string long_target(300, 'a');
  std::string many_fields;
  for (int i = 0; i < 30; ++i) many_fields += "X-F" + std::to_string(i) + ": v\r\n";
  const Rejection cases[] = {
      {"CL and TE",
       "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nTransfer-Encoding: "
       "chunked\r\n\r\n0\r\n\r\n",
       400},
      {"duplicate CL",
       "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx", 400},
      {"non-numeric CL", "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1x\r\n\r\nx", 400},
      {"chunked not last",
       "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 400},
      {"obs-fold", "GET / HTTP/1.1\r\nHost: t\r\nX-A: a\r\n  folded\r\n\r\n", 400},
      {"space before colon", "GET / HTTP/1.1\r\nHost : t\r\n\r\n", 400},
      {"NUL in value", std::string("GET / HTTP/1.1\r\nHost: t\r\nX-A: a\0b\r\n\r\n", 37), 400},
      {"bad chunk size",
       "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400},
      {"missing Host", "GET / HTTP/1.1\r\n\r\n", 400},
      {"garbage", "HELLO\r\n\r\n", 400},
      {"long request line", "GET /" + long_target + " HTTP/1.1\r\nHost: t\r\n\r\n", 414},
      {"too many fields", "GET / HTTP/1.1\r\nHost: t\r\n" + many_fields + "\r\n", 431},
      {"field too large",
       "GET / HTTP/1.1\r\nHost: t\r\nX-Big: " + std::string(9000, 'b') + "\r\n\r\n", 431},
      {"body too large (CL)", "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5000\r\n\r\n",
       413},
      {"body too large (chunked)",
       "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n7d0\r\n" +
           std::string(2000, 'x') + "\r\n0\r\n\r\n",
       413},
      {"unknown coding", "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\n", 501},
      {"HTTP/2.0", "GET / HTTP/2.0\r\nHost: t\r\n\r\n", 505},
      {"bad query parameter", "GET /sleep?ms=abc HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
       400},
  };
  for (const auto& rejection : cases) {
    Client client(port());
    client.send(rejection.request);
    auto response = client.receive();
    ASSERT_TRUE(response) << rejection.name;
    EXPECT_EQ(response->status, rejection.status) << rejection.name;
    EXPECT_EQ(response->header("connection"), "close") << rejection.name;
    EXPECT_TRUE(client.closed_by_server()) << rejection.name;
  }
  auto still_serving = get(port(), "/");
  ASSERT_TRUE(still_serving);
  EXPECT_EQ(still_serving->status, 200);
}

// Whatever bytes arrive and however the client leaves, the worker lives on:
// mangled requests in random pieces, then a half-close (the server answers
// what was whole and closes) or an abrupt close (a reset when an answer was
// left unread). In the sanitized test build a memory error aborts the worker
// and the master replaces it, so the same worker pid at the end is the check.
TEST_P(Conformance, MangledTrafficNeverCostsTheWorker) {
  const auto workers = server_->worker_pids();
  const std::string seeds[] = {
      "GET / HTTP/1.1\r\nHost: t\r\n\r\n",
      "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
      "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\nhello",
      "HEAD /json HTTP/1.1\r\nHost: t\r\n\r\nGET /json HTTP/1.0\r\n\r\n",
      "GET /static/../x HTTP/1.1\r\nHost: t\r\nX-Forwarded-For: 1.2.3.4\r\n\r\n"};
  const std::string tokens[] = {"\r\n",
                                "\n",
                                ":",
                                " ",
                                std::string(1, '\0'),
                                "Content-Length: 99999999999999999999\r\n",
                                "Transfer-Encoding: chunked\r\n",
                                "ffffffffffffffff\r\n",
                                std::string(300, 'A'),
                                std::string(9000, 'A')};
  std::mt19937 random(1125);
  auto below = [&](size_t n) { return static_cast<size_t>(random() % n); };
  for (int connection = 0; connection < 150; ++connection) {
    std::string bytes;
    for (size_t n = 1 + below(3); n > 0; --n) bytes += seeds[below(std::size(seeds))];
    for (size_t n = below(5); n > 0; --n) {
      size_t at = below(bytes.size());
      switch (below(4)) {
        case 0:
          bytes[at] = static_cast<char>(random());
          break;
        case 1:
          bytes.erase(at, 1 + below(10));
          break;
        case 2:
          bytes.insert(at, tokens[below(std::size(tokens))]);
          break;
        case 3:
          bytes.insert(at, seeds[below(std::size(seeds))]);
          break;
      }
    }
    Client client(port());
    for (size_t at = 0; at < bytes.size();) {
      size_t piece = 1 + below(bytes.size());
      client.send(bytes.substr(at, piece));
      at += piece;
    }
    if (below(3) != 0) {
      client.shutdown_write();
      ASSERT_TRUE(client.closed_by_server(5s)) << "connection " << connection;
    }
  }
  EXPECT_EQ(server_->worker_pids(), workers) << server_->log();
  auto still_serving = get(port(), "/");
  ASSERT_TRUE(still_serving);
  EXPECT_EQ(still_serving->status, 200);
}

TEST_P(Conformance, ValidRequestBeforeAFramingErrorIsStillAnswered) {
  if (!keeps_alive()) GTEST_SKIP() << "sync answers one request per connection";
  Client client(port());
  client.send("GET / HTTP/1.1\r\nHost: t\r\n\r\nGET / HTTP/1.1\r\n\r\n");
  auto first = client.receive();
  auto second = client.receive();
  ASSERT_TRUE(first && second);
  EXPECT_EQ(first->status, 200);
  EXPECT_EQ(second->status, 400);
  EXPECT_TRUE(client.closed_by_server());
}

TEST_P(Conformance, ClientThatSendsNothingIsCut) {
  // The request timeout (10 s) must close a connection that never completes a
  // request, and the worker must keep serving others meanwhile where it can.
  Client silent(port());
  silent.send("GET / HTTP/1.1\r\nHost: t\r\n");  // never finished
  EXPECT_TRUE(silent.closed_by_server(15s));
}

TEST_P(Conformance, AppAnswersBadInputItself) {
  auto response = get(port(), "/cpu?n=-1");  // out of range: the app's own 400
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 400);
  auto missing = get(port(), "/no/such/route");
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 404);
}

TEST_P(Conformance, TrustedProxyNamesTheClientInTheAccessLog) {
  // The harness connects from 127.0.0.1, which forwarded_allow_ips trusts by default.
  TempDir dir;
  const std::string access = dir.file("access.log");
  Server server({"-k", GetParam(), "--access-logfile", access, "hello"});
  auto response = get(server.port(), "/via-proxy",
                      "X-Forwarded-For: 203.0.113.7\r\nX-Forwarded-Proto: https\r\n");
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 200);
  EXPECT_TRUE(eventually(
      [&] { return read_file(access).find("203.0.113.7 - - [") != std::string::npos; }, 3s))
      << read_file(access);
  auto conflicting =
      get(server.port(), "/", "X-Forwarded-Proto: https\r\nX-Forwarded-Ssl: off\r\n");
  ASSERT_TRUE(conflicting);
  EXPECT_EQ(conflicting->status, 400);
}

// Networks as gunicorn 22 takes them: a proxy is trusted for being inside
// one, and an address outside every entry is the client itself.
TEST_P(Conformance, TrustedProxiesMayBeNetworks) {
  for (auto [allowed, client] : {std::pair{"127.0.0.0/8", "203.0.113.7 - - ["},
                                 std::pair{"10.0.0.0/8,::1", "127.0.0.1 - - ["}}) {
    TempDir dir;
    const std::string access = dir.file("access.log");
    Server server(
        {"-k", GetParam(), "--forwarded-allow-ips", allowed, "--access-logfile", access, "hello"});
    auto response = get(server.port(), "/", "X-Forwarded-For: 203.0.113.7\r\n");
    ASSERT_TRUE(response) << allowed;
    EXPECT_EQ(response->status, 200) << allowed;
    EXPECT_TRUE(eventually([&] { return read_file(access).find(client) != std::string::npos; }, 3s))
        << allowed << "\n"
        << read_file(access);
  }
}

// A request the session answers itself, before any app sees it, is still a
// line in the access log: nginx logs its 400s, and so must a server behind it.
TEST_P(Conformance, RejectedRequestIsInTheAccessLog) {
  TempDir dir;
  const std::string access = dir.file("access.log");
  Server server({"-k", GetParam(), "--access-logfile", access, "hello"});
  Client client(server.port());
  client.send("GET / HTTP/1.1\r\nHost: t\r\nBad Field: x\r\n\r\n");
  auto response = client.receive();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 400);
  EXPECT_EQ(response->body, "Bad Request\n");
  EXPECT_TRUE(eventually(
      [&] { return read_file(access).find("127.0.0.1 - - [") != std::string::npos; }, 3s))
      << read_file(access);
  EXPECT_NE(read_file(access).find("] \"-\" 400 12 \"-\" \"-\""), std::string::npos)
      << read_file(access);
}

// access_log_format picks the atoms; the line is the worker's, whatever its class.
TEST_P(Conformance, AccessLogFormatIsConfigurable) {
  TempDir dir;
  const std::string access = dir.file("access.log");
  Server server({"-k", GetParam(), "--access-logfile", access, "--access-logformat",
                 "%(m)s %(U)s %(q)s %(s)s %(B)s %({X-Trace}i)s %({Content-Type}o)s %(u)s end",
                 "demo"});
  auto response = get(server.port(), "/json?x=1", "X-Trace: t-42\r\nAuthorization: Basic dTpw\r\n");
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 200);
  EXPECT_TRUE(eventually(
      [&] {
        return read_file(access).find("GET /json x=1 200 27 t-42 application/json u end\n") !=
               std::string::npos;
      },
      3s))
      << read_file(access);
}

TEST_P(Conformance, ProxyProtocolNamesTheClient) {
  // proxy_allow_ips trusts 127.0.0.1 by default: every connection must begin
  // with a PROXY header, and the client it names is the access log's %(h)s.
  using namespace std::string_literals;
  TempDir dir;
  const std::string access = dir.file("access.log");
  Server server({"-k", GetParam(), "--access-logfile", access, "--proxy-protocol", "hello"});
  const std::string request = "GET /via-balancer HTTP/1.1\r\nHost: t\r\n\r\n";
  {  // v1
    Client client(server.port());
    client.send("PROXY TCP4 192.0.2.1 198.51.100.2 51234 443\r\n" + request);
    auto response = client.receive();
    ASSERT_TRUE(response);
    EXPECT_EQ(response->status, 200);
  }
  {  // v2, IPv6 client 2001:db8::7, signature and the rest sent apart
    const std::string signature("\r\n\r\n\0\r\nQUIT\n", 12);
    std::string block = "\x21\x21\x00\x24"s + "\x20\x01\x0d\xb8"s + std::string(10, '\0') +
                        "\x00\x07"s + "\x20\x01\x0d\xb8"s + std::string(10, '\0') + "\x00\x01"s +
                        "\xc8\x22\x01\xbb"s;
    Client client(server.port());
    client.send(signature);
    client.send(block + request);
    auto response = client.receive();
    ASSERT_TRUE(response);
    EXPECT_EQ(response->status, 200);
  }
  EXPECT_TRUE(eventually(
      [&] {
        const std::string log = read_file(access);
        return log.find("192.0.2.1 - - [") != std::string::npos &&
               log.find("2001:db8::7 - - [") != std::string::npos;
      },
      3s))
      << read_file(access);

  auto missing = get(server.port(), "/");  // plain HTTP where a header is due
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 400);
  Client truncated(server.port());
  truncated.send("PROXY TCP4 192.0.2.1 198.51");
  truncated.shutdown_write();
  auto cut_short = truncated.receive();
  ASSERT_TRUE(cut_short);
  EXPECT_EQ(cut_short->status, 400);
  EXPECT_TRUE(truncated.closed_by_server());
}

TEST_P(Conformance, ProxyProtocolFromAnUntrustedPeerIsABadRequest) {
  Server server({"-k", GetParam(), "--proxy-protocol", "--proxy-allow-from", "192.0.2.1", "hello"});
  Client client(server.port());
  client.send("PROXY TCP4 192.0.2.1 198.51.100.2 51234 443\r\nGET / HTTP/1.1\r\nHost: t\r\n\r\n");
  auto response = client.receive();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 400);
  EXPECT_TRUE(client.closed_by_server());
  auto plain = get(server.port(), "/");  // served as plain HTTP
  ASSERT_TRUE(plain);
  EXPECT_EQ(plain->status, 200);
}

INSTANTIATE_TEST_SUITE_P(WorkerClasses, Conformance,
                         ::testing::Values("sync", "threaded", "epoll", "io_uring"),
                         [](const auto& test) { return test.param; });

}  // namespace
}  // namespace qilin::testing

// The epoll worker's IO model seen from outside, on one worker process:
// cooperative sleeps overlap while a blocking handler stops the loop;
// pipelined responses leave in order; a client that does not read holds no
// one else up; keep-alive, request-read and connection limits; max_requests
// (the graceful stop is in master_test, for every class). Bounds are
// generous (the test build runs under ASan); the speed targets are measured
// by `make bench`, not asserted here.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <memory>
#include <thread>

#include "tests/integration/harness.hpp"

namespace qilin::testing {
namespace {

using Clock = std::chrono::steady_clock;

std::chrono::milliseconds since(Clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
}

std::string request(const std::string& target, const std::string& extra_headers = "") {
  return "GET " + target + " HTTP/1.1\r\nHost: t\r\n" + extra_headers + "\r\n";
}

class Epoll : public ::testing::Test {
 protected:
  void start(std::vector<std::string> flags = {}) {
    std::vector<std::string> args{"-k", "epoll", "-w", "1"};
    args.insert(args.end(), flags.begin(), flags.end());
    args.push_back("demo");
    server_ = std::make_unique<Server>(args);
  }
  // A worker that crashed (a sanitizer abort, a signal) is logged by the master.
  void TearDown() override {
    if (server_) {
      EXPECT_EQ(server_->log().find("Worker (pid:"), std::string::npos) << server_->log();
    }
  }
  uint16_t port() const { return server_->port(); }

  std::unique_ptr<Server> server_;
};

TEST_F(Epoll, ConcurrentSleepsFinishTogether) {
  start();
  std::vector<std::unique_ptr<Client>> clients;
  const auto begin = Clock::now();
  for (int i = 0; i < 30; ++i) {
    clients.push_back(std::make_unique<Client>(port()));
    clients.back()->send(request("/sleep?ms=300"));
  }
  for (auto& client : clients) {
    auto response = client->receive(10s);
    ASSERT_TRUE(response);
    EXPECT_EQ(response->body, "slept 300 ms without blocking the worker\n");
  }
  // Serialized they would take 9 s; on one loop they overlap.
  EXPECT_LT(since(begin), 3s);
  EXPECT_GE(since(begin), 290ms);
}

// /block sleeps inside the handler, on the loop's thread: a GET / sent after
// it waits for it. /sleep suspends the handler and the GET / is answered at once.
TEST_F(Epoll, BlockingHandlerStopsTheLoopButSleepDoesNot) {
  start();
  auto latency_behind = [&](const std::string& slow_target) {
    Client slow(port()), quick(port());
    slow.send(request(slow_target));
    const auto begin = Clock::now();
    quick.send(request("/"));
    auto answer = quick.receive(5s);
    auto elapsed = since(begin);
    EXPECT_TRUE(answer && answer->status == 200) << slow_target;
    auto slow_answer = slow.receive(5s);
    EXPECT_TRUE(slow_answer && slow_answer->status == 200) << slow_target;
    return elapsed;
  };
  EXPECT_GE(latency_behind("/block?ms=500"), 400ms);
  EXPECT_LT(latency_behind("/sleep?ms=500"), 200ms);
}

TEST_F(Epoll, HundredPipelinedRequestsAnsweredInOrder) {
  start();
  // Later requests sleep less than earlier ones, so they finish out of
  // order; more than the session's pipeline depth, so reading pauses and resumes.
  auto ms_for = [](int i) { return (i * 37) % 50; };
  std::string batch;
  for (int i = 0; i < 100; ++i)
    batch += i % 10 == 9 ? request("/json") : request("/sleep?ms=" + std::to_string(ms_for(i)));
  Client client(port());
  client.send(batch);
  for (int i = 0; i < 100; ++i) {
    auto response = client.receive(10s);
    ASSERT_TRUE(response) << "response " << i;
    if (i % 10 == 9)
      EXPECT_EQ(response->header("content-type"), "application/json") << i;
    else
      EXPECT_EQ(response->body,
                "slept " + std::to_string(ms_for(i)) + " ms without blocking the worker\n")
          << i;
  }
  client.send(request("/", "Connection: close\r\n"));
  auto last = client.receive();
  ASSERT_TRUE(last);
  EXPECT_EQ(last->body, "Hello, World!");
}

TEST_F(Epoll, ClientsThatDoNotReadHoldNoOneUp) {
  TempDir files;
  std::string big(16 << 20, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>('a' + (i * 7 + i / 4096) % 26);
  files.write("big.bin", big);
  start({"--static-dir", files.path()});

  Client file_reader(port()), stream_reader(port());
  file_reader.send(request("/static/big.bin"));
  stream_reader.send(request("/stream?n=300000"));  // ~6.6 MB, chunked
  // Neither reads yet: both responses are far larger than the socket
  // buffers, so the loop holds them, waiting for EPOLLOUT.
  for (int i = 0; i < 5; ++i) {
    const auto begin = Clock::now();
    auto response = get(port(), "/");
    ASSERT_TRUE(response);
    EXPECT_EQ(response->status, 200);
    EXPECT_LT(since(begin), 1s);
  }
  auto file = file_reader.receive(60s);
  ASSERT_TRUE(file);
  EXPECT_EQ(file->body.size(), big.size());
  EXPECT_TRUE(file->body == big);
  auto stream = stream_reader.receive(60s);
  ASSERT_TRUE(stream);
  EXPECT_TRUE(stream->body.starts_with("line 1 of 300000\n"));
  EXPECT_TRUE(stream->body.ends_with("line 300000 of 300000\n"));
  EXPECT_EQ(std::count(stream->body.begin(), stream->body.end(), '\n'), 300000);
}

TEST_F(Epoll, IdleKeepAliveConnectionIsClosedAfterKeepalive) {
  start({"--keep-alive", "1"});
  Client client(port());
  client.send(request("/"));
  ASSERT_TRUE(client.receive());
  std::this_thread::sleep_for(500ms);  // idle, but within the keep-alive period
  client.send(request("/"));
  ASSERT_TRUE(client.receive());
  const auto begin = Clock::now();
  EXPECT_TRUE(client.closed_by_server(5s));
  EXPECT_GE(since(begin), 900ms);
  EXPECT_LT(since(begin), 3s);
}

TEST_F(Epoll, RequestReadDeadline) {
  start();
  {  // a request that takes a couple of seconds to arrive is still served
    Client client(port());
    const std::string bytes = request("/");
    for (size_t i = 0; i < bytes.size(); i += 2) {
      client.send(bytes.substr(i, 2));
      std::this_thread::sleep_for(100ms);
    }
    auto response = client.receive();
    ASSERT_TRUE(response);
    EXPECT_EQ(response->status, 200);
  }
  {  // one that dribbles forever is cut after request_timeout (10 s): each byte does not reset it
    Client client(port());
    client.send("GET / HTTP/1.1\r\n");
    const auto begin = Clock::now();
    bool closed = false;
    while (!closed && since(begin) < 15s) {
      client.send("X");
      closed = client.closed_by_server(500ms);
    }
    EXPECT_TRUE(closed);
    EXPECT_LT(since(begin), 12s);
  }
}

TEST_F(Epoll, WorkerConnectionsLimitPausesAccepting) {
  start({"--worker-connections", "2"});
  auto first = std::make_unique<Client>(port());
  Client second(port());
  first->send(request("/"));
  ASSERT_TRUE(first->receive());
  second.send(request("/"));
  ASSERT_TRUE(second.receive());
  Client third(port());  // completes in the kernel's backlog, not accepted
  third.send(request("/"));
  EXPECT_FALSE(third.receive(700ms));
  first.reset();  // one closes: the worker drops below the limit and accepts again
  auto response = third.receive(5s);
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 200);
  second.send(request("/"));
  EXPECT_TRUE(second.receive());
}

// The peer resets its connection while its handler sleeps; the slot is
// reused by a new connection whose first request has the same id (0). The
// late answer must find the generation changed and go nowhere.
TEST_F(Epoll, AnswerForAVanishedConnectionGoesNowhere) {
  start();
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port());
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  const std::string bytes = request("/sleep?ms=300");
  ASSERT_EQ(::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(bytes.size()));
  // Answered after the loop read the sleep request; closed by the server at
  // once, so the sleeper's slot is the one freed last, and reused first.
  ASSERT_TRUE(get(port(), "/", "Connection: close\r\n"));
  linger reset{.l_onoff = 1, .l_linger = 0};
  ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
  ::close(fd);  // RST

  Client next(port());
  next.send(request("/sleep?ms=600"));
  auto response = next.receive(5s);
  ASSERT_TRUE(response);
  EXPECT_EQ(response->body, "slept 600 ms without blocking the worker\n");
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(get(port(), "/"));
}

TEST_F(Epoll, MaxRequestsRefusesKeepAliveAndRestartsTheWorker) {
  start({"--max-requests", "2"});
  const auto before = server_->worker_pids();
  ASSERT_EQ(before.size(), 1u);
  Client client(port());
  client.send(request("/"));
  auto first = client.receive();
  ASSERT_TRUE(first);
  EXPECT_NE(first->header("connection"), "close");
  client.send(request("/"));
  auto second = client.receive();
  ASSERT_TRUE(second);
  EXPECT_EQ(second->header("connection"), "close");
  EXPECT_TRUE(client.closed_by_server());
  EXPECT_TRUE(eventually([&] {
    auto now = server_->worker_pids();
    return now.size() == 1 && now[0] != before[0];
  })) << server_->log();
  EXPECT_TRUE(eventually([&] { return get(port(), "/").has_value(); }));
}

}  // namespace
}  // namespace qilin::testing

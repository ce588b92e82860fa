// The threaded worker's own properties, beyond the shared conformance suite:
// concurrency equals the pool size, keep-alive through the poller, the
// worker_connections limit, saturation, and stopping with requests in flight.
#include <gtest/gtest.h>
#include <signal.h>

#include <thread>

#include "tests/integration/harness.hpp"

namespace qilin::testing {
namespace {

using Clock = std::chrono::steady_clock;

std::vector<std::string> threaded(std::vector<std::string> extra) {
  std::vector<std::string> args{"-k", "threaded", "-w", "1"};
  args.insert(args.end(), extra.begin(), extra.end());
  args.push_back("demo");
  return args;
}

// Runs `count` requests for `target` at once, each on its own connection;
// returns how long the slowest took, and how many got a 200.
std::pair<std::chrono::milliseconds, int> concurrently(uint16_t port, int count,
                                                       const std::string& target) {
  std::atomic<int> ok{0};
  const auto start = Clock::now();
  std::vector<std::thread> clients;
  for (int i = 0; i < count; ++i)
    clients.emplace_back([&] {
      auto response = get(port, target);
      if (response && response->status == 200) ++ok;
    });
  for (auto& client : clients) client.join();
  return {std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start), ok.load()};
}

TEST(Threaded, ConcurrencyEqualsThePoolSize) {
  Server server(threaded({"--threads", "4"}));
  // /block holds a pool thread, not the process: four run side by side...
  auto [four, four_ok] = concurrently(server.port(), 4, "/block?ms=400");
  EXPECT_EQ(four_ok, 4);
  EXPECT_LT(four, 1000ms) << "4 blocking requests on 4 threads should overlap";
  // ...and the fifth waits for a free thread: eight take two rounds.
  auto [eight, eight_ok] = concurrently(server.port(), 8, "/block?ms=400");
  EXPECT_EQ(eight_ok, 8);
  EXPECT_GE(eight, 700ms) << "more requests than threads must queue";
  EXPECT_LT(eight, 3000ms);
}

TEST(Threaded, KeepAliveConnectionIsReused) {
  Server server(threaded({"--threads", "2"}));
  Client client(server.port());
  for (int i = 0; i < 5; ++i) {
    client.send("GET /json HTTP/1.1\r\nHost: t\r\n\r\n");
    auto response = client.receive();
    ASSERT_TRUE(response) << "request " << i;
    EXPECT_EQ(response->status, 200);
    EXPECT_NE(response->header("connection"), "close");
  }
}

TEST(Threaded, IdleKeepAliveConnectionIsClosedAfterKeepAlive) {
  Server server(threaded({"--keep-alive", "1"}));
  Client client(server.port());
  client.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
  ASSERT_TRUE(client.receive());
  const auto idle_since = Clock::now();
  EXPECT_TRUE(client.closed_by_server(3s));
  const auto idle = Clock::now() - idle_since;
  EXPECT_GE(idle, 800ms);
  EXPECT_LT(idle, 2500ms);
}

TEST(Threaded, KeepAliveZeroClosesAfterEachResponse) {
  Server server(threaded({"--keep-alive", "0"}));
  Client client(server.port());
  client.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
  auto response = client.receive();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->header("connection"), "close");
  EXPECT_TRUE(client.closed_by_server());
}

TEST(Threaded, AcceptingPausesAtWorkerConnections) {
  Server server(threaded({"--worker-connections", "2", "--threads", "2"}));
  // Two silent connections fill the worker. The accept queue is FIFO, so they
  // are accepted before the third whatever the timing.
  auto first = std::make_unique<Client>(server.port());
  Client second(server.port());
  Client third(server.port());  // completes in the kernel's backlog, not accepted
  third.send("GET /json HTTP/1.1\r\nHost: t\r\n\r\n");
  EXPECT_FALSE(third.receive(700ms)) << "a third connection was served past worker_connections 2";
  first.reset();  // a slot frees: accepting resumes
  auto response = third.receive(3s);
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 200);
  // At the limit, keep-alive would hold a slot the backlog needs.
  EXPECT_EQ(response->header("connection"), "close");
}

TEST(Threaded, SaturatedPoolRefusesKeepAlive) {
  Server server(threaded({"--threads", "1"}));
  Client holder(server.port()), queued(server.port()), last(server.port());
  holder.send("GET /block?ms=1200 HTTP/1.1\r\nHost: t\r\n\r\n");
  queued.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
  last.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
  ASSERT_TRUE(holder.receive());
  // Both waited more than a second for the one thread: sent back to accept.
  for (Client* waited : {&queued, &last}) {
    auto refused = waited->receive();
    ASSERT_TRUE(refused);
    EXPECT_EQ(refused->header("connection"), "close");
    EXPECT_TRUE(waited->closed_by_server());
  }
  // A connection served without waiting is kept alive.
  Client fresh(server.port());
  fresh.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
  auto kept = fresh.receive();
  ASSERT_TRUE(kept);
  EXPECT_NE(kept->header("connection"), "close");
}

TEST(Threaded, QuickExitDoesNotWaitForABlockedThread) {
  const uint16_t status_port = free_port();
  Server server(
      threaded({"--threads", "2", "--status-bind", "127.0.0.1:" + std::to_string(status_port)}));
  ASSERT_TRUE(wait_in_app(status_port, 0)) << server.log();  // the status listener is up
  Client busy(server.port());
  busy.send("GET /block?ms=20000 HTTP/1.1\r\nHost: t\r\n\r\n");
  ASSERT_TRUE(wait_in_app(status_port)) << server.log();
  const auto start = Clock::now();
  server.signal(SIGINT);
  auto status = server.wait_exit(5s);
  ASSERT_TRUE(status) << server.log();
  EXPECT_LT(Clock::now() - start, 3s);
}

}  // namespace
}  // namespace qilin::testing

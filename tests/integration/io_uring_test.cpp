// The io_uring worker's own properties, beyond the shared conformance suite:
// concurrency on one ring, deep pipelining, slow readers, its timers, its
// connection limit, graceful stop, zero-copy static files, and the boot
// error when the kernel refuses io_uring. Every wait is bounded.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstddef>
#include <fstream>
#include <random>
#include <thread>

#include "tests/integration/harness.hpp"

namespace qilin::testing {
namespace {

using Clock = std::chrono::steady_clock;

std::string random_bytes(size_t size, unsigned seed) {
  std::mt19937 random(seed);
  std::string bytes(size, '\0');
  for (auto& byte : bytes) byte = static_cast<char>(random() & 0xFF);
  return bytes;
}

void write_binary(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

TEST(IoUring, ConcurrentSleepsFinishTogether) {
  Server server({"-k", "io_uring", "-w", "1", "demo"});
  std::vector<std::unique_ptr<Client>> clients;
  const auto begin = Clock::now();
  for (int i = 0; i < 30; ++i) {
    clients.push_back(std::make_unique<Client>(server.port()));
    clients.back()->send("GET /sleep?ms=300 HTTP/1.1\r\nHost: t\r\n\r\n");
  }
  for (auto& client : clients) {
    auto response = client->receive(5s);
    ASSERT_TRUE(response);
    EXPECT_EQ(response->status, 200);
  }
  // Serialized they would take 9 s; suspended on one loop, about 0.3 s.
  EXPECT_LT(Clock::now() - begin, 3s);
}

TEST(IoUring, HundredPipelinedRequestsInOneWriteAnsweredInOrder) {
  Server server({"-k", "io_uring", "-w", "1", "demo"});
  Client client(server.port());
  std::string batch;
  for (int i = 0; i < 100; ++i) {
    // Later requests finish first: the order must come from the session.
    if (i % 3 == 0)
      batch += "GET /sleep?ms=" + std::to_string((100 - i) % 30) + " HTTP/1.1\r\nHost: t\r\n\r\n";
    else
      batch += "GET /cpu?n=" + std::to_string(i) + " HTTP/1.1\r\nHost: t\r\n\r\n";
  }
  client.send(batch);
  for (int i = 0; i < 100; ++i) {
    auto response = client.receive(5s);
    ASSERT_TRUE(response) << "response " << i;
    ASSERT_EQ(response->status, 200) << "response " << i;
    const std::string expected = i % 3 == 0 ? "slept " + std::to_string((100 - i) % 30) + " ms"
                                            : std::to_string(i) + " rounds";
    EXPECT_EQ(response->body.rfind(expected, 0), 0u) << "response " << i << ": " << response->body;
  }
}

TEST(IoUring, SlowReaderOfALargeFileDoesNotBlockOthers) {
  TempDir dir;
  const std::string content = random_bytes(32 << 20, 7);  // far more than the socket buffers hold
  write_binary(dir.file("large.bin"), content);
  Server server({"-k", "io_uring", "-w", "1", "--static-dir", dir.path(), "demo"});
  Client slow(server.port());
  slow.send("GET /static/large.bin HTTP/1.1\r\nHost: t\r\n\r\n");  // and read nothing yet
  std::this_thread::sleep_for(100ms);  // let the transfer fill every buffer on the way
  const auto begin = Clock::now();
  for (int i = 0; i < 5; ++i) {
    auto response = get(server.port(), "/");
    ASSERT_TRUE(response);
    EXPECT_EQ(response->body, "Hello, World!");
  }
  EXPECT_LT(Clock::now() - begin, 2s);
  auto large = slow.receive(20s);
  ASSERT_TRUE(large);
  EXPECT_EQ(large->body.size(), content.size());
  EXPECT_TRUE(large->body == content);
}

TEST(IoUring, StreamToASlowReaderDoesNotBlockOthers) {
  Server server({"-k", "io_uring", "-w", "1", "demo"});
  Client slow(server.port());
  slow.send("GET /stream?n=400000 HTTP/1.1\r\nHost: t\r\n\r\n");
  std::this_thread::sleep_for(100ms);
  auto response = get(server.port(), "/json");
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 200);
  auto stream = slow.receive(20s);
  ASSERT_TRUE(stream);
  EXPECT_NE(stream->body.find("line 400000 of 400000\n"), std::string::npos);
}

TEST(IoUring, StaticFileIsSentByteForByte) {
  TempDir dir;
  const std::string content = random_bytes(300 * 1024, 42);  // several buffers and splice chunks
  write_binary(dir.file("file.bin"), content);
  Server server({"-k", "io_uring", "-w", "1", "--static-dir", dir.path(), "demo"});
  Client client(server.port());
  for (int round = 0; round < 2; ++round) {  // twice on one connection: the pipe is reused
    client.send("GET /static/file.bin HTTP/1.1\r\nHost: t\r\n\r\n");
    auto response = client.receive(10s);
    ASSERT_TRUE(response);
    EXPECT_EQ(response->status, 200);
    EXPECT_EQ(response->header("content-length"), std::to_string(content.size()));
    EXPECT_TRUE(response->body == content);
  }
}

TEST(IoUring, IdleKeepAliveIsClosedAfterTheKeepAliveTime) {
  Server server({"-k", "io_uring", "-w", "1", "--keep-alive", "1", "demo"});
  Client client(server.port());
  client.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
  ASSERT_TRUE(client.receive());
  const auto idle_since = Clock::now();
  EXPECT_TRUE(client.closed_by_server(4s));
  EXPECT_GT(Clock::now() - idle_since, 800ms);
}

TEST(IoUring, WorkerConnectionsLimitHoldsTheNextClient) {
  Server server(
      {"-k", "io_uring", "-w", "1", "--worker-connections", "2", "--keep-alive", "30", "demo"});
  auto first = std::make_unique<Client>(server.port());
  Client second(server.port());
  for (Client* client : {first.get(), &second}) {
    client->send("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    ASSERT_TRUE(client->receive());
  }
  Client third(server.port());  // connected in the kernel's backlog, not served
  third.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
  EXPECT_FALSE(third.receive(700ms));
  first.reset();  // a slot frees: the third is served
  auto response = third.receive(5s);
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 200);
}

TEST(IoUring, BytesLeftUnreadAtCloseDoNotResetTheResponse) {
  TempDir dir;
  const std::string content = random_bytes(8 << 20, 3);
  write_binary(dir.file("large.bin"), content);
  Server server({"-k", "io_uring", "-w", "1", "--static-dir", dir.path(), "demo"});
  Client client(server.port());
  client.send("GET /static/large.bin HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
  std::this_thread::sleep_for(100ms);  // the response is on its way, the server reads no more
  client.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n");  // never read by the server
  // A plain close() with these bytes unread sends a RST, and the kernel drops
  // whatever of the response it still holds: the client would get a torso.
  auto response = client.receive(10s);
  ASSERT_TRUE(response);
  EXPECT_EQ(response->body.size(), content.size());
  EXPECT_TRUE(client.closed_by_server(5s));
}

// A seccomp filter that fails io_uring_setup with EPERM, as a container
// runtime's default profile does; inherited across exec.
bool forbid_io_uring() {
  sock_filter program[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  sock_fprog filter{.len = sizeof program / sizeof program[0], .filter = program};
  return ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 &&
         ::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &filter) == 0;
}

TEST(IoUring, ForbiddenIoUringIsABootErrorThatNamesTheAlternative) {
  TempDir dir;
  const std::string output = dir.file("output");
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::setpgid(0, 0);
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (!forbid_io_uring()) ::_exit(99);
    int fd = ::open(output.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    ::dup2(fd, STDOUT_FILENO);
    ::dup2(fd, STDERR_FILENO);
    ::execl(QILIN_BINARY, QILIN_BINARY, "-k", "io_uring", "-b", "127.0.0.1:0", "hello",
            static_cast<char*>(nullptr));
    ::_exit(127);
  }
  int status = 0;
  const bool exited = eventually([&] { return ::waitpid(pid, &status, WNOHANG) == pid; }, 10s);
  if (!exited) {
    ::kill(-pid, SIGKILL);
    ::waitpid(pid, &status, 0);
  }
  ::kill(-pid, SIGKILL);  // never leave a worker behind
  ASSERT_TRUE(exited) << read_file(output);
  ASSERT_TRUE(WIFEXITED(status));
  if (WEXITSTATUS(status) == 99) GTEST_SKIP() << "seccomp filters cannot be installed here";
  const std::string log = read_file(output);
  EXPECT_EQ(WEXITSTATUS(status), 3) << log;
  EXPECT_NE(log.find("io_uring is not available"), std::string::npos) << log;
  EXPECT_NE(log.find("worker_class: epoll"), std::string::npos) << log;
}

}  // namespace
}  // namespace qilin::testing

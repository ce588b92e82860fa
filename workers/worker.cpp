#include "workers/worker.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <ctime>
#include <random>
#include <string_view>
#include <utility>

#include "http/date.hpp"
#include "http/message.hpp"
#include "sys/error.hpp"
#include "sys/log.hpp"

namespace qilin::workers {

namespace {

// What the signal handlers record. One worker per process, so process-wide
// state is the honest shape for it.
std::atomic<bool> stop_requested{false};
std::atomic<bool> quick_requested{false};
std::atomic<bool> reopen_requested{false};
std::atomic<int64_t> stop_requested_ms{0};
int wakeup_write_fd = -1;

void poke_wakeup() noexcept {
  const uint64_t one = 1;
  int saved = errno;
  [[maybe_unused]] auto ignored = ::write(wakeup_write_fd, &one, sizeof one);
  errno = saved;
}

void on_stop_signal(int signal) noexcept {
  if (signal == SIGINT || signal == SIGQUIT) quick_requested = true;
  if (!stop_requested.exchange(true)) stop_requested_ms = master::monotonic_ms();
  poke_wakeup();
}

void on_usr1(int) noexcept {
  reopen_requested = true;
  poke_wakeup();
}

// What the worker is doing, kept for a timeout: written per request by the
// blocking workers, read by on_abort.
char busy_note[320];
size_t busy_note_length = 0;
int busy_client_fd = -1;

// The master sends ABRT to a worker that missed its heartbeat for `timeout`
// seconds: the worker is stuck, so nothing but async-signal-safe calls here.
void on_abort(int) noexcept {
  static constexpr char idle_note[] = "WORKER TIMEOUT: aborting (the loop stopped turning)\n";
  [[maybe_unused]] ssize_t ignored;
  if (busy_note_length > 0)
    ignored = ::write(sys::error_log_fd(), busy_note, busy_note_length);
  else
    ignored = ::write(sys::error_log_fd(), idle_note, sizeof idle_note - 1);
  if (busy_client_fd >= 0) {
    auto answer = http::worker_timeout_response();
    ignored = ::write(busy_client_fd, answer.data(), answer.size());
  }
  ::_exit(1);
}

void install(int signal, void (*handler)(int)) {
  struct sigaction action {};
  action.sa_handler = handler;
  sigemptyset(&action.sa_mask);
  action.sa_flags = 0;  // no SA_RESTART: a blocking recv/accept/poll returns EINTR
  if (::sigaction(signal, &action, nullptr) != 0) throw sys::SysError("sigaction", errno);
}

// Reads a small /proc file from its start into `buffer`; empty on failure.
std::string_view read_proc(int fd, char* buffer, size_t capacity) noexcept {
  if (fd < 0) return {};
  ssize_t n = ::pread(fd, buffer, capacity, 0);
  return n > 0 ? std::string_view(buffer, static_cast<size_t>(n)) : std::string_view();
}

// The `index`th space-separated field of `text` (0-based), as a number.
uint64_t number_field(std::string_view text, size_t index) noexcept {
  for (size_t i = 0; i < index; ++i) {
    size_t space = text.find(' ');
    if (space == std::string_view::npos) return 0;
    text.remove_prefix(space + 1);
  }
  uint64_t value = 0;
  std::from_chars(text.data(), text.data() + text.size(), value);
  return value;
}

uint64_t microseconds(const timeval& time) noexcept {
  return static_cast<uint64_t>(time.tv_sec) * 1'000'000 + static_cast<uint64_t>(time.tv_usec);
}

// A unix-socket peer is a proxy on this host, trusted like a listed one.
bool trusted_peer(const config::AllowList& allowed, std::string_view peer) noexcept {
  return peer == "unix" || allowed.allows(peer);
}

}  // namespace

Worker::Worker(const WorkerSetup& setup)
    : config_(setup.config),
      listeners_(setup.listeners),
      slot_(setup.slot),
      app_(setup.preloaded_app ? *setup.preloaded_app : app::Handler{}),
      master_pid_(::getppid()),
      master_wakeup_(setup.master_wakeup_fd),
      pid_(::getpid()),
      access_format_(
          resolve_environment(config::parse_access_log_format(config_.access_log_format))),
      forwarded_allowed_(config_.forwarded_allow_ips),
      proxy_allowed_(config_.proxy_allow_ips) {
  limits_.request_line = static_cast<size_t>(config_.limit_request_line);
  limits_.header_fields = static_cast<size_t>(config_.limit_request_fields);
  limits_.header_field_size = static_cast<size_t>(config_.limit_request_field_size);
  limits_.body = static_cast<size_t>(config_.limit_request_body);
}

Worker::~Worker() = default;

int Worker::main() {
  try {
    boot();
  } catch (const app::AppLoadError& error) {
    spdlog::error("{}", error.what());
    return kExitAppLoadError;
  } catch (const std::exception& error) {
    spdlog::error("worker failed to boot: {}", error.what());
    return kExitBootError;
  }
  slot_.state = master::WorkerState::Ready;
  // The master acts on readiness (READY=1 to systemd, retiring the generation
  // a reload replaces) when it wakes: wake it now rather than at its next look.
  if (master_wakeup_) {
    [[maybe_unused]] auto ignored = ::write(master_wakeup_.get(), &kWorkerBooted, 1);
    master_wakeup_.reset();
  }
  run();
  slot_.state = master::WorkerState::Stopping;
  spdlog::default_logger()->flush();
  if (auto* access = sys::access_log()) access->flush();
  return 0;
}

void Worker::boot() {
  // ps, top and htop tell the processes apart: the master stays "qilin", the
  // status process is "qilin-status", a worker is named for its IO model
  // ("qilin-io_uring"; the kernel keeps 15 characters), and so are its threads.
  ::prctl(PR_SET_NAME, ("qilin-" + config_.worker_class).c_str());
  wakeup_.reset(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  if (!wakeup_) throw sys::SysError("eventfd", errno);
  wakeup_write_fd = wakeup_.get();
  install(SIGTERM, on_stop_signal);
  install(SIGINT, on_stop_signal);
  install(SIGQUIT, on_stop_signal);
  install(SIGUSR1, on_usr1);
  install(SIGABRT, on_abort);
  ::signal(SIGHUP, SIG_IGN);  // the master reloads; workers are replaced, not reloaded
  ::signal(SIGWINCH, SIG_IGN);
  ::signal(SIGPIPE, SIG_IGN);  // a peer gone mid-write is EPIPE, sorted where the write is made
  // The master forked us with every signal blocked, so a TERM sent while we
  // were still the master's copy waits for the handlers above instead of
  // being lost in the master's self-pipe.
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);

  if (config_.max_requests > 0) {
    // gunicorn: max_requests + randint(0, jitter), so workers started together
    // do not all restart together.
    std::mt19937 random(static_cast<unsigned>(::getpid()) ^
                        static_cast<unsigned>(master::monotonic_ms()));
    std::uniform_int_distribution<int> jitter(0, config_.max_requests_jitter);
    max_requests_ = static_cast<uint64_t>(config_.max_requests + jitter(random));
  }
  // For the scoreboard's process figures; a /proc that cannot be read leaves them at 0.
  proc_stat_.reset(::open("/proc/self/stat", O_RDONLY | O_CLOEXEC));
  proc_statm_.reset(::open("/proc/self/statm", O_RDONLY | O_CLOEXEC));
  if (!app_) app_ = app::load_app(config_.app, {.static_dir = config_.static_dir});
  boot_io();
  notify();
  spdlog::info("Booting worker with pid: {} ({})", ::getpid(), config_.worker_class);
}

void Worker::notify(int64_t now) {
  slot_.heartbeat_ms.store(now, std::memory_order_relaxed);
  http::refresh_date(std::time(nullptr));
  if (now - last_second_ms_ < 1000) return;
  // Once a second: what is not worth a syscall per loop turn.
  last_second_ms_ = now;
  if (auto* access = sys::access_log()) access->flush();
  sample_process();
  // A worker whose master died is an orphan no one supervises (gunicorn
  // checks the same): stop as if told to.
  if (::getppid() != master_pid_ && !stop_requested.exchange(true)) {
    stop_requested_ms = now;
    spdlog::warn("master (pid: {}) is gone: stopping", master_pid_);
  }
}

void Worker::sample_process() noexcept {
  auto& process = slot_.process;
  constexpr auto relaxed = std::memory_order_relaxed;
  rusage usage{};
  if (::getrusage(RUSAGE_SELF, &usage) == 0) {
    process.voluntary_switches.store(static_cast<uint64_t>(usage.ru_nvcsw), relaxed);
    process.involuntary_switches.store(static_cast<uint64_t>(usage.ru_nivcsw), relaxed);
    process.user_cpu_us.store(microseconds(usage.ru_utime), relaxed);
    process.system_cpu_us.store(microseconds(usage.ru_stime), relaxed);
  }
  char buffer[1024];
  // proc(5): "pid (comm) state ..."; comm may hold spaces and parentheses, so
  // count from the last ')': field 3 (state) is the first after it, field 20
  // (num_threads) the eighteenth.
  std::string_view stat = read_proc(proc_stat_.get(), buffer, sizeof buffer);
  if (size_t paren = stat.rfind(')'); paren != std::string_view::npos && paren + 2 < stat.size())
    process.threads.store(number_field(stat.substr(paren + 2), 17), relaxed);
  // statm: "size resident shared ..." in pages.
  static const uint64_t page = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
  std::string_view statm = read_proc(proc_statm_.get(), buffer, sizeof buffer);
  if (!statm.empty()) process.rss_bytes.store(number_field(statm, 1) * page, relaxed);
}

bool Worker::alive() const noexcept {
  return !stop_requested.load(std::memory_order_relaxed) && !max_reached_;
}

bool Worker::quick_exit() const noexcept { return quick_requested.load(std::memory_order_relaxed); }

void Worker::handle_wakeup() {
  uint64_t count;
  while (::read(wakeup_.get(), &count, sizeof count) > 0) {
  }
  if (reopen_requested.exchange(false)) {
    if (sys::reopen_logs()) spdlog::info("reopened log files");
  }
}

int64_t Worker::graceful_ms_left() const noexcept {
  int64_t since = max_reached_ ? max_reached_ms_.load() : stop_requested_ms.load();
  if (since == 0) return INT64_MAX;
  return since + int64_t{config_.graceful_timeout} * 1000 - master::monotonic_ms();
}

void Worker::serving(int client_fd, const http::Request& request, std::string_view peer) noexcept {
  auto written = fmt::format_to_n(
      busy_note, sizeof busy_note - 1,
      "[{}] [CRITICAL] WORKER TIMEOUT: aborting while serving \"{} {}\" from {}\n", ::getpid(),
      request.method, std::string_view(request.target).substr(0, 200), peer);
  busy_note_length = std::min(written.size, sizeof busy_note - 1);
  busy_note[busy_note_length - 1] = '\n';
  busy_client_fd = client_fd;
}

void Worker::served() noexcept {
  busy_note_length = 0;
  busy_client_fd = -1;
}

bool Worker::trusts_forwarded(std::string_view peer) const noexcept {
  return trusted_peer(forwarded_allowed_, peer);
}

bool Worker::expects_proxy_header(std::string_view peer) const noexcept {
  return config_.proxy_protocol && trusted_peer(proxy_allowed_, peer);
}

bool Worker::needs_peer_address() const noexcept {
  return sys::access_log() != nullptr || !config_.forwarded_allow_ips.empty() ||
         config_.proxy_protocol;
}

std::optional<Worker::Accepted> Worker::accept_client(int listener, int flags) {
  for (;;) {
    sockaddr_storage peer{};
    socklen_t peer_length = sizeof peer;
    sys::Fd client(::accept4(listener, reinterpret_cast<sockaddr*>(&peer), &peer_length, flags));
    io().accept();
    if (client) {
      connection_accepted();
      return Accepted{std::move(client), sys::peer_name(peer, peer_length)};
    }
    if (errno == EINTR || errno == ECONNABORTED) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK)
      spdlog::error("{}", sys::describe("accept4", errno));
    return std::nullopt;
  }
}

void Worker::take_backlog_and_close_listeners(int accept_flags,
                                              const std::function<void(Accepted&&)>& adopt) {
  refuse_new_connections();
  size_t taken = 0;
  for (sys::Listener& listener : listeners_) {
    if (!listener.fd) continue;
    while (auto client = accept_client(listener.fd.get(), accept_flags)) {
      adopt(std::move(*client));
      ++taken;
    }
    listener.fd.reset();
  }
  if (taken > 0) spdlog::debug("stopping: serving {} connections from the listen backlog", taken);
}

void Worker::refuse_new_connections() {
  if (std::exchange(refusing_, true)) return;
  for (sys::Listener& listener : listeners_) {
    if (!listener.fd || !listener.exclusive) continue;
    try {
      sys::refuse_new_connections(listener.fd.get());
    } catch (const std::exception& error) {
      spdlog::warn("{}: new connections may be reset", error.what());
    }
  }
}

void Worker::connection_accepted() noexcept {
  slot_.connections.fetch_add(1, std::memory_order_relaxed);
}

// Every response the worker sends, the app's and the session's own: the
// counters, then a line in access_log_format (gunicorn's default:
//   %(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s").
// A request the session rejected has no parsed line or headers: "-" for each.
void Worker::account(AccessRecord answered) {
  master::bump(slot_.requests);
  master::bump(slot_.body_bytes_out, answered.body_bytes);
  slot_.status_codes.record(answered.status);
  auto* access = sys::access_log();
  if (access == nullptr) return;
  answered.now = std::time(nullptr);  // read only when there is a log to write
  fmt::memory_buffer line;            // inline storage: no allocation for a usual line
  format_access_line(line, access_format_, answered);
  access->info("{}", std::string_view(line.data(), line.size()));
}

void Worker::feed(http::Session& session, std::string_view bytes) {
  session.feed(bytes);
  count_rejection(session);
}

void Worker::feed_eof(http::Session& session) {
  session.feed_eof();
  count_rejection(session);
}

void Worker::count_rejection(http::Session& session) {
  if (auto rejection = session.take_rejection())
    account({.status = rejection->status,
             .body_bytes = rejection->body_bytes,
             .client = rejection->client,
             .pid = pid_});
}

bool Worker::request_done(const http::Request& request, const http::Response& response,
                          std::string_view peer, int64_t started_ns) {
  const int64_t duration_us =
      started_ns > 0 ? std::max<int64_t>(0, master::monotonic_ns() - started_ns) / 1000 : 0;
  if (started_ns > 0) slot_.latency.record(static_cast<uint64_t>(duration_us));
  account({.status = response.status,
           .body_bytes = response.body.size() + response.file_length,
           .streamed = static_cast<bool>(response.stream),
           .client = request.client.empty() ? peer : std::string_view(request.client),
           .request = &request,
           .response = &response,
           .duration_us = duration_us,
           .pid = pid_});
  if (max_requests_ != 0 && requests_.fetch_add(1) + 1 >= max_requests_ &&
      !max_reached_.exchange(true)) {
    max_reached_ms_ = master::monotonic_ms();
    spdlog::info("Autorestarting worker after current request ({} requests).", requests_.load());
  }
  return !max_reached_;
}

}  // namespace qilin::workers

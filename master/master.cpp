#include "master/master.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <stdexcept>

#include "master/status_server.hpp"
#include "sys/error.hpp"
#include "sys/identity.hpp"
#include "sys/log.hpp"
#include "workers/worker.hpp"

namespace qilin::master {

namespace {

// The handler's only job: queue the signal for the loop (STYLE 4).
int signal_queue_fd = -1;

void queue_signal(int signal) noexcept {
  int saved = errno;
  const char number = static_cast<char>(signal);
  [[maybe_unused]] auto ignored = ::write(signal_queue_fd, &number, 1);
  errno = saved;
}

constexpr int kHandledSignals[] = {SIGHUP,  SIGTERM, SIGINT,  SIGQUIT, SIGTTIN,
                                   SIGTTOU, SIGUSR1, SIGUSR2, SIGCHLD};
// WINCH is ignored as gunicorn does when not daemonized.
constexpr int kIgnoredSignals[] = {SIGWINCH, SIGPIPE};

// Twice the largest `workers`: a reload runs both generations side by side.
constexpr size_t kScoreboardSlots = 2048;

// A worker that dies within this long of its start counts towards a crash loop.
constexpr int64_t kQuickCrashMs = 10'000;
constexpr int64_t kMaxBackoffMs = 10'000;

// The binary upgrade hands its listening sockets to the new master here.
constexpr const char* kListenFdsVariable = "QILIN_LISTEN_FDS";
constexpr const char* kUpgradeFromVariable = "QILIN_UPGRADE_FROM";

std::string describe_exit(int status) {
  if (WIFEXITED(status)) return fmt::format("exited with code {}", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    const char* name = sigabbrev_np(WTERMSIG(status));
    return name ? fmt::format("was sent SIG{}", name)
                : fmt::format("was sent signal {}", WTERMSIG(status));
  }
  return "changed state";
}

bool abnormal(int status) {
  return WIFSIGNALED(status) || (WIFEXITED(status) && WEXITSTATUS(status) != 0);
}

// `path` from the working directory; as given if that is unknown.
std::string absolute(const std::string& path) {
  std::error_code unknown;
  const auto resolved = std::filesystem::absolute(path, unknown);
  return unknown ? path : resolved.string();
}

// Binds one configured address (bind or status_bind); throws naming it.
sys::Listener open_listener(const config::BindAddress& address, const std::string& spec,
                            int backlog, bool reuse_port) {
  try {
    switch (address.kind) {
      case config::BindAddress::Kind::Unix: {
        // Bound by the path as given (sun_path is short), kept absolute: a
        // reload may change the directory before the file is handed over or removed.
        sys::Listener listener = sys::listen_unix(address.path, backlog, spec);
        listener.unix_path = absolute(listener.unix_path);
        return listener;
      }
      case config::BindAddress::Kind::Tcp6:
        return sys::listen_tcp(sys::Family::Tcp6, address.host, address.port, backlog, spec,
                               reuse_port);
      case config::BindAddress::Kind::Tcp4:
        return sys::listen_tcp(sys::Family::Tcp4, address.host, address.port, backlog, spec,
                               reuse_port);
    }
  } catch (const sys::SysError& error) {
    throw std::runtime_error(fmt::format("{}: {}", spec, error.what()));
  }
  throw std::runtime_error(fmt::format("{}: unknown address kind", spec));
}

// Whether `listener` already listens where `spec` (parsed: `address`) asks:
// bound from that very spec, or, spelled otherwise or inherited, bound to
// that address as the kernel reports it. Port 0 asks for a new port.
bool listens_at(const sys::Listener& listener, const config::BindAddress& address,
                const std::string& spec) {
  if (listener.name == spec) return true;
  switch (address.kind) {
    case config::BindAddress::Kind::Unix:
      return !listener.unix_path.empty() && listener.unix_path == absolute(address.path);
    case config::BindAddress::Kind::Tcp6:
      return address.port != 0 &&
             sys::bound_to(listener.fd.get(), sys::Family::Tcp6, address.host, address.port);
    case config::BindAddress::Kind::Tcp4:
      return address.port != 0 &&
             sys::bound_to(listener.fd.get(), sys::Family::Tcp4, address.host, address.port);
  }
  return false;
}

std::string self_executable() {
  std::error_code error;
  auto path = std::filesystem::read_symlink("/proc/self/exe", error);
  return error ? std::string() : path.string();
}

}  // namespace

Master::Master(config::CommandLine command_line, config::Config config,
               std::vector<std::string> argv)
    : command_line_(std::move(command_line)),
      config_(std::move(config)),
      argv_(std::move(argv)),
      executable_(self_executable()),
      start_directory_(::open(".", O_PATH | O_DIRECTORY | O_CLOEXEC)),
      scoreboard_(kScoreboardSlots),
      target_workers_(config_.workers) {}

Master::~Master() {
  if (owns_socket_files())
    for (const auto& listener : listeners_)
      if (!listener.unix_path.empty()) ::unlink(listener.unix_path.c_str());
  remove_pidfile();
}

int Master::run() {
  try {
    set_up_process();
  } catch (const std::exception& error) {
    fmt::print(stderr, "qilin: cannot start: {}\n", error.what());
    return 1;
  }
  spdlog::info("Starting qilin {}", QILIN_VERSION);
  try {
    preloaded_app_ = preload_app();
  } catch (const std::exception& error) {
    spdlog::critical("{}", error.what());
    spdlog::error("Reason: App failed to load.");
    return workers::kExitAppLoadError;
  }
  scoreboard_.header().master_pid = ::getpid();
  raise_file_limit();
  try {
    acquire_listeners();
    bind_status_listener();
  } catch (const std::exception& error) {
    spdlog::critical("cannot listen: {}", error.what());
    return 1;
  }
  hand_over_socket_files();
  install_signal_handlers();
  place_pidfile();
  spdlog::info("Using worker: {}", config_.worker_class);
  manage_workers();

  while (!exit_code_) {
    const int64_t now = monotonic_ms();
    const int64_t until_spawn = next_spawn_ms_ > now ? next_spawn_ms_ - now : 1000;
    // Signals, exits and a worker's kWorkerBooted wake the loop; once a
    // second it looks anyway (heartbeats, boot timeouts, an upgrade's end).
    wait_for_signal(static_cast<int>(std::min<int64_t>(1000, until_spawn)));
    if (exit_code_) break;
    reap_workers();
    murder_workers();
    manage_workers();
    manage_status();
    watch_upgrade();
    notify_systemd_when_ready();
  }
  if (!reason_.empty()) spdlog::error("Reason: {}", reason_);
  spdlog::info("Shutting down: Master");
  return *exit_code_;
}

// worker_connections means descriptors: lift the soft limit to the hard one
// (nginx's worker_rlimit_nofile), inherited by every worker.
void Master::raise_file_limit() {
  rlimit files{};
  if (::getrlimit(RLIMIT_NOFILE, &files) != 0 || files.rlim_cur == files.rlim_max) return;
  files.rlim_cur = files.rlim_max;
  if (::setrlimit(RLIMIT_NOFILE, &files) != 0)
    spdlog::warn("{}", sys::describe("setrlimit", errno));
}

// Sockets handed over by an upgrading master or by systemd come first; only
// without them does the master bind the configured addresses itself.
void Master::acquire_listeners() {
  std::vector<int> inherited;
  if (const char* fds = std::getenv(kListenFdsVariable)) {
    for (const char* at = fds; *at;) {
      char* end;
      inherited.push_back(static_cast<int>(std::strtol(at, &end, 10)));
      at = *end == ',' ? end + 1 : end;
      if (end == at && *at) break;
    }
    if (const char* from = std::getenv(kUpgradeFromVariable)) upgrading_from_ = std::atoi(from);
    ::unsetenv(kListenFdsVariable);
    ::unsetenv(kUpgradeFromVariable);
  } else if (int count = sd_listen_fds(1); count > 0) {
    for (int i = 0; i < count; ++i) inherited.push_back(SD_LISTEN_FDS_START + i);
    listeners_from_systemd_ = true;
  }
  if (inherited.empty()) return bind_listeners();

  for (int fd : inherited) {
    sys::Listener listener = sys::adopt_listener(fd);
    spdlog::info("Listening at: {} (inherited fd {}) ({})", listener.name, fd, ::getpid());
    // An old master's socket file becomes this master's once that one has
    // gone (owns_socket_files); systemd's stays the .socket unit's.
    constexpr std::string_view kUnix = "unix:";
    if (!listeners_from_systemd_ && listener.name.starts_with(kUnix))
      listener.unix_path = absolute(listener.name.substr(kUnix.size()));
    listeners_.push_back(std::move(listener));
  }
  if (upgrading_from_) spdlog::info("Upgraded from master {}", upgrading_from_);
}

void Master::bind_listeners() {
  // An address this master listens on already keeps its socket: binding it
  // again fails (EADDRINUSE), and the connections queued there stay queued.
  // Nothing moves until every new address is bound: a reload whose new binds
  // fail keeps the old listeners.
  std::vector<std::optional<size_t>> kept(config_.bind.size());
  std::vector<sys::Listener> fresh(config_.bind.size());
  std::vector<bool> taken(listeners_.size());
  for (size_t i = 0; i < config_.bind.size(); ++i) {
    const std::string& spec = config_.bind[i];
    auto address = config::parse_bind(spec);
    if (!address) throw config::ConfigError(fmt::format("key 'bind': cannot parse '{}'", spec));
    for (size_t old = 0; old < listeners_.size() && !kept[i]; ++old) {
      if (taken[old] || !listens_at(listeners_[old], *address, spec)) continue;
      if (listeners_[old].per_worker != config_.reuse_port)
        throw std::runtime_error(fmt::format(
            "{}: reuse_port cannot change on an address that stays bound (restart qilin)", spec));
      taken[old] = true;
      kept[i] = old;
    }
    if (kept[i]) continue;
    sys::Listener listener = open_listener(*address, spec, config_.backlog, config_.reuse_port);
    const auto port = sys::local_port(listener.fd.get());
    switch (address->kind) {
      case config::BindAddress::Kind::Unix:
        spdlog::info("Listening at: unix:{} ({})", address->path, ::getpid());
        break;
      case config::BindAddress::Kind::Tcp6:
        spdlog::info("Listening at: http://[{}]:{} ({})", address->host, port, ::getpid());
        break;
      case config::BindAddress::Kind::Tcp4:
        spdlog::info("Listening at: http://{}:{} ({})", address->host, port, ::getpid());
        break;
    }
    fresh[i] = std::move(listener);
  }
  for (size_t old = 0; old < listeners_.size(); ++old)
    if (!taken[old] && !listeners_[old].unix_path.empty() && owns_socket_files())
      ::unlink(listeners_[old].unix_path.c_str());
  std::vector<sys::Listener> bound;
  for (size_t i = 0; i < config_.bind.size(); ++i) {
    if (!kept[i]) {
      bound.push_back(std::move(fresh[i]));
      continue;
    }
    sys::Listener& listener = listeners_[*kept[i]];
    // listen() again on a listening socket sets its backlog (a reservation
    // for reuse_port's per-worker sockets does not listen itself).
    if (!listener.per_worker && ::listen(listener.fd.get(), config_.backlog) != 0)
      spdlog::warn("{}: {}", listener.name, sys::describe("listen", errno));
    bound.push_back(std::move(listener));
  }
  listeners_ = std::move(bound);
}

// The status listener. During a binary upgrade the old master still holds
// the address: the new one binds it when the old one exits (watch_upgrade).
void Master::bind_status_listener() {
  if (config_.status_bind.empty()) return;
  auto address = config::parse_bind(config_.status_bind);
  if (!address)
    throw config::ConfigError(
        fmt::format("key 'status_bind': cannot parse '{}'", config_.status_bind));
  try {
    status_listener_ = open_listener(*address, config_.status_bind, 64, false);
  } catch (const std::exception& error) {
    if (upgrading_from_ == 0) throw;
    spdlog::warn("status listener: {} (bound once the old master exits)", error.what());
    return;
  }
  if (address->kind == config::BindAddress::Kind::Unix)
    spdlog::info("Status at: unix:{} ({})", address->path, ::getpid());
  else
    spdlog::info("Status at: http://{}:{} ({})",
                 address->kind == config::BindAddress::Kind::Tcp6
                     ? fmt::format("[{}]", address->host)
                     : address->host,
                 sys::local_port(status_listener_.fd.get()), ::getpid());
}

void Master::install_signal_handlers() {
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_NONBLOCK | O_CLOEXEC) != 0) throw sys::SysError("pipe2", errno);
  signal_pipe_read_.reset(pipe_fds[0]);
  signal_pipe_write_.reset(pipe_fds[1]);
  signal_queue_fd = pipe_fds[1];
  struct sigaction action {};
  action.sa_handler = queue_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;
  for (int signal : kHandledSignals)
    if (::sigaction(signal, &action, nullptr) != 0) throw sys::SysError("sigaction", errno);
  for (int signal : kIgnoredSignals) ::signal(signal, SIG_IGN);
}

// Sleeps until a signal is queued or `timeout_ms` passes, then handles every
// queued signal in arrival order.
void Master::wait_for_signal(int timeout_ms) {
  pollfd watched{.fd = signal_pipe_read_.get(), .events = POLLIN, .revents = 0};
  if (::poll(&watched, 1, timeout_ms) < 0 && errno != EINTR)
    spdlog::error("{}", sys::describe("poll", errno));
  char queued[64];
  ssize_t n;
  while ((n = ::read(signal_pipe_read_.get(), queued, sizeof queued)) > 0)
    for (ssize_t i = 0; i < n && !exit_code_; ++i) dispatch(queued[i]);
}

void Master::dispatch(int signal) {
  switch (signal) {
    case workers::kWorkerBooted:
      return;  // the loop's checks after this wake-up see the ready worker
    case SIGCHLD:
      return handle_chld();
    case SIGHUP:
      return handle_hup();
    case SIGTERM:
      return handle_term();
    case SIGINT:
      return handle_int();
    case SIGQUIT:
      return handle_quit();
    case SIGTTIN:
      return handle_ttin();
    case SIGTTOU:
      return handle_ttou();
    case SIGUSR1:
      return handle_usr1();
    case SIGUSR2:
      return handle_usr2();
    default:
      spdlog::warn("ignoring unexpected signal {}", signal);
  }
}

void Master::handle_chld() { reap_workers(); }

// Reload: re-read the YAML, apply the same flags on top, start the new
// workers beside the old ones, and retire the old generation once the new one
// is ready. A broken file keeps the server running as it was.
void Master::handle_hup() {
  spdlog::info("Hang up: Master");
  sd_notify(0, "RELOADING=1");
  told_systemd_ready_ = false;
  config::Config fresh;
  try {
    return_to_start_directory();  // where the -c file and a relative `chdir` are
    auto names = workers::worker_class_names();
    fresh = config::build(command_line_, names);
  } catch (const std::exception& error) {
    spdlog::error("reload failed, keeping the running configuration: {}", error.what());
    try {
      enter_working_directory();
    } catch (const std::exception& lost) {
      spdlog::error("{}", lost.what());
    }
    return;
  }
  auto previous = std::move(config_);
  config_ = std::move(fresh);
  // Before any bind: a new umask applies to a new Unix socket's file.
  set_up_process_or_log("new");
  // Before the old app is let go: a new one that cannot load leaves the
  // running workers as they are, and no worker boots to fail.
  std::optional<app::Handler> app;
  try {
    app = preload_app();
  } catch (const std::exception& error) {
    spdlog::error("reload failed, keeping the running configuration: {}", error.what());
    config_ = std::move(previous);
    set_up_process_or_log("previous");
    return;
  }
  const bool rebind = config_.bind != previous.bind || config_.backlog != previous.backlog ||
                      config_.reuse_port != previous.reuse_port;
  if (rebind && listeners_from_systemd_)
    spdlog::warn("bind changed: systemd's sockets stay (change them in the .socket unit)");
  if (rebind && !listeners_from_systemd_) {
    try {
      bind_listeners();
    } catch (const std::exception& error) {
      spdlog::error("reload failed, keeping the running configuration: cannot listen: {}",
                    error.what());
      config_ = std::move(previous);
      set_up_process_or_log("previous");
      return;
    }
  }
  if (config_.worker_class != previous.worker_class)
    spdlog::info("Switching worker class: {} -> {}", previous.worker_class, config_.worker_class);
  if (config_.status_bind != previous.status_bind && !upgrading_from_) {
    stop_status();
    if (!status_listener_.unix_path.empty()) ::unlink(status_listener_.unix_path.c_str());
    status_listener_ = {};
    try {
      bind_status_listener();
    } catch (const std::exception& error) {
      spdlog::error("status listener off: cannot listen: {}", error.what());
    }
  }
  // The status process took its StatsD settings at fork: a new one takes the new ones.
  if (config_.statsd_host != previous.statsd_host ||
      config_.statsd_prefix != previous.statsd_prefix)
    stop_status();
  // Without a rebind the generation serving now can take over again if the
  // new one fails to boot (new listeners would leave it nothing to go back
  // to). If the last reload's workers are not all up yet, the one before
  // still serves and stays the fallback.
  if (rebind)
    reload_fallback_.reset();
  else if (ready_workers(generation_) >= target_workers_ || !reload_fallback_)
    reload_fallback_ = ReloadFallback{previous, generation_, target_workers_, preloaded_app_};
  preloaded_app_ = std::move(app);
  target_workers_ = config_.workers;
  ++generation_;
  next_spawn_ms_ = 0;
  quick_crashes_ = 0;
  hand_over_socket_files();
  place_pidfile();
  manage_workers();
}

void Master::handle_term() { stop(true); }
void Master::handle_int() { stop(false); }
void Master::handle_quit() { stop(false); }

void Master::handle_ttin() {
  ++target_workers_;
  spdlog::info("Handling signal: ttin: {} workers", target_workers_);
  manage_workers();
}

void Master::handle_ttou() {
  if (target_workers_ > 1) --target_workers_;
  spdlog::info("Handling signal: ttou: {} workers", target_workers_);
  manage_workers();
}

void Master::handle_usr1() {
  spdlog::info("Handling signal: usr1");
  if (sys::reopen_logs()) spdlog::info("reopened log files");
  kill_workers(SIGUSR1);
}

// Binary upgrade: exec the (possibly replaced) binary with our listening
// sockets. Both masters serve until the operator stops one of them.
void Master::handle_usr2() {
  if (new_master_pid_ != 0) {
    spdlog::warn("USR2 ignored: an upgraded master (pid: {}) is already running", new_master_pid_);
    return;
  }
  if (upgrading_from_ != 0) {
    spdlog::warn(
        "USR2 ignored: this master is itself an upgrade; stop the old master (pid: {}) first",
        upgrading_from_);
    return;
  }
  if (executable_.empty()) {
    spdlog::error("USR2 ignored: the path of this binary is unknown");
    return;
  }
  std::string fds;
  for (const auto& listener : listeners_) {
    if (!fds.empty()) fds += ',';
    fds += std::to_string(listener.fd.get());
  }
  spdlog::default_logger()->flush();
  pid_t pid = ::fork();
  if (pid < 0) {
    spdlog::error("{}", sys::describe("fork", errno));
    return;
  }
  if (pid == 0) {
    for (const auto& listener : listeners_) sys::set_cloexec(listener.fd.get(), false);
    ::setenv(kListenFdsVariable, fds.c_str(), 1);
    ::setenv(kUpgradeFromVariable, std::to_string(::getppid()).c_str(), 1);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    for (int signal : kHandledSignals) ::signal(signal, SIG_DFL);
    // The command line (a relative -c, say) means what it meant at the first start.
    if (start_directory_) ::fchdir(start_directory_.get());
    std::vector<char*> args;
    for (auto& arg : argv_) args.push_back(arg.data());
    args.push_back(nullptr);
    ::execv(executable_.c_str(), args.data());
    spdlog::critical("cannot re-execute {}: {}", executable_, std::strerror(errno));
    ::_exit(workers::kExitBootError);
  }
  new_master_pid_ = pid;
  scoreboard_.header().upgraded_master_pid = pid;
  spdlog::info("Handling signal: usr2: started the upgraded master (pid: {})", pid);
}

void Master::spawn_worker() {
  ScoreboardSlot* slot = scoreboard_.claim(config_.worker_class);
  if (!slot) {
    spdlog::error("no free scoreboard slot: not spawning a worker");
    return;
  }
  spdlog::default_logger()->flush();
  // Signals stay blocked across fork: in the child they wait for the
  // worker's own handlers (Worker::boot unblocks them) rather than reaching
  // the master's handler it inherited.
  sigset_t all, previous;
  sigfillset(&all);
  ::sigprocmask(SIG_BLOCK, &all, &previous);
  pid_t pid = ::fork();
  if (pid != 0) ::sigprocmask(SIG_SETMASK, &previous, nullptr);
  if (pid < 0) {
    spdlog::error("{}", sys::describe("fork", errno));
    scoreboard_.release(*slot);
    return;
  }
  if (pid == 0) {
    // The child: forget the master's signal plumbing, become a worker, and
    // never return into the master's stack.
    signal_pipe_read_.reset();
    sys::Fd master_wakeup = std::move(signal_pipe_write_);  // for kWorkerBooted
    status_listener_.fd.reset();
    start_directory_.reset();  // the master's way back, not a worker's
    for (int signal : kHandledSignals) ::signal(signal, SIG_DFL);
    slot->pid = ::getpid();
    int code = workers::kExitBootError;
    try {
      // Still root here: a reuse_port worker binds its own socket, maybe to port 80.
      std::vector<sys::Listener> own = worker_listeners();
      if (workers_user_) sys::become(*workers_user_);
      // Here, not in the master: a reload that drops a variable must drop it.
      for (const std::string& variable : config_.raw_env) {
        const size_t equals = variable.find('=');  // validated: present, not first
        ::setenv(variable.substr(0, equals).c_str(), variable.c_str() + equals + 1, 1);
      }
      const auto* worker_class = workers::find_worker_class(config_.worker_class);
      auto worker =
          worker_class->make({.config = config_,
                              .listeners = own,
                              .slot = *slot,
                              .master_wakeup_fd = master_wakeup.release(),
                              .preloaded_app = preloaded_app_ ? &*preloaded_app_ : nullptr});
      code = worker->main();
    } catch (const std::exception& error) {
      spdlog::error("worker failed to boot: {}", error.what());
    }
    spdlog::default_logger()->flush();
    if (auto* access = sys::access_log()) access->flush();
    ::_exit(code);
  }
  slot->pid = pid;
  workers_.emplace(
      pid, WorkerProcess{.slot = slot, .generation = generation_, .spawned_ms = monotonic_ms()});
}

std::vector<sys::Listener> Master::worker_listeners() const {
  std::vector<sys::Listener> own;
  for (const auto& listener : listeners_) {
    if (listener.per_worker) {
      own.push_back(sys::listen_beside(listener, config_.backlog));
      spdlog::info("Listening at: http://{} with SO_REUSEPORT ({})", listener.name, ::getpid());
    } else {
      // The same descriptor number, without owning it: the master's copy
      // closes with the process.
      own.push_back(sys::Listener{sys::Fd(::dup(listener.fd.get())), listener.name, {}});
    }
  }
  return own;
}

void Master::reap_workers() {
  int status = 0;
  pid_t pid;
  while ((pid = ::waitpid(-1, &status, WNOHANG)) > 0) {
    if (pid == new_master_pid_) {
      spdlog::warn("the upgraded master (pid: {}) {}: upgrade rolled back, serving on", pid,
                   describe_exit(status));
      new_master_pid_ = 0;
      scoreboard_.header().upgraded_master_pid = 0;
      continue;
    }
    if (pid == status_pid_) {
      spdlog::warn("Status process (pid: {}) {}: respawning it", pid, describe_exit(status));
      status_pid_ = 0;
      next_status_spawn_ms_ = monotonic_ms() + 1000;
      continue;
    }
    auto found = workers_.find(pid);
    if (found == workers_.end()) continue;
    auto& worker = found->second;
    const bool never_booted = worker.slot->state.load() == WorkerState::Booting;
    const int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    if (never_booted && (code == workers::kExitBootError || code == workers::kExitAppLoadError) &&
        !exit_code_ && !worker.retiring) {
      scoreboard_.release(*worker.slot);
      workers_.erase(found);
      const std::string reason =
          code == workers::kExitAppLoadError ? "App failed to load." : "Worker failed to boot.";
      if (!roll_back_reload(reason)) halt(code, reason);
      return;
    }
    if (worker.retiring || !abnormal(status)) {
      spdlog::info("Worker exiting (pid: {}) {}", pid, describe_exit(status));
    } else {
      spdlog::error("Worker (pid:{}) {}", pid, describe_exit(status));
      // A crash loop is respawned ever later instead of in a hot loop; a
      // worker that lived a while resets the count.
      const int64_t now = monotonic_ms();
      quick_crashes_ = now - worker.spawned_ms < kQuickCrashMs ? quick_crashes_ + 1 : 0;
      if (quick_crashes_ >= 2) {
        const int64_t backoff =
            std::min<int64_t>(kMaxBackoffMs, 100LL << std::min(quick_crashes_ - 2, 10));
        next_spawn_ms_ = now + backoff;
        spdlog::warn("{} workers crashed soon after starting: next spawn in {} ms", quick_crashes_,
                     backoff);
      }
    }
    if (auto reason = restart_reason(worker, status)) scoreboard_.record_restart(pid, *reason);
    scoreboard_.release(*worker.slot);
    workers_.erase(found);
  }
}

// Why a reaped worker is being replaced; nullopt when it is not (TTOU, a stop).
std::optional<RestartReason> Master::restart_reason(const WorkerProcess& worker, int status) const {
  if (stopping_) return std::nullopt;
  if (worker.retiring) return worker.reloaded ? std::optional(RestartReason::Reload) : std::nullopt;
  if (worker.abort_sent_ms != 0) return RestartReason::Timeout;
  if (abnormal(status)) return RestartReason::Crash;
  // A worker leaves on its own, cleanly, only after max_requests.
  return RestartReason::MaxRequests;
}

// A worker whose heartbeat is older than `timeout` is stuck (in sync: a
// request ran too long). ABRT first, so it can say so; KILL a second later.
void Master::murder_workers() {
  if (config_.timeout <= 0) return;
  const int64_t now = monotonic_ms();
  for (auto& [pid, worker] : workers_) {
    if (now - worker.slot->heartbeat_ms.load() <= int64_t{config_.timeout} * 1000) continue;
    if (worker.abort_sent_ms == 0) {
      spdlog::critical("WORKER TIMEOUT (pid:{})", pid);
      ::kill(pid, SIGABRT);
      worker.abort_sent_ms = now;
    } else if (now - worker.abort_sent_ms > 1000) {
      ::kill(pid, SIGKILL);
    }
  }
}

// Workers of `generation` that serve and are not on their way out.
int Master::ready_workers(uint64_t generation) const {
  int ready = 0;
  for (const auto& [pid, worker] : workers_)
    ready += !worker.retiring && worker.generation == generation &&
             worker.slot->state.load() == WorkerState::Ready;
  return ready;
}

void Master::manage_workers() {
  if (exit_code_) return;
  scoreboard_.header().target_workers = target_workers_;
  std::vector<pid_t> current;
  std::map<uint64_t, int> ready_by_generation;
  for (auto& [pid, worker] : workers_) {
    if (worker.retiring) continue;
    if (worker.generation == generation_) current.push_back(pid);
    if (worker.slot->state.load() == WorkerState::Ready) ++ready_by_generation[worker.generation];
  }
  const int missing = target_workers_ - static_cast<int>(current.size());
  if (missing > 0 && monotonic_ms() >= next_spawn_ms_) {
    // During a crash loop, one at a time: each spawn waits out the back-off.
    const int spawn = quick_crashes_ >= 2 ? 1 : missing;
    for (int i = 0; i < spawn; ++i) spawn_worker();
  }
  // std::map orders by pid, not age: retire by spawn time, oldest first (TTOU).
  std::sort(current.begin(), current.end(), [&](pid_t a, pid_t b) {
    return workers_.at(a).spawned_ms < workers_.at(b).spawned_ms;
  });
  const int extra = static_cast<int>(current.size()) - target_workers_;
  for (int i = 0; i < extra; ++i)
    retire(current[static_cast<size_t>(i)], workers_.at(current[static_cast<size_t>(i)]));
  retire_superseded_generations(ready_by_generation);
}

// After a reload the old generation goes once the new one can serve: every
// worker older than the newest generation with all its workers ready. A HUP
// that comes while the previous reload's workers still boot supersedes them:
// they have served nothing and never will, so they go at once. Kept, every
// HUP faster than a boot would leave one more generation alive.
void Master::retire_superseded_generations(const std::map<uint64_t, int>& ready_by_generation) {
  uint64_t serving = 0;
  for (const auto& [generation, ready] : ready_by_generation)
    if (ready >= target_workers_) serving = generation;
  if (serving == generation_) reload_fallback_.reset();  // the reload took: nothing to go back to
  for (auto& [pid, worker] : workers_) {
    if (worker.retiring || worker.generation == generation_) continue;
    const bool booting = worker.slot->state.load() == WorkerState::Booting;
    if (worker.generation >= serving && !booting) continue;
    if (booting)
      spdlog::info("Retiring worker (pid: {}) of a superseded reload before it served", pid);
    worker.reloaded = true;
    retire(pid, worker);
  }
}

void Master::spawn_status() {
  StatusOptions options;
  if (status_listener_.fd) options.listener = status_listener_.fd.get();
  if (auto statsd = config::parse_statsd_host(config_.statsd_host))
    options.statsd = StatsdSettings{.ipv6 = statsd->kind == config::BindAddress::Kind::Tcp6,
                                    .host = statsd->host,
                                    .port = statsd->port,
                                    .prefix = config_.statsd_prefix,
                                    .count_from_start = !status_spawned_};
  spdlog::default_logger()->flush();
  const pid_t master = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) {
    spdlog::error("{}", sys::describe("fork", errno));
    return;
  }
  if (pid == 0) {
    // The child holds no client socket: only the status listener, if any.
    signal_pipe_read_.reset();
    signal_pipe_write_.reset();
    start_directory_.reset();
    listeners_.clear();
    for (int signal : kHandledSignals) ::signal(signal, SIG_DFL);
    for (int signal : {SIGHUP, SIGUSR1, SIGUSR2, SIGTTIN, SIGTTOU}) ::signal(signal, SIG_IGN);
    ::prctl(PR_SET_NAME, "qilin-status");
    int code = 1;
    try {
      if (workers_user_) sys::become(*workers_user_);
      // After become(): a change of credentials clears the parent-death signal.
      ::prctl(PR_SET_PDEATHSIG, SIGTERM);
      spdlog::info("Status process started (pid: {})", ::getpid());
      code = run_status_server(options, scoreboard_, master);
    } catch (const std::exception& error) {
      spdlog::error("status process: {}", error.what());
    }
    spdlog::default_logger()->flush();
    ::_exit(code);
  }
  status_pid_ = pid;
  status_spawned_ = true;
}

void Master::manage_status() {
  const bool wanted = status_listener_.fd || !config_.statsd_host.empty();
  if (exit_code_ || status_pid_ != 0 || !wanted || monotonic_ms() < next_status_spawn_ms_) return;
  spawn_status();
}

// TERM keeps its default action in the status process: it dies at once.
void Master::stop_status() {
  if (status_pid_ == 0) return;
  ::kill(status_pid_, SIGTERM);
  ::waitpid(status_pid_, nullptr, 0);
  status_pid_ = 0;
}

void Master::retire(pid_t pid, WorkerProcess& worker) {
  worker.retiring = true;
  ::kill(pid, SIGTERM);
}

void Master::kill_workers(int signal) {
  for (const auto& [pid, worker] : workers_) ::kill(pid, signal);
}

// The upgraded master takes the pidfile over once the master it came from
// has exited, which it sees as being re-parented.
void Master::watch_upgrade() {
  if (upgrading_from_ == 0 || ::getppid() == upgrading_from_) return;
  spdlog::info("the old master (pid: {}) exited: this master takes over", upgrading_from_);
  upgrading_from_ = 0;
  if (!config_.status_bind.empty() && !status_listener_.fd) {
    try {
      bind_status_listener();
    } catch (const std::exception& error) {
      spdlog::error("status listener off: cannot listen: {}", error.what());
    }
  }
  hand_over_socket_files();  // the inherited ones are this master's now
  if (!pidfile_written_.empty()) {
    const std::string path = absolute(pidfile_path());
    if (::rename(pidfile_written_.c_str(), path.c_str()) == 0)
      pidfile_written_ = path;
    else
      place_pidfile();
  }
  sd_notify(0, fmt::format("MAINPID={}", ::getpid()).c_str());
}

void Master::notify_systemd_when_ready() {
  if (told_systemd_ready_) return;
  const int ready = ready_workers(generation_);
  if (ready < target_workers_) return;
  told_systemd_ready_ = true;
  sd_notify(
      0, fmt::format("READY=1\nSTATUS={} {} workers serving", ready, config_.worker_class).c_str());
}

// TERM: workers finish what they accepted, KILL after graceful_timeout.
// INT/QUIT: workers drop everything at once.
void Master::stop(bool graceful) {
  spdlog::info("Handling signal: {}", graceful ? "term" : "int/quit");
  // Under systemd the main process leaving means the service stopped, so an
  // old master retiring after an upgrade names its successor first.
  if (new_master_pid_ != 0 && ::kill(new_master_pid_, 0) == 0)
    sd_notify(0, fmt::format("MAINPID={}", new_master_pid_).c_str());
  else
    sd_notify(0, "STOPPING=1");
  stopping_ = true;
  stop_status();
  // Unix socket files go first, so no new client finds them; the workers keep
  // their inherited descriptors open while they drain. Not when the files
  // are shared with another master (an upgrade) or belong to systemd.
  if (owns_socket_files()) {
    for (const auto& listener : listeners_)
      if (!listener.unix_path.empty()) ::unlink(listener.unix_path.c_str());
    if (!status_listener_.unix_path.empty()) ::unlink(status_listener_.unix_path.c_str());
  }
  if (graceful && last_holder_of_listeners()) {
    // The workers close the listeners when they leave, and the kernel resets
    // every connection still queued on a socket when its last descriptor
    // closes. So: no new connections from here, and each worker empties the
    // queue before it closes (Worker::take_backlog_and_close_listeners).
    for (const auto& listener : listeners_) {
      if (listener.per_worker || listener.name.starts_with("unix:")) continue;
      try {
        sys::refuse_new_connections(listener.fd.get());
      } catch (const std::exception& error) {
        spdlog::warn("{}: connections arriving while stopping may be reset", error.what());
      }
    }
  }
  listeners_.clear();
  status_listener_ = {};
  kill_workers(graceful ? SIGTERM : SIGQUIT);
  const int64_t deadline = monotonic_ms() + int64_t{config_.graceful_timeout} * 1000;
  while (!workers_.empty() && monotonic_ms() < deadline) {
    pollfd watched{.fd = signal_pipe_read_.get(), .events = POLLIN, .revents = 0};
    ::poll(&watched, 1, 100);
    char drained[64];
    while (::read(signal_pipe_read_.get(), drained, sizeof drained) > 0) {
    }
    reap_workers();
  }
  if (!workers_.empty()) {
    spdlog::warn("{} workers still running after graceful_timeout: killing them", workers_.size());
    kill_workers(SIGKILL);
    while (!workers_.empty()) {
      int status;
      pid_t pid = ::waitpid(-1, &status, 0);
      if (pid < 0) break;
      if (auto found = workers_.find(pid); found != workers_.end()) {
        scoreboard_.release(*found->second.slot);
        workers_.erase(found);
      }
    }
  }
  if (!exit_code_) exit_code_ = 0;
}

// A reload whose workers cannot boot (gunicorn would halt here, taking the
// service down) goes back to the configuration it replaced, as long as the
// generation before it still serves: its workers never stopped, so nothing
// is lost. The new generation's other workers are retired unserved.
bool Master::roll_back_reload(const std::string& reason) {
  if (!reload_fallback_ || ready_workers(reload_fallback_->generation) == 0) return false;
  spdlog::error("reload failed: {} Keeping the previous configuration and its workers", reason);
  for (auto& [pid, worker] : workers_)
    if (!worker.retiring && worker.generation == generation_) retire(pid, worker);
  config_ = std::move(reload_fallback_->config);
  generation_ = reload_fallback_->generation;
  target_workers_ = reload_fallback_->target_workers;
  preloaded_app_ = std::move(reload_fallback_->preloaded_app);
  reload_fallback_.reset();
  set_up_process_or_log("previous");
  hand_over_socket_files();
  place_pidfile();
  return true;
}

void Master::halt(int exit_code, const std::string& reason) {
  reason_ = reason;
  exit_code_ = exit_code;  // set first: stop() must not overwrite it, reap must not re-halt
  stop(true);
}

// Whether our listening sockets end with us: not when systemd keeps them for
// the next start, nor while another master (either side of an upgrade)
// serves on them too.
bool Master::last_holder_of_listeners() const {
  const bool new_master_alive = new_master_pid_ != 0 && ::kill(new_master_pid_, 0) == 0;
  const bool old_master_alive = upgrading_from_ != 0 && ::getppid() == upgrading_from_;
  return !listeners_from_systemd_ && !new_master_alive && !old_master_alive;
}

// The workers' user is looked up here, once per configuration, and kept:
// a worker respawned later must not depend on the passwd database (NSS,
// perhaps LDAP) answering at that moment, nor find its account removed.
void Master::set_up_process() {
  enter_working_directory();
  workers_user_ = config::worker_identity(config_);
  if (auto mask = config::file_creation_mask(config_)) ::umask(static_cast<mode_t>(*mask));
  sys::setup_logging({.errorlog = config_.errorlog,
                      .accesslog = config_.accesslog,
                      .loglevel = config_.loglevel,
                      .owner = workers_user_});
}

// Always from the start directory: a relative `chdir` means the same
// directory on every reload, not one nested in the last.
void Master::enter_working_directory() {
  return_to_start_directory();
  config::enter_directory(config_);
}

void Master::return_to_start_directory() {
  if (start_directory_ && ::fchdir(start_directory_.get()) != 0)
    throw sys::SysError("fchdir", errno);
}

// In the master's working directory, as the master's user: gunicorn's
// preload_app. What the app's initialisation leaves in memory is shared
// copy-on-write by every worker; threads it starts are not (fork copies only
// the thread that forks), so an app that starts threads must not be preloaded.
std::optional<app::Handler> Master::preload_app() const {
  if (!config_.preload_app) return std::nullopt;
  app::Handler app = app::load_app(config_.app, {.static_dir = config_.static_dir});
  spdlog::info("Preloaded the app: {}", config_.app);
  return app;
}

// On a reload the server keeps running whatever happens to its logs.
void Master::set_up_process_or_log(std::string_view which) {
  try {
    set_up_process();
  } catch (const std::exception& error) {
    spdlog::error("cannot set up the {} configuration: {}", which, error.what());
  }
}

// The Unix socket files this master made belong to the workers' user (the
// master's own when `user` is unset), with the mode umask gives, so that a
// proxy in that user's group can connect when umask keeps others out
// (gunicorn hands them over at bind). Again after every reload: one that
// changes the user or the mask does not re-make the sockets.
void Master::hand_over_socket_files() {
  const auto mask = config::file_creation_mask(config_);
  const sys::Identity owner =
      workers_user_.value_or(sys::Identity{.uid = ::geteuid(), .gid = ::getegid(), .user = {}});
  // The status listener is always this master's own (an upgraded one binds
  // it when the old one exits); bind's may be systemd's or the old master's.
  std::vector<const sys::Listener*> made{&status_listener_};
  if (owns_socket_files())
    for (const auto& listener : listeners_) made.push_back(&listener);
  for (const sys::Listener* listener : made) {
    const std::string& path = listener->unix_path;
    if (path.empty()) continue;
    try {
      sys::hand_over(path, owner);
    } catch (const std::exception& error) {
      spdlog::warn("{}: {}", path, error.what());
    }
    if (mask && ::chmod(path.c_str(), 0777 & ~static_cast<mode_t>(*mask)) != 0)
      spdlog::warn("{}: {}", path, sys::describe("chmod", errno));
  }
}

bool Master::owns_socket_files() const {
  const bool new_master_alive = new_master_pid_ != 0 && ::kill(new_master_pid_, 0) == 0;
  return !listeners_from_systemd_ && upgrading_from_ == 0 && !new_master_alive;
}

// During an upgrade the new master writes PIDFILE.2, so both pids are known.
std::string Master::pidfile_path() const {
  return upgrading_from_ ? config_.pidfile + ".2" : config_.pidfile;
}

// Where the configuration says, at start and after a reload: a reload that
// changes `pidfile` or `chdir` moves the file, as gunicorn's does.
void Master::place_pidfile() {
  const std::string wanted = config_.pidfile.empty() ? std::string() : absolute(pidfile_path());
  if (wanted == pidfile_written_) return;
  remove_pidfile();
  if (!wanted.empty()) write_pidfile();
}

void Master::write_pidfile() {
  const std::string path = absolute(pidfile_path());
  std::ofstream file(path, std::ios::trunc);
  file << ::getpid() << '\n';
  if (!file) return spdlog::error("cannot write pidfile {}: {}", path, std::strerror(errno));
  pidfile_written_ = path;
}

void Master::remove_pidfile() {
  if (pidfile_written_.empty()) return;
  std::ifstream file(pidfile_written_);
  pid_t written = 0;
  // Only our own: after an upgrade the file names the new master.
  if (file >> written && written == ::getpid()) ::unlink(pidfile_written_.c_str());
  pidfile_written_.clear();
}

}  // namespace qilin::master

#include "sys/log.hpp"

#include <fcntl.h>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <atomic>
#include <utility>

#include "sys/error.hpp"

namespace qilin::sys {

namespace {

LogSettings current;
// Other threads (the threaded worker's pool) may be inside a call on the old
// loggers while USR1 replaces them: publish the access logger atomically and
// keep the previous loggers alive until the next reopen.
std::shared_ptr<spdlog::logger> access, previous_access, previous_error;
std::atomic<spdlog::logger*> access_raw{nullptr};
int raw_error_fd = STDERR_FILENO;

spdlog::level::level_enum level_from_name(const std::string& name) {
  if (name == "warning") return spdlog::level::warn;
  if (name == "error") return spdlog::level::err;
  return spdlog::level::from_str(name);  // debug, info, critical
}

std::shared_ptr<spdlog::logger> make_logger(const std::string& name, const std::string& path,
                                            bool to_stdout) {
  spdlog::sink_ptr sink;
  if (path == "-")
    sink = to_stdout ? spdlog::sink_ptr(std::make_shared<spdlog::sinks::stdout_sink_mt>())
                     : spdlog::sink_ptr(std::make_shared<spdlog::sinks::stderr_sink_mt>());
  else
    sink = std::make_shared<spdlog::sinks::basic_file_sink_mt>(path);
  return std::make_shared<spdlog::logger>(name, std::move(sink));
}

}  // namespace

void setup_logging(const LogSettings& settings) {
  auto error_log = make_logger("error", settings.errorlog, false);
  // gunicorn's error-log line: [2026-11-25 07:26:54 +0000] [4242] [INFO] Booting worker
  error_log->set_pattern("[%Y-%m-%d %H:%M:%S %z] [%P] [%^%L%$] %v");
  error_log->set_level(level_from_name(settings.loglevel));
  error_log->flush_on(spdlog::level::info);
  std::shared_ptr<spdlog::logger> access_logger;
  if (!settings.accesslog.empty()) {
    access_logger = make_logger("access", settings.accesslog, true);
    access_logger->set_pattern("%v");
    // Flushed by each worker once a second (Worker::notify), not per line:
    // a write(2) per request would cost more than the request.
    access_logger->flush_on(spdlog::level::off);
  }
  previous_error = spdlog::default_logger();
  spdlog::set_default_logger(error_log);
  previous_access = std::exchange(access, std::move(access_logger));
  access_raw.store(access.get(), std::memory_order_release);
  current = settings;
  if (raw_error_fd != STDERR_FILENO) ::close(raw_error_fd);
  raw_error_fd = STDERR_FILENO;
  if (settings.errorlog != "-") {
    int fd = ::open(settings.errorlog.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd >= 0) raw_error_fd = fd;
  }
  if (settings.owner) {
    for (const std::string* path : {&settings.errorlog, &settings.accesslog}) {
      if (path->empty() || *path == "-") continue;
      try {
        hand_over(*path, *settings.owner);
      } catch (const SysError& error) {  // the workers still write; only a reopen would fail
        spdlog::warn("{}: {}: workers may not reopen it", *path, error.what());
      }
    }
  }
}

bool reopen_logs() noexcept {
  try {
    setup_logging(current);  // builds both loggers before it replaces either
    return true;
  } catch (const std::exception& error) {
    spdlog::error("cannot reopen log files, writing on to the old ones: {}", error.what());
    return false;
  }
}

spdlog::logger* access_log() noexcept { return access_raw.load(std::memory_order_acquire); }

int error_log_fd() noexcept { return raw_error_fd; }

}  // namespace qilin::sys

// The error log and the access log (spdlog). "-" means stderr for the error
// log and stdout for the access log, as in gunicorn; an empty access log
// path turns it off. Reopening (USR1, after logrotate moved the files)
// rebuilds both loggers from the same paths.
#pragma once

#include <spdlog/logger.h>

#include <optional>
#include <string>

#include "sys/identity.hpp"

namespace qilin::sys {

struct LogSettings {
  std::string errorlog = "-";
  std::string accesslog;
  std::string loglevel = "info";  // gunicorn's names: debug, info, warning, error, critical
  // Workers running as another user reopen the files on USR1: a root master
  // hands them the files it creates (gunicorn and nginx do the same).
  std::optional<Identity> owner;
};

// Throws spdlog::spdlog_ex when a log file cannot be opened (a boot error).
void setup_logging(const LogSettings& settings);
// USR1: both loggers again from the same paths. A file that cannot be
// opened (its directory gone, no permission for the workers' user) leaves
// the previous loggers writing where they were: the error is logged there
// and false returned. Never throws: a failed rotation must not stop a server.
bool reopen_logs() noexcept;
// nullptr when the access log is off: callers skip formatting the line.
spdlog::logger* access_log() noexcept;
// A descriptor appending to the error log, for the one place that cannot use
// spdlog: a signal handler in a stuck worker (write(2) is async-signal-safe).
int error_log_fd() noexcept;

}  // namespace qilin::sys

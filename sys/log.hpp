// The error log and the access log (spdlog). "-" means stderr for the error
// log and stdout for the access log, as in gunicorn; an empty access log
// path turns it off. Reopening (USR1, after logrotate moved the files)
// rebuilds both loggers from the same paths.
#pragma once

#include <spdlog/logger.h>

#include <string>

namespace qilin::sys {

struct LogSettings {
  std::string errorlog = "-";
  std::string accesslog;
  std::string loglevel = "info";  // gunicorn's names: debug, info, warning, error, critical
};

// Throws spdlog::spdlog_ex when a log file cannot be opened (a boot error).
void setup_logging(const LogSettings& settings);
void reopen_logs();
// nullptr when the access log is off: callers skip formatting the line.
spdlog::logger* access_log() noexcept;
// A descriptor appending to the error log, for the one place that cannot use
// spdlog: a signal handler in a stuck worker (write(2) is async-signal-safe).
int error_log_fd() noexcept;

}  // namespace qilin::sys

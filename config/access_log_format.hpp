// gunicorn's access_log_format: text with %(atom)s placeholders and %% for a
// percent sign. Parsed here, once, when the configuration is read (so a typo
// is a config error naming the key, line and column); each worker renders
// the parsed pieces for every response (Worker::account).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace qilin::config {

// gunicorn's atoms, by the letter that names them.
enum class LogAtom : uint8_t {
  kText,            // literal text between atoms
  kRemoteAddress,   // h
  kDash,            // l: "-" (identd, never used)
  kUser,            // u: the user of Basic authentication, or "-"
  kTime,            // t: [25/Nov/2026:07:26:54 +0000]
  kRequestLine,     // r: GET /x?y=1 HTTP/1.1
  kMethod,          // m
  kPath,            // U: the target without its query
  kQuery,           // q: the query, without '?'
  kProtocol,        // H: HTTP/1.1
  kStatus,          // s
  kBytesOrDash,     // b: body bytes, "-" for none or a stream
  kBytes,           // B: body bytes, "-" for a stream
  kReferer,         // f
  kUserAgent,       // a
  kSeconds,         // T: request time, whole seconds
  kMilliseconds,    // M
  kMicroseconds,    // D
  kDecimalSeconds,  // L: 0.000123
  kPid,             // p: the worker's pid, as <pid> in gunicorn
  kRequestHeader,   // {name}i
  kResponseHeader,  // {name}o: a field the app set
  kEnvironment,     // {name}e: an environment variable
};

struct LogPiece {
  LogAtom atom = LogAtom::kText;
  std::string text;  // the literal, or the field or variable name of {name}x
};

inline constexpr std::string_view kDefaultAccessLogFormat =
    R"(%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s")";

// Throws std::invalid_argument saying what is wrong and at which character
// (1-based) of the format.
std::vector<LogPiece> parse_access_log_format(std::string_view format);

}  // namespace qilin::config

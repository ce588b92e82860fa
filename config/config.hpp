// qilin's settings: one plain struct with gunicorn's names and defaults,
// loaded from YAML (-c FILE), overridden by command-line flags, validated
// before anything is bound. Errors name the key and its YAML line and column.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "config/access_log_format.hpp"
#include "sys/identity.hpp"

namespace qilin::config {

struct Config {
  std::vector<std::string> bind{"127.0.0.1:8000"};  // HOST:PORT, [v6]:PORT, unix:PATH
  int workers = 1;
  std::string worker_class = "sync";
  int threads = 1;
  int worker_connections = 1000;
  int backlog = 2048;
  int timeout = 30;           // seconds a worker may stay silent (0: never killed)
  int graceful_timeout = 30;  // seconds to finish in-flight requests on TERM
  int keepalive = 2;          // seconds an idle keep-alive connection is kept
  int max_requests = 0;       // 0: unlimited
  int max_requests_jitter = 0;
  int limit_request_line = 4094;        // 0..8190; 0: unlimited (as in gunicorn)
  int limit_request_fields = 100;       // 0..32768; 0: 32768 (as in gunicorn)
  int limit_request_field_size = 8190;  // 0: unlimited (as in gunicorn)
  int64_t limit_request_body = 1 << 20;
  std::string app = "hello";  // built-in name or path to a shared library
  // The master loads the app once and the workers inherit it at fork
  // (gunicorn's preload_app): one copy of its read-only memory, and a broken
  // app stops the start, or the reload, before any worker is forked.
  bool preload_app = false;
  std::string static_dir = "static";                       // the demo app's /static/ root
  std::string accesslog;                                   // empty: off; "-": stdout
  std::string access_log_format{kDefaultAccessLogFormat};  // see access_log_format.hpp
  std::string errorlog = "-";                              // "-": stderr
  std::string loglevel = "info";                           // debug, info, warning, error, critical
  std::string pidfile;                                     // empty: none
  // The directory the master and the workers work in, so relative paths
  // (pidfile, logs, unix: binds, static_dir, the app library) are found
  // there; relative to where qilin was started; empty: that directory.
  std::string chdir;
  // Workers (and the status process) run as this account, by name or number,
  // when the master is root; empty: as the master. `group` defaults to the
  // user's primary group.
  std::string user;
  std::string group;
  std::string umask;  // octal, as the shell's umask takes it ("027"); empty: inherited
  std::vector<std::string> raw_env;  // NAME=VALUE, in every worker's environment (gunicorn's -e)
  std::vector<std::string> forwarded_allow_ips{"127.0.0.1", "::1"};
  // PROXY protocol (v1/v2): peers in proxy_allow_ips ("*": all; unix-socket
  // peers always) must begin each connection with a header naming the client.
  bool proxy_protocol = false;
  std::vector<std::string> proxy_allow_ips{"127.0.0.1", "::1"};
  bool reuse_port = false;    // each worker binds its own SO_REUSEPORT socket (TCP binds)
  std::string status_bind;    // the status listener (/metrics, /status.json, /); empty: off
  std::string statsd_host;    // HOST[:PORT] of a StatsD server (UDP); empty: off
  std::string statsd_prefix;  // joined to gunicorn's metric names with a dot

  // Where each key given in YAML was written: "FILE:LINE:COLUMN". Lets checks
  // made later (e.g. an unknown worker class) point at the line.
  std::map<std::string, std::string, std::less<>> origin;

  bool operator==(const Config&) const = default;  // origins included
};

// The message always names the key; for YAML input also "FILE:LINE:COLUMN".
class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// One entry of `bind`, ready for socket()/bind(). `host` is a numeric
// literal without brackets ("localhost" is resolved here to 127.0.0.1, so the
// master never needs a resolver); `path` is set only for Unix sockets.
struct BindAddress {
  enum class Kind { Tcp4, Tcp6, Unix };
  Kind kind = Kind::Tcp4;
  std::string host{};
  uint16_t port = 0;
  std::string path{};

  bool operator==(const BindAddress&) const = default;
};

// "HOST:PORT" (IPv4 literal or localhost), "[V6ADDR]:PORT" or "unix:PATH";
// port 1..65535. Anything else (host names, a missing port) is nullopt.
std::optional<BindAddress> parse_bind(std::string_view text);

// statsd_host, as gunicorn reads it: "HOST[:PORT]" (IPv4 address or
// localhost) or "[V6ADDR][:PORT]", PORT 1..65535, StatsD's 8125 when left
// out. A destination, so no port 0 and no unix: path (gunicorn's datagram
// sockets are not supported). Anything else is nullopt.
std::optional<BindAddress> parse_statsd_host(std::string_view text);

// Parse YAML text into `into` (keys absent from the text keep their value).
// Throws ConfigError for syntax errors, unknown keys, wrong types.
void apply_yaml(Config& into, std::string_view yaml_text, std::string_view source_name);
void apply_yaml_file(Config& into, const std::string& path);

// Range and consistency checks; `worker_classes` are the names a worker
// registry knows. Throws ConfigError naming the key (and origin when known).
void validate(const Config& config, std::span<const std::string_view> worker_classes);

// Who the workers run as: `user` and `group` resolved through the passwd and
// group databases; nullopt when both are empty. Throws ConfigError naming
// the key for an unknown name, a uid with no account and no `group`, or an
// identity this process is not allowed to take (it is not root).
std::optional<sys::Identity> worker_identity(const Config& config);
// `umask` as a mask; nullopt when it is empty. Throws ConfigError.
std::optional<unsigned> file_creation_mask(const Config& config);
// chdir(2) into `chdir` (nothing when it is empty). Throws ConfigError with
// the same words as validate()'s check of the key, its line included.
void enter_directory(const Config& config);

// The effective configuration as YAML (what --check-config prints).
std::string to_yaml(const Config& config);

// ---- the command line ----
// Flags keep gunicorn's spelling. Overrides are kept apart from the YAML so a
// reload (HUP) can re-read the file and apply the same flags on top again.
struct CommandLine {
  std::optional<std::string> config_file;  // -c
  std::vector<std::string> overrides;      // normalized "key=value" in flag order
  bool check_config = false;
  bool show_version = false;
  // Parsed Config = defaults, then the YAML file, then the flags.
};

// Throws ConfigError on a bad flag (the message is CLI11's, with --help hint).
// Returns nullopt after printing --help (the caller exits 0).
std::optional<CommandLine> parse_command_line(int argc, const char* const* argv);

// defaults → YAML file (if any) → flag overrides → validate.
Config build(const CommandLine& cli, std::span<const std::string_view> worker_classes);

}  // namespace qilin::config

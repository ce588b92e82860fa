// The command line: gunicorn's flag spellings mapped onto config keys by one
// table, which also gives --help its text and build() the name of the flag
// that set a key.
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <array>
#include <iostream>
#include <map>
#include <set>

#include "config/config.hpp"
#include "config/override.hpp"

namespace qilin::config {
namespace {

struct Flag {
  std::string_view names;  // CLI11 spelling; a name without dashes is a positional
  std::string_view key;
  std::string_view value_name;  // empty: a switch that takes no value and sets the key to true
  std::string_view help;

  // What messages call the flag: its long form ("--workers"), or "APP".
  std::string_view origin() const { return names.substr(names.rfind(',') + 1); }
};

const std::array flag_table{
    Flag{"-b,--bind", "bind", "ADDR",
         "listen on HOST:PORT, [IPV6]:PORT or unix:PATH; repeat for several "
         "(replaces the file's list)"},
    Flag{"-w,--workers", "workers", "INT", "number of worker processes"},
    Flag{"-k,--worker-class", "worker_class", "NAME", "worker type (how a worker does IO)"},
    Flag{"--threads", "threads", "INT", "threads per worker"},
    Flag{"--worker-connections", "worker_connections", "INT", "simultaneous clients per worker"},
    Flag{"--backlog", "backlog", "INT", "pending connections the kernel queues (listen())"},
    Flag{"-t,--timeout", "timeout", "INT",
         "seconds a silent worker lives before it is killed and replaced (0: never)"},
    Flag{"--graceful-timeout", "graceful_timeout", "INT",
         "seconds workers get to finish requests on shutdown"},
    Flag{"--keep-alive", "keepalive", "INT", "seconds an idle keep-alive connection is kept"},
    Flag{"--max-requests", "max_requests", "INT",
         "requests a worker serves before it is restarted (0: no limit)"},
    Flag{"--max-requests-jitter", "max_requests_jitter", "INT",
         "random extra requests added to --max-requests per worker"},
    Flag{"--limit-request-line", "limit_request_line", "INT",
         "longest request line in bytes, 0..8190 (0: no limit)"},
    Flag{"--limit-request-fields", "limit_request_fields", "INT",
         "most header fields in a request, 0..32768 (0: 32768)"},
    Flag{"--limit-request-field-size", "limit_request_field_size", "INT",
         "longest header field in bytes (0: no limit)"},
    Flag{"--limit-request-body", "limit_request_body", "INT", "largest request body in bytes"},
    Flag{"--preload", "preload_app", "",
         "load the app in the master before forking the workers (they share its memory)"},
    Flag{"--static-dir", "static_dir", "DIR", "directory the demo app serves under /static/"},
    Flag{"--access-logfile", "accesslog", "FILE", "access log ('-': stdout; empty: off)"},
    Flag{"--access-logformat", "access_log_format", "FORMAT",
         "access log line, gunicorn's atoms: %(h)s %(r)s %(s)s %(D)s %({header}i)s ..."},
    Flag{"--error-logfile", "errorlog", "FILE", "error log ('-': stderr)"},
    Flag{"--log-level", "loglevel", "LEVEL", "debug, info, warning, error or critical"},
    Flag{"-p,--pid", "pidfile", "FILE", "write the master's pid to FILE"},
    Flag{"--chdir", "chdir", "DIR",
         "work in DIR: relative paths (pidfile, logs, unix: binds, the app) are found there"},
    Flag{"-u,--user", "user", "USER",
         "run workers as this user (name or uid) when started as root"},
    Flag{"-g,--group", "group", "GROUP",
         "run workers in this group (name or gid); default: the user's primary group"},
    Flag{"-m,--umask", "umask", "MASK", "file mode creation mask, octal (027)"},
    Flag{"-e,--env", "raw_env", "NAME=VALUE",
         "set an environment variable for the workers; repeat for several (replaces the file's "
         "list)"},
    Flag{"--forwarded-allow-ips", "forwarded_allow_ips", "IPS",
         "comma-separated proxy addresses or networks (10.0.0.0/8) trusted for X-Forwarded-* "
         "headers ('*': any)"},
    Flag{"--proxy-protocol", "proxy_protocol", "",
         "connections from --proxy-allow-from begin with a PROXY protocol header (v1 or v2)"},
    Flag{"--proxy-allow-from", "proxy_allow_ips", "IPS",
         "comma-separated balancer addresses or networks that must send a PROXY header ('*': any)"},
    Flag{"--reuse-port", "reuse_port", "",
         "each worker binds its own SO_REUSEPORT socket; the kernel balances connections"},
    Flag{"--status-bind", "status_bind", "ADDR",
         "serve /metrics, /status.json and a status page on this address (off when empty)"},
    Flag{"--statsd-host", "statsd_host", "HOST:PORT",
         "send gunicorn's StatsD metrics over UDP to this address once a second (off when empty)"},
    Flag{"--statsd-prefix", "statsd_prefix", "PREFIX",
         "prefix for the StatsD metric names, joined with a dot"},
    Flag{"APP", "app", "APP", "application: a built-in name or the path of a shared library"},
};

std::string_view origin_of_key(std::string_view key) {
  auto it = std::ranges::find(flag_table, key, &Flag::key);
  return it == flag_table.end() ? std::string_view("the command line") : it->origin();
}

}  // namespace

std::optional<CommandLine> parse_command_line(int argc, const char* const* argv) {
  CLI::App app{"qilin: a pre-forking HTTP/1.1 application server", "qilin"};
  app.footer(
      "Settings come from the defaults, then -c FILE (YAML, keys as --check-config prints "
      "them), then the flags above.");
  CommandLine cli;

  std::string config_file;
  CLI::Option* config_option =
      app.add_option("-c,--config", config_file, "read settings from a YAML file")
          ->type_name("FILE");
  app.add_flag("--check-config", cli.check_config,
               "validate the settings, print them as YAML and exit");
  app.add_flag("--version", cli.show_version, "print the version and exit");

  std::map<const CLI::Option*, const Flag*> flag_of;
  for (const Flag& flag : flag_table) {
    std::string help = fmt::format("{} [key: {}]", flag.help, flag.key);
    CLI::Option* option = flag.value_name.empty()
                              ? app.add_flag(std::string(flag.names))->description(help)
                              : app.add_option(std::string(flag.names), CLI::callback_t{}, help);
    // A positional's help already shows its name; a type name would repeat it.
    if (flag.names.starts_with('-') && !flag.value_name.empty())
      option->type_name(std::string(flag.value_name));
    // Every occurrence is kept: overrides are replayed in order, so the last
    // scalar wins and each -b adds an address.
    option->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
    flag_of.emplace(option, &flag);
  }

  try {
    if (argc > 0) app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    std::cout << app.help();
    return std::nullopt;
  } catch (const CLI::ParseError& error) {
    throw ConfigError(fmt::format("{}; run with --help for usage", error.what()));
  }

  if (config_option->count() > 0) cli.config_file = config_file;
  // parse_order() lists an option once per value it took, in command-line
  // order; results() holds those values in the same order.
  std::map<const CLI::Option*, size_t> values_used;
  for (const CLI::Option* option : app.parse_order()) {
    auto flag = flag_of.find(option);
    if (flag == flag_of.end()) continue;
    if (flag->second->value_name.empty()) {
      cli.overrides.push_back(fmt::format("{}=true", flag->second->key));
      continue;
    }
    size_t& used = values_used[option];
    if (used >= option->results().size()) continue;
    cli.overrides.push_back(fmt::format("{}={}", flag->second->key, option->results()[used++]));
  }
  return cli;
}

Config build(const CommandLine& cli, std::span<const std::string_view> worker_classes) {
  Config config;
  if (cli.config_file) apply_yaml_file(config, *cli.config_file);
  std::set<std::string, std::less<>> overridden;
  for (const std::string& entry : cli.overrides) {
    size_t equals = entry.find('=');
    if (equals == std::string::npos)
      throw ConfigError(fmt::format("malformed override '{}' (expected key=value)", entry));
    std::string_view key = std::string_view(entry).substr(0, equals);
    std::string_view value = std::string_view(entry).substr(equals + 1);
    bool first_for_key = overridden.emplace(key).second;
    apply_override(config, key, value, origin_of_key(key), first_for_key);
  }
  validate(config, worker_classes);
  return config;
}

}  // namespace qilin::config

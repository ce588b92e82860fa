// config: YAML in, flags on top, validation messages that point at the line,
// and to_yaml() output that reads back as the same settings.
#include "config/config.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <pwd.h>
#include <stdlib.h>
#include <unistd.h>

#include <array>
#include <filesystem>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <string>
#include <vector>

#include "config/allow_list.hpp"

namespace qilin::config {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::EndsWith;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::StartsWith;

constexpr std::array<std::string_view, 3> known_classes{"sync", "gthread", "epoll"};

Config from_yaml(std::string_view text) {
  Config config;
  apply_yaml(config, text, "test.yaml");
  return config;
}

// The ConfigError message `action` throws; a test failure if it throws none.
std::string error_of(const std::function<void()>& action) {
  try {
    action();
  } catch (const ConfigError& error) {
    return error.what();
  }
  ADD_FAILURE() << "expected a ConfigError";
  return {};
}

std::string yaml_error(std::string_view text) {
  return error_of([&] { from_yaml(text); });
}

std::string validation_error(std::string_view text) {
  Config config = from_yaml(text);
  return error_of([&] { validate(config, known_classes); });
}

std::optional<CommandLine> parse(std::initializer_list<const char*> args) {
  std::vector<const char*> argv{"qilin"};
  argv.insert(argv.end(), args);
  return parse_command_line(static_cast<int>(argv.size()), argv.data());
}

std::vector<std::string> overrides_of(std::initializer_list<const char*> args) {
  auto cli = parse(args);
  EXPECT_TRUE(cli.has_value());
  return cli ? cli->overrides : std::vector<std::string>{};
}

// ---- defaults ----

TEST(ConfigDefaults, MatchGunicorn) {
  Config config;
  EXPECT_THAT(config.bind, ElementsAre("127.0.0.1:8000"));
  EXPECT_EQ(config.workers, 1);
  EXPECT_EQ(config.worker_class, "sync");
  EXPECT_EQ(config.threads, 1);
  EXPECT_EQ(config.worker_connections, 1000);
  EXPECT_EQ(config.backlog, 2048);
  EXPECT_EQ(config.timeout, 30);
  EXPECT_EQ(config.graceful_timeout, 30);
  EXPECT_EQ(config.keepalive, 2);
  EXPECT_EQ(config.max_requests, 0);
  EXPECT_EQ(config.max_requests_jitter, 0);
  EXPECT_EQ(config.limit_request_line, 4094);
  EXPECT_EQ(config.limit_request_fields, 100);
  EXPECT_EQ(config.limit_request_field_size, 8190);
  EXPECT_EQ(config.limit_request_body, 1 << 20);
  EXPECT_EQ(config.errorlog, "-");
  EXPECT_EQ(config.loglevel, "info");
  EXPECT_THAT(config.accesslog, IsEmpty());
  EXPECT_THAT(config.pidfile, IsEmpty());
  EXPECT_THAT(config.origin, IsEmpty());
  EXPECT_NO_THROW(validate(config, known_classes));
}

// ---- apply_yaml ----

TEST(ApplyYaml, ReadsEveryKey) {
  Config config = from_yaml(R"(bind: ["0.0.0.0:80", "[::]:80"]
workers: 4
worker_class: epoll
threads: 8
worker_connections: 500
backlog: 64
timeout: 60
graceful_timeout: 10
keepalive: 5
max_requests: 1000
max_requests_jitter: 50
limit_request_line: 0
limit_request_fields: 200
limit_request_field_size: 16000
limit_request_body: 5000000000
app: lib/libdemo.so
static_dir: /srv/static
accesslog: "-"
errorlog: /var/log/qilin.err
loglevel: debug
pidfile: /run/qilin.pid
forwarded_allow_ips: "*"
statsd_host: localhost:9125
statsd_prefix: web
)");
  EXPECT_THAT(config.bind, ElementsAre("0.0.0.0:80", "[::]:80"));
  EXPECT_EQ(config.workers, 4);
  EXPECT_EQ(config.worker_class, "epoll");
  EXPECT_EQ(config.threads, 8);
  EXPECT_EQ(config.worker_connections, 500);
  EXPECT_EQ(config.backlog, 64);
  EXPECT_EQ(config.timeout, 60);
  EXPECT_EQ(config.graceful_timeout, 10);
  EXPECT_EQ(config.keepalive, 5);
  EXPECT_EQ(config.max_requests, 1000);
  EXPECT_EQ(config.max_requests_jitter, 50);
  EXPECT_EQ(config.limit_request_line, 0);
  EXPECT_EQ(config.limit_request_fields, 200);
  EXPECT_EQ(config.limit_request_field_size, 16000);
  EXPECT_EQ(config.limit_request_body, 5'000'000'000);
  EXPECT_EQ(config.app, "lib/libdemo.so");
  EXPECT_EQ(config.static_dir, "/srv/static");
  EXPECT_EQ(config.accesslog, "-");
  EXPECT_EQ(config.errorlog, "/var/log/qilin.err");
  EXPECT_EQ(config.loglevel, "debug");
  EXPECT_EQ(config.pidfile, "/run/qilin.pid");
  EXPECT_THAT(config.forwarded_allow_ips, ElementsAre("*"));
  EXPECT_EQ(config.statsd_host, "localhost:9125");
  EXPECT_EQ(config.statsd_prefix, "web");
  EXPECT_EQ(config.origin.size(), 24u);
  EXPECT_EQ(config.origin["bind"], "test.yaml:1:1");
  EXPECT_EQ(config.origin["workers"], "test.yaml:2:1");
  EXPECT_EQ(config.origin["forwarded_allow_ips"], "test.yaml:22:1");
  EXPECT_NO_THROW(validate(config, known_classes));
}

TEST(ApplyYaml, AbsentKeysKeepTheirValue) {
  Config config;
  config.workers = 7;
  apply_yaml(config, "timeout: 5\n", "a.yaml");
  EXPECT_EQ(config.workers, 7);
  EXPECT_EQ(config.timeout, 5);
  EXPECT_EQ(config.origin.count("workers"), 0u);
}

TEST(ApplyYaml, EmptyDocumentChangesNothing) {
  for (std::string_view text : {"", "\n", "# only a comment\n", "---\n"}) {
    Config config = from_yaml(text);
    EXPECT_EQ(to_yaml(config), to_yaml(Config{})) << text;
    EXPECT_THAT(config.origin, IsEmpty());
  }
}

TEST(ApplyYaml, NullStringBecomesEmpty) {
  Config config = from_yaml("errorlog: ~\napp:\npidfile: null\n");
  EXPECT_THAT(config.errorlog, IsEmpty());
  EXPECT_THAT(config.app, IsEmpty());
  EXPECT_THAT(config.pidfile, IsEmpty());
}

TEST(ApplyYaml, NullIntegerIsAnError) {
  // A null is reported at its key: yaml-cpp marks an implicit one at the
  // token that follows, often on the next line.
  EXPECT_EQ(yaml_error("workers: ~\n"),
            "test.yaml:1:1: key 'workers': expected an integer, got null");
  EXPECT_EQ(yaml_error("workers:\ntimeout: 3\n"),
            "test.yaml:1:1: key 'workers': expected an integer, got null");
}

TEST(ApplyYaml, BindIsAListOrOneString) {
  EXPECT_THAT(from_yaml("bind: unix:/tmp/q.sock\n").bind, ElementsAre("unix:/tmp/q.sock"));
  EXPECT_THAT(from_yaml("bind:\n  - 127.0.0.1:1\n  - '[::1]:2'\n").bind,
              ElementsAre("127.0.0.1:1", "[::1]:2"));
  // bind never splits on commas: a comma is a typo that validate() reports.
  EXPECT_THAT(from_yaml("bind: 127.0.0.1:1,127.0.0.1:2\n").bind,
              ElementsAre("127.0.0.1:1,127.0.0.1:2"));
}

TEST(ApplyYaml, ForwardedAllowIpsAcceptsCommaSeparatedString) {
  EXPECT_THAT(from_yaml("forwarded_allow_ips: '10.0.0.1, 10.0.0.2,'\n").forwarded_allow_ips,
              ElementsAre("10.0.0.1", "10.0.0.2"));
  EXPECT_THAT(from_yaml("forwarded_allow_ips: [10.0.0.1, '::1']\n").forwarded_allow_ips,
              ElementsAre("10.0.0.1", "::1"));
  EXPECT_THAT(from_yaml("forwarded_allow_ips: []\n").forwarded_allow_ips, IsEmpty());
}

TEST(ApplyYaml, ProxyProtocolKeys) {
  Config defaults;
  EXPECT_FALSE(defaults.proxy_protocol);
  EXPECT_THAT(defaults.proxy_allow_ips, ElementsAre("127.0.0.1", "::1"));
  Config config = from_yaml("proxy_protocol: true\nproxy_allow_ips: '10.0.0.1, 2001:db8::1'\n");
  EXPECT_TRUE(config.proxy_protocol);
  EXPECT_THAT(config.proxy_allow_ips, ElementsAre("10.0.0.1", "2001:db8::1"));
  EXPECT_EQ(config.origin["proxy_allow_ips"], "test.yaml:2:1");
  EXPECT_THAT(from_yaml("proxy_allow_ips: ['*']\n").proxy_allow_ips, ElementsAre("*"));
  EXPECT_NO_THROW(validate(from_yaml("proxy_allow_ips: ['*', 10.0.0.1, '::1']\n"), known_classes));
  EXPECT_EQ(yaml_error("workers: 1\nproxy_protocol: on\n"),
            "test.yaml:2:17: key 'proxy_protocol': expected true or false, got 'on'");
  EXPECT_EQ(yaml_error("proxy_allow_ips: {a: 1}\n"),
            "test.yaml:1:18: key 'proxy_allow_ips': expected a string or a list of strings, got "
            "a mapping");
  EXPECT_NO_THROW(validate(from_yaml("proxy_allow_ips: [10.0.0.1, 10.0.0.0/8]\n"), known_classes));
  EXPECT_EQ(validation_error("timeout: 3\nproxy_allow_ips: [10.0.0.1, localhost]\n"),
            "test.yaml:2:1: key 'proxy_allow_ips': cannot use 'localhost': expected an IPv4 or "
            "IPv6 address, a network like 10.0.0.0/8, or '*'");
}

TEST(Validate, AllowListsNameTheEntryKeyAndPosition) {
  EXPECT_EQ(validation_error("forwarded_allow_ips: '10.0.0.0/8, proxy.local'\n"),
            "test.yaml:1:1: key 'forwarded_allow_ips': cannot use 'proxy.local': expected an IPv4 "
            "or IPv6 address, a network like 10.0.0.0/8, or '*'");
  EXPECT_EQ(validation_error("forwarded_allow_ips: [10.1.0.0/8]\n"),
            "test.yaml:1:1: key 'forwarded_allow_ips': cannot use '10.1.0.0/8': it has bits set "
            "beyond its /8 prefix");
  for (const char* bad : {"10.0.0.0/33", "10.0.0.0/", "10.0.0.0/8x", "::1/129", "10.0.0.0/-1"})
    EXPECT_THAT(validation_error(std::string("forwarded_allow_ips: ['") + bad + "']\n"),
                HasSubstr("the prefix length must be 0 to"))
        << bad;
  EXPECT_EQ(yaml_error("pidfile: \"%\xef\xb7\x90\"\n"),
            "test.yaml:1:10: key 'pidfile': expected UTF-8 text, got U+FDD0 (a Unicode "
            "noncharacter) at offset 1");
  EXPECT_THAT(yaml_error("pidfile: x\xf4\x8f\xbf\xbf\n"), EndsWith("got U+10FFFF (a Unicode "
                                                                   "noncharacter) at offset 1"));
}

TEST(AllowList, AddressesNetworksAndEveryone) {
  const std::vector<std::string> entries{"192.0.2.7", "10.0.0.0/8", "172.16.0.0/12",
                                         "2001:db8::/32", "::1"};
  const AllowList list(entries);
  for (const char* allowed : {"192.0.2.7", "10.0.0.1", "10.255.255.255", "172.31.0.1",
                              "2001:db8:1::5", "::1", "::ffff:10.1.2.3", "::ffff:192.0.2.7"})
    EXPECT_TRUE(list.allows(allowed)) << allowed;
  for (const char* refused : {"192.0.2.8", "11.0.0.1", "172.32.0.1", "2001:db9::1", "::2",
                              "::ffff:11.0.0.1", "unix", "", "10.0.0.1 ", "not an address"})
    EXPECT_FALSE(list.allows(refused)) << refused;

  const std::vector<std::string> everyone{"10.0.0.1", "*"};
  EXPECT_TRUE(AllowList(everyone).allows("203.0.113.9"));
  const std::vector<std::string> all_ipv4{"0.0.0.0/0"};
  EXPECT_TRUE(AllowList(all_ipv4).allows("203.0.113.9"));
  EXPECT_FALSE(AllowList(all_ipv4).allows("2001:db8::1"));  // a family is not a prefix
  EXPECT_FALSE(AllowList().allows("127.0.0.1"));            // the empty list trusts no one
}

TEST(ApplyYaml, IntegersAreDecimalWithOptionalSign) {
  EXPECT_EQ(from_yaml("max_requests: +5\n").max_requests, 5);
  EXPECT_EQ(from_yaml("timeout: -1\n").timeout, -1);  // parses; validate() rejects it
  EXPECT_EQ(from_yaml("workers: 2147483647\n").workers, 2147483647);
  EXPECT_EQ(from_yaml("limit_request_body: 9223372036854775807\n").limit_request_body, INT64_MAX);
}

TEST(ApplyYaml, UnknownKeyNamesPositionAndSuggests) {
  EXPECT_EQ(yaml_error("workers: 2\ntimeout: 5\nwrokers: 3\n"),
            "test.yaml:3:1: unknown key 'wrokers' (did you mean 'workers'?)");
  EXPECT_EQ(yaml_error("timeout: 5\nkeep-alive: 3\n"),
            "test.yaml:2:1: unknown key 'keep-alive' (did you mean 'keepalive'?)");
  EXPECT_EQ(yaml_error("\n\ncolour: red\n"), "test.yaml:3:1: unknown key 'colour'");
}

TEST(ApplyYaml, WrongTypesNameKeyAndPosition) {
  struct Case {
    std::string_view yaml;
    std::string_view message;
  };
  const Case cases[] = {
      {"workers: abc", "test.yaml:1:10: key 'workers': expected an integer, got 'abc'"},
      {"workers: 1.5", "test.yaml:1:10: key 'workers': expected an integer, got '1.5'"},
      {"workers: 10abc", "test.yaml:1:10: key 'workers': expected an integer, got '10abc'"},
      {"workers: true", "test.yaml:1:10: key 'workers': expected an integer, got 'true'"},
      {"workers: 0x10", "test.yaml:1:10: key 'workers': expected an integer, got '0x10'"},
      {"workers: ''", "test.yaml:1:10: key 'workers': expected an integer, got ''"},
      {"workers: [1, 2]", "test.yaml:1:10: key 'workers': expected an integer, got a list"},
      {"workers: {a: 1}", "test.yaml:1:10: key 'workers': expected an integer, got a mapping"},
      {"workers: 2147483648",
       "test.yaml:1:10: key 'workers': expected an integer, got '2147483648' (out of range)"},
      {"limit_request_body: 9223372036854775808",
       "test.yaml:1:21: key 'limit_request_body': expected an integer, got "
       "'9223372036854775808' (out of range)"},
      {"timeout: 5\nkeepalive: x", "test.yaml:2:12: key 'keepalive': expected an integer, got 'x'"},
      {"app: [a]", "test.yaml:1:6: key 'app': expected a string, got a list"},
      {"loglevel: {a: b}", "test.yaml:1:11: key 'loglevel': expected a string, got a mapping"},
      {"bind: {a: 1}",
       "test.yaml:1:7: key 'bind': expected a string or a list of strings, got a mapping"},
      {"bind:\n  - 127.0.0.1:1\n  - [x]",
       "test.yaml:3:5: key 'bind': expected a list of strings, got a list in it"},
      {"bind: [127.0.0.1:1, ~]",
       "test.yaml:1:21: key 'bind': expected a list of strings, got null in it"},
  };
  for (const Case& c : cases) EXPECT_EQ(yaml_error(c.yaml), c.message) << c.yaml;
}

TEST(ApplyYaml, SyntaxErrorHasPosition) {
  std::string message = yaml_error("workers: 2\nbind: [127.0.0.1:1,\ntimeout: 3\n");
  EXPECT_THAT(message, StartsWith("test.yaml:"));
  EXPECT_THAT(message, HasSubstr(": invalid YAML: "));
  EXPECT_THAT(yaml_error("workers: 1\n  timeout: 2\n"),
              StartsWith("test.yaml:2:10: invalid YAML: illegal map value"));
}

TEST(ApplyYaml, TopLevelMustBeAMapping) {
  EXPECT_THAT(yaml_error("- workers\n- 2\n"),
              StartsWith("test.yaml:1:1: expected a mapping of settings (key: value), got a list"));
  EXPECT_THAT(yaml_error("workers\n"), HasSubstr("expected a mapping of settings"));
}

TEST(ApplyYaml, RepeatedKeyIsAnError) {
  EXPECT_EQ(yaml_error("workers: 2\ntimeout: 3\nworkers: 4\n"),
            "test.yaml:3:1: key 'workers' given twice (first at test.yaml:1:1)");
}

TEST(ApplyYaml, KeyMustBeAName) {
  EXPECT_THAT(yaml_error("[a]: 1\n"), StartsWith("test.yaml:1:1: expected a key name"));
}

TEST(ApplyYaml, FailureLeavesConfigUntouched) {
  Config config;
  EXPECT_THROW(apply_yaml(config, "workers: 5\ntimeout: nope\n", "x.yaml"), ConfigError);
  EXPECT_EQ(config.workers, 1);
  EXPECT_THAT(config.origin, IsEmpty());
}

// ---- validate ----

TEST(Validate, RangesNameKeyAndPosition) {
  struct Case {
    std::string_view yaml;
    std::string_view message;
  };
  const Case cases[] = {
      {"workers: 0", "test.yaml:1:1: key 'workers': must be at least 1, got 0"},
      {"workers: 1025", "test.yaml:1:1: key 'workers': must be at most 1024, got 1025"},
      {"threads: 0", "test.yaml:1:1: key 'threads': must be at least 1, got 0"},
      {"threads: 4097", "test.yaml:1:1: key 'threads': must be at most 4096, got 4097"},
      {"worker_connections: 0",
       "test.yaml:1:1: key 'worker_connections': must be at least 1, got 0"},
      {"backlog: 0", "test.yaml:1:1: key 'backlog': must be at least 1, got 0"},
      {"timeout: -1", "test.yaml:1:1: key 'timeout': must be at least 0, got -1"},
      {"graceful_timeout: -1", "test.yaml:1:1: key 'graceful_timeout': must be at least 0, got -1"},
      {"keepalive: -1", "test.yaml:1:1: key 'keepalive': must be at least 0, got -1"},
      {"max_requests: -1", "test.yaml:1:1: key 'max_requests': must be at least 0, got -1"},
      {"max_requests_jitter: -1",
       "test.yaml:1:1: key 'max_requests_jitter': must be at least 0, got -1"},
      {"limit_request_line: -1",
       "test.yaml:1:1: key 'limit_request_line': must be at least 0, got -1"},
      {"limit_request_line: 8191",
       "test.yaml:1:1: key 'limit_request_line': must be at most 8190, got 8191"},
      {"limit_request_fields: 32769",
       "test.yaml:1:1: key 'limit_request_fields': must be at most 32768, got 32769"},
      {"limit_request_field_size: -1",
       "test.yaml:1:1: key 'limit_request_field_size': must be at least 0, got -1"},
      {"timeout: 1\n\nlimit_request_body: -1",
       "test.yaml:3:1: key 'limit_request_body': must be at least 0, got -1"},
  };
  for (const Case& c : cases) EXPECT_EQ(validation_error(c.yaml), c.message) << c.yaml;
}

TEST(Validate, BoundsAreInclusive) {
  Config config = from_yaml(
      "workers: 1024\nthreads: 4096\ntimeout: 0\ngraceful_timeout: 0\nkeepalive: 0\n"
      "limit_request_line: 8190\nlimit_request_fields: 32768\nlimit_request_field_size: 0\n"
      "limit_request_body: 0\n");
  EXPECT_NO_THROW(validate(config, known_classes));
  config.limit_request_line = 0;  // 0: no limit, as in gunicorn
  config.limit_request_fields = 0;
  EXPECT_NO_THROW(validate(config, known_classes));
}

TEST(Validate, WorkerClassMustBeKnown) {
  std::string message = validation_error("timeout: 3\nworker_class: uring\n");
  EXPECT_THAT(message,
              StartsWith("test.yaml:2:1: key 'worker_class': unknown worker class 'uring'"));
  EXPECT_THAT(message, HasSubstr("sync, gthread, epoll"));
  for (std::string_view name : known_classes) {
    Config config;
    config.worker_class = std::string(name);
    EXPECT_NO_THROW(validate(config, known_classes));
  }
  EXPECT_THAT(message, Not(HasSubstr("closest")));
}

TEST(Validate, GunicornClassNamesPointAtTheClosestOfOurs) {
  const std::string_view ours[] = {"sync", "threaded", "epoll", "io_uring"};
  Config config;
  config.worker_class = "gthread";
  EXPECT_THAT(error_of([&] { validate(config, ours); }),
              EndsWith("unknown worker class 'gthread' (known: sync, threaded, epoll, io_uring); "
                       "gunicorn's gthread is closest to threaded"));
  config.worker_class = "gevent";
  EXPECT_THAT(error_of([&] { validate(config, ours); }),
              EndsWith("gunicorn's gevent is closest to epoll"));
  // No hint towards a class this build lacks.
  const std::string_view only_sync[] = {"sync"};
  EXPECT_THAT(error_of([&] { validate(config, only_sync); }), EndsWith("(known: sync)"));
}

TEST(Validate, LogLevelMustBeKnown) {
  EXPECT_EQ(validation_error("loglevel: verbose"),
            "test.yaml:1:1: key 'loglevel': must be one of debug, info, warning, error, critical, "
            "got 'verbose'");
  for (const char* level : {"debug", "info", "warning", "error", "critical"}) {
    Config config;
    config.loglevel = level;
    EXPECT_NO_THROW(validate(config, known_classes)) << level;
  }
}

TEST(Validate, BindEntriesMustParse) {
  EXPECT_THAT(validation_error("bind: [127.0.0.1:8000, 'example.com:80']"),
              StartsWith("test.yaml:1:1: key 'bind': cannot use 'example.com:80'"));
  EXPECT_THAT(validation_error("workers: 2\nbind: 127.0.0.1:65536"),
              StartsWith("test.yaml:2:1: key 'bind': cannot use '127.0.0.1:65536'"));
  EXPECT_EQ(validation_error("bind: []"),
            "test.yaml:1:1: key 'bind': at least one address is required");
  EXPECT_NO_THROW(
      validate(from_yaml("bind: [localhost:80, '[::1]:80', unix:/tmp/s]"), known_classes));
}

TEST(Validate, WithoutOriginNamesOnlyTheKey) {
  Config config;
  config.workers = 0;
  EXPECT_EQ(error_of([&] { validate(config, known_classes); }),
            "key 'workers': must be at least 1, got 0");
}

// ---- parse_bind ----

TEST(ParseBind, AcceptsTheThreeForms) {
  using Kind = BindAddress::Kind;
  EXPECT_EQ(parse_bind("127.0.0.1:8000"),
            (BindAddress{.kind = Kind::Tcp4, .host = "127.0.0.1", .port = 8000}));
  EXPECT_EQ(parse_bind("0.0.0.0:65535"),
            (BindAddress{.kind = Kind::Tcp4, .host = "0.0.0.0", .port = 65535}));
  EXPECT_EQ(parse_bind("localhost:1"),
            (BindAddress{.kind = Kind::Tcp4, .host = "127.0.0.1", .port = 1}));
  EXPECT_EQ(parse_bind("[::1]:8000"),
            (BindAddress{.kind = Kind::Tcp6, .host = "::1", .port = 8000}));
  EXPECT_EQ(parse_bind("[::]:80"), (BindAddress{.kind = Kind::Tcp6, .host = "::", .port = 80}));
  EXPECT_EQ(parse_bind("[2001:db8::7]:443"),
            (BindAddress{.kind = Kind::Tcp6, .host = "2001:db8::7", .port = 443}));
  EXPECT_EQ(parse_bind("unix:/run/qilin.sock"),
            (BindAddress{.kind = Kind::Unix, .path = "/run/qilin.sock"}));
  EXPECT_EQ(parse_bind("unix:relative.sock"),
            (BindAddress{.kind = Kind::Unix, .path = "relative.sock"}));
}

TEST(ParseBind, RejectsMalformed) {
  for (std::string_view bad : {"",
                               "127.0.0.1",
                               "127.0.0.1:",
                               "127.0.0.1:65536",
                               "127.0.0.1:70000",
                               "127.0.0.1:-1",
                               "127.0.0.1:+80",
                               "127.0.0.1:80x",
                               "127.0.0.1:0080000",
                               ":8000",
                               "example.com:80",
                               "256.0.0.1:80",
                               "1.2.3:80",
                               "::1:8000",
                               "[::1]",
                               "[::1]:",
                               "[]:80",
                               "[127.0.0.1]:80",
                               "[::g]:80",
                               "unix:",
                               "tcp://127.0.0.1:80",
                               " 127.0.0.1:80"}) {
    EXPECT_EQ(parse_bind(bad), std::nullopt) << "'" << bad << "'";
  }
}

// ---- to_yaml ----

TEST(ToYaml, WritesEveryKeyInOrderAndNoOrigin) {
  Config config = from_yaml("workers: 3\n");
  std::string yaml = "\n" + to_yaml(config);
  const char* keys[] = {"bind:",
                        "workers: 3",
                        "worker_class:",
                        "threads:",
                        "worker_connections:",
                        "backlog:",
                        "timeout:",
                        "graceful_timeout:",
                        "keepalive:",
                        "max_requests:",
                        "max_requests_jitter:",
                        "limit_request_line:",
                        "limit_request_fields:",
                        "limit_request_field_size:",
                        "limit_request_body:",
                        "app:",
                        "static_dir:",
                        "accesslog:",
                        "access_log_format:",
                        "errorlog:",
                        "loglevel:",
                        "pidfile:",
                        "user:",
                        "group:",
                        "umask:",
                        "raw_env:",
                        "forwarded_allow_ips:",
                        "proxy_protocol:",
                        "proxy_allow_ips:",
                        "reuse_port:",
                        "status_bind:",
                        "statsd_host:",
                        "statsd_prefix:"};
  size_t previous = 0;
  for (const char* key : keys) {
    size_t at = yaml.find(std::string("\n") + key, previous);
    ASSERT_NE(at, std::string::npos) << key << " in order in" << yaml;
    previous = at + 1;
  }
  EXPECT_THAT(yaml, Not(HasSubstr("origin")));
}

TEST(ToYaml, RoundTripsThroughApplyYaml) {
  Config original;
  original.bind = {"0.0.0.0:80", "[::1]:8080", "unix:/tmp/a b.sock"};
  original.workers = 9;
  original.worker_class = "gthread";
  original.threads = 3;
  original.limit_request_line = 0;
  original.limit_request_body = 5'000'000'000;
  // Strings that YAML would read as something else unless quoted.
  original.app = "~";
  original.preload_app = true;
  original.static_dir = "a: b #c";
  original.accesslog = "-";
  original.errorlog = "";
  original.loglevel = "null";
  original.pidfile = "123";
  original.chdir = "/srv/a site";
  original.forwarded_allow_ips = {};
  original.statsd_host = "[::1]:8125";
  original.statsd_prefix = "a.b";
  original.access_log_format = R"(%(h)s "%(r)s" #%(s)s: %%)";

  Config copy;
  apply_yaml(copy, to_yaml(original), "roundtrip.yaml");
  EXPECT_EQ(copy.bind, original.bind);
  EXPECT_EQ(copy.workers, 9);
  EXPECT_EQ(copy.worker_class, "gthread");
  EXPECT_EQ(copy.threads, 3);
  EXPECT_EQ(copy.limit_request_line, 0);
  EXPECT_EQ(copy.limit_request_body, 5'000'000'000);
  EXPECT_EQ(copy.app, "~");
  EXPECT_TRUE(copy.preload_app);
  EXPECT_EQ(copy.static_dir, "a: b #c");
  EXPECT_EQ(copy.accesslog, "-");
  EXPECT_EQ(copy.errorlog, "");
  EXPECT_EQ(copy.loglevel, "null");
  EXPECT_EQ(copy.pidfile, "123");
  EXPECT_EQ(copy.chdir, "/srv/a site");
  EXPECT_THAT(copy.forwarded_allow_ips, IsEmpty());
  EXPECT_EQ(to_yaml(copy), to_yaml(original));
  EXPECT_EQ(copy.statsd_host, original.statsd_host);
  EXPECT_EQ(copy.statsd_prefix, original.statsd_prefix);
  EXPECT_EQ(copy.access_log_format, original.access_log_format);
  EXPECT_EQ(copy.origin.size(), 35u);
}

// --check-config prints to_yaml(); a control character in a value must come
// back as itself, not as a raw CR or tab that YAML reads differently.
TEST(ToYaml, RoundTripsControlCharacters) {
  Config original;
  original.accesslog = "\r";
  original.pidfile = "a\tb\n";
  original.bind = {"127.0.0.1:1\x7f"};
  Config copy;
  apply_yaml(copy, to_yaml(original), "control.yaml");
  EXPECT_EQ(copy.accesslog, "\r");
  EXPECT_EQ(copy.pidfile, "a\tb\n");
  EXPECT_EQ(copy.bind, original.bind);
}

// --check-config prints to_yaml(), and YAML is Unicode: text that is not
// UTF-8, or holds a noncharacter, came back as U+FFFD, a different setting
// (found by config_fuzz). It is refused where it is read, naming the key.
TEST(Yaml, StringSettingsMustBeUtf8) {
  EXPECT_EQ(yaml_error("access_log_format: a\x81" "b\n"),
            "test.yaml:1:20: key 'access_log_format': expected UTF-8 text, got byte 0x81 at "
            "offset 1");
  EXPECT_EQ(yaml_error("raw_env: [A=1, \"B=\xff\"]\n"),
            "test.yaml:1:16: key 'raw_env': expected UTF-8 text, got byte 0xFF at offset 2");
  EXPECT_EQ(yaml_error("forwarded_allow_ips: 10.0.0.1,\xc3\n"),
            "test.yaml:1:22: key 'forwarded_allow_ips': expected UTF-8 text, got byte 0xC3 at "
            "offset 9");
  // Well-formed lead bytes whose sequences are not: overlong, a surrogate,
  // past U+10FFFF, cut short.
  for (const char* bad : {"\xc0\xaf", "\xe0\x80\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80",
                          "\xe2\x82", "\xf0\x9d\x84"})
    EXPECT_THAT(yaml_error(std::string("pidfile: x") + bad + "\n"),
                StartsWith("test.yaml:1:10: key 'pidfile': expected UTF-8 text, got byte"))
        << bad;
}

TEST(ToYaml, RoundTripsUtf8) {
  Config original;
  original.access_log_format = "%(h)s \xc3\xa9 \xe2\x82\xac \xf0\x9d\x84\x9e \xf4\x8f\xbf\xbd";
  original.pidfile = "/run/\xe4\xb8\xad.pid";
  Config copy;
  apply_yaml(copy, to_yaml(original), "utf8.yaml");
  copy.origin.clear();
  EXPECT_EQ(copy, original);
}

TEST(ToYaml, DefaultsRoundTrip) {
  Config copy;
  copy.workers = 5;
  apply_yaml(copy, to_yaml(Config{}), "defaults.yaml");
  EXPECT_EQ(to_yaml(copy), to_yaml(Config{}));
  EXPECT_EQ(copy.workers, 1);
}

// ---- parse_command_line ----

TEST(CommandLine, NoArguments) {
  auto cli = parse({});
  ASSERT_TRUE(cli);
  EXPECT_FALSE(cli->config_file);
  EXPECT_THAT(cli->overrides, IsEmpty());
  EXPECT_FALSE(cli->check_config);
  EXPECT_FALSE(cli->show_version);
}

TEST(CommandLine, EveryFlagBecomesAnOverride) {
  EXPECT_THAT(
      overrides_of({"--bind",
                    "127.0.0.1:1",
                    "--workers",
                    "2",
                    "--worker-class",
                    "epoll",
                    "--threads",
                    "3",
                    "--worker-connections",
                    "4",
                    "--backlog",
                    "5",
                    "--timeout",
                    "6",
                    "--graceful-timeout",
                    "7",
                    "--keep-alive",
                    "8",
                    "--max-requests",
                    "9",
                    "--max-requests-jitter",
                    "10",
                    "--limit-request-line",
                    "11",
                    "--limit-request-fields",
                    "12",
                    "--limit-request-field-size",
                    "13",
                    "--limit-request-body",
                    "14",
                    "--static-dir",
                    "s",
                    "--access-logfile",
                    "a",
                    "--access-logformat",
                    "%(h)s %(D)s",
                    "--error-logfile",
                    "e",
                    "--log-level",
                    "debug",
                    "--pid",
                    "p",
                    "--user",
                    "u",
                    "--group",
                    "g",
                    "--umask",
                    "027",
                    "--env",
                    "A=1",
                    "--forwarded-allow-ips",
                    "1.1.1.1",
                    "--proxy-protocol",
                    "--proxy-allow-from",
                    "10.0.0.1",
                    "--statsd-host",
                    "127.0.0.1:8125",
                    "--statsd-prefix",
                    "web",
                    "demo"}),
      ElementsAre("bind=127.0.0.1:1", "workers=2", "worker_class=epoll", "threads=3",
                  "worker_connections=4", "backlog=5", "timeout=6", "graceful_timeout=7",
                  "keepalive=8", "max_requests=9", "max_requests_jitter=10",
                  "limit_request_line=11", "limit_request_fields=12", "limit_request_field_size=13",
                  "limit_request_body=14", "static_dir=s", "accesslog=a",
                  "access_log_format=%(h)s %(D)s", "errorlog=e", "loglevel=debug", "pidfile=p",
                  "user=u", "group=g", "umask=027", "raw_env=A=1", "forwarded_allow_ips=1.1.1.1",
                  "proxy_protocol=true", "proxy_allow_ips=10.0.0.1", "statsd_host=127.0.0.1:8125",
                  "statsd_prefix=web", "app=demo"));
}

TEST(CommandLine, ShortFlagsEqualsFormAndOrder) {
  auto cli = parse({"-c", "q.yaml", "-b", "unix:/a", "-w", "4", "-kgthread", "-t", "9",
                    "--bind=[::1]:2", "-p", "q.pid", "-w", "5"});
  ASSERT_TRUE(cli);
  EXPECT_EQ(cli->config_file, "q.yaml");
  EXPECT_THAT(cli->overrides,
              ElementsAre("bind=unix:/a", "workers=4", "worker_class=gthread", "timeout=9",
                          "bind=[::1]:2", "pidfile=q.pid", "workers=5"));
}

TEST(CommandLine, ModeFlags) {
  auto cli = parse({"--check-config", "--version"});
  ASSERT_TRUE(cli);
  EXPECT_TRUE(cli->check_config);
  EXPECT_TRUE(cli->show_version);
}

TEST(CommandLine, ValuesAreNotTypedHere) {
  // Typing happens in build(), where the message can name the key.
  EXPECT_THAT(overrides_of({"-w", "abc", "--timeout=-1"}),
              ElementsAre("workers=abc", "timeout=-1"));
}

TEST(CommandLine, HelpPrintsUsageAndReturnsNothing) {
  for (const char* flag : {"--help", "-h"}) {
    testing::internal::CaptureStdout();
    auto cli = parse({flag});
    std::string help = testing::internal::GetCapturedStdout();
    EXPECT_FALSE(cli);
    EXPECT_THAT(help, HasSubstr("--workers"));
    EXPECT_THAT(help, HasSubstr("--keep-alive"));
    EXPECT_THAT(help, HasSubstr("[key: keepalive]"));
    EXPECT_THAT(help, HasSubstr("APP"));
  }
}

TEST(CommandLine, BadFlagsAreConfigErrors) {
  for (auto args : {std::vector<const char*>{"--wrokers", "2"},
                    {"-w"},
                    {"app1", "app2"},
                    {"--check-config=maybe"}}) {
    std::vector<const char*> argv{"qilin"};
    argv.insert(argv.end(), args.begin(), args.end());
    std::string message =
        error_of([&] { parse_command_line(static_cast<int>(argv.size()), argv.data()); });
    EXPECT_THAT(message, HasSubstr("run with --help for usage")) << args.front();
  }
  EXPECT_THAT(error_of([] { parse({"--wrokers", "2"}); }), HasSubstr("--wrokers"));
}

// ---- build ----

class Build : public testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (std::filesystem::temp_directory_path() / "qilin-config-XXXXXX").string();
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override {
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }

  std::string write(std::string_view name, std::string_view text) {
    std::filesystem::path path = dir_ / name;
    std::ofstream(path) << text;
    return path.string();
  }

  Config build_from(std::initializer_list<const char*> args) {
    auto cli = parse(args);
    EXPECT_TRUE(cli);
    return build(cli.value_or(CommandLine{}), known_classes);
  }

  std::filesystem::path dir_;
};

TEST_F(Build, ChdirMustBeADirectoryWeCanEnter) {
  const std::string file = write("plain", "not a directory");
  const std::string yaml = write("q.yaml", "workers: 2\nchdir: " + dir_.string() + "\n");
  EXPECT_EQ(build_from({"-c", yaml.c_str()}).chdir, dir_.string());
  EXPECT_EQ(
      error_of([&] {
        build_from({"--chdir", file.c_str()});
      }),
      "key 'chdir' (from --chdir): cannot change directory to '" + file + "': Not a directory");
  const std::string missing = (dir_ / "missing").string();
  const std::string typo = write("typo.yaml", "workers: 2\nchdir: " + missing + "\n");
  EXPECT_EQ(error_of([&] {
              build_from({"-c", typo.c_str()});
            }),
            typo + ":2:1: key 'chdir': cannot change directory to '" + missing +
                "': No such file or directory");
}

// The master enters `chdir` on every start and reload; a directory removed
// since the file was checked fails there in the same words, line included.
TEST_F(Build, EnteringAChdirThatWentAwaySaysWhereItWasSet) {
  const auto gone = dir_ / "gone";
  std::filesystem::create_directory(gone);
  const std::string yaml = write("q.yaml", "workers: 2\nchdir: " + gone.string() + "\n");
  const Config config = build_from({"-c", yaml.c_str()});
  std::filesystem::remove(gone);
  EXPECT_EQ(error_of([&] { enter_directory(config); }),
            yaml + ":2:1: key 'chdir': cannot change directory to '" + gone.string() +
                "': No such file or directory");
  struct ReturnHere {  // the other tests' relative paths need the old directory back
    std::filesystem::path here = std::filesystem::current_path();
    ~ReturnHere() { std::filesystem::current_path(here); }
  } return_here;
  std::filesystem::create_directory(gone);
  enter_directory(config);
  EXPECT_EQ(std::filesystem::current_path(), gone);
}

TEST_F(Build, DefaultsWithoutAnything) {
  Config config = build_from({});
  EXPECT_EQ(to_yaml(config), to_yaml(Config{}));
}

TEST_F(Build, FlagValuesMustBeUtf8Too) {
  EXPECT_EQ(error_of([&] { build_from({"-p", "run\xfe.pid"}); }),
            "key 'pidfile' (from --pid): expected UTF-8 text, got byte 0xFE at offset 3");
}

TEST_F(Build, FlagsOverrideTheFile) {
  std::string file = write("q.yaml",
                           "workers: 2\nbind: [127.0.0.1:1, 127.0.0.1:2]\ntimeout: 5\n"
                           "forwarded_allow_ips: [10.0.0.1]\n");
  Config config =
      build_from({"-c", file.c_str(), "-w", "4", "--forwarded-allow-ips", "10.0.0.2,10.0.0.3"});
  EXPECT_EQ(config.workers, 4);
  EXPECT_EQ(config.timeout, 5);
  EXPECT_THAT(config.bind, ElementsAre("127.0.0.1:1", "127.0.0.1:2"));
  EXPECT_THAT(config.forwarded_allow_ips, ElementsAre("10.0.0.2", "10.0.0.3"));
  EXPECT_EQ(config.origin["workers"], "--workers");
  EXPECT_EQ(config.origin["timeout"], file + ":3:1");
  EXPECT_EQ(config.origin["forwarded_allow_ips"], "--forwarded-allow-ips");
}

TEST_F(Build, BindFlagsReplaceTheFilesList) {
  std::string file = write("q.yaml", "bind: [127.0.0.1:1, 127.0.0.1:2]\n");
  Config config = build_from({"-c", file.c_str(), "-b", "unix:/tmp/x", "-b", "[::1]:3"});
  EXPECT_THAT(config.bind, ElementsAre("unix:/tmp/x", "[::1]:3"));
  EXPECT_EQ(config.origin["bind"], "--bind");
  EXPECT_THAT(build_from({"-b", "0.0.0.0:9"}).bind, ElementsAre("0.0.0.0:9"));
}

TEST_F(Build, ProxyProtocolFlags) {
  Config config = build_from({"--proxy-protocol", "--proxy-allow-from", "10.0.0.1,10.0.0.2"});
  EXPECT_TRUE(config.proxy_protocol);
  EXPECT_THAT(config.proxy_allow_ips, ElementsAre("10.0.0.1", "10.0.0.2"));
  EXPECT_EQ(config.origin["proxy_allow_ips"], "--proxy-allow-from");
  EXPECT_EQ(error_of([&] {
              build_from({"--proxy-allow-from", "10.0.0.1,nowhere"});
            }),
            "key 'proxy_allow_ips' (from --proxy-allow-from): cannot use 'nowhere': expected an "
            "IPv4 or IPv6 address, a network like 10.0.0.0/8, or '*'");
}

TEST_F(Build, LastScalarFlagWins) {
  EXPECT_EQ(build_from({"-w", "2", "--workers", "3"}).workers, 3);
}

TEST_F(Build, PositionalApp) {
  Config config = build_from({"-w", "2", "libdemo.so"});
  EXPECT_EQ(config.app, "libdemo.so");
  EXPECT_EQ(config.origin["app"], "APP");
}

TEST_F(Build, BadFlagValueNamesKeyAndFlag) {
  EXPECT_EQ(error_of([&] {
              build_from({"-w", "abc"});
            }),
            "key 'workers' (from --workers): expected an integer, got 'abc'");
  EXPECT_EQ(error_of([&] {
              build_from({"--keep-alive", "1.5"});
            }),
            "key 'keepalive' (from --keep-alive): expected an integer, got '1.5'");
}

TEST_F(Build, ValidationNamesTheFlag) {
  EXPECT_EQ(error_of([&] {
              build_from({"-w", "0"});
            }),
            "key 'workers' (from --workers): must be at least 1, got 0");
  EXPECT_THAT(error_of([&] {
                build_from({"-k", "uring"});
              }),
              StartsWith("key 'worker_class' (from --worker-class): unknown worker class"));
  EXPECT_THAT(error_of([&] {
                build_from({"-b", "nowhere"});
              }),
              StartsWith("key 'bind' (from --bind): cannot use 'nowhere'"));
}

TEST_F(Build, ValidationNamesTheFileLine) {
  std::string file = write("q.yaml", "workers: 2\nworker_class: uring\n");
  EXPECT_THAT(error_of([&] {
                build_from({"-c", file.c_str()});
              }),
              StartsWith(file + ":2:1: key 'worker_class': unknown worker class 'uring'"));
  // A flag fixes what the file got wrong, and takes over the key's origin.
  Config config = build_from({"-c", file.c_str(), "-k", "epoll"});
  EXPECT_EQ(config.worker_class, "epoll");
  EXPECT_EQ(config.origin["worker_class"], "--worker-class");
}

TEST_F(Build, UnreadableConfigFile) {
  std::string missing = (dir_ / "missing.yaml").string();
  std::string message = error_of([&] { build_from({"-c", missing.c_str()}); });
  EXPECT_THAT(message, HasSubstr(missing));
  EXPECT_THAT(message, HasSubstr("No such file or directory"));
  std::string directory = dir_.string();
  EXPECT_THAT(error_of([&] {
                build_from({"-c", directory.c_str()});
              }),
              HasSubstr("Is a directory"));
}

TEST_F(Build, FileSyntaxErrorNamesTheFile) {
  std::string file = write("bad.yaml", "workers: [1,\n");
  EXPECT_THAT(error_of([&] {
                build_from({"-c", file.c_str()});
              }),
              AllOf(StartsWith(file + ":"), HasSubstr("invalid YAML")));
}

TEST_F(Build, HandWrittenOverrides) {
  CommandLine cli;
  cli.overrides = {"timeout=7", "bind=unix:/a", "bind=unix:/b"};
  Config config = build(cli, known_classes);
  EXPECT_EQ(config.timeout, 7);
  EXPECT_THAT(config.bind, ElementsAre("unix:/a", "unix:/b"));
  cli.overrides = {"timeout"};
  EXPECT_THAT(error_of([&] { build(cli, known_classes); }), HasSubstr("malformed override"));
  cli.overrides = {"wrokers=2"};
  EXPECT_THAT(error_of([&] { build(cli, known_classes); }),
              HasSubstr("unknown key 'wrokers' (did you mean 'workers'?)"));
}

}  // namespace
}  // namespace qilin::config

namespace qilin::config {
namespace {

TEST(Switches, ReusePortAndStatusBind) {
  Config config;
  apply_yaml(config, "reuse_port: true\nstatus_bind: 127.0.0.1:9191\n", "s.yaml");
  EXPECT_TRUE(config.reuse_port);
  EXPECT_EQ(config.status_bind, "127.0.0.1:9191");
  Config wrong;
  EXPECT_THROW(apply_yaml(wrong, "reuse_port: maybe\n", "s.yaml"), ConfigError);
  const std::string_view classes[] = {"sync"};
  Config clash;
  clash.status_bind = clash.bind.front();
  EXPECT_THROW(validate(clash, classes), ConfigError);

  const char* argv[] = {"qilin", "--reuse-port", "--status-bind", "127.0.0.1:9292"};
  auto cli = parse_command_line(4, argv);
  ASSERT_TRUE(cli);
  Config built = build(*cli, classes);
  EXPECT_TRUE(built.reuse_port);
  EXPECT_EQ(built.status_bind, "127.0.0.1:9292");
  Config round;
  apply_yaml(round, to_yaml(built), "round.yaml");
  EXPECT_TRUE(round.reuse_port);
}

TEST(ParseStatsdHost, GunicornsFormsWithStatsdsDefaultPort) {
  auto v4 = parse_statsd_host("10.0.0.1:9125");
  ASSERT_TRUE(v4);
  EXPECT_EQ(*v4, (BindAddress{.kind = BindAddress::Kind::Tcp4, .host = "10.0.0.1", .port = 9125}));
  auto local = parse_statsd_host("localhost");
  ASSERT_TRUE(local);
  EXPECT_EQ(local->host, "127.0.0.1");
  EXPECT_EQ(local->port, 8125);
  auto v6 = parse_statsd_host("[::1]");
  ASSERT_TRUE(v6);
  EXPECT_EQ(*v6, (BindAddress{.kind = BindAddress::Kind::Tcp6, .host = "::1", .port = 8125}));
  EXPECT_EQ(parse_statsd_host("[::1]:9")->port, 9);
  for (std::string_view bad : {"", "statsd.example:8125", "127.0.0.1:0", "127.0.0.1:65536",
                               "unix:/run/statsd.sock", "::1", "[::1]:", "127.0.0.1:x", "[]"})
    EXPECT_FALSE(parse_statsd_host(bad)) << bad;
}

TEST(Validate, StatsdSettingsNameKeyAndPosition) {
  const std::string_view classes[] = {"sync"};
  Config host = from_yaml("workers: 2\nstatsd_host: statsd.example:8125\n");
  EXPECT_THAT(error_of([&] { validate(host, classes); }),
              StartsWith("test.yaml:2:1: key 'statsd_host': cannot use 'statsd.example:8125'"));
  Config prefix = from_yaml("statsd_prefix: \"a:b\"\n");
  EXPECT_THAT(error_of([&] { validate(prefix, classes); }),
              StartsWith("test.yaml:1:1: key 'statsd_prefix': cannot use 'a:b'"));
  for (std::string_view bad : {"a|b", "a@b", "a b", "a\nb"}) {
    Config config;
    config.statsd_prefix = bad;
    EXPECT_THROW(validate(config, classes), ConfigError) << bad;
  }
  Config fine;
  fine.statsd_host = "127.0.0.1:8125";
  fine.statsd_prefix = "shop.web-1_a";
  EXPECT_NO_THROW(validate(fine, classes));
}

TEST(Switches, StatsdFlags) {
  const std::string_view classes[] = {"sync"};
  const char* argv[] = {"qilin", "--statsd-host", "[::1]:9125", "--statsd-prefix", "web"};
  auto cli = parse_command_line(5, argv);
  ASSERT_TRUE(cli);
  Config built = build(*cli, classes);
  EXPECT_EQ(built.statsd_host, "[::1]:9125");
  EXPECT_EQ(built.statsd_prefix, "web");
  const char* wrong[] = {"qilin", "--statsd-host", "nowhere"};
  auto bad = parse_command_line(3, wrong);
  ASSERT_TRUE(bad);
  EXPECT_THAT(error_of([&] { build(*bad, classes); }),
              StartsWith("key 'statsd_host' (from --statsd-host): cannot use 'nowhere'"));
}

TEST(AccessLogFormat, DefaultIsGunicorns) {
  EXPECT_EQ(Config().access_log_format,
            R"(%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s")");
}

TEST(AccessLogFormat, SplitsTextAndAtoms) {
  auto pieces = parse_access_log_format("[%(h)s] 100%% %({X-Trace}i)s%({Server}o)s %({HOME}e)s");
  ASSERT_EQ(pieces.size(), 7u);
  EXPECT_EQ(pieces[0].atom, LogAtom::kText);
  EXPECT_EQ(pieces[0].text, "[");
  EXPECT_EQ(pieces[1].atom, LogAtom::kRemoteAddress);
  EXPECT_EQ(pieces[2].text, "] 100% ");  // %% joins the text around it
  EXPECT_EQ(pieces[3].atom, LogAtom::kRequestHeader);
  EXPECT_EQ(pieces[3].text, "X-Trace");
  EXPECT_EQ(pieces[4].atom, LogAtom::kResponseHeader);
  EXPECT_EQ(pieces[4].text, "Server");
  EXPECT_EQ(pieces[5].text, " ");
  EXPECT_EQ(pieces[6].atom, LogAtom::kEnvironment);
  EXPECT_EQ(pieces[6].text, "HOME");
  EXPECT_TRUE(parse_access_log_format("").empty());
  EXPECT_EQ(parse_access_log_format("%(h)s%(l)s%(u)s%(t)s%(r)s%(m)s%(U)s%(q)s%(H)s%(s)s%(b)s%(B)s"
                                    "%(f)s%(a)s%(T)s%(M)s%(D)s%(L)s%(p)s")
                .size(),
            19u);
}

TEST(AccessLogFormat, RefusesNamingTheCharacter) {
  auto error_of = [](std::string_view format) {
    try {
      parse_access_log_format(format);
    } catch (const std::invalid_argument& error) {
      return std::string(error.what());
    }
    return std::string("accepted");
  };
  EXPECT_EQ(error_of("%(h)s %(x)s"),
            "character 7: unknown atom %(x)s (known: h l u t r m U q H s b B f a T M D L p, "
            "{header}i, {header}o, {variable}e)");
  EXPECT_THAT(error_of("%(h)d"), StartsWith("character 4: an atom ends with )s"));
  EXPECT_THAT(error_of("50% off"), StartsWith("character 3: '%' starts an atom"));
  EXPECT_THAT(error_of("%(h"), StartsWith("character 1: %( is never closed"));
  EXPECT_THAT(error_of("%({}i)s"), StartsWith("character 1: an empty {} names no field"));
  EXPECT_THAT(error_of("%({X}z)s"), StartsWith("character 1: unknown atom %({X}z)s"));
  EXPECT_THAT(error_of("trailing %"), StartsWith("character 10: '%' starts an atom"));
}

TEST(Validate, AccessLogFormatNamesKeyAndPosition) {
  const std::string_view classes[] = {"sync"};
  Config config = from_yaml("workers: 2\naccess_log_format: \"%(h)s %(nope)s\"\n");
  EXPECT_THAT(error_of([&] { validate(config, classes); }),
              StartsWith("test.yaml:2:1: key 'access_log_format': character 7: unknown atom "
                         "%(nope)s"));
}

}  // namespace
}  // namespace qilin::config

namespace qilin::config {
namespace {

// ---- user, group, umask ----

// The account every Debian system has; its numbers differ elsewhere, so the
// tests ask the passwd database rather than assume 65534.
const passwd& nobody() {
  static const passwd* entry = ::getpwnam("nobody");
  if (entry == nullptr) throw std::runtime_error("no 'nobody' account");
  return *entry;
}

TEST(WorkerIdentity, NoneWhenNeitherKeyIsSet) {
  EXPECT_EQ(worker_identity(Config{}), std::nullopt);
}

TEST(WorkerIdentity, UserByNameOrNumberTakesItsPrimaryGroup) {
  for (const std::string& user : {std::string("nobody"), std::to_string(nobody().pw_uid)}) {
    Config config;
    config.user = user;
    if (::geteuid() != 0 && ::geteuid() != nobody().pw_uid) GTEST_SKIP() << "needs root";
    auto identity = worker_identity(config);
    ASSERT_TRUE(identity) << user;
    EXPECT_EQ(identity->uid, nobody().pw_uid) << user;
    EXPECT_EQ(identity->gid, nobody().pw_gid) << user;
    EXPECT_EQ(identity->user, "nobody") << user;  // for initgroups
  }
}

TEST(WorkerIdentity, GroupOverridesThePrimaryGroup) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root";
  Config config;
  config.user = "nobody";
  config.group = "root";
  EXPECT_EQ(worker_identity(config)->gid, 0u);
  config.group = "4242";  // a number is taken as it is
  EXPECT_EQ(worker_identity(config)->gid, 4242u);
}

TEST(WorkerIdentity, UnknownNamesAndAUidWithoutGroupNameKeyAndPosition) {
  EXPECT_EQ(validation_error("user: no-such-user-here\n"),
            "test.yaml:1:1: key 'user': no such user 'no-such-user-here'");
  EXPECT_EQ(validation_error("group: no-such-group-here\n"),
            "test.yaml:1:1: key 'group': no such group 'no-such-group-here'");
  // Keeping the master's group would leave the workers in root's group.
  EXPECT_EQ(validation_error("user: 4242424\n"),
            "test.yaml:1:1: key 'user': uid 4242424 has no passwd entry, so no primary group: "
            "set 'group' too");
}

TEST(WorkerIdentity, AnotherUserNeedsRoot) {
  // In a child that is not root (it gives root up first when it has it), so
  // the check is the one a user started without privileges meets.
  EXPECT_EXIT(
      {
        if (::geteuid() == 0 && (::setgid(nobody().pw_gid) != 0 || ::setuid(nobody().pw_uid) != 0))
          std::_Exit(3);
        Config config = from_yaml("user: root\n");
        std::string message = error_of([&] { validate(config, known_classes); });
        std::fputs(message.c_str(), stderr);
        std::_Exit(message.find("key 'user': running workers as uid 0 gid 0 needs root") !=
                           std::string::npos
                       ? 0
                       : 1);
      },
      ::testing::ExitedWithCode(0), "needs root");
}

TEST(Umask, OctalLikeTheShells) {
  for (auto [text, mask] : {std::pair{"027", 027u}, {"0022", 022u}, {"7", 07u}, {"0o777", 0777u}}) {
    Config config;
    config.umask = text;
    EXPECT_EQ(file_creation_mask(config), mask) << text;
  }
  EXPECT_EQ(file_creation_mask(Config{}), std::nullopt);  // empty: the inherited mask stays
  for (const char* bad : {"18", "1000", "-1", "0x12", "u=rwx", "0o"}) {
    EXPECT_EQ(validation_error(std::string("umask: \"") + bad + "\"\n"),
              std::string("test.yaml:1:1: key 'umask': expected an octal mask from 0 to 777 "
                          "(like 027), got '") +
                  bad + "'")
        << bad;
  }
}

}  // namespace
}  // namespace qilin::config

namespace qilin::config {
namespace {

TEST(RawEnv, NameEqualsValueFromYamlAndRepeatedFlags) {
  Config config = from_yaml("raw_env: [\"DATABASE_URL=postgres://db/app?a=b\", \"EMPTY=\"]\n");
  EXPECT_THAT(config.raw_env, ElementsAre("DATABASE_URL=postgres://db/app?a=b", "EMPTY="));
  EXPECT_NO_THROW(validate(config, known_classes));
  auto cli = parse({"-e", "A=1,2", "--env", "B=x=y"});
  ASSERT_TRUE(cli);
  Config built = build(*cli, known_classes);
  EXPECT_THAT(built.raw_env, ElementsAre("A=1,2", "B=x=y"));  // commas stay in the value
  for (const char* bad : {"NOVALUE", "=value"})
    EXPECT_EQ(
        validation_error(std::string("raw_env: ['") + bad + "']\n"),
        std::string("test.yaml:1:1: key 'raw_env': cannot use '") + bad + "': expected NAME=VALUE")
        << bad;
}

}  // namespace
}  // namespace qilin::config

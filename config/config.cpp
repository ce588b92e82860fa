// Settings: one table of keys drives reading YAML, applying flags, range
// checks and writing YAML back, so a new setting is a field plus one row.
#include "config/config.hpp"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <concepts>
#include <cstdio>
#include <cstring>
#include <iterator>
#include <limits>
#include <memory>
#include <system_error>
#include <type_traits>
#include <variant>

#include "config/allow_list.hpp"
#include "config/override.hpp"

namespace qilin::config {
namespace {

using StringList = std::vector<std::string>;
using Field = std::variant<bool Config::*, int Config::*, int64_t Config::*, std::string Config::*,
                           StringList Config::*>;

constexpr int64_t no_limit = std::numeric_limits<int64_t>::max();

struct Key {
  std::string_view name;
  Field field;
  // Inclusive range checked by validate(); integer keys only.
  int64_t min = 0;
  int64_t max = no_limit;
  // A list key given as one string is split on commas (gunicorn's
  // forwarded_allow_ips); otherwise the string is the list's only entry.
  bool comma_separated = false;
};

// In the order to_yaml() writes them, which is the order of Config's fields.
const std::array key_table{
    Key{.name = "bind", .field = &Config::bind},
    Key{.name = "workers", .field = &Config::workers, .min = 1, .max = 1024},
    Key{.name = "worker_class", .field = &Config::worker_class},
    Key{.name = "threads", .field = &Config::threads, .min = 1, .max = 4096},
    Key{.name = "worker_connections", .field = &Config::worker_connections, .min = 1},
    Key{.name = "backlog", .field = &Config::backlog, .min = 1},
    Key{.name = "timeout", .field = &Config::timeout},
    Key{.name = "graceful_timeout", .field = &Config::graceful_timeout},
    Key{.name = "keepalive", .field = &Config::keepalive},
    Key{.name = "max_requests", .field = &Config::max_requests},
    Key{.name = "max_requests_jitter", .field = &Config::max_requests_jitter},
    // gunicorn's bounds; a 0 line limit means no limit, 0 fields means 32768.
    Key{.name = "limit_request_line", .field = &Config::limit_request_line, .max = 8190},
    Key{.name = "limit_request_fields", .field = &Config::limit_request_fields, .max = 32768},
    Key{.name = "limit_request_field_size", .field = &Config::limit_request_field_size},
    Key{.name = "limit_request_body", .field = &Config::limit_request_body},
    Key{.name = "app", .field = &Config::app},
    Key{.name = "preload_app", .field = &Config::preload_app},
    Key{.name = "static_dir", .field = &Config::static_dir},
    Key{.name = "accesslog", .field = &Config::accesslog},
    Key{.name = "access_log_format", .field = &Config::access_log_format},
    Key{.name = "errorlog", .field = &Config::errorlog},
    Key{.name = "loglevel", .field = &Config::loglevel},
    Key{.name = "pidfile", .field = &Config::pidfile},
    Key{.name = "chdir", .field = &Config::chdir},
    Key{.name = "user", .field = &Config::user},
    Key{.name = "group", .field = &Config::group},
    Key{.name = "umask", .field = &Config::umask},
    Key{.name = "raw_env", .field = &Config::raw_env},
    Key{.name = "forwarded_allow_ips",
        .field = &Config::forwarded_allow_ips,
        .comma_separated = true},
    Key{.name = "proxy_protocol", .field = &Config::proxy_protocol},
    Key{.name = "proxy_allow_ips", .field = &Config::proxy_allow_ips, .comma_separated = true},
    Key{.name = "reuse_port", .field = &Config::reuse_port},
    Key{.name = "status_bind", .field = &Config::status_bind},
    Key{.name = "statsd_host", .field = &Config::statsd_host},
    Key{.name = "statsd_prefix", .field = &Config::statsd_prefix},
};

constexpr std::array<std::string_view, 5> log_levels{"debug", "info", "warning", "error",
                                                     "critical"};

const Key* find_key(std::string_view name) {
  auto it = std::ranges::find(key_table, name, &Key::name);
  return it == key_table.end() ? nullptr : &*it;
}

size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t above = row[j];
      size_t substitution = diagonal + (a[i - 1] == b[j - 1] ? 0 : 1);
      row[j] = std::min({above + 1, row[j - 1] + 1, substitution});
      diagonal = above;
    }
  }
  return row[b.size()];
}

std::string unknown_key_message(std::string_view name) {
  const Key* closest = nullptr;
  size_t best = 3;  // suggest only within two edits: further off is noise
  for (const Key& key : key_table) {
    if (size_t distance = edit_distance(name, key.name); distance < best) {
      best = distance;
      closest = &key;
    }
  }
  if (closest == nullptr) return fmt::format("unknown key '{}'", name);
  return fmt::format("unknown key '{}' (did you mean '{}'?)", name, closest->name);
}

// ---- where a value came from, for messages ----

std::string position(std::string_view source, const YAML::Mark& mark) {
  if (mark.is_null()) return std::string(source);
  return fmt::format("{}:{}:{}", source, mark.line + 1, mark.column + 1);
}

// Origins are either YAML positions ("FILE:LINE:COLUMN") or the flag that set
// the key ("--workers", "APP"); they read differently in front of a message.
bool is_yaml_position(std::string_view origin) {
  for (int part = 0; part < 2; ++part) {
    size_t colon = origin.rfind(':');
    if (colon == std::string_view::npos) return false;
    std::string_view digits = origin.substr(colon + 1);
    if (digits.empty() || !std::ranges::all_of(digits, [](char c) { return c >= '0' && c <= '9'; }))
      return false;
    origin = origin.substr(0, colon);
  }
  return true;
}

[[noreturn]] void fail(std::string_view origin, std::string_view key, std::string_view problem) {
  if (origin.empty()) throw ConfigError(fmt::format("key '{}': {}", key, problem));
  if (is_yaml_position(origin))
    throw ConfigError(fmt::format("{}: key '{}': {}", origin, key, problem));
  throw ConfigError(fmt::format("key '{}' (from {}): {}", key, origin, problem));
}

std::string describe(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Null:
      return "null";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "a mapping";
    case YAML::NodeType::Scalar:
      return fmt::format("'{}'", node.Scalar());
    case YAML::NodeType::Undefined:
      break;
  }
  return "nothing";
}

// ---- turning text into a field's type; YAML and flags share these ----

// Plain decimal only: YAML would also read 0x10, 1e3 or 1_000 as numbers, but
// a setting written that way is more likely a typo than intent.
template <std::integral T>
T parse_integer(const Key& key, std::string_view text, std::string_view origin) {
  std::string_view digits = text;
  if (digits.size() > 1 && digits[0] == '+' && digits[1] != '-') digits.remove_prefix(1);
  T value{};
  auto [end, error] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
  if (error == std::errc::result_out_of_range)
    fail(origin, key.name, fmt::format("expected an integer, got '{}' (out of range)", text));
  if (digits.empty() || error != std::errc{} || end != digits.data() + digits.size())
    fail(origin, key.name, fmt::format("expected an integer, got '{}'", text));
  return value;
}

std::string_view trim(std::string_view text) {
  auto is_space = [](char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; };
  while (!text.empty() && is_space(text.front())) text.remove_prefix(1);
  while (!text.empty() && is_space(text.back())) text.remove_suffix(1);
  return text;
}

// YAML text is Unicode, and --check-config prints settings back as YAML: a
// byte that is not UTF-8, or a noncharacter (U+FDD0..U+FDEF, U+xFFFE,
// U+xFFFF, which yaml-cpp writes as U+FFFD), would come back as another
// setting. So string settings, from the file or from a flag, must be
// well-formed UTF-8 (RFC 3629: no overlong forms, no surrogates, nothing past
// U+10FFFF) without noncharacters. Returns what is wrong, or nothing.
size_t utf8_sequence_length(unsigned char lead) {
  if (lead < 0x80) return 1;
  if (lead >= 0xC2 && lead <= 0xDF) return 2;
  if (lead >= 0xE0 && lead <= 0xEF) return 3;
  if (lead >= 0xF0 && lead <= 0xF4) return 4;
  return 0;  // a continuation byte, an overlong lead (C0, C1) or past U+10FFFF
}

std::optional<std::string> not_unicode_text(std::string_view text) {
  size_t at = 0;
  while (at < text.size()) {
    const auto lead = static_cast<unsigned char>(text[at]);
    const size_t length = utf8_sequence_length(lead);
    const auto bad_byte = [&] {
      return fmt::format("byte 0x{:02X} at offset {}", static_cast<unsigned char>(text[at]), at);
    };
    if (length == 0 || at + length > text.size()) return bad_byte();
    // The second byte's range depends on the first (overlongs, surrogates, > U+10FFFF).
    const auto second = length > 1 ? static_cast<unsigned char>(text[at + 1]) : 0x80;
    const unsigned char low = lead == 0xE0 ? 0xA0 : lead == 0xF0 ? 0x90 : 0x80;
    const unsigned char high = lead == 0xED ? 0x9F : lead == 0xF4 ? 0x8F : 0xBF;
    if (second < low || second > high) return bad_byte();
    char32_t code_point = length == 1 ? lead : lead & (0x7F >> length);
    for (size_t i = 1; i < length; ++i) {
      const auto next = static_cast<unsigned char>(text[at + i]);
      if ((next & 0xC0) != 0x80) return bad_byte();
      code_point = code_point << 6 | (next & 0x3F);
    }
    if ((code_point >= 0xFDD0 && code_point <= 0xFDEF) || (code_point & 0xFFFE) == 0xFFFE)
      return fmt::format("U+{:04X} (a Unicode noncharacter) at offset {}",
                         static_cast<uint32_t>(code_point), at);
    at += length;
  }
  return std::nullopt;
}

std::string_view unicode_text(const Key& key, std::string_view text, std::string_view origin) {
  if (auto wrong = not_unicode_text(text))
    fail(origin, key.name, fmt::format("expected UTF-8 text, got {}", *wrong));
  return text;
}

StringList list_from_string(const Key& key, std::string_view text) {
  if (!key.comma_separated) return {std::string(text)};
  StringList items;
  size_t start = 0;
  while (start <= text.size()) {
    size_t comma = std::min(text.find(',', start), text.size());
    if (auto item = trim(text.substr(start, comma - start)); !item.empty())
      items.emplace_back(item);
    start = comma + 1;
  }
  return items;
}

// YAML 1.2's booleans only: "yes"/"on" are strings there, and a setting
// that reads as either is a trap.
bool parse_bool(const Key& key, std::string_view text, std::string_view origin) {
  if (text == "true" || text == "True" || text == "TRUE") return true;
  if (text == "false" || text == "False" || text == "FALSE") return false;
  fail(origin, key.name, fmt::format("expected true or false, got '{}'", text));
}

template <class T>
T from_text(const Key& key, std::string_view text, std::string_view origin) {
  if constexpr (std::is_same_v<T, bool>) {
    return parse_bool(key, text, origin);
  } else if constexpr (std::is_integral_v<T>) {
    return parse_integer<T>(key, text, origin);
  } else if constexpr (std::is_same_v<T, StringList>) {
    return list_from_string(key, unicode_text(key, text, origin));
  } else {
    static_assert(std::is_same_v<T, std::string>);
    return std::string(unicode_text(key, text, origin));
  }
}

// `origin` is the value's position (the key's, for an implicit null).
template <class T>
T from_yaml(const Key& key, const YAML::Node& node, std::string_view source,
            std::string_view origin) {
  if constexpr (std::is_same_v<T, bool>) {
    if (!node.IsScalar())
      fail(origin, key.name, fmt::format("expected true or false, got {}", describe(node)));
    return parse_bool(key, node.Scalar(), origin);
  } else if constexpr (std::is_integral_v<T>) {
    if (!node.IsScalar())
      fail(origin, key.name, fmt::format("expected an integer, got {}", describe(node)));
    return parse_integer<T>(key, node.Scalar(), origin);
  } else if constexpr (std::is_same_v<T, std::string>) {
    if (node.IsNull()) return {};
    if (!node.IsScalar())
      fail(origin, key.name, fmt::format("expected a string, got {}", describe(node)));
    return std::string(unicode_text(key, node.Scalar(), origin));
  } else {
    static_assert(std::is_same_v<T, StringList>);
    if (node.IsNull()) return {};
    if (node.IsScalar()) return list_from_string(key, unicode_text(key, node.Scalar(), origin));
    if (!node.IsSequence())
      fail(origin, key.name,
           fmt::format("expected a string or a list of strings, got {}", describe(node)));
    StringList items;
    for (const YAML::Node& item : node) {
      if (!item.IsScalar())
        fail(position(source, item.Mark()), key.name,
             fmt::format("expected a list of strings, got {} in it", describe(item)));
      items.emplace_back(unicode_text(key, item.Scalar(), position(source, item.Mark())));
    }
    return items;
  }
}

std::string read_file(const std::string& path) {
  auto fail_with_errno = [&path] {
    throw ConfigError(fmt::format("cannot read config file '{}': {}", path,
                                  std::generic_category().message(errno)));
  };
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> file(std::fopen(path.c_str(), "rb"),
                                                       &std::fclose);
  if (!file) fail_with_errno();
  std::string text;
  std::array<char, 4096> chunk;
  while (size_t got = std::fread(chunk.data(), 1, chunk.size(), file.get())) {
    text.append(chunk.data(), got);
  }
  // A directory opens fine on Linux and fails here, with EISDIR.
  if (std::ferror(file.get())) fail_with_errno();
  return text;
}

std::optional<uint16_t> parse_port(std::string_view text) {
  if (text.empty() || text.size() > 5 ||
      !std::ranges::all_of(text, [](char c) { return c >= '0' && c <= '9'; }))
    return std::nullopt;
  unsigned port = 0;
  std::from_chars(text.data(), text.data() + text.size(), port);
  // Port 0 asks the kernel for a free port; the master logs the one it got.
  if (port > 65535) return std::nullopt;
  return static_cast<uint16_t>(port);
}

bool is_address(int family, std::string_view host) {
  std::array<unsigned char, sizeof(in6_addr)> binary;
  return inet_pton(family, std::string(host).c_str(), binary.data()) == 1;
}

}  // namespace

void apply_yaml(Config& into, std::string_view yaml_text, std::string_view source_name) {
  YAML::Node root;
  try {
    root = YAML::Load(std::string(yaml_text));
  } catch (const YAML::Exception& error) {
    throw ConfigError(
        fmt::format("{}: invalid YAML: {}", position(source_name, error.mark), error.msg));
  }
  if (root.IsNull()) return;  // an empty file, or only comments: nothing to change
  if (!root.IsMap()) {
    throw ConfigError(fmt::format("{}: expected a mapping of settings (key: value), got {}",
                                  position(source_name, root.Mark()), describe(root)));
  }

  // Work on a copy so a bad file leaves `into` untouched (a HUP reload keeps
  // running on the old settings).
  Config result = into;
  std::map<std::string, std::string, std::less<>> first_seen;
  for (const auto& entry : root) {
    const YAML::Node& name_node = entry.first;
    const YAML::Node& value = entry.second;
    std::string key_position = position(source_name, name_node.Mark());
    if (!name_node.IsScalar()) {
      throw ConfigError(
          fmt::format("{}: expected a key name, got {}", key_position, describe(name_node)));
    }
    const std::string& name = name_node.Scalar();
    const Key* key = find_key(name);
    if (key == nullptr)
      throw ConfigError(fmt::format("{}: {}", key_position, unknown_key_message(name)));
    // yaml-cpp keeps both entries of a repeated key; which one wins would be
    // an accident of iteration order.
    if (auto [earlier, inserted] = first_seen.emplace(name, key_position); !inserted) {
      throw ConfigError(fmt::format("{}: key '{}' given twice (first at {})", key_position, name,
                                    earlier->second));
    }
    // An implicit null ("app:") is marked at the next token, often a line below.
    std::string value_position =
        value.IsNull() ? key_position : position(source_name, value.Mark());
    std::visit(
        [&]<class T>(T Config::*field) {
          result.*field = from_yaml<T>(*key, value, source_name, value_position);
        },
        key->field);
    result.origin.insert_or_assign(name, key_position);
  }
  into = std::move(result);
}

void apply_yaml_file(Config& into, const std::string& path) {
  apply_yaml(into, read_file(path), path);
}

void apply_override(Config& into, std::string_view name, std::string_view value,
                    std::string_view origin, bool first_for_key) {
  const Key* key = find_key(name);
  if (key == nullptr)
    throw ConfigError(fmt::format("{} (from {})", unknown_key_message(name), origin));
  std::visit(
      [&]<class T>(T Config::*field) {
        T parsed = from_text<T>(*key, value, origin);
        if constexpr (std::is_same_v<T, StringList>) {
          if (first_for_key) (into.*field).clear();
          std::ranges::move(parsed, std::back_inserter(into.*field));
        } else {
          into.*field = std::move(parsed);
        }
      },
      key->field);
  into.origin.insert_or_assign(std::string(name), std::string(origin));
}

std::optional<BindAddress> parse_bind(std::string_view text) {
  constexpr std::string_view unix_prefix = "unix:";
  if (text.starts_with(unix_prefix)) {
    std::string_view path = text.substr(unix_prefix.size());
    if (path.empty()) return std::nullopt;
    return BindAddress{.kind = BindAddress::Kind::Unix, .path = std::string(path)};
  }
  size_t colon = text.rfind(':');
  if (colon == std::string_view::npos) return std::nullopt;
  std::optional<uint16_t> port = parse_port(text.substr(colon + 1));
  if (!port) return std::nullopt;
  std::string_view host = text.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
    if (!is_address(AF_INET6, host)) return std::nullopt;
    return BindAddress{.kind = BindAddress::Kind::Tcp6, .host = std::string(host), .port = *port};
  }
  if (host == "localhost") host = "127.0.0.1";
  if (!is_address(AF_INET, host)) return std::nullopt;
  return BindAddress{.kind = BindAddress::Kind::Tcp4, .host = std::string(host), .port = *port};
}

std::optional<BindAddress> parse_statsd_host(std::string_view text) {
  constexpr std::string_view statsd_port = ":8125";
  const bool bracketed = text.starts_with('[');
  const bool has_port = bracketed ? !text.ends_with(']') : text.find(':') != std::string_view::npos;
  const std::string with_port =
      has_port ? std::string(text) : std::string(text) + std::string(statsd_port);
  if (with_port.starts_with("unix:")) return std::nullopt;
  auto address = parse_bind(with_port);
  if (!address || address->port == 0) return std::nullopt;
  return address;
}

void validate_status_bind(const Config& config, std::string_view origin);
void validate_statsd(const Config& config, std::string_view host_origin,
                     std::string_view prefix_origin);

namespace {

// Where `key` was set ("FILE:LINE:COLUMN" or a flag), empty for a default.
std::string_view origin_in(const Config& config, std::string_view key) {
  auto it = config.origin.find(key);
  return it == config.origin.end() ? std::string_view{} : std::string_view(it->second);
}

// validate()'s check of `chdir` and enter_directory()'s chdir say it alike.
[[noreturn]] void fail_to_enter(const Config& config, int error) {
  fail(origin_in(config, "chdir"), "chdir",
       fmt::format("cannot change directory to '{}': {}", config.chdir, std::strerror(error)));
}

// Someone coming from gunicorn types its class names; point at ours.
std::string gunicorn_class_hint(std::string_view name,
                                std::span<const std::string_view> worker_classes) {
  static constexpr std::pair<std::string_view, std::string_view> kOurs[] = {
      {"gthread", "threaded"}, {"gevent", "epoll"}, {"eventlet", "epoll"}, {"tornado", "epoll"}};
  for (auto [theirs, ours] : kOurs)
    if (name == theirs && std::ranges::find(worker_classes, ours) != worker_classes.end())
      return fmt::format("; gunicorn's {} is closest to {}", theirs, ours);
  return {};
}

}  // namespace

void validate(const Config& config, std::span<const std::string_view> worker_classes) {
  auto origin_of = [&config](std::string_view key) { return origin_in(config, key); };

  for (const Key& key : key_table) {
    std::visit(
        [&]<class T>(T Config::*field) {
          if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
            int64_t value = config.*field;
            if (value < key.min)
              fail(origin_of(key.name), key.name,
                   fmt::format("must be at least {}, got {}", key.min, value));
            if (value > key.max)
              fail(origin_of(key.name), key.name,
                   fmt::format("must be at most {}, got {}", key.max, value));
          }
        },
        key.field);
  }

  if (std::ranges::find(worker_classes, config.worker_class) == worker_classes.end()) {
    std::string known =
        worker_classes.empty() ? "none" : fmt::format("{}", fmt::join(worker_classes, ", "));
    fail(origin_of("worker_class"), "worker_class",
         fmt::format("unknown worker class '{}' (known: {}){}", config.worker_class, known,
                     gunicorn_class_hint(config.worker_class, worker_classes)));
  }
  if (std::ranges::find(log_levels, config.loglevel) == log_levels.end()) {
    fail(origin_of("loglevel"), "loglevel",
         fmt::format("must be one of {}, got '{}'", fmt::join(log_levels, ", "), config.loglevel));
  }
  if (config.bind.empty()) fail(origin_of("bind"), "bind", "at least one address is required");
  validate_status_bind(config, origin_of("status_bind"));
  // A typo here (a host name, a network with host bits) would silently
  // distrust every proxy, or turn every balancer's connection into a 400.
  const std::pair<std::string_view, const StringList*> allow_lists[] = {
      {"forwarded_allow_ips", &config.forwarded_allow_ips},
      {"proxy_allow_ips", &config.proxy_allow_ips}};
  for (auto [key, entries] : allow_lists) {
    try {
      AllowList checked(*entries);
    } catch (const std::invalid_argument& error) {
      fail(origin_of(key), key, error.what());
    }
  }
  validate_statsd(config, origin_of("statsd_host"), origin_of("statsd_prefix"));
  worker_identity(config);
  file_creation_mask(config);
  // Checked here, where qilin starts and where a reload reads its file, so a
  // typo is a configuration error with its line rather than a failed start.
  if (!config.chdir.empty()) {
    struct stat status {};
    const int error = ::stat(config.chdir.c_str(), &status) != 0  ? errno
                      : !S_ISDIR(status.st_mode)                  ? ENOTDIR
                      : ::access(config.chdir.c_str(), X_OK) != 0 ? errno
                                                                  : 0;
    if (error != 0) fail_to_enter(config, error);
  }
  for (const std::string& variable : config.raw_env)
    if (variable.find('=') == std::string::npos || variable.starts_with('='))
      fail(origin_of("raw_env"), "raw_env",
           fmt::format("cannot use '{}': expected NAME=VALUE", variable));
  try {
    parse_access_log_format(config.access_log_format);
  } catch (const std::invalid_argument& error) {
    fail(origin_of("access_log_format"), "access_log_format", error.what());
  }
  for (const std::string& address : config.bind) {
    if (!parse_bind(address)) {
      fail(origin_of("bind"), "bind",
           fmt::format("cannot use '{}': expected HOST:PORT (IPv4 address or localhost), "
                       "[IPv6 address]:PORT or unix:PATH, with PORT 0-65535 (0: any free port)",
                       address));
    }
  }
}

void validate_status_bind(const Config& config, std::string_view origin) {
  if (config.status_bind.empty()) return;
  if (!parse_bind(config.status_bind))
    fail(origin, "status_bind",
         fmt::format("cannot use '{}': expected an address like bind's", config.status_bind));
  if (std::ranges::find(config.bind, config.status_bind) != config.bind.end())
    fail(origin, "status_bind",
         "must differ from every bind address: status is never served on the app's port");
}

void validate_statsd(const Config& config, std::string_view host_origin,
                     std::string_view prefix_origin) {
  if (!config.statsd_host.empty() && !parse_statsd_host(config.statsd_host))
    fail(host_origin, "statsd_host",
         fmt::format("cannot use '{}': expected HOST[:PORT] (IPv4 address or localhost) or "
                     "[IPv6 address][:PORT], with PORT 1-65535 (8125 when left out)",
                     config.statsd_host));
  // A StatsD line is NAME:VALUE|TYPE[|@RATE], one per line.
  const bool delimits = std::ranges::any_of(config.statsd_prefix, [](char c) {
    return c == ':' || c == '|' || c == '@' || std::isspace(static_cast<unsigned char>(c)) ||
           std::iscntrl(static_cast<unsigned char>(c));
  });
  if (delimits)
    fail(prefix_origin, "statsd_prefix",
         fmt::format("cannot use '{}': ':', '|', '@' and white space delimit StatsD lines",
                     config.statsd_prefix));
}

namespace {

// yaml-cpp writes a string holding a control character (a CR, say) as a plain
// scalar, and YAML reads that back as a different string; in double quotes it
// is escaped and round-trips.
void emit(YAML::Emitter& out, const std::string& text) {
  const bool has_control =
      std::any_of(text.begin(), text.end(), [](unsigned char c) { return c < 0x20 || c == 0x7f; });
  if (has_control) out << YAML::DoubleQuoted;
  out << text;
}

void emit(YAML::Emitter& out, const std::vector<std::string>& list) {
  out << YAML::BeginSeq;
  for (const std::string& item : list) emit(out, item);
  out << YAML::EndSeq;
}

template <class T>
void emit(YAML::Emitter& out, const T& value) {
  out << value;
}

}  // namespace

std::optional<sys::Identity> worker_identity(const Config& config) {
  if (config.user.empty() && config.group.empty()) return std::nullopt;
  sys::Identity identity{.uid = ::geteuid(), .gid = ::getegid(), .user = {}};
  std::optional<gid_t> primary_group;
  if (!config.user.empty()) {
    auto account = sys::find_user(config.user);
    if (!account)
      fail(origin_in(config, "user"), "user", fmt::format("no such user '{}'", config.user));
    identity.uid = account->uid;
    identity.user = account->name;
    primary_group = account->primary_group;
  }
  if (!config.group.empty()) {
    auto gid = sys::find_group(config.group);
    if (!gid)
      fail(origin_in(config, "group"), "group", fmt::format("no such group '{}'", config.group));
    identity.gid = *gid;
  } else if (primary_group) {
    identity.gid = *primary_group;
  } else {
    // Keeping the master's group would leave the worker in root's group.
    fail(origin_in(config, "user"), "user",
         fmt::format("uid {} has no passwd entry, so no primary group: set 'group' too",
                     config.user));
  }
  if (!sys::can_become(identity)) {
    const std::string_view key = config.user.empty() ? "group" : "user";
    fail(origin_in(config, key), key,
         fmt::format("running workers as uid {} gid {} needs root; qilin runs as uid {}",
                     identity.uid, identity.gid, ::geteuid()));
  }
  return identity;
}

std::optional<unsigned> file_creation_mask(const Config& config) {
  if (config.umask.empty()) return std::nullopt;
  std::string_view digits = config.umask;
  if (digits.starts_with("0o") || digits.starts_with("0O")) digits.remove_prefix(2);
  unsigned mask = 0;
  auto [end, error] = std::from_chars(digits.data(), digits.data() + digits.size(), mask, 8);
  if (digits.empty() || error != std::errc{} || end != digits.data() + digits.size() || mask > 0777)
    fail(origin_in(config, "umask"), "umask",
         fmt::format("expected an octal mask from 0 to 777 (like 027), got '{}'", config.umask));
  return mask;
}

void enter_directory(const Config& config) {
  if (!config.chdir.empty() && ::chdir(config.chdir.c_str()) != 0) fail_to_enter(config, errno);
}

std::string to_yaml(const Config& config) {
  YAML::Emitter out;
  out << YAML::BeginMap;
  for (const Key& key : key_table) {
    out << YAML::Key << std::string(key.name) << YAML::Value;
    std::visit([&]<class T>(T Config::*field) { emit(out, config.*field); }, key.field);
  }
  out << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

}  // namespace qilin::config

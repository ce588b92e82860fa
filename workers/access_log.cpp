#include "workers/access_log.hpp"

#include <fmt/chrono.h>

#include <cstdlib>
#include <iterator>
#include <optional>
#include <string>

namespace qilin::workers {

namespace {

using config::LogAtom;

// %(t)s: [25/Nov/2026:07:26:54 +0000], reformatted once a second per thread.
std::string_view access_log_time(std::time_t now) {
  thread_local std::time_t formatted_second = -1;
  thread_local std::string text;
  if (now != formatted_second) {
    std::tm utc{};
    ::gmtime_r(&now, &utc);
    text = fmt::format("[{:%d/%b/%Y:%H:%M:%S} +0000]", utc);
    formatted_second = now;
  }
  return text;
}

int base64_value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

// %(u)s: the user-id of "Authorization: Basic base64(user:password)" (RFC
// 7617), as gunicorn logs it; nullopt for anything else.
std::optional<std::string> basic_auth_user(const http::Request& request) {
  auto credentials = request.header("Authorization");
  if (!credentials || credentials->size() < 6 ||
      !http::iequals(credentials->substr(0, 6), "Basic "))
    return std::nullopt;
  std::string decoded;
  uint32_t bits = 0;
  int pending = 0;
  for (char c : credentials->substr(6)) {
    if (c == '=') break;
    const int value = base64_value(c);
    if (value < 0) return std::nullopt;
    bits = bits << 6 | static_cast<uint32_t>(value);
    if ((pending += 6) >= 8) {
      pending -= 8;
      decoded += static_cast<char>(bits >> pending & 0xFF);
    }
  }
  const size_t colon = decoded.find(':');
  if (colon == std::string::npos) return std::nullopt;
  decoded.resize(colon);
  return decoded;
}

// What a client sent (or the app echoed) goes into the line with control
// bytes, quotes, backslashes and non-ASCII bytes as \xHH, as nginx writes
// its access log: a decoded Basic user or an X-Forwarded-For cannot forge a
// second line or close a quoted field early.
void append_escaped(fmt::memory_buffer& out, std::string_view text) {
  auto plain = [](unsigned char c) { return c >= 0x20 && c < 0x7F && c != '"' && c != '\\'; };
  for (char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (plain(byte)) {
      out.push_back(c);
    } else {
      fmt::format_to(std::back_inserter(out), "\\x{:02X}", byte);
    }
  }
}

}  // namespace

std::vector<config::LogPiece> resolve_environment(std::vector<config::LogPiece> format) {
  for (auto& piece : format) {
    if (piece.atom != LogAtom::kEnvironment) continue;
    const char* value = std::getenv(piece.text.c_str());
    piece = {LogAtom::kText, value != nullptr ? value : "-"};
  }
  return format;
}

void format_access_line(fmt::memory_buffer& out, std::span<const config::LogPiece> format,
                        const AccessRecord& record) {
  auto put = [&out](std::string_view text) { out.append(text); };
  auto put_sent = [&out](std::string_view text) { append_escaped(out, text); };
  auto number = [&out](auto value) { fmt::format_to(std::back_inserter(out), "{}", value); };
  const http::Request* request = record.request;
  for (const config::LogPiece& piece : format) {
    switch (piece.atom) {
      case LogAtom::kText:
        put(piece.text);
        break;
      case LogAtom::kRemoteAddress:
        put_sent(record.client.empty() ? "-" : record.client);
        break;
      case LogAtom::kDash:
        put("-");
        break;
      case LogAtom::kUser: {
        auto user = request != nullptr ? basic_auth_user(*request) : std::nullopt;
        put_sent(user ? std::string_view(*user) : "-");
        break;
      }
      case LogAtom::kTime:
        put(access_log_time(record.now));
        break;
      case LogAtom::kRequestLine:
        if (request == nullptr) {
          put("-");
        } else {
          put_sent(request->method);
          put(" ");
          put_sent(request->target);
          fmt::format_to(std::back_inserter(out), " HTTP/1.{}", request->version_minor);
        }
        break;
      case LogAtom::kMethod:
        put_sent(request != nullptr ? std::string_view(request->method) : "-");
        break;
      case LogAtom::kPath:
        put_sent(request != nullptr ? request->path() : "-");
        break;
      case LogAtom::kQuery:
        put_sent(request != nullptr ? request->query() : "");
        break;
      case LogAtom::kProtocol:
        if (request == nullptr) {
          put("-");
        } else {
          fmt::format_to(std::back_inserter(out), "HTTP/1.{}", request->version_minor);
        }
        break;
      case LogAtom::kStatus:
        number(record.status);
        break;
      case LogAtom::kBytesOrDash:
        if (record.streamed || record.body_bytes == 0) {
          put("-");
        } else {
          number(record.body_bytes);
        }
        break;
      case LogAtom::kBytes:
        if (record.streamed) {
          put("-");
        } else {
          number(record.body_bytes);
        }
        break;
      case LogAtom::kReferer:
        put_sent(request != nullptr ? request->header("Referer").value_or("-") : "-");
        break;
      case LogAtom::kUserAgent:
        put_sent(request != nullptr ? request->header("User-Agent").value_or("-") : "-");
        break;
      case LogAtom::kSeconds:
        number(record.duration_us / 1'000'000);
        break;
      case LogAtom::kMilliseconds:
        number(record.duration_us / 1'000);
        break;
      case LogAtom::kMicroseconds:
        number(record.duration_us);
        break;
      case LogAtom::kDecimalSeconds:
        fmt::format_to(std::back_inserter(out), "{}.{:06}", record.duration_us / 1'000'000,
                       record.duration_us % 1'000'000);
        break;
      case LogAtom::kPid:
        fmt::format_to(std::back_inserter(out), "<{}>", record.pid);
        break;
      case LogAtom::kRequestHeader:
        put_sent(request != nullptr ? request->header(piece.text).value_or("-") : "-");
        break;
      case LogAtom::kResponseHeader:
        put_sent(record.response != nullptr ? record.response->header(piece.text).value_or("-")
                                            : "-");
        break;
      case LogAtom::kEnvironment:  // resolved at boot; left "-" if not
        put("-");
        break;
    }
  }
}

}  // namespace qilin::workers

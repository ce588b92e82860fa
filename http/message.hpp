// What an application sees and returns: a parsed request and a response.
// Both are plain values; every framing rule (lengths, chunking, keep-alive,
// the Date and Server headers) is applied by http::Session, not here.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "sys/fd.hpp"

namespace qilin::http {

struct Header {
  std::string name;
  std::string value;
};

// RFC 9110 §5.1: field names are case-insensitive (ASCII only). Inline: the
// session and the response writer call it for every field of every message.
inline bool iequals(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    // ASCII letters differ from their other case in bit 0x20 alone.
    const char x = a[i], y = b[i];
    if (x == y) continue;
    const char lower = static_cast<char>(x | 0x20);
    if (lower != static_cast<char>(y | 0x20) || lower < 'a' || lower > 'z') return false;
  }
  return true;
}

// RFC 9110 §5.6.3: optional white space (spaces and tabs) around a field
// value or a list element.
inline std::string_view trim_ows(std::string_view s) noexcept {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// The first value of field `name` in `fields`, or nullopt (names compare
// case-insensitively). Request::header and Response::header read with it.
std::optional<std::string_view> find_field(const std::vector<Header>& fields,
                                           std::string_view name) noexcept;

struct Request {
  uint64_t id = 0;  // arrival order within the connection; pass it back to Session::respond
  std::string method;
  std::string target;     // as sent, e.g. "/sleep?ms=10"
  int version_minor = 1;  // HTTP/1.<minor>; HTTP/1.x is all this server speaks
  std::vector<Header> headers;
  std::string body;        // complete and de-chunked before the app sees the request
  bool keep_alive = true;  // what the client asked for (RFC 9112 §9.3)
  // The client as the app should see it: the peer address, or, when the peer
  // is a trusted proxy (forwarded_allow_ips), X-Forwarded-For's first address
  // and X-Forwarded-Proto's scheme. See Session::set_peer.
  std::string client;
  std::string scheme = "http";

  std::string_view path() const noexcept;   // target up to '?'
  std::string_view query() const noexcept;  // after '?', or empty
  // First value of a field, or nullopt. Duplicates are joined by the caller if needed.
  std::optional<std::string_view> header(std::string_view name) const noexcept;
  // Value of key=value in the query string (no percent-decoding), or nullopt.
  std::optional<std::string_view> query_param(std::string_view key) const noexcept;
};

// RFC 9110 §15: the statuses that may end a request, 2xx to 5xx. A 1xx is
// interim (the client would wait for another answer, then take the next
// one's); 600 and above are not HTTP.
constexpr bool is_final_status(int status) noexcept { return status >= 200 && status <= 599; }

// A body the session pulls piece by piece and sends chunked (RFC 9112 §7.1),
// for apps that stream without knowing the length. Returning nullopt ends it.
using BodyStream = std::function<std::optional<std::string>()>;

struct Response {
  int status = 200;
  // Application headers. The session adds Date, Server, Connection and the
  // framing (Content-Length or Transfer-Encoding) itself; an app that sets a
  // framing header has it replaced, never duplicated.
  std::vector<Header> headers;
  std::string body;
  // A file region sent after `body` without copying it through user space
  // where the worker can (sendfile, splice). Owned by the response.
  sys::Fd file;
  off_t file_offset = 0;
  size_t file_length = 0;
  BodyStream stream;  // set: chunked; then `body` and `file` must be empty

  Response() = default;
  Response(int status_code, std::string text, std::string_view content_type = "text/plain");
  Response& set(std::string_view name, std::string_view value);
  // First value of a field the app set, or nullopt.
  std::optional<std::string_view> header(std::string_view name) const noexcept;
};

// For http::Session, once a response's head is written: its header list
// (emptied, capacity kept) goes to a small per-thread pool that the next
// Response(status, text, type) or set() on an empty list takes from, so a
// steady stream of answers allocates no header lists.
void recycle_header_list(std::vector<Header>& headers) noexcept;

// The whole response a worker's timeout handler writes to the client whose
// request overran `timeout` (gunicorn's sync worker answers 500 there too).
// Static bytes: it is written from a signal handler.
std::string_view worker_timeout_response() noexcept;

}  // namespace qilin::http

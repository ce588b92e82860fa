// Serialises a response head. Used by http::Session for the app's responses
// and for its own error responses, so every head on the wire has one shape:
//   HTTP/1.1 <code> <reason>, Server, Date, the app's fields, framing, Connection.
// The session decides framing and persistence; this file only writes bytes.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "http/message.hpp"

namespace qilin::http {

enum class Framing : uint8_t {
  kNone,        // no content and no framing field (1xx, 204, 304)
  kLength,      // Content-Length: n
  kChunked,     // Transfer-Encoding: chunked (RFC 9112 §7.1)
  kUntilClose,  // neither: the body ends when the connection closes (RFC 9112 §6.3 rule 8)
};

struct HeadSpec {
  int status = 200;
  Framing framing = Framing::kNone;
  uint64_t content_length = 0;
  bool close = false;             // write Connection: close
  bool keep_alive_token = false;  // HTTP/1.0 persistence needs the explicit token (RFC 9112 §9.3)
};

// RFC 9110 §15: the standard phrase, or empty (a reason phrase is optional,
// RFC 9112 §4).
std::string_view reason_phrase(int status) noexcept;

// RFC 9110 §6.4.1: 1xx, 204 and 304 responses never carry content.
constexpr bool status_has_content(int status) noexcept {
  return status >= 200 && status != 204 && status != 304;
}

// Appends the head for `spec` to `out`. App fields that would contradict the
// session's framing (Content-Length, Transfer-Encoding, Connection) or that it
// owns (Date, Server) are dropped, and so are fields carrying CR, LF or NUL
// (response splitting). An app's "Connection: close" is honoured: the head
// then says close and the function returns true; otherwise returns spec.close.
bool write_head(std::string& out, const HeadSpec& spec, std::span<const Header> app_headers);

// The session's own error response: text/plain, the reason phrase as body,
// Connection: close.
void write_error(std::string& head, std::string& body, int status);

}  // namespace qilin::http

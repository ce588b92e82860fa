#include "http/response_writer.hpp"

#include <array>
#include <charconv>
#include <cstring>

#include "http/date.hpp"
#include "http/status_codes.hpp"

namespace qilin::http {
namespace {

constexpr std::string_view kServerDate = "\r\nServer: qilin\r\nDate: ";

// The status line and the two fields every response starts with, as one
// literal per known status: one append instead of five on the hot path.
std::string_view status_prefix(int status) noexcept {
  switch (status) {
#define QILIN_PREFIX(code, reason) \
  case code:                       \
    return "HTTP/1.1 " #code " " reason "\r\nServer: qilin\r\nDate: ";
    QILIN_HTTP_STATUSES(QILIN_PREFIX)
#undef QILIN_PREFIX
    default:
      return {};
  }
}

bool is_space(char c) noexcept { return c == ' ' || c == '\t'; }

// What each byte may not be part of: a line break or NUL in either half of
// a field would let the app (or whoever fed it the value) inject fields or a
// second response; a name also ends at a colon or whitespace.
constexpr uint8_t kBadInValue = 1, kBadInName = 2;
constexpr auto kByteRules = [] {
  std::array<uint8_t, 256> rules{};
  for (unsigned char c : {'\r', '\n', '\0'}) rules[c] = kBadInValue | kBadInName;
  for (unsigned char c : {':', ' ', '\t'}) rules[c] = kBadInName;
  return rules;
}();

// A field the head can carry verbatim. The loops have no early exit, so
// they run a few instructions a byte.
bool safe_field(const Header& h) noexcept {
  if (h.name.empty()) return false;
  uint8_t seen = 0;
  for (char c : h.name) seen |= kByteRules[static_cast<unsigned char>(c)];
  if (seen != 0) return false;
  for (char c : h.value) seen |= kByteRules[static_cast<unsigned char>(c)];
  return (seen & kBadInValue) == 0;
}

// RFC 9110 §7.6.1: Connection is a comma-separated list of case-insensitive options.
bool has_close_option(std::string_view value) noexcept {
  while (!value.empty()) {
    size_t comma = value.find(',');
    std::string_view item = value.substr(0, comma);
    while (!item.empty() && is_space(item.front())) item.remove_prefix(1);
    while (!item.empty() && is_space(item.back())) item.remove_suffix(1);
    if (iequals(item, "close")) return true;
    if (comma == std::string_view::npos) break;
    value.remove_prefix(comma + 1);
  }
  return false;
}

enum class Owned { kNo, kDrop, kConnection };

// Fields the session writes itself. Sorted by length first: most app fields
// fail the length test without a byte compared.
Owned owned_field(std::string_view name) noexcept {
  switch (name.size()) {
    case 4:
      return iequals(name, "date") ? Owned::kDrop : Owned::kNo;
    case 6:
      return iequals(name, "server") ? Owned::kDrop : Owned::kNo;
    case 10:
      return iequals(name, "connection") ? Owned::kConnection : Owned::kNo;
    case 14:
      return iequals(name, "content-length") ? Owned::kDrop : Owned::kNo;
    case 17:
      return iequals(name, "transfer-encoding") ? Owned::kDrop : Owned::kNo;
    default:
      return Owned::kNo;
  }
}

// Writes through a pointer into room made beforehand. A literal's length is
// a constant, so its copy compiles to a few moves rather than a call.
struct Cursor {
  char* end;
  template <size_t N>
  void put(const char (&literal)[N]) noexcept {
    std::memcpy(end, literal, N - 1);
    end += N - 1;
  }
  void put(std::string_view text) noexcept {
    std::memcpy(end, text.data(), text.size());
    end += text.size();
  }
  void number(uint64_t n) noexcept {
    end = std::to_chars(end, end + 20, n).ptr;  // 20 digits hold any uint64_t
  }
};

// What write_head may add beyond the prefix, the date and the app's fields:
// "\r\n" after the date, the longest framing line and the longest ending.
constexpr size_t kFixedRoom =
    2 + sizeof("Content-Length: \r\n") - 1 + 20 + sizeof("Connection: keep-alive\r\n\r\n") - 1;

}  // namespace

std::string_view reason_phrase(int status) noexcept {
  switch (status) {
#define QILIN_REASON(code, reason) \
  case code:                       \
    return reason;
    QILIN_HTTP_STATUSES(QILIN_REASON)
#undef QILIN_REASON
    default:
      return {};
  }
}

bool write_head(std::string& out, const HeadSpec& spec, std::span<const Header> app_headers) {
  std::string_view prefix = status_prefix(spec.status);
  char unknown[64];  // "HTTP/1.1 " up to 20 digits " " kServerDate
  if (prefix.empty()) {
    // RFC 9112 §4: status-code is three digits; the reason phrase may be empty
    // but the space before it may not.
    Cursor at{unknown};
    at.put("HTTP/1.1 ");
    at.number(static_cast<uint64_t>(spec.status));
    at.put(" ");
    at.put(kServerDate);
    prefix = {unknown, static_cast<size_t>(at.end - unknown)};
  }
  // Room for the longest head these fields can make, then one pass of
  // copies through a pointer; the string is cut to what was written.
  size_t room = prefix.size() + current_date().size() + kFixedRoom;
  for (const Header& h : app_headers) room += h.name.size() + h.value.size() + 4;
  const size_t start = out.size();
  out.resize(start + room);
  Cursor at{out.data() + start};
  at.put(prefix);
  at.put(current_date());
  at.put("\r\n");

  bool app_close = false;
  for (const Header& h : app_headers) {
    switch (owned_field(h.name)) {
      case Owned::kDrop:
        continue;
      case Owned::kConnection:
        app_close = app_close || has_close_option(h.value);
        continue;
      case Owned::kNo:
        break;
    }
    if (!safe_field(h)) continue;
    at.put(h.name);
    at.put(": ");
    at.put(h.value);
    at.put("\r\n");
  }

  switch (spec.framing) {
    case Framing::kLength:
      at.put("Content-Length: ");
      at.number(spec.content_length);
      at.put("\r\n");
      break;
    case Framing::kChunked:
      at.put("Transfer-Encoding: chunked\r\n");
      break;
    case Framing::kNone:
    case Framing::kUntilClose:
      break;
  }
  bool close = spec.close || app_close;
  if (close) {
    at.put("Connection: close\r\n\r\n");
  } else if (spec.keep_alive_token) {
    at.put("Connection: keep-alive\r\n\r\n");
  } else {
    at.put("\r\n");
  }
  out.resize(static_cast<size_t>(at.end - out.data()));
  return close;
}

void write_error(std::string& head, std::string& body, int status) {
  static const Header kTextPlain[] = {{"Content-Type", "text/plain; charset=utf-8"}};
  body.assign(reason_phrase(status));
  body.push_back('\n');
  HeadSpec spec{.status = status,
                .framing = Framing::kLength,
                .content_length = body.size(),
                .close = true,
                .keep_alive_token = false};
  write_head(head, spec, kTextPlain);
}

}  // namespace qilin::http

// HTTP-date (RFC 9110 §5.6.7): the Date header, formatted once per second
// per thread, and the dates of validators (Last-Modified, If-Modified-Since).
// The session never reads the clock: each worker thread calls refresh_date()
// once per loop turn (or per request in the blocking workers), so tests can
// pin the date and the hot path pays for one formatting a second.
#pragma once

#include <ctime>
#include <optional>
#include <string>
#include <string_view>

namespace qilin::http {

void refresh_date(std::time_t now) noexcept;
// "Sun, 06 Nov 1994 08:49:37 GMT" for the last refresh on this thread.
std::string_view current_date() noexcept;

// IMF-fixdate for `when`, as current_date() writes it (Last-Modified).
std::string format_http_date(std::time_t when);

// A recipient must accept all three forms: IMF-fixdate, the obsolete RFC 850
// form ("Sunday, 06-Nov-94 08:49:37 GMT"; a two-digit year below 70 is 20xx)
// and asctime's ("Sun Nov  6 08:49:37 1994"). nullopt for anything else,
// including a date that does not exist (Feb 30).
std::optional<std::time_t> parse_http_date(std::string_view text) noexcept;

}  // namespace qilin::http

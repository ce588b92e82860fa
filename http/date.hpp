// The Date header (RFC 9110 §6.6.1), formatted once per second per thread.
// The session never reads the clock: each worker thread calls refresh_date()
// once per loop turn (or per request in the blocking workers), so tests can
// pin the date and the hot path pays for one formatting a second.
#pragma once

#include <ctime>
#include <string_view>

namespace qilin::http {

void refresh_date(std::time_t now) noexcept;
// "Sun, 06 Nov 1994 08:49:37 GMT" for the last refresh on this thread.
std::string_view current_date() noexcept;

}  // namespace qilin::http

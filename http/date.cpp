#include "http/date.hpp"

#include <cstring>

namespace qilin::http {
namespace {

constexpr size_t kDateLen = 29;  // "Sun, 06 Nov 1994 08:49:37 GMT"

struct DateCache {
  std::time_t second = 0;
  char text[kDateLen + 1] = "Thu, 01 Jan 1970 00:00:00 GMT";
};

// Constant-initialised, so reading it needs no TLS guard on the hot path.
thread_local DateCache t_date;

void two_digits(char* out, int v) noexcept {
  out[0] = static_cast<char>('0' + v / 10);
  out[1] = static_cast<char>('0' + v % 10);
}

}  // namespace

void refresh_date(std::time_t now) noexcept {
  if (now == t_date.second) return;
  std::tm tm{};
  if (gmtime_r(&now, &tm) == nullptr || tm.tm_year + 1900 > 9999 || tm.tm_year + 1900 < 0) return;
  // RFC 9110 §5.6.7 IMF-fixdate, with English names whatever the locale
  // (strftime's %a and %b follow LC_TIME).
  static constexpr char kDays[] = "SunMonTueWedThuFriSat";
  static constexpr char kMonths[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
  char* p = t_date.text;
  std::memcpy(p, kDays + 3 * tm.tm_wday, 3);
  p[3] = ',';
  p[4] = ' ';
  two_digits(p + 5, tm.tm_mday);
  p[7] = ' ';
  std::memcpy(p + 8, kMonths + 3 * tm.tm_mon, 3);
  p[11] = ' ';
  int year = tm.tm_year + 1900;
  two_digits(p + 12, year / 100);
  two_digits(p + 14, year % 100);
  p[16] = ' ';
  two_digits(p + 17, tm.tm_hour);
  p[19] = ':';
  two_digits(p + 20, tm.tm_min);
  p[22] = ':';
  two_digits(p + 23, tm.tm_sec);  // 60 during a leap second, as IMF-fixdate allows
  std::memcpy(p + 25, " GMT", 4);
  t_date.second = now;
}

std::string_view current_date() noexcept { return {t_date.text, kDateLen}; }

}  // namespace qilin::http

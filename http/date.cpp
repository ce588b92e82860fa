#include "http/date.hpp"

#include <array>
#include <cstring>

namespace qilin::http {
namespace {

constexpr size_t kDateLen = 29;  // "Sun, 06 Nov 1994 08:49:37 GMT"
constexpr std::string_view kDays = "SunMonTueWedThuFriSat";
constexpr std::string_view kMonths = "JanFebMarAprMayJunJulAugSepOctNovDec";
constexpr std::array<std::string_view, 7> kLongDays = {"Sunday",   "Monday", "Tuesday", "Wednesday",
                                                       "Thursday", "Friday", "Saturday"};

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

// IMF-fixdate with English names whatever the locale (strftime's %a and %b
// follow LC_TIME). False for a time gmtime cannot split or a year past 9999.
bool write_imf_fixdate(std::time_t when, char* p) noexcept {
  std::tm tm{};
  if (gmtime_r(&when, &tm) == nullptr || tm.tm_year + 1900 > 9999 || tm.tm_year + 1900 < 0)
    return false;
  std::memcpy(p, kDays.data() + 3 * tm.tm_wday, 3);
  p[3] = ',';
  p[4] = ' ';
  two_digits(p + 5, tm.tm_mday);
  p[7] = ' ';
  std::memcpy(p + 8, kMonths.data() + 3 * tm.tm_mon, 3);
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
  return true;
}

// Reads one HTTP-date form left to right; any mismatch sets failed.
class DateReader {
 public:
  explicit DateReader(std::string_view text) : text_(text) {}

  bool failed() const noexcept { return failed_ || at_ != text_.size(); }

  void literal(std::string_view expected) noexcept {
    if (ahead(expected.size()) != expected) failed_ = true;
    at_ += expected.size();
  }
  // `count` digits; with pad_space, a leading space stands for a zero (asctime's day).
  int digits(size_t count, bool pad_space = false) noexcept {
    int value = 0;
    for (size_t i = 0; i < count; ++i, ++at_) {
      const char c = at_ < text_.size() ? text_[at_] : '\0';
      if (c >= '0' && c <= '9') {
        value = value * 10 + (c - '0');
      } else if (!(pad_space && i == 0 && c == ' ')) {
        failed_ = true;
      }
    }
    return value;
  }
  // A three-letter name from `names`, returned as its index.
  int short_name(std::string_view names) noexcept {
    const std::string_view name = ahead(3);
    at_ += 3;
    for (size_t i = 0; i + 3 <= names.size(); i += 3)
      if (name == names.substr(i, 3)) return static_cast<int>(i / 3);
    failed_ = true;
    return 0;
  }
  void long_day_name() noexcept {
    for (std::string_view day : kLongDays)
      if (ahead(day.size()) == day) {
        at_ += day.size();
        return;
      }
    failed_ = true;
  }
  void time_of_day(std::tm& tm) noexcept {
    tm.tm_hour = digits(2);
    literal(":");
    tm.tm_min = digits(2);
    literal(":");
    tm.tm_sec = digits(2);
  }

 private:
  // Up to `count` characters from here; empty once past the end.
  std::string_view ahead(size_t count) const noexcept {
    return at_ < text_.size() ? text_.substr(at_, count) : std::string_view{};
  }

  std::string_view text_;
  size_t at_ = 0;
  bool failed_ = false;
};

std::optional<std::tm> read_date(std::string_view text) noexcept {
  std::tm tm{};
  if (text.size() == kDateLen) {  // IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT
    DateReader reader(text);
    reader.short_name(kDays);
    reader.literal(", ");
    tm.tm_mday = reader.digits(2);
    reader.literal(" ");
    tm.tm_mon = reader.short_name(kMonths);
    reader.literal(" ");
    tm.tm_year = reader.digits(4) - 1900;
    reader.literal(" ");
    reader.time_of_day(tm);
    reader.literal(" GMT");
    if (!reader.failed()) return tm;
  }
  if (text.size() == 24) {  // asctime: Sun Nov  6 08:49:37 1994
    DateReader reader(text);
    reader.short_name(kDays);
    reader.literal(" ");
    tm.tm_mon = reader.short_name(kMonths);
    reader.literal(" ");
    tm.tm_mday = reader.digits(2, true);
    reader.literal(" ");
    reader.time_of_day(tm);
    reader.literal(" ");
    tm.tm_year = reader.digits(4) - 1900;
    if (!reader.failed()) return tm;
  }
  DateReader reader(text);  // RFC 850: Sunday, 06-Nov-94 08:49:37 GMT
  reader.long_day_name();
  reader.literal(", ");
  tm.tm_mday = reader.digits(2);
  reader.literal("-");
  tm.tm_mon = reader.short_name(kMonths);
  reader.literal("-");
  const int year = reader.digits(2);
  tm.tm_year = year < 70 ? year + 100 : year;
  reader.literal(" ");
  reader.time_of_day(tm);
  reader.literal(" GMT");
  if (!reader.failed()) return tm;
  return std::nullopt;
}

}  // namespace

void refresh_date(std::time_t now) noexcept {
  if (now == t_date.second) return;
  if (write_imf_fixdate(now, t_date.text)) t_date.second = now;
}

std::string_view current_date() noexcept { return {t_date.text, kDateLen}; }

std::string format_http_date(std::time_t when) {
  char text[kDateLen];
  if (!write_imf_fixdate(when, text)) write_imf_fixdate(0, text);
  return std::string(text, kDateLen);
}

std::optional<std::time_t> parse_http_date(std::string_view text) noexcept {
  auto parsed = read_date(text);
  if (!parsed || parsed->tm_hour > 23 || parsed->tm_min > 59 || parsed->tm_sec > 60) return {};
  std::tm fields = *parsed;
  const std::time_t when = timegm(&fields);
  // timegm carries Feb 30 into March: a date that moved did not exist.
  if (when == -1 || fields.tm_mday != parsed->tm_mday || fields.tm_mon != parsed->tm_mon)
    return std::nullopt;
  return when;
}

}  // namespace qilin::http

// Validators, conditional requests and byte ranges (http/representation.hpp)
// and HTTP-date parsing (http/date.hpp): pure functions, no IO.
#include "http/representation.hpp"

#include <gtest/gtest.h>

#include "http/date.hpp"

namespace qilin::http {
namespace {

constexpr std::time_t kSunday = 784111777;  // Sun, 06 Nov 1994 08:49:37 GMT

TEST(HttpDate, FormatsImfFixdate) {
  EXPECT_EQ(format_http_date(kSunday), "Sun, 06 Nov 1994 08:49:37 GMT");
  EXPECT_EQ(format_http_date(951782400), "Tue, 29 Feb 2000 00:00:00 GMT");
}

TEST(HttpDate, ParsesTheThreeFormsOfRfc9110) {
  EXPECT_EQ(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"), kSunday);
  EXPECT_EQ(parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"), kSunday);
  EXPECT_EQ(parse_http_date("Sun Nov  6 08:49:37 1994"), kSunday);
  EXPECT_EQ(parse_http_date("Tue, 29 Feb 2000 00:00:00 GMT"), 951782400);
  EXPECT_EQ(parse_http_date("Thursday, 01-Jan-04 00:00:00 GMT"), 1072915200);  // 20xx
}

TEST(HttpDate, RoundTripsWhatItFormats) {
  for (std::time_t when :
       {std::time_t{0}, kSunday, std::time_t{1700000000}, std::time_t{4102444799}})
    EXPECT_EQ(parse_http_date(format_http_date(when)), when) << when;
}

TEST(HttpDate, RefusesAnythingElse) {
  for (const char* bad :
       {"", "yesterday", "Sun, 06 Nov 1994 08:49:37 UTC", "Sun, 06 Nov 1994 08:49:37 GMT ",
        "Sun, 6 Nov 1994 08:49:37 GMT", "Sun, 06 Nov 1994 24:00:00 GMT",
        "Sun, 30 Feb 1994 08:49:37 GMT", "Sun, 06 Foo 1994 08:49:37 GMT",
        "Xyz, 06 Nov 1994 08:49:37 GMT", "Sun, 06 Nov 19a4 08:49:37 GMT",
        "Funday, 06-Nov-94 08:49:37 GMT", "Sun Nov 6 08:49:37 1994", "Sun Nov  6 08:49:37 1994 "})
    EXPECT_FALSE(parse_http_date(bad)) << bad;
}

TEST(EntityTag, FromModificationTimeAndSize) {
  EXPECT_EQ(file_entity_tag(kSunday, 4096), "\"2ebc98a1-1000\"");
  EXPECT_NE(file_entity_tag(kSunday, 4096), file_entity_tag(kSunday + 1, 4096));
  EXPECT_NE(file_entity_tag(kSunday, 4096), file_entity_tag(kSunday, 4097));
}

TEST(Conditional, TagListsCompareWeaklyOrStrongly) {
  const std::string tag = "\"5-a\"";
  for (Comparison comparison : {Comparison::kWeak, Comparison::kStrong}) {
    EXPECT_TRUE(tag_listed("\"5-a\"", tag, comparison));
    EXPECT_TRUE(tag_listed("\"x\", W/\"y\" ,\"5-a\"", tag, comparison));
    EXPECT_TRUE(tag_listed(" * ", tag, comparison));
    EXPECT_FALSE(tag_listed("\"5-b\"", tag, comparison));
    EXPECT_FALSE(tag_listed("5-a", tag, comparison));         // not quoted: not an entity tag
    EXPECT_FALSE(tag_listed("\"5-a", tag, comparison));       // unterminated
    EXPECT_FALSE(tag_listed("\"x\" junk", tag, comparison));  // malformed: matches nothing
    EXPECT_FALSE(tag_listed("", tag, comparison));
  }
  EXPECT_TRUE(tag_listed("W/\"5-a\"", tag, Comparison::kWeak));
  EXPECT_FALSE(tag_listed("W/\"5-a\"", tag, Comparison::kStrong));
}

TEST(Conditional, PreconditionsInTheOrderOfRfc9110) {
  const std::string tag = "\"5-a\"";
  const std::string before = format_http_date(kSunday - 1), after = format_http_date(kSunday + 1);
  const std::string same = format_http_date(kSunday);
  using Field = std::optional<std::string_view>;
  auto check = [&](Field if_match, Field if_unmodified_since, Field if_none_match,
                   Field if_modified_since) {
    return evaluate_preconditions({.if_match = if_match,
                                   .if_unmodified_since = if_unmodified_since,
                                   .if_none_match = if_none_match,
                                   .if_modified_since = if_modified_since},
                                  tag, kSunday);
  };
  using enum Precondition;
  EXPECT_EQ(check({}, {}, {}, {}), kProceed);
  // If-None-Match, else If-Modified-Since: 304 for the client's current copy.
  EXPECT_EQ(check({}, {}, {}, same), kNotModified);
  EXPECT_EQ(check({}, {}, {}, after), kNotModified);
  EXPECT_EQ(check({}, {}, {}, before), kProceed);
  EXPECT_EQ(check({}, {}, {}, "not a date"), kProceed);
  EXPECT_EQ(check({}, {}, "W/\"5-a\"", {}), kNotModified);
  EXPECT_EQ(check({}, {}, "\"old\"", after), kProceed);  // If-Modified-Since not looked at
  EXPECT_EQ(check({}, {}, tag, before), kNotModified);
  // If-Match, else If-Unmodified-Since: 412 when the client's version is not this one.
  EXPECT_EQ(check("\"old\"", {}, {}, {}), kFailed);
  EXPECT_EQ(check("W/\"5-a\"", {}, {}, {}), kFailed);  // If-Match compares strongly
  EXPECT_EQ(check(tag, {}, {}, {}), kProceed);
  EXPECT_EQ(check("*", {}, {}, {}), kProceed);
  EXPECT_EQ(check({}, before, {}, {}), kFailed);
  EXPECT_EQ(check({}, same, {}, {}), kProceed);
  EXPECT_EQ(check({}, "not a date", {}, {}), kProceed);
  EXPECT_EQ(check(tag, before, {}, {}), kProceed);    // If-Match present: the date is not looked at
  EXPECT_EQ(check("\"old\"", {}, tag, {}), kFailed);  // 412 comes before 304
  EXPECT_EQ(check(tag, {}, tag, {}), kNotModified);
}

TEST(Conditional, IfRangeNeedsTheSameStrongTagOrExactDate) {
  const std::string tag = "\"5-a\"";
  EXPECT_TRUE(if_range_holds(tag, tag, kSunday));
  EXPECT_FALSE(if_range_holds("W/\"5-a\"", tag, kSunday));
  EXPECT_FALSE(if_range_holds("\"5-b\"", tag, kSunday));
  EXPECT_TRUE(if_range_holds(format_http_date(kSunday), tag, kSunday));
  EXPECT_FALSE(if_range_holds(format_http_date(kSunday + 1), tag, kSunday));
  EXPECT_FALSE(if_range_holds("garbage", tag, kSunday));
}

using Verdict = ByteRange::Verdict;

TEST(Range, SingleRangesOfEveryForm) {
  auto partial = [](std::string_view field, uint64_t first, uint64_t last) {
    ByteRange range = evaluate_range(field, 1000);
    EXPECT_EQ(range.verdict, Verdict::kPartial) << field;
    EXPECT_EQ(range.first, first) << field;
    EXPECT_EQ(range.last, last) << field;
  };
  partial("bytes=0-99", 0, 99);
  partial("bytes=900-", 900, 999);
  partial("bytes=900-5000", 900, 999);                 // the end is clamped to the last byte
  partial("bytes=-100", 900, 999);                     // the last 100 bytes
  partial("bytes=-5000", 0, 999);                      // more than there is: all of it
  partial("Bytes=999-999", 999, 999);                  // the unit is case-insensitive
  partial("bytes=5-99999999999999999999999", 5, 999);  // saturates, no overflow
  EXPECT_EQ(evaluate_range("bytes=0-99", 1000).length(), 100u);
}

TEST(Range, UnsatisfiableWhenItStartsPastTheEnd) {
  EXPECT_EQ(evaluate_range("bytes=1000-", 1000).verdict, Verdict::kUnsatisfiable);
  EXPECT_EQ(evaluate_range("bytes=5000-6000", 1000).verdict, Verdict::kUnsatisfiable);
  EXPECT_EQ(evaluate_range("bytes=-0", 1000).verdict, Verdict::kUnsatisfiable);
  EXPECT_EQ(evaluate_range("bytes=0-", 0).verdict, Verdict::kUnsatisfiable);
  EXPECT_EQ(evaluate_range("bytes=-5", 0).verdict, Verdict::kUnsatisfiable);
}

TEST(Range, IgnoredWhenInvalidOrMultiple) {
  for (const char* field :
       {"", "bytes", "bytes=", "bytes=-", "bytes=5", "bytes=9-5", "bytes=a-b", "bytes=1-2-3",
        "bytes=--5", "items=0-5", "bytes 0-5", "bytes=0-5,10-20", "bytes=0-5, 7-9"})
    EXPECT_EQ(evaluate_range(field, 1000).verdict, Verdict::kWhole) << field;
}

}  // namespace
}  // namespace qilin::http

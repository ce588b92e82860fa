// Validators, conditional requests and byte ranges (http/representation.hpp)
// and HTTP-date parsing (http/date.hpp): pure functions, no IO.
#include "http/representation.hpp"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <utility>
#include <vector>

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

using Verdict = RangeSelection::Verdict;

using Parts = std::vector<std::pair<uint64_t, uint64_t>>;

// The parts as (first, last) pairs, so a failure prints what was chosen.
Parts parts_of(const RangeSelection& selection) {
  Parts parts;
  for (const ByteRange& part : selection.parts()) parts.emplace_back(part.first, part.last);
  return parts;
}

TEST(Range, SingleRangesOfEveryForm) {
  auto partial = [](std::string_view field, uint64_t first, uint64_t last) {
    const RangeSelection selection = evaluate_range(field, 1000);
    EXPECT_EQ(selection.verdict, Verdict::kPartial) << field;
    EXPECT_EQ(parts_of(selection), (Parts{{first, last}})) << field;
  };
  partial("bytes=0-99", 0, 99);
  partial("bytes=900-", 900, 999);
  partial("bytes=900-5000", 900, 999);                 // the end is clamped to the last byte
  partial("bytes=-100", 900, 999);                     // the last 100 bytes
  partial("bytes=-5000", 0, 999);                      // more than there is: all of it
  partial("Bytes=999-999", 999, 999);                  // the unit is case-insensitive
  partial("bytes=5-99999999999999999999999", 5, 999);  // saturates, no overflow
  partial("bytes=0-999", 0, 999);                      // the whole file is not an overlap
  EXPECT_EQ(evaluate_range("bytes=0-99", 1000).parts()[0].length(), 100u);
}

TEST(Range, SeveralRangesInTheOrderAsked) {
  auto selection = evaluate_range("bytes=0-9,20-29,-5", 1000);
  EXPECT_EQ(selection.verdict, Verdict::kPartial);
  EXPECT_EQ(parts_of(selection), (Parts{{0, 9}, {20, 29}, {995, 999}}));
  // Not sorted: the client's order is the order of the parts (§15.3.7.2).
  EXPECT_EQ(parts_of(evaluate_range("bytes=-5, 500-899, 0-0", 1000)),
            (Parts{{995, 999}, {500, 899}, {0, 0}}));
  // Adjacent ranges do not overlap; the sum may reach the size exactly.
  EXPECT_EQ(parts_of(evaluate_range("bytes=0-499,500-999", 1000)), (Parts{{0, 499}, {500, 999}}));
}

TEST(Range, OptionalWhiteSpaceAndEmptyListElements) {
  const Parts expected{{0, 1}, {4, 5}};
  for (const char* field :
       {"bytes=0-1,4-5", "bytes=0-1 , 4-5", "bytes=0-1,\t4-5", "bytes= 0-1,4-5 ",
        "bytes=,0-1,,4-5,", "bytes=0-1, ,4-5", " bytes=0-1,4-5"})
    EXPECT_EQ(parts_of(evaluate_range(field, 10)), expected) << field;
}

TEST(Range, UnsatisfiableRangesAreDropped) {
  auto selection = evaluate_range("bytes=5000-6000, 0-4, -0, 990-", 1000);
  EXPECT_EQ(selection.verdict, Verdict::kPartial);
  EXPECT_EQ(parts_of(selection), (Parts{{0, 4}, {990, 999}}));
  // One left of several: a single part (a plain 206, not multipart).
  EXPECT_EQ(parts_of(evaluate_range("bytes=1000-, 7-8", 1000)), (Parts{{7, 8}}));
}

TEST(Range, UnsatisfiableWhenNoRangeIs) {
  for (const char* field :
       {"bytes=1000-", "bytes=5000-6000", "bytes=-0", "bytes=1000-,2000-3000", "bytes=-0, 1000-"}) {
    const RangeSelection selection = evaluate_range(field, 1000);
    EXPECT_EQ(selection.verdict, Verdict::kUnsatisfiable) << field;
    EXPECT_TRUE(selection.parts().empty()) << field;
  }
  EXPECT_EQ(evaluate_range("bytes=0-", 0).verdict, Verdict::kUnsatisfiable);
  EXPECT_EQ(evaluate_range("bytes=-5", 0).verdict, Verdict::kUnsatisfiable);
  EXPECT_EQ(evaluate_range("bytes=0-1,-5", 0).verdict, Verdict::kUnsatisfiable);
}

// An invalid element spoils the whole field, even beside valid or unsatisfiable ones.
TEST(Range, IgnoredWhenInvalidAnywhere) {
  for (const char* field : {"",
                            "bytes",
                            "bytes=",
                            "bytes=,",
                            "bytes= , ",
                            "bytes=-",
                            "bytes=5",
                            "bytes=9-5",
                            "bytes=a-b",
                            "bytes=1-2-3",
                            "bytes=--5",
                            "items=0-5",
                            "bytes 0-5",
                            "bytes =0-5",
                            "bytes=0 -5",
                            "bytes=0-5;6-7",
                            "bytes=0-1,9-5",
                            "bytes=0-1,x",
                            "bytes=0-1,2-3,-",
                            "bytes=5000-,junk"})
    EXPECT_EQ(evaluate_range(field, 1000).verdict, Verdict::kWhole) << field;
}

// CVE-2011-3192: a few bytes of Range asking for many (overlapping) parts.
TEST(Range, AbuseGuardIgnoresTheField) {
  std::string sixteen = "bytes=0-0", seventeen;
  for (int i = 1; i < 16; ++i) sixteen += fmt::format(",{}-{}", i * 2, i * 2);
  seventeen = sixteen + ",100-100";
  EXPECT_EQ(evaluate_range(sixteen, 1000).parts().size(), 16u);
  EXPECT_EQ(evaluate_range(seventeen, 1000).verdict, Verdict::kWhole);
  // Unsatisfiable ranges count towards the limit too: they are in the field.
  EXPECT_EQ(evaluate_range(sixteen + ",5000-", 1000).verdict, Verdict::kWhole);
  // Empty elements do not.
  EXPECT_EQ(evaluate_range(sixteen + ",,,", 1000).parts().size(), 16u);
  // Overlaps whose lengths add up to more than the file.
  EXPECT_EQ(evaluate_range("bytes=0-599,400-999", 1000).verdict, Verdict::kWhole);
  EXPECT_EQ(evaluate_range("bytes=0-,0-", 1000).verdict, Verdict::kWhole);
  EXPECT_EQ(evaluate_range("bytes=-1000,0-0", 1000).verdict, Verdict::kWhole);
  // An overlap that stays within the size is served as asked.
  EXPECT_EQ(parts_of(evaluate_range("bytes=0-9,5-14", 1000)), (Parts{{0, 9}, {5, 14}}));
}

}  // namespace
}  // namespace qilin::http

// What a server decides about a stored representation (a file) before it
// sends it: validators, conditional requests and byte ranges (RFC 9110 §8.8,
// §13, §14). Pure functions of header values: no IO, no clock.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <ctime>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace qilin::http {

// A strong entity tag for a file, from its modification time and size the
// way nginx makes one: "<mtime hex>-<size hex>", quoted.
std::string file_entity_tag(std::time_t modified, uint64_t size);

// Whether `tag` is in an If-Match or If-None-Match field: "*" (any) or a list
// of entity tags. Strong comparison (If-Match) counts no weak tag as equal;
// weak comparison (If-None-Match) takes W/"x" as "x" (RFC 9110 §8.8.3.2).
enum class Comparison { kStrong, kWeak };
bool tag_listed(std::string_view field, std::string_view tag, Comparison comparison) noexcept;

// The preconditions of a GET or HEAD, evaluated in the order of RFC 9110
// §13.2.2: If-Match, else If-Unmodified-Since (412 when they fail); then
// If-None-Match, else If-Modified-Since (304 when the client's copy is
// current). A date that is not a valid HTTP-date is ignored.
struct Conditions {  // the fields, if sent
  std::optional<std::string_view> if_match, if_unmodified_since, if_none_match, if_modified_since;
};
enum class Precondition { kProceed, kNotModified, kFailed };
Precondition evaluate_preconditions(const Conditions& request, std::string_view tag,
                                    std::time_t modified) noexcept;

// If-Range (§13.1.5): the Range applies only while the representation is the
// one the client holds part of: the same strong entity tag, or exactly the
// Last-Modified date.
bool if_range_holds(std::string_view if_range, std::string_view tag, std::time_t modified) noexcept;

// Range (§14.2) against a representation `size` bytes long: the whole
// range-set ("bytes=0-9, 20-29, -5"), each range clipped to the size, kept in
// the order the client listed them (§15.3.7.2: a server SHOULD keep it).
//   - A field that is not a valid bytes range-set, in any element, is
//     ignored: whole representation, 200 (§14.2: a server MAY ignore Range).
//   - Unsatisfiable ranges (starting at or past the end, or "-0") are
//     dropped; when none is left, 416 (§14.1.1, §15.5.17).
//   - More than kMaxRanges ranges, or ranges whose lengths add up to more
//     than the size (overlaps), are also ignored: whole, 200. Many small or
//     overlapping ranges are the pattern of CVE-2011-3192 ("Apache killer"),
//     and §14.2 names both as grounds to ignore the field (nginx ignores
//     it on the same sum).
struct ByteRange {  // satisfiable and clipped: bytes first..last, inclusive
  uint64_t first = 0, last = 0;
  uint64_t length() const noexcept { return last - first + 1; }
};
struct RangeSelection {
  static constexpr size_t kMaxRanges = 16;
  enum class Verdict { kWhole, kPartial, kUnsatisfiable };
  Verdict verdict = Verdict::kWhole;
  // parts(): when kPartial, one or more; one is a single-part 206, several
  // a multipart/byteranges 206. A fixed array: evaluating allocates nothing.
  std::array<ByteRange, kMaxRanges> storage{};
  size_t count = 0;
  std::span<const ByteRange> parts() const noexcept { return {storage.data(), count}; }
};
RangeSelection evaluate_range(std::string_view range, uint64_t size) noexcept;

}  // namespace qilin::http

// What a server decides about a stored representation (a file) before it
// sends it: validators, conditional requests and byte ranges (RFC 9110 §8.8,
// §13, §14). Pure functions of header values: no IO, no clock.
#pragma once

#include <cstdint>
#include <ctime>
#include <optional>
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

// Range (§14.2) against a representation `size` bytes long. A single byte
// range is served as 206; a field that is not a valid bytes range, or that
// asks for several ranges, is ignored (whole representation, 200), which
// §14.2 allows; a valid range that starts past the end is 416.
struct ByteRange {
  enum class Verdict { kWhole, kPartial, kUnsatisfiable };
  Verdict verdict = Verdict::kWhole;
  uint64_t first = 0, last = 0;  // inclusive, when kPartial
  uint64_t length() const noexcept { return last - first + 1; }
};
ByteRange evaluate_range(std::string_view range, uint64_t size) noexcept;

}  // namespace qilin::http

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

// If-None-Match (RFC 9110 §13.1.2): "*" or a list of entity tags, compared
// weakly (W/"x" matches "x"). True when `tag` is in the list.
bool none_match(std::string_view if_none_match, std::string_view tag) noexcept;

// Whether a GET or HEAD gets 304 Not Modified. If-None-Match decides when it
// is present; otherwise If-Modified-Since (ignored when it is not a valid
// HTTP-date) when the representation is no newer than it (§13.2.2).
struct Conditions {
  std::optional<std::string_view> if_none_match, if_modified_since;  // the fields, if sent
};
bool not_modified(const Conditions& request, std::string_view tag, std::time_t modified) noexcept;

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

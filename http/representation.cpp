#include "http/representation.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <limits>

#include "http/date.hpp"
#include "http/message.hpp"

namespace qilin::http {
namespace {

// Decimal digits, saturating at the largest uint64_t; nullopt when empty or
// not all digits.
std::optional<uint64_t> whole_number(std::string_view digits) noexcept {
  if (digits.empty()) return std::nullopt;
  uint64_t value = 0;
  constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();
  for (char c : digits) {
    if (c < '0' || c > '9') return std::nullopt;
    const uint64_t digit = static_cast<uint64_t>(c - '0');
    value = value > (kMax - digit) / 10 ? kMax : value * 10 + digit;
  }
  return value;
}

// Splits a list of entity tags; calls visit(weak, tag-with-quotes) for each,
// stopping at the first true it returns. A malformed list matches nothing.
template <typename Visit>
bool any_entity_tag(std::string_view list, Visit visit) {
  size_t at = 0;
  while (at < list.size()) {
    if (list[at] == ',' || list[at] == ' ' || list[at] == '\t') {
      ++at;
      continue;
    }
    const bool weak = list.substr(at, 2) == "W/";
    if (weak) at += 2;
    if (at >= list.size() || list[at] != '"') return false;
    const size_t close = list.find('"', at + 1);
    if (close == std::string_view::npos) return false;
    if (visit(weak, list.substr(at, close - at + 1))) return true;
    at = close + 1;
  }
  return false;
}

// One element of a bytes range-set (§14.1.1), already stripped of OWS.
struct RangeSpec {
  enum class Kind { kInvalid, kUnsatisfiable, kSatisfiable };
  Kind kind = Kind::kInvalid;
  ByteRange range;  // when kSatisfiable: clipped to the size
};

RangeSpec parse_range_spec(std::string_view spec, uint64_t size) noexcept {
  using Kind = RangeSpec::Kind;
  const size_t dash = spec.find('-');
  if (dash == std::string_view::npos) return {};
  const std::string_view first_text = spec.substr(0, dash), last_text = spec.substr(dash + 1);
  if (first_text.empty()) {  // suffix-range "-N": the last N bytes
    const auto suffix = whole_number(last_text);
    if (!suffix) return {};
    // "-0" selects nothing. §14.1.2 calls a suffix of an empty
    // representation satisfiable, but no Content-Range can name zero bytes:
    // 416 with "bytes */0" tells the client the length instead.
    if (*suffix == 0 || size == 0) return {.kind = Kind::kUnsatisfiable, .range = {}};
    return {.kind = Kind::kSatisfiable,
            .range = {.first = size - std::min(*suffix, size), .last = size - 1}};
  }
  const auto first = whole_number(first_text);
  if (!first) return {};
  std::optional<uint64_t> last = std::numeric_limits<uint64_t>::max();  // "N-": to the end
  if (!last_text.empty()) last = whole_number(last_text);
  if (!last || *last < *first) return {};  // §14.1.1: last-pos below first-pos is invalid
  if (*first >= size) return {.kind = Kind::kUnsatisfiable, .range = {}};
  // A last-pos past the end is valid and means "to the end" (§14.1.2).
  return {.kind = Kind::kSatisfiable,
          .range = {.first = *first, .last = std::min(*last, size - 1)}};
}

}  // namespace

std::string file_entity_tag(std::time_t modified, uint64_t size) {
  return fmt::format("\"{:x}-{:x}\"", static_cast<uint64_t>(modified), size);
}

bool tag_listed(std::string_view field, std::string_view tag, Comparison comparison) noexcept {
  if (trim_ows(field) == "*") return true;
  return any_entity_tag(field, [&](bool weak, std::string_view listed) {
    return listed == tag && !(weak && comparison == Comparison::kStrong);
  });
}

Precondition evaluate_preconditions(const Conditions& request, std::string_view tag,
                                    std::time_t modified) noexcept {
  auto date_of = [](std::optional<std::string_view> field) {
    return field ? parse_http_date(trim_ows(*field)) : std::nullopt;
  };
  if (request.if_match) {
    if (!tag_listed(*request.if_match, tag, Comparison::kStrong)) return Precondition::kFailed;
  } else if (auto since = date_of(request.if_unmodified_since); since && modified > *since) {
    return Precondition::kFailed;
  }
  if (request.if_none_match) {
    if (tag_listed(*request.if_none_match, tag, Comparison::kWeak))
      return Precondition::kNotModified;
  } else if (auto since = date_of(request.if_modified_since); since && modified <= *since) {
    return Precondition::kNotModified;
  }
  return Precondition::kProceed;
}

bool if_range_holds(std::string_view if_range, std::string_view tag,
                    std::time_t modified) noexcept {
  if_range = trim_ows(if_range);
  if (if_range.starts_with('"')) return if_range == tag;  // strong comparison
  if (if_range.starts_with("W/")) return false;           // a weak tag never matches
  auto date = parse_http_date(if_range);
  return date && *date == modified;
}

RangeSelection evaluate_range(std::string_view range, uint64_t size) noexcept {
  using Kind = RangeSpec::Kind;
  range = trim_ows(range);
  constexpr std::string_view kUnit = "bytes=";  // the range unit is case-insensitive
  if (range.size() < kUnit.size() || !iequals(range.substr(0, kUnit.size()), kUnit)) return {};
  std::string_view rest = range.substr(kUnit.size());
  // Every early `return {}` below is kWhole: the field is ignored as a whole,
  // never half-applied.
  RangeSelection selection;
  size_t listed = 0;     // range-specs in the field, satisfiable or not
  uint64_t claimed = 0;  // bytes the satisfiable ones cover; kept at most `size`
  for (;;) {
    const size_t comma = rest.find(',');
    const std::string_view element = trim_ows(rest.substr(0, comma));
    // §5.6.1.2: a recipient skips empty list elements ("0-1,,2-3", a
    // trailing comma). They cost nothing to skip, so they count for nothing.
    if (!element.empty()) {
      // The abuse guard (CVE-2011-3192): a few bytes of field must not buy a
      // response much larger or costlier than the file. Each part adds its
      // own headers and read, hence kMaxRanges; lengths that add up to more
      // than the size can only come from overlaps, which resend the same bytes.
      if (++listed > RangeSelection::kMaxRanges) return {};
      const RangeSpec spec = parse_range_spec(element, size);
      if (spec.kind == Kind::kInvalid) return {};
      if (spec.kind == Kind::kSatisfiable) {
        if (spec.range.length() > size - claimed) return {};
        claimed += spec.range.length();
        selection.storage[selection.count++] = spec.range;
      }
    }
    if (comma == std::string_view::npos) break;
    rest.remove_prefix(comma + 1);
  }
  if (listed == 0) return {};  // "bytes=" or "bytes=,": a range-set has at least one
  // §14.1.1: a range-set is satisfiable when any one of its ranges is; the
  // unsatisfiable ones are simply not sent.
  selection.verdict = selection.count == 0 ? RangeSelection::Verdict::kUnsatisfiable
                                           : RangeSelection::Verdict::kPartial;
  return selection;
}

}  // namespace qilin::http

#include "http/representation.hpp"

#include <fmt/format.h>

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

ByteRange evaluate_range(std::string_view range, uint64_t size) noexcept {
  range = trim_ows(range);
  constexpr std::string_view kUnit = "bytes=";
  if (range.size() < kUnit.size()) return {};
  for (size_t i = 0; i < kUnit.size(); ++i) {  // the range unit is case-insensitive
    const char c = range[i] >= 'A' && range[i] <= 'Z' ? static_cast<char>(range[i] + 32) : range[i];
    if (c != kUnit[i]) return {};
  }
  const std::string_view spec = trim_ows(range.substr(kUnit.size()));
  if (spec.find(',') != std::string_view::npos) return {};  // several ranges: whole
  const size_t dash = spec.find('-');
  if (dash == std::string_view::npos) return {};
  const auto first = whole_number(spec.substr(0, dash));
  const std::string_view last_text = spec.substr(dash + 1);
  ByteRange answer;
  if (!first) {  // suffix-range "-N": the last N bytes
    auto suffix = dash == 0 ? whole_number(last_text) : std::nullopt;
    if (!suffix) return {};
    if (*suffix == 0 || size == 0) return {.verdict = ByteRange::Verdict::kUnsatisfiable};
    answer.first = size - std::min(*suffix, size);
    answer.last = size - 1;
  } else {
    std::optional<uint64_t> last = std::numeric_limits<uint64_t>::max();
    if (!last_text.empty()) last = whole_number(last_text);
    if (!last || *last < *first) return {};  // invalid: ignored
    if (*first >= size) return {.verdict = ByteRange::Verdict::kUnsatisfiable};
    answer.first = *first;
    answer.last = std::min(*last, size - 1);
  }
  answer.verdict = ByteRange::Verdict::kPartial;
  return answer;
}

}  // namespace qilin::http

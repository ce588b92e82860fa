#include "config/allow_list.hpp"

#include <arpa/inet.h>
#include <fmt/format.h>

#include <charconv>
#include <cstring>
#include <optional>
#include <stdexcept>

namespace qilin::config {
namespace {

struct Address {
  bool ipv6 = false;
  std::array<uint8_t, 16> bytes{};
};

// inet_pton wants a terminated string; addresses are short.
std::optional<Address> parse_address(std::string_view text) {
  char buffer[INET6_ADDRSTRLEN + 1];
  if (text.empty() || text.size() >= sizeof buffer) return std::nullopt;
  std::memcpy(buffer, text.data(), text.size());
  buffer[text.size()] = '\0';
  Address address;
  if (::inet_pton(AF_INET, buffer, address.bytes.data()) == 1) return address;
  address.ipv6 = true;
  if (::inet_pton(AF_INET6, buffer, address.bytes.data()) == 1) {
    // ::ffff:a.b.c.d is an IPv4 peer seen through a dual-stack socket.
    static constexpr uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (std::memcmp(address.bytes.data(), kMapped, sizeof kMapped) == 0) {
      std::memmove(address.bytes.data(), address.bytes.data() + 12, 4);
      std::memset(address.bytes.data() + 4, 0, 12);
      address.ipv6 = false;
    }
    return address;
  }
  return std::nullopt;
}

// Whether the first `bits` bits of `a` and `b` are equal.
bool same_prefix(const std::array<uint8_t, 16>& a, const std::array<uint8_t, 16>& b,
                 unsigned bits) noexcept {
  const unsigned whole = bits / 8;
  if (std::memcmp(a.data(), b.data(), whole) != 0) return false;
  if (bits % 8 == 0) return true;
  const auto mask = static_cast<uint8_t>(0xff << (8 - bits % 8));
  return (a[whole] & mask) == (b[whole] & mask);
}

[[noreturn]] void refuse(std::string_view entry, std::string_view why) {
  throw std::invalid_argument(fmt::format("cannot use '{}': {}", entry, why));
}

}  // namespace

AllowList::AllowList(std::span<const std::string> entries) {
  constexpr std::string_view kExpected =
      "expected an IPv4 or IPv6 address, a network like 10.0.0.0/8, or '*'";
  for (const std::string& entry : entries) {
    if (entry == "*") {
      everyone_ = true;
      continue;
    }
    const std::string_view text = entry;
    const size_t slash = text.find('/');
    auto address = parse_address(text.substr(0, slash));
    if (!address) refuse(entry, kExpected);
    const unsigned width = address->ipv6 ? 128 : 32;
    unsigned prefix = width;
    if (slash != std::string_view::npos) {
      const std::string_view digits = text.substr(slash + 1);
      auto [end, error] = std::from_chars(digits.data(), digits.data() + digits.size(), prefix);
      if (digits.empty() || error != std::errc{} || end != digits.data() + digits.size() ||
          prefix > width)
        refuse(entry, fmt::format("the prefix length must be 0 to {}", width));
      // 10.1.0.0/8 is more likely a typo than a way to write 10.0.0.0/8.
      std::array<uint8_t, 16> network{};
      std::memcpy(network.data(), address->bytes.data(), (prefix + 7) / 8);
      if (prefix % 8 != 0) network[prefix / 8] &= static_cast<uint8_t>(0xff << (8 - prefix % 8));
      if (network != address->bytes)
        refuse(entry, fmt::format("it has bits set beyond its /{} prefix", prefix));
    }
    networks_.push_back({.ipv6 = address->ipv6, .bytes = address->bytes, .prefix_bits = prefix});
  }
}

bool AllowList::allows(std::string_view peer) const noexcept {
  if (everyone_) return true;
  if (networks_.empty()) return false;
  auto address = parse_address(peer);
  if (!address) return false;
  for (const Network& network : networks_)
    if (network.ipv6 == address->ipv6 &&
        same_prefix(network.bytes, address->bytes, network.prefix_bits))
      return true;
  return false;
}

}  // namespace qilin::config

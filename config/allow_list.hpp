// forwarded_allow_ips and proxy_allow_ips: which peers are proxies whose word
// about the client is believed. Entries are "*" (every peer), addresses and
// networks in CIDR notation (10.0.0.0/8, 2001:db8::/32), as gunicorn 22 takes
// them: behind a container network or a cloud balancer the proxy's address
// is one of a subnet, not one known in advance. Parsed once, when the
// configuration is read; matched once per connection.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace qilin::config {

class AllowList {
 public:
  AllowList() = default;  // allows no one
  // Throws std::invalid_argument naming the first entry that is neither.
  explicit AllowList(std::span<const std::string> entries);

  // `peer` as inet_ntop writes it. A dual-stack listener reports IPv4 peers
  // as "::ffff:a.b.c.d": those match IPv4 entries, as the same host should.
  bool allows(std::string_view peer) const noexcept;

 private:
  struct Network {
    bool ipv6 = false;
    std::array<uint8_t, 16> bytes{};
    unsigned prefix_bits = 0;
  };
  bool everyone_ = false;
  std::vector<Network> networks_;
};

}  // namespace qilin::config

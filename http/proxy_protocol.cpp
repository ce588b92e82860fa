// PROXY protocol headers, v1 and v2 (see proxy_protocol.hpp). Everything
// that does not match HAProxy's proxy-protocol.txt exactly is malformed: the
// header decides who the client is, so a lenient reading would let a
// misbehaving balancer, or a client that reached us around it, pick a name.
#include "http/proxy_protocol.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>
#include <optional>

namespace qilin::http {
namespace {

using Status = ProxyHeader::Status;

constexpr std::string_view kV1Prefix = "PROXY ";
// v2: CR LF CR LF NUL CR LF "QUIT" LF, chosen to be neither text nor HTTP.
constexpr std::string_view kV2Signature{"\r\n\r\n\0\r\nQUIT\n", 12};
// v2 family/transport bytes (high nibble AF_UNSPEC 0, INET 1, INET6 2, UNIX 3;
// low nibble UNSPEC 0, STREAM 1, DGRAM 2). Any other value must be rejected.
constexpr uint8_t kUnspec = 0x00;
constexpr uint8_t kTcp4 = 0x11;
constexpr uint8_t kUdp4 = 0x12;
constexpr uint8_t kTcp6 = 0x21;
constexpr uint8_t kUdp6 = 0x22;
constexpr uint8_t kUnixStream = 0x31;
constexpr uint8_t kUnixDgram = 0x32;

ProxyHeader outcome(Status status, size_t length = 0, std::string client = {}) {
  return {.status = status, .length = length, .client = std::move(client)};
}
ProxyHeader need_more() { return outcome(Status::kNeedMore); }
ProxyHeader malformed() { return outcome(Status::kMalformed); }
ProxyHeader done(size_t length, std::string client) {
  return outcome(Status::kDone, length, std::move(client));
}

// Whether `bytes` agrees with `text` as far as either goes.
bool agrees(std::string_view text, std::string_view bytes) {
  size_t n = std::min(text.size(), bytes.size());
  return bytes.substr(0, n) == text.substr(0, n);
}

uint8_t byte_at(std::string_view bytes, size_t i) { return static_cast<uint8_t>(bytes[i]); }

uint16_t big_endian_16(std::string_view bytes, size_t i) {
  return static_cast<uint16_t>(byte_at(bytes, i) << 8 | byte_at(bytes, i + 1));
}

// `binary` is an in_addr or in6_addr in network order, possibly unaligned.
std::string address_text(int family, const void* binary) {
  char text[INET6_ADDRSTRLEN] = "";
  ::inet_ntop(family, binary, text, sizeof text);
  return text;
}

// A v1 address in `family`'s text form, rewritten canonically (IPv6 in lower
// case, zeros compressed) so the log shows one spelling per client.
// inet_pton refuses what the spec forbids: IPv4 numbers with leading zeroes,
// fewer than four parts, IPv6 with the wrong number of bits.
std::optional<std::string> parse_address(int family, std::string_view text) {
  char terminated[INET6_ADDRSTRLEN];
  if (text.empty() || text.size() >= sizeof terminated) return std::nullopt;
  std::memcpy(terminated, text.data(), text.size());
  terminated[text.size()] = '\0';
  unsigned char binary[sizeof(in6_addr)];
  if (::inet_pton(family, terminated, binary) != 1) return std::nullopt;
  return address_text(family, binary);
}

// A v1 port: decimal 0..65535, without leading zeroes (like the addresses).
bool is_port(std::string_view text) {
  if (text.empty() || text.size() > 5 || (text.size() > 1 && text[0] == '0')) return false;
  unsigned value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
    value = value * 10 + static_cast<unsigned>(c - '0');
  }
  return value <= 65535;
}

// "PROXY TCP4 <src> <dst> <sport> <dport>\r\n", single spaces, or
// "PROXY UNKNOWN" and anything up to CRLF (the sender could not tell).
ProxyHeader parse_v1(std::string_view bytes) {
  if (!agrees(kV1Prefix, bytes)) return malformed();
  const size_t window = std::min(bytes.size(), kProxyV1MaxLength);
  size_t line_feed = std::string_view::npos;
  for (size_t i = 0; i < window; ++i) {
    const auto c = static_cast<unsigned char>(bytes[i]);
    if (c == '\n') {
      line_feed = i;
      break;
    }
    // Fail on the first impossible byte rather than wait for 107 of them.
    const bool lone_cr = c == '\r' && i + 1 < bytes.size() && bytes[i + 1] != '\n';
    const bool control = (c < 0x20 && c != '\r') || c >= 0x7f;
    if (lone_cr || control) return malformed();
  }
  if (line_feed == std::string_view::npos)
    return window == kProxyV1MaxLength ? malformed() : need_more();
  // The prefix holds no CR, so a CR before the LF lies after it.
  if (bytes[line_feed - 1] != '\r') return malformed();
  std::string_view line = bytes.substr(kV1Prefix.size(), line_feed - 1 - kV1Prefix.size());
  const size_t length = line_feed + 1;

  std::string_view protocol = line.substr(0, line.find(' '));
  if (protocol == "UNKNOWN") return done(length, {});
  int family = protocol == "TCP4" ? AF_INET : protocol == "TCP6" ? AF_INET6 : AF_UNSPEC;
  if (family == AF_UNSPEC) return malformed();

  std::string_view fields[5];  // protocol, source, destination, source port, destination port
  size_t count = 0;
  for (;;) {
    if (count == std::size(fields)) return malformed();
    size_t space = line.find(' ');
    fields[count++] = line.substr(0, space);
    if (space == std::string_view::npos) break;
    line.remove_prefix(space + 1);
  }
  if (count != std::size(fields)) return malformed();
  std::optional<std::string> source = parse_address(family, fields[1]);
  if (!source || !parse_address(family, fields[2]) || !is_port(fields[3]) || !is_port(fields[4]))
    return malformed();
  return done(length, std::move(*source));
}

// Signature, version 2 and command (LOCAL 0, PROXY 1), family/transport,
// block length, then the block: addresses for the family, then TLVs.
ProxyHeader parse_v2(std::string_view bytes) {
  if (!agrees(kV2Signature, bytes)) return malformed();
  if (bytes.size() > kV2Signature.size()) {
    const uint8_t version_command = byte_at(bytes, kV2Signature.size());
    if (version_command >> 4 != 2 || (version_command & 0x0f) > 1) return malformed();
  }
  if (bytes.size() < kProxyV2HeadLength) return need_more();
  const bool local = (byte_at(bytes, 12) & 0x0f) == 0;
  const uint8_t family = byte_at(bytes, 13);
  const size_t block = big_endian_16(bytes, 14);
  if (block > kProxyV2MaxBlock) return malformed();

  // LOCAL: the balancer speaking for itself (a health check). The spec says
  // to discard the block, family included, and keep the real peer. The
  // other families must be valid, with room for their addresses.
  size_t addresses = 0;
  if (!local) {
    switch (family) {
      case kUnspec:
        addresses = 0;
        break;
      case kTcp4:
      case kUdp4:
        addresses = 2 * 4 + 2 * 2;
        break;
      case kTcp6:
      case kUdp6:
        addresses = 2 * 16 + 2 * 2;
        break;
      case kUnixStream:
      case kUnixDgram:
        addresses = 2 * 108;
        break;
      default:
        return malformed();
    }
    if (block < addresses) return malformed();
  }
  if (bytes.size() < kProxyV2HeadLength + block) return need_more();
  const size_t length = kProxyV2HeadLength + block;
  // UNSPEC (the sender could not tell) is discarded like LOCAL, TLVs unread.
  if (local || family == kUnspec) return done(length, {});

  // TLVs (type, 16-bit length, value) fill the rest of the block exactly;
  // padding is a NOOP TLV, so a ragged end is a broken sender. None is used.
  std::string_view tlvs = bytes.substr(kProxyV2HeadLength + addresses, block - addresses);
  while (!tlvs.empty()) {
    if (tlvs.size() < 3 || tlvs.size() - 3 < big_endian_16(tlvs, 1)) return malformed();
    tlvs.remove_prefix(3 + size_t{big_endian_16(tlvs, 1)});
  }
  const char* source = bytes.data() + kProxyV2HeadLength;
  if (family == kTcp4) return done(length, address_text(AF_INET, source));
  if (family == kTcp6) return done(length, address_text(AF_INET6, source));
  return done(length, {});  // a datagram or unix-socket client is no TCP peer of ours
}

}  // namespace

ProxyHeader parse_proxy_header(std::string_view bytes) {
  if (bytes.empty()) return need_more();
  if (bytes[0] == kV1Prefix[0]) return parse_v1(bytes);
  if (bytes[0] == kV2Signature[0]) return parse_v2(bytes);
  return malformed();
}

}  // namespace qilin::http

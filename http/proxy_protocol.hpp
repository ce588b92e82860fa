// The PROXY protocol (HAProxy's proxy-protocol.txt, versions 1 and 2): the
// header a load balancer that relays plain TCP (HAProxy, nginx's stream
// module, AWS NLB) writes in front of the client's bytes, naming the client it
// accepted. Without it every request would seem to come from the balancer.
//
//   v1  "PROXY TCP4|TCP6 <src> <dst> <sport> <dport>\r\n" or "PROXY UNKNOWN...\r\n",
//       text, at most 107 bytes.
//   v2  a 12-byte signature, version/command, family/transport, a big-endian
//       length, then the addresses and TLVs (type, length, value), binary.
//
// parse_proxy_header() is a pure function over the bytes a connection has
// sent so far: it answers "need more", "done, the header took N bytes and
// names this client", or "malformed". The caller keeps the bytes between
// calls (http::Session does, for the connections that must send a header) and
// decides what a malformed header costs (a 400). No IO, no state, no clock.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace qilin::http {

// v1: "the maximum line length ... is 107 bytes including the CRLF".
constexpr size_t kProxyV1MaxLength = 107;
// v2: the 16 fixed bytes, then at most this much of addresses and TLVs. The
// spec allows 65535; real balancers send a few dozen TLV bytes (AWS: a VPC
// endpoint id), so a larger block is refused rather than buffered.
constexpr size_t kProxyV2HeadLength = 16;
constexpr size_t kProxyV2MaxBlock = 4096;

struct ProxyHeader {
  enum class Status : uint8_t { kNeedMore, kDone, kMalformed };
  Status status = Status::kNeedMore;
  // kDone: bytes of the header; the HTTP stream starts right after them.
  size_t length = 0;
  // kDone: the client's address as text ("192.0.2.1", "2001:db8::1"). Empty
  // when the header names no TCP client (v1 UNKNOWN, v2 LOCAL for the
  // balancer's own health checks, v2 UNSPEC/UNIX/DGRAM): the real peer stays.
  std::string client;
};

// Reads a header at the start of `bytes` (everything received so far).
// kNeedMore only while `bytes` could still become a valid header, so a peer
// that sends HTTP instead is told kMalformed by its first few bytes.
ProxyHeader parse_proxy_header(std::string_view bytes);

}  // namespace qilin::http

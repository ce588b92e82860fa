// PROXY protocol headers without IO: the parser, then http::Session with the
// stage in front of HTTP.
//
// Every valid header is read whole, at every prefix (each must ask for more:
// the header may arrive one byte at a time), and with the first request glued
// to it (the header's length must stop exactly at the request). Every
// malformed header must be refused by the parser at some prefix and never be
// accepted at any. The session cases split header + request at every byte.
#include "http/proxy_protocol.hpp"

#include <gtest/gtest.h>
#include <sys/uio.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "http/limits.hpp"
#include "http/message.hpp"
#include "http/session.hpp"

namespace qilin::http {
namespace {

using namespace std::string_literals;
using Status = ProxyHeader::Status;

const std::string kSignature("\r\n\r\n\0\r\nQUIT\n", 12);
const std::string kRequest = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";

// A v2 header: signature, version 2 with `command`, `family`, the block's
// length (or `length_override`), then the block.
std::string v2(uint8_t command, uint8_t family, const std::string& block,
               int length_override = -1) {
  const size_t length = length_override < 0 ? block.size() : size_t(length_override);
  std::string header = kSignature;
  header += static_cast<char>(0x20 | command);
  header += static_cast<char>(family);
  header += static_cast<char>(length >> 8);
  header += static_cast<char>(length & 0xff);
  return header + block;
}

// 192.0.2.1:51234 -> 198.51.100.2:443, as a v2 TCP4 address block.
const std::string kTcp4Block("\xc0\x00\x02\x01\xc6\x33\x64\x02\xc8\x22\x01\xbb", 12);
// 2001:db8::7:51234 -> 2001:db8::1:443.
const std::string kTcp6Block = "\x20\x01\x0d\xb8"s + std::string(10, '\0') + "\x00\x07"s +
                               "\x20\x01\x0d\xb8"s + std::string(10, '\0') + "\x00\x01"s +
                               "\xc8\x22\x01\xbb"s;

std::string tlv(uint8_t type, const std::string& value) {
  return std::string{static_cast<char>(type), static_cast<char>(value.size() >> 8),
                     static_cast<char>(value.size() & 0xff)} +
         value;
}

struct Valid {
  std::string name;
  std::string header;
  std::string client;  // empty: the real peer stays
};

std::vector<Valid> valid_headers() {
  return {
      {"v1 TCP4", "PROXY TCP4 192.0.2.1 198.51.100.2 51234 443\r\n", "192.0.2.1"},
      {"v1 TCP6", "PROXY TCP6 2001:DB8:0:0::7 2001:db8::1 51234 443\r\n", "2001:db8::7"},
      {"v1 TCP6 mapped", "PROXY TCP6 ::ffff:192.0.2.1 ::1 0 65535\r\n", "::ffff:192.0.2.1"},
      {"v1 UNKNOWN", "PROXY UNKNOWN\r\n", ""},
      {"v1 UNKNOWN with addresses", "PROXY UNKNOWN ffff:f...f:ffff 1.2.3.4 65535 65535\r\n", ""},
      {"v1 longest",
       "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
       "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n",
       "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"},
      {"v2 PROXY TCP4", v2(1, 0x11, kTcp4Block), "192.0.2.1"},
      {"v2 PROXY TCP6", v2(1, 0x21, kTcp6Block), "2001:db8::7"},
      {"v2 PROXY TCP4 with TLVs",
       v2(1, 0x11, kTcp4Block + tlv(0x05, "unique-id") + tlv(0x04, "") + tlv(0xea, "vpce-1")),
       "192.0.2.1"},
      {"v2 LOCAL", v2(0, 0x00, ""), ""},
      {"v2 LOCAL ignores its block", v2(0, 0x11, kTcp4Block + "junk"), ""},
      {"v2 PROXY UNSPEC", v2(1, 0x00, "whatever"), ""},
      {"v2 PROXY UDP4", v2(1, 0x12, kTcp4Block), ""},
      {"v2 PROXY UNIX", v2(1, 0x31, std::string(216, '\0')), ""},
      {"v2 largest block", v2(1, 0x11, kTcp4Block + tlv(0x04, std::string(4096 - 15, 'x'))),
       "192.0.2.1"},
  };
}

TEST(ProxyProtocol, ValidHeadersWholeAndAtEveryPrefix) {
  for (const Valid& v : valid_headers()) {
    SCOPED_TRACE(v.name);
    ProxyHeader whole = parse_proxy_header(v.header + kRequest);
    ASSERT_EQ(whole.status, Status::kDone);
    EXPECT_EQ(whole.length, v.header.size());
    EXPECT_EQ(whole.client, v.client);
    EXPECT_EQ(parse_proxy_header(v.header).length, v.header.size());
    for (size_t n = 0; n < v.header.size(); ++n)
      ASSERT_EQ(parse_proxy_header(std::string_view(v.header).substr(0, n)).status,
                Status::kNeedMore)
          << "prefix of " << n << " bytes";
  }
}

TEST(ProxyProtocol, Malformed) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"plain HTTP", kRequest},
      {"lower case", "proxy TCP4 192.0.2.1 198.51.100.2 1 2\r\n"},
      {"no space after PROXY", "PROXYTCP4 192.0.2.1 198.51.100.2 1 2\r\n"},
      {"LF without CR", "PROXY TCP4 192.0.2.1 198.51.100.2 1 2\n"},
      {"CR without LF", "PROXY TCP4 192.0.2.1 198.51.100.2 1 2\rGET"},
      {"empty line", "PROXY \r\n"},
      {"unknown protocol", "PROXY UDP4 192.0.2.1 198.51.100.2 1 2\r\n"},
      {"UNKNOWN glued", "PROXY UNKNOWNX\r\n"},
      {"missing port", "PROXY TCP4 192.0.2.1 198.51.100.2 1\r\n"},
      {"extra field", "PROXY TCP4 192.0.2.1 198.51.100.2 1 2 3\r\n"},
      {"trailing space", "PROXY TCP4 192.0.2.1 198.51.100.2 1 2 \r\n"},
      {"double space", "PROXY TCP4  192.0.2.1 198.51.100.2 1 2\r\n"},
      {"tab", "PROXY TCP4\t192.0.2.1 198.51.100.2 1 2\r\n"},
      {"IPv6 in TCP4", "PROXY TCP4 2001:db8::1 198.51.100.2 1 2\r\n"},
      {"IPv4 in TCP6", "PROXY TCP6 192.0.2.1 2001:db8::1 1 2\r\n"},
      {"bad destination", "PROXY TCP4 192.0.2.1 198.51.100 1 2\r\n"},
      {"leading zero in address", "PROXY TCP4 192.0.2.01 198.51.100.2 1 2\r\n"},
      {"octet over 255", "PROXY TCP4 192.0.2.256 198.51.100.2 1 2\r\n"},
      {"host name", "PROXY TCP4 localhost 198.51.100.2 1 2\r\n"},
      {"port over 65535", "PROXY TCP4 192.0.2.1 198.51.100.2 65536 2\r\n"},
      {"port with leading zero", "PROXY TCP4 192.0.2.1 198.51.100.2 01 2\r\n"},
      {"port not a number", "PROXY TCP4 192.0.2.1 198.51.100.2 1 +2\r\n"},
      {"negative port", "PROXY TCP4 192.0.2.1 198.51.100.2 -1 2\r\n"},
      {"no CRLF within 107 bytes", "PROXY UNKNOWN " + std::string(100, 'a') + "\r\n"},
      {"NUL in the line", "PROXY UNKNOWN \0\r\n"s},
      {"8-bit byte", "PROXY UNKNOWN \xff\r\n"},
      {"v2 bad signature", "\r\n\r\n\0\r\nQUIZ\n\x21\x11\x00\x0c"s + kTcp4Block},
      {"v2 version 1", kSignature + "\x11\x11\x00\x0c"s + kTcp4Block},
      {"v2 version 3", kSignature + "\x31\x11\x00\x0c"s + kTcp4Block},
      {"v2 command 2", v2(2, 0x11, kTcp4Block)},
      {"v2 family 4", v2(1, 0x41, kTcp4Block)},
      {"v2 transport 3", v2(1, 0x13, kTcp4Block)},
      {"v2 INET with UNSPEC transport", v2(1, 0x10, kTcp4Block)},
      {"v2 TCP4 block too short", v2(1, 0x11, kTcp4Block.substr(0, 11))},
      {"v2 TCP6 block too short", v2(1, 0x21, kTcp4Block)},
      {"v2 UNIX block too short", v2(1, 0x31, std::string(215, '\0'))},
      {"v2 block over the limit", v2(1, 0x11, kTcp4Block, 4097)},
      {"v2 block of 65535", v2(1, 0x11, kTcp4Block, 65535)},
      {"v2 TLV cut in its header", v2(1, 0x11, kTcp4Block + "\x04\x00"s)},
      {"v2 TLV longer than the block", v2(1, 0x11, kTcp4Block + tlv(0x04, "abc").substr(0, 5))},
  };
  for (const auto& [name, bytes] : cases) {
    SCOPED_TRACE(name);
    EXPECT_EQ(parse_proxy_header(bytes + kRequest).status, Status::kMalformed);
    for (size_t n = 0; n <= bytes.size(); ++n)
      ASSERT_NE(parse_proxy_header(std::string_view(bytes).substr(0, n)).status, Status::kDone)
          << "prefix of " << n << " bytes";
  }
}

TEST(ProxyProtocol, RefusedEarly) {
  // A peer that speaks HTTP, or garbage, is refused by its first byte; an
  // endless v1 line by byte 107; a huge v2 block by its length field.
  EXPECT_EQ(parse_proxy_header("G").status, Status::kMalformed);
  EXPECT_EQ(parse_proxy_header("PROXY TCP4\n").status, Status::kMalformed);
  EXPECT_EQ(parse_proxy_header("PROXY " + std::string(101, 'a')).status, Status::kMalformed);
  EXPECT_EQ(parse_proxy_header("PROXY " + std::string(100, 'a')).status, Status::kNeedMore);
  EXPECT_EQ(parse_proxy_header(kSignature + "\x21\x11\xff\xff").status, Status::kMalformed);
  EXPECT_EQ(parse_proxy_header(kSignature + "\x22").status, Status::kMalformed);
}

// ---- the session's stage in front of HTTP ----

std::string first_status(Session& s) {
  std::string out;
  for (const iovec& v : s.output()) out.append(static_cast<const char*>(v.iov_base), v.iov_len);
  return out.substr(0, 12);
}

// Feeds `bytes` in two pieces cut at `split`, or one byte at a time, to a
// session that expects a PROXY header from 127.0.0.1; returns the client the
// first request carries.
std::string client_seen(const std::string& bytes, size_t split, bool one_at_a_time,
                        bool trusted_proxy = false) {
  Session s(Limits{});
  s.set_peer("127.0.0.1", trusted_proxy, true);
  if (one_at_a_time) {
    for (char c : bytes) s.feed(std::string_view(&c, 1));
  } else {
    s.feed(std::string_view(bytes).substr(0, split));
    s.feed(std::string_view(bytes).substr(split));
  }
  auto request = s.next_request();
  if (!request) return "(none: " + first_status(s) + ")";
  return request->client;
}

TEST(ProxySession, HeaderThenRequestsAtEverySplit) {
  for (const Valid& v : valid_headers()) {
    SCOPED_TRACE(v.name);
    const std::string bytes = v.header + kRequest;
    const std::string expected = v.client.empty() ? "127.0.0.1" : v.client;
    for (size_t split = 0; split <= bytes.size(); ++split)
      ASSERT_EQ(client_seen(bytes, split, false), expected) << "split at " << split;
    EXPECT_EQ(client_seen(bytes, 0, true), expected);
  }
}

TEST(ProxySession, EveryRequestOnTheConnectionHasTheClient) {
  Session s(Limits{});
  s.set_peer("127.0.0.1", false, true);
  s.feed("PROXY TCP4 192.0.2.1 198.51.100.2 51234 443\r\n" + kRequest + kRequest);
  auto first = s.next_request();
  auto second = s.next_request();
  ASSERT_TRUE(first && second);
  EXPECT_EQ(first->client, "192.0.2.1");
  EXPECT_EQ(second->client, "192.0.2.1");
}

TEST(ProxySession, TrustedProxyForwardedForStillWins) {
  const std::string bytes =
      "PROXY TCP4 192.0.2.1 198.51.100.2 1 2\r\nGET / HTTP/1.1\r\nHost: "
      "x\r\nX-Forwarded-For: 203.0.113.7\r\n\r\n";
  EXPECT_EQ(client_seen(bytes, 0, false, true), "203.0.113.7");
  EXPECT_EQ(client_seen(bytes, 0, false, false), "192.0.2.1");
}

TEST(ProxySession, MissingOrMalformedHeaderIs400) {
  for (const std::string& bytes :
       {kRequest, "PROXY TCP4 192.0.2.1 nowhere 1 2\r\n" + kRequest, v2(1, 0x41, kTcp4Block)}) {
    Session s(Limits{});
    s.set_peer("127.0.0.1", false, true);
    s.feed(bytes);
    EXPECT_FALSE(s.next_request());
    EXPECT_EQ(first_status(s), "HTTP/1.1 400");
    EXPECT_FALSE(s.wants_input());
  }
}

TEST(ProxySession, TruncatedHeaderThenEofIs400AndReadsAsARequest) {
  for (const std::string& partial : {"PROXY TCP4 192.0.2.1"s, kSignature.substr(0, 5)}) {
    Session s(Limits{});
    s.set_peer("127.0.0.1", false, true);
    EXPECT_TRUE(s.idle());
    s.feed(partial);
    EXPECT_FALSE(s.take_rejection());
    EXPECT_TRUE(s.reading_request());  // the request deadline applies
    EXPECT_FALSE(s.idle());
    s.feed_eof();
    const auto rejection = s.take_rejection();
    ASSERT_TRUE(rejection);  // for the worker to count and log, once
    EXPECT_EQ(rejection->status, 400);
    EXPECT_FALSE(s.take_rejection());
    EXPECT_EQ(first_status(s), "HTTP/1.1 400");
  }
  Session silent(Limits{});  // nothing at all: nothing to answer
  silent.set_peer("127.0.0.1", false, true);
  silent.feed_eof();
  EXPECT_FALSE(silent.take_rejection());
  EXPECT_TRUE(silent.output().empty());
  EXPECT_TRUE(silent.wants_close());
}

// The access log names the client of a rejected request as it names any
// other: the one the PROXY header gave, not the balancer.
TEST(ProxySession, ARejectionNamesTheProxiedClient) {
  Session s(Limits{});
  s.set_peer("127.0.0.1", false, true);
  s.feed("PROXY TCP4 192.0.2.1 198.51.100.2 51234 443\r\nGET / HTTP/1.1\r\nBad Field: x\r\n\r\n");
  const auto rejection = s.take_rejection();
  ASSERT_TRUE(rejection);
  EXPECT_EQ(rejection->status, 400);
  EXPECT_EQ(rejection->client, "192.0.2.1");
}

TEST(ProxySession, WithoutTheFlagAProxyLineIsABadRequest) {
  Session s(Limits{});
  s.set_peer("192.0.2.9", false, false);
  s.feed("PROXY TCP4 192.0.2.1 198.51.100.2 1 2\r\n" + kRequest);
  EXPECT_FALSE(s.next_request());
  EXPECT_EQ(first_status(s), "HTTP/1.1 400");
}

}  // namespace
}  // namespace qilin::http

// An access-log line from a parsed access_log_format (workers/access_log.hpp),
// without a worker: every atom against a known request and response.
#include "workers/access_log.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

namespace qilin::workers {
namespace {

std::string line(std::string_view format, const AccessRecord& record) {
  fmt::memory_buffer out;
  format_access_line(out, resolve_environment(config::parse_access_log_format(format)), record);
  return fmt::to_string(out);
}

class AccessLine : public ::testing::Test {
 protected:
  AccessLine() {
    request.method = "GET";
    request.target = "/path/x?a=1&b=2";
    request.version_minor = 1;
    // "Basic " + base64("aladdin:open sesame")
    request.headers = {{"Referer", "http://example.test/"},
                       {"User-Agent", "curl/8"},
                       {"Authorization", "Basic YWxhZGRpbjpvcGVuIHNlc2FtZQ=="},
                       {"X-Trace", "abc"}};
    response.headers = {{"Content-Type", "text/plain"}};
    record = {.status = 200,
              .body_bytes = 13,
              .client = "192.0.2.1",
              .request = &request,
              .response = &response,
              .duration_us = 1'234'567,
              .now = 784111777,  // Sun, 06 Nov 1994 08:49:37 GMT
              .pid = 4242};
  }
  http::Request request;
  http::Response response;
  AccessRecord record;
};

TEST_F(AccessLine, GunicornsDefaultFormat) {
  EXPECT_EQ(line(config::kDefaultAccessLogFormat, record),
            R"(192.0.2.1 - aladdin [06/Nov/1994:08:49:37 +0000] "GET /path/x?a=1&b=2 HTTP/1.1" )"
            R"(200 13 "http://example.test/" "curl/8")");
}

TEST_F(AccessLine, EveryAtom) {
  EXPECT_EQ(line("%(m)s|%(U)s|%(q)s|%(H)s|%(s)s|%(B)s|%(b)s", record),
            "GET|/path/x|a=1&b=2|HTTP/1.1|200|13|13");
  EXPECT_EQ(line("%(T)s|%(M)s|%(D)s|%(L)s|%(p)s", record), "1|1234|1234567|1.234567|<4242>");
  EXPECT_EQ(line("%({x-trace}i)s|%({content-type}o)s|%({Missing}i)s|%({Missing}o)s", record),
            "abc|text/plain|-|-");
  ::setenv("QILIN_ACCESS_LOG_TEST", "from-env", 1);
  EXPECT_EQ(line("%({QILIN_ACCESS_LOG_TEST}e)s|%({QILIN_NOT_SET_ANYWHERE}e)s", record),
            "from-env|-");
  ::unsetenv("QILIN_ACCESS_LOG_TEST");
  EXPECT_EQ(line("100%% %(s)s", record), "100% 200");
}

TEST_F(AccessLine, LengthsFollowGunicorn) {
  record.body_bytes = 0;
  EXPECT_EQ(line("%(b)s %(B)s", record), "- 0");
  record.streamed = true;
  EXPECT_EQ(line("%(b)s %(B)s", record), "- -");
}

TEST_F(AccessLine, UserOnlyFromWellFormedBasicCredentials) {
  for (const char* credentials : {"Bearer abc", "Basic !!!!", "Basic bm9jb2xvbg==" /* nocolon */}) {
    request.headers = {{"Authorization", credentials}};
    EXPECT_EQ(line("%(u)s", record), "-") << credentials;
  }
  request.headers = {{"authorization", "basic dTpw"}};  // "u:p", scheme case-insensitive
  EXPECT_EQ(line("%(u)s", record), "u");
}

// "u\nforged line" as a Basic user, a quote in a header, a byte above 0x7F:
// nothing a client sends can start a line or close a quoted field.
TEST_F(AccessLine, WhatTheClientSentIsEscaped) {
  request.headers = {{"Authorization", "Basic dQpmb3JnZWQ6cA=="},  // "u\nforged:p"
                     {"User-Agent", "say \"hi\" \\ \xC3\xA9"}};
  record.client = "1.2.3.4\r";
  EXPECT_EQ(line("%(h)s %(u)s \"%(a)s\"", record),
            R"(1.2.3.4\x0D u\x0Aforged "say \x22hi\x22 \x5C \xC3\xA9")");
  request.target = "/a\"b";
  EXPECT_EQ(line("%(r)s|%(U)s", record), R"(GET /a\x22b HTTP/1.1|/a\x22b)");
}

TEST_F(AccessLine, ARejectionHasNoRequest) {
  AccessRecord rejected{.status = 400, .body_bytes = 12, .client = "192.0.2.1", .now = 784111777};
  EXPECT_EQ(line(config::kDefaultAccessLogFormat, rejected),
            R"(192.0.2.1 - - [06/Nov/1994:08:49:37 +0000] "-" 400 12 "-" "-")");
  EXPECT_EQ(line("%(m)s %(U)s %(q)s| %(H)s %({X}i)s %({X}o)s %(D)s", rejected), "- - | - - - 0");
}

}  // namespace
}  // namespace qilin::workers

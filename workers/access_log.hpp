// One access-log line per response, in the configured access_log_format
// (config/access_log_format.hpp has the atoms). Pure: the caller passes the
// clock and writes the line.
#pragma once

#include <fmt/format.h>
#include <sys/types.h>

#include <cstdint>
#include <ctime>
#include <span>
#include <string_view>
#include <vector>

#include "config/access_log_format.hpp"
#include "http/message.hpp"

namespace qilin::workers {

struct AccessRecord {
  int status = 0;
  uint64_t body_bytes = 0;
  bool streamed = false;  // chunked: the length is unknown when the line is written
  std::string_view client;
  const http::Request* request = nullptr;    // null: the session refused the bytes
  const http::Response* response = nullptr;  // itself, before any request existed
  int64_t duration_us = 0;
  std::time_t now = 0;
  pid_t pid = 0;
};

// {name}e atoms become text once, at boot: the environment does not change.
std::vector<config::LogPiece> resolve_environment(std::vector<config::LogPiece> format);

void format_access_line(fmt::memory_buffer& out, std::span<const config::LogPiece> format,
                        const AccessRecord& record);

}  // namespace qilin::workers

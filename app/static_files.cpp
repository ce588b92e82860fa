#include "app/static_files.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <linux/openat2.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <iterator>
#include <optional>
#include <random>
#include <span>
#include <utility>

#include "http/date.hpp"
#include "http/representation.hpp"
#include "sys/error.hpp"

namespace qilin::app {

namespace {

std::string_view content_type_for(std::string_view path) {
  static constexpr std::pair<std::string_view, std::string_view> types[] = {
      {".html", "text/html; charset=utf-8"},
      {".css", "text/css"},
      {".js", "text/javascript"},
      {".json", "application/json"},
      {".txt", "text/plain; charset=utf-8"},
      {".png", "image/png"},
      {".jpg", "image/jpeg"},
      {".svg", "image/svg+xml"},
      {".ico", "image/x-icon"},
      {".wasm", "application/wasm"}};
  for (auto [suffix, type] : types)
    if (path.ends_with(suffix)) return type;
  return "application/octet-stream";
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Percent-decodes a path and merges runs of '/' into one, leading ones
// dropped (nginx's merge_slashes): "/a//b" names "a/b". nullopt for a bad
// escape or a decoded NUL.
std::optional<std::string> decode_path(std::string_view encoded) {
  std::string out;
  out.reserve(encoded.size());
  for (size_t i = 0; i < encoded.size(); ++i) {
    char c = encoded[i];
    if (c == '%') {
      if (i + 2 >= encoded.size()) return std::nullopt;
      int high = hex_value(encoded[i + 1]), low = hex_value(encoded[i + 2]);
      if (high < 0 || low < 0 || (high == 0 && low == 0)) return std::nullopt;
      c = static_cast<char>(high * 16 + low);
      i += 2;
    }
    if (c == '/' && (out.empty() || out.back() == '/')) continue;
    out += c;
  }
  return out;
}

http::Conditions conditions_of(const http::Request& request) {
  return {.if_match = request.header("If-Match"),
          .if_unmodified_since = request.header("If-Unmodified-Since"),
          .if_none_match = request.header("If-None-Match"),
          .if_modified_since = request.header("If-Modified-Since")};
}

// Several ranges cannot be one file region, so their multipart body is built
// in memory; past this many bytes of the file, the whole file (zero-copy) is
// cheaper for the server than the copy, and the client still gets its bytes.
constexpr uint64_t kMultipartLimit = uint64_t{1} << 20;

// A multipart boundary must not occur inside any part (RFC 2046 §5.1.1). 80
// random bits against at most kMultipartLimit bytes of content leave a
// chance too small to check for. Seeded per thread on first use, which is in
// a worker after the fork, so sibling workers do not share a sequence.
std::string random_boundary() {
  thread_local std::mt19937_64 random = [] {
    std::random_device device;
    std::seed_seq seed{device(), device(), device(), device()};
    return std::mt19937_64(seed);
  }();
  const uint64_t high = random(), low = random() & 0xffff;
  return fmt::format("{:016x}{:04x}", high, low);
}

// Appends `length` bytes of `fd` from `offset` to `out`. pread may return
// fewer bytes than asked (a signal, a file truncated since fstat), so it is
// called until all are read. False, with errno set, on an error or an early
// end of file (ENODATA then: the body would not match its Content-Range).
bool append_file_region(int fd, uint64_t offset, uint64_t length, std::string& out) {
  const size_t start = out.size();
  out.resize(start + static_cast<size_t>(length));
  for (uint64_t done = 0; done < length;) {
    const ssize_t got = ::pread(fd, out.data() + start + done, static_cast<size_t>(length - done),
                                static_cast<off_t>(offset + done));
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) return false;
    if (got == 0) {
      errno = ENODATA;
      return false;
    }
    done += static_cast<uint64_t>(got);
  }
  return true;
}

// RFC 9110 §14.6: each part carries its own Content-Type and Content-Range,
// and the body ends with the closing delimiter. nullopt when a read fails.
std::optional<std::string> multipart_byteranges(int fd, std::span<const http::ByteRange> parts,
                                                uint64_t size, std::string_view type,
                                                std::string_view boundary) {
  std::string body;
  auto out = std::back_inserter(body);
  for (const http::ByteRange& part : parts) {
    fmt::format_to(out, "\r\n--{}\r\nContent-Type: {}\r\nContent-Range: bytes {}-{}/{}\r\n\r\n",
                   boundary, type, part.first, part.last, size);
    if (!append_file_region(fd, part.first, part.length(), body)) return std::nullopt;
  }
  fmt::format_to(out, "\r\n--{}--\r\n", boundary);
  return body;
}

}  // namespace

StaticFiles::StaticFiles(const std::string& root) {
  if (root.empty()) return;
  root_.reset(::open(root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!root_) spdlog::warn("static_dir '{}' cannot be opened: /static/ will answer 404", root);
}

http::Response StaticFiles::serve(const http::Request& request, std::string_view relative) const {
  const bool get = request.method == "GET";
  if (!get && request.method != "HEAD") {
    http::Response refused(405, "Method Not Allowed\n");
    refused.set("Allow", "GET, HEAD");
    return refused;
  }
  auto path = decode_path(relative);
  if (!path) return http::Response(400, "bad percent-encoding in path\n");
  if (!root_ || path->empty()) return http::Response(404, "Not Found\n");
  // RESOLVE_BENEATH makes the kernel refuse any escape from the root, by
  // ".." or a symlink, atomically with the open: no check-then-open race and
  // no hand-written path normalisation to get wrong.
  open_how how{};
  how.flags = O_RDONLY | O_CLOEXEC;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
  int fd = static_cast<int>(::syscall(SYS_openat2, root_.get(), path->c_str(), &how, sizeof how));
  if (fd < 0) {
    if (errno == EXDEV) return http::Response(403, "Forbidden\n");
    return http::Response(404, "Not Found\n");
  }
  sys::Fd file(fd);
  struct stat info {};
  if (::fstat(file.get(), &info) != 0 || !S_ISREG(info.st_mode))
    return http::Response(404, "Not Found\n");

  const auto size = static_cast<uint64_t>(info.st_size);
  const std::time_t modified = info.st_mtim.tv_sec;
  const std::string tag = http::file_entity_tag(modified, size);
  http::Response response;
  response.set("ETag", tag);
  response.set("Last-Modified", http::format_http_date(modified));
  switch (http::evaluate_preconditions(conditions_of(request), tag, modified)) {
    case http::Precondition::kFailed:
      response.status = 412;  // the client's copy is not this one: it must not proceed
      return response;
    case http::Precondition::kNotModified:
      response.status = 304;  // the validators only: the client has the rest
      return response;
    case http::Precondition::kProceed:
      break;
  }
  const std::string_view type = content_type_for(*path);
  response.set("Content-Type", type);
  response.set("Accept-Ranges", "bytes");
  // Range is defined for GET only (RFC 9110 §14.2); HEAD describes the whole file.
  auto range = request.header("Range");
  auto if_range = request.header("If-Range");
  if (get && range && (!if_range || http::if_range_holds(*if_range, tag, modified))) {
    const http::RangeSelection selection = http::evaluate_range(*range, size);
    if (selection.verdict == http::RangeSelection::Verdict::kUnsatisfiable) {
      http::Response refused(416, "Range Not Satisfiable\n");
      refused.set("Content-Range", fmt::format("bytes */{}", size));
      return refused;
    }
    const auto parts = selection.parts();
    if (parts.size() == 1) {
      response.status = 206;
      response.set("Content-Range",
                   fmt::format("bytes {}-{}/{}", parts[0].first, parts[0].last, size));
      response.file = std::move(file);
      response.file_offset = static_cast<off_t>(parts[0].first);
      response.file_length = static_cast<size_t>(parts[0].length());
      return response;
    }
    uint64_t selected = 0;  // at most `size`: evaluate_range refuses more
    for (const http::ByteRange& part : parts) selected += part.length();
    if (parts.size() > 1 && selected <= kMultipartLimit) {
      const std::string boundary = random_boundary();
      auto body = multipart_byteranges(file.get(), parts, size, type, boundary);
      if (!body) {
        spdlog::error("static file \"{}\": {}", *path, sys::describe("pread", errno));
        return http::Response(500, "cannot read the file\n");
      }
      response.status = 206;
      response.set("Content-Type", fmt::format("multipart/byteranges; boundary={}", boundary));
      response.body = std::move(*body);
      return response;
    }
  }
  // For HEAD too: the session sends the length and skips the bytes.
  response.file = std::move(file);
  response.file_length = static_cast<size_t>(size);
  return response;
}

}  // namespace qilin::app

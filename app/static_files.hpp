// Files under one directory, served as nginx serves a `root`: GET and HEAD,
// a Content-Type from the suffix, validators (ETag, Last-Modified) with 304
// for a client that has the file already and 412 for one whose If-Match or
// If-Unmodified-Since names another version, and byte ranges as 206. The
// whole file or one range is a region of the open file, which the response
// carries and the worker sends without copying; several ranges are a
// multipart/byteranges body read into memory (up to 1 MiB of the file).
#pragma once

#include <string>
#include <string_view>

#include "http/message.hpp"
#include "sys/fd.hpp"

namespace qilin::app {

class StaticFiles {
 public:
  // An empty or unopenable root serves nothing (404), with a warning for the latter.
  explicit StaticFiles(const std::string& root);

  // `relative`: the request path below the mount point, still percent-encoded.
  http::Response serve(const http::Request& request, std::string_view relative) const;

 private:
  sys::Fd root_;
};

}  // namespace qilin::app

// Files under one directory, served as nginx serves a `root`: GET and HEAD,
// a Content-Type from the suffix, validators (ETag, Last-Modified) with 304
// for a client that has the file already and 412 for one whose If-Match or
// If-Unmodified-Since names another version, and a single byte range as 206.
// The response carries the open file; the worker sends it without copying.
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

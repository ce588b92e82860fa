// The one place a request's size limits live. Filled from the config
// (gunicorn's limit_request_* settings) and enforced only by http::Session.
#pragma once

#include <cstddef>

namespace qilin::http {

struct Limits {
  // "METHOD target HTTP/1.1" longer: 414 URI Too Long. 0: unlimited (gunicorn).
  size_t request_line = 4094;
  size_t header_fields = 100;  // more fields (trailers included): 431
  // A longer "name: value" line: 431. 0: unlimited (gunicorn).
  size_t header_field_size = 8190;
  size_t body = 1 << 20;  // larger: 413 Content Too Large
  // Parsed but unanswered requests a pipelining client may queue before the
  // session stops asking for input (backpressure, not an error).
  size_t pipeline_depth = 64;
  // Response bytes waiting for the socket beyond which the session stops
  // asking for input: a client that sends but never reads is throttled.
  size_t output_high_water = 1 << 20;
  // Seconds a client has to send a whole request once its first byte arrived
  // (nginx's client_header_timeout, shorter): a client dribbling a header
  // forever is closed, one that finishes within a few seconds is served.
  // Enforced by each worker with its own kind of timer.
  int request_timeout_seconds = 10;
};

}  // namespace qilin::http

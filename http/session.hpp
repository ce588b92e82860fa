// http::Session: one connection's HTTP/1.1 state, without IO (sans-IO).
//
// A worker moves bytes; the session does everything else. The contract:
//   feed(bytes) / feed_eof()   parse (llhttp); complete requests are queued, a
//                              framing error queues an error response and ends input
//   take_rejection()           the error response queued in place of a request, once
//   next_request()             hands requests out in arrival order
//   respond(id, response)      may be called in any order (apps finish out of order)
//   output() / file_output()   what may be written now, strictly in request order
//   written(n)                 n bytes of that have left
//   wants_input(), wants_close(), idle(), reading_request()
//                              what the worker should do next
// No syscalls, no clock reads (see date.hpp), never calls the app. Every
// RFC 9112 rule in this server lives here, once.
#pragma once

#include <sys/types.h>
#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "http/limits.hpp"
#include "http/message.hpp"

namespace qilin::http {

// A region of an open file to send with sendfile(2) or splice(2).
struct FileChunk {
  int fd;
  off_t offset;
  size_t length;
};

class Session {
 public:
  explicit Session(const Limits& limits);
  ~Session();
  Session(Session&&) noexcept;
  Session& operator=(Session&&) noexcept;

  // The connection's peer ("127.0.0.1", "unix") and whether it is a proxy
  // whose X-Forwarded-For / X-Forwarded-Proto are to be believed (gunicorn's
  // forwarded_allow_ips; the worker decides, the session applies the headers).
  // Scheme headers that disagree (X-Forwarded-Proto, X-Forwarded-Scheme,
  // X-Forwarded-Ssl) from a trusted proxy are answered 400.
  // With `proxy_header` (proxy_protocol and a peer in proxy_allow_ips) the
  // connection must begin with a PROXY protocol header, v1 or v2
  // (proxy_protocol.hpp); the client it names replaces `peer`, and a trusted
  // proxy's X-Forwarded-For still overrides that. A header that is missing,
  // malformed or cut short by EOF is answered 400; until it is complete,
  // reading_request() holds, so the request deadline bounds it.
  void set_peer(std::string_view peer, bool trusted_proxy, bool proxy_header = false);

  // ---- input ----
  // Parses all of `bytes`. After a framing error the rest is ignored and an
  // error response (400, 413, 414, 431, 501, 505) with Connection: close is
  // queued after the responses to the requests that preceded it.
  // Expect: 100-continue (HTTP/1.1): when a feed ends with the headers of such
  // a request complete and none of its body here, "100 Continue" is queued,
  // unless an earlier request is still unanswered (then it is skipped; the
  // client sends the body after its own timeout, RFC 9110 §10.1.1).
  void feed(std::string_view bytes);
  // The peer closed its side. A partial request is dropped (nothing to answer).
  void feed_eof();
  // The error response feed() or feed_eof() queued in place of a request,
  // handed out once, so that the worker counts and logs it like an answered
  // request (nginx logs its 400s too). At most one per connection.
  struct Rejection {
    int status;
    size_t body_bytes;
    std::string client;  // the peer, or the client a PROXY header named
  };
  std::optional<Rejection> take_rejection() noexcept;
  // False when the connection is closing, or enough requests/output are queued
  // that reading more would only buffer (limits.pipeline_depth, output_high_water).
  bool wants_input() const noexcept;

  // The next complete request in arrival order, or nullopt.
  std::optional<Request> next_request();

  // ---- output ----
  // Answer request `id`. Bytes are released by output() only once every
  // earlier request has been answered. Unknown ids are ignored.
  void respond(uint64_t id, Response&& response);
  // The same, from a worker that still holds the request and is done with it:
  // its buffers (the header list above all) are kept for a later request on
  // this connection, which then parses without allocating.
  void respond(Request&& request, Response&& response);
  // Every response from now on carries Connection: close and the connection
  // ends after it (the sync worker, max_requests, a saturated pool, shutdown).
  // With complete requests owed, the last of them is the last answered: only
  // its response says close (RFC 9112 §9.6: nothing may follow a close) and a
  // partial request is dropped. With none owed, or when the last one is
  // answered already (its head said keep-alive, and the client may be sending
  // the next request on that promise), the next request is the last; until it
  // starts the session stays idle(), so the keep-alive deadline ends it.
  void refuse_keep_alive() noexcept;

  // Memory bytes ready to write now, in order, up to the next file region.
  // A streamed body is pulled here, at
  // most ~64 KiB ahead of written(); if the stream throws, the body ends where
  // it stands (no last chunk, so the client sees it truncated) and the
  // connection closes after it.
  // The bytes the iovecs point at stay put until written() consumes them,
  // whatever feed() or respond() do meanwhile, so an asynchronous send may
  // hold them; the iovec array itself is rebuilt by the next output() call.
  std::span<const iovec> output();
  // When output() is empty and a file region is next: that region.
  std::optional<FileChunk> file_output() const noexcept;
  // n bytes from the head of output() (or of file_output()) were written.
  void written(size_t n);
  // Bytes ready to write (memory and file) right now.
  size_t pending_output() const noexcept;

  // ---- what next ----
  // Everything owed has been written and the connection must now close.
  bool wants_close() const noexcept;
  // Between requests: nothing buffered, nothing in flight, nothing to write.
  // The keep-alive deadline applies.
  bool idle() const noexcept;
  // Part of a request is buffered: the header-read deadline applies.
  bool reading_request() const noexcept;
  // Requests handed out by next_request() and not answered yet.
  size_t in_flight() const noexcept;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace qilin::http

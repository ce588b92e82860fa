// One connection's HTTP/1.1 state (see session.hpp for the contract).
//
// Every request, from its first byte until its response has been written,
// owns a Slot in a ring indexed by request id. Slots advance
//   parsing -> queued (complete) -> in flight (handed out) -> answered
// and leave the ring from the front once their bytes are written, so output
// order is arrival order whatever order respond() is called in. An error
// response takes the slot of the request it rejects. Slots, and the capacity
// of their head strings, are reused, and so is a Request's header list when
// the worker hands the request back with its response: a keep-alive request
// then parses and answers without allocating (short strings live inline).
//
// Closing: the connection ends after one slot (end_id). It is fixed by a
// request that is not persistent, a framing error, a response that says
// close, EOF from the peer, or refuse_keep_alive(); slots after it are
// dropped and input stops. RFC 9112 §9.6: nothing may follow a response that
// says close.
#include "http/session.hpp"

#include <llhttp.h>

#include <algorithm>
#include <charconv>
#include <climits>
#include <utility>
#include <vector>

#include "http/proxy_protocol.hpp"
#include "http/response_writer.hpp"

namespace qilin::http {
namespace {

constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
// A stream is pulled ahead of the socket by at most this much, so a slow
// reader cannot make the session buffer an unbounded body.
constexpr size_t kStreamAhead = 64 * 1024;
constexpr size_t kStreamPullsAhead = 64;
constexpr size_t kIovMax = IOV_MAX;
// A body this small is copied behind its head, so a lone response is one
// buffer: one send instead of a sendmsg of two iovecs (the kernel copies no
// msghdr and no iovec array). Larger bodies are not worth a copy.
constexpr size_t kFoldedBody = 512;
constexpr uint64_t kNoEnd = UINT64_MAX;

enum class Phase : uint8_t { kParsing, kQueued, kInFlight, kAnswered };
enum class StreamState : uint8_t { kNone, kOpen, kEnded, kFailed };

// One piece of a streamed body: "<hex>\r\n" data "\r\n" when chunked, data
// alone for an HTTP/1.0 client; the last chunk is "0\r\n\r\n" with no data.
struct StreamPiece {
  std::string data;
  char line[24];
  uint8_t line_len = 0;
  uint8_t tail_len = 0;
  size_t size() const noexcept { return line_len + data.size() + tail_len; }
};

struct Slot {
  uint64_t id = 0;
  Phase phase = Phase::kParsing;
  bool head_method = false;
  bool keep_alive = true;
  int version_minor = 1;
  uint8_t continue_left = 0;  // bytes of a 100 Continue still to write, before the response
  Request request;

  std::string head;  // capacity survives the slot's reuse
  size_t head_off = 0;
  std::string body;
  size_t body_off = 0;
  sys::Fd file;
  off_t file_offset = 0;
  size_t file_left = 0;
  BodyStream stream;
  StreamState stream_state = StreamState::kNone;
  bool stream_chunked = true;
  std::vector<StreamPiece> pieces;
  size_t piece_front = 0;  // first piece not fully written
  size_t piece_off = 0;    // bytes of pieces[piece_front] written
  size_t piece_bytes = 0;  // bytes of pieces not yet written

  // The bytes this slot has ready now (pending_output()).
  size_t ready_bytes() const noexcept {
    return (head.size() - head_off) + (body.size() - body_off) + file_left + piece_bytes;
  }
  bool done() const noexcept {
    return continue_left == 0 && phase == Phase::kAnswered && head_off == head.size() &&
           body_off == body.size() && file_left == 0 &&
           (stream_state == StreamState::kNone ||
            (stream_state != StreamState::kOpen && piece_bytes == 0));
  }
  void release() noexcept {
    phase = Phase::kParsing;
    continue_left = 0;
    head.clear();
    head_off = 0;
    body = std::string();  // the app's buffer: give it back, not its capacity
    body_off = 0;
    file.reset();
    file_offset = 0;
    file_left = 0;
    stream = nullptr;
    stream_state = StreamState::kNone;
    pieces.clear();
    piece_front = piece_off = piece_bytes = 0;
  }
};

enum class Expect : uint8_t { kNone, k100Continue, kOther };

bool is_space(char c) noexcept { return c == ' ' || c == '\t'; }

// True when a Transfer-Encoding value names a coding other than chunked
// (RFC 9112 §6.1). llhttp already rejects chunked anywhere but last.
bool has_other_coding(std::string_view value) noexcept {
  while (true) {
    size_t comma = value.find(',');
    std::string_view item = trim_ows(value.substr(0, comma));
    if (!item.empty() && !iequals(item, "chunked")) return true;
    if (comma == std::string_view::npos) return false;
    value.remove_prefix(comma + 1);
  }
}

// llhttp_method_name(), with the length known rather than found by strlen
// on every request.
std::string_view method_name(uint8_t method) noexcept {
  switch (method) {
#define QILIN_METHOD(number, name, text) \
  case HTTP_##name:                      \
    return #text;
    HTTP_ALL_METHOD_MAP(QILIN_METHOD)
#undef QILIN_METHOD
    default:
      return {};  // llhttp reports only methods it knows
  }
}

void push_iov(std::vector<iovec>& iov, const char* p, size_t n) {
  if (n != 0) iov.push_back({const_cast<char*>(p), n});
}

// llhttp's own verdicts. Only a well-formed but unsupported version is a
// 505 (RFC 9110 §15.6.6); any other malformation is a 400.
int status_for(llhttp_errno_t err, const char* reason) noexcept {
  if (err == HPE_INVALID_VERSION && reason != nullptr &&
      std::string_view(reason) == "Invalid HTTP version") {
    return 505;
  }
  return 400;
}

}  // namespace

struct Session::State {
  explicit State(const Limits& l) : limits(l) {
    llhttp_init(&parser, HTTP_REQUEST, &settings());
    parser.data = this;
    for (int i = 0; i < 4; ++i) ring.push_back(std::make_unique<Slot>());
    iov.reserve(16);
  }

  // ---- the slot ring: ids are contiguous, front is the oldest unwritten ----
  Slot& at(size_t i) noexcept { return *ring[(ring_head + i) & (ring.size() - 1)]; }
  const Slot& at(size_t i) const noexcept { return *ring[(ring_head + i) & (ring.size() - 1)]; }
  Slot& back() noexcept { return at(count - 1); }

  Slot& push_back() {
    if (count == ring.size()) {
      // Slots never move: an asynchronous send may still be reading a body
      // kept inside one (a short string lives in the object itself).
      std::vector<std::unique_ptr<Slot>> grown;
      grown.reserve(ring.size() * 2);
      for (size_t i = 0; i < count; ++i)
        grown.push_back(std::move(ring[(ring_head + i) & (ring.size() - 1)]));
      while (grown.size() < ring.size() * 2) grown.push_back(std::make_unique<Slot>());
      ring = std::move(grown);
      ring_head = 0;
    }
    Slot& s = at(count++);
    s.id = next_id++;
    return s;
  }

  void pop_front() noexcept {
    at(0).release();
    ring_head = (ring_head + 1) & (ring.size() - 1);
    --count;
  }

  void drop_back() noexcept {
    Slot& s = back();
    switch (s.phase) {
      case Phase::kParsing:
        parsing = false;
        break;
      case Phase::kQueued:
        --queued;
        break;
      case Phase::kInFlight:
        --in_flight;
        break;
      case Phase::kAnswered:
        break;
    }
    s.release();
    --count;
  }

  Slot* find(uint64_t id) noexcept {
    if (count == 0 || id < at(0).id || id - at(0).id >= count) return nullptr;
    return &at(static_cast<size_t>(id - at(0).id));
  }

  // Pops the written slots; what remains at the front still owes bytes.
  void settle() noexcept {
    while (count > 0 && at(0).done()) pop_front();
  }

  // The connection ends after slot `id`: later slots are dropped (their
  // requests are never answered) and nothing more is read.
  void end_after(uint64_t id) noexcept {
    input_done = true;
    if (closing && end_id <= id) return;
    closing = true;
    end_id = id;
    while (count > 0 && back().id > id) drop_back();
  }

  // ---- parsing ----
  void begin_request() {
    Slot& s = push_back();
    s.phase = Phase::kParsing;
    Request& r = s.request;
    r.id = s.id;
    r.method.clear();
    r.target.clear();
    r.version_minor = 1;
    r.headers.clear();
    // Unless the worker gave the last one back (respond(Request&&, ...)), the
    // previous Request moved out with its vector: one allocation now instead
    // of one per doubling for a typical header count.
    if (r.headers.capacity() == 0) r.headers.reserve(8);
    r.body.clear();
    r.keep_alive = true;
    parsing = true;
    field_count = 0;
    field_len = 0;
    in_field = false;
    in_trailers = false;
    host_count = 0;
    other_coding = false;
    expect = Expect::kNone;
    continue_wanted = false;
    body_seen = false;
    chunked_total = 0;
  }

  // A framing error: answer `status` in place of the request being parsed and
  // read no more (RFC 9112 §9.6 for why nothing after it can be trusted).
  void reject(int status) {
    if (rejected) return;
    rejected = true;
    Slot* s = nullptr;
    if (parsing) {
      s = &back();
      parsing = false;
    } else {
      s = &push_back();
    }
    s->phase = Phase::kAnswered;
    s->request = Request{};
    s->head.clear();
    write_error(s->head, s->body, status);
    end_after(s->id);
    rejection = Session::Rejection{status, s->body.size(), peer};
  }

  bool over(size_t n, size_t limit) const noexcept { return limit != 0 && n > limit; }

  int on_method_complete() {
    Slot& s = back();
    s.request.method.assign(method_name(parser.method));
    // An application server has no tunnel to offer (RFC 9110 §9.3.6).
    if (parser.method == HTTP_CONNECT) return fail(501);
    return 0;
  }

  int on_url(const char* data, size_t n) {
    Request& r = back().request;
    r.target.append(data, n);
    // method SP target SP HTTP/1.x: checked while the target arrives, so an
    // endless line is cut off at the limit rather than buffered.
    if (over(r.method.size() + r.target.size() + 10, limits.request_line)) return fail(414);
    return 0;
  }

  int on_version_complete() {
    if (parser.http_major != 1 || parser.http_minor > 1) return fail(505);
    back().request.version_minor = parser.http_minor;
    return 0;
  }

  int on_header_field(const char* data, size_t n) {
    if (!in_field) {
      in_field = true;
      field_len = 0;
      if (++field_count > limits.header_fields) return fail(431);
      if (!in_trailers) back().request.headers.emplace_back();
    }
    // RFC 9112 §5.1: no whitespace between field name and colon; llhttp 8
    // passes it into the name, and a proxy might read the field differently.
    for (size_t i = 0; i < n; ++i) {
      if (is_space(data[i])) return fail(400);
    }
    field_len += n;
    if (over(field_len + 2, limits.header_field_size)) return fail(431);
    if (!in_trailers) back().request.headers.back().name.append(data, n);
    return 0;
  }

  int on_header_field_complete() {
    in_field = false;
    return 0;
  }

  int on_header_value(const char* data, size_t n) {
    if (n == 0) return 0;
    // RFC 9112 §5.2: obs-fold must be rejected (or rewritten); llhttp 8 accepts
    // it and hands the continuation line over as a span that begins after the
    // line break and (for an empty first line) its whitespace. A value span
    // that starts a line can only be such a continuation.
    if (starts_line(data)) return fail(400);
    field_len += n;
    if (over(field_len + 2, limits.header_field_size)) return fail(431);
    if (!in_trailers) back().request.headers.back().value.append(data, n);
    return 0;
  }

  int on_header_value_complete() {
    // Trailer fields are dropped: RFC 9110 §6.5.1 forbids merging them into
    // the header section unless the field's definition allows it.
    if (in_trailers) return 0;
    Header& h = back().request.headers.back();
    // RFC 9110 §5.5: trailing whitespace is not part of the value.
    while (!h.value.empty() && is_space(h.value.back())) h.value.pop_back();
    switch (h.name.size()) {
      case 4:
        if (iequals(h.name, "host")) ++host_count;
        break;
      case 6:
        if (iequals(h.name, "expect")) {
          bool cont = iequals(h.value, "100-continue");
          expect = (cont && expect != Expect::kOther) ? Expect::k100Continue : Expect::kOther;
        }
        break;
      case 17:
        if (iequals(h.name, "transfer-encoding")) other_coding |= has_other_coding(h.value);
        break;
      default:
        break;
    }
    return 0;
  }

  // What a trusted proxy says about the client. False: its scheme headers
  // contradict each other (a misconfigured proxy chain, or a forgery).
  bool apply_forwarded(Request& r) const {
    r.client = peer;  // every field is set: a slot's Request is reused after a move
    r.scheme = "http";
    if (!trusted_proxy) return true;
    std::string_view scheme;
    auto claim = [&](std::string_view said) {
      if (!scheme.empty() && !iequals(scheme, said)) return false;
      scheme = said;
      return true;
    };
    for (const Header& h : r.headers) {
      if (iequals(h.name, "x-forwarded-for")) {
        r.client.assign(trim_ows(std::string_view(h.value).substr(0, h.value.find(','))));
      } else if (iequals(h.name, "x-forwarded-proto") || iequals(h.name, "x-forwarded-scheme")) {
        if (!claim(trim_ows(h.value))) return false;
      } else if (iequals(h.name, "x-forwarded-ssl")) {
        if (!claim(iequals(trim_ows(h.value), "on") ? "https" : "http")) return false;
      }
    }
    if (iequals(scheme, "https")) {
      r.scheme = "https";
      return true;
    }
    return scheme.empty() || iequals(scheme, "http");
  }

  // RFC 9112 §3.2.2: an origin server must accept the absolute-form
  // ("GET http://a.example:8080/p?q HTTP/1.1") and take the host from it, not
  // from Host. It becomes what any other client sends: target "/p?q" and
  // Host "a.example:8080", so apps see one form. False: not an http(s) URI
  // with a host (or one with userinfo, RFC 9110 §4.2.4).
  static bool to_origin_form(Request& r) {
    std::string_view target = r.target;
    const size_t scheme_end = target.find("://");
    if (scheme_end == std::string_view::npos) return false;
    const std::string_view scheme = target.substr(0, scheme_end);
    if (!iequals(scheme, "http") && !iequals(scheme, "https")) return false;
    const size_t authority_at = scheme_end + 3;
    const size_t path_at = std::min(target.find_first_of("/?", authority_at), target.size());
    const std::string_view authority = target.substr(authority_at, path_at - authority_at);
    if (authority.empty() || authority.find('@') != std::string_view::npos) return false;
    std::string host(authority);
    auto with_host = std::find_if(r.headers.begin(), r.headers.end(),
                                  [](const Header& h) { return iequals(h.name, "host"); });
    if (with_host != r.headers.end()) {
      with_host->value = std::move(host);
    } else {
      r.headers.push_back(Header{"Host", std::move(host)});
    }
    const bool starts_with_query = path_at < target.size() && target[path_at] == '?';
    r.target.erase(0, path_at);
    if (r.target.empty() || starts_with_query) r.target.insert(0, 1, '/');
    return true;
  }

  int on_headers_complete() {
    in_trailers = true;
    Slot& s = back();
    Request& r = s.request;
    if (!apply_forwarded(r)) return fail(400);
    bool chunked = (parser.flags & F_CHUNKED) != 0;
    // RFC 9112 §6.1: Transfer-Encoding in HTTP/1.0 means faulty framing.
    if ((parser.flags & F_TRANSFER_ENCODING) != 0 && r.version_minor == 0) return fail(400);
    // RFC 9112 §6.1: a coding the server does not understand is a 501.
    if (other_coding) return fail(501);
    // RFC 9112 §3.2: exactly one Host in HTTP/1.1, at most one in 1.0.
    if (host_count > 1 || (host_count == 0 && r.version_minor == 1)) return fail(400);
    // RFC 9112 §3.2: origin-form, absolute-form (made origin-form here), or
    // "*" for an OPTIONS about the server as a whole (the app answers it);
    // anything else ("GET *", "GET index.html") names no resource.
    if (!r.target.starts_with('/') && !(r.target == "*" && parser.method == HTTP_OPTIONS) &&
        !to_origin_form(r))
      return fail(400);
    // Refused before the body is read; with Expect: 100-continue the client
    // then never sends it (RFC 9110 §10.1.1).
    if ((parser.flags & F_CONTENT_LENGTH) != 0 && parser.content_length > limits.body) {
      return fail(413);
    }
    bool has_body = chunked || parser.content_length > 0;
    // RFC 9110 §10.1.1: expectations are HTTP/1.1 only; an unknown one is a 417.
    if (r.version_minor == 1 && expect == Expect::kOther) return fail(417);
    continue_wanted = r.version_minor == 1 && expect == Expect::k100Continue && has_body;
    // RFC 9112 §9.3: 1.1 persists unless "close"; 1.0 only with "keep-alive".
    r.keep_alive = r.version_minor == 1 ? (parser.flags & F_CONNECTION_CLOSE) == 0
                                        : (parser.flags & F_CONNECTION_KEEP_ALIVE) != 0;
    s.keep_alive = r.keep_alive;
    s.version_minor = r.version_minor;
    s.head_method = parser.method == HTTP_HEAD;
    // RFC 9110 §7.8: a server may ignore Upgrade; this one speaks only
    // HTTP/1.1, so the bytes after the request are parsed as HTTP.
    parser.upgrade = 0;
    if (!chunked && parser.content_length > 0) r.body.reserve(parser.content_length);
    return 0;
  }

  int on_chunk_header() {
    body_seen = true;
    // chunked_total <= limits.body holds: it is checked before it grows.
    if (parser.content_length > limits.body - chunked_total) return fail(413);
    chunked_total += parser.content_length;
    return 0;
  }

  int on_body(const char* data, size_t n) {
    body_seen = true;
    back().request.body.append(data, n);
    return 0;
  }

  int on_message_complete() {
    Slot& s = back();
    s.phase = Phase::kQueued;
    ++queued;
    parsing = false;
    if (!s.keep_alive || refuse) {
      end_after(s.id);
      return HPE_PAUSED;  // the rest of the input belongs to no one
    }
    return 0;
  }

  // Whether only SP/HTAB lie between the previous LF and `p`, looking back
  // into earlier feeds through tail_after_lf.
  bool starts_line(const char* p) const noexcept {
    while (p > buf_begin && is_space(p[-1])) --p;
    return p > buf_begin ? p[-1] == '\n' : tail_after_lf;
  }

  void note_tail(std::string_view bytes) noexcept {
    const char* p = bytes.data() + bytes.size();
    while (p > bytes.data() && is_space(p[-1])) --p;
    if (p > bytes.data()) tail_after_lf = p[-1] == '\n';
  }

  int fail(int status) {
    reject(status);
    return HPE_USER;
  }

  // PROXY protocol (set_peer): the header in front of the first request.
  // False while it is incomplete, or after a bad one (400 queued). True once
  // it is read: its client becomes the peer and `bytes` is what follows it,
  // kept in `held` when part of the header came in earlier feeds.
  bool take_proxy_header(std::string_view& bytes, std::string& held) {
    std::string_view seen = bytes;
    if (!proxy_bytes.empty()) seen = proxy_bytes.append(bytes);
    ProxyHeader header = parse_proxy_header(seen);
    switch (header.status) {
      case ProxyHeader::Status::kNeedMore:
        if (proxy_bytes.empty()) proxy_bytes.assign(bytes);
        return false;
      case ProxyHeader::Status::kMalformed:
        proxy_bytes.clear();
        reject(400);
        return false;
      case ProxyHeader::Status::kDone:
        break;
    }
    awaiting_proxy_header = false;
    if (!header.client.empty()) peer = std::move(header.client);
    held = std::move(proxy_bytes);
    proxy_bytes.clear();
    bytes = (held.empty() ? bytes : std::string_view(held)).substr(header.length);
    return true;
  }

  // RFC 9110 §10.1.1: a 100 Continue only while the client is waiting for
  // it. It is skipped when an earlier request is still unanswered: it would
  // sit behind that response anyway, and the client sends the body after a
  // timeout without it.
  void maybe_continue() {
    if (!continue_wanted || !parsing) return;
    continue_wanted = false;
    if (body_seen || queued != 0 || in_flight != 0) return;
    back().continue_left = static_cast<uint8_t>(kContinue.size());
  }

  // ---- responses ----
  void serialize(Slot& s, Response& r) {
    // The app runner already turns any other status into a 500; so does
    // this, for any other caller.
    int status = is_final_status(r.status) ? r.status : 500;
    bool content = status_has_content(status);
    bool close = !s.keep_alive || (closing && s.id == end_id);
    HeadSpec spec{.status = status};
    size_t file_len = r.file ? r.file_length : 0;
    bool stream = content && r.stream != nullptr;
    if (!content) {
      spec.framing = Framing::kNone;
    } else if (stream) {
      if (s.version_minor >= 1) {
        spec.framing = Framing::kChunked;
      } else if (!s.head_method) {
        // RFC 9112 §7.1 is HTTP/1.1 only: a 1.0 client learns the end of an
        // unknown-length body from the close (RFC 9112 §6.3 rule 8).
        spec.framing = Framing::kUntilClose;
        close = true;
      }
    } else {
      spec.framing = Framing::kLength;
      spec.content_length = r.body.size() + file_len;
    }
    spec.close = close;
    spec.keep_alive_token = s.version_minor == 0 && !close;
    s.head.clear();
    s.head_off = 0;
    close = write_head(s.head, spec, r.headers);
    recycle_header_list(r.headers);
    // RFC 9110 §9.3.2: HEAD gets GET's head and no content.
    if (content && !s.head_method) {
      if (stream) {
        s.stream = std::move(r.stream);
        s.stream_state = StreamState::kOpen;
        s.stream_chunked = s.version_minor >= 1;
      } else {
        if (r.body.size() <= kFoldedBody)
          s.head.append(r.body);
        else
          s.body = std::move(r.body);
        if (file_len != 0) {
          s.file = std::move(r.file);
          s.file_offset = r.file_offset;
          s.file_left = file_len;
        }
      }
    }
    s.phase = Phase::kAnswered;
    if (close) end_after(s.id);
  }

  // Pulls from an open stream until kStreamAhead bytes wait unwritten. An
  // exception from the app ends the body where it stands: no last chunk is
  // sent, so the client sees a truncated message, and the connection closes.
  void top_up(Slot& s) {
    if (s.stream_state != StreamState::kOpen) return;
    if (s.piece_front != 0) {  // written pieces go before more are pulled
      s.pieces.erase(s.pieces.begin(), s.pieces.begin() + static_cast<ptrdiff_t>(s.piece_front));
      s.piece_front = 0;
    }
    for (size_t pulls = 0; s.stream_state == StreamState::kOpen && s.piece_bytes < kStreamAhead &&
                           pulls < kStreamPullsAhead;
         ++pulls) {
      std::optional<std::string> next;
      try {
        next = s.stream();
      } catch (...) {
        s.stream_state = StreamState::kFailed;
        s.stream = nullptr;
        end_after(s.id);
        return;
      }
      if (!next) {
        s.stream_state = StreamState::kEnded;
        s.stream = nullptr;
        if (s.stream_chunked) {
          StreamPiece& last = s.pieces.emplace_back();
          std::string_view end = "0\r\n\r\n";  // RFC 9112 §7.1: last-chunk, no trailers
          std::copy(end.begin(), end.end(), last.line);
          last.line_len = static_cast<uint8_t>(end.size());
          s.piece_bytes += last.size();
        }
        return;
      }
      if (next->empty()) continue;  // a zero-size chunk would end the body
      StreamPiece& p = s.pieces.emplace_back();
      p.data = std::move(*next);
      if (s.stream_chunked) {
        auto [end, ec] = std::to_chars(p.line, p.line + 20, p.data.size(), 16);
        (void)ec;  // 16 hex digits hold any size_t
        end[0] = '\r';
        end[1] = '\n';
        p.line_len = static_cast<uint8_t>(end + 2 - p.line);
        p.tail_len = 2;
      }
      s.piece_bytes += p.size();
    }
  }

  // Appends what `s` has ready; false when a later slot may not follow yet.
  bool gather(Slot& s) {
    if (s.continue_left != 0) {
      push_iov(iov, kContinue.data() + kContinue.size() - s.continue_left, s.continue_left);
    }
    if (s.phase != Phase::kAnswered) return false;
    push_iov(iov, s.head.data() + s.head_off, s.head.size() - s.head_off);
    push_iov(iov, s.body.data() + s.body_off, s.body.size() - s.body_off);
    if (s.file_left != 0) return false;  // file_output() carries it
    if (s.stream_state == StreamState::kNone) return true;
    top_up(s);
    for (size_t i = s.piece_front; i < s.pieces.size(); ++i) {
      if (iov.size() + 3 > kIovMax) return false;
      const StreamPiece& p = s.pieces[i];
      size_t off = i == s.piece_front ? s.piece_off : 0;
      if (off < p.line_len) push_iov(iov, p.line + off, p.line_len - off);
      size_t data_off = off > p.line_len ? off - p.line_len : 0;
      if (data_off < p.data.size()) {
        push_iov(iov, p.data.data() + data_off, p.data.size() - data_off);
      }
      size_t tail_off = off > p.line_len + p.data.size() ? off - p.line_len - p.data.size() : 0;
      static constexpr std::string_view kCrlf = "\r\n";
      push_iov(iov, kCrlf.data() + tail_off, p.tail_len - tail_off);
    }
    return s.stream_state != StreamState::kOpen;
  }

  // Consumes up to n bytes of `s` in gather() order; returns what is left of n.
  static size_t consume(Slot& s, size_t n) noexcept {
    auto take = [&n](size_t avail) {
      size_t k = std::min(n, avail);
      n -= k;
      return k;
    };
    s.continue_left = static_cast<uint8_t>(s.continue_left - take(s.continue_left));
    if (s.phase != Phase::kAnswered) return n;
    s.head_off += take(s.head.size() - s.head_off);
    s.body_off += take(s.body.size() - s.body_off);
    size_t f = take(s.file_left);
    s.file_left -= f;
    s.file_offset += static_cast<off_t>(f);
    while (n != 0 && s.piece_front < s.pieces.size()) {
      size_t k = take(s.pieces[s.piece_front].size() - s.piece_off);
      s.piece_off += k;
      s.piece_bytes -= k;
      if (s.piece_off == s.pieces[s.piece_front].size()) {
        ++s.piece_front;
        s.piece_off = 0;
      }
    }
    return n;
  }

  // Bytes of answered responses not yet written, in order or not: what a
  // client that does not read makes the session hold.
  size_t buffered_output() const noexcept {
    size_t total = 0;
    for (size_t i = 0; i < count; ++i) {
      const Slot& s = at(i);
      total += s.continue_left;
      if (s.phase == Phase::kAnswered) total += s.ready_bytes();
    }
    return total;
  }

  // ---- llhttp glue: one static table, the State found through parser.data ----
  static State& of(llhttp_t* p) noexcept { return *static_cast<State*>(p->data); }

  static const llhttp_settings_t& settings() noexcept {
    static const llhttp_settings_t table = [] {
      llhttp_settings_t s;
      llhttp_settings_init(&s);
      s.on_message_begin = [](llhttp_t* p) {
        of(p).begin_request();
        return 0;
      };
      s.on_method_complete = [](llhttp_t* p) { return of(p).on_method_complete(); };
      s.on_url = [](llhttp_t* p, const char* data, size_t n) { return of(p).on_url(data, n); };
      s.on_version_complete = [](llhttp_t* p) { return of(p).on_version_complete(); };
      s.on_header_field = [](llhttp_t* p, const char* data, size_t n) {
        return of(p).on_header_field(data, n);
      };
      s.on_header_field_complete = [](llhttp_t* p) { return of(p).on_header_field_complete(); };
      s.on_header_value = [](llhttp_t* p, const char* data, size_t n) {
        return of(p).on_header_value(data, n);
      };
      s.on_header_value_complete = [](llhttp_t* p) { return of(p).on_header_value_complete(); };
      s.on_headers_complete = [](llhttp_t* p) { return of(p).on_headers_complete(); };
      s.on_chunk_header = [](llhttp_t* p) { return of(p).on_chunk_header(); };
      s.on_body = [](llhttp_t* p, const char* data, size_t n) { return of(p).on_body(data, n); };
      s.on_message_complete = [](llhttp_t* p) { return of(p).on_message_complete(); };
      return s;
    }();
    return table;
  }

  Limits limits;
  llhttp_t parser;

  std::vector<std::unique_ptr<Slot>> ring;  // size is a power of two; slots at stable addresses
  size_t ring_head = 0;
  size_t count = 0;
  uint64_t next_id = 0;
  uint64_t next_handout = 0;  // id of the next request next_request() returns
  size_t queued = 0;          // complete, not handed out
  size_t in_flight = 0;       // handed out, not answered
  bool parsing = false;       // back() is a partial request

  bool input_done = false;
  bool rejected = false;
  std::optional<Session::Rejection> rejection;  // until take_rejection()
  bool refuse = false;
  bool closing = false;
  uint64_t end_id = kNoEnd;

  // The request being parsed.
  size_t field_count = 0;
  size_t field_len = 0;  // name + value bytes of the current field line
  bool in_field = false;
  bool in_trailers = false;
  unsigned host_count = 0;
  std::string peer;
  bool trusted_proxy = false;
  bool awaiting_proxy_header = false;
  std::string proxy_bytes;  // an incomplete PROXY header, at most a few KiB
  bool other_coding = false;
  Expect expect = Expect::kNone;
  bool continue_wanted = false;
  bool body_seen = false;
  uint64_t chunked_total = 0;

  // The buffer llhttp is running over, and whether the bytes fed before it
  // ended with an LF and optional whitespace: what precedes a span is known
  // even when a split put it in an earlier feed().
  const char* buf_begin = nullptr;
  bool tail_after_lf = false;

  std::vector<iovec> iov;
};

Session::Session(const Limits& limits) : state_(std::make_unique<State>(limits)) {}
Session::~Session() = default;
Session::Session(Session&&) noexcept = default;
Session& Session::operator=(Session&&) noexcept = default;

void Session::feed(std::string_view bytes) {
  State& s = *state_;
  if (s.input_done || bytes.empty()) return;
  if (s.awaiting_proxy_header) [[unlikely]] {
    std::string held;  // the bytes after a PROXY header that arrived in pieces
    if (s.take_proxy_header(bytes, held)) feed(bytes);  // once: no header is awaited now
    return;
  }
  s.buf_begin = bytes.data();
  llhttp_errno_t err = llhttp_execute(&s.parser, bytes.data(), bytes.size());
  s.note_tail(bytes);
  if (s.rejected || s.input_done) return;
  if (err != HPE_OK) {
    s.reject(status_for(err, llhttp_get_error_reason(&s.parser)));
    return;
  }
  s.maybe_continue();
}

void Session::set_peer(std::string_view peer, bool trusted_proxy, bool proxy_header) {
  state_->peer.assign(peer);
  state_->trusted_proxy = trusted_proxy;
  state_->awaiting_proxy_header = proxy_header;
}

void Session::feed_eof() {
  State& s = *state_;
  // Part of a PROXY header, then nothing: as malformed as a wrong one.
  if (!s.proxy_bytes.empty()) {
    s.proxy_bytes.clear();
    s.reject(400);
  }
  if (s.parsing) {
    Slot& partial = s.back();
    if (partial.continue_left != 0 && partial.continue_left < kContinue.size()) {
      // Half a 100 Continue is on the wire: finish it, answer nothing else.
      partial.phase = Phase::kAnswered;
      s.parsing = false;
    } else {
      s.drop_back();
    }
  }
  s.input_done = true;
  s.end_after(s.count > 0 ? s.back().id : s.next_id);
}

bool Session::wants_input() const noexcept {
  const State& s = *state_;
  return !s.input_done && s.queued + s.in_flight < s.limits.pipeline_depth &&
         s.buffered_output() < s.limits.output_high_water;
}

std::optional<Request> Session::next_request() {
  State& s = *state_;
  if (s.queued == 0) return std::nullopt;
  // Queued slots are contiguous from the oldest one not handed out; only an
  // error or a partial request can follow them.
  Slot& slot = *s.find(s.next_handout++);
  slot.phase = Phase::kInFlight;
  --s.queued;
  ++s.in_flight;
  return std::move(slot.request);
}

void Session::respond(uint64_t id, Response&& response) {
  State& s = *state_;
  Slot* slot = s.find(id);
  if (slot == nullptr || slot->phase != Phase::kInFlight) return;
  --s.in_flight;
  s.serialize(*slot, response);
}

void Session::respond(Request&& request, Response&& response) {
  Slot* slot = state_->find(request.id);
  if (slot != nullptr && slot->phase == Phase::kInFlight) {
    // next_request() moved the slot's Request out; begin_request() clears
    // what comes back and keeps the capacity.
    slot->request.headers = std::move(request.headers);
    if (request.target.capacity() > slot->request.target.capacity())
      slot->request.target.swap(request.target);
  }
  respond(request.id, std::move(response));
}

void Session::refuse_keep_alive() noexcept {
  State& s = *state_;
  s.refuse = true;
  // The last complete request is the last answered; with none, the next one.
  // Also the next one when the last is answered already: its head went out
  // (or is going out) saying keep-alive, the client may have sent another
  // request on that promise, and closing after it would drop that request.
  size_t complete = s.count - (s.parsing ? 1 : 0);
  if (complete > 0 && s.at(complete - 1).phase != Phase::kAnswered)
    s.end_after(s.at(complete - 1).id);
}

std::optional<Session::Rejection> Session::take_rejection() noexcept {
  return std::exchange(state_->rejection, std::nullopt);
}

std::span<const iovec> Session::output() {
  State& s = *state_;
  s.settle();
  s.iov.clear();
  for (size_t i = 0; i < s.count; ++i) {
    if (s.iov.size() + 4 > kIovMax) break;
    if (!s.gather(s.at(i))) break;
  }
  // A failed stream may have left a front slot with nothing to write.
  if (s.iov.empty()) s.settle();
  return s.iov;
}

std::optional<FileChunk> Session::file_output() const noexcept {
  const State& s = *state_;
  if (s.count == 0) return std::nullopt;
  const Slot& f = s.at(0);
  if (f.continue_left != 0 || f.phase != Phase::kAnswered || f.head_off != f.head.size() ||
      f.body_off != f.body.size() || f.file_left == 0) {
    return std::nullopt;
  }
  return FileChunk{f.file.get(), f.file_offset, f.file_left};
}

void Session::written(size_t n) {
  State& s = *state_;
  while (n != 0 && s.count > 0) {
    Slot& front = s.at(0);
    n = State::consume(front, n);
    if (!front.done()) break;
    s.pop_front();
  }
  s.settle();
}

size_t Session::pending_output() const noexcept {
  const State& s = *state_;
  size_t total = 0;
  for (size_t i = 0; i < s.count; ++i) {
    const Slot& slot = s.at(i);
    total += slot.continue_left;
    if (slot.phase != Phase::kAnswered) break;
    total += slot.ready_bytes();
    if (slot.stream_state == StreamState::kOpen) break;
  }
  return total;
}

bool Session::wants_close() const noexcept { return state_->closing && state_->count == 0; }

bool Session::idle() const noexcept {
  return state_->count == 0 && !state_->closing && state_->proxy_bytes.empty();
}

// A PROXY header in pieces is read under the same deadline as a request.
bool Session::reading_request() const noexcept {
  return state_->parsing || !state_->proxy_bytes.empty();
}

size_t Session::in_flight() const noexcept { return state_->in_flight; }

}  // namespace qilin::http

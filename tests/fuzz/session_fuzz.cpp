// A fuzz target for http::Session: arbitrary bytes from a client, arbitrary
// answers from an app, arbitrary write sizes from a socket, in any order a
// worker could produce them. Beyond "no crash, no sanitizer report", what
// the session writes is read back with llhttp as a client would read it: it
// must be well-formed HTTP/1.1, answer the requests in order, and say nothing
// after a response that said Connection: close.
//
// The input is a little program (two set-up bytes, then steps: see run() and
// make_seeds.py). libFuzzer drives it in make fuzz; in make test,
// session_fuzz_replay runs tests/fuzz/seeds/session and a fixed series of
// their mutations.
#include <llhttp.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "http/date.hpp"
#include "http/session.hpp"

namespace {

using qilin::http::Request;
using qilin::http::Response;
using qilin::http::Session;

// SESSION_FUZZ_TRACE=1 prints each step and every byte written (to read a finding).
const bool kTrace = std::getenv("SESSION_FUZZ_TRACE") != nullptr;
void trace(const char* what, std::string_view bytes = {}) {
  if (kTrace)
    std::fprintf(stderr, "%s [%.*s]\n", what, static_cast<int>(bytes.size()), bytes.data());
}

[[noreturn]] void broken(const char* what, std::string_view detail = {}) {
  std::fprintf(stderr, "session_fuzz: %s %.*s\n", what, static_cast<int>(detail.size()),
               detail.data());
  std::abort();
}

// Reads the input front to back; past its end every read is 0.
class Script {
 public:
  explicit Script(std::span<const uint8_t> bytes) : bytes_(bytes) {}
  bool done() const { return at_ >= bytes_.size(); }
  uint8_t byte() { return done() ? 0 : bytes_[at_++]; }
  std::string_view peek(size_t wanted) const {
    const size_t length = std::min(wanted, bytes_.size() - at_);
    return {reinterpret_cast<const char*>(bytes_.data() + at_), length};
  }
  std::string_view take(size_t wanted) {
    std::string_view taken = peek(wanted);
    at_ += taken.size();
    return taken;
  }

 private:
  std::span<const uint8_t> bytes_;
  size_t at_ = 0;
};

// Small limits make the 413/414/431 paths and backpressure reachable.
qilin::http::Limits limits_from(uint8_t bits) {
  qilin::http::Limits limits;
  if (bits & 1) limits.request_line = 40;
  if (bits & 2) limits.header_fields = 3;
  if (bits & 4) limits.header_field_size = 48;
  if (bits & 8) limits.body = 16;
  if (bits & 16) limits.pipeline_depth = 2;
  if (bits & 32) limits.output_high_water = 300;
  return limits;
}

// A file the app can answer with (sendfile/splice in the workers).
int file_of_bytes() {
  static const int fd = [] {
    const int made = ::memfd_create("session_fuzz", MFD_CLOEXEC);
    const std::string bytes(8192, 'f');
    if (made < 0 || ::write(made, bytes.data(), bytes.size()) != 8192) broken("memfd");
    return made;
  }();
  return fd;
}

// What an app may hand back: odd statuses, framing headers the session must
// replace, streamed bodies (one that throws half-way), files.
Response answer(uint8_t how, uint8_t size, bool& truncates) {
  static constexpr int kStatuses[] = {200, 204, 304, 404, 500, 101, 100, 199, 999, 0, 600, 302};
  Response response(kStatuses[how % 12], std::string(size, 'b'));
  if (how & 0x10) response.set("Content-Length", "7").set("Transfer-Encoding", "chunked");
  if (how & 0x20) response.set("Connection", "close");
  switch (how >> 6) {
    case 1: {
      response.body.clear();
      response.stream = [left = size % 5, throws = (how & 0x08) != 0]() mutable
          -> std::optional<std::string> {
        if (left == 0) return std::nullopt;
        if (--left == 1 && throws) throw std::runtime_error("stream failed");
        return std::string(left * 3, 's');
      };
      truncates = truncates || (how & 0x08);
      break;
    }
    case 2:
      response.file.reset(::dup(file_of_bytes()));
      response.file_offset = size;
      response.file_length = size * 16u;
      break;
    default:
      break;
  }
  return response;
}

// The client's side: llhttp in response mode over everything written.
class Reader {
 public:
  Reader() {
    llhttp_settings_init(&settings_);
    settings_.on_header_field = [](llhttp_t* parser, const char* at, size_t length) -> int {
      auto& self = *static_cast<Reader*>(parser->data);
      if (self.field_done_) self.field_.clear();
      self.field_.append(at, length);
      self.field_done_ = false;
      return 0;
    };
    settings_.on_header_value = [](llhttp_t* parser, const char* at, size_t length) -> int {
      auto& self = *static_cast<Reader*>(parser->data);
      self.field_done_ = true;
      if (self.field_ == "X-Id") self.id_.append(at, length);
      return 0;
    };
    settings_.on_headers_complete = [](llhttp_t* parser) -> int {
      auto& self = *static_cast<Reader*>(parser->data);
      const std::string id = std::exchange(self.id_, {});
      self.field_.clear();
      if (parser->status_code >= 100 && parser->status_code < 200) return 0;  // interim
      if (self.methods_.empty()) {  // none owed: only the error that ended the input may come
        if (parser->status_code != std::exchange(self.rejection_, 0))
          broken("a response nobody asked for");
        return 0;
      }
      const auto [method, expected_id] = self.methods_.front();
      self.methods_.pop_front();
      if (id != std::to_string(expected_id)) broken("a response out of order: X-Id", id);
      return method == "HEAD" ? 1 : 0;  // 1: this response has no body
    };
    llhttp_init(&parser_, HTTP_RESPONSE, &settings_);
    parser_.data = this;
  }
  void expect(std::string_view method, uint64_t id) { methods_.emplace_back(method, id); }
  // The error response the session queued in place of a request: the status
  // take_rejection() reported (for the access log) must be the one written.
  void expect_rejection(int status) { rejection_ = status; }
  void read(std::string_view bytes) {
    if (bytes.empty()) return;
    const llhttp_errno_t error = llhttp_execute(&parser_, bytes.data(), bytes.size());
    if (error != HPE_OK && error != HPE_PAUSED_UPGRADE)
      broken(llhttp_errno_name(error), llhttp_get_error_reason(&parser_));
  }

 private:
  llhttp_settings_t settings_{};
  llhttp_t parser_{};
  std::deque<std::pair<std::string, uint64_t>> methods_;  // of the requests answers are owed to
  std::string field_, id_;
  bool field_done_ = true;
  int rejection_ = 0;
};

void run(Script& script) {
  const uint8_t setup = script.byte();
  Session session(limits_from(script.byte()));
  session.set_peer("10.0.0.1", setup & 1, setup & 2);
  Reader reader;
  std::vector<Request> unanswered;
  uint64_t next_id = 0;
  bool truncates = false;  // a stream that throws ends a response early: stop reading there
  // A worker takes the rejection whenever it looks; it must be taken before it is read.
  auto take_rejection = [&] {
    if (auto rejection = session.take_rejection()) reader.expect_rejection(rejection->status);
  };

  auto write = [&](size_t budget) {
    take_rejection();
    while (budget > 0) {
      auto memory = session.output();
      std::string sent;
      for (const iovec& piece : memory) {
        const size_t length = std::min(piece.iov_len, budget - sent.size());
        sent.append(static_cast<const char*>(piece.iov_base), length);
        if (sent.size() == budget) break;
      }
      if (sent.empty()) {
        auto file = session.file_output();
        if (!file) return;
        sent.resize(std::min(file->length, budget));
        if (::pread(file->fd, sent.data(), sent.size(), file->offset) !=
            static_cast<ssize_t>(sent.size()))
          broken("pread of the file region");
      }
      trace("written", sent);
      if (!truncates) reader.read(sent);
      session.written(sent.size());
      budget -= sent.size();
    }
  };

  while (!script.done()) {
    const uint8_t step = script.byte();
    switch (step & 7) {
      case 0:
      case 1:  // the client sends
        trace("feed", script.peek((step >> 3) + 1u));
        session.feed(script.take((step >> 3) + 1u));
        break;
      case 2:  // the worker hands out what is complete
        while (auto request = session.next_request()) {
          if (request->id != next_id++) broken("request ids out of order");
          trace("request", request->method + " " + request->target);
          reader.expect(request->method, request->id);
          unanswered.push_back(std::move(*request));
        }
        take_rejection();
        break;
      case 3: {  // the app answers one, oldest or newest first
        const uint8_t how = script.byte(), size = script.byte();
        if (!unanswered.empty()) {
          const bool newest = step & 8;
          Request request = std::move(newest ? unanswered.back() : unanswered.front());
          unanswered.erase(newest ? unanswered.end() - 1 : unanswered.begin());
          Response response = answer(how, size, truncates);
          response.set("X-Id", std::to_string(request.id));
          trace("respond", std::to_string(request.id) + " " + std::to_string(response.status));
          if (step & 16)
            session.respond(request.id, std::move(response));
          else
            session.respond(std::move(request), std::move(response));
        }
        break;
      }
      case 4:  // the socket takes some bytes
        write((step >> 3) * 37u + 1);
        break;
      case 5:
        trace("eof");
        session.feed_eof();
        break;
      case 6:
        trace("refuse keep-alive");
        session.refuse_keep_alive();
        break;
      case 7:  // a worker's questions, for their own sake (no side effects allowed)
        (void)session.wants_input();
        (void)session.wants_close();
        (void)session.idle();
        (void)session.reading_request();
        (void)session.in_flight();
        (void)session.pending_output();
        break;
    }
  }
  write(SIZE_MAX);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  qilin::http::refresh_date(784111777);
  Script script({data, size});
  run(script);
  return 0;
}

#include "http/message.hpp"

namespace qilin::http {
namespace {

// Header lists of answered responses (see recycle_header_list). Bounded: a
// burst of responses beyond it frees its lists as before.
constexpr size_t kSpareHeaderLists = 256;
thread_local std::vector<std::vector<Header>> t_spare_header_lists;

// An empty header list, with the capacity of an earlier response's if one is spare.
std::vector<Header> take_header_list() {
  auto& spare = t_spare_header_lists;
  if (spare.empty()) {
    if (spare.capacity() == 0) spare.reserve(kSpareHeaderLists);
    return {};
  }
  std::vector<Header> headers = std::move(spare.back());
  spare.pop_back();
  return headers;
}

}  // namespace

std::string_view Request::path() const noexcept {
  std::string_view t = target;
  return t.substr(0, t.find('?'));
}

std::string_view Request::query() const noexcept {
  std::string_view t = target;
  size_t q = t.find('?');
  return q == std::string_view::npos ? std::string_view{} : t.substr(q + 1);
}

std::optional<std::string_view> find_field(const std::vector<Header>& fields,
                                           std::string_view name) noexcept {
  for (const Header& h : fields) {
    if (iequals(h.name, name)) return std::string_view{h.value};
  }
  return std::nullopt;
}

std::optional<std::string_view> Request::header(std::string_view name) const noexcept {
  return find_field(headers, name);
}

std::optional<std::string_view> Response::header(std::string_view name) const noexcept {
  return find_field(headers, name);
}

std::optional<std::string_view> Request::query_param(std::string_view key) const noexcept {
  std::string_view rest = query();
  while (!rest.empty()) {
    size_t amp = rest.find('&');
    std::string_view pair = rest.substr(0, amp);
    size_t eq = pair.find('=');
    if (pair.substr(0, eq) == key) {
      return eq == std::string_view::npos ? std::string_view{} : pair.substr(eq + 1);
    }
    if (amp == std::string_view::npos) break;
    rest.remove_prefix(amp + 1);
  }
  return std::nullopt;
}

Response::Response(int status_code, std::string text, std::string_view content_type)
    : status(status_code), headers(take_header_list()), body(std::move(text)) {
  Header& type = headers.emplace_back();  // filled in place: no temporary Header to move
  type.name.assign("Content-Type");
  type.value.assign(content_type);
}

Response& Response::set(std::string_view name, std::string_view value) {
  bool replaced = false;
  for (auto it = headers.begin(); it != headers.end();) {
    if (!iequals(it->name, name)) {
      ++it;
    } else if (!replaced) {
      it->value.assign(value);
      replaced = true;
      ++it;
    } else {
      it = headers.erase(it);  // a later duplicate would contradict the new value
    }
  }
  if (!replaced) {
    if (headers.capacity() == 0) headers = take_header_list();
    Header& added = headers.emplace_back();
    added.name.assign(name);
    added.value.assign(value);
  }
  return *this;
}

void recycle_header_list(std::vector<Header>& headers) noexcept {
  auto& spare = t_spare_header_lists;
  // Within the reserved capacity push_back cannot allocate, so cannot throw.
  if (headers.capacity() == 0 || spare.size() == spare.capacity()) return;
  headers.clear();
  spare.push_back(std::move(headers));
}

std::string_view worker_timeout_response() noexcept {
  return "HTTP/1.1 500 Internal Server Error\r\n"
         "Server: qilin\r\n"
         "Content-Type: text/plain\r\n"
         "Content-Length: 37\r\n"
         "Connection: close\r\n"
         "\r\n"
         "worker timed out serving the request\n";
}

}  // namespace qilin::http

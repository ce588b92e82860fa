#include "http/message.hpp"

namespace qilin::http {
namespace {

char ascii_lower(char c) noexcept {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

}  // namespace

bool iequals(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i] != b[i] && ascii_lower(a[i]) != ascii_lower(b[i])) return false;
  }
  return true;
}

std::string_view Request::path() const noexcept {
  std::string_view t = target;
  return t.substr(0, t.find('?'));
}

std::string_view Request::query() const noexcept {
  std::string_view t = target;
  size_t q = t.find('?');
  return q == std::string_view::npos ? std::string_view{} : t.substr(q + 1);
}

std::optional<std::string_view> Request::header(std::string_view name) const noexcept {
  for (const Header& h : headers) {
    if (iequals(h.name, name)) return std::string_view{h.value};
  }
  return std::nullopt;
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
    : status(status_code), body(std::move(text)) {
  headers.push_back({"Content-Type", std::string(content_type)});
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
  if (!replaced) headers.push_back({std::string(name), std::string(value)});
  return *this;
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

#include "config/access_log_format.hpp"

#include <fmt/format.h>

#include <stdexcept>
#include <utility>

namespace qilin::config {

namespace {

struct Letter {
  char letter;
  LogAtom atom;
};
constexpr Letter kLetters[] = {{'h', LogAtom::kRemoteAddress},
                               {'l', LogAtom::kDash},
                               {'u', LogAtom::kUser},
                               {'t', LogAtom::kTime},
                               {'r', LogAtom::kRequestLine},
                               {'m', LogAtom::kMethod},
                               {'U', LogAtom::kPath},
                               {'q', LogAtom::kQuery},
                               {'H', LogAtom::kProtocol},
                               {'s', LogAtom::kStatus},
                               {'b', LogAtom::kBytesOrDash},
                               {'B', LogAtom::kBytes},
                               {'f', LogAtom::kReferer},
                               {'a', LogAtom::kUserAgent},
                               {'T', LogAtom::kSeconds},
                               {'M', LogAtom::kMilliseconds},
                               {'D', LogAtom::kMicroseconds},
                               {'L', LogAtom::kDecimalSeconds},
                               {'p', LogAtom::kPid}};

[[noreturn]] void refuse(size_t at, std::string_view what) {
  throw std::invalid_argument(fmt::format("character {}: {}", at + 1, what));
}

// The atom named between "%(" and ")s": a letter, or {name} and i, o or e.
LogPiece atom_named(std::string_view name, size_t at) {
  if (name.size() == 1)
    for (const Letter& known : kLetters)
      if (known.letter == name[0]) return {known.atom, {}};
  if (name.size() >= 3 && name.front() == '{' && name[name.size() - 2] == '}') {
    const std::string inner(name.substr(1, name.size() - 3));
    if (inner.empty()) refuse(at, "an empty {} names no field");
    switch (name.back()) {
      case 'i':
        return {LogAtom::kRequestHeader, inner};
      case 'o':
        return {LogAtom::kResponseHeader, inner};
      case 'e':
        return {LogAtom::kEnvironment, inner};
      default:
        break;
    }
  }
  std::string known;
  for (const Letter& letter : kLetters) known += {letter.letter, ' '};
  known.pop_back();
  refuse(at, fmt::format("unknown atom %({})s (known: {}, {{header}}i, {{header}}o, {{variable}}e)",
                         name, known));
}

}  // namespace

std::vector<LogPiece> parse_access_log_format(std::string_view format) {
  std::vector<LogPiece> pieces;
  auto literal = [&](std::string_view text) {
    if (text.empty()) return;
    if (pieces.empty() || pieces.back().atom != LogAtom::kText) pieces.push_back({});
    pieces.back().text.append(text);
  };
  size_t at = 0;
  while (at < format.size()) {
    const size_t percent = format.find('%', at);
    literal(format.substr(at, percent == std::string_view::npos ? percent : percent - at));
    if (percent == std::string_view::npos) break;
    if (format.substr(percent, 2) == "%%") {
      literal("%");
      at = percent + 2;
      continue;
    }
    if (format.substr(percent, 2) != "%(")
      refuse(percent, "'%' starts an atom %(name)s or is written %%");
    const size_t close = format.find(')', percent);
    if (close == std::string_view::npos) refuse(percent, "%( is never closed by )s");
    if (format.substr(close, 2) != ")s") refuse(close, "an atom ends with )s");
    pieces.push_back(atom_named(format.substr(percent + 2, close - percent - 2), percent));
    at = close + 2;
  }
  return pieces;
}

}  // namespace qilin::config

// Internal to config/: the seam between the key table (config.cpp) and the
// flag table (command_line.cpp). Not part of the public API.
#pragma once

#include <string_view>

#include "config/config.hpp"

namespace qilin::config {

// Sets one key from a flag's text with the same typing rules as YAML and
// records `origin` (e.g. "--workers") in place of any YAML position. A list key
// is cleared by the first override of it, so `-b` replaces the file's binds and
// later `-b`s append, as in gunicorn.
void apply_override(Config& into, std::string_view key, std::string_view value,
                    std::string_view origin, bool first_for_key);

}  // namespace qilin::config

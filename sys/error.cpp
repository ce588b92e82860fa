#include "sys/error.hpp"

#include <fmt/format.h>

#include <cstring>

namespace qilin::sys {

std::string describe(const char* syscall, int err) {
  return fmt::format("{}() failed ({}: {})", syscall, err, std::strerror(err));
}

}  // namespace qilin::sys

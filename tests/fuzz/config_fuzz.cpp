// A fuzz target for the configuration file: whatever YAML a user writes,
// qilin answers with a ConfigError naming the key (never a crash, never
// another exception escaping to the master). What validates must survive
// --check-config's round trip: to_yaml's text loads back, validates, and
// holds the same settings (a key to_yaml left out or mangled would come back
// as its default or another value).
//
// libFuzzer drives it in make fuzz; in make test, config_fuzz_replay runs
// tests/fuzz/seeds/config and a fixed series of their mutations.
#include <array>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>

#include "config/config.hpp"

namespace {

using qilin::config::Config;
using qilin::config::ConfigError;

constexpr std::array<std::string_view, 4> kWorkerClasses{"sync", "threaded", "epoll", "io_uring"};

// A Config that loads and validates, or nullopt for a ConfigError.
std::optional<Config> load(std::string_view text, std::string_view name) {
  Config config;
  try {
    qilin::config::apply_yaml(config, text, name);
    qilin::config::validate(config, kWorkerClasses);
  } catch (const ConfigError&) {
    return std::nullopt;
  }
  return config;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto config = load({reinterpret_cast<const char*>(data), size}, "fuzz.yaml");
  if (!config) return 0;
  const std::string printed = qilin::config::to_yaml(*config);
  auto again = load(printed, "printed.yaml");
  if (again) again->origin.clear(), config->origin.clear();  // lines of two different files
  if (!again || *again != *config) {
    std::fprintf(stderr, "config_fuzz: --check-config's output does not load back as itself:\n%s\n",
                 printed.c_str());
    std::abort();
  }
  return 0;
}

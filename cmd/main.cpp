// qilin: parse the command line, load the configuration, hand over to the master.
// `qilin status [ADDR]` is a client of a running server instead (cmd/status.cpp).
//
// Exit codes: 0 clean stop (or --help, --version, --check-config); 1 cannot
// listen or open logs; 2 bad command line or configuration; 3 a worker failed
// to boot; 4 the app failed to load (gunicorn's 3 and 4).
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <string_view>

#include "app/app.hpp"
#include "cmd/status.hpp"
#include "config/config.hpp"
#include "master/master.hpp"
#include "workers/worker.hpp"

using namespace qilin;

namespace {

constexpr int kExitUsage = 2;

// A built-in app name that does not exist is a configuration error, caught
// before anything is bound; a library path is checked by each worker at boot.
void check_app_name(const config::Config& config) {
  if (app::is_shared_library_spec(config.app)) return;
  for (auto name : app::builtin_app_names())
    if (name == config.app) return;
  auto where = config.origin.find("app");
  throw config::ConfigError(fmt::format(
      "{}key 'app': no built-in app '{}' (built-in: {}; a shared library is given by path)",
      where != config.origin.end() ? where->second + ": " : "", config.app,
      fmt::join(app::builtin_app_names(), ", ")));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && std::string_view(argv[1]) == "status") return cmd::status_main(argc, argv);
  std::optional<config::CommandLine> command_line;
  config::Config config;
  try {
    command_line = config::parse_command_line(argc, argv);
    if (!command_line) return 0;  // --help was printed
    if (command_line->show_version) {
      fmt::print("qilin {}\n", QILIN_VERSION);
      return 0;
    }
    config = config::build(*command_line, workers::worker_class_names());
    check_app_name(config);
  } catch (const config::ConfigError& error) {
    fmt::print(stderr, "qilin: {}\n", error.what());
    return kExitUsage;
  }
  if (command_line->check_config) {
    fmt::print("{}", config::to_yaml(config));
    return 0;
  }
  master::Master master(std::move(*command_line), std::move(config),
                        std::vector<std::string>(argv, argv + argc));
  return master.run();
}

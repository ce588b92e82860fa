// `qilin status [ADDR] [-c FILE]`: ask a running server's status listener for
// /status.json and print one row per worker (master/status_render.hpp).
#pragma once

namespace qilin::cmd {

// argv[1] is "status". Returns the exit code: 0 printed, 1 the server could
// not be reached or answered nonsense, 2 bad command line or configuration.
int status_main(int argc, char** argv);

}  // namespace qilin::cmd

// The master (gunicorn's Arbiter): binds the listeners, forks the workers and
// supervises them from one loop. It never reads a client byte.
//
// Signals are queued by a handler that only writes the signal number to a
// self-pipe; the loop wakes on the pipe or once a second, and dispatches each
// to handle_<signal>(). Then: reap_workers (who died), murder_workers (who
// missed the heartbeat), manage_workers (spawn or retire to the target count).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "master/scoreboard.hpp"
#include "sys/fd.hpp"
#include "sys/socket.hpp"

namespace qilin::master {

class Master {
 public:
  Master(config::CommandLine command_line, config::Config config);
  ~Master();
  // Runs until stopped; returns the process exit code (0 after a clean stop,
  // 3 or 4 when a worker could not boot).
  int run();

 private:
  struct WorkerProcess {
    ScoreboardSlot* slot;
    uint64_t generation;  // bumped by each reload (HUP)
    int64_t spawned_ms;
    int64_t abort_sent_ms = 0;  // heartbeat timeout: ABRT sent, KILL a second later
    bool retiring = false;      // sent TERM by a reload or TTOU
  };

  void raise_file_limit();
  void bind_listeners();
  void install_signal_handlers();
  int64_t wait_for_signal(int timeout_ms);
  void dispatch(int signal);

  void handle_chld();
  void handle_hup();
  void handle_term();
  void handle_int();
  void handle_quit();
  void handle_ttin();
  void handle_ttou();
  void handle_usr1();

  void spawn_worker();
  void reap_workers();
  void murder_workers();
  void manage_workers();
  void retire(pid_t pid, WorkerProcess& worker);
  void kill_workers(int signal);
  void stop(bool graceful);
  void halt(int exit_code, const std::string& reason);

  void write_pidfile();
  void remove_pidfile();

  config::CommandLine command_line_;
  config::Config config_;
  std::vector<sys::Listener> listeners_;
  Scoreboard scoreboard_;
  std::map<pid_t, WorkerProcess> workers_;
  uint64_t generation_ = 0;
  int target_workers_;
  std::optional<int> exit_code_;  // set: leave the loop with this code
  std::string reason_;
  sys::Fd signal_pipe_read_;
  sys::Fd signal_pipe_write_;
};

}  // namespace qilin::master

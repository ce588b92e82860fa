// The master (gunicorn's Arbiter): binds the listeners, forks the workers and
// supervises them from one loop. It never reads a client byte.
//
// Signals are queued by a handler that only writes the signal number to a
// self-pipe; the loop wakes on the pipe or once a second, and dispatches each
// to handle_<signal>(). A worker that has booted writes kWorkerBooted to the
// same pipe (it inherits the write end), so a reload's old generation is
// retired as soon as the new one is up, without polling. Then: reap_workers
// (who died), murder_workers (who missed the heartbeat), manage_workers
// (spawn or retire to the target count).
//
// Binary upgrade (USR2), as nginx and gunicorn do it: the master forks and
// re-executes its binary with the listening sockets inherited (their numbers
// in QILIN_LISTEN_FDS). The new master adopts them instead of binding, boots
// its own workers beside the old ones and writes PIDFILE.2; when the old
// master exits (TERM), the new one notices it was re-parented and takes the
// pidfile over. TERM to the new master instead rolls the upgrade back.
//
// status_bind: the master binds the status listener and forks a status
// process to serve it (status_server.hpp), respawned if it dies, stopped first
// on TERM. It reads the scoreboard, where reap_workers records every restart
// with its reason (crash, timeout, max_requests, reload). statsd_host alone
// also starts the status process, which then only sends StatsD datagrams.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "app/app.hpp"
#include "config/config.hpp"
#include "master/scoreboard.hpp"
#include "sys/fd.hpp"
#include "sys/identity.hpp"
#include "sys/socket.hpp"

namespace qilin::master {

class Master {
 public:
  // `argv` is the command line as given, for re-executing on USR2.
  Master(config::CommandLine command_line, config::Config config, std::vector<std::string> argv);
  ~Master();
  // Runs until stopped; returns the process exit code (0 after a clean stop,
  // 1 when it cannot listen, 3 or 4 when a worker could not boot).
  int run();

 private:
  struct WorkerProcess {
    ScoreboardSlot* slot;
    uint64_t generation;  // bumped by each reload (HUP)
    int64_t spawned_ms;
    int64_t abort_sent_ms = 0;  // heartbeat timeout: ABRT sent, KILL a second later
    bool retiring = false;      // sent TERM by a reload or TTOU
    bool reloaded = false;      // ... by a reload: its exit is a restart
  };

  void raise_file_limit();
  void acquire_listeners();
  void bind_listeners();
  void bind_status_listener();
  void install_signal_handlers();
  void wait_for_signal(int timeout_ms);
  void dispatch(int signal);

  void handle_chld();
  void handle_hup();
  void handle_term();
  void handle_int();
  void handle_quit();
  void handle_ttin();
  void handle_ttou();
  void handle_usr1();
  void handle_usr2();

  void spawn_worker();
  void reap_workers();
  void murder_workers();
  void manage_workers();
  void retire_superseded_generations(const std::map<uint64_t, int>& ready_by_generation);
  int ready_workers(uint64_t generation) const;
  std::optional<RestartReason> restart_reason(const WorkerProcess& worker, int status) const;
  void spawn_status();
  void manage_status();
  void stop_status();
  void retire(pid_t pid, WorkerProcess& worker);
  void kill_workers(int signal);
  void stop(bool graceful);
  void halt(int exit_code, const std::string& reason);
  bool roll_back_reload(const std::string& reason);
  void watch_upgrade();
  void notify_systemd_when_ready();

  // A worker with reuse_port: its own SO_REUSEPORT sockets for the TCP binds,
  // the shared ones for the rest. Runs in the child; throws on bind errors.
  std::vector<sys::Listener> worker_listeners() const;
  std::string pidfile_path() const;
  void place_pidfile();
  void write_pidfile();
  void remove_pidfile();
  // Whether bind's unix socket files are this master's to hand over and
  // remove: not systemd's, and not while the other master of an upgrade lives.
  bool owns_socket_files() const;
  // What the master takes from its configuration for itself and the
  // processes it forks, at start and on every reload: the working directory
  // (first: relative paths below mean what they mean there), the workers'
  // user, the file creation mask (before a Unix socket or log file is made),
  // then the logs, handed to that user. Throws when a log cannot be opened.
  void set_up_process();
  void enter_working_directory();
  void return_to_start_directory();
  void set_up_process_or_log(std::string_view which);
  // preload_app: config_'s app, loaded here in the master; nullopt when it
  // is off. Throws when the app cannot be loaded.
  std::optional<app::Handler> preload_app() const;
  void hand_over_socket_files();
  bool last_holder_of_listeners() const;

  config::CommandLine command_line_;
  config::Config config_;
  std::vector<std::string> argv_;
  std::string executable_;  // resolved at start: a replaced binary is found by path on USR2
  // Where qilin was started: the -c file, a relative `chdir` and, on USR2,
  // the new binary's command line are read from here, however often
  // `chdir` changes (-1 if it could not be opened: the current one then).
  sys::Fd start_directory_;
  std::string pidfile_written_;  // absolute: still ours to remove after `chdir` changes
  std::vector<sys::Listener> listeners_;
  bool listeners_from_systemd_ = false;  // systemd holds them too, across our restarts
  Scoreboard scoreboard_;
  std::map<pid_t, WorkerProcess> workers_;
  uint64_t generation_ = 0;
  int target_workers_;
  // What a reload replaced, kept until its workers all boot: if they cannot
  // (the app fails to load), the previous generation goes on serving with it.
  struct ReloadFallback {
    config::Config config;
    uint64_t generation;
    int target_workers;
    std::optional<app::Handler> preloaded_app;
  };
  std::optional<ReloadFallback> reload_fallback_;
  std::optional<sys::Identity> workers_user_;  // config_'s user and group, resolved
  std::optional<app::Handler> preloaded_app_;  // config_'s app when preload_app is on
  std::optional<int> exit_code_;               // set: leave the loop with this code
  bool stopping_ = false;                      // stop() began: exits are not restarts
  std::string reason_;
  sys::Fd signal_pipe_read_;
  sys::Fd signal_pipe_write_;

  // Crash loops: workers dying soon after boot are respawned ever later.
  int quick_crashes_ = 0;
  int64_t next_spawn_ms_ = 0;

  sys::Listener status_listener_;  // bound when status_bind is set
  pid_t status_pid_ = 0;
  int64_t next_status_spawn_ms_ = 0;
  bool status_spawned_ = false;  // a respawned one must not resend StatsD counts

  pid_t new_master_pid_ = 0;  // the upgraded master this one started (USR2)
  pid_t upgrading_from_ = 0;  // the master that started this one, until it exits
  bool told_systemd_ready_ = false;
};

}  // namespace qilin::master

// The status process: a child of the master, not a worker (no scoreboard
// slot, not counted in `workers`), respawned by the master when it dies. It
// serves GET /metrics, /status.json and / on the status listener the master
// bound, from the scoreboard mapping it inherited across fork; the master
// itself never touches a client socket. With statsd_host it also sends the
// second's StatsD datagrams (statsd.hpp) from the sample it takes anyway; with
// statsd_host alone it runs for that only and listens on nothing.
//
// IO model: one poll loop over the listener and a few connections,
// non-blocking, keep-alive, through the same http::Session as the workers.
// Low traffic by design; 64 connections at most (the longest idle one makes
// room for a new one), idle ones closed after 10 s.
// TERM keeps its default action (there is nothing to finish); the loop also
// ends when the master is gone.
#pragma once

#include <sys/types.h>

#include <optional>

#include "master/scoreboard.hpp"
#include "master/statsd.hpp"

namespace qilin::master {

struct StatusOptions {
  int listener = -1;  // non-blocking; -1: no status listener (StatsD only)
  std::optional<StatsdSettings> statsd;
};

// Runs in the status process until the master `master_pid` is gone; returns
// the exit code.
int run_status_server(const StatusOptions& options, const Scoreboard& scoreboard, pid_t master_pid);

}  // namespace qilin::master

#!/usr/bin/env bash
# make bench: every qilin worker class beside nginx and gunicorn, on loopback.
#
# The server (one worker process: qilin -w 1, nginx worker_processes 1,
# gunicorn -w 1) is pinned to core 0 and wrk to core 1, so the two never
# fight for a core. Each scenario runs BENCH_RUNS times, once in each of
# BENCH_RUNS passes, and the report quotes medians. Within a pass the servers
# take turns scenario by scenario, each started fresh for its run: on a
# shared, noisy machine a slow minute then falls on the runs a ratio
# compares alike, not on whichever server was being measured. The server's
# CPU time per request comes from /proc/PID/stat
# (utime + stime of master and workers) over the run. For qilin, the
# scoreboard's IO counters (/status.json before and after each run, see
# bench/status_delta.py) give the IO model's cost per request. A plaintext
# concurrency sweep feeds two plots. Writes bench/results/latest.md (and a
# dated copy), throughput.png and p99.png. Servers: bench/servers.sh; report:
# bench/report.py; plots: bench/plot.gp.
#
#   bench/run.sh [QILIN_BINARY]
#   BENCH_SECONDS=1 BENCH_RUNS=1 BENCH_SERVERS="epoll gunicorn-gthread" BENCH_SWEEP="1 64" bench/run.sh
#
# Knobs (environment):
#   BENCH_CLASSES    qilin worker classes                  sync threaded epoll io_uring
#   BENCH_SERVERS    every server, in report order         nginx, the classes, gunicorn-sync gunicorn-gthread
#   BENCH_SCENARIOS  scenarios to run                      plaintext plaintext-half-core pipelined-16
#                                                          sleep-10ms block-10ms static-64k idle
#   BENCH_SWEEP      plaintext concurrencies for the plots 1 4 16 64 256 (empty: no sweep, no plots)
#   BENCH_SECONDS    seconds per wrk run                   3
#   BENCH_RUNS       passes: runs per scenario and point   3
#   BENCH_IDLE       idle keep-alive connections           10000
#   BENCH_RESULTS    where the report and plots go         bench/results
set -euo pipefail
cd "$(dirname "$0")/.."

QILIN=${1:-build/release/cmd/qilin}
IDLE_CLIENTS=${IDLE_CLIENTS:-$(dirname "$(dirname "$QILIN")")/bench/idle_clients}
CLASSES=${BENCH_CLASSES:-sync threaded epoll io_uring}
read -r -a SERVERS <<<"${BENCH_SERVERS:-nginx $CLASSES gunicorn-sync gunicorn-gthread}"
read -r -a SCENARIOS <<<"${BENCH_SCENARIOS:-plaintext plaintext-half-core pipelined-16 sleep-10ms block-10ms static-64k idle}"
read -r -a SWEEP <<<"${BENCH_SWEEP-1 4 16 64 256}"
RUN_SECONDS=${BENCH_SECONDS:-3}
RUNS=${BENCH_RUNS:-3}
IDLE=${BENCH_IDLE:-10000}
RESULTS=${BENCH_RESULTS:-bench/results}
SERVER_CORE=0
CLIENT_CORE=1
PORT=${BENCH_PORT:-18080}
STATUS_PORT=$((PORT + 1))
TICKS=$(getconf CLK_TCK)

work=$(mktemp -d /tmp/qilin-bench-XXXXXX)
rows="$work/rows"              # scenario|server|req/s|p50|p99|CPU|sys/req|req/wake|compl/submit|ctx-sw/req|wrk core %|errors|non-2xx
idle_rows="$work/idle_rows"    # server|opened|still open|KiB per connection|req/s|errors|non-2xx
sweep_rows="$work/sweep_rows"  # same columns as rows, scenario = plaintext-cN
skipped="$work/skipped"        # scenario|server|why
: >"$rows"
: >"$idle_rows"
: >"$sweep_rows"
: >"$skipped"

die() { echo "bench: $*" >&2; exit 1; }
source bench/servers.sh
cleanup() { stop_server; remove_cpu_budget; rm -rf "$work"; }
trap cleanup EXIT INT TERM

[[ -x "$QILIN" ]] || die "no qilin binary at $QILIN (run make build)"
command -v wrk >/dev/null || die "wrk is not installed (deploy/install-deps.sh installs it)"
command -v python3 >/dev/null || die "python3 is not installed (the report is written by bench/report.py)"

cpu_ticks() {
  local total=0 pid
  for pid in $(server_pids); do
    [[ -r /proc/$pid/stat ]] || continue
    total=$((total + $(awk '{print $14 + $15}' "/proc/$pid/stat")))
  done
  echo "$total"
}

rss_kib() {
  local total=0 pid
  for pid in $(server_pids); do
    total=$((total + $(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)))
  done
  echo "$total"
}

# Between runs: wrk leaves connections in the server's backlog (sync, with
# 200 clients, has two seconds of them); the next run must not pay for them.
wait_quiet() {
  for _ in $(seq 300); do
    (($(ss -Htn "( sport = :$PORT )" | grep -vc TIME-WAIT) == 0)) && return 0
    sleep 0.1
  done
}

# Busy and total clock ticks of core $1 so far, from /proc/stat (busy: user,
# nice, system, irq, softirq and steal; guest time is already in user).
core_ticks() {
  awk -v core="cpu$1" '$1 == core { busy = $2 + $3 + $4 + $7 + $8 + $9; print busy, busy + $5 + $6 }' /proc/stat
}
# busy_percent BEFORE AFTER: how busy a core was between two core_ticks readings, in percent.
busy_percent() {
  local -a before=($1) after=($2)
  awk -v busy=$((after[0] - before[0])) -v total=$((after[1] - before[1])) \
    'BEGIN { if (total > 0) printf "%.0f", 100 * busy / total; else print "-" }'
}

status_json() { curl -sf -o "$1" "http://127.0.0.1:$STATUS_PORT/status.json"; }

# field NAME LINE → the value of NAME=... in a RESULT line
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$2"; }
# measure OUT SERVER NAME -- WRK ARGS... : one run, one row in OUT (the
# report takes the median of the passes' rows)
measure() {
  local into=$1 server=$2 name=$3; shift 4
  local before after client_before client_after line requests io="- - - -"
  wait_quiet
  is_qilin "$server" && status_json "$work/before.json"
  before=$(cpu_ticks)
  client_before=$(core_ticks "$CLIENT_CORE")
  line=$(taskset -c "$CLIENT_CORE" wrk --timeout 10s -d "${RUN_SECONDS}s" "$@" | grep '^RESULT' || true)
  client_after=$(core_ticks "$CLIENT_CORE")
  after=$(cpu_ticks)
  [[ -n "$line" ]] || die "wrk printed no result for $server $name"
  if is_qilin "$server"; then
    sleep 1.1 # the workers' once-a-second sample of their context switches
    status_json "$work/after.json"
    io=$(python3 bench/status_delta.py "$work/before.json" "$work/after.json")
  fi
  requests=$(field requests "$line")
  # CPU per request; "-" under 5 clock ticks, too few to divide.
  awk -v r="$(field rps "$line")" -v p50="$(field p50_us "$line")" -v p99="$(field p99_us "$line")" \
      -v ticks=$((after - before)) -v hz="$TICKS" -v n="$requests" -v io="$io" \
      -v errors="$(field socket_errors "$line")" -v non2xx="$(field non2xx "$line")" \
      -v client="$(busy_percent "$client_before" "$client_after")" \
      -v name="$name" -v server="$server" 'BEGIN {
        cpu = (n > 0 && ticks >= 5) ? sprintf("%.2f", ticks / hz * 1e6 / n) : "-"
        split(io, c, " ")
        printf "%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s\n", name, server, r, p50, p99, cpu, c[1], c[2], c[3], c[4], client, errors, non2xx
      }' >>"$into"
  echo "  $name: $(tail -n1 "$into")" >&2
}

# Many idle keep-alive connections held open while a small load runs.
idle_scenario() {
  local server=$1 url=$2
  local base held line
  base=$(rss_kib)
  taskset -c "$CLIENT_CORE" "$IDLE_CLIENTS" "$PORT" "$IDLE" 8 >"$work/idle.out" &
  local idle_pid=$!
  for _ in $(seq 300); do
    local established
    established=$(ss -Htn state established "( sport = :$PORT )" | wc -l)
    ((established >= IDLE)) && break
    kill -0 "$idle_pid" 2>/dev/null || break
    sleep 0.1
  done
  held=$(rss_kib)
  line=$(taskset -c "$CLIENT_CORE" wrk --timeout 10s -t1 -c50 -d3s -s bench/report.lua "$url" | grep '^RESULT' || true)
  wait "$idle_pid" || true
  local idle_line
  idle_line=$(grep '^RESULT' "$work/idle.out" || echo "RESULT opened=0 answered=0 still_open=0")
  printf '%s|%s|%s|%s|%s|%s|%s\n' "$server" "$(field opened "$idle_line")" "$(field still_open "$idle_line")" \
    "$(awk -v b="$base" -v h="$held" -v n="$IDLE" 'BEGIN {printf "%.2f", (h - b) / n}')" \
    "$(field rps "$line")" "$(field socket_errors "$line")" "$(field non2xx "$line")" >>"$idle_rows"
  echo "  idle: $(tail -n1 "$idle_rows")" >&2
}

# Why SCENARIO does not apply to SERVER (printed), or nothing: it applies.
why_not() {
  local server=$1 scenario=$2
  case "$scenario:$server" in
    pipelined-16:sync | pipelined-16:gunicorn-sync | idle:sync | idle:gunicorn-sync)
      echo "answers one request per connection (Connection: close): no keep-alive to pipeline on or hold idle" ;;
    pipelined-16:gunicorn-gthread)
      echo "answers only the first request of a pipelined batch, then waits for new bytes on the socket (50 responses in 2 s from 50 connections)" ;;
    sleep-10ms:nginx | block-10ms:nginx) echo "no application to sleep in" ;;
    idle:*) [[ -x "$IDLE_CLIENTS" ]] || echo "bench/idle_clients is not built (cmake target idle_clients)" ;;
    plaintext-half-core:*) [[ -n "$budget_cgroup" ]] || cat "$work/budget-why" ;;
  esac
}

pipelined_script="$work/pipelined.lua"
cat bench/pipeline.lua bench/report.lua >"$pipelined_script"

# run_scenario SERVER SCENARIO PASS: one run, on a server started for it
# and stopped after it, so that no run inherits another's connections, memory
# or warm caches. The idle scenario is about memory and errors, not speed:
# first pass only.
run_scenario() {
  local server=$1 scenario=$2 pass=$3 url="http://127.0.0.1:$PORT" reason
  reason=$(why_not "$server" "$scenario")
  if [[ -n "$reason" ]]; then
    if ((pass == 1)); then echo "$scenario|$server|$reason" >>"$skipped"; fi
    return 0
  fi
  [[ "$scenario" == idle ]] && ((pass > 1)) && return 0
  start_server "$server"
  case "$scenario" in
    plaintext) measure "$rows" "$server" plaintext -- -t1 -c50 -s bench/report.lua "$url/" ;;
    # The same load with the server held to half its core (servers.sh).
    plaintext-half-core)
      enter_cpu_budget
      measure "$rows" "$server" plaintext-half-core -- -t1 -c50 -s bench/report.lua "$url/"
      leave_cpu_budget ;;
    pipelined-16) measure "$rows" "$server" pipelined-16 -- -t1 -c50 -s "$pipelined_script" "$url/" -- 16 ;;
    # The same 10 ms, two ways: /sleep lets an event loop serve others while
    # it waits, /block holds whatever runs the handler (process, thread, loop).
    sleep-10ms) measure "$rows" "$server" sleep-10ms -- -t1 -c200 -s bench/report.lua "$url/sleep?ms=10" ;;
    block-10ms) measure "$rows" "$server" block-10ms -- -t1 -c50 -s bench/report.lua "$url/block?ms=10" ;;
    static-64k) measure "$rows" "$server" static-64k -- -t1 -c50 -s bench/report.lua "$url/static/64k.bin" ;;
    idle) idle_scenario "$server" "$url/" ;;
    plaintext-c*) measure "$sweep_rows" "$server" "$scenario" -- -t1 -"${scenario#plaintext-}" -s bench/report.lua "$url/" ;;
    *) die "unknown scenario $scenario (BENCH_SCENARIOS)" ;;
  esac
  stop_server
}

make_static_file
[[ " ${SCENARIOS[*]} " == *" plaintext-half-core "* ]] && { make_cpu_budget >"$work/budget-why" || true; }
chmod 755 "$work" # nginx's worker runs as nobody and must reach $work/static
available_servers=()
for server in "${SERVERS[@]}"; do available "$server" && available_servers+=("$server"); done
# Scenario by scenario, every server in turn: the runs a ratio compares are
# seconds apart, not minutes, so the machine's drift falls on them alike.
sweep_scenarios=()
for c in "${SWEEP[@]}"; do sweep_scenarios+=("plaintext-c$c"); done
for pass in $(seq "$RUNS"); do
  for scenario in "${SCENARIOS[@]}" "${sweep_scenarios[@]}"; do
    echo "$scenario (pass $pass of $RUNS):" >&2
    for server in "${available_servers[@]}"; do run_scenario "$server" "$scenario" "$pass"; done
  done
done

mkdir -p "$RESULTS"
report="$RESULTS/latest.md"
python3 bench/report.py --rows "$rows" --idle-rows "$idle_rows" --sweep-rows "$sweep_rows" \
  --skipped "$skipped" --runs "$RUNS" --seconds "$RUN_SECONDS" --idle "$IDLE" \
  --server-core "$SERVER_CORE" --client-core "$CLIENT_CORE" --sweep-data "$work/sweep.dat" >"$report"
cp "$report" "$RESULTS/$(date -u +%Y-%m-%d-%H%M).md"  # two runs a day both stay
if [[ -s "$sweep_rows" ]]; then
  if command -v gnuplot >/dev/null; then
    gnuplot -e "data='$work/sweep.dat'; out='$RESULTS'" bench/plot.gp
  else
    echo "bench: gnuplot is not installed: no plots" >&2
  fi
fi
cat "$report"

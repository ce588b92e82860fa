#!/usr/bin/env bash
# make bench: every worker class beside nginx, in one run, on loopback.
#
# The server (qilin with one worker, or nginx with one worker process) is
# pinned to core 0 and wrk to core 1, so the two never fight for a core. Each
# scenario runs BENCH_RUNS times and the report quotes medians; the server's
# CPU time per request comes from /proc/PID/stat (utime + stime of master and
# workers) over the run. Writes bench/results/latest.md (and a dated copy).
#
#   bench/run.sh [QILIN_BINARY]
#   BENCH_CLASSES="epoll io_uring" BENCH_SECONDS=5 BENCH_RUNS=5 bench/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."

QILIN=${1:-build/release/cmd/qilin}
IDLE_CLIENTS=${IDLE_CLIENTS:-$(dirname "$(dirname "$QILIN")")/bench/idle_clients}
read -r -a CLASSES <<<"${BENCH_CLASSES:-sync threaded epoll io_uring}"
RUN_SECONDS=${BENCH_SECONDS:-3}
RUNS=${BENCH_RUNS:-3}
IDLE=${BENCH_IDLE:-10000}
SERVER_CORE=0
CLIENT_CORE=1
PORT=${BENCH_PORT:-18080}
TICKS=$(getconf CLK_TCK)

work=$(mktemp -d /tmp/qilin-bench-XXXXXX)
server_pid=""
rows="$work/rows"
idle_rows="$work/idle_rows"
: >"$rows"
: >"$idle_rows"

stop_server() {
  [[ -n "$server_pid" ]] || return 0
  kill -TERM "$server_pid" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
  server_pid=""
}
cleanup() { stop_server; rm -rf "$work"; }
trap cleanup EXIT INT TERM

die() { echo "bench: $*" >&2; exit 1; }
[[ -x "$QILIN" ]] || die "no qilin binary at $QILIN (run make build)"
command -v wrk >/dev/null || die "wrk is not installed (deploy/install-deps.sh installs it)"

wait_until_serving() {
  for _ in $(seq 100); do
    curl -sf -o /dev/null "http://127.0.0.1:$PORT/" && return 0
    kill -0 "$server_pid" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

# The server and every process it forked.
server_pids() {
  local pids="$server_pid"
  local children="/proc/$server_pid/task/$server_pid/children"
  [[ -r "$children" ]] && pids+=" $(cat "$children")"
  echo $pids
}

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

start_qilin() {
  taskset -c "$SERVER_CORE" "$QILIN" -k "$1" -w 1 --threads 4 --worker-connections 20000 \
    --keep-alive 75 --backlog 4096 -b "127.0.0.1:$PORT" --log-level warning \
    --error-logfile "$work/qilin-$1.log" demo &
  server_pid=$!
  wait_until_serving || { cat "$work/qilin-$1.log" >&2; die "qilin -k $1 did not start"; }
}

start_nginx() {
  cat >"$work/nginx.conf" <<NGINX
worker_processes 1;
daemon off;
pid $work/nginx.pid;
error_log $work/nginx-error.log warn;
events { worker_connections 20000; }
http {
  access_log off;
  keepalive_timeout 75;
  keepalive_requests 100000000;
  server {
    listen 127.0.0.1:$PORT backlog=4096;
    location / { return 200 "Hello, World!"; }
  }
}
NGINX
  taskset -c "$SERVER_CORE" nginx -p "$work" -c "$work/nginx.conf" -e "$work/nginx-error.log" &
  server_pid=$!
  wait_until_serving || { cat "$work/nginx-error.log" >&2; die "nginx did not start"; }
}

# Between runs: wrk leaves connections in the server's backlog (sync, with
# 200 clients, has two seconds of them); the next run must not pay for them.
wait_quiet() {
  for _ in $(seq 300); do
    (($(ss -Htn "( sport = :$PORT )" | grep -vc TIME-WAIT) == 0)) && return 0
    sleep 0.1
  done
}

# field NAME LINE → the value of NAME=... in a RESULT line
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$2"; }
median() { sort -g | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2}'; }

# scenario SERVER NAME -- WRK ARGS... : RUNS runs, one row of medians
scenario() {
  local server=$1 name=$2; shift 3
  local out="$work/runs" errors=0 non2xx=0
  : >"$out"
  for _ in $(seq "$RUNS"); do
    local before after line requests
    wait_quiet
    before=$(cpu_ticks)
    line=$(taskset -c "$CLIENT_CORE" wrk --timeout 10s -d "${RUN_SECONDS}s" "$@" | grep '^RESULT' || true)
    after=$(cpu_ticks)
    [[ -n "$line" ]] || die "wrk printed no result for $server $name"
    requests=$(field requests "$line")
    errors=$((errors + $(field socket_errors "$line")))
    non2xx=$((non2xx + $(field non2xx "$line")))
    awk -v r="$(field rps "$line")" -v p50="$(field p50_us "$line")" -v p99="$(field p99_us "$line")" \
        -v ticks=$((after - before)) -v hz="$TICKS" -v n="$requests" \
        'BEGIN {printf "%s %s %s %.2f\n", r, p50, p99, (n > 0 ? ticks / hz * 1e6 / n : 0)}' >>"$out"
  done
  printf '%s|%s|%s|%s|%s|%s|%s|%s\n' "$name" "$server" \
    "$(cut -d' ' -f1 "$out" | median)" "$(cut -d' ' -f2 "$out" | median)" \
    "$(cut -d' ' -f3 "$out" | median)" "$(cut -d' ' -f4 "$out" | median)" "$errors" "$non2xx" >>"$rows"
  echo "  $name: $(tail -n1 "$rows")" >&2
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

pipelined_script="$work/pipelined.lua"
cat bench/pipeline.lua bench/report.lua >"$pipelined_script"

bench_server() {
  local server=$1 url="http://127.0.0.1:$PORT"
  echo "$server:" >&2
  scenario "$server" plaintext -- -t1 -c50 -s bench/report.lua "$url/"
  # sync answers one request per connection (Connection: close): pipelining
  # and idle keep-alive connections do not apply to it.
  [[ "$server" == sync ]] || scenario "$server" "pipelined-16" -- -t1 -c50 -s "$pipelined_script" "$url/" -- 16
  [[ "$server" == nginx ]] || scenario "$server" "sleep-10ms" -- -t1 -c200 -s bench/report.lua "$url/sleep?ms=10"
  [[ "$server" == sync || ! -x "$IDLE_CLIENTS" ]] || idle_scenario "$server" "$url/"
}

start_nginx
bench_server nginx
stop_server
for class in "${CLASSES[@]}"; do
  if ! "$QILIN" --check-config -k "$class" >/dev/null 2>&1; then
    echo "skipping $class: not a worker class of this build" >&2
    continue
  fi
  start_qilin "$class"
  bench_server "$class"
  stop_server
done

# ---- the report ----
mkdir -p bench/results
report="bench/results/latest.md"
{
  echo "# qilin benchmark, $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo
  echo "Machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), kernel $(uname -r)."
  echo "Server pinned to core $SERVER_CORE (one worker process), wrk pinned to core $CLIENT_CORE;"
  echo "$RUNS runs of ${RUN_SECONDS} s per scenario, medians. CPU µs/req = server utime+stime per request."
  echo "App: qilin's built-in \`demo\` (\`/\` answers \`Hello, World!\`); nginx: \`return 200 \"Hello, World!\"\`."
  echo
  echo "| scenario | server | req/s | vs nginx | p50 (µs) | p99 (µs) | CPU µs/req | socket errors | non-2xx |"
  echo "|---|---|---:|---:|---:|---:|---:|---:|---:|"
  awk -F'|' '
    { row[NR] = $0; if ($2 == "nginx") ref[$1] = $3 }
    END {
      for (i = 1; i <= NR; i++) {
        split(row[i], f, "|")
        ratio = (f[1] in ref && ref[f[1]] > 0) ? sprintf("%.2fx", f[3] / ref[f[1]]) : "—"
        # wrk reports no p99 for pipelined runs (its per-batch latency): say so, not 0.
        p99 = f[5] > 0 ? sprintf("%d", f[5]) : "—"
        printf "| %s | %s | %.0f | %s | %d | %s | %.2f | %d | %d |\n", f[1], f[2], f[3], ratio, f[4], p99, f[6], f[7], f[8]
      }
    }' "$rows" | sort -t'|' -k2,2 -s
  if [[ -s "$idle_rows" ]]; then
    echo
    echo "Idle keep-alive connections: $IDLE held open by bench/idle_clients while wrk -c50 runs for 3 s."
    echo
    echo "| server | opened | still open after 8 s | RSS KiB per idle connection | req/s under load | socket errors | non-2xx |"
    echo "|---|---:|---:|---:|---:|---:|---:|"
    awk -F'|' '{printf "| %s | %s | %s | %s | %.0f | %s | %s |\n", $1, $2, $3, $4, $5, $6, $7}' "$idle_rows"
  fi
} >"$report"
cp "$report" "bench/results/$(date -u +%Y-%m-%d).md"
cat "$report"

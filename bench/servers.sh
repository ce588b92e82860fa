# shellcheck shell=bash disable=SC2154  # QILIN, PORT, work... are run.sh's
# Sourced by bench/run.sh: starting and stopping the servers under test.
#
# Every server gets the same shape: one worker process pinned to core
# $SERVER_CORE, listening on 127.0.0.1:$PORT, keep-alive 75 s, backlog 4096,
# room for the idle scenario's connections, and the same content:
#   /              "Hello, World!"
#   /sleep, /block ?ms=N (the app servers only: nginx has no app)
#   /static/64k.bin, the 64 KiB file generated into $work/static
# qilin serves its built-in demo app (plus the status listener the IO
# counters come from); gunicorn serves bench/wsgi_demo.py, the same routes in
# WSGI; nginx answers / with `return 200` and the file with sendfile.
#
# Needs from run.sh: QILIN, PORT, STATUS_PORT, SERVER_CORE, work, die.

server_pid=""

stop_server() {
  [[ -n "$server_pid" ]] || return 0
  kill -TERM "$server_pid" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
  server_pid=""
}

wait_until_serving() {
  for _ in $(seq 100); do
    curl -sf -o /dev/null "http://127.0.0.1:$PORT/" && return 0
    kill -0 "$server_pid" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

# The server and every process it forked, but not qilin's status process:
# it serves the bench's /status.json requests, which are not the load.
server_pids() {
  local pids=("$server_pid") children=() child
  read -r -a children 2>/dev/null <"/proc/$server_pid/task/$server_pid/children" || true
  for child in "${children[@]}"; do
    [[ "$(cat "/proc/$child/comm" 2>/dev/null)" == qilin-status ]] || pids+=("$child")
  done
  echo "${pids[@]}"
}

is_qilin() { [[ "$1" != nginx && "$1" != gunicorn-* ]]; }

# The 64 KiB file every server sends for the static-64k scenario.
make_static_file() {
  mkdir -p "$work/static"
  head -c 65536 /dev/zero | tr '\0' 'q' >"$work/static/64k.bin"
}

start_qilin() {
  taskset -c "$SERVER_CORE" "$QILIN" -k "$1" -w 1 --threads 4 --worker-connections 20000 \
    --keep-alive 75 --backlog 4096 -b "127.0.0.1:$PORT" --status-bind "127.0.0.1:$STATUS_PORT" \
    --static-dir "$work/static" --log-level warning --error-logfile "$work/qilin-$1.log" demo &
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
  sendfile on;
  server {
    listen 127.0.0.1:$PORT backlog=4096;
    location / { return 200 "Hello, World!"; }
    location /static/ { root $work; }
  }
}
NGINX
  taskset -c "$SERVER_CORE" nginx -p "$work" -c "$work/nginx.conf" -e "$work/nginx-error.log" &
  server_pid=$!
  wait_until_serving || { cat "$work/nginx-error.log" >&2; die "nginx did not start"; }
}

# gunicorn-sync or gunicorn-gthread: Debian's gunicorn, one worker; gthread
# with 4 threads, like qilin's threaded worker in this bench. (sync gets no
# --threads: gunicorn turns a sync worker with threads > 1 into gthread.)
start_gunicorn() {
  local kind=${1#gunicorn-} threads=()
  [[ "$kind" == gthread ]] && threads=(--threads 4)
  BENCH_STATIC_DIR="$work/static" taskset -c "$SERVER_CORE" gunicorn -k "$kind" -w 1 "${threads[@]}" \
    --worker-connections 20000 --keep-alive 75 --backlog 4096 -b "127.0.0.1:$PORT" \
    --chdir bench --log-level warning --error-logfile "$work/$1.log" wsgi_demo:app &
  server_pid=$!
  wait_until_serving || { cat "$work/$1.log" >&2; die "$1 did not start"; }
}

start_server() {
  case "$1" in
    nginx) start_nginx ;;
    gunicorn-*) start_gunicorn "$1" ;;
    *) start_qilin "$1" ;;
  esac
}

# Whether SERVER can run here: a worker class of this qilin build, or a peer
# whose binary is installed. Says why not on stderr.
available() {
  case "$1" in
    nginx) command -v nginx >/dev/null || { echo "skipping nginx: not installed" >&2; return 1; } ;;
    gunicorn-sync | gunicorn-gthread)
      command -v gunicorn >/dev/null || { echo "skipping $1: gunicorn is not installed" >&2; return 1; } ;;
    gunicorn-*) echo "skipping $1: not a gunicorn worker class this bench runs" >&2; return 1 ;;
    *) "$QILIN" --check-config -k "$1" >/dev/null 2>&1 ||
         { echo "skipping $1: not a worker class of this build" >&2; return 1; } ;;
  esac
}

# ---- a CPU budget: the half-core scenario ----
# Unconstrained, plaintext is limited by wrk's one core (it is ~100% busy
# against nginx and qilin alike), so its req/s compares wrk with itself. The
# half-core scenario holds the server to 5 ms of CPU per 10 ms with a CFS
# quota, the same for every server, so that the server is the limit and
# req/s compares the servers' CPU per request. cgroup v2 (cpu.max) or v1
# (the cpu controller's cfs_quota_us); needs root.
budget_cgroup=""
budget_procs=""  # cgroup.procs of the server's cgroup before the move

# Makes the cgroup; prints why not and fails when it cannot.
make_cpu_budget() {
  local v2=/sys/fs/cgroup v1=/sys/fs/cgroup/cpu
  if grep -qw cpu "$v2/cgroup.controllers" 2>/dev/null; then
    grep -qw cpu "$v2/cgroup.subtree_control" || echo +cpu >"$v2/cgroup.subtree_control" 2>/dev/null &&
      mkdir -p "$v2/qilin-bench" 2>/dev/null && echo "5000 10000" >"$v2/qilin-bench/cpu.max" 2>/dev/null &&
      budget_cgroup=$v2/qilin-bench
  elif [[ -f "$v1/cpu.cfs_quota_us" ]]; then
    mkdir -p "$v1/qilin-bench" 2>/dev/null && echo 10000 >"$v1/qilin-bench/cpu.cfs_period_us" 2>/dev/null &&
      echo 5000 >"$v1/qilin-bench/cpu.cfs_quota_us" 2>/dev/null && budget_cgroup=$v1/qilin-bench
  fi
  [[ -n "$budget_cgroup" ]] && return 0
  echo "needs a writable cpu cgroup (v2 cpu.max or v1 cpu.cfs_quota_us) to set a CPU quota; run as root"
  return 1
}

# Moves the server (not qilin's status process) into the budget and back.
enter_cpu_budget() {
  local pid path
  path=$(awk -F: '$2 == "cpu" || $2 == "cpu,cpuacct" || $2 == "" {print $3; exit}' "/proc/$server_pid/cgroup")
  budget_procs="$(dirname "$budget_cgroup")$path/cgroup.procs"
  for pid in $(server_pids); do echo "$pid" >"$budget_cgroup/cgroup.procs"; done
}
leave_cpu_budget() {
  local pid
  for pid in $(server_pids); do echo "$pid" >"$budget_procs" 2>/dev/null || true; done
}
remove_cpu_budget() { [[ -z "$budget_cgroup" ]] || rmdir "$budget_cgroup" 2>/dev/null || true; }

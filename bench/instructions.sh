#!/usr/bin/env bash
# Instructions per request of one worker, counted by callgrind: a number that,
# unlike req/s under wrk, does not move with whatever else the machine runs.
#
# The server runs under valgrind --tool=callgrind with one worker; a small
# client sends BATCHES batches of DEPTH pipelined "GET /" on 4 connections
# and reads every response. Two runs (300 and 1300 batches) are subtracted,
# so boot and shutdown cancel out and what is left is the per-request cost:
# session, app, worker loop (user space only: the kernel's share is not seen).
#
#   bench/instructions.sh QILIN_BINARY [WORKER_CLASS [DEPTH [APP]]]
#   bench/instructions.sh build/release/cmd/qilin io_uring 16
#
# Build with -g (RelWithDebInfo at -O3) to read the profiles it leaves in
# $WORK with callgrind_annotate.
set -euo pipefail

QILIN=${1:?usage: bench/instructions.sh QILIN_BINARY [WORKER_CLASS [DEPTH [APP]]]}
CLASS=${2:-io_uring}
DEPTH=${3:-16}
APP=${4:-demo}
PORT=${BENCH_PORT:-18931}
WORK=${WORK:-$(mktemp -d /tmp/qilin-instructions-XXXXXX)}
command -v valgrind >/dev/null || { echo "instructions: valgrind is not installed" >&2; exit 1; }

cat >"$WORK/client.py" <<'PY'
import socket, sys
port, conns, batches, depth = (int(a) for a in sys.argv[1:5])
request = b"GET / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % port
socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(conns)]
def read_exactly(s, n):
    while n > 0:
        data = s.recv(65536)
        if not data: sys.exit("instructions: the server closed a connection")
        n -= len(data)
    if n < 0: sys.exit("instructions: more bytes than the responses should have")
# One response first, to learn its length (the Date field has a fixed width).
first = socks[0]; first.sendall(request); buffer = b""
while b"\r\n\r\n" not in buffer: buffer += first.recv(65536)
head, _, rest = buffer.partition(b"\r\n\r\n")
length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
              if line.lower().startswith(b"content-length:"))
read_exactly(first, length - len(rest))
response = len(head) + 4 + length
for _ in range(batches):
    for s in socks: s.sendall(request * depth)
    for s in socks: read_exactly(s, response * depth)
PY

server_pid=""
stop() { [[ -z "$server_pid" ]] || { kill -TERM "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; server_pid=""; }; }
trap stop EXIT INT TERM

# Instructions of the worker process (the master's file is left aside).
one_run() {
  local batches=$1 out="$WORK/callgrind-$CLASS-$DEPTH-$1"
  taskset -c 0 valgrind --tool=callgrind --callgrind-out-file="$out.%p" \
    "$QILIN" -k "$CLASS" -w 1 -b "127.0.0.1:$PORT" --log-level warning \
    --error-logfile "$WORK/error.log" "$APP" >"$WORK/valgrind.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 300); do curl -sf -o /dev/null "http://127.0.0.1:$PORT/" && break; sleep 0.2; done
  local master=$server_pid worker
  taskset -c 1 python3 "$WORK/client.py" "$PORT" 4 "$batches" "$DEPTH"
  stop
  worker=$(ls "$out".* | grep -v "\.$master\$" | head -1)
  awk '/^totals:/ {print $2; exit}' "$worker"
}

small=$(one_run 300)
large=$(one_run 1300)
echo "$CLASS, pipelined x$DEPTH: $(((large - small) / (1000 * 4 * DEPTH))) instructions/request" \
  "(profiles in $WORK)"

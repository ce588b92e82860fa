"""What one wrk run cost qilin's worker in IO-model terms.

bench/run.sh saves qilin's /status.json (the shared-memory scoreboard) before
and after each wrk run; the difference of the counters, divided by the
requests the workers served in between, is the IO model's cost per request:

    syscalls/req     every syscall on the IO path (accept, recv, send,
                     epoll_wait, epoll_ctl, io_uring_enter, ...)
    req/wake-up      requests per poller wait that returned work
                     (epoll_wait, poll, io_uring_enter that waited)
    compl/submit     CQEs per io_uring_enter (io_uring only)
    ctx-sw/req       voluntary + involuntary context switches per request

The same ratios as the status page's, over one run instead of since boot.
Workers sample their context switches once a second, so run.sh waits a
second after wrk before the second snapshot. Prints the four numbers on one
line, "-" where a ratio does not apply (nothing counted below the line).

    python3 bench/status_delta.py BEFORE.json AFTER.json
"""

import json
import sys


def totals(status):
    """The server-wide counters of one /status.json snapshot."""
    server = status["server"]
    io = server["io"]
    switches = sum(worker["process"]["context_switches"] for worker in status["workers"])
    return {
        "requests": server["requests"],
        "syscalls": io["syscalls"],
        "wakeups": io["waits"] - io["empty_waits"],
        "events": io["events"],
        "submits": io["submits"],
        "switches": switches,
    }


def ratio(numerator, denominator):
    # Six significant digits: io_uring's pipelined runs make a few syscalls
    # per thousand requests, and the report rounds for display.
    return f"{numerator / denominator:.6g}" if denominator > 0 else "-"


def main(before_path, after_path):
    with open(before_path) as before_file, open(after_path) as after_file:
        before, after = totals(json.load(before_file)), totals(json.load(after_file))
    # Counters only grow while the same worker lives; a worker that restarted
    # mid-run takes its counters with it, and the run shows "-".
    delta = {key: after[key] - before[key] for key in after}
    if any(value < 0 for value in delta.values()):
        delta = dict.fromkeys(delta, 0)
    requests = delta["requests"]
    print(ratio(delta["syscalls"], requests), ratio(requests, delta["wakeups"]),
          ratio(delta["events"], delta["submits"]), ratio(delta["switches"], requests))


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: status_delta.py BEFORE.json AFTER.json")
    main(sys.argv[1], sys.argv[2])

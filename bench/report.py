"""Writes bench/results/latest.md from the rows bench/run.sh collected.

run.sh measures; this file only arranges: the scenario table (medians, with
qilin's IO-model counters per request beside throughput and latency), the
scenarios that did not apply and why, the idle-connection table, the
concurrency sweep, and a few sentences that read the numbers, each sentence
written only when the rows it quotes were measured. It also writes the
sweep's data file for bench/plot.gp (one block per server).

Row files, '|'-separated, one line per measured run (one per pass, in pass
order; the report quotes the median of the passes):
    rows, sweep   scenario|server|req/s|p50 µs|p99 µs|CPU µs/req|syscalls/req|
                  req/wake-up|compl/submit|ctx-sw/req|wrk core busy %|socket errors|non-2xx
    idle          server|opened|still open|KiB per connection|req/s|socket errors|non-2xx
    skipped       scenario|server|why
"""

import argparse
import datetime
import os
import platform
import re
import statistics
import textwrap

SCENARIO_ORDER = ["plaintext", "plaintext-half-core", "pipelined-16", "sleep-10ms", "block-10ms", "static-64k", "idle"]


def read_rows(path):
    if not os.path.exists(path):
        return []
    with open(path) as rows:
        return [line.rstrip("\n").split("|") for line in rows if line.strip()]


def median_rows(rows):
    """One row per (scenario, server) from the passes' rows: the median of
    each measured column ("-" when any pass had none), errors summed, and
    last the ratio to nginx's req/s (see paired_ratio)."""
    groups = {}
    for cells in rows:
        groups.setdefault((cells[0], cells[1]), []).append(cells)
    merged = []
    for (scenario, server), runs in groups.items():
        row = [scenario, server]
        for column in range(2, 11):
            values = [number(cells[column]) for cells in runs]
            row.append("-" if None in values else str(statistics.median(values)))
        row += [str(sum(int(cells[column]) for cells in runs)) for column in (11, 12)]
        row.append(paired_ratio(runs, groups.get((scenario, "nginx"), [])))
        merged.append(row)
    return merged


def paired_ratio(runs, nginx_runs):
    """The median over the passes of req/s divided by nginx's req/s in the
    same pass, "-" without nginx. Within a pass nginx ran the scenario seconds
    earlier, so each quotient compares two runs on the same machine; a
    quotient of medians could pair a fast pass with a slow one."""
    quotients = [number(ours[2]) / number(theirs[2]) for ours, theirs in zip(runs, nginx_runs)
                 if number(ours[2]) is not None and number(theirs[2])]
    return str(statistics.median(quotients)) if quotients else "-"


def number(text):
    """A float, or None for "-" (not applicable) and empty cells."""
    try:
        return float(text)
    except ValueError:
        return None


class Row:
    def __init__(self, cells):
        self.scenario, self.server = cells[0], cells[1]
        (self.rps, self.p50, self.p99, self.cpu, self.syscalls, self.per_wakeup,
         self.per_submit, self.switches, self.client_busy) = (number(cell) for cell in cells[2:11])
        self.socket_errors, self.non2xx = int(cells[11]), int(cells[12])
        self.versus_nginx = number(cells[13])


def cell(value, digits=0, dash="—"):
    if value is None:
        return dash
    return f"{value:,.{digits}f}" if digits == 0 else f"{value:.{digits}f}"


def per_request(value):
    """A per-request ratio: 2 decimals from 1 up, 2 significant digits below
    (0.0042 syscalls per request must not print as 0.00)."""
    if value is None:
        return "—"
    if value == 0 or value >= 1:
        return f"{value:.2f}"
    return f"{value:.2g}" if value >= 1e-4 else f"{value:.6f}"


def percent(value):
    return "—" if value is None else f"{value:.0f}%"


def machine():
    model = "unknown CPU"
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} cores ({model}), kernel {platform.release()}"


def scenario_table(rows, server_order):
    rows = sorted(rows, key=lambda row: (SCENARIO_ORDER.index(row.scenario)
                                         if row.scenario in SCENARIO_ORDER else 99,
                                         server_order.index(row.server)))
    yield ("| scenario | server | req/s | vs nginx | p50 (µs) | p99 (µs) | CPU µs/req "
           "| syscalls/req | req/wake-up | compl/submit | ctx-sw/req | wrk core busy "
           "| errors (socket/non-2xx) |")
    yield "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    for row in rows:
        versus = f"{row.versus_nginx:.2f}x" if row.versus_nginx is not None else "—"
        # wrk reports no p99 for pipelined runs (its latency is per batch): say so, not 0.
        p99 = cell(row.p99) if row.p99 else "—"
        yield (f"| {row.scenario} | {row.server} | {cell(row.rps)} | {versus} | {cell(row.p50)} "
               f"| {p99} | {cell(row.cpu, 2)} | {per_request(row.syscalls)} | {cell(row.per_wakeup, 2)} "
               f"| {cell(row.per_submit, 2)} | {per_request(row.switches)} "
               f"| {percent(row.client_busy)} | {row.socket_errors}/{row.non2xx} |")


def skipped_text(skipped):
    by_reason = {}
    for scenario, server, why in skipped:
        by_reason.setdefault(why, []).append(f"{server} {scenario}")
    for why, cases in by_reason.items():
        yield f"- {', '.join(cases)}: {why}."


def sweep_points(sweep_rows):
    """{server: [(concurrency, row), ...]} in the order the servers ran."""
    points = {}
    for row in sweep_rows:
        concurrency = int(re.sub(r"\D", "", row.scenario))
        points.setdefault(row.server, []).append((concurrency, row))
    return points


def sweep_table(points):
    levels = sorted({c for series in points.values() for c, _ in series})
    yield "| server | " + " | ".join(f"c={c}" for c in levels) + " |"
    yield "|---|" + "---:|" * len(levels)
    for server, series in points.items():
        by_level = dict(series)
        cells = []
        for c in levels:
            row = by_level.get(c)
            cells.append(f"{cell(row.rps)} / {cell(row.p99 / 1000 if row.p99 else None, 2)}"
                         if row else "—")
        yield f"| {server} | " + " | ".join(cells) + " |"


def wakeup_table(points):
    """Requests per wake-up against concurrency, for the servers that count them."""
    levels = sorted({c for series in points.values() for c, _ in series})
    counted = {server: dict(series) for server, series in points.items()
               if any(row.per_wakeup is not None for _, row in series)}
    if not counted:
        return
    yield "| qilin class | " + " | ".join(f"c={c}" for c in levels) + " |"
    yield "|---|" + "---:|" * len(levels)
    for server, by_level in counted.items():
        cells = [cell(by_level[c].per_wakeup, 2) if c in by_level else "—" for c in levels]
        yield f"| {server} | " + " | ".join(cells) + " |"


def write_sweep_data(points, path):
    # One block per server, blocks separated by two blank lines (gnuplot's
    # `index`); the first line of a block names the server (`columnheader`).
    blocks = []
    for server, series in points.items():
        lines = [f"concurrency {server} {server}"]
        for c, row in sorted(series, key=lambda point: point[0]):
            lines.append(f"{c} {row.rps or 0:.1f} {(row.p99 or 0) / 1000:.3f}")
        blocks.append("\n".join(lines) + "\n")
    with open(path, "w") as data:
        data.write("\n\n".join(blocks))


def findings(rows, points):
    """Sentences that read the tables, each written only if its rows exist."""
    at = {(row.scenario, row.server): row for row in rows}
    # The lowest and highest concurrency of each server's sweep.
    sweep = {}
    for server, series in points.items():
        ordered = sorted(series, key=lambda point: point[0])
        sweep[(server, "low")], sweep[(server, "high")] = ordered[0], ordered[-1]

    def get(scenario, server):
        return at.get((scenario, server))

    out = []
    sync, threaded = get("plaintext", "sync"), get("plaintext", "threaded")
    epoll, uring = get("plaintext", "epoll"), get("plaintext", "io_uring")
    if sync and sync.syscalls and sync.per_wakeup:
        out.append(f"`sync` makes {sync.syscalls:.1f} syscalls per plaintext request and serves "
                   f"{sync.per_wakeup:.2f} requests per wake-up: a connection (accept, read, "
                   f"write, close) per request.")
    if epoll and epoll.syscalls and epoll.per_wakeup:
        out.append(f"`epoll` serves {epoll.per_wakeup:.1f} requests per `epoll_wait` at "
                   f"{epoll.syscalls:.2f} syscalls per request.")
    if uring and uring.syscalls and uring.per_submit:
        versus = (f" (epoll: {epoll.syscalls:.2f})" if epoll and epoll.syscalls else "")
        out.append(f"`io_uring` needs {uring.syscalls:.2f} syscalls per request{versus}: one "
                   f"`io_uring_enter` returns {uring.per_submit:.1f} completions.")
    busy = [row for row in (get("plaintext", "nginx"), epoll, uring) if row and row.client_busy]
    if busy and min(row.client_busy for row in busy) >= 95:
        out.append(f"On plaintext wrk's core was busy "
                   + ", ".join(f"{row.client_busy:.0f}% against {row.server}" for row in busy)
                   + ": the load generator, not the server, sets those req/s "
                   f"({', '.join(f'{row.server} {row.rps:,.0f}' for row in busy)}).")
    half = {server: get("plaintext-half-core", server) for server in ("nginx", "epoll", "io_uring")}
    if half["nginx"] and half["io_uring"] and half["io_uring"].versus_nginx:
        also = (f", `epoll` {half['epoll'].versus_nginx:.2f}x"
                if half["epoll"] and half["epoll"].versus_nginx else "")
        out.append(f"Held to half a core each, the server rather than wrk is the limit: "
                   f"`io_uring` serves {half['io_uring'].rps:,.0f} req/s, "
                   f"{half['io_uring'].versus_nginx:.2f}x nginx's {half['nginx'].rps:,.0f}{also}.")
    if threaded and threaded.switches is not None and epoll and epoll.switches is not None:
        out.append(f"`threaded` pays {threaded.switches:.3f} context switches per request where "
                   f"`epoll` pays {epoll.switches:.3f}: each readable connection is handed from "
                   f"the poller thread to a pool thread.")
    sleep = {server: get("sleep-10ms", server) for server in ("threaded", "epoll", "gunicorn-gthread")}
    block = {server: get("block-10ms", server) for server in ("threaded", "epoll")}
    if sleep["epoll"] and block["epoll"] and block["threaded"]:
        out.append(f"A 10 ms wait costs the event loops nothing when the handler awaits it "
                   f"(`epoll` /sleep: {sleep['epoll'].rps:,.0f} req/s) and everything when it "
                   f"blocks (/block: {block['epoll'].rps:,.0f} req/s, one request at a time), "
                   f"where `threaded` keeps its 4 threads' {block['threaded'].rps:,.0f} req/s.")
    if sleep["gunicorn-gthread"] and sleep["threaded"]:
        out.append(f"gunicorn's gthread ({sleep['gunicorn-gthread'].rps:,.0f} req/s on /sleep) "
                   f"and qilin's `threaded` ({sleep['threaded'].rps:,.0f}) share the 4-thread "
                   f"ceiling of 400 req/s.")
    gsync, ggthread = get("plaintext", "gunicorn-sync"), get("plaintext", "gunicorn-gthread")
    plaintext = (gsync, ggthread, sync, threaded)
    if None not in plaintext and None not in (row.cpu for row in plaintext):
        out.append(f"On plaintext gunicorn serves {gsync.rps:,.0f} (sync) and "
                   f"{ggthread.rps:,.0f} (gthread) req/s at {gsync.cpu:.0f} and "
                   f"{ggthread.cpu:.0f} CPU µs per request; qilin's `sync` and `threaded` "
                   f"{sync.rps:,.0f} and {threaded.rps:,.0f} at {sync.cpu:.1f} and "
                   f"{threaded.cpu:.1f}.")
    static = [row for row in rows if row.scenario == "static-64k" and row.rps]
    if static:
        best = max(static, key=lambda row: row.rps)
        out.append(f"The 64 KiB file: {best.server} is fastest at {best.rps:,.0f} req/s "
                   f"({best.rps * 64 / 1024 / 1024:.1f} GiB/s).")
    static_uring, static_epoll = get("static-64k", "io_uring"), get("static-64k", "epoll")
    if static_uring and static_epoll and None not in (static_uring.switches, static_epoll.switches):
        out.append(f"`io_uring` sends it with splice, which the kernel runs in io-wq threads of "
                   f"the worker: {static_uring.switches:.2f} context switches per request where "
                   f"`epoll`'s sendfile needs {static_epoll.switches:.2f}.")
    low, high = sweep.get(("epoll", "low")), sweep.get(("epoll", "high"))
    if low and high and low[1].per_wakeup and high[1].per_wakeup:
        out.append(f"Batching grows with load: `epoll` serves {low[1].per_wakeup:.2f} requests "
                   f"per wake-up at c={low[0]} and {high[1].per_wakeup:.1f} at c={high[0]}.")
    return " ".join(out)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name in ("rows", "idle-rows", "sweep-rows", "skipped", "sweep-data"):
        parser.add_argument(f"--{name}", required=True)
    for name in ("runs", "seconds", "idle", "server-core", "client-core"):
        parser.add_argument(f"--{name}", required=True, type=int)
    args = parser.parse_args()

    rows = [Row(cells) for cells in median_rows(read_rows(args.rows))]
    sweep = [Row(cells) for cells in median_rows(read_rows(args.sweep_rows))]
    idle = read_rows(args.idle_rows)
    skipped = read_rows(args.skipped)
    server_order = list(dict.fromkeys([row.server for row in rows + sweep] +
                                      [cells[0] for cells in idle]))

    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"# qilin benchmark, {now}",
        "",
        f"Machine: {machine()}.",
        f"Server pinned to core {args.server_core} (one worker process), wrk pinned to core "
        f"{args.client_core}; {args.runs} run(s) of {args.seconds} s per scenario, one in each "
        f"pass; within a pass every server runs a scenario in turn, each on a fresh start, so "
        f"the runs a ratio compares are seconds apart (a noisy minute falls on them alike); "
        f"medians. \"vs nginx\" is the median of the passes' ratios, each pass's run against "
        f"nginx's run of the same pass.",
        "CPU µs/req = server utime+stime per request (master and workers; not qilin's status "
        "process); — when the run used under 5 clock ticks, too few to divide.",
        "Apps: qilin's built-in `demo`; gunicorn (Debian's, `-w 1`; gthread with `--threads 4` "
        "like qilin's `threaded`) runs `bench/wsgi_demo.py`, the same routes in WSGI; nginx "
        "answers `/` with `return 200 \"Hello, World!\"` and the 64 KiB file with sendfile.",
        "Scenarios (wrk -t1): plaintext `/` c50; plaintext-half-core, the same with the server "
        "held to half of its core by a CFS quota (5 ms per 10 ms, every server alike): wrk's core "
        "is the limit on plaintext, here the server is; pipelined-16 `/` 16 requests per write, c50; "
        "sleep-10ms `/sleep?ms=10` c200 (qilin's loops await a timer, gunicorn sleeps); "
        "block-10ms `/block?ms=10` c50 (a blocking sleep in every server); "
        "static-64k `/static/64k.bin` c50.",
        "IO columns (qilin only, from the scoreboard's /status.json before and after each run): "
        "syscalls on the IO path per request, requests per poller wake-up that returned work, "
        "io_uring completions per `io_uring_enter`, context switches per request. wrk core busy: "
        "the share of the run wrk's core was not idle (/proc/stat); near 100% the load generator, "
        "not the server, sets the req/s.",
        "",
    ]
    lines += scenario_table(rows, server_order)
    if skipped:
        lines += ["", "Not run:"] + list(skipped_text(skipped))
    if idle:
        lines += [
            "",
            f"Idle keep-alive connections: {args.idle} held open by bench/idle_clients while "
            f"wrk -c50 runs for 3 s.",
            "",
            "| server | opened | still open after 8 s | RSS KiB per idle connection "
            "| req/s under load | errors (socket/non-2xx) |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for server, opened, still_open, kib, rps, errors, non2xx in idle:
            lines.append(f"| {server} | {opened} | {still_open} | {kib} | {cell(number(rps))} "
                         f"| {errors or 0}/{non2xx or 0} |")
    points = sweep_points(sweep)
    if sweep:
        write_sweep_data(points, args.sweep_data)
        lines += ["", "Plaintext concurrency sweep (req/s / p99 ms):", ""]
        lines += sweep_table(points)
        wakeups = list(wakeup_table(points))
        if wakeups:
            lines += ["", "Requests per wake-up in the same sweep (qilin's scoreboard):", ""] + wakeups
        lines += ["", "![throughput against concurrency](throughput.png)",
                  "![p99 latency against concurrency](p99.png)"]
    text = findings(rows, points)
    if text:
        lines += ["", "## What the numbers show", "", textwrap.fill(text, 100)]
    print("\n".join(lines))


if __name__ == "__main__":
    main()

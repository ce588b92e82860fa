// GET / of the status listener: one self-contained page (inline CSS and JS, no
// external assets) that fetches /status.json every second and redraws. The
// table rows carry data-pid and data-requests, so a headless browser test can
// read what the script rendered.
#include "master/status_render.hpp"

namespace qilin::master {

namespace {

constexpr std::string_view kPage = R"PAGE(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>qilin status</title>
<style>
  :root { --fg: #1d2330; --muted: #6b7385; --line: #e3e6ee; --rps: #2f6fdd; --p99: #e07a16; --bad: #c0392b; }
  body { font: 14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg); margin: 1.5em 2em; }
  h1 { font-size: 1.3em; margin: 0 0 .2em; }
  h2 { font-size: 1.05em; margin: 1.6em 0 .4em; }
  .muted { color: var(--muted); }
  .summary { display: flex; flex-wrap: wrap; gap: 1.6em; align-items: center; margin: .8em 0; }
  .summary div b { display: block; font-size: 1.25em; font-variant-numeric: tabular-nums; }
  table { border-collapse: collapse; font-variant-numeric: tabular-nums; }
  th, td { padding: .25em .6em; border-bottom: 1px solid var(--line); text-align: right; white-space: nowrap; }
  th { font-weight: 600; color: var(--muted); font-size: .85em; }
  td.text, th.text { text-align: left; }
  .state-ready { color: #1e8449; } .state-booting, .state-stopping { color: var(--p99); }
  #error { color: var(--bad); }
  .legend span { margin-right: 1em; } .legend i { display: inline-block; width: 1em; height: 3px; vertical-align: middle; margin-right: .3em; }
  svg.spark { display: block; }
</style>
</head>
<body>
<h1>qilin <span class="muted" id="master"></span></h1>
<div class="muted">live from <a href="/status.json">/status.json</a> every second &middot; <a href="/metrics">/metrics</a> &middot; <span id="updated">loading&hellip;</span> <span id="error"></span></div>
<div class="summary">
  <div><span class="muted">workers</span><b id="workers">&ndash;</b></div>
  <div><span class="muted">requests</span><b id="requests">&ndash;</b></div>
  <div><span class="muted">req/s</span><b id="rps">&ndash;</b></div>
  <div><span class="muted">p50 / p99</span><b id="latency">&ndash;</b></div>
  <div><span class="muted">syscalls/req</span><b id="sysreq">&ndash;</b></div>
  <div><span class="muted">req/wake-up</span><b id="reqwake">&ndash;</b></div>
  <div><span class="muted">uptime</span><b id="uptime">&ndash;</b></div>
  <div id="server-spark"></div>
</div>
<div class="legend muted"><span><i style="background:var(--rps)"></i>requests/s</span><span><i style="background:var(--p99)"></i>p99 latency</span> (last minute)</div>
<div id="status-codes" class="muted"></div>

<h2>Workers</h2>
<table>
  <thead><tr>
    <th>pid</th><th class="text">class</th><th class="text">state</th><th>age</th><th>requests</th><th>req/s</th>
    <th title="reading / writing / keep-alive idle / in the app">open r/w/i/a</th>
    <th>syscalls/req</th><th>req/wake-up</th><th>events/wake-up</th><th>CQEs/submit</th><th>ctx-sw/req</th>
    <th>p99 ms</th><th>CPU s</th><th>threads</th><th>RSS</th><th class="text">last minute</th>
  </tr></thead>
  <tbody id="rows"></tbody>
</table>

<h2>Restarts</h2>
<div id="restart-totals" class="muted"></div>
<table><thead><tr><th class="text">time</th><th>pid</th><th class="text">reason</th></tr></thead><tbody id="restarts"></tbody></table>

<script>
"use strict";
const $ = (id) => document.getElementById(id);
const num = (v, digits = 1) =>
  v === null || v === undefined ? "\u2013" : Number.isInteger(v) ? String(v) : v.toFixed(digits);
const age = (s) => {
  s = Math.floor(s);
  if (s < 60) return s + "s";
  if (s < 3600) return Math.floor(s / 60) + "m" + String(s % 60).padStart(2, "0") + "s";
  if (s < 86400) return Math.floor(s / 3600) + "h" + String(Math.floor(s % 3600 / 60)).padStart(2, "0") + "m";
  return Math.floor(s / 86400) + "d" + String(Math.floor(s % 86400 / 3600)).padStart(2, "0") + "h";
};
const bytes = (b) => {
  const units = ["B", "K", "M", "G"];
  let i = 0;
  while (b >= 1024 && i < units.length - 1) { b /= 1024; i++; }
  return (i ? b.toFixed(1) : String(b)) + units[i];
};

// Two polylines in one small SVG: throughput and p99, each scaled to its own maximum.
const SVG = "http://www.w3.org/2000/svg";
function sparkline(history, width = 140, height = 28) {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("class", "spark");
  svg.setAttribute("width", width);
  svg.setAttribute("height", height);
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  const draw = (values, colour) => {
    const points = [];
    const max = Math.max(1e-9, ...values.filter((v) => v !== null));
    const step = width / Math.max(1, 59);
    const offset = width - (values.length - 1) * step;
    values.forEach((v, i) => {
      if (v === null) return;
      points.push(`${(offset + i * step).toFixed(1)},${(height - 2 - (v / max) * (height - 4)).toFixed(1)}`);
    });
    if (points.length === 0) return;
    const line = document.createElementNS(SVG, "polyline");
    line.setAttribute("points", points.join(" "));
    line.setAttribute("fill", "none");
    line.setAttribute("stroke", colour);
    line.setAttribute("stroke-width", "1.5");
    svg.appendChild(line);
  };
  draw(history.requests_per_second || [], "var(--rps)");
  draw(history.p99_ms || [], "var(--p99)");
  return svg;
}

function cell(row, text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  row.appendChild(td);
  return td;
}

function render(s) {
  const server = s.server;
  $("master").textContent = "master " + server.master_pid;
  $("workers").textContent = server.workers + " / " + server.target_workers;
  $("requests").textContent = server.requests;
  $("rps").textContent = num(server.requests_per_second);
  $("latency").textContent = num(server.latency.p50_ms, 2) + " / " + num(server.latency.p99_ms, 2) + " ms";
  $("sysreq").textContent = num(server.ratios.syscalls_per_request);
  $("reqwake").textContent = num(server.ratios.requests_per_wakeup, 2);
  $("uptime").textContent = age(server.uptime_seconds);
  $("server-spark").replaceChildren(sparkline(s.history, 200, 36));
  const codes = Object.entries(server.status_codes).map(([code, n]) => code + " " + n).join(", ");
  $("status-codes").textContent = "responses by status: " + (codes || "\u2013");

  const rows = [];
  for (const w of s.workers) {
    const tr = document.createElement("tr");
    tr.id = "worker-" + w.pid;
    tr.dataset.pid = w.pid;
    tr.dataset.requests = w.requests;
    const o = w.open_connections, r = w.ratios, p = w.process;
    cell(tr, w.pid);
    cell(tr, w["class"], "text");
    cell(tr, w.state, "text state-" + w.state);
    cell(tr, age(w.age_seconds));
    cell(tr, w.requests, "requests");
    cell(tr, num(w.requests_per_second));
    cell(tr, `${o.reading}/${o.writing}/${o.idle}/${o.app}`);
    cell(tr, num(r.syscalls_per_request));
    cell(tr, num(r.requests_per_wakeup, 2));
    cell(tr, num(r.events_per_wakeup, 2));
    cell(tr, num(r.completions_per_submit, 2));
    cell(tr, num(r.switches_per_request, 2));
    cell(tr, num(w.latency.p99_ms, 2));
    cell(tr, num(p.user_cpu_seconds + p.system_cpu_seconds, 2));
    cell(tr, p.threads);
    cell(tr, bytes(p.rss_bytes));
    cell(tr, "", "text").appendChild(sparkline(w.history));
    rows.push(tr);
  }
  $("rows").replaceChildren(...rows);

  const totals = Object.entries(s.restarts.total).map(([reason, n]) => reason + " " + n).join(", ");
  $("restart-totals").textContent = "since start: " + totals;
  const events = s.restarts.recent.slice().reverse().map((e) => {
    const tr = document.createElement("tr");
    cell(tr, new Date(e.time * 1000).toLocaleTimeString(), "text");
    cell(tr, e.pid);
    cell(tr, e.reason, "text");
    return tr;
  });
  $("restarts").replaceChildren(...events);
  $("updated").textContent = "updated " + new Date(s.now * 1000).toLocaleTimeString();
}

async function refresh() {
  try {
    const response = await fetch("/status.json", { cache: "no-store" });
    if (!response.ok) throw new Error("HTTP " + response.status);
    render(await response.json());
    $("error").textContent = "";
  } catch (error) {
    $("error").textContent = "cannot reach the status listener: " + error.message;
  }
}
refresh();
setInterval(refresh, 1000);
</script>
</body>
</html>
)PAGE";

}  // namespace

std::string_view status_page_html() noexcept { return kPage; }

}  // namespace qilin::master

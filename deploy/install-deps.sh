#!/usr/bin/env bash
# Installs the Debian packages qilin needs to build, test and benchmark.
# Idempotent and quiet when everything is present; uses sudo when not root.
set -euo pipefail

packages=(
  # build
  cmake g++ make pkg-config
  # libraries (llhttp ships as C sources in node-llhttp)
  node-llhttp libyaml-cpp-dev libspdlog-dev libfmt-dev libgtest-dev liburing-dev
  libcli11-dev nlohmann-json3-dev libsystemd-dev
  # tests and benchmarks: a real client, a reverse proxy, the load generator
  curl nginx-light wrk procps util-linux iproute2 systemd
  # promtool, which checks /metrics (status_test); the status page's browser
  # test also runs when chromium is installed (not here: ~400 MB)
  prometheus
)

missing=()
for package in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Status}' "$package" 2>/dev/null || true)
  [[ "$status" == installed ]] || missing+=("$package")
done
((${#missing[@]} == 0)) && exit 0

sudo=()
if ((EUID != 0)); then
  command -v sudo >/dev/null || { echo "install-deps: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  sudo=(sudo)
fi
echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# nginx-light's package starts a system nginx on port 80; qilin's tests and
# benchmarks start their own on loopback ports, so leave the system one off.
if [[ " ${missing[*]} " == *" nginx-light "* ]] && command -v nginx >/dev/null; then
  "${sudo[@]}" nginx -s quit 2>/dev/null || true
fi

#!/usr/bin/env bash
# Installs the Debian packages qilin needs, per purpose:
#   deploy/install-deps.sh [build]   compile qilin (make build, make run, the container)
#   deploy/install-deps.sh test      build + what the test suite talks to (make test)
#   deploy/install-deps.sh bench     build + the load generator and the peers (make bench)
#   deploy/install-deps.sh fuzz      build + clang and its libFuzzer runtime (make fuzz)
# Idempotent and quiet when everything is present; uses sudo when not root.
set -euo pipefail

build=(
  cmake g++ make pkg-config
  # libraries (llhttp ships as C sources in node-llhttp)
  node-llhttp libyaml-cpp-dev libspdlog-dev libfmt-dev libgtest-dev liburing-dev
  libcli11-dev nlohmann-json3-dev libsystemd-dev
)
test=(
  # a real client, a reverse proxy (nginx_test), the load generator, ss/ip
  curl nginx-light wrk procps util-linux iproute2 systemd
  # promtool checks /metrics; a headless browser checks the live status page
  prometheus chromium
)
bench=(
  curl nginx-light wrk procps util-linux iproute2
  # the peers qilin is compared with, and the plots
  gunicorn python3 gnuplot-nox fonts-dejavu-core  # the font of gnuplot's pngcairo
)

fuzz=(clang libclang-rt-14-dev)

profile=${1:-build}
case "$profile" in
  build) packages=("${build[@]}") ;;
  test) packages=("${build[@]}" "${test[@]}") ;;
  bench) packages=("${build[@]}" "${bench[@]}") ;;
  fuzz) packages=("${build[@]}" "${fuzz[@]}") ;;
  *) echo "install-deps: unknown profile '$profile' (build, test, bench or fuzz)" >&2; exit 2 ;;
esac

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

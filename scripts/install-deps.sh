#!/usr/bin/env bash
# Installs what building and testing edgeproxy needs on Debian/Ubuntu, only what is missing.
#   scripts/install-deps.sh          build + test: compiler, CMake, Ninja, GoogleTest, Google Benchmark,
#                                    liburing (io_uring backend), python3, strace (fault injection),
#                                    curl, openssl and wrk (the forward-proxy tests), prometheus
#                                    (its promtool checks the metrics endpoint's output)
#   scripts/install-deps.sh --bench  also what scripts/bench.sh runs: wrk, nginx (+ stream module),
#                                    HAProxy, iperf3, and gnuplot for its charts; and the peers of
#                                    scripts/bench-forward.sh: tinyproxy and squid
#   scripts/install-deps.sh --fuzz   also clang and its runtimes (libFuzzer, sanitizers) for
#                                    make fuzz-build (docs/reliability.md); make test needs neither
set -euo pipefail

packages=(g++ cmake make ninja-build libgtest-dev libbenchmark-dev liburing-dev python3 iproute2 procps strace
          curl openssl wrk prometheus)
if [[ "${1:-}" == "--bench" ]]; then
  packages+=(wrk nginx-light libnginx-mod-stream haproxy iperf3 util-linux gnuplot-nox tinyproxy squid)
elif [[ "${1:-}" == "--fuzz" ]]; then
  packages+=(clang libclang-rt-14-dev)
elif [[ $# -gt 0 ]]; then
  echo "install-deps.sh: unknown option '$1' (expected --bench, --fuzz or nothing)" >&2
  exit 2
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [[ ${#missing[@]} -eq 0 ]]; then
  exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
  sudo=sudo
else
  sudo=
fi
echo "install-deps.sh: installing ${missing[*]}" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

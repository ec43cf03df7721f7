#!/usr/bin/env bash
# Soak test with fault injection (issue 16; docs/reliability.md, "Soak").
#
#   scripts/soak.sh                         30 minutes on build/release/edgeproxy (epoll)
#   SOAK_SECONDS=60 SOAK_BACKEND=uring scripts/soak.sh
#   EDGEPROXY_BIN=build/asan/edgeproxy SOAK_SECONDS=60 scripts/soak.sh
#
# Environment:
#   SOAK_SECONDS   how long the load runs (default 1800)
#   SOAK_BACKEND   epoll or uring: the binary build/release/edgeproxy or build/release-uring/edgeproxy
#                  (default epoll); with EDGEPROXY_BIN, checked against its --version
#   EDGEPROXY_BIN  the binary to soak (built by nothing: it must exist)
#   SOAK_DIR       where the configuration, proxy.log, access.log, stats.json and results.json go
#                  (default a new directory under ${TMPDIR:-/tmp}; printed)
#   SOAK_CLIENTS   client threads, one connection each at most (default 30; an EMFILE phase adds
#                  a burst of 20)
#   SOAK_SEED      the load's random seed (default: the time; printed in results.json)
# Builds nothing unless the default binary is missing (then make release-for-test). Exits non-zero
# when an assertion fails; the table says which.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${SOAK_SECONDS:-1800}
backend=${SOAK_BACKEND:-epoll}
case $backend in
  epoll) suffix= ;;
  uring) suffix=-uring ;;
  *) echo "soak.sh: SOAK_BACKEND must be epoll or uring, not '$backend'" >&2; exit 2 ;;
esac

if [ -n "${EDGEPROXY_BIN:-}" ]; then
  bin=$EDGEPROXY_BIN
  if [ ! -x "$bin" ]; then
    echo "soak.sh: EDGEPROXY_BIN=$bin is not an executable file" >&2
    exit 2
  fi
  if [ -n "${SOAK_BACKEND:-}" ]; then
    want=$([ "$backend" = uring ] && echo io_uring || echo epoll)
    if ! "$bin" --version 2>&1 | grep -q "$want"; then
      echo "soak.sh: $bin is not a $want build: $("$bin" --version 2>&1 | head -1)" >&2
      exit 2
    fi
  fi
else
  bin=build/release$suffix/edgeproxy
  if [ ! -x "$bin" ]; then
    echo "soak.sh: $bin missing: make release-for-test BACKEND=$backend" >&2
    make release-for-test BACKEND="$backend"
  fi
fi

dir=${SOAK_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/edgeproxy-soak.XXXXXX")}
args=(run --bin "$bin" --seconds "$seconds" --dir "$dir")
[ -n "${SOAK_CLIENTS:-}" ] && args+=(--clients "$SOAK_CLIENTS")
[ -n "${SOAK_SEED:-}" ] && args+=(--seed "$SOAK_SEED")
exec python3 scripts/soak.py "${args[@]}"

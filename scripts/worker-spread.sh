#!/usr/bin/env bash
# How evenly SO_REUSEPORT spreads a wrk load over edgeproxy's workers.
#
#   scripts/worker-spread.sh [BINARY]      (default build/release/edgeproxy)
#   RUNS=20 DURATION=2 CONNECTIONS=100 WORKERS=2 scripts/worker-spread.sh
#
# Starts an nginx backend and edgeproxy --workers $WORKERS on loopback, then runs wrk -t1
# -c$CONNECTIONS $RUNS times (each run opens new connections, so the kernel hashes new 4-tuples).
# After each run it reads the per-worker counters (SIGUSR1) and prints each worker's share of the
# run's connections and of its response bytes, 1.00 being a fair share. Needs wrk and nginx
# (scripts/install-deps.sh --bench). Stops only the processes it started.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=bench/tiny-nginx.sh
source "$(dirname "$0")/bench/tiny-nginx.sh"

BIN=${1:-build/release/edgeproxy}
RUNS=${RUNS:-20}
DURATION=${DURATION:-2}
CONNECTIONS=${CONNECTIONS:-100}
WORKERS=${WORKERS:-2}
[[ -x $BIN ]] || { echo "worker-spread.sh: $BIN is not built (make release)" >&2; exit 1; }
for tool in wrk nginx python3; do
  command -v "$tool" >/dev/null || { echo "worker-spread.sh: $tool is missing (scripts/install-deps.sh --bench)" >&2; exit 1; }
done

TMP=$(mktemp -d)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

BACKEND_PORT=$(free_port)
PROXY_PORT=$(free_port)
tiny_nginx_conf "$TMP" "$BACKEND_PORT"
nginx -c "$TMP/nginx.conf" -p "$TMP" &
PIDS+=($!)
"$BIN" -l 127.0.0.1 -p "$PROXY_PORT" -P "$BACKEND_PORT" --workers "$WORKERS" 2>"$TMP/proxy.err" &
PROXY=$!
PIDS+=("$PROXY")
for _ in $(seq 50); do grep -q "listening on" "$TMP/proxy.err" && break; sleep 0.1; done
grep -q "listening on" "$TMP/proxy.err" || { cat "$TMP/proxy.err" >&2; exit 1; }

stats() {  # prints the newest statistics block's per-worker accepted and bytes_u2c
  local before
  before=$(grep -c "edgeproxy: statistics" "$TMP/proxy.err" || true)
  kill -USR1 "$PROXY"
  for _ in $(seq 50); do
    [[ $(grep -c "edgeproxy: statistics" "$TMP/proxy.err" || true) -gt $before ]] && break
    sleep 0.1
  done
  sleep 0.2
  python3 - "$TMP/proxy.err" "$WORKERS" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
block = text[text.rindex("edgeproxy: statistics"):]
d = dict(re.findall(r"^  (\S+)\s+(\S+)", block, re.M))
n = int(sys.argv[2])
print(" ".join(f"{d[f'worker{i}.accepted']} {d[f'worker{i}.bytes_u2c']}" for i in range(n)))
PY
}

echo "wrk -t1 -c$CONNECTIONS -d${DURATION}s through $BIN --workers $WORKERS, $RUNS runs"
echo "share of each run's connections and response bytes per worker (1.00 = fair)"
prev=$(stats)
all=()
for run in $(seq "$RUNS"); do
  timeout $((DURATION + 10)) wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" "http://127.0.0.1:$PROXY_PORT/" >/dev/null
  now=$(stats)
  line=$(python3 - "$WORKERS" "$prev" "$now" "$run" <<'PY'
import sys
n = int(sys.argv[1])
p = list(map(int, sys.argv[2].split())); q = list(map(int, sys.argv[3].split()))
conns = [q[2*i] - p[2*i] for i in range(n)]; data = [q[2*i+1] - p[2*i+1] for i in range(n)]
cs = [c * n / max(1, sum(conns)) for c in conns]; ds = [b * n / max(1, sum(data)) for b in data]
print(f"run {sys.argv[4]:>2}: connections " + " ".join(f"{c:4d}" for c in conns)
      + "  conn share " + " ".join(f"{x:.2f}" for x in cs)
      + "  bytes share " + " ".join(f"{x:.2f}" for x in ds) + f"  min {min(ds):.2f}")
PY
)
  echo "$line"
  all+=("${line##*min }")
  prev=$now
done
printf '%s\n' "${all[@]}" | sort -n | awk '{a[NR]=$1} END {printf "lowest worker share over %d runs: %.2f, median of the per-run lowest: %.2f\n", NR, a[1], a[int((NR+1)/2)]}'

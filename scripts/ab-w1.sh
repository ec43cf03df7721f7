#!/usr/bin/env bash
# A/B of proxy variants on the keep-alive workload (W1's shape), interleaved round by round (each
# round starts one variant later) so a noisy machine affects every variant alike. For tuning one option, not for the full comparison
# (that is scripts/bench.sh).
#
#   scripts/ab-w1.sh 'label=command ... PORT ... BACKEND ...' ...
#   ROUNDS=3 DURATION=5 CONNECTIONS=100 PROXY_CPU=0 LOAD_CPU=1 scripts/ab-w1.sh \
#     'epoll=build/release/edgeproxy -l 127.0.0.1 -p PORT -P BACKEND -q' \
#     'bw0=build/release-uring/edgeproxy -l 127.0.0.1 -p PORT -P BACKEND -q --batch-wait 0' \
#     'bw200=build/release-uring/edgeproxy -l 127.0.0.1 -p PORT -P BACKEND -q --batch-wait 200'
#
# PORT and BACKEND in each command are replaced by the proxy's port and the nginx backend's port;
# so are they in a configuration file template (a word ending in .conf.in, e.g.
# bench/configs/w1-one-server.conf.in), which the command then gets as a filled-in copy.
# The proxy runs on PROXY_CPU, nginx (1 worker) and wrk -t1 on LOAD_CPU, as in the pinned layout.
# Prints, per round and variant: req/s, the proxy's CPU µs per request (utime + stime of all its
# threads, /proc/PID/stat) and wrk's p99; then each variant's medians and its median per-round
# CPU ratio against the first variant, with the range and the middle half (quartiles) of the
# per-round ratios. Stops only the processes it started.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=bench/tiny-nginx.sh
source "$(dirname "$0")/bench/tiny-nginx.sh"

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5}
CONNECTIONS=${CONNECTIONS:-100}
PROXY_CPU=${PROXY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
[[ $# -ge 1 ]] || { sed -n '2,16p' "$0" >&2; exit 2; }
for tool in wrk nginx python3 taskset; do
  command -v "$tool" >/dev/null || { echo "ab-w1.sh: $tool is missing (scripts/install-deps.sh --bench)" >&2; exit 1; }
done

TMP=$(mktemp -d)
PIDS=()
cleanup() {
  # The proxy under test runs inside the measuring pipeline; its PID is kept in a file.
  [[ -s $TMP/proxy.pid ]] && PIDS+=("$(cat "$TMP/proxy.pid")")
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
BACKEND_PORT=$(free_port)
tiny_nginx_conf "$TMP" "$BACKEND_PORT"
taskset -c "$LOAD_CPU" nginx -c "$TMP/nginx.conf" -p "$TMP" &
PIDS+=($!)
sleep 0.5
HZ=$(getconf CLK_TCK)

echo "wrk -t1 -c$CONNECTIONS -d${DURATION}s, proxy on CPU $PROXY_CPU, nginx and wrk on CPU $LOAD_CPU, $ROUNDS rounds"
SPECS=("$@")
for round in $(seq "$ROUNDS"); do
  for i in $(seq 0 $((${#SPECS[@]} - 1))); do
    spec=${SPECS[$(( (i + round - 1) % ${#SPECS[@]} ))]}
    label=${spec%%=*}
    port=$(free_port)
    cmd=${spec#*=}
    cmd=${cmd//BACKEND/$BACKEND_PORT}
    cmd=${cmd//PORT/$port}
    words=()
    for word in $cmd; do
      if [[ $word == *.conf.in ]]; then
        sed -e "s/BACKEND/$BACKEND_PORT/g" -e "s/PORT/$port/g" "$word" >"$TMP/$label.conf"
        word=$TMP/$label.conf
      fi
      words+=("$word")
    done
    cmd=${words[*]}
    # shellcheck disable=SC2086  # the command is split into words on purpose
    taskset -c "$PROXY_CPU" $cmd 2>"$TMP/proxy.err" &
    proxy=$!
    echo "$proxy" >"$TMP/proxy.pid"
    sleep 0.4
    kill -0 "$proxy" 2>/dev/null || { echo "ab-w1.sh: $label did not start:" >&2; cat "$TMP/proxy.err" >&2; exit 1; }
    t0=$(cpu_ticks "$proxy")
    out=$(timeout $((DURATION + 10)) taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --latency "http://127.0.0.1:$port/")
    t1=$(cpu_ticks "$proxy")
    kill -TERM "$proxy"
    wait "$proxy" 2>/dev/null || true
    : >"$TMP/proxy.pid"
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
    echo "$round $label $rps $(( (t1 - t0) * 1000000 / HZ )) $DURATION $p99"
  done
done | tee "$TMP/rows" | awk '{printf "round %s %-12s %8.0f req/s %7.2f us/req  p99 %s\n", $1, $2, $3, $4 / ($3 * $5), $6}'

python3 - "$TMP/rows" <<'PY'
import statistics, sys
rows = [line.split() for line in open(sys.argv[1])]
order, by = [], {}
for rnd, label, rps, cpu_us, dur, p99 in rows:
    if label not in by:
        order.append(label)
        by[label] = {}
    by[label][rnd] = (float(rps), float(cpu_us) / (float(rps) * float(dur)), p99)
first = order[0]
print("\nmedians (ratio = median over rounds of CPU/request against the first variant)")
for label in order:
    runs = by[label]
    ratios = [runs[r][1] / by[first][r][1] for r in runs if r in by[first]]
    q1, _, q3 = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else ratios * 3
    print(f"{label:<12} {statistics.median(v[0] for v in runs.values()):8.0f} req/s "
          f"{statistics.median(v[1] for v in runs.values()):7.2f} us/req  "
          f"CPU vs {first} {statistics.median(ratios):.2f}x "
          f"(rounds {min(ratios):.2f}-{max(ratios):.2f}, middle half {q1:.2f}-{q3:.2f})")
PY

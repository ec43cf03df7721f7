#!/usr/bin/env bash
# TCP segments per W2 connection (wrk -H 'Connection: close': one client connection and one
# server connection per request) through each system, counted in a private network namespace so
# that nothing else on the machine's loopback is counted: the kernel's own counters (Tcp OutSegs,
# TcpExt TCPPureAcks and TW of /proc/net/snmp and /proc/net/netstat) before and after one wrk run,
# divided by the requests wrk completed. Segments are a deterministic measure of the kernel work a
# proxy causes (on loopback, the sender's CPU also runs the receiver's processing), where CPU
# time on a shared 2-core machine is noisy (docs/performance.md, "Issue 17: segments").
#
#   scripts/segments.sh
#   EDGEPROXY_BIN=/tmp/a/edgeproxy SYSTEMS="haproxy edgeproxy" scripts/segments.sh
#
# The *_smart systems turn on the ACK savers of decision 0017 (HAProxy: option tcp-smart-accept,
# option tcp-smart-connect, bind ... defer-accept; edgeproxy: the directives of the same names).
# Knobs (defaults): SYSTEMS ["direct haproxy edgeproxy edgeproxy_uring"] EDGEPROXY_BIN
# [build/release/edgeproxy] EDGEPROXY_URING_BIN [build/release/uring/edgeproxy] CONNECTIONS [50]
# DURATION [2] PROXY_CPU [0] LOAD_CPU [1]. Needs root (ip netns), wrk, nginx, haproxy, python3.
# Stops only the processes it started.
set -euo pipefail
SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd -- "$SCRIPT_DIR/.." && pwd)
SYSTEMS=${SYSTEMS:-direct haproxy edgeproxy edgeproxy_uring}
EDGEPROXY_BIN=${EDGEPROXY_BIN:-$ROOT/build/release/edgeproxy}
EDGEPROXY_URING_BIN=${EDGEPROXY_URING_BIN:-$ROOT/build/release/uring/edgeproxy}
CONNECTIONS=${CONNECTIONS:-50} DURATION=${DURATION:-2} PROXY_CPU=${PROXY_CPU:-0} LOAD_CPU=${LOAD_CPU:-1}
die() { printf 'segments.sh: error: %s\n' "$*" >&2; exit 1; }

if [[ ${1:-} != --inside ]]; then
    ((EUID == 0)) || die "needs root (ip netns)"
    for tool in ip wrk nginx haproxy python3 taskset; do
        command -v "$tool" >/dev/null || die "$tool is missing"
    done
    ns=edgeproxy-segments-$$
    ip netns add "$ns" || die "cannot create network namespace $ns"
    trap 'ip netns delete "$ns" 2>/dev/null || true' EXIT
    export SYSTEMS EDGEPROXY_BIN EDGEPROXY_URING_BIN CONNECTIONS DURATION PROXY_CPU LOAD_CPU
    ip netns exec "$ns" "$0" --inside
    exit
fi

ip link set lo up
TMP_DIR=$(mktemp -d "${TMPDIR:-/tmp}/segments.XXXXXX")
chmod 711 "$TMP_DIR"
PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$TMP_DIR"
}
trap cleanup EXIT

counters() {  # counters FILE : saves the TCP counters; counters FILE N : prints the differences / N
    python3 - "$@" <<'EOF'
import json, sys
def read():
    d = {}
    for path in ("/proc/net/snmp", "/proc/net/netstat"):
        lines = open(path).read().split("\n")
        for names, values in zip(lines[::2], lines[1::2]):
            if names:
                k, v = names.split(), values.split()
                d.update({k[0] + n: int(x) for n, x in zip(k[1:], v[1:])})
    return d
if len(sys.argv) == 2:
    json.dump(read(), open(sys.argv[1], "w"))
else:
    a, b, n = json.load(open(sys.argv[1])), read(), int(sys.argv[2])
    keys = ("Tcp:OutSegs", "TcpExt:TCPPureAcks", "TcpExt:TW")
    print("\t".join(f"{(b[k] - a[k]) / n:.2f}" for k in keys))
EOF
}

wait_port() {  # wait_port PORT : up to 5 s
    local i
    for ((i = 0; i < 50; i++)); do
        timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null && return 0
        sleep 0.1
    done
    die "nothing listens on port $1"
}

mkdir -p "$TMP_DIR/nginx/tmp" "$TMP_DIR/nginx/html"
sed -e "s#@PREFIX@#$TMP_DIR/nginx#g" -e "s/@PORT@/18080/" -e "s/@WORKERS@/1/" \
    -e "s/@NOFILE@/$(ulimit -Sn)/" "$SCRIPT_DIR/bench/nginx-backend.conf.in" >"$TMP_DIR/nginx/nginx.conf"
taskset -c "$LOAD_CPU" nginx -p "$TMP_DIR/nginx" -c "$TMP_DIR/nginx/nginx.conf" &
PIDS+=($!)
wait_port 18080
declare -A PORT=([direct]=18080)
port=18081
for system in $SYSTEMS; do
    case $system in
        direct) continue ;;
        haproxy | haproxy_smart)
            defaults="" bind_options=""
            if [[ $system == haproxy_smart ]]; then
                defaults="    option tcp-smart-accept\n    option tcp-smart-connect"
                bind_options=" defer-accept"
            fi
            sed -e "s/@NBTHREAD@/1/" -e "s/@ULIMIT_N@/$(ulimit -Sn)/" -e "s/@PORT@/$port/" \
                -e "s/@BACKEND_PORT@/18080/" -e "s/@EXTRA_GLOBAL@//" \
                -e "s/@EXTRA_DEFAULTS@/$defaults/" -e "s/@BIND_OPTIONS@/$bind_options/" \
                -e "s/maxconn 20000/maxconn $(($(ulimit -Sn) / 3))/" \
                "$SCRIPT_DIR/bench/haproxy-tcp.cfg.in" >"$TMP_DIR/$system.cfg"
            taskset -c "$PROXY_CPU" haproxy -f "$TMP_DIR/$system.cfg" &
            ;;
        edgeproxy | edgeproxy_uring | edgeproxy_smart | edgeproxy_uring_smart)
            bin=$EDGEPROXY_BIN
            [[ $system != edgeproxy_uring* ]] || bin=$EDGEPROXY_URING_BIN
            [[ -x $bin ]] || die "$bin is not built (make release)"
            smart=()
            [[ $system != *_smart ]] || smart=(--tcp-smart-accept --tcp-smart-connect --defer-accept 1)
            taskset -c "$PROXY_CPU" "$bin" -q -l 127.0.0.1 -p "$port" -b 127.0.0.1 -P 18080 \
                --max-connections 5000 "${smart[@]}" &
            ;;
        *) die "unknown system '$system'" ;;
    esac
    PIDS+=($!)
    PORT[$system]=$port
    wait_port "$port"
    port=$((port + 1))
done

printf 'system\tconnections\tsegments/conn\tpure ACKs/conn\tTIME_WAIT/conn\n'
for system in $SYSTEMS; do
    sleep 1
    counters "$TMP_DIR/before"
    out=$(timeout $((DURATION + 30)) taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" \
        -H 'Connection: close' "http://127.0.0.1:${PORT[$system]}/" 2>&1)
    requests=$(awk '/requests in/ {print $1}' <<<"$out")
    [[ ${requests:-0} -gt 0 ]] || die "$system: wrk completed no request"
    printf '%s\t%s\t%s\n' "$system" "$requests" "$(counters "$TMP_DIR/before" "$requests")"
done

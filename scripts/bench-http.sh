#!/usr/bin/env bash
# Issue 15: edgeproxy's HTTP mode (mode http, pooled server connections) side by side with HAProxy
# 2.6 `mode http` (`http-reuse always`) and nginx `proxy_pass` to an upstream with `keepalive`,
# both edgeproxy backends (epoll, io_uring). Every proxy appends X-Forwarded-For and nothing
# else, and forwards to one nginx origin (scripts/bench/nginx-backend.conf.in: "ok\n" at /, 1 MiB
# at /1m), the origin it keeps persistent connections to. Shapes (SHAPES):
#   KA     keep-alive clients, W1's shape: wrk -t1 -c$CONNECTIONS --latency http://PROXY/
#   CLOSE  a connection per request, W2's shape: the same with -H "Connection: close"; the server
#          side stays pooled (every proxy keeps its origin connections): where pooling wins
#   1M     1 MiB responses, W3's shape: wrk -t1 -c$W3_CONNECTIONS --latency http://PROXY/1m
# Cells (shape x system) are interleaved round by round (each round starts one cell later), in
# the method of bench-forward.sh; the report gives each cell's median req/s (MiB/s for 1M),
# proxy CPU µs per request (ms per GiB for 1M) and p99, the per-round ratios of each edgeproxy to
# HAProxy and to nginx, and issue 15's targets as pass/fail lines. An edgeproxy system is
# skipped, with a note, when `edgeproxy -t -c FILE` refuses bench/configs/http-edgeproxy.conf.in
# (a build without mode http).
#
#   scripts/bench-http.sh                                    # ROUNDS=10 DURATION=3, 12 cells
#   ROUNDS=3 DURATION=2 scripts/bench-http.sh                # a quick look
#   SYSTEMS="edgeproxy haproxy" SHAPES="CLOSE" scripts/bench-http.sh
#
# Knobs (environment variables, defaults in brackets):
#   ROUNDS [10] DURATION [3]  rounds; seconds per run (every cell runs once per round)
#   WARMUP [1]                seconds of unrecorded load per cell before the first round
#   CONNECTIONS [100]         wrk -t1 -cN in KA and CLOSE (W1 and W2 of bench.sh)
#   W3_CONNECTIONS [10]       wrk -t1 -cN in 1M (W3 of bench.sh)
#   POOL_SIZE [256]           edgeproxy pool-size, nginx upstream keepalive (>= CONNECTIONS:
#                             a keep-alive client keeps its server connection parked)
#   SYSTEMS ["edgeproxy edgeproxy_uring haproxy nginx"]
#   SHAPES ["KA CLOSE 1M"]
#   DEFER_ACCEPT [0]          1 = every proxy accepts a connection once its request arrived
#                             (TCP_DEFER_ACCEPT, decision 0017): edgeproxy `defer-accept 1s`,
#                             HAProxy `bind ... defer-accept`, nginx `listen ... deferred`
#   PROXY_CPU [0] LOAD_CPU [1]  the proxy on one CPU; wrk and the nginx origin (1 worker) on the
#                             other
#   EDGEPROXY_BIN [build/release/edgeproxy]  EDGEPROXY_URING_BIN [build/release-uring/edgeproxy]
#                             copied at start, so a rebuild during the run cannot mix builds
#   RESULTS_DIR [bench-results/http-<UTC timestamp>]
# Output in RESULTS_DIR: report.md, runs.csv (scripts/bench.sh's columns, workload = the shape),
# runs.tsv, raw/ (wrk output), logs/ (configs, process logs), commands.txt, notes.tsv. Proxy CPU:
# utime + stime from /proc/PID/stat (every thread) of edgeproxy, HAProxy (one thread) or nginx's
# master and its worker, before and after each run. Each run is bounded (under timeout); stops
# only the processes it started, by PID, also on failure.
set -euo pipefail

SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd -- "$SCRIPT_DIR/.." && pwd)
BENCH_DIR=$SCRIPT_DIR/bench
CONFIG_DIR=$REPO_ROOT/bench/configs
# shellcheck disable=SC2034 # lib.sh's free_port runs it
HELPER=$BENCH_DIR/idle.py
REPORTER=$BENCH_DIR/http_report.py
# shellcheck source-path=SCRIPTDIR source=bench/lib.sh
source "$BENCH_DIR/lib.sh"
[[ $# -eq 0 ]] || { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 2; }

ROUNDS=${ROUNDS:-10}
DURATION=${DURATION:-3}
WARMUP=${WARMUP:-1}
CONNECTIONS=${CONNECTIONS:-100}
W3_CONNECTIONS=${W3_CONNECTIONS:-10}
POOL_SIZE=${POOL_SIZE:-256}
SYSTEMS=${SYSTEMS:-edgeproxy edgeproxy_uring haproxy nginx}
SHAPES=${SHAPES:-KA CLOSE 1M}
DEFER_ACCEPT=${DEFER_ACCEPT:-0}
PROXY_CPU=${PROXY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
EDGEPROXY_BIN=${EDGEPROXY_BIN:-$REPO_ROOT/build/release/edgeproxy}
EDGEPROXY_URING_BIN=${EDGEPROXY_URING_BIN:-$REPO_ROOT/build/release-uring/edgeproxy}
TS=$(date -u +%Y%m%dT%H%M%SZ)
RESULTS_DIR=${RESULTS_DIR:-$REPO_ROOT/bench-results/http-$TS}

int_in "$ROUNDS" 1 100 || die "ROUNDS must be in 1..100"
[[ $DEFER_ACCEPT == [01] ]] || die "DEFER_ACCEPT must be 0 or 1"
EP_DEFER="" HAPROXY_DEFER="" NGINX_DEFER=""
if ((DEFER_ACCEPT)); then
    EP_DEFER="    defer-accept 1s" HAPROXY_DEFER=" defer-accept" NGINX_DEFER=" deferred"
fi
int_in "$DURATION" 1 60 || die "DURATION must be in 1..60 seconds"
int_in "$WARMUP" 0 30 || die "WARMUP must be in 0..30 seconds"
int_in "$CONNECTIONS" 1 5000 || die "CONNECTIONS must be in 1..5000"
int_in "$W3_CONNECTIONS" 1 1000 || die "W3_CONNECTIONS must be in 1..1000"
int_in "$POOL_SIZE" 1 10000 || die "POOL_SIZE must be in 1..10000"
((POOL_SIZE >= CONNECTIONS)) || warn "POOL_SIZE $POOL_SIZE < CONNECTIONS $CONNECTIONS: keep-alive requests will queue for a server connection"
{ int_in "$PROXY_CPU" 0 4095 && int_in "$LOAD_CPU" 0 4095; } || die "PROXY_CPU and LOAD_CPU must be CPU numbers"
read -ra SYSTEM_LIST <<<"$SYSTEMS"
read -ra SHAPE_LIST <<<"$SHAPES"
((${#SYSTEM_LIST[@]} && ${#SHAPE_LIST[@]})) || die "SYSTEMS and SHAPES must not be empty"
for s in "${SYSTEM_LIST[@]}"; do
    [[ $s =~ ^(edgeproxy|edgeproxy_uring|haproxy|nginx)$ ]] || die "unknown system '$s' (edgeproxy, edgeproxy_uring, haproxy, nginx)"
done
for s in "${SHAPE_LIST[@]}"; do
    [[ $s =~ ^(KA|CLOSE|1M)$ ]] || die "unknown shape '$s' (KA, CLOSE, 1M)"
done
has_system() { [[ " ${SYSTEM_LIST[*]} " == *" $1 "* ]]; }
for tool in wrk nginx curl python3 taskset timeout; do
    command -v "$tool" >/dev/null || die "$tool is missing (scripts/install-deps.sh --bench)"
done
! has_system haproxy || command -v haproxy >/dev/null || die "haproxy is missing (scripts/install-deps.sh --bench)"

TMP_DIR=$(mktemp -d "${TMPDIR:-/tmp}/edgeproxy-bench-http.XXXXXX")
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
chmod 711 "$TMP_DIR"  # nginx workers run as another user when started as root
mkdir -p "$RESULTS_DIR/logs" "$RESULTS_DIR/raw"
: >"$RESULTS_DIR/commands.txt"
: >"$RESULTS_DIR/runs.tsv"
: >"$RESULTS_DIR/notes.tsv"
ulimit -Sn "$(ulimit -Hn)" 2>/dev/null || true
NOFILE=$(ulimit -Sn)
CLK_TCK=$(getconf CLK_TCK)
note() { printf '%s\n' "$*" >>"$RESULTS_DIR/notes.tsv"; warn "$*"; }

# tree_ticks PID : utime + stime of PID and its children (nginx's worker), in ticks
tree_ticks() {
    local -a kids=()
    read -ra kids <<<"$(children_of "$1" | tr '\n' ' ')"
    proc_ticks "$1" "${kids[@]}" 2>/dev/null || proc_ticks "$1"
}

# ---------------------------------------------------------------- the origin
ORIGIN_PORT=$(free_port)
mkdir -p "$TMP_DIR/origin/tmp" "$TMP_DIR/origin/html"
chmod 711 "$TMP_DIR/origin"
printf 'ok\n' >"$TMP_DIR/origin/html/index.html"
head -c 1048576 /dev/urandom >"$TMP_DIR/origin/html/1m.bin"
chmod -R a+rX "$TMP_DIR/origin/html"
fill_template "$BENCH_DIR/nginx-backend.conf.in" "$TMP_DIR/origin/nginx.conf" \
    "PREFIX=$TMP_DIR/origin" "PORT=$ORIGIN_PORT" "WORKERS=1" "NOFILE=$NOFILE"
cp -- "$TMP_DIR/origin/nginx.conf" "$RESULTS_DIR/logs/nginx-origin.conf"
spawn nginx-origin "$LOAD_CPU" nginx -p "$TMP_DIR/origin" -c "$TMP_DIR/origin/nginx.conf"
wait_ready nginx-origin "$SPAWNED_PID" "$ORIGIN_PORT" || die "nginx origin: $SYS_ERROR"

# ---------------------------------------------------------------- the proxies
declare -A PORT=() PID=() LABEL=() SKIP=()
printf '%s\t%s\n' timestamp "$TS" >"$RESULTS_DIR/meta.tsv"

start_edgeproxy() {  # start_edgeproxy SYSTEM BIN
    local s=$1 bin=$2 port conf=$TMP_DIR/$1.conf copy=$TMP_DIR/$1.bin
    [[ -x $bin ]] || die "edgeproxy binary not found: $bin (nice -n 10 make release-for-test [BACKEND=uring])"
    cp -- "$bin" "$copy"
    printf 'env.%s\t%s\n' "$s" "$("$copy" --version 2>&1 | head -n 1), sha256 $(sha256sum "$bin" | cut -c1-12)" \
        >>"$RESULTS_DIR/meta.tsv"
    port=$(free_port)
    fill_template "$CONFIG_DIR/http-edgeproxy.conf.in" "$conf" "PORT=$port" "ORIGIN_PORT=$ORIGIN_PORT" "POOL_SIZE=$POOL_SIZE" \
        "LISTENER_EXTRA=$EP_DEFER"
    cp -- "$conf" "$RESULTS_DIR/logs/$s.conf"
    if ! "$copy" -t -c "$conf" >"$RESULTS_DIR/logs/$s.check.log" 2>&1; then
        SKIP[$s]="this build refuses bench/configs/http-edgeproxy.conf.in (\`edgeproxy -t -c\`: $(tail -n 1 "$RESULTS_DIR/logs/$s.check.log" | sed "s|$TMP_DIR/||g; s|^edgeproxy: ||"))"
        return 0
    fi
    spawn "$s" "$PROXY_CPU" "$copy" -c "$conf" -q --max-connections 20000
    PORT[$s]=$port; PID[$s]=$SPAWNED_PID
    wait_ready "$s" "$SPAWNED_PID" "$port" || die "$s: $SYS_ERROR"
}

start_haproxy() {
    local port cfg=$TMP_DIR/haproxy.cfg extra=""
    port=$(free_port)
    # maxconn 20000 wants ~40k fds; below that HAProxy >= 2.3 must be told not to be strict
    ((NOFILE >= 40100)) || extra="    no strict-limits"
    fill_template "$CONFIG_DIR/http-haproxy.cfg.in" "$cfg" "PORT=$port" "ORIGIN_PORT=$ORIGIN_PORT" \
        "ULIMIT_N=$NOFILE" "EXTRA_GLOBAL=$extra" "BIND_OPTIONS=$HAPROXY_DEFER"
    cp -- "$cfg" "$RESULTS_DIR/logs/haproxy.cfg"
    haproxy -c -f "$cfg" >"$RESULTS_DIR/logs/haproxy.check.log" 2>&1 ||
        die "HAProxy refuses its configuration (logs/haproxy.cfg, logs/haproxy.check.log)"
    spawn haproxy "$PROXY_CPU" haproxy -f "$cfg" -db
    PORT[haproxy]=$port; PID[haproxy]=$SPAWNED_PID
    wait_ready haproxy "$SPAWNED_PID" "$port" || die "haproxy: $SYS_ERROR"
}

start_nginx() {
    local port dir=$TMP_DIR/nginx-proxy
    port=$(free_port)
    mkdir -p "$dir/tmp"
    chmod 711 "$dir"
    fill_template "$CONFIG_DIR/http-nginx.conf.in" "$dir/nginx.conf" "PREFIX=$dir" "PORT=$port" \
        "ORIGIN_PORT=$ORIGIN_PORT" "NOFILE=$NOFILE" "KEEPALIVE=$POOL_SIZE" \
        "LISTEN_OPTIONS=$NGINX_DEFER"
    cp -- "$dir/nginx.conf" "$RESULTS_DIR/logs/nginx.conf"
    spawn nginx "$PROXY_CPU" nginx -p "$dir" -c "$dir/nginx.conf" -e "$RESULTS_DIR/logs/nginx.error.log"
    PORT[nginx]=$port; PID[nginx]=$SPAWNED_PID
    wait_ready nginx "$SPAWNED_PID" "$port" || die "nginx: $SYS_ERROR"
}

for s in "${SYSTEM_LIST[@]}"; do
    case $s in
        edgeproxy) start_edgeproxy "$s" "$EDGEPROXY_BIN"; LABEL[$s]="edgeproxy http (epoll)" ;;
        edgeproxy_uring) start_edgeproxy "$s" "$EDGEPROXY_URING_BIN"; LABEL[$s]="edgeproxy http (io_uring)" ;;
        haproxy) start_haproxy; LABEL[$s]="HAProxy $(haproxy -v 2>&1 | awk '{print $3; exit}') http" ;;
        nginx) start_nginx; LABEL[$s]="nginx $(nginx -v 2>&1 | sed 's|.*/||') proxy_pass" ;;
    esac
    [[ -z ${SKIP[$s]:-} ]] || note "${LABEL[$s]} skipped: ${SKIP[$s]}"
done
for s in "${SYSTEM_LIST[@]}"; do printf '%s\t%s\n' "$s" "${LABEL[$s]}"; done >"$RESULTS_DIR/systems.tsv"

# A first exchange through each proxy: "ok\n" at / and the 1 MiB file at /1m, byte for byte.
# A peer that fails stops the run; an edgeproxy that fails is left out with a note.
path_of() { case $1 in 1M) echo /1m ;; *) echo / ;; esac; }
LIVE=()
for s in "${SYSTEM_LIST[@]}"; do
    [[ -z ${SKIP[$s]:-} ]] || continue
    why=""
    for p in / /1m; do
        want=$TMP_DIR/origin/html/index.html; [[ $p == / ]] || want=$TMP_DIR/origin/html/1m.bin
        if ! timeout 10 curl -sS --max-time 5 -o "$TMP_DIR/probe.out" "http://127.0.0.1:${PORT[$s]}$p" \
            2>"$TMP_DIR/probe.err" || ! cmp -s "$TMP_DIR/probe.out" "$want"; then
            why="GET $p did not return the origin's bytes ($(head -c 200 "$TMP_DIR/probe.err" "$TMP_DIR/probe.out" | tr -c '[:print:]' ' '))"
            break
        fi
    done
    if [[ -n $why ]]; then
        [[ $s == edgeproxy* ]] || die "${LABEL[$s]}: $why"
        note "${LABEL[$s]} skipped: $why"
        continue
    fi
    LIVE+=("$s")
done
CELLS=()
for shape in "${SHAPE_LIST[@]}"; do
    for s in "${LIVE[@]}"; do CELLS+=("$shape:$s"); done
done
((${#CELLS[@]})) || die "no cell left to measure"

{
    printf 'proxy_cpu\t%s\nload_cpu\t%s\nclk_tck\t%s\n' "$PROXY_CPU" "$LOAD_CPU" "$CLK_TCK"
    printf 'rounds\t%s\nduration\t%s\n' "$ROUNDS" "$DURATION"
    printf 'command\t%s\n' "ROUNDS=$ROUNDS DURATION=$DURATION WARMUP=$WARMUP CONNECTIONS=$CONNECTIONS W3_CONNECTIONS=$W3_CONNECTIONS POOL_SIZE=$POOL_SIZE DEFER_ACCEPT=$DEFER_ACCEPT SYSTEMS=\"$SYSTEMS\" SHAPES=\"$SHAPES\" PROXY_CPU=$PROXY_CPU LOAD_CPU=$LOAD_CPU scripts/bench-http.sh"
    printf 'desc.KA\t%s\n' "\`wrk -t1 -c$CONNECTIONS -d${DURATION}s --latency http://127.0.0.1:PROXY/\` (keep-alive clients, W1's shape; a 3-byte body)"
    printf 'desc.CLOSE\t%s\n' "the same with \`-H 'Connection: close'\` (a connection per request, W2's shape; every proxy keeps its origin connections)"
    printf 'desc.1M\t%s\n' "\`wrk -t1 -c$W3_CONNECTIONS -d${DURATION}s --latency http://127.0.0.1:PROXY/1m\` (1 MiB responses, W3's shape)"
    printf 'desc\t%s\n' "Every proxy on CPU $PROXY_CPU (one worker / thread) forwards to one nginx origin (1 worker) on CPU $LOAD_CPU with wrk. $ROUNDS rounds of ${DURATION} s; every round runs each cell once, starting one cell later than the round before."
    printf 'env.kernel\t%s\n' "$(uname -srm)"
    printf 'env.CPU\t%s\n' "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
    printf 'env.load average at start\t%s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
    printf 'env.wrk\t%s\n' "$(wrk -v 2>&1 | head -n 1 || true)"
    printf 'env.nginx\t%s\n' "$(nginx -v 2>&1 | head -n 1)"
    ! has_system haproxy || printf 'env.haproxy\t%s\n' "$(haproxy -v 2>&1 | head -n 1)"
    printf 'env.repo\t%s\n' "$REPO_ROOT @ $(git -C "$REPO_ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')"
} >>"$RESULTS_DIR/meta.tsv"

# measure SHAPE SYSTEM SECONDS OUT : one wrk run; prints the proxy's CPU ticks over it
measure() {
    local shape=$1 s=$2 secs=$3 out=$4 t0 t1 c=$CONNECTIONS
    local -a hdr=()
    [[ $shape != CLOSE ]] || hdr=(-H "Connection: close")
    [[ $shape != 1M ]] || c=$W3_CONNECTIONS
    t0=$(tree_ticks "${PID[$s]}")
    timeout $((secs + 15)) taskset -c "$LOAD_CPU" wrk -t1 "-c$c" "-d${secs}s" --latency "${hdr[@]}" \
        "http://127.0.0.1:${PORT[$s]}$(path_of "$shape")" >"$out" 2>&1 || true
    t1=$(tree_ticks "${PID[$s]}")
    echo $((t1 - t0))
}
printf '$ %s\n' "wrk -t1 -c$CONNECTIONS -d${DURATION}s --latency [-H 'Connection: close'] http://127.0.0.1:PROXY/" \
    "wrk -t1 -c$W3_CONNECTIONS -d${DURATION}s --latency http://127.0.0.1:PROXY/1m" >>"$RESULTS_DIR/commands.txt"

log "load average $(cut -d' ' -f1-3 /proc/loadavg); proxies on CPU $PROXY_CPU, the origin and wrk on CPU $LOAD_CPU; ${#CELLS[@]} cells"
if ((WARMUP > 0)); then
    for cell in "${CELLS[@]}"; do
        measure "${cell%%:*}" "${cell#*:}" "$WARMUP" "$RESULTS_DIR/raw/warmup-${cell/:/-}.txt" >/dev/null
    done
fi
n=${#CELLS[@]}
for round in $(seq "$ROUNDS"); do
    for i in $(seq 0 $((n - 1))); do
        cell=${CELLS[$(((i + round - 1) % n))]}
        shape=${cell%%:*} s=${cell#*:}
        kill -0 "${PID[$s]}" 2>/dev/null || die "$s exited (logs/$s.log)"
        raw=raw/round$round-$shape-$s.txt
        ticks=$(measure "$shape" "$s" "$DURATION" "$RESULTS_DIR/$raw")
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$shape" "$s" "$ticks" "$DURATION" "$raw" "$(loadavg1)" >>"$RESULTS_DIR/runs.tsv"
    done
    log "round $round/$ROUNDS done (load $(loadavg1))"
done
printf 'env.load average at end\t%s\n' "$(cut -d' ' -f1-3 /proc/loadavg)" >>"$RESULTS_DIR/meta.tsv"

python3 "$REPORTER" "$RESULTS_DIR" || die "http_report.py failed"
cat "$RESULTS_DIR/report.md"
log "results: $RESULTS_DIR"

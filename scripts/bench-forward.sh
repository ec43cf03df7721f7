#!/usr/bin/env bash
# Issue 12: edgeproxy's forward proxy (mode forward) side by side with tinyproxy and squid, and
# with edgeproxy's plain TCP mode as the reference. Every proxy asks for Basic credentials
# (edgeproxy: a users file of SHA-256-crypt hashes; tinyproxy: BasicAuth; squid: basic_ncsa_auth
# on an htpasswd-style file holding the same hash) and forwards to one local nginx origin serving
# a small index.html. Shapes (SHAPES):
#   A-origin    wrk -t1 -cN --latency -H "Proxy-Authorization: Basic ..." http://PROXY/index.html
#               the seed's command: origin-form requests on keep-alive connections. Only
#               edgeproxy forward (sent to its `backend`) and edgeproxy TCP mode take these:
#               tinyproxy and squid answer origin-form requests with 400.
#   A-absolute  the same with absolute-form request lines (GET http://127.0.0.1:ORIGIN/index.html,
#               a wrk Lua script: scripts/bench/absolute-form.lua): what a client configured to use
#               a proxy sends, so every proxy gets the same requests. (TCP mode relays them to
#               nginx, which takes absolute-form too.)
#   B-connect   a new CONNECT tunnel per connection and one request in it
#               (scripts/bench/connect-load.c, compiled at start with cc): connect, CONNECT
#               127.0.0.1:ORIGIN with credentials, read the 200, GET /index.html with "Connection:
#               close" through the tunnel, read to EOF, close. TCP mode (no CONNECT) gets the same
#               GET straight away: the cost of relaying one connection, as a reference.
# Cells (shape x system) are interleaved round by round (each round starts one cell later); the
# report gives each cell's median rate, proxy CPU µs per request (per connection in B) and p99,
# and per-round ratios of edgeproxy forward to the others, with the issue's targets as pass/fail
# lines. The edgeproxy forward cells are skipped, with a note, when `edgeproxy -t -c FILE`
# refuses bench/configs/forward.conf.in (a build without mode forward).
#
#   scripts/bench-forward.sh
#   ROUNDS=3 DURATION=2 scripts/bench-forward.sh                          # a quick look
#   SYSTEMS="edgeproxy_fwd squid" SHAPES="B-connect" scripts/bench-forward.sh
#
# Knobs (environment variables, defaults in brackets):
#   ROUNDS [10] DURATION [3]  rounds; seconds per run (every cell runs once per round)
#   WARMUP [1]                seconds of unrecorded load per cell before the first round
#   CONNECTIONS [100]         wrk -t1 -cN in A
#   TUNNELS [50]              connections in flight in B
#   MAX_TUNNELS [1000000]     B: at most this many connections per run
#   SYSTEMS ["edgeproxy_fwd edgeproxy_tcp tinyproxy squid"]
#   SHAPES ["A-origin A-absolute B-connect"]
#   PROXY_CPU [0] LOAD_CPU [1]  the proxy on one CPU; wrk / connect-load and nginx (1 worker) on
#                             the other
#   EDGEPROXY_BIN [build/release/edgeproxy]  copied at start, so a rebuild during the run cannot
#                             mix builds
#   RESULTS_DIR [bench-results/forward-<UTC timestamp>]
# Output in RESULTS_DIR: report.md, runs.csv (scripts/bench.sh's columns, workload = the shape),
# runs.tsv, raw/ (wrk and connect-load output), logs/ (configs, process logs), commands.txt,
# notes.tsv. Proxy CPU: utime + stime from /proc/PID/stat (every thread, also the ones that
# ended: tinyproxy runs one per connection) of the proxy and its children (squid's helper), before
# and after each run. Each run is bounded (under timeout; connect-load also by count and a 5 s
# per-connection limit); squid and tinyproxy run in the foreground as the current user (squid:
# as "proxy" when started as root) with their own config, pid and log files in a temporary
# folder; stops only the processes it started, by PID, also on failure.
set -euo pipefail

SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd -- "$SCRIPT_DIR/.." && pwd)
BENCH_DIR=$SCRIPT_DIR/bench
CONFIG_DIR=$REPO_ROOT/bench/configs
# shellcheck disable=SC2034 # lib.sh's free_port runs it
HELPER=$BENCH_DIR/idle.py
REPORTER=$BENCH_DIR/forward_report.py
# shellcheck source-path=SCRIPTDIR source=bench/lib.sh
source "$BENCH_DIR/lib.sh"
[[ $# -eq 0 ]] || { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 2; }

ROUNDS=${ROUNDS:-10}
DURATION=${DURATION:-3}
WARMUP=${WARMUP:-1}
CONNECTIONS=${CONNECTIONS:-100}
TUNNELS=${TUNNELS:-50}
MAX_TUNNELS=${MAX_TUNNELS:-1000000}
SYSTEMS=${SYSTEMS:-edgeproxy_fwd edgeproxy_tcp tinyproxy squid}
SHAPES=${SHAPES:-A-origin A-absolute B-connect}
PROXY_CPU=${PROXY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
EDGEPROXY_BIN=${EDGEPROXY_BIN:-$REPO_ROOT/build/release/edgeproxy}
TS=$(date -u +%Y%m%dT%H%M%SZ)
RESULTS_DIR=${RESULTS_DIR:-$REPO_ROOT/bench-results/forward-$TS}

int_in "$ROUNDS" 1 100 || die "ROUNDS must be in 1..100"
int_in "$DURATION" 1 60 || die "DURATION must be in 1..60 seconds"
int_in "$WARMUP" 0 30 || die "WARMUP must be in 0..30 seconds"
int_in "$CONNECTIONS" 1 1000 || die "CONNECTIONS must be in 1..1000"
int_in "$TUNNELS" 1 1000 || die "TUNNELS must be in 1..1000"
int_in "$MAX_TUNNELS" 1 10000000 || die "MAX_TUNNELS must be in 1..10000000"
{ int_in "$PROXY_CPU" 0 4095 && int_in "$LOAD_CPU" 0 4095; } || die "PROXY_CPU and LOAD_CPU must be CPU numbers"
read -ra SYSTEM_LIST <<<"$SYSTEMS"
read -ra SHAPE_LIST <<<"$SHAPES"
((${#SYSTEM_LIST[@]} && ${#SHAPE_LIST[@]})) || die "SYSTEMS and SHAPES must not be empty"
for s in "${SYSTEM_LIST[@]}"; do
    [[ $s =~ ^(edgeproxy_fwd|edgeproxy_tcp|tinyproxy|squid)$ ]] ||
        die "unknown system '$s' (edgeproxy_fwd, edgeproxy_tcp, tinyproxy, squid)"
done
for s in "${SHAPE_LIST[@]}"; do
    [[ $s =~ ^(A-origin|A-absolute|B-connect)$ ]] || die "unknown shape '$s' (A-origin, A-absolute, B-connect)"
done
has_system() { [[ " ${SYSTEM_LIST[*]} " == *" $1 "* ]]; }
has_shape() { [[ " ${SHAPE_LIST[*]} " == *" $1 "* ]]; }
for tool in wrk nginx openssl python3 taskset timeout base64; do
    command -v "$tool" >/dev/null || die "$tool is missing (scripts/install-deps.sh --bench)"
done
! has_system tinyproxy || command -v tinyproxy >/dev/null || die "tinyproxy is missing (scripts/install-deps.sh --bench)"
SQUID_HELPER=""
if has_system squid; then
    command -v squid >/dev/null || die "squid is missing (scripts/install-deps.sh --bench)"
    for h in /usr/lib/squid/basic_ncsa_auth /usr/lib64/squid/basic_ncsa_auth /usr/libexec/squid/basic_ncsa_auth; do
        [[ -x $h ]] && { SQUID_HELPER=$h; break; }
    done
    [[ -n $SQUID_HELPER ]] || die "squid's basic_ncsa_auth helper not found"
fi
if has_shape B-connect; then
    CC=${CC:-cc}
    command -v "$CC" >/dev/null || die "no C compiler ($CC) for scripts/bench/connect-load.c (scripts/install-deps.sh)"
fi

TMP_DIR=$(mktemp -d "${TMPDIR:-/tmp}/edgeproxy-bench-forward.XXXXXX")
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
# nginx workers (and squid, below) run as another user when started as root: let them in
chmod 711 "$TMP_DIR"
mkdir -p "$RESULTS_DIR/logs" "$RESULTS_DIR/raw"
: >"$RESULTS_DIR/commands.txt"
: >"$RESULTS_DIR/runs.tsv"
: >"$RESULTS_DIR/notes.tsv"
CLK_TCK=$(getconf CLK_TCK)
note() { printf '%s\n' "$*" >>"$RESULTS_DIR/notes.tsv"; warn "$*"; }

# tree_ticks PID : utime + stime of PID and its children (squid's auth helper), in ticks
tree_ticks() {
    local -a kids=()
    read -ra kids <<<"$(children_of "$1" | tr '\n' ' ')"
    proc_ticks "$1" "${kids[@]}" 2>/dev/null || proc_ticks "$1"
}

# ---------------------------------------------------------------- credentials
AUTH_USER=bench
AUTH_PASSWORD=$(openssl rand -hex 8)
AUTH_B64=$(printf '%s:%s' "$AUTH_USER" "$AUTH_PASSWORD" | base64 -w0)
printf '%s:%s\n' "$AUTH_USER" "$(openssl passwd -5 -salt "$(openssl rand -hex 4)" "$AUTH_PASSWORD")" >"$TMP_DIR/users"
chmod 644 "$TMP_DIR/users"

# ---------------------------------------------------------------- the origin
ORIGIN_PORT=$(free_port)
mkdir -p "$TMP_DIR/origin/html"
cat >"$TMP_DIR/origin/html/index.html" <<'EOF'
<!DOCTYPE html>
<html>
<head><title>edgeproxy forward benchmark</title></head>
<body><p>A small page for scripts/bench-forward.sh.</p></body>
</html>
EOF
chmod -R a+rX "$TMP_DIR/origin"
PAGE_BYTES=$(wc -c <"$TMP_DIR/origin/html/index.html")
cat >"$TMP_DIR/origin/nginx.conf" <<EOF
daemon off;
master_process on;
worker_processes 1;
pid $TMP_DIR/origin/nginx.pid;
error_log $RESULTS_DIR/logs/nginx-origin.error.log warn;
events { worker_connections 4096; multi_accept on; }
http {
    access_log off;
    server_tokens off;
    keepalive_requests 100000000;
    keepalive_timeout 300s;
    client_body_temp_path $TMP_DIR/origin/body;
    server {
        listen 127.0.0.1:$ORIGIN_PORT backlog=4096;
        root $TMP_DIR/origin/html;
    }
}
EOF
cp -- "$TMP_DIR/origin/nginx.conf" "$RESULTS_DIR/logs/nginx-origin.conf"
spawn nginx-origin "$LOAD_CPU" nginx -p "$TMP_DIR/origin" -c "$TMP_DIR/origin/nginx.conf" \
    -e "$RESULTS_DIR/logs/nginx-origin.error.log"
NGINX_PID=$SPAWNED_PID
wait_ready nginx-origin "$NGINX_PID" "$ORIGIN_PORT" || die "nginx origin: $SYS_ERROR"

# ---------------------------------------------------------------- the load generator for B
CONNECT_LOAD=""
if has_shape B-connect; then
    CONNECT_LOAD=$TMP_DIR/connect-load
    "$CC" -O2 -std=c99 -Wall -o "$CONNECT_LOAD" "$BENCH_DIR/connect-load.c" >"$RESULTS_DIR/logs/connect-load.cc.log" 2>&1 ||
        die "could not compile scripts/bench/connect-load.c (logs/connect-load.cc.log)"
fi

# ---------------------------------------------------------------- the proxies
declare -A PORT=() PID=() LABEL=() SKIP=()
printf '%s\t%s\n' timestamp "$TS" >"$RESULTS_DIR/meta.tsv"

EP_BIN=""
if has_system edgeproxy_fwd || has_system edgeproxy_tcp; then
    [[ -x $EDGEPROXY_BIN ]] || die "edgeproxy binary not found: $EDGEPROXY_BIN (make release JOBS=1)"
    EP_BIN=$TMP_DIR/edgeproxy
    cp -- "$EDGEPROXY_BIN" "$EP_BIN"
    printf 'env.edgeproxy\t%s\n' "$("$EP_BIN" --version 2>&1 | head -n 1), sha256 $(sha256sum "$EDGEPROXY_BIN" | cut -c1-12)" \
        >>"$RESULTS_DIR/meta.tsv"
fi

start_edgeproxy() {  # start_edgeproxy SYSTEM TEMPLATE
    local s=$1 port conf=$TMP_DIR/$1.conf
    port=$(free_port)
    fill_template "$CONFIG_DIR/$2" "$conf" "PORT=$port" "ORIGIN_PORT=$ORIGIN_PORT" "USERS=$TMP_DIR/users"
    cp -- "$conf" "$RESULTS_DIR/logs/$s.conf"
    if ! "$EP_BIN" -t -c "$conf" >"$RESULTS_DIR/logs/$s.check.log" 2>&1; then
        SKIP[$s]="this build refuses bench/configs/$2 (\`edgeproxy -t -c\`: $(tail -n 1 "$RESULTS_DIR/logs/$s.check.log" | sed "s|$TMP_DIR/||g; s|^edgeproxy: ||"))"
        return 0
    fi
    spawn "$s" "$PROXY_CPU" "$EP_BIN" -c "$conf" -q --max-connections 4096
    PORT[$s]=$port; PID[$s]=$SPAWNED_PID
    wait_ready "$s" "$SPAWNED_PID" "$port" || die "$s: $SYS_ERROR"
}

start_tinyproxy() {
    local dir=$TMP_DIR/tinyproxy port
    port=$(free_port)
    mkdir -p "$dir"
    fill_template "$CONFIG_DIR/forward-tinyproxy.conf.in" "$dir/tinyproxy.conf" "PORT=$port" "DIR=$dir" \
        "ORIGIN_PORT=$ORIGIN_PORT" "AUTH_USER=$AUTH_USER" "AUTH_PASSWORD=$AUTH_PASSWORD" "USER_LINE="
    sed "s/^BasicAuth .*/BasicAuth $AUTH_USER (the run's password)/" "$dir/tinyproxy.conf" >"$RESULTS_DIR/logs/tinyproxy.conf"
    spawn tinyproxy "$PROXY_CPU" tinyproxy -d -c "$dir/tinyproxy.conf"
    PORT[tinyproxy]=$port; PID[tinyproxy]=$SPAWNED_PID
    wait_ready tinyproxy "$SPAWNED_PID" "$port" || die "tinyproxy: $SYS_ERROR"
}

start_squid() {
    local dir=$TMP_DIR/squid port user_line=""
    port=$(free_port)
    mkdir -p "$dir"
    cp -- "$TMP_DIR/users" "$dir/passwd"
    if (($(id -u) == 0)); then
        # squid will not keep root: it switches to cache_effective_user, which must own its files
        local u=proxy
        id "$u" >/dev/null 2>&1 || u=nobody
        user_line="cache_effective_user $u"
        chown -R "$u" "$dir"
    fi
    fill_template "$CONFIG_DIR/forward-squid.conf.in" "$dir/squid.conf" "PORT=$port" "DIR=$dir" \
        "ORIGIN_PORT=$ORIGIN_PORT" "HELPER=$SQUID_HELPER" "USER_LINE=$user_line"
    cp -- "$dir/squid.conf" "$RESULTS_DIR/logs/squid.conf"
    squid -k parse -f "$dir/squid.conf" >"$RESULTS_DIR/logs/squid.check.log" 2>&1 ||
        die "squid refuses its configuration (logs/squid.conf, logs/squid.check.log)"
    spawn squid "$PROXY_CPU" squid -N -f "$dir/squid.conf"
    PORT[squid]=$port; PID[squid]=$SPAWNED_PID
    wait_ready squid "$SPAWNED_PID" "$port" || { cp -- "$dir/cache.log" "$RESULTS_DIR/logs/squid.cache.log" 2>/dev/null; die "squid: $SYS_ERROR"; }
}

for s in "${SYSTEM_LIST[@]}"; do
    case $s in
        edgeproxy_fwd) start_edgeproxy "$s" forward.conf.in; LABEL[$s]="edgeproxy forward" ;;
        edgeproxy_tcp) start_edgeproxy "$s" forward-tcp.conf.in; LABEL[$s]="edgeproxy TCP mode" ;;
        tinyproxy) start_tinyproxy; LABEL[$s]="tinyproxy $(tinyproxy -v 2>&1 | awk '{print $2; exit}')" ;;
        squid) start_squid; LABEL[$s]="squid $(squid -v 2>&1 | awk '/Version/ {print $NF; exit}')" ;;
    esac
    [[ -z ${SKIP[$s]:-} ]] || note "${LABEL[$s]} skipped: ${SKIP[$s]}"
done
for s in "${SYSTEM_LIST[@]}"; do printf '%s\t%s\n' "$s" "${LABEL[$s]}"; done >"$RESULTS_DIR/systems.tsv"

# The cells: every shape a system takes. tinyproxy and squid answer origin-form with 400.
CELLS=()
for shape in "${SHAPE_LIST[@]}"; do
    for s in "${SYSTEM_LIST[@]}"; do
        [[ -z ${SKIP[$s]:-} ]] || continue
        [[ $shape != A-origin || $s == edgeproxy_* ]] || continue
        CELLS+=("$shape:$s")
    done
done
((${#CELLS[@]})) || die "no cell left to measure"

# A first exchange in each cell: the proxy answers 200 with the page, and refuses a request
# without credentials (407); the TCP mode is only checked to pass the request. A peer that fails
# stops the run; an edgeproxy forward cell that fails is left out with a note (the mode is new:
# the other cells still say something).
PROBED=()
for cell in "${CELLS[@]}"; do
    shape=${cell%%:*} s=${cell#*:}
    probe=$shape; [[ $s != edgeproxy_tcp ]] || probe=$shape-tcp
    plog=logs/probe-$shape-$s.log
    if ! python3 "$REPORTER" --probe "$probe" "${PORT[$s]}" "$ORIGIN_PORT" "$AUTH_B64" >"$RESULTS_DIR/$plog" 2>&1; then
        why="$(tail -n 1 "$RESULTS_DIR/$plog") ($plog)"
        [[ $s == edgeproxy_fwd ]] || die "${LABEL[$s]} does not pass $shape as expected: $why"
        note "${LABEL[$s]}, $shape skipped: the first exchange failed: $why"
        continue
    fi
    PROBED+=("$cell")
done
CELLS=("${PROBED[@]}")
((${#CELLS[@]})) || die "no cell left to measure"

{
    printf 'proxy_cpu\t%s\nload_cpu\t%s\nclk_tck\t%s\n' "$PROXY_CPU" "$LOAD_CPU" "$CLK_TCK"
    printf 'rounds\t%s\nduration\t%s\n' "$ROUNDS" "$DURATION"
    printf 'command\t%s\n' "ROUNDS=$ROUNDS DURATION=$DURATION WARMUP=$WARMUP CONNECTIONS=$CONNECTIONS TUNNELS=$TUNNELS SYSTEMS=\"$SYSTEMS\" SHAPES=\"$SHAPES\" PROXY_CPU=$PROXY_CPU LOAD_CPU=$LOAD_CPU scripts/bench-forward.sh"
    printf 'desc.A-origin\t%s\n' "\`wrk -t1 -c$CONNECTIONS -d${DURATION}s --latency -H 'Proxy-Authorization: Basic ...' http://127.0.0.1:PROXY/index.html\` (the seed's command: origin-form requests, keep-alive; edgeproxy forward sends them to its backend)"
    printf 'desc.A-absolute\t%s\n' "the same with \`-s scripts/bench/absolute-form.lua ... -- http://127.0.0.1:$ORIGIN_PORT/index.html\`: absolute-form request lines (GET http://127.0.0.1:$ORIGIN_PORT/index.html), what a client configured to use a proxy sends"
    printf 'desc.B-connect\t%s\n' "scripts/bench/connect-load.c, $TUNNELS connections in flight: each one connects, sends CONNECT 127.0.0.1:$ORIGIN_PORT with credentials, reads the 200, sends GET /index.html with Connection: close in the tunnel, reads to EOF and closes (edgeproxy TCP mode: the GET without CONNECT). Latency: connect() to EOF"
    printf 'desc\t%s\n' "Every proxy on CPU $PROXY_CPU asks for Basic credentials and forwards to one nginx origin (1 worker, a $PAGE_BYTES-byte index.html) on CPU $LOAD_CPU with the load generator. $ROUNDS rounds of ${DURATION} s; every round runs each cell once, starting one cell later than the round before."
    printf 'env.kernel\t%s\n' "$(uname -srm)"
    printf 'env.CPU\t%s\n' "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
    printf 'env.load average at start\t%s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
    printf 'env.wrk\t%s\n' "$(wrk -v 2>&1 | head -n 1 || true)"
    printf 'env.nginx\t%s\n' "$(nginx -v 2>&1 | head -n 1)"
    ! has_system tinyproxy || printf 'env.tinyproxy\t%s\n' "$(tinyproxy -v 2>&1 | head -n 1)"
    ! has_system squid || printf 'env.squid\t%s\n' "$(squid -v 2>&1 | head -n 1)"
    [[ -z $CONNECT_LOAD ]] || printf 'env.cc\t%s\n' "$("$CC" --version 2>&1 | head -n 1)"
    printf 'env.repo\t%s\n' "$REPO_ROOT @ $(git -C "$REPO_ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')"
} >>"$RESULTS_DIR/meta.tsv"

# measure SHAPE SYSTEM SECONDS OUT : one run; prints the proxy's CPU ticks over it
measure() {
    local shape=$1 s=$2 secs=$3 out=$4 t0 t1
    local -a cmd
    case $shape in
        A-origin)
            cmd=(wrk -t1 -c"$CONNECTIONS" -d"${secs}s" --latency -H "Proxy-Authorization: Basic $AUTH_B64"
                "http://127.0.0.1:${PORT[$s]}/index.html") ;;
        A-absolute)
            cmd=(wrk -t1 -c"$CONNECTIONS" -d"${secs}s" --latency -H "Proxy-Authorization: Basic $AUTH_B64"
                -s "$BENCH_DIR/absolute-form.lua" "http://127.0.0.1:${PORT[$s]}/"
                -- "http://127.0.0.1:$ORIGIN_PORT/index.html") ;;
        B-connect)
            cmd=("$CONNECT_LOAD" -p "${PORT[$s]}" -t "127.0.0.1:$ORIGIN_PORT" -a "$AUTH_B64" -c "$TUNNELS"
                -d "$secs" -n "$MAX_TUNNELS" -u /index.html -T 5000)
            [[ $s != edgeproxy_tcp ]] || cmd+=(-D) ;;
    esac
    t0=$(tree_ticks "${PID[$s]}")
    timeout $((secs + 15)) taskset -c "$LOAD_CPU" "${cmd[@]}" >"$out" 2>&1 || true
    t1=$(tree_ticks "${PID[$s]}")
    echo $((t1 - t0))
}
printf '$ %s\n' "wrk -t1 -c$CONNECTIONS -d${DURATION}s --latency -H 'Proxy-Authorization: Basic \$AUTH' [-s scripts/bench/absolute-form.lua] http://127.0.0.1:PROXY/index.html [-- http://127.0.0.1:$ORIGIN_PORT/index.html]" \
    "connect-load -p PROXY -t 127.0.0.1:$ORIGIN_PORT -a \$AUTH -c $TUNNELS -d $DURATION -n $MAX_TUNNELS -u /index.html -T 5000 [-D]" \
    >>"$RESULTS_DIR/commands.txt"

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
        log "round $round $shape $s: $(python3 "$REPORTER" --summary "$RESULTS_DIR/$raw"), proxy $((ticks * 1000 / CLK_TCK)) ms CPU"
    done
done
printf 'env.load average at end\t%s\n' "$(cut -d' ' -f1-3 /proc/loadavg)" >>"$RESULTS_DIR/meta.tsv"

python3 "$REPORTER" "$RESULTS_DIR" || die "forward_report.py failed"
cat "$RESULTS_DIR/report.md"
log "results: $RESULTS_DIR"

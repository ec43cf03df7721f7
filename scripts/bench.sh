#!/usr/bin/env bash
# Side-by-side benchmark: {direct, HAProxy (mode tcp), edgeproxy (epoll),
# edgeproxy (io_uring)} under three workloads:
#   W1    wrk keep-alive HTTP through the proxy to nginx ("ok" body)
#   idle  RSS of the proxy holding IDLE_CONNS idle connections
#   bulk  iperf3 (1 and 4 streams) through the proxy, Gbit/s and CPU ms/GiB
#
#   scripts/bench.sh                 # RUNS=3 DURATION=10, all systems
#   QUICK=1 scripts/bench.sh         # 1 run of 3 s per workload (smoke test)
#   SYSTEMS="direct haproxy" BULK=0 QUICK=1 scripts/bench.sh
#
# Everything runs on 127.0.0.1.  The proxy under test is pinned to PROXY_CPU
# (default 0); wrk, the nginx backend, the iperf3 client and server and the
# idle-connection helper are pinned to LOAD_CPU (default 1).  Runs are
# interleaved (A B C A B C ...) and the report shows medians.  Results
# (report.md, runs.csv, idle.csv, bulk.csv, raw wrk/iperf3 output and process
# logs) go to bench-results/<timestamp>/ under the repository root.
#
# Environment knobs (defaults in brackets):
#   RUNS [3, QUICK: 1]        measured runs per system (median is reported)
#   DURATION [10, QUICK: 3]   seconds per wrk / iperf3 run ("10" or "10s")
#   QUICK [0]                 1 = quick smoke test (changes the two defaults above)
#   WARMUP [2, QUICK: 1]      seconds of unrecorded wrk warm-up per system; 0 = none
#   THREADS [1] CONNECTIONS [100]   wrk -t / -c
#   SYSTEMS ["direct haproxy edgeproxy edgeproxy_uring"]  W1/idle columns, in
#                             order; also available: haproxy_splice (forced
#                             splice both ways), haproxy_splice_auto, nginx_stream
#   BULK [1]                  0 = skip the iperf3 bulk workload
#   BULK_SYSTEMS [SYSTEMS, plus haproxy_splice after haproxy]  bulk table rows
#   EDGEPROXY_BIN [build/release/edgeproxy]              epoll build (make release)
#   EDGEPROXY_URING_BIN [build/release-uring/edgeproxy]  io_uring build
#                             (make release BACKEND=uring); both binaries are
#                             copied at startup so a rebuild during the run
#                             cannot mix versions
#   EDGEPROXY_ARGS []         extra arguments for both edgeproxy builds
#   IDLE_CONNS [10000]        idle connections for the RSS test; 0 = skip it
#   PROXY_CPU [0] LOAD_CPU [1]
#   RESULTS_DIR [bench-results/<UTC timestamp>]
#
# Adding a system (a new column): write sys_<name>_start (and optionally
# sys_<name>_check / sys_<name>_version / sys_<name>_label) following the
# existing ones below, then put <name> in SYSTEMS.
set -euo pipefail

SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd -- "$SCRIPT_DIR/.." && pwd)
BENCH_DIR=$SCRIPT_DIR/bench
HELPER=$BENCH_DIR/idle.py
ORIG_ARGS=("$@")

die() { printf 'bench.sh: error: %s\n' "$*" >&2; exit 1; }
log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
warn() { printf 'bench.sh: warning: %s\n' "$*" >&2; }

if [[ $# -gt 0 ]]; then
    case $1 in
        -h|--help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument '$1' (configuration is via environment variables; see --help)" ;;
    esac
fi

# ---------------------------------------------------------------- parameters
QUICK=${QUICK:-0}
if [[ $QUICK == 1 ]]; then
    RUNS=${RUNS:-1}; DURATION=${DURATION:-3}; WARMUP=${WARMUP:-1}
else
    RUNS=${RUNS:-3}; DURATION=${DURATION:-10}; WARMUP=${WARMUP:-2}
fi
DURATION=${DURATION%s}
WARMUP=${WARMUP%s}
THREADS=${THREADS:-1}
CONNECTIONS=${CONNECTIONS:-100}
SYSTEMS=${SYSTEMS:-direct haproxy edgeproxy edgeproxy_uring}
BULK=${BULK:-1}
EDGEPROXY_BIN=${EDGEPROXY_BIN:-$REPO_ROOT/build/release/edgeproxy}
EDGEPROXY_URING_BIN=${EDGEPROXY_URING_BIN:-$REPO_ROOT/build/release-uring/edgeproxy}
EDGEPROXY_ARGS=${EDGEPROXY_ARGS:-}
IDLE_CONNS=${IDLE_CONNS:-10000}
PROXY_CPU=${PROXY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
TS=$(date -u +%Y%m%dT%H%M%SZ)
RESULTS_DIR=${RESULTS_DIR:-$REPO_ROOT/bench-results/$TS}

for v in RUNS DURATION WARMUP THREADS CONNECTIONS IDLE_CONNS PROXY_CPU LOAD_CPU BULK; do
    [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a non-negative integer (got '${!v}')"
done
((RUNS >= 1 && RUNS <= 100)) || die "RUNS must be in 1..100"
((DURATION >= 1 && DURATION <= 600)) || die "DURATION must be in 1..600 seconds"
((WARMUP <= 60)) || die "WARMUP must be <= 60 seconds"
((IDLE_CONNS <= 20000)) || die "IDLE_CONNS must be <= 20000 (proxies run with --max-connections 20000)"
((BULK <= 1)) || die "BULK must be 0 or 1"
read -ra SYSTEM_LIST <<<"$SYSTEMS"
((${#SYSTEM_LIST[@]} > 0)) || die "SYSTEMS is empty"
if [[ -z ${BULK_SYSTEMS:-} ]]; then
    BULK_SYSTEMS=""
    for s in "${SYSTEM_LIST[@]}"; do
        BULK_SYSTEMS+="$s "
        [[ $s != haproxy || " $SYSTEMS " == *" haproxy_splice "* ]] || BULK_SYSTEMS+="haproxy_splice "
    done
    BULK_SYSTEMS=${BULK_SYSTEMS% }
fi
BULK_LIST=()
((BULK == 0)) || read -ra BULK_LIST <<<"$BULK_SYSTEMS"
((BULK == 0 || ${#BULK_LIST[@]} > 0)) || die "BULK_SYSTEMS is empty (set BULK=0 to skip the bulk workload)"

# ---------------------------------------------------------------- prerequisites
missing=()
for tool in wrk nginx haproxy python3 taskset; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
((BULK == 0)) || command -v iperf3 >/dev/null 2>&1 || missing+=("iperf3 (or BULK=0)")
if ((${#missing[@]})); then
    die "missing required tool(s): ${missing[*]}. Install them with scripts/install-deps.sh --bench (Debian/Ubuntu packages: wrk nginx-light libnginx-mod-stream haproxy iperf3)"
fi
[[ -r $HELPER ]] || die "helper $HELPER not found"

NPROC=$(nproc)
if ((PROXY_CPU >= NPROC || LOAD_CPU >= NPROC)); then
    die "PROXY_CPU=$PROXY_CPU / LOAD_CPU=$LOAD_CPU but only $NPROC CPU(s) are available"
fi
((PROXY_CPU != LOAD_CPU)) || warn "PROXY_CPU == LOAD_CPU: proxy and load generator share a core"
CLK_TCK=$(getconf CLK_TCK)

# RLIMIT_NOFILE: N idle connections need 2N fds (+ a few) in the proxy and N in
# each helper.  Root can normally raise the hard limit; in containers without
# CAP_SYS_RESOURCE it cannot, and IDLE_CONNS is then lowered to what fits.
NOFILE_WANT=65536
NOFILE_SPARE=256   # listeners, epoll, logs, ... in the proxy
IDLE_CONNS_REQUESTED=$IDLE_CONNS
IDLE_NOTE=""
if [[ $(ulimit -Hn) != unlimited ]] && (($(ulimit -Hn) < NOFILE_WANT)); then
    ulimit -Hn "$NOFILE_WANT" 2>/dev/null || prlimit --pid $$ --nofile="$NOFILE_WANT:$NOFILE_WANT" 2>/dev/null || true
fi
ulimit -Sn "$NOFILE_WANT" 2>/dev/null || ulimit -Sn "$(ulimit -Hn)"
NOFILE=$(ulimit -Sn)
[[ $NOFILE != unlimited ]] || NOFILE=$NOFILE_WANT
if ((IDLE_CONNS > 0 && 2 * IDLE_CONNS + NOFILE_SPARE > NOFILE)); then
    IDLE_CONNS=$(((NOFILE - NOFILE_SPARE) / 2 / 500 * 500))
    IDLE_NOTE="RLIMIT_NOFILE is $NOFILE (hard $(ulimit -Hn); raising it failed: no CAP_SYS_RESOURCE?), so the idle test uses $IDLE_CONNS connections instead of $IDLE_CONNS_REQUESTED (the proxy needs 2 fds per connection)"
    warn "$IDLE_NOTE"
    ((IDLE_CONNS > 0)) || die "open-file limit $NOFILE is too low for the idle-connection test (set IDLE_CONNS=0 to skip it)"
fi

# ---------------------------------------------------------------- process bookkeeping
TMP_DIR=$(mktemp -d "${TMPDIR:-/tmp}/edgeproxy-bench.XXXXXX")
STARTED_PIDS=()   # every background process this script started

cleanup() {
    local rc=$? pid i
    trap - EXIT INT TERM
    for pid in "${STARTED_PIDS[@]}"; do
        kill -0 "$pid" 2>/dev/null && kill -TERM "$pid" 2>/dev/null
    done
    for ((i = 0; i < 50; i++)); do  # up to 5 s for a graceful exit
        local any=0
        for pid in "${STARTED_PIDS[@]}"; do
            kill -0 "$pid" 2>/dev/null && any=1
        done
        ((any)) || break
        sleep 0.1
    done
    for pid in "${STARTED_PIDS[@]}"; do
        kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null || true
    done
    rm -rf -- "$TMP_DIR"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# spawn NAME CPU CMD... : start CMD pinned to CPU in the background, output to
# logs/NAME.log.  Sets SPAWNED_PID (taskset execs CMD, so it is CMD's PID).
SPAWNED_PID=
spawn() {
    local name=$1 cpu=$2
    shift 2
    printf '$ %s\n' "$(printf '%q ' taskset -c "$cpu" "$@")" >>"$RESULTS_DIR/commands.txt"
    taskset -c "$cpu" "$@" >"$RESULTS_DIR/logs/$name.log" 2>&1 </dev/null &
    SPAWNED_PID=$!
    STARTED_PIDS+=("$SPAWNED_PID")
}

# stop_pid PID : TERM, wait up to 5 s, then KILL.  Only PIDs we started.
stop_pid() {
    local pid=$1 i
    [[ -n $pid ]] || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null || true
}

free_port() { python3 "$HELPER" freeport; }

# wait_ready NAME PID PORT : wait (<= 10 s) until PORT accepts; fail if PID died
wait_ready() {
    local name=$1 pid=$2 port=$3 i
    for ((i = 0; i < 100; i++)); do
        if [[ -n $pid ]] && ! kill -0 "$pid" 2>/dev/null; then
            tail -n 20 "$RESULTS_DIR/logs/$name.log" >&2 || true
            die "$name (pid $pid) exited during startup; log: $RESULTS_DIR/logs/$name.log"
        fi
        python3 "$HELPER" waitport "$port" 0.5 && return 0
        sleep 0.1
    done
    die "$name did not accept connections on 127.0.0.1:$port within 10 s; log: $RESULTS_DIR/logs/$name.log"
}

# fill_template IN OUT KEY=VALUE... : replace @KEY@ placeholders
fill_template() {
    local in=$1 out=$2 kv
    shift 2
    cp -- "$in" "$out"
    for kv in "$@"; do
        local key=${kv%%=*} val=${kv#*=}
        val=${val//\\/\\\\}; val=${val//&/\\&}; val=${val//|/\\|}
        val=${val//$'\n'/\\n}   # GNU sed: \n in the replacement is a newline
        sed -i "s|@${key}@|${val}|g" "$out"
    done
}

children_of() {  # direct children of PID (for multi-process servers)
    cat /proc/"$1"/task/*/children 2>/dev/null || true
}

# proc_ticks PID... : utime+stime (fields 14+15 of /proc/PID/stat) summed, in clock ticks
proc_ticks() {
    local pid total=0 stat rest
    local -a f
    for pid in "$@"; do
        stat=$(<"/proc/$pid/stat") || return 1
        rest=${stat##*) }        # skip "pid (comm) " - comm may contain spaces
        read -ra f <<<"$rest"    # f[0] is field 3 (state)
        total=$((total + f[11] + f[12]))
    done
    echo "$total"
}

pids_alive() {
    local pid
    for pid in "$@"; do kill -0 "$pid" 2>/dev/null || return 1; done
}

# ---------------------------------------------------------------- systems
# sys_<name>_start BACKEND_PORT TAG
#   Start the system in front of 127.0.0.1:BACKEND_PORT and wait until it is
#   ready.  Must set: SYS_PORT (where wrk connects), SYS_PIDS (processes to stop;
#   empty for direct), SYS_MEASURE_PIDS (processes whose CPU/RSS is measured;
#   empty = not a proxy, shown as "-").  TAG names the instance (log file names).
# sys_<name>_check    : fail early with a clear message if unusable (optional)
# sys_<name>_version  : one-line version string (optional)
# sys_<name>_label    : column title (optional, default: name)

sys_direct_label() { echo "direct"; }
sys_direct_start() {
    SYS_PORT=$1; SYS_PIDS=""; SYS_MEASURE_PIDS=""
}

start_haproxy() {  # start_haproxy BACKEND_PORT TAG EXTRA_DEFAULTS
    local port cfg
    port=$(free_port)
    cfg=$TMP_DIR/$2.cfg
    # maxconn 20000 wants ~40k fds; if the hard limit is lower (containers
    # without CAP_SYS_RESOURCE) HAProxy >= 2.3 refuses to start unless told not
    # to be strict - it then runs with ulimit-n fds (enough for the tests).
    local extra_global=""
    ((NOFILE >= 40100)) || extra_global="    no strict-limits"
    fill_template "$BENCH_DIR/haproxy-tcp.cfg.in" "$cfg" \
        "PORT=$port" "BACKEND_PORT=$1" "ULIMIT_N=$NOFILE" "EXTRA_GLOBAL=$extra_global" "EXTRA_DEFAULTS=$3"
    cp -- "$cfg" "$RESULTS_DIR/logs/$2.cfg"
    haproxy -c -f "$cfg" >"$RESULTS_DIR/logs/$2.check.log" 2>&1 ||
        { cat "$RESULTS_DIR/logs/$2.check.log" >&2; die "invalid HAProxy config $cfg"; }
    spawn "$2" "$PROXY_CPU" haproxy -f "$cfg" -db
    SYS_PORT=$port; SYS_PIDS=$SPAWNED_PID; SYS_MEASURE_PIDS=$SPAWNED_PID
    wait_ready "$2" "$SPAWNED_PID" "$port"
}
sys_haproxy_label() { echo "HAProxy"; }
sys_haproxy_version() { haproxy -v 2>&1 | head -n 1; }
sys_haproxy_start() { start_haproxy "$1" "$2" ""; }

# Forced splice in both directions.  With HAProxy 2.6 "option splice-auto"
# hardly ever engages for a plain TCP relay (measured: iperf3 through it runs
# at the no-splice rate and CPU), so it is a separate, optional system.
sys_haproxy_splice_label() { echo "HAProxy+splice"; }
sys_haproxy_splice_version() { sys_haproxy_version; }
sys_haproxy_splice_start() { start_haproxy "$1" "$2" "    option splice-request
    option splice-response"; }

sys_haproxy_splice_auto_label() { echo "HAProxy+splice-auto"; }
sys_haproxy_splice_auto_version() { sys_haproxy_version; }
sys_haproxy_splice_auto_start() { start_haproxy "$1" "$2" "    option splice-auto"; }

# edgeproxy builds.  sys_*_check copies the binary to TMP_DIR, so every phase
# runs the same build even if build/ is rebuilt meanwhile; the report names the
# original path, its mtime and the copy's sha256.
declare -A EP_COPY=() EP_DESC=() EP_VER=()
edgeproxy_check() {  # edgeproxy_check BIN VAR EXPECTED_BACKEND MAKE_HINT SYSTEM
    local bin=$1 copy
    [[ -x $bin ]] ||
        die "edgeproxy binary not found or not executable: $bin (build it with '$4', set $2, or leave '$5' out of SYSTEMS/BULK_SYSTEMS)"
    if [[ -z ${EP_COPY[$bin]:-} ]]; then
        copy=$TMP_DIR/edgeproxy-${#EP_COPY[@]}
        cp -- "$bin" "$copy"
        EP_VER[$bin]=$(timeout 2 "$copy" --version 2>&1 </dev/null | head -n 1) || true
        EP_DESC[$bin]="${EP_VER[$bin]:-unknown} ($bin, built $(date -u -r "$bin" +%Y-%m-%dT%H:%M:%SZ), sha256 $(sha256sum "$copy" | cut -c1-12))"
        EP_COPY[$bin]=$copy
    fi
    [[ ${EP_VER[$bin]} == *"backend $3"* ]] || warn "$bin --version says '${EP_VER[$bin]:-nothing}', expected the $3 backend ($2)"
}
start_edgeproxy() {  # start_edgeproxy BIN BACKEND_PORT TAG
    local port
    local -a extra=()
    [[ -n ${EP_COPY[$1]:-} ]] || die "internal: $1 was not checked"
    port=$(free_port)
    [[ -z $EDGEPROXY_ARGS ]] || read -ra extra <<<"$EDGEPROXY_ARGS"
    spawn "$3" "$PROXY_CPU" "${EP_COPY[$1]}" -q -l 127.0.0.1 -p "$port" \
        -b 127.0.0.1 -P "$2" --max-connections 20000 "${extra[@]}"
    SYS_PORT=$port; SYS_PIDS=$SPAWNED_PID; SYS_MEASURE_PIDS=$SPAWNED_PID
    wait_ready "$3" "$SPAWNED_PID" "$port"
}

sys_edgeproxy_label() { echo "edgeproxy (epoll)"; }
sys_edgeproxy_check() { edgeproxy_check "$EDGEPROXY_BIN" EDGEPROXY_BIN epoll "make release" edgeproxy; }
sys_edgeproxy_version() { echo "${EP_DESC[$EDGEPROXY_BIN]}"; }
sys_edgeproxy_start() { start_edgeproxy "$EDGEPROXY_BIN" "$1" "$2"; }

sys_edgeproxy_uring_label() { echo "edgeproxy (io_uring)"; }
sys_edgeproxy_uring_check() {
    edgeproxy_check "$EDGEPROXY_URING_BIN" EDGEPROXY_URING_BIN io_uring "make release BACKEND=uring" edgeproxy_uring
}
sys_edgeproxy_uring_version() { echo "${EP_DESC[$EDGEPROXY_URING_BIN]}"; }
sys_edgeproxy_uring_start() { start_edgeproxy "$EDGEPROXY_URING_BIN" "$1" "$2"; }

sys_nginx_stream_label() { echo "nginx-stream"; }
sys_nginx_stream_version() { nginx -v 2>&1 | head -n 1; }
sys_nginx_stream_check() {
    [[ -e /usr/lib/nginx/modules/ngx_stream_module.so ]] ||
        die "nginx stream module missing (/usr/lib/nginx/modules/ngx_stream_module.so); install libnginx-mod-stream (scripts/install-deps.sh)"
}
sys_nginx_stream_start() {
    local port prefix i w=""
    local -a workers=()
    port=$(free_port)
    prefix=$TMP_DIR/$2
    mkdir -p "$prefix"
    cat >"$prefix/nginx.conf" <<EOF
load_module /usr/lib/nginx/modules/ngx_stream_module.so;
daemon off;
master_process on;
worker_processes 1;
worker_rlimit_nofile 65536;
pid $prefix/nginx.pid;
error_log $RESULTS_DIR/logs/$2.error.log warn;
events { worker_connections 25000; multi_accept on; }
stream {
    server {
        listen 127.0.0.1:$port backlog=4096;
        proxy_pass 127.0.0.1:$1;
        proxy_timeout 1h;
    }
}
EOF
    cp -- "$prefix/nginx.conf" "$RESULTS_DIR/logs/$2.conf"
    spawn "$2" "$PROXY_CPU" nginx -p "$prefix" -c "$prefix/nginx.conf" -e "$RESULTS_DIR/logs/$2.error.log"
    wait_ready "$2" "$SPAWNED_PID" "$port"
    for ((i = 0; i < 50; i++)); do  # the worker does the proxying
        w=$(children_of "$SPAWNED_PID")
        [[ -z $w ]] || break
        sleep 0.1
    done
    [[ -n $w ]] || die "$2: no nginx worker process found"
    read -ra workers <<<"${w//$'\n'/ }"
    SYS_PORT=$port; SYS_PIDS=$SPAWNED_PID
    SYS_MEASURE_PIDS=${workers[*]}
}

sys_label() {
    if declare -F "sys_$1_label" >/dev/null; then "sys_$1_label"; else echo "$1"; fi
}

declare -A CHECKED=()
ALL_SYSTEMS=()   # SYSTEMS + BULK_SYSTEMS, each once, in order
for s in "${SYSTEM_LIST[@]}" "${BULK_LIST[@]}"; do
    { [[ $s =~ ^[A-Za-z0-9_]+$ ]] && declare -F "sys_${s}_start" >/dev/null; } ||
        die "unknown system '$s' in SYSTEMS/BULK_SYSTEMS (known: direct haproxy edgeproxy edgeproxy_uring haproxy_splice haproxy_splice_auto nginx_stream)"
    [[ -z ${CHECKED[$s]:-} ]] || continue
    CHECKED[$s]=1; ALL_SYSTEMS+=("$s")
    if declare -F "sys_${s}_check" >/dev/null; then "sys_${s}_check"; fi
done
mkdir -p "$RESULTS_DIR/logs" "$RESULTS_DIR/wrk"  # after the checks: a failed check leaves no empty results directory

# ---------------------------------------------------------------- environment header
cmdline() {
    local v out=""
    for v in QUICK RUNS DURATION WARMUP THREADS CONNECTIONS SYSTEMS BULK BULK_SYSTEMS IDLE_CONNS_REQUESTED PROXY_CPU LOAD_CPU EDGEPROXY_BIN EDGEPROXY_URING_BIN EDGEPROXY_ARGS; do
        out+="${v%_REQUESTED}=$(printf '%q' "${!v}") "
    done
    out+=$(printf '%q' "$SCRIPT_DIR/bench.sh")
    ((${#ORIG_ARGS[@]} == 0)) || out+=" $(printf '%q ' "${ORIG_ARGS[@]}")"
    echo "$out"
}

WRK_VERSION=$(wrk -v 2>&1 | head -n 1 || true)
NGINX_VERSION=$(nginx -v 2>&1 | head -n 1 || true)
HAPROXY_VERSION=$(haproxy -v 2>&1 | head -n 1 || true)
GIT_REV=$(git -C "$REPO_ROOT" rev-parse --short HEAD 2>/dev/null || echo "no commits")
if [[ -n $(git -C "$REPO_ROOT" status --porcelain 2>/dev/null | head -n 1) ]]; then GIT_REV+=" (dirty)"; fi
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

REPORT=$RESULTS_DIR/report.md
report() { printf '%s\n' "$@" | tee -a "$REPORT"; }
: >"$REPORT"
{
    report "# edgeproxy side-by-side benchmark ($TS)" ""
    report "Command:" "" '```' "$(cmdline)" '```' ""
    report "| environment | |" "|---|---|"
    report "| kernel | $(uname -srm) |"
    report "| CPU | $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //') |"
    report "| nproc | $NPROC (proxy on CPU $PROXY_CPU; wrk, backends, iperf3 and idle helper on CPU $LOAD_CPU) |"
    report "| load average (start) | $LOAD_BEFORE |"
    report "| wrk | $WRK_VERSION |" "| nginx | $NGINX_VERSION |" "| haproxy | $HAPROXY_VERSION |"
    ((BULK == 0)) || report "| iperf3 | $(iperf3 --version 2>&1 | head -n 1) |"
    report "| python3 | $(python3 --version 2>&1) |"
    for s in "${ALL_SYSTEMS[@]}"; do
        if [[ $s != haproxy* ]] && declare -F "sys_${s}_version" >/dev/null; then
            report "| $(sys_label "$s") | $("sys_${s}_version") |"
        fi
    done
    report "| repo | $REPO_ROOT @ $GIT_REV |"
    report "| RLIMIT_NOFILE | soft $NOFILE, hard $(ulimit -Hn) |" "| CLK_TCK | $CLK_TCK |"
    report "| results | $RESULTS_DIR |" ""
}

# ---------------------------------------------------------------- backend
NGINX_PORT=$(free_port)
NGINX_PREFIX=$TMP_DIR/nginx-backend
mkdir -p "$NGINX_PREFIX/tmp"
fill_template "$BENCH_DIR/nginx-backend.conf.in" "$NGINX_PREFIX/nginx.conf" \
    "PREFIX=$NGINX_PREFIX" "PORT=$NGINX_PORT"
sed -i "s|^error_log .*|error_log $RESULTS_DIR/logs/nginx-backend.error.log warn;|" "$NGINX_PREFIX/nginx.conf"
cp -- "$NGINX_PREFIX/nginx.conf" "$RESULTS_DIR/logs/nginx-backend.conf"
nginx -t -p "$NGINX_PREFIX" -c "$NGINX_PREFIX/nginx.conf" -e "$RESULTS_DIR/logs/nginx-backend.error.log" \
    >"$RESULTS_DIR/logs/nginx-backend.check.log" 2>&1 ||
    { cat "$RESULTS_DIR/logs/nginx-backend.check.log" >&2; die "nginx backend config test failed"; }
log "starting nginx backend on 127.0.0.1:$NGINX_PORT (CPU $LOAD_CPU)"
spawn nginx-backend "$LOAD_CPU" nginx -p "$NGINX_PREFIX" -c "$NGINX_PREFIX/nginx.conf" \
    -e "$RESULTS_DIR/logs/nginx-backend.error.log"
NGINX_PID=$SPAWNED_PID
wait_ready nginx-backend "$NGINX_PID" "$NGINX_PORT"
body=$(python3 - "$NGINX_PORT" <<'EOF'
import sys, urllib.request
print(urllib.request.urlopen("http://127.0.0.1:%s/" % sys.argv[1], timeout=5).read().decode().strip())
EOF
) || die "nginx backend does not answer HTTP"
[[ $body == ok ]] || die "nginx backend answered '$body' instead of 'ok'"

# ---------------------------------------------------------------- start systems
declare -A PORT_OF MPIDS_OF PIDS_OF DEAD_OF
for s in "${SYSTEM_LIST[@]}"; do
    log "starting $(sys_label "$s") (backend 127.0.0.1:$NGINX_PORT)"
    "sys_${s}_start" "$NGINX_PORT" "$s"
    PORT_OF[$s]=$SYS_PORT; PIDS_OF[$s]=$SYS_PIDS; MPIDS_OF[$s]=$SYS_MEASURE_PIDS; DEAD_OF[$s]=""
    log "  $(sys_label "$s"): port $SYS_PORT, pid ${SYS_PIDS:--}, measured pid(s) ${SYS_MEASURE_PIDS:--}"
done

# ---------------------------------------------------------------- wrk runs
WRK_CMD=(wrk "-t$THREADS" "-c$CONNECTIONS" "-d${DURATION}s" --latency)
printf '$ taskset -c %s %s http://127.0.0.1:PORT/\n' "$LOAD_CPU" "${WRK_CMD[*]}" >>"$RESULTS_DIR/commands.txt"

# parse_wrk FILE -> "requests rps p50_us p99_us errors" (NA when missing)
parse_wrk() {
    awk '
    function us(v,  n, u) {
        n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
        if (u == "us") return sprintf("%.1f", n)
        if (u == "ms") return sprintf("%.1f", n * 1000)
        if (u == "s") return sprintf("%.1f", n * 1000000)
        if (u == "m") return sprintf("%.1f", n * 60000000)
        return "NA"
    }
    BEGIN { req = "NA"; rps = "NA"; p50 = "NA"; p99 = "NA"; err = 0 }
    /^ +50% /                  { p50 = us($2) }
    /^ +99% /                  { p99 = us($2) }
    / requests in /            { req = $1 }
    /^Requests\/sec:/          { rps = $2 }
    /Socket errors:/           { gsub(/,/, ""); err += $4 + $6 + $8 + $10 }
    /Non-2xx or 3xx responses:/ { err += $NF }
    END { print req, rps, p50, p99, err }' "$1"
}

# run_wrk SYSTEM DURATION OUTFILE : run wrk against SYSTEM, print
# "requests rps p50_us p99_us errors cpu_ticks cpu_us_per_req"
run_wrk() {
    local s=$1 dur=$2 out=$3 t0="" t1="" ticks=NA cpu=NA rc=0
    local -a mp=()
    read -ra mp <<<"${MPIDS_OF[$s]}"
    if ((${#mp[@]})); then t0=$(proc_ticks "${mp[@]}") || t0=""; fi
    timeout $((dur + 30)) taskset -c "$LOAD_CPU" wrk "-t$THREADS" "-c$CONNECTIONS" "-d${dur}s" \
        --latency "http://127.0.0.1:${PORT_OF[$s]}/" >"$out" 2>&1 || rc=$?
    if ((${#mp[@]})); then t1=$(proc_ticks "${mp[@]}" 2>/dev/null) || t1=""; fi
    local req rps p50 p99 err
    read -r req rps p50 p99 err < <(parse_wrk "$out")
    if ((rc != 0)); then
        warn "wrk exited with status $rc for $s (see $out)"
        [[ $req != NA ]] || { rps=NA; p50=NA; p99=NA; }
    fi
    if ((${#mp[@]})) && [[ -n $t0 && -n $t1 ]]; then
        ticks=$((t1 - t0))
        if [[ $req != NA ]] && ((req > 0)); then
            cpu=$(awk -v t="$ticks" -v hz="$CLK_TCK" -v n="$req" 'BEGIN { printf "%.3f", t / hz * 1e6 / n }')
        fi
    elif ((${#mp[@]} == 0)); then
        ticks=-; cpu=-
    fi
    echo "$req $rps $p50 $p99 $err $ticks $cpu"
}

check_alive() {  # mark a system dead if its processes are gone
    local s=$1
    local -a p=()
    read -ra p <<<"${PIDS_OF[$s]} ${MPIDS_OF[$s]}"
    ((${#p[@]})) || return 0
    if ! pids_alive "${p[@]}"; then
        DEAD_OF[$s]="process exited during the benchmark (see logs/$s.log)"
        warn "$(sys_label "$s") died! last log lines:"
        tail -n 20 "$RESULTS_DIR/logs/$s.log" >&2 || true
        return 1
    fi
}

CSV=$RESULTS_DIR/runs.csv
echo "run,system,port,duration_s,requests,rps,p50_us,p99_us,errors,proxy_cpu_ticks,proxy_cpu_us_per_req,loadavg1" >"$CSV"

if ((WARMUP > 0)); then
    for s in "${SYSTEM_LIST[@]}"; do
        log "warm-up $(sys_label "$s") (${WARMUP}s)"
        read -r req _ <<<"$(run_wrk "$s" "$WARMUP" "$RESULTS_DIR/wrk/warmup-$s.txt")"
        check_alive "$s" || true
        [[ $req != NA ]] || warn "warm-up against $(sys_label "$s") produced no result (see wrk/warmup-$s.txt)"
    done
fi

for ((run = 1; run <= RUNS; run++)); do
    for s in "${SYSTEM_LIST[@]}"; do
        if [[ -n ${DEAD_OF[$s]} ]]; then
            echo "$run,$s,${PORT_OF[$s]},$DURATION,NA,NA,NA,NA,NA,NA,NA,$(cut -d' ' -f1 /proc/loadavg)" >>"$CSV"
            continue
        fi
        out=$RESULTS_DIR/wrk/run$run-$s.txt
        read -r req rps p50 p99 err ticks cpu <<<"$(run_wrk "$s" "$DURATION" "$out")"
        check_alive "$s" || true
        load1=$(cut -d' ' -f1 /proc/loadavg)
        echo "$run,$s,${PORT_OF[$s]},$DURATION,$req,$rps,$p50,$p99,$err,$ticks,$cpu,$load1" >>"$CSV"
        log "run $run/$RUNS $(sys_label "$s"): req/s=$rps p50=${p50}us p99=${p99}us errors=$err proxy_cpu=${cpu}us/req load=$load1"
        if [[ $err != NA && $err != 0 ]]; then
            warn "$(sys_label "$s") run $run: wrk reported $err errors (see $out)"
        fi
    done
done

# stop the throughput instances (they are not needed for the idle test)
for s in "${SYSTEM_LIST[@]}"; do
    for pid in ${PIDS_OF[$s]}; do stop_pid "$pid"; done
done

# ---------------------------------------------------------------- idle connections / RSS
IDLE_CSV=$RESULTS_DIR/idle.csv
echo "system,conns,opened,alive,backend_open,rss_before_kib,rss_after_kib,bytes_per_conn,open_seconds,error" >"$IDLE_CSV"
declare -A RSS_OF RSS0_OF BPC_OF IDLE_ERR_OF
if ((IDLE_CONNS > 0)); then
    HOLD_PORT=$(free_port)
    HOLD_STATUS=$TMP_DIR/hold.status
    log "starting idle backend (python3 hold server) on 127.0.0.1:$HOLD_PORT (CPU $LOAD_CPU)"
    spawn idle-backend "$LOAD_CPU" python3 "$HELPER" hold "$HOLD_PORT" "$HOLD_STATUS"
    HOLD_PID=$SPAWNED_PID
    wait_ready idle-backend "$HOLD_PID" "$HOLD_PORT"
    sleep 0.3  # let the hold server notice the probe connection closing
    for s in "${SYSTEM_LIST[@]}"; do
        SYS_PORT=""; SYS_PIDS=""; SYS_MEASURE_PIDS=""
        "sys_${s}_start" "$HOLD_PORT" "$s-idle"
        if [[ -z $SYS_MEASURE_PIDS ]]; then
            for pid in $SYS_PIDS; do stop_pid "$pid"; done
            continue
        fi
        log "idle test $(sys_label "$s"): opening $IDLE_CONNS connections via port $SYS_PORT (pid $SYS_MEASURE_PIDS)"
        declare -A R=()
        printf '$ taskset -c %s python3 %s clients --port %s --status %s --pids %s -n %s\n' "$LOAD_CPU" "$HELPER" \
            "$SYS_PORT" "$HOLD_STATUS" "$(tr ' ' ',' <<<"$SYS_MEASURE_PIDS")" "$IDLE_CONNS" >>"$RESULTS_DIR/commands.txt"
        while IFS='=' read -r k v; do
            [[ -n $k ]] && R[$k]=$v
        done < <(timeout 300 taskset -c "$LOAD_CPU" python3 "$HELPER" clients --port "$SYS_PORT" \
            --status "$HOLD_STATUS" --pids "$(tr ' ' ',' <<<"$SYS_MEASURE_PIDS")" -n "$IDLE_CONNS" \
            2>>"$RESULTS_DIR/logs/idle-clients.log" || echo "error=idle helper failed (status $?)")
        printf '%s\n' "$s" >>"$RESULTS_DIR/logs/idle-clients.log"
        for k in "${!R[@]}"; do printf '  %s=%s\n' "$k" "${R[$k]}"; done >>"$RESULTS_DIR/logs/idle-clients.log"
        before=${R[rss_before_kib]:-NA}; after=${R[rss_after_kib]:-NA}; bpc=NA
        if [[ $before != NA && $after != NA ]]; then
            bpc=$(awk -v a="$after" -v b="$before" -v n="$IDLE_CONNS" 'BEGIN { printf "%.0f", (a - b) * 1024 / n }')
        fi
        RSS_OF[$s]=$after; RSS0_OF[$s]=$before; BPC_OF[$s]=$bpc; IDLE_ERR_OF[$s]=${R[error]:-}
        [[ -z ${IDLE_ERR_OF[$s]} ]] || warn "idle test $(sys_label "$s"): ${IDLE_ERR_OF[$s]}"
        echo "$s,$IDLE_CONNS,${R[opened]:-NA},${R[alive]:-NA},${R[backend_open]:-NA},$before,$after,$bpc,${R[open_seconds]:-NA},\"${R[error]:-}\"" >>"$IDLE_CSV"
        log "idle test $(sys_label "$s"): RSS ${before} KiB -> ${after} KiB, ${bpc} bytes/conn, alive=${R[alive]:-NA}, backend saw ${R[backend_open]:-NA}"
        for pid in $SYS_PIDS; do
            kill -0 "$pid" 2>/dev/null || IDLE_ERR_OF[$s]="${IDLE_ERR_OF[$s]:+${IDLE_ERR_OF[$s]}; }process died"
            stop_pid "$pid"
        done
        unset R
    done
    stop_pid "$HOLD_PID"
fi

# ---------------------------------------------------------------- bulk (iperf3)
# One persistent iperf3 server on LOAD_CPU; a fresh instance of every bulk
# system in front of it; iperf3 clients (1 and 4 streams) run one at a time,
# interleaved across systems.  The control and data connections all go through
# the proxy.
BULK_CSV=$RESULTS_DIR/bulk.csv
BULK_STREAMS=(1 4)
echo "run,system,streams,port,duration_s,gbit_s,bytes_received,proxy_cpu_ticks,proxy_cpu_ms_per_gib,proxy_cpu_pct,loadavg1,error" >"$BULK_CSV"
declare -A BPORT_OF=() BPIDS_OF=() BMPIDS_OF=() BDEAD_OF=() BULK_ERR_OF=()
IPERF_PORT=""; IPERF_PID=""; IPERF_RESTARTS=0

start_iperf_server() {
    [[ -n $IPERF_PORT ]] || IPERF_PORT=$(free_port)
    spawn "iperf3-server$( ((IPERF_RESTARTS == 0)) || echo ".$IPERF_RESTARTS")" "$LOAD_CPU" \
        iperf3 -s -p "$IPERF_PORT" -B 127.0.0.1
    IPERF_PID=$SPAWNED_PID
    wait_ready iperf3-server "$IPERF_PID" "$IPERF_PORT"
    sleep 0.3  # the probe connection from wait_ready counts as a (failed) test
}

# parse_iperf FILE -> "gbit_s bytes error" (NA when missing; error "-" if none)
parse_iperf() {
    python3 - "$1" <<'EOF'
import json, sys
try:
    with open(sys.argv[1]) as f:
        d = json.load(f)
except Exception as e:  # empty or truncated output
    print("NA NA", ("unparsable iperf3 output: %s" % e).replace(" ", "_")[:120])
    sys.exit(0)
err = d.get("error")
r = d.get("end", {}).get("sum_received", {})
bps, nbytes = r.get("bits_per_second"), r.get("bytes")
if err or bps is None or not nbytes:
    print("NA NA", (err or "no end.sum_received in output").replace(" ", "_")[:120])
else:
    print("%.3f %d -" % (bps / 1e9, nbytes))
EOF
}

# run_iperf SYSTEM STREAMS DURATION OUTFILE -> "gbit_s bytes ticks ms_per_gib cpu_pct error"
run_iperf() {
    local s=$1 streams=$2 dur=$3 out=$4 t0="" t1="" ticks=NA cpu=NA pct=NA rc=0
    local -a mp=()
    read -ra mp <<<"${BMPIDS_OF[$s]}"
    if ((${#mp[@]})); then t0=$(proc_ticks "${mp[@]}") || t0=""; fi
    timeout $((dur + 30)) taskset -c "$LOAD_CPU" iperf3 -c 127.0.0.1 -p "${BPORT_OF[$s]}" \
        -t "$dur" -P "$streams" -J --connect-timeout 5000 >"$out" 2>"$out.stderr" || rc=$?
    if ((${#mp[@]})); then t1=$(proc_ticks "${mp[@]}" 2>/dev/null) || t1=""; fi
    local gbps bytes err
    read -r gbps bytes err < <(parse_iperf "$out")
    ((rc == 0)) || [[ $err != - ]] || err="iperf3_exit_status_$rc"
    if ((${#mp[@]})) && [[ -n $t0 && -n $t1 ]]; then
        ticks=$((t1 - t0))
        pct=$(awk -v t="$ticks" -v hz="$CLK_TCK" -v d="$dur" 'BEGIN { printf "%.0f", t / hz / d * 100 }')
        if [[ $bytes != NA ]]; then
            cpu=$(awk -v t="$ticks" -v hz="$CLK_TCK" -v b="$bytes" 'BEGIN { printf "%.1f", t / hz * 1000 / (b / 1073741824) }')
        fi
    elif ((${#mp[@]} == 0)); then
        ticks=-; cpu=-; pct=-
    fi
    echo "$gbps $bytes $ticks $cpu $pct $err"
}

bulk_check_alive() {
    local s=$1
    local -a p=()
    read -ra p <<<"${BPIDS_OF[$s]} ${BMPIDS_OF[$s]}"
    ((${#p[@]})) || return 0
    if ! pids_alive "${p[@]}"; then
        BDEAD_OF[$s]="process exited during the bulk test (see logs/$s-bulk.log)"
        warn "$(sys_label "$s") (bulk) died! last log lines:"
        tail -n 20 "$RESULTS_DIR/logs/$s-bulk.log" >&2 || true
        return 1
    fi
}

# after a failed client run: make sure the iperf3 server is alive and idle
bulk_recover() {
    if ! kill -0 "$IPERF_PID" 2>/dev/null || ((${1:-0})); then
        warn "restarting the iperf3 server (log: logs/iperf3-server*.log)"
        stop_pid "$IPERF_PID"
        IPERF_RESTARTS=$((IPERF_RESTARTS + 1))
        ((IPERF_RESTARTS <= 5)) || die "iperf3 server failed too often"
        start_iperf_server
    fi
}

if ((BULK)); then
    mkdir -p "$RESULTS_DIR/iperf3"
    start_iperf_server
    log "iperf3 server on 127.0.0.1:$IPERF_PORT (CPU $LOAD_CPU)"
    printf '$ taskset -c %s iperf3 -c 127.0.0.1 -p PORT -t %s -P {%s} -J --connect-timeout 5000\n' \
        "$LOAD_CPU" "$DURATION" "${BULK_STREAMS[*]}" >>"$RESULTS_DIR/commands.txt"
    for s in "${BULK_LIST[@]}"; do
        SYS_PORT=""; SYS_PIDS=""; SYS_MEASURE_PIDS=""
        log "starting $(sys_label "$s") for the bulk test (backend iperf3 127.0.0.1:$IPERF_PORT)"
        "sys_${s}_start" "$IPERF_PORT" "$s-bulk"
        sleep 0.3  # wait_ready's probe went through to the iperf3 server
        BPORT_OF[$s]=$SYS_PORT; BPIDS_OF[$s]=$SYS_PIDS; BMPIDS_OF[$s]=$SYS_MEASURE_PIDS; BDEAD_OF[$s]=""
    done
    if ((WARMUP > 0)); then
        for s in "${BULK_LIST[@]}"; do
            log "bulk warm-up $(sys_label "$s") (${WARMUP}s, 1 stream)"
            read -r gbps _ _ _ _ err <<<"$(run_iperf "$s" 1 "$WARMUP" "$RESULTS_DIR/iperf3/warmup-$s.json")"
            bulk_check_alive "$s" || true
            [[ $err == - ]] || { warn "bulk warm-up $(sys_label "$s"): ${err//_/ }"; bulk_recover 1; }
        done
    fi
    for ((run = 1; run <= RUNS; run++)); do
        for n in "${BULK_STREAMS[@]}"; do
            for s in "${BULK_LIST[@]}"; do
                if [[ -n ${BDEAD_OF[$s]} ]]; then
                    echo "$run,$s,$n,${BPORT_OF[$s]},$DURATION,NA,NA,NA,NA,NA,$(cut -d' ' -f1 /proc/loadavg),dead" >>"$BULK_CSV"
                    continue
                fi
                out=$RESULTS_DIR/iperf3/run$run-P$n-$s.json
                read -r gbps bytes ticks cpu pct err <<<"$(run_iperf "$s" "$n" "$DURATION" "$out")"
                bulk_check_alive "$s" || true
                load1=$(cut -d' ' -f1 /proc/loadavg)
                echo "$run,$s,$n,${BPORT_OF[$s]},$DURATION,$gbps,$bytes,$ticks,$cpu,$pct,$load1,${err//,/;}" >>"$BULK_CSV"
                log "bulk run $run/$RUNS -P $n $(sys_label "$s"): ${gbps} Gbit/s, proxy ${cpu} CPU ms/GiB (${pct}% of a core) load=$load1"
                if [[ $err != - ]]; then
                    BULK_ERR_OF[$s]="${BULK_ERR_OF[$s]:+${BULK_ERR_OF[$s]}; }run $run -P $n: ${err//_/ }"
                    warn "bulk $(sys_label "$s") run $run -P $n failed: ${err//_/ } (see $out)"
                    bulk_recover 1
                fi
            done
        done
    done
    for s in "${BULK_LIST[@]}"; do
        for pid in ${BPIDS_OF[$s]}; do stop_pid "$pid"; done
    done
    stop_pid "$IPERF_PID"
fi

# ---------------------------------------------------------------- report
# median SYSTEM COLUMN (1-based CSV column) over runs; NA if no numeric values
median() {
    awk -F, -v s="$1" -v c="$2" '
        NR > 1 && $2 == s && $c ~ /^[0-9.]+$/ { v[++n] = $c }
        END {
            if (n == 0) { print "NA"; exit }
            for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
            print (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
        }' "$CSV"
}
all_runs() {  # SYSTEM COLUMN -> "a / b / c"
    awk -F, -v s="$1" -v c="$2" 'NR > 1 && $2 == s { out = out (out == "" ? "" : " / ") ($c ~ /^[0-9.]+$/ ? sprintf("%.0f", $c) : $c) } END { print out }' "$CSV"
}
fmt() {  # fmt PRINTF_FORMAT VALUE  ("-"/NA/empty pass through)
    if [[ $2 =~ ^[0-9.]+$ ]]; then awk -v f="$1" -v v="$2" 'BEGIN { printf f, v }'; else echo "${2:--}"; fi
}
ratio() {  # ratio A B -> A/B as "0.00x"
    if [[ $1 =~ ^[0-9.]+$ && $2 =~ ^[0-9.]+$ ]] && awk -v b="$2" 'BEGIN { exit !(b > 0) }'; then
        awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2fx", a / b }'
    else
        echo "-"
    fi
}
has_system() { local x; for x in "${SYSTEM_LIST[@]}"; do [[ $x == "$1" ]] && return 0; done; return 1; }

declare -A RPS P50 P99 CPU ERRS
for s in "${SYSTEM_LIST[@]}"; do
    RPS[$s]=$(median "$s" 6); P50[$s]=$(median "$s" 7); P99[$s]=$(median "$s" 8)
    if [[ -n ${MPIDS_OF[$s]} ]]; then CPU[$s]=$(median "$s" 11); else CPU[$s]="-"; fi
    ERRS[$s]=$(awk -F, -v s="$s" 'NR > 1 && $2 == s && $9 ~ /^[0-9]+$/ { e += $9 } END { print e + 0 }' "$CSV")
done

row() {  # row TITLE CELL_FUNCTION
    local line="| $1 |" s
    for s in "${SYSTEM_LIST[@]}"; do line+=" $("$2" "$s") |"; done
    report "$line"
}
c_rps() { fmt '%.0f' "${RPS[$1]}"; }
c_runs() { all_runs "$1" 6; }
ms() { if [[ $1 =~ ^[0-9.]+$ ]]; then awk -v v="$1" 'BEGIN { printf "%.3f ms", v / 1000 }'; else echo "${1:--}"; fi; }
c_p50() { ms "${P50[$1]}"; }
c_p99() { ms "${P99[$1]}"; }
c_cpu() { fmt '%.2f' "${CPU[$1]}"; }
c_rps_vs_direct() { has_system direct && ratio "${RPS[$1]}" "${RPS[direct]}" || echo "-"; }
c_rps_vs_haproxy() { has_system haproxy && ratio "${RPS[$1]}" "${RPS[haproxy]}" || echo "-"; }
c_cpu_vs_haproxy() { has_system haproxy && ratio "${CPU[$1]}" "${CPU[haproxy]}" || echo "-"; }
c_cpu_vs_epoll() { has_system edgeproxy && ratio "${CPU[$1]}" "${CPU[edgeproxy]}" || echo "-"; }
c_p99_vs_direct() { has_system direct && ratio "${P99[$1]}" "${P99[direct]}" || echo "-"; }
c_errors() { echo "${ERRS[$1]}"; }
c_rss() { fmt '%.0f' "${RSS_OF[$1]:--}"; }
c_rss0() { fmt '%.0f' "${RSS0_OF[$1]:--}"; }
c_bpc() { fmt '%.0f' "${BPC_OF[$1]:--}"; }
c_bpc_vs_haproxy() { has_system haproxy && ratio "${BPC_OF[$1]:--}" "${BPC_OF[haproxy]:--}" || echo "-"; }

LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
header="| metric |"; sep="|---|"
for s in "${SYSTEM_LIST[@]}"; do header+=" $(sys_label "$s") |"; sep+="---:|"; done

report "## Results" ""
report "wrk \`-t$THREADS -c$CONNECTIONS -d${DURATION}s --latency\`, keep-alive, $RUNS interleaved run(s) per system, medians; tiny nginx response (\"ok\")." ""
report "$header" "$sep"
row "req/s (median)" c_rps
row "req/s per run" c_runs
row "p50 latency" c_p50
row "p99 latency" c_p99
row "proxy CPU µs/request" c_cpu
row "req/s vs direct" c_rps_vs_direct
row "req/s vs HAProxy" c_rps_vs_haproxy
row "CPU/request vs HAProxy" c_cpu_vs_haproxy
has_system edgeproxy && row "CPU/request vs edgeproxy (epoll)" c_cpu_vs_epoll
row "p99 vs direct" c_p99_vs_direct
row "wrk errors (all runs)" c_errors
if ((IDLE_CONNS > 0)); then
    row "RSS before idle conns (KiB)" c_rss0
    row "RSS with $IDLE_CONNS idle conns (KiB)" c_rss
    row "RSS bytes per idle conn" c_bpc
    row "bytes/conn vs HAProxy" c_bpc_vs_haproxy
fi
report ""
[[ -z $IDLE_NOTE ]] || report "Note: $IDLE_NOTE." ""
report "Proxy CPU = utime+stime of the proxy process(es) during each wrk run / requests completed (CLK_TCK $CLK_TCK)."
if has_system edgeproxy && has_system edgeproxy_uring; then
    report "io_uring target: CPU/request <= 0.85x edgeproxy (epoll); measured $(c_cpu_vs_epoll edgeproxy_uring)."
fi
if ((IDLE_CONNS > 0)); then
    report "Idle test: a fresh instance of each proxy in front of a python3 backend that holds connections; VmRSS read 1 s after the backend saw all connections; bytes/conn = (RSS with - RSS before) / connections, so memory preallocated at startup counts only in \"RSS before\"."
fi
for s in "${SYSTEM_LIST[@]}"; do
    [[ -z ${DEAD_OF[$s]} ]] || report "- **$(sys_label "$s")**: ${DEAD_OF[$s]}"
    [[ -z ${IDLE_ERR_OF[$s]:-} ]] || report "- **$(sys_label "$s")** idle test: ${IDLE_ERR_OF[$s]}"
done

# ---------------------------------------------------------------- bulk report
if ((BULK)); then
    # bmedian SYSTEM STREAMS COLUMN (1-based bulk.csv column)
    bmedian() {
        awk -F, -v s="$1" -v n="$2" -v c="$3" '
            NR > 1 && $2 == s && $3 == n && $c ~ /^[0-9.]+$/ { v[++k] = $c }
            END {
                if (k == 0) { print "NA"; exit }
                for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
                print (k % 2) ? v[(k + 1) / 2] : (v[k / 2] + v[k / 2 + 1]) / 2
            }' "$BULK_CSV"
    }
    bruns() {  # SYSTEM STREAMS -> "a / b / c" Gbit/s
        awk -F, -v s="$1" -v n="$2" 'NR > 1 && $2 == s && $3 == n { out = out (out == "" ? "" : " / ") ($6 ~ /^[0-9.]+$/ ? sprintf("%.2f", $6) : $6) } END { print out }' "$BULK_CSV"
    }
    has_bulk() { local x; for x in "${BULK_LIST[@]}"; do [[ $x == "$1" ]] && return 0; done; return 1; }
    declare -A GB=() CG=() PCT=()
    for s in "${BULK_LIST[@]}"; do
        for n in "${BULK_STREAMS[@]}"; do
            GB[$s,$n]=$(bmedian "$s" "$n" 6)
            if [[ -n ${BMPIDS_OF[$s]} ]]; then
                CG[$s,$n]=$(bmedian "$s" "$n" 9); PCT[$s,$n]=$(bmedian "$s" "$n" 10)
            else
                CG[$s,$n]="-"; PCT[$s,$n]="-"
            fi
        done
    done
    REF=haproxy_splice
    has_bulk "$REF" || REF=haproxy
    has_bulk "$REF" || REF=""
    report "" "## Bulk throughput (iperf3)" ""
    report "\`iperf3 -c 127.0.0.1 -t $DURATION -P {1,4}\` through each proxy to one \`iperf3 -s\` (client and server on CPU $LOAD_CPU, proxy on CPU $PROXY_CPU), $RUNS interleaved run(s) per system and stream count, medians.  Gbit/s = end.sum_received.bits_per_second; CPU ms/GiB = proxy utime+stime during the run / GiB received; CPU % = share of one core.${REF:+  Ratios are vs $(sys_label "$REF").}" ""
    line="| system |"; sep2="|---|"
    for n in "${BULK_STREAMS[@]}"; do
        line+=" $n-stream Gbit/s | $n-stream CPU ms/GiB |"; sep2+="---:|---:|"
    done
    if [[ -n $REF ]]; then
        for n in "${BULK_STREAMS[@]}"; do
            line+=" $n-stream Gbit/s vs ref | $n-stream CPU/GiB vs ref |"; sep2+="---:|---:|"
        done
    fi
    line+=" proxy CPU % ($(IFS=/; echo "${BULK_STREAMS[*]}") streams) | Gbit/s per run ($(IFS=';'; echo "${BULK_STREAMS[*]}") streams) |"; sep2+="---:|---|"
    report "$line" "$sep2"
    for s in "${BULK_LIST[@]}"; do
        line="| $(sys_label "$s") |"
        for n in "${BULK_STREAMS[@]}"; do
            line+=" $(fmt '%.2f' "${GB[$s,$n]}") | $(fmt '%.0f' "${CG[$s,$n]}") |"
        done
        if [[ -n $REF ]]; then
            for n in "${BULK_STREAMS[@]}"; do
                line+=" $(ratio "${GB[$s,$n]}" "${GB[$REF,$n]}") | $(ratio "${CG[$s,$n]}" "${CG[$REF,$n]}") |"
            done
        fi
        pcts=""; runs=""
        for n in "${BULK_STREAMS[@]}"; do
            pcts+="${pcts:+ / }$(fmt '%.0f' "${PCT[$s,$n]}")"; runs+="${runs:+; }$(bruns "$s" "$n")"
        done
        line+=" $pcts | $runs |"
        report "$line"
    done
    ((IPERF_RESTARTS == 0)) || report "" "Note: the iperf3 server was restarted $IPERF_RESTARTS time(s) after failed runs."
    notes=()
    for s in "${BULK_LIST[@]}"; do
        [[ -z ${BDEAD_OF[$s]} ]] || notes+=("- **$(sys_label "$s")** bulk: ${BDEAD_OF[$s]}")
        [[ -z ${BULK_ERR_OF[$s]:-} ]] || notes+=("- **$(sys_label "$s")** bulk errors: ${BULK_ERR_OF[$s]}")
    done
    ((${#notes[@]} == 0)) || report "" "${notes[@]}"
fi

report "" "Load average: start $LOAD_BEFORE, end $LOAD_AFTER (nproc $NPROC)."
report "" "Files: $CSV, $IDLE_CSV$( ((BULK == 0)) || echo ", $BULK_CSV"), $RESULTS_DIR/commands.txt, wrk/$( ((BULK == 0)) || echo ", iperf3/") (raw output), logs/."

FAILED=0
for s in "${SYSTEM_LIST[@]}"; do
    [[ -z ${DEAD_OF[$s]} && -z ${IDLE_ERR_OF[$s]:-} && ${RPS[$s]} != NA ]] || FAILED=1
done
for s in "${BULK_LIST[@]}"; do
    [[ -z ${BDEAD_OF[$s]} && -z ${BULK_ERR_OF[$s]:-} && ${GB[$s,1]} != NA ]] || FAILED=1
done
((FAILED == 0)) || { warn "some systems failed; see the notes above"; exit 1; }

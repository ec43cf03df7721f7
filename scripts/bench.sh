#!/usr/bin/env bash
# Side-by-side benchmark: wrk -> {direct nginx, HAProxy (mode tcp), edgeproxy}.
#
#   scripts/bench.sh                 # RUNS=3 DURATION=10, all systems
#   QUICK=1 scripts/bench.sh         # 1 run of 3 s (smoke test)
#   SYSTEMS="direct haproxy" QUICK=1 scripts/bench.sh
#
# Everything runs on 127.0.0.1.  The proxy under test is pinned to PROXY_CPU
# (default 0); wrk, the nginx backend and the idle-connection helper are pinned
# to LOAD_CPU (default 1).  Runs are interleaved (A B C A B C ...) and the
# report shows medians.  Results (report.md, runs.csv, idle.csv, raw wrk output
# and process logs) go to bench-results/<timestamp>/ under the repository root.
#
# Environment knobs (defaults in brackets):
#   RUNS [3, QUICK: 1]        measured runs per system (median is reported)
#   DURATION [10, QUICK: 3]   seconds per wrk run ("10" or "10s")
#   QUICK [0]                 1 = quick smoke test (changes the two defaults above)
#   WARMUP [2, QUICK: 1]      seconds of unrecorded wrk warm-up per system; 0 = none
#   THREADS [1] CONNECTIONS [100]   wrk -t / -c
#   SYSTEMS ["direct haproxy edgeproxy"]  columns, in order; also available:
#                             haproxy_splice, nginx_stream
#   EDGEPROXY_BIN [build/release/edgeproxy]  EDGEPROXY_ARGS [] extra arguments
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
SYSTEMS=${SYSTEMS:-direct haproxy edgeproxy}
EDGEPROXY_BIN=${EDGEPROXY_BIN:-$REPO_ROOT/build/release/edgeproxy}
EDGEPROXY_ARGS=${EDGEPROXY_ARGS:-}
IDLE_CONNS=${IDLE_CONNS:-10000}
PROXY_CPU=${PROXY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
TS=$(date -u +%Y%m%dT%H%M%SZ)
RESULTS_DIR=${RESULTS_DIR:-$REPO_ROOT/bench-results/$TS}

for v in RUNS DURATION WARMUP THREADS CONNECTIONS IDLE_CONNS PROXY_CPU LOAD_CPU; do
    [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a non-negative integer (got '${!v}')"
done
((RUNS >= 1 && RUNS <= 100)) || die "RUNS must be in 1..100"
((DURATION >= 1 && DURATION <= 600)) || die "DURATION must be in 1..600 seconds"
((WARMUP <= 60)) || die "WARMUP must be <= 60 seconds"
((IDLE_CONNS <= 20000)) || die "IDLE_CONNS must be <= 20000 (proxies run with --max-connections 20000)"
read -ra SYSTEM_LIST <<<"$SYSTEMS"
((${#SYSTEM_LIST[@]} > 0)) || die "SYSTEMS is empty"

# ---------------------------------------------------------------- prerequisites
missing=()
for tool in wrk nginx haproxy python3 taskset; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if ((${#missing[@]})); then
    die "missing required tool(s): ${missing[*]}. Install them with scripts/install-deps.sh (Debian/Ubuntu packages: wrk nginx-light libnginx-mod-stream haproxy)"
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
mkdir -p "$RESULTS_DIR/logs" "$RESULTS_DIR/wrk"
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

sys_haproxy_splice_label() { echo "HAProxy+splice"; }
sys_haproxy_splice_version() { sys_haproxy_version; }
sys_haproxy_splice_start() { start_haproxy "$1" "$2" "    option splice-auto"; }

sys_edgeproxy_label() { echo "edgeproxy"; }
sys_edgeproxy_check() {
    [[ -x $EDGEPROXY_BIN ]] ||
        die "edgeproxy binary not found or not executable: $EDGEPROXY_BIN (build it first, set EDGEPROXY_BIN, or leave it out: SYSTEMS=\"direct haproxy\")"
}
sys_edgeproxy_version() {
    local v
    v=$(timeout 2 "$EDGEPROXY_BIN" --version 2>&1 </dev/null | head -n 1) || true
    echo "${v:-unknown} ($EDGEPROXY_BIN, built $(date -u -r "$EDGEPROXY_BIN" +%Y-%m-%dT%H:%M:%SZ))"
}
sys_edgeproxy_start() {
    local port
    local -a extra=()
    port=$(free_port)
    [[ -z $EDGEPROXY_ARGS ]] || read -ra extra <<<"$EDGEPROXY_ARGS"
    spawn "$2" "$PROXY_CPU" "$EDGEPROXY_BIN" -q -l 127.0.0.1 -p "$port" \
        -b 127.0.0.1 -P "$1" --max-connections 20000 "${extra[@]}"
    SYS_PORT=$port; SYS_PIDS=$SPAWNED_PID; SYS_MEASURE_PIDS=$SPAWNED_PID
    wait_ready "$2" "$SPAWNED_PID" "$port"
}

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

for s in "${SYSTEM_LIST[@]}"; do
    { [[ $s =~ ^[A-Za-z0-9_]+$ ]] && declare -F "sys_${s}_start" >/dev/null; } ||
        die "unknown system '$s' in SYSTEMS (known: direct haproxy edgeproxy haproxy_splice nginx_stream)"
    if declare -F "sys_${s}_check" >/dev/null; then "sys_${s}_check"; fi
done

# ---------------------------------------------------------------- environment header
cmdline() {
    local v out=""
    for v in QUICK RUNS DURATION WARMUP THREADS CONNECTIONS SYSTEMS IDLE_CONNS_REQUESTED PROXY_CPU LOAD_CPU EDGEPROXY_BIN EDGEPROXY_ARGS; do
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
    report "| nproc | $NPROC (proxy on CPU $PROXY_CPU; wrk + backend on CPU $LOAD_CPU) |"
    report "| load average (start) | $LOAD_BEFORE |"
    report "| wrk | $WRK_VERSION |" "| nginx | $NGINX_VERSION |" "| haproxy | $HAPROXY_VERSION |"
    report "| python3 | $(python3 --version 2>&1) |"
    for s in "${SYSTEM_LIST[@]}"; do
        if [[ $s != haproxy ]] && declare -F "sys_${s}_version" >/dev/null; then
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
report "Load average: start $LOAD_BEFORE, end $LOAD_AFTER. Proxy CPU = utime+stime of the proxy process(es) during each wrk run / requests completed."
if ((IDLE_CONNS > 0)); then
    report "Idle test: a fresh instance of each proxy in front of a python3 backend that holds connections; VmRSS read 1 s after the backend saw all connections; bytes/conn = (RSS with - RSS before) / connections, so memory preallocated at startup counts only in \"RSS before\"."
fi
for s in "${SYSTEM_LIST[@]}"; do
    [[ -z ${DEAD_OF[$s]} ]] || report "- **$(sys_label "$s")**: ${DEAD_OF[$s]}"
    [[ -z ${IDLE_ERR_OF[$s]:-} ]] || report "- **$(sys_label "$s")** idle test: ${IDLE_ERR_OF[$s]}"
done
report "" "Files: $CSV, $IDLE_CSV, $RESULTS_DIR/commands.txt, wrk/ (raw output), logs/."

FAILED=0
for s in "${SYSTEM_LIST[@]}"; do
    [[ -z ${DEAD_OF[$s]} && -z ${IDLE_ERR_OF[$s]:-} && ${RPS[$s]} != NA ]] || FAILED=1
done
((FAILED == 0)) || { warn "some systems failed; see the notes above"; exit 1; }

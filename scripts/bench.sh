#!/usr/bin/env bash
# Side-by-side benchmark suite.  Starts everything itself on 127.0.0.1 (an nginx backend with a
# tiny and a 1 MiB response, an iperf3 server, HAProxy mode tcp with and without splice, nginx
# stream, edgeproxy built with each backend), interleaves the systems run by run, and reports
# medians and ratios measured within the same run:
#
#   W1  keep-alive, tiny response     wrk -t1 -c100            req/s, p50/p99, proxy CPU µs/request
#   W2  a new connection per request  wrk -t1 -c100 + "Connection: close"
#                                                              conn/s, p50/p99, proxy CPU µs/connection
#   W3  1 MiB responses               wrk -t1 -c10             MiB/s, proxy CPU ms/GiB
#   W4  bulk                          iperf3 -P 1 and -P 4     Gbit/s, proxy CPU ms/GiB
#   W5  idle connections              10 000 (or what fits)    proxy RSS in total and per connection
#   W6  scaling                       W1 and W4 (-P 4) with 1, 2 (, 4, ...) workers
#   W7  accept under bulk             200 endless bulk transfers through the proxy while a probe
#                                     opens 300 new connections over 3 s, one after another:
#                                     connect() to first response byte p50/p99/max, proxy CPU %
#
#   scripts/bench.sh                     # full run: RUNS=3 DURATION=10, every workload
#   QUICK=1 scripts/bench.sh             # smoke test: one 3 s run per cell
#   LAYOUT=unpinned RUNS=5 DURATION=20 scripts/bench.sh
#   WORKLOADS="W1 W4" SYSTEMS="direct haproxy edgeproxy" QUICK=1 scripts/bench.sh
#   PUBLISH=1 scripts/bench.sh           # also copy the charts to docs/img/
#
# Layouts (LAYOUT):
#   pinned [default]  the proxy on PROXY_CPUS (default: the first CPU this shell may use); wrk,
#                     iperf3, the backends and the idle helper on LOAD_CPUS (default: the others)
#   unpinned          nothing is pinned; the scheduler places everything
# W6 with N workers gives the proxy N CPUs (the first N of PROXY_CPUS then LOAD_CPUS) and the
# load the rest, each proxy worker on its own CPU (edgeproxy --cpu-list, HAProxy cpu-map, nginx
# worker_cpu_affinity).  Where the largest worker count leaves no CPU for the load (2 workers on a
# 2-CPU machine), W6_LAYOUT=auto [default] runs every W6 cell unpinned, so that 1 and N workers
# are compared under the same conditions; W6_LAYOUT=pinned keeps the proxy workers on their own
# CPUs and lets the load share all CPUs (layout "shared").  The report states which was used.
#
# Knobs (environment variables, defaults in brackets):
#   QUICK [0]               1 = smoke test: RUNS=1 DURATION=3 WARMUP=1 unless set
#   RUNS [3] DURATION [10]  measured runs per cell (the median is reported); seconds per run
#   WARMUP [2]              seconds of unrecorded load per system and workload; 0 = none
#   WORKLOADS ["W1 W2 W3 W4 W5 W6 W7"]
#   SYSTEMS ["direct haproxy haproxy_splice nginx_stream edgeproxy edgeproxy_uring
#            edgeproxy_splice edgeproxy_uring_splice"]   in this order; also: haproxy_splice_auto,
#                           and haproxy_smart, edgeproxy_smart, edgeproxy_uring_smart (both
#                           proxies' tcp-smart-accept, tcp-smart-connect and defer-accept on,
#                           decision 0017)
#                           The edgeproxy *_splice systems run only when "<binary> --help"
#                           mentions --splice, and are skipped with a note otherwise
#   EDGEPROXY_SPLICE [auto] --splice mode of the *_splice systems (the plain ones get "never")
#   LAYOUT [pinned]  PROXY_CPUS [first allowed CPU]  LOAD_CPUS [the other allowed CPUs]
#   THREADS [1] CONNECTIONS [100]   wrk -t / -c for W1 and W2;  W3_CONNECTIONS [10]
#   W4_STREAMS ["1 4"]      iperf3 -P values
#   IDLE_CONNS [10000]      W5; lowered to what the open-file limit allows (stated in the report)
#   W6_WORKERS ["1 2", plus 4 8 ... up to half the CPUs]   W6_STREAMS [4]
#   W6_THREADS [max(2, CPUs left to the load)]   wrk -t in W6
#   W6_LAYOUT [auto]        auto | pinned | unpinned (see above)
#   W6_SYSTEMS [SYSTEMS without direct]
#   BACKEND_WORKERS [number of LOAD_CPUS, 1..4]  nginx backend worker processes
#   W7_RUNS [10; QUICK 2]   W7 runs per system (its own count: its p99 ratio wants many short
#                           interleaved runs, docs/benchmarking.md)
#   W7_DURATION [3]         seconds of probing per run;  W7_PROBES [300] probes per run
#   W7_BULK_CONNS [200]     bulk connections held during a run;  W7_RAMP [1] seconds of bulk
#                           before the probing starts;  W7_PROBE_TIMEOUT_MS [2000]
#   EDGEPROXY_BIN [build/release/edgeproxy]  EDGEPROXY_URING_BIN [build/release-uring/edgeproxy]
#                           built with "make release [BACKEND=uring]" when missing (BUILD=0: fail
#                           instead); copied at start, so a rebuild during the run cannot mix builds
#   EDGEPROXY_ARGS []       extra arguments for every edgeproxy instance
#   RESULTS_DIR [bench-results/<UTC timestamp>]
#   CHARTS [1]              0 = no PNGs (they need gnuplot: scripts/install-deps.sh --bench)
#   PUBLISH [0]             1 = copy the PNGs to docs/img/bench-*.png (refused for a QUICK run
#                           unless PUBLISH=force)
#
# Output in RESULTS_DIR: report.md (tables, targets, charts), runs.csv (one row per measurement),
# summary.csv (medians and ratios), charts/*.png (and the .dat/.gp they are drawn from), raw/
# (wrk, iperf3 and idle-helper output), logs/ (process logs and configs), commands.txt.
# "scripts/bench/report.py RESULTS_DIR" rebuilds report.md, summary.csv and the charts from runs.csv.
set -euo pipefail

SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd -- "$SCRIPT_DIR/.." && pwd)
BENCH_DIR=$SCRIPT_DIR/bench
HELPER=$BENCH_DIR/idle.py
REPORTER=$BENCH_DIR/report.py
ORIG_ARGS=("$@")
# shellcheck source-path=SCRIPTDIR source=bench/lib.sh
source "$BENCH_DIR/lib.sh"
# shellcheck source-path=SCRIPTDIR source=bench/systems.sh
source "$BENCH_DIR/systems.sh"

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
WORKLOADS=${WORKLOADS:-W1 W2 W3 W4 W5 W6 W7}
SYSTEMS=${SYSTEMS:-direct haproxy haproxy_splice nginx_stream edgeproxy edgeproxy_uring edgeproxy_splice edgeproxy_uring_splice}
EDGEPROXY_SPLICE=${EDGEPROXY_SPLICE:-auto}
LAYOUT=${LAYOUT:-pinned}
THREADS=${THREADS:-1}
CONNECTIONS=${CONNECTIONS:-100}
W3_CONNECTIONS=${W3_CONNECTIONS:-10}
W4_STREAMS=${W4_STREAMS:-1 4}
IDLE_CONNS=${IDLE_CONNS:-10000}
W6_STREAMS=${W6_STREAMS:-4}
W6_LAYOUT=${W6_LAYOUT:-auto}
if [[ $QUICK == 1 ]]; then W7_RUNS=${W7_RUNS:-2}; else W7_RUNS=${W7_RUNS:-10}; fi
W7_DURATION=${W7_DURATION:-3}
W7_PROBES=${W7_PROBES:-300}
W7_BULK_CONNS=${W7_BULK_CONNS:-200}
W7_RAMP=${W7_RAMP:-1}
W7_PROBE_TIMEOUT_MS=${W7_PROBE_TIMEOUT_MS:-2000}
EDGEPROXY_BIN=${EDGEPROXY_BIN:-$REPO_ROOT/build/release/edgeproxy}
EDGEPROXY_URING_BIN=${EDGEPROXY_URING_BIN:-$REPO_ROOT/build/release-uring/edgeproxy}
EDGEPROXY_ARGS=${EDGEPROXY_ARGS:-}
BUILD=${BUILD:-1}
CHARTS=${CHARTS:-1}
PUBLISH=${PUBLISH:-0}
TS=$(date -u +%Y%m%dT%H%M%SZ)
RESULTS_DIR=${RESULTS_DIR:-$REPO_ROOT/bench-results/$TS}

for v in QUICK RUNS DURATION WARMUP THREADS CONNECTIONS W3_CONNECTIONS IDLE_CONNS W6_STREAMS BUILD CHARTS \
    W7_RUNS W7_DURATION W7_PROBES W7_BULK_CONNS W7_RAMP W7_PROBE_TIMEOUT_MS; do
    [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a non-negative integer (got '${!v}')"
done
((RUNS >= 1 && RUNS <= 100)) || die "RUNS must be in 1..100"
((DURATION >= 1 && DURATION <= 600)) || die "DURATION must be in 1..600 seconds"
((WARMUP <= 60)) || die "WARMUP must be <= 60 seconds"
((THREADS >= 1 && CONNECTIONS >= THREADS && W3_CONNECTIONS >= THREADS)) || die "need 1 <= THREADS <= CONNECTIONS, W3_CONNECTIONS"
((CONNECTIONS <= 5000 && W3_CONNECTIONS <= 5000)) || die "CONNECTIONS and W3_CONNECTIONS must be <= 5000"
((IDLE_CONNS >= 1 && IDLE_CONNS <= 20000)) || die "IDLE_CONNS must be in 1..20000 (proxies run with --max-connections 20000)"
((W6_STREAMS >= 1 && W6_STREAMS <= 64)) || die "W6_STREAMS must be in 1..64"
((W7_RUNS >= 1 && W7_RUNS <= 100)) || die "W7_RUNS must be in 1..100"
((W7_DURATION >= 1 && W7_DURATION <= 60)) || die "W7_DURATION must be in 1..60 seconds"
((W7_PROBES >= 1 && W7_PROBES <= 100000)) || die "W7_PROBES must be in 1..100000"
((W7_BULK_CONNS >= 1 && W7_BULK_CONNS <= 5000)) || die "W7_BULK_CONNS must be in 1..5000"
((W7_RAMP <= 30)) || die "W7_RAMP must be <= 30 seconds"
((W7_PROBE_TIMEOUT_MS >= 10 && W7_PROBE_TIMEOUT_MS <= 60000)) || die "W7_PROBE_TIMEOUT_MS must be in 10..60000"
[[ $LAYOUT == pinned || $LAYOUT == unpinned ]] || die "LAYOUT must be pinned or unpinned (got '$LAYOUT')"
[[ $W6_LAYOUT =~ ^(auto|pinned|unpinned)$ ]] || die "W6_LAYOUT must be auto, pinned or unpinned (got '$W6_LAYOUT')"
[[ $PUBLISH =~ ^(0|1|force)$ ]] || die "PUBLISH must be 0, 1 or force (got '$PUBLISH')"
[[ $EDGEPROXY_SPLICE =~ ^[a-z]+$ ]] || die "EDGEPROXY_SPLICE must be a mode word such as auto, always, never"
if [[ $PUBLISH == 1 && $QUICK == 1 ]]; then
    die "PUBLISH=1 with QUICK=1 would put smoke-test charts into docs/img/; use PUBLISH=force if that is really wanted"
fi
read -ra STREAMS_LIST <<<"$W4_STREAMS"
for n in "${STREAMS_LIST[@]}"; do
    int_in "$n" 1 64 || die "W4_STREAMS: '$n' is not in 1..64"
done

read -ra WL_LIST <<<"$WORKLOADS"
((${#WL_LIST[@]})) || die "WORKLOADS is empty"
for w in "${WL_LIST[@]}"; do [[ $w =~ ^W[1-7]$ ]] || die "unknown workload '$w' in WORKLOADS (W1..W7)"; done
has_wl() { [[ " ${WL_LIST[*]} " == *" $1 "* ]]; }
HTTP_WLS=()
for w in W1 W2 W3; do ! has_wl "$w" || HTTP_WLS+=("$w"); done

# ---------------------------------------------------------------- CPUs and layouts
read -ra ALLOWED <<<"$(allowed_cpus)"
NCPU=${#ALLOWED[@]}
ALL_CPUS_LIST=$(join_cpus "${ALLOWED[@]}")
is_allowed() { [[ " ${ALLOWED[*]} " == *" $1 "* ]]; }
PROXY_CPUS=${PROXY_CPUS:-${PROXY_CPU:-${ALLOWED[0]}}}
read -ra PROXY_IDS <<<"$(expand_cpus "$PROXY_CPUS")" || die "PROXY_CPUS: cannot parse '$PROXY_CPUS'"
((${#PROXY_IDS[@]})) || die "PROXY_CPUS: cannot parse '$PROXY_CPUS'"
if [[ -z ${LOAD_CPUS:-${LOAD_CPU:-}} ]]; then
    LOAD_IDS=()
    for c in "${ALLOWED[@]}"; do [[ " ${PROXY_IDS[*]} " == *" $c "* ]] || LOAD_IDS+=("$c"); done
    if ((${#LOAD_IDS[@]} == 0)); then
        warn "only $NCPU CPU(s): the load shares the proxy's CPUs"
        LOAD_IDS=("${ALLOWED[@]}")
    fi
else
    LOAD_CPUS=${LOAD_CPUS:-$LOAD_CPU}
    read -ra LOAD_IDS <<<"$(expand_cpus "$LOAD_CPUS")" || die "LOAD_CPUS: cannot parse '$LOAD_CPUS'"
    ((${#LOAD_IDS[@]})) || die "LOAD_CPUS: cannot parse '$LOAD_CPUS'"
fi
for c in "${PROXY_IDS[@]}" "${LOAD_IDS[@]}"; do
    is_allowed "$c" || die "CPU $c is not one this shell may run on (${ALLOWED[*]})"
done
PROXY_CPUS=$(join_cpus "${PROXY_IDS[@]}")
LOAD_CPUS=$(join_cpus "${LOAD_IDS[@]}")
for c in "${PROXY_IDS[@]}"; do
    [[ $LAYOUT != pinned || " ${LOAD_IDS[*]} " != *" $c "* ]] || warn "CPU $c is in both PROXY_CPUS and LOAD_CPUS"
done
if [[ $LAYOUT == pinned ]]; then
    BASE_PROXY_SET=$PROXY_CPUS; BASE_LOAD_SET=$LOAD_CPUS
    BASE_LAYOUT_DESC="pinned: proxy on CPU $PROXY_CPUS; wrk, iperf3, backends and idle helper on CPU $LOAD_CPUS"
else
    BASE_PROXY_SET=""; BASE_LOAD_SET=""
    BASE_LAYOUT_DESC="unpinned: nothing pinned, $NCPU CPUs ($ALL_CPUS_LIST)"
fi
if [[ -z ${BACKEND_WORKERS:-} ]]; then
    if [[ $LAYOUT == pinned ]]; then BACKEND_WORKERS=${#LOAD_IDS[@]}; else BACKEND_WORKERS=$((NCPU - 1)); fi
    ((BACKEND_WORKERS >= 1)) || BACKEND_WORKERS=1
    ((BACKEND_WORKERS <= 4)) || BACKEND_WORKERS=4
fi
int_in "$BACKEND_WORKERS" 1 64 || die "BACKEND_WORKERS must be in 1..64"

# W6: worker counts, CPU order (proxy CPUs first) and the layout of each cell
if [[ -z ${W6_WORKERS:-} ]]; then
    W6_WORKERS="1 2"
    for ((w = 4; w <= NCPU / 2; w *= 2)); do W6_WORKERS+=" $w"; done
fi
read -ra W6_LIST_N <<<"$W6_WORKERS"
W6_MAX=0
for n in "${W6_LIST_N[@]}"; do
    int_in "$n" 1 256 || die "W6_WORKERS: '$n' is not in 1..256"
    ((n <= W6_MAX)) || W6_MAX=$n
done
W6_ORDER=("${PROXY_IDS[@]}")
for c in "${LOAD_IDS[@]}" "${ALLOWED[@]}"; do [[ " ${W6_ORDER[*]} " == *" $c "* ]] || W6_ORDER+=("$c"); done
if [[ -z ${W6_THREADS:-} ]]; then
    W6_THREADS=$((NCPU - W6_MAX)); ((W6_THREADS >= 2)) || W6_THREADS=2
fi
int_in "$W6_THREADS" 1 "$CONNECTIONS" || die "W6_THREADS must be in 1..CONNECTIONS"
W6_MODE=$W6_LAYOUT
W6_NOTE=""
if [[ $W6_MODE == auto ]]; then
    if [[ $LAYOUT == unpinned ]]; then
        W6_MODE=unpinned
    elif ((W6_MAX < NCPU)); then
        W6_MODE=pinned
    else
        W6_MODE=unpinned
        W6_NOTE="W6 ran unpinned: with $W6_MAX workers the pinned layout leaves no CPU for the load on this $NCPU-CPU machine, so every W6 cell (1 worker included) is unpinned and the scaling ratios compare like with like (W6_LAYOUT=pinned would pin the proxy workers and let the load share their CPUs)"
    fi
fi
declare -A W6_LNAME=() W6_LPROXY=() W6_LLOAD=()
for n in "${W6_LIST_N[@]}"; do
    if [[ $W6_MODE == unpinned ]]; then
        W6_LNAME[$n]=unpinned; W6_LPROXY[$n]=""; W6_LLOAD[$n]=""
    elif ((n < NCPU)); then
        W6_LNAME[$n]=pinned
        W6_LPROXY[$n]=$(join_cpus "${W6_ORDER[@]:0:n}")
        W6_LLOAD[$n]=$(join_cpus "${W6_ORDER[@]:n}")
    else
        W6_LNAME[$n]=shared
        W6_LPROXY[$n]=$(join_cpus "${W6_ORDER[@]}")
        W6_LLOAD[$n]=$ALL_CPUS_LIST
        if ((n == NCPU)); then shared="one worker per CPU"; else shared="$n workers on $NCPU CPUs"; fi
        W6_NOTE+="${W6_NOTE:+; }with $n workers the proxy has CPUs ${W6_LPROXY[$n]} ($shared) and the load shares all of them (layout \"shared\")"
    fi
done

# ---------------------------------------------------------------- prerequisites
missing=()
for tool in wrk nginx haproxy python3 taskset; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if has_wl W4 || has_wl W6; then command -v iperf3 >/dev/null 2>&1 || missing+=(iperf3); fi
CC=${CC:-cc}
if has_wl W7; then command -v "$CC" >/dev/null 2>&1 || missing+=("$CC (a C compiler for W7)"); fi
if ((${#missing[@]})); then
    die "missing tool(s): ${missing[*]}. Install them with scripts/install-deps.sh --bench (Debian packages: wrk nginx-light libnginx-mod-stream haproxy iperf3 gnuplot-nox)"
fi
if ((CHARTS)) && ! command -v gnuplot >/dev/null 2>&1; then
    warn "gnuplot not found: no PNG charts (scripts/install-deps.sh --bench installs gnuplot-nox)"
    CHARTS=0
fi
[[ -r $HELPER && -r $REPORTER ]] || die "helpers $HELPER / $REPORTER not found"
CLK_TCK=$(getconf CLK_TCK)

# RLIMIT_NOFILE: N idle connections need 2N fds (+ a few) in the proxy and N in each helper.
# Root can normally raise the hard limit; in a container without CAP_SYS_RESOURCE it cannot, and
# W5 then uses the largest count (a multiple of 100) that fits, and says so.
NOFILE_WANT=65536
NOFILE_SPARE=256   # listeners, epoll/io_uring, pipes, logs ... in the proxy
IDLE_CONNS_REQUESTED=$IDLE_CONNS
IDLE_NOTE=""
if [[ $(ulimit -Hn) != unlimited ]] && (($(ulimit -Hn) < NOFILE_WANT)); then
    ulimit -Hn "$NOFILE_WANT" 2>/dev/null || prlimit --pid $$ --nofile="$NOFILE_WANT:$NOFILE_WANT" 2>/dev/null || true
fi
ulimit -Sn "$NOFILE_WANT" 2>/dev/null || ulimit -Sn "$(ulimit -Hn)"
NOFILE=$(ulimit -Sn)
[[ $NOFILE != unlimited ]] || NOFILE=$NOFILE_WANT
if has_wl W5 && ((2 * IDLE_CONNS + NOFILE_SPARE > NOFILE)); then
    IDLE_CONNS=$(((NOFILE - NOFILE_SPARE) / 2 / 100 * 100))
    ((IDLE_CONNS > 0)) || die "open-file limit $NOFILE is too low for W5 (leave W5 out of WORKLOADS)"
    IDLE_NOTE="the open-file limit is $NOFILE (hard $(ulimit -Hn), and raising it failed: no CAP_SYS_RESOURCE?) and a proxy needs 2 descriptors per connection, so W5 held $IDLE_CONNS connections instead of $IDLE_CONNS_REQUESTED"
    warn "$IDLE_NOTE"
fi

# ---------------------------------------------------------------- systems
TMP_DIR=$(mktemp -d "${TMPDIR:-/tmp}/edgeproxy-bench.XXXXXX")
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

read -ra REQ_SYSTEMS <<<"$SYSTEMS"
((${#REQ_SYSTEMS[@]})) || die "SYSTEMS is empty"
if [[ -z ${W6_SYSTEMS:-} ]]; then
    W6_SYSTEMS=""
    for s in "${REQ_SYSTEMS[@]}"; do [[ $s == direct ]] || W6_SYSTEMS+="${W6_SYSTEMS:+ }$s"; done
fi
read -ra REQ_W6 <<<"$W6_SYSTEMS"
has_wl W6 || REQ_W6=()
declare -A CHECKED=() SKIPPED=()
SYSTEM_LIST=(); W6_LIST=(); PRE_NOTES=()
for s in "${REQ_SYSTEMS[@]}" "${REQ_W6[@]}"; do
    { [[ $s =~ ^[A-Za-z0-9_]+$ ]] && declare -F "sys_${s}_start" >/dev/null; } ||
        die "unknown system '$s' in SYSTEMS/W6_SYSTEMS (known: $KNOWN_SYSTEMS)"
    [[ -z ${CHECKED[$s]:-} ]] || continue
    CHECKED[$s]=1
    SYS_SKIP=""
    if declare -F "sys_${s}_check" >/dev/null && ! "sys_${s}_check"; then
        SKIPPED[$s]=$SYS_SKIP
        PRE_NOTES+=("$(sys_label "$s") skipped: $SYS_SKIP")
        warn "$(sys_label "$s") skipped: $SYS_SKIP"
    fi
done
for s in "${REQ_SYSTEMS[@]}"; do [[ -n ${SKIPPED[$s]+x} ]] || SYSTEM_LIST+=("$s"); done
for s in "${REQ_W6[@]}"; do [[ -n ${SKIPPED[$s]+x} ]] || W6_LIST+=("$s"); done
((${#SYSTEM_LIST[@]})) || die "no system left to measure"

# after the checks: a failed check leaves no empty results directory
mkdir -p "$RESULTS_DIR/logs" "$RESULTS_DIR/raw" "$RESULTS_DIR/charts"
CSV=$RESULTS_DIR/runs.csv
csv_header "$CSV"
: >"$RESULTS_DIR/commands.txt"
NOTES=$RESULTS_DIR/notes.tsv
: >"$NOTES"
FAILED=0
# Failed measurements are not notes: their rows in runs.csv carry the error, and the report
# lists them.  A note is context that no row holds (a skipped system, a changed layout).
for t in "${PRE_NOTES[@]}"; do printf '%s\t%s\n' all "$t" >>"$NOTES"; done
[[ -z $IDLE_NOTE ]] || printf '%s\t%s\n' W5 "$IDLE_NOTE" >>"$NOTES"
if has_wl W6 && [[ -n $W6_NOTE ]]; then printf '%s\t%s\n' W6 "$W6_NOTE" >>"$NOTES"; fi

RUN_SYSTEMS=()   # SYSTEM_LIST then W6_LIST, each once
for s in "${SYSTEM_LIST[@]}" "${W6_LIST[@]}"; do
    [[ " ${RUN_SYSTEMS[*]} " == *" $s "* ]] || RUN_SYSTEMS+=("$s")
done
for s in "${RUN_SYSTEMS[@]}"; do printf '%s\t%s\n' "$s" "$(sys_label "$s")"; done >"$RESULTS_DIR/systems.tsv"

# ---------------------------------------------------------------- environment (meta.tsv)
META=$RESULTS_DIR/meta.tsv
: >"$META"
meta() { printf '%s\t%s\n' "$1" "${2//$'\t'/ }" >>"$META"; }
cmdline() {
    local v out=""
    for v in QUICK RUNS DURATION WARMUP WORKLOADS SYSTEMS LAYOUT PROXY_CPUS LOAD_CPUS THREADS CONNECTIONS \
        W3_CONNECTIONS W4_STREAMS IDLE_CONNS_REQUESTED W6_WORKERS W6_STREAMS W6_THREADS W6_LAYOUT \
        W6_SYSTEMS BACKEND_WORKERS EDGEPROXY_SPLICE EDGEPROXY_ARGS W7_RUNS W7_DURATION W7_PROBES \
        W7_BULK_CONNS W7_RAMP W7_PROBE_TIMEOUT_MS; do
        out+="${v%_REQUESTED}=$(printf '%q' "${!v}") "
    done
    out+="scripts/bench.sh"
    ((${#ORIG_ARGS[@]} == 0)) || out+=" $(printf '%q ' "${ORIG_ARGS[@]}")"
    echo "$out"
}
GIT_REV=$(git -C "$REPO_ROOT" rev-parse --short HEAD 2>/dev/null || echo "no commits")
if [[ -n $(git -C "$REPO_ROOT" status --porcelain --untracked-files=no 2>/dev/null | head -n 1) ]]; then GIT_REV+=" (dirty)"; fi
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
meta timestamp "$TS"
meta quick "$QUICK"
meta runs "$RUNS"
meta duration "$DURATION"
meta layout "$LAYOUT"
meta command "$(cmdline)"
meta env.kernel "$(uname -srm)"
meta env.CPU "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
meta env.CPUs "$NCPU usable ($ALL_CPUS_LIST), nproc $(nproc)"
meta env.layout "$BASE_LAYOUT_DESC"
if has_wl W6; then
    w6desc=""
    for n in "${W6_LIST_N[@]}"; do
        w6desc+="${w6desc:+; }$n worker(s): ${W6_LNAME[$n]}"
        [[ -z ${W6_LPROXY[$n]} ]] || w6desc+=" (proxy ${W6_LPROXY[$n]}, load ${W6_LLOAD[$n]})"
    done
    meta "env.W6 layout" "$w6desc"
fi
meta "env.load average at start" "$LOAD_BEFORE"
meta env.wrk "$(wrk -v 2>&1 | head -n 1 || true)"
meta env.nginx "$(nginx -v 2>&1 | head -n 1) (backend: $BACKEND_WORKERS worker(s))"
meta env.haproxy "$(haproxy -v 2>&1 | head -n 1)"
if has_wl W4 || has_wl W6; then meta env.iperf3 "$(iperf3 --version 2>&1 | head -n 1)"; fi
meta env.python3 "$(python3 --version 2>&1)"
for s in "${RUN_SYSTEMS[@]}"; do
    if [[ $s == edgeproxy* ]] && declare -F "sys_${s}_version" >/dev/null; then meta "env.$(sys_label "$s")" "$("sys_${s}_version")"; fi
done
meta env.repo "$REPO_ROOT @ $GIT_REV"
meta env.RLIMIT_NOFILE "soft $NOFILE, hard $(ulimit -Hn)"
meta env.CLK_TCK "$CLK_TCK"
meta env.results "$RESULTS_DIR"
meta idle_conns "$IDLE_CONNS"
meta idle_conns_requested "$IDLE_CONNS_REQUESTED"
meta edgeproxy_splice "$EDGEPROXY_SPLICE"
meta w7_probe_timeout_ms "$W7_PROBE_TIMEOUT_MS"
meta desc.W1 "\`wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s --latency http://127.0.0.1:PORT/\` (keep-alive, 3-byte body)"
meta desc.W2 "\`wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s --latency -H 'Connection: close' http://127.0.0.1:PORT/\` (nginx closes after every response, wrk reconnects: one TCP connection, and one backend connection through a proxy, per request)"
meta desc.W3 "\`wrk -t$THREADS -c$W3_CONNECTIONS -d${DURATION}s --latency http://127.0.0.1:PORT/1m\` (keep-alive, 1 MiB body, nginx sendfile)"
meta desc.W4 "\`iperf3 -c 127.0.0.1 -p PORT -t $DURATION -P {${W4_STREAMS// /,}}\` through each system to one \`iperf3 -s\`"
meta desc.W5 "$IDLE_CONNS idle TCP connections opened through each proxy (fresh instance) to a python3 backend that holds them; VmRSS of the proxy's processes summed"
meta desc.W7 "$W7_BULK_CONNS connections through the proxy each read as fast as the client can (\`accept-bulk bulk\`, recv with MSG_TRUNC) from a backend that writes to them endlessly (\`accept-bulk serve\`, 64 KiB sends from a static buffer); after ${W7_RAMP}s of that, \`accept-bulk probe\` opens $W7_PROBES new connections through the same listener, one after another, paced over ${W7_DURATION}s: connect(), send 2 bytes, time to the first response byte (the backend answers at once); probes that take long leave fewer probes in a run. $W7_RUNS runs per system, interleaved. A probe without an answer within ${W7_PROBE_TIMEOUT_MS} ms enters the latencies at that value and counts as an error. The proxy's CPU and run-queue wait (/proc/PID/task/*/schedstat) are measured over the probing: CPU + wait near 100 % means the proxy was never idle, even where other load took part of its CPU."
meta desc.W6 "W1 (\`wrk -t$W6_THREADS -c$CONNECTIONS\`) and W4 (\`iperf3 -P $W6_STREAMS\`) with ${W6_WORKERS// /, } worker(s): edgeproxy --workers N, HAProxy nbthread N, nginx worker_processes N"

# ---------------------------------------------------------------- shared backends
NGINX_PORT=$(free_port)
NGINX_PREFIX=$TMP_DIR/nginx-backend
mkdir -p "$NGINX_PREFIX/tmp" "$NGINX_PREFIX/html"
head -c 1048576 /dev/zero >"$NGINX_PREFIX/html/1m.bin"
# nginx workers run as an unprivileged user when started as root: let them reach the file
chmod 711 "$TMP_DIR" "$NGINX_PREFIX"
chmod -R a+rX "$NGINX_PREFIX/html"
fill_template "$BENCH_DIR/nginx-backend.conf.in" "$NGINX_PREFIX/nginx.conf" \
    "PREFIX=$NGINX_PREFIX" "PORT=$NGINX_PORT" "WORKERS=$BACKEND_WORKERS" "NOFILE=$NOFILE"
sed -i "s|^error_log .*|error_log $RESULTS_DIR/logs/nginx-backend.error.log warn;|" "$NGINX_PREFIX/nginx.conf"
cp -- "$NGINX_PREFIX/nginx.conf" "$RESULTS_DIR/logs/nginx-backend.conf"
nginx -t -p "$NGINX_PREFIX" -c "$NGINX_PREFIX/nginx.conf" -e "$RESULTS_DIR/logs/nginx-backend.error.log" \
    >"$RESULTS_DIR/logs/nginx-backend.check.log" 2>&1 ||
    { cat "$RESULTS_DIR/logs/nginx-backend.check.log" >&2; die "nginx backend config test failed"; }
log "starting the nginx backend on 127.0.0.1:$NGINX_PORT (${BASE_LOAD_SET:+CPU $BASE_LOAD_SET, }$BACKEND_WORKERS worker(s))"
spawn nginx-backend "$BASE_LOAD_SET" nginx -p "$NGINX_PREFIX" -c "$NGINX_PREFIX/nginx.conf" \
    -e "$RESULTS_DIR/logs/nginx-backend.error.log"
NGINX_PID=$SPAWNED_PID
wait_ready nginx-backend "$NGINX_PID" "$NGINX_PORT" || die "nginx backend: $SYS_ERROR"
python3 - "$NGINX_PORT" <<'EOF' || die "the nginx backend does not serve / and /1m as expected"
import sys, urllib.request
base = "http://127.0.0.1:%s" % sys.argv[1]
try:
    assert urllib.request.urlopen(base + "/", timeout=5).read() == b"ok\n", "/ is not 'ok'"
    assert len(urllib.request.urlopen(base + "/1m", timeout=5).read()) == 1048576, "/1m is not 1 MiB"
except Exception as e:
    sys.exit("nginx backend: %s" % e)
EOF
backend_pids() { echo "$NGINX_PID $(children_of "$NGINX_PID" | tr '\n' ' ')${IPERF_PID:+ $IPERF_PID}"; }

IPERF_PORT=""; IPERF_PID=""; IPERF_RESTARTS=0
start_iperf_server() {
    local cpus=${1-$BASE_LOAD_SET}
    [[ -n $IPERF_PORT ]] || IPERF_PORT=$(free_port)
    spawn "iperf3-server$( ((IPERF_RESTARTS == 0)) || echo ".$IPERF_RESTARTS")" "$cpus" \
        iperf3 -s -p "$IPERF_PORT" -B 127.0.0.1
    IPERF_PID=$SPAWNED_PID
    wait_ready iperf3-server "$IPERF_PID" "$IPERF_PORT" || die "iperf3 server: $SYS_ERROR"
    sleep 0.3  # the probe connection from wait_ready counts as a (failed) test
}
# after a failed client run: make sure the iperf3 server is alive and idle
iperf_recover() {
    warn "restarting the iperf3 server (logs/iperf3-server*.log)"
    local cpus=""  # keep the current layout (W6 may have moved the server)
    ! kill -0 "$IPERF_PID" 2>/dev/null || cpus=$(taskset -pc "$IPERF_PID" 2>/dev/null | sed 's/.*: //')
    [[ -n $cpus ]] || cpus=$BASE_LOAD_SET
    stop_pid "$IPERF_PID"
    IPERF_RESTARTS=$((IPERF_RESTARTS + 1))
    ((IPERF_RESTARTS <= 5)) || die "the iperf3 server failed too often"
    start_iperf_server "$cpus"
}
if has_wl W4 || has_wl W6; then
    start_iperf_server
    log "iperf3 server on 127.0.0.1:$IPERF_PORT${BASE_LOAD_SET:+ (CPU $BASE_LOAD_SET)}"
fi

# ---------------------------------------------------------------- instances
# An instance is one started system, keyed e.g. "http:haproxy" or "w6b:2:edgeproxy".
declare -A I_SYS=() I_PORT=() I_PIDS=() I_MPIDS=() I_RSSPIDS=() I_ERR=() I_TAG=()
# inst_start KEY SYSTEM BACKEND_PORT TAG WORKERS CPUS WORKLOAD
inst_start() {
    local key=$1 s=$2
    SYS_PORT=""; SYS_PIDS=""; SYS_MEASURE_PIDS=""; SYS_RSS_PIDS=""; SYS_ERROR=""
    if [[ $s == direct ]]; then
        log "direct [$4]: clients connect to 127.0.0.1:$3 itself"
    else
        log "starting $(sys_label "$s") [$4]${5:+ with $5 worker(s)}${6:+ on CPU $6} -> 127.0.0.1:$3"
    fi
    I_SYS[$key]=$s; I_TAG[$key]=$4; I_ERR[$key]=""
    if ! "sys_${s}_start" "$3" "$4" "$5" "$6"; then
        I_ERR[$key]="failed to start: ${SYS_ERROR:-unknown error}"
        FAILED=1
        warn "$7: $(sys_label "$s") [$4] ${I_ERR[$key]}"
        local pid
        for pid in $SYS_PIDS; do stop_pid "$pid"; done
        SYS_PIDS=""
    fi
    I_PORT[$key]=$SYS_PORT; I_PIDS[$key]=$SYS_PIDS; I_MPIDS[$key]=$SYS_MEASURE_PIDS; I_RSSPIDS[$key]=$SYS_RSS_PIDS
}
inst_stop() {
    local pid
    for pid in ${I_PIDS[$1]}; do stop_pid "$pid"; done
    I_PIDS[$1]=""
}
# inst_usable KEY WORKLOAD : false if it failed to start or has died (the death is noted once)
inst_usable() {
    local key=$1
    local -a p=()
    [[ -z ${I_ERR[$key]} ]] || return 1
    read -ra p <<<"${I_PIDS[$key]} ${I_MPIDS[$key]}"
    ((${#p[@]} == 0)) || pids_alive "${p[@]}" && return 0
    I_ERR[$key]="exited during the benchmark (logs/${I_TAG[$key]}.log)"
    FAILED=1
    warn "$2: $(sys_label "${I_SYS[$key]}") [${I_TAG[$key]}] ${I_ERR[$key]}"
    tail -n 10 "$RESULTS_DIR/logs/${I_TAG[$key]}.log" >&2 2>/dev/null || true
    return 1
}

# rotated R ITEM... : ITEMs rotated left by R-1 (run R of an interleaved series starts one
# system later than run R-1, so no system always follows the same one)
rotated() {
    local r=$1 k
    shift
    (($#)) || return 0
    k=$(((r - 1) % $#))
    echo "${@:k+1}" "${@:1:k}"
}

# cpu_fill TICKS_BEFORE TICKS_AFTER DURATION : proxy CPU columns of M from a tick difference
cpu_fill() {
    local t0=$1 t1=$2 dur=$3
    [[ -n $t0 && -n $t1 ]] || return 0
    # comma-separated: an empty field must not shift the ones after it
    IFS=, read -r 'M[proxy_cpu_s]' 'M[cpu_us_per_req]' 'M[cpu_ms_per_gib]' 'M[cpu_pct]' < <(awk -v t=$((t1 - t0)) \
        -v hz="$CLK_TCK" -v d="$dur" -v n="${M[requests]:-}" -v b="${M[bytes]:-}" 'BEGIN {
            s = t / hz
            printf "%.3f,%s,%s,%.1f\n", s, (n > 0 ? sprintf("%.3f", s * 1e6 / n) : ""), \
                (b > 0 ? sprintf("%.1f", s * 1000 / (b / 1073741824)) : ""), s / d * 100 }')
}

# parse_wrk FILE -> "requests rps p50_us p99_us errors mib_s bytes" (NA when missing)
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
    function bytes(v,  n, u) {  # wrk prints binary units: KB = 1024 B
        n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
        if (u == "B") return n
        if (u == "KB") return n * 1024
        if (u == "MB") return n * 1048576
        if (u == "GB") return n * 1073741824
        if (u == "TB") return n * 1099511627776
        return "NA"
    }
    BEGIN { req = "NA"; rps = "NA"; p50 = "NA"; p99 = "NA"; err = 0; mib = "NA"; nb = "NA" }
    /^ +50% /                   { p50 = us($2) }
    /^ +99% /                   { p99 = us($2) }
    / requests in /             { req = $1; nb = bytes($5) }
    /^Requests\/sec:/           { rps = $2 }
    /^Transfer\/sec:/           { t = bytes($2); if (t != "NA") mib = sprintf("%.1f", t / 1048576) }
    /Socket errors:/            { gsub(/,/, ""); err += $4 + $6 + $8 + $10 }
    /Non-2xx or 3xx responses:/ { err += $NF }
    END { printf "%s %s %s %s %s %s %s\n", req, rps, p50, p99, err, mib, (nb == "NA" ? nb : sprintf("%.0f", nb)) }' "$1"
}

# measure_wrk KEY DURATION THREADS CONNECTIONS PATH CLOSE LOAD_CPUS OUT : fills M
measure_wrk() {
    local key=$1 dur=$2 threads=$3 conns=$4 path=$5 close=$6 cpus=$7 out=$8 t0="" t1="" rc=0 k
    local -a mp=() pin=() hdr=() vals=()
    M=()
    read -ra mp <<<"${I_MPIDS[$key]}"
    [[ -z $cpus ]] || pin=(taskset -c "$cpus")
    ((close == 0)) || hdr=(-H "Connection: close")
    if ((${#mp[@]})); then t0=$(proc_ticks "${mp[@]}" 2>/dev/null) || t0=""; fi
    timeout $((dur + 30)) "${pin[@]}" wrk "-t$threads" "-c$conns" "-d${dur}s" --latency "${hdr[@]}" \
        "http://127.0.0.1:${I_PORT[$key]}$path" >"$out" 2>&1 || rc=$?
    if ((${#mp[@]})); then t1=$(proc_ticks "${mp[@]}" 2>/dev/null) || t1=""; fi
    read -ra vals < <(parse_wrk "$out")
    for k in requests rps p50_us p99_us errors mib_s bytes; do
        [[ ${vals[0]} == NA ]] || M[$k]=${vals[0]}
        vals=("${vals[@]:1}")
    done
    M[raw]=${out#"$RESULTS_DIR"/}
    if ((rc != 0)); then
        M[error]="wrk exit status $rc"
    elif [[ -z ${M[rps]:-} ]]; then
        M[error]="no result in wrk's output"
    fi
    [[ -n ${M[requests]:-} ]] || return 0
    ((${#mp[@]} == 0)) || cpu_fill "$t0" "$t1" "$dur"
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

# measure_iperf KEY STREAMS DURATION LOAD_CPUS OUT : fills M
measure_iperf() {
    local key=$1 streams=$2 dur=$3 cpus=$4 out=$5 t0="" t1="" rc=0 gbps bytes err
    local -a mp=() pin=()
    M=()
    read -ra mp <<<"${I_MPIDS[$key]}"
    [[ -z $cpus ]] || pin=(taskset -c "$cpus")
    if ((${#mp[@]})); then t0=$(proc_ticks "${mp[@]}" 2>/dev/null) || t0=""; fi
    timeout $((dur + 30)) "${pin[@]}" iperf3 -c 127.0.0.1 -p "${I_PORT[$key]}" -t "$dur" -P "$streams" \
        -J --connect-timeout 5000 >"$out" 2>"$out.stderr" || rc=$?
    if ((${#mp[@]})); then t1=$(proc_ticks "${mp[@]}" 2>/dev/null) || t1=""; fi
    read -r gbps bytes err < <(parse_iperf "$out")
    ((rc == 0)) || [[ $err != - ]] || err="iperf3_exit_status_$rc"
    M[raw]=${out#"$RESULTS_DIR"/}
    if [[ $err != - ]]; then
        M[error]=${err//_/ }
        iperf_recover
        return 0
    fi
    M[gbit_s]=$gbps; M[bytes]=$bytes
    ((${#mp[@]} == 0)) || cpu_fill "$t0" "$t1" "$dur"
}

# log_m WORKLOAD SYSTEM RUN EXTRA : one progress line from M
log_m() {
    local msg k
    msg="$1 run $3/$RUNS $(sys_label "$2")${4:+ $4}:"
    for k in rps mib_s gbit_s p99_us cpu_us_per_req cpu_ms_per_gib errors error; do
        [[ -z ${M[$k]:-} ]] || msg+=" $k=${M[$k]}"
    done
    log "$msg (load $(loadavg1))"
    [[ -z ${M[error]:-} ]] || FAILED=1
    if [[ -n ${M[errors]:-} && ${M[errors]} != 0 ]]; then warn "$1 $(sys_label "$2") run $3: wrk counted ${M[errors]} errors (${M[raw]})"; fi
}

# http_params WORKLOAD -> "THREADS CONNECTIONS PATH CLOSE"
http_params() {
    case $1 in
        W1) echo "$THREADS $CONNECTIONS / 0" ;;
        W2) echo "$THREADS $CONNECTIONS / 1" ;;
        W3) echo "$THREADS $W3_CONNECTIONS /1m 0" ;;
    esac
}

base_row=(workers=1 "layout=$LAYOUT" "proxy_cpus=$BASE_PROXY_SET" "load_cpus=$BASE_LOAD_SET" "duration_s=$DURATION")

# ---------------------------------------------------------------- W1, W2, W3 (nginx backend)
if ((${#HTTP_WLS[@]})); then
    for s in "${SYSTEM_LIST[@]}"; do
        inst_start "http:$s" "$s" "$NGINX_PORT" "$s-http" "" "$BASE_PROXY_SET" "${HTTP_WLS[0]}"
    done
    if ((WARMUP > 0)); then
        for w in "${HTTP_WLS[@]}"; do
            read -r th co path cl <<<"$(http_params "$w")"
            for s in "${SYSTEM_LIST[@]}"; do
                inst_usable "http:$s" "$w" || continue
                log "$w warm-up $(sys_label "$s") (${WARMUP}s)"
                measure_wrk "http:$s" "$WARMUP" "$th" "$co" "$path" "$cl" "$BASE_LOAD_SET" "$RESULTS_DIR/raw/warmup-$w-$s.txt"
            done
        done
    fi
    for ((run = 1; run <= RUNS; run++)); do
        for w in "${HTTP_WLS[@]}"; do
            read -r th co path cl <<<"$(http_params "$w")"
            for s in $(rotated "$run" "${SYSTEM_LIST[@]}"); do
                if ! inst_usable "http:$s" "$w"; then
                    M=([error]="${I_ERR[http:$s]}")
                else
                    measure_wrk "http:$s" "$DURATION" "$th" "$co" "$path" "$cl" "$BASE_LOAD_SET" "$RESULTS_DIR/raw/$w-run$run-$s.txt"
                    inst_usable "http:$s" "$w" || M[error]=${M[error]:-${I_ERR[http:$s]}}
                    log_m "$w" "$s" "$run"
                fi
                csv_row "$CSV" workload="$w" "${base_row[@]}" run="$run" system="$s" loadavg1="$(loadavg1)"
            done
        done
    done
    for s in "${SYSTEM_LIST[@]}"; do inst_stop "http:$s"; done
fi

# ---------------------------------------------------------------- W4 (iperf3)
if has_wl W4; then
    for s in "${SYSTEM_LIST[@]}"; do
        inst_start "bulk:$s" "$s" "$IPERF_PORT" "$s-bulk" "" "$BASE_PROXY_SET" W4
        sleep 0.3  # wait_ready's probe went through to the iperf3 server
    done
    if ((WARMUP > 0)); then
        for s in "${SYSTEM_LIST[@]}"; do
            inst_usable "bulk:$s" W4 || continue
            log "W4 warm-up $(sys_label "$s") (${WARMUP}s, 1 stream)"
            measure_iperf "bulk:$s" 1 "$WARMUP" "$BASE_LOAD_SET" "$RESULTS_DIR/raw/warmup-W4-$s.json"
        done
    fi
    for ((run = 1; run <= RUNS; run++)); do
        for n in "${STREAMS_LIST[@]}"; do
            for s in $(rotated "$run" "${SYSTEM_LIST[@]}"); do
                if ! inst_usable "bulk:$s" W4; then
                    M=([error]="${I_ERR[bulk:$s]}")
                else
                    measure_iperf "bulk:$s" "$n" "$DURATION" "$BASE_LOAD_SET" "$RESULTS_DIR/raw/W4-run$run-P$n-$s.json"
                    inst_usable "bulk:$s" W4 || M[error]=${M[error]:-${I_ERR[bulk:$s]}}
                    log_m W4 "$s" "$run" "-P $n"
                fi
                csv_row "$CSV" workload=W4 "${base_row[@]}" streams="$n" run="$run" system="$s" loadavg1="$(loadavg1)"
            done
        done
    done
    for s in "${SYSTEM_LIST[@]}"; do inst_stop "bulk:$s"; done
fi

# ---------------------------------------------------------------- W5 (idle connections)
# One measurement per proxy (memory does not vary with machine noise), each on a fresh instance
# in front of a python3 backend that accepts and holds connections.
if has_wl W5; then
    HOLD_PORT=$(free_port)
    HOLD_STATUS=$TMP_DIR/hold.status
    log "starting the idle backend (python3 hold server) on 127.0.0.1:$HOLD_PORT"
    spawn idle-backend "$BASE_LOAD_SET" python3 "$HELPER" hold "$HOLD_PORT" "$HOLD_STATUS"
    HOLD_PID=$SPAWNED_PID
    wait_ready idle-backend "$HOLD_PID" "$HOLD_PORT" || die "idle backend: $SYS_ERROR"
    sleep 0.3  # let the hold server notice the probe connection closing
    for s in "${SYSTEM_LIST[@]}"; do
        [[ $s != direct ]] || continue
        key="idle:$s"
        inst_start "$key" "$s" "$HOLD_PORT" "$s-idle" "" "$BASE_PROXY_SET" W5
        M=()
        if inst_usable "$key" W5; then
            pids=$(tr ' ' ',' <<<"${I_RSSPIDS[$key]}")
            out=$RESULTS_DIR/raw/W5-$s.txt
            log "W5 $(sys_label "$s"): opening $IDLE_CONNS idle connections (pids ${I_RSSPIDS[$key]})"
            pin=(); [[ -z $BASE_LOAD_SET ]] || pin=(taskset -c "$BASE_LOAD_SET")
            printf '$ %s\n' "$(printf '%q ' "${pin[@]}" python3 "$HELPER" clients --port "${I_PORT[$key]}" \
                --status "$HOLD_STATUS" --pids "$pids" -n "$IDLE_CONNS")" >>"$RESULTS_DIR/commands.txt"
            timeout 300 "${pin[@]}" python3 "$HELPER" clients --port "${I_PORT[$key]}" --status "$HOLD_STATUS" \
                --pids "$pids" -n "$IDLE_CONNS" >"$out" 2>"$out.stderr" || echo "error=idle helper failed (status $?)" >>"$out"
            declare -A R=()
            while IFS='=' read -r k v; do [[ -z $k ]] || R[$k]=$v; done <"$out"
            M[raw]=${out#"$RESULTS_DIR"/}
            M[conns]=$IDLE_CONNS
            M[rss_before_kib]=${R[rss_before_kib]:-}
            M[rss_kib]=${R[rss_after_kib]:-}
            if [[ -n ${M[rss_before_kib]} && -n ${M[rss_kib]} ]]; then
                M[bytes_per_conn]=$(awk -v a="${M[rss_kib]}" -v b="${M[rss_before_kib]}" -v n="$IDLE_CONNS" 'BEGIN { printf "%.0f", (a - b) * 1024 / n }')
            fi
            M[error]=${R[error]:-}
            unset R
            inst_usable "$key" W5 || M[error]=${M[error]:-${I_ERR[$key]}}
            [[ -z ${M[error]} ]] || { FAILED=1; warn "W5 $(sys_label "$s"): ${M[error]}"; }
            log "W5 $(sys_label "$s"): RSS ${M[rss_before_kib]:-?} KiB -> ${M[rss_kib]:-?} KiB with $IDLE_CONNS connections, ${M[bytes_per_conn]:-?} B each"
        else
            M[error]=${I_ERR[$key]}
        fi
        csv_row "$CSV" workload=W5 "${base_row[@]}" duration_s= run=1 system="$s" loadavg1="$(loadavg1)"
        inst_stop "$key"
    done
    stop_pid "$HOLD_PID"
fi

# ---------------------------------------------------------------- W6 (scaling)
if has_wl W6 && ((${#W6_LIST[@]})); then
    for n in "${W6_LIST_N[@]}"; do
        for s in "${W6_LIST[@]}"; do
            inst_start "w6h:$n:$s" "$s" "$NGINX_PORT" "$s-w6-$n" "$n" "${W6_LPROXY[$n]}" W6
            inst_start "w6b:$n:$s" "$s" "$IPERF_PORT" "$s-w6bulk-$n" "$n" "${W6_LPROXY[$n]}" W6
            sleep 0.3
        done
    done
    w6_row() {  # w6_row N RUN SYSTEM WORKLOAD [STREAMS]
        csv_row "$CSV" workload="$4" workers="$1" streams="${5:-}" layout="${W6_LNAME[$1]}" proxy_cpus="${W6_LPROXY[$1]}" \
            load_cpus="${W6_LLOAD[$1]}" duration_s="$DURATION" run="$2" system="$3" loadavg1="$(loadavg1)"
    }
    if ((WARMUP > 0)); then
        for n in "${W6_LIST_N[@]}"; do
            # shellcheck disable=SC2046 # backend_pids is a PID list
            set_affinity "${W6_LLOAD[$n]}" $(backend_pids)
            for s in "${W6_LIST[@]}"; do
                inst_usable "w6h:$n:$s" W6 || continue
                log "W6 warm-up $(sys_label "$s"), $n worker(s) (${WARMUP}s)"
                measure_wrk "w6h:$n:$s" "$WARMUP" "$W6_THREADS" "$CONNECTIONS" / 0 "${W6_LLOAD[$n]}" "$RESULTS_DIR/raw/warmup-W6-$n-$s.txt"
            done
        done
    fi
    for ((run = 1; run <= RUNS; run++)); do
        for n in "${W6_LIST_N[@]}"; do
            # shellcheck disable=SC2046 # backend_pids is a PID list
            set_affinity "${W6_LLOAD[$n]}" $(backend_pids)
            for s in $(rotated "$run" "${W6_LIST[@]}"); do
                if ! inst_usable "w6h:$n:$s" W6; then
                    M=([error]="${I_ERR[w6h:$n:$s]}")
                else
                    measure_wrk "w6h:$n:$s" "$DURATION" "$W6_THREADS" "$CONNECTIONS" / 0 "${W6_LLOAD[$n]}" "$RESULTS_DIR/raw/W6-W1-run$run-w$n-$s.txt"
                    inst_usable "w6h:$n:$s" W6 || M[error]=${M[error]:-${I_ERR[w6h:$n:$s]}}
                    log_m W6-W1 "$s" "$run" "$n worker(s)"
                fi
                w6_row "$n" "$run" "$s" W6-W1
            done
            for s in $(rotated "$run" "${W6_LIST[@]}"); do
                if ! inst_usable "w6b:$n:$s" W6; then
                    M=([error]="${I_ERR[w6b:$n:$s]}")
                else
                    measure_iperf "w6b:$n:$s" "$W6_STREAMS" "$DURATION" "${W6_LLOAD[$n]}" "$RESULTS_DIR/raw/W6-W4-run$run-w$n-$s.json"
                    inst_usable "w6b:$n:$s" W6 || M[error]=${M[error]:-${I_ERR[w6b:$n:$s]}}
                    log_m W6-W4 "$s" "$run" "$n worker(s), -P $W6_STREAMS"
                fi
                w6_row "$n" "$run" "$s" W6-W4 "$W6_STREAMS"
            done
        done
    done
    for n in "${W6_LIST_N[@]}"; do
        for s in "${W6_LIST[@]}"; do inst_stop "w6h:$n:$s"; inst_stop "w6b:$n:$s"; done
    done
fi

# ---------------------------------------------------------------- W7 (accept under bulk)
# One accept-bulk backend for every system: a connection that starts with "B" is streamed to
# endlessly, one that starts with "P" (a probe) is answered at once. A single listener per proxy
# is enough to tell them apart (the backend does), so the probes queue on the very listener the
# bulk connections came through, and every proxy runs as configured for W1-W6.
if has_wl W7; then
    ACCEPT_BULK=$TMP_DIR/accept-bulk
    "$CC" -O2 -std=c99 -Wall -o "$ACCEPT_BULK" "$BENCH_DIR/accept-bulk.c" >"$RESULTS_DIR/logs/accept-bulk.cc.log" 2>&1 ||
        die "could not compile scripts/bench/accept-bulk.c (logs/accept-bulk.cc.log)"
    W7_PORT=$(free_port)
    w7_lifetime=$(( (W7_RUNS + 1) * ${#SYSTEM_LIST[@]} * (W7_RAMP + W7_DURATION + 2 * W7_PROBE_TIMEOUT_MS / 1000 + 20) + 120 ))
    log "starting the W7 backend (accept-bulk serve) on 127.0.0.1:$W7_PORT${BASE_LOAD_SET:+ (CPU $BASE_LOAD_SET)}"
    spawn w7-backend "$BASE_LOAD_SET" "$ACCEPT_BULK" serve -p "$W7_PORT" -T "$w7_lifetime"
    W7_BACKEND_PID=$SPAWNED_PID
    wait_ready w7-backend "$W7_BACKEND_PID" "$W7_PORT" || die "W7 backend: $SYS_ERROR"
    for s in "${SYSTEM_LIST[@]}"; do
        inst_start "w7:$s" "$s" "$W7_PORT" "$s-w7" "" "$BASE_PROXY_SET" W7
    done

    # measure_w7 KEY DURATION OUT : bulk load, then the probe; fills M
    measure_w7() {
        local key=$1 dur=$2 out=$3 t0="" t1="" w0="" w1="" bulk_pid rc=0 i k v started ended
        local -a mp=() pin=()
        local -A P=() B=()
        M=()
        read -ra mp <<<"${I_MPIDS[$key]}"
        [[ -z $BASE_LOAD_SET ]] || pin=(taskset -c "$BASE_LOAD_SET")
        "${pin[@]}" "$ACCEPT_BULK" bulk -p "${I_PORT[$key]}" -c "$W7_BULK_CONNS" -d $((W7_RAMP + dur + 2 * W7_PROBE_TIMEOUT_MS / 1000 + 15)) \
            >"$out.bulk" 2>&1 </dev/null &
        bulk_pid=$!
        STARTED_PIDS+=("$bulk_pid")
        for ((i = 0; i < 100; i++)); do  # "ready N": every connection established (or failed)
            grep -q '^ready ' "$out.bulk" 2>/dev/null && break
            kill -0 "$bulk_pid" 2>/dev/null || break
            sleep 0.1
        done
        sleep "$W7_RAMP"
        if ((${#mp[@]})); then
            t0=$(proc_ticks "${mp[@]}" 2>/dev/null) || t0=""
            w0=$(proc_wait_ns "${mp[@]}")
        fi
        started=$(date +%s%N)
        timeout $((dur + 2 * W7_PROBE_TIMEOUT_MS / 1000 + 30)) "${pin[@]}" "$ACCEPT_BULK" probe -p "${I_PORT[$key]}" \
            -n "$W7_PROBES" -d "$dur" -T "$W7_PROBE_TIMEOUT_MS" >"$out.probe" 2>&1 </dev/null || rc=$?
        ended=$(date +%s%N)
        if ((${#mp[@]})); then
            t1=$(proc_ticks "${mp[@]}" 2>/dev/null) || t1=""
            w1=$(proc_wait_ns "${mp[@]}")
            M[wait_pct]=$(awk -v w=$((w1 - w0)) -v d=$((ended - started)) 'BEGIN { printf "%.1f", w / d * 100 }')
        fi
        kill -TERM "$bulk_pid" 2>/dev/null || true
        wait "$bulk_pid" 2>/dev/null || true
        while read -r k v; do [[ -z $k ]] || P[$k]=$v; done <"$out.probe"
        while read -r k v; do [[ -z $k ]] || B[$k]=$v; done <"$out.bulk"
        M[raw]=${out#"$RESULTS_DIR"/}.probe
        M[p50_us]=${P[latency_p50_us]:-}; M[p99_us]=${P[latency_p99_us]:-}; M[max_us]=${P[latency_max_us]:-}
        M[probes]=${P[completed]:-}
        [[ -z ${P[timeouts]:-} ]] || M[errors]=$((${P[timeouts]} + ${P[errors]:-0}))
        M[conns]=${B[established]:-}; M[mib_s]=${B[mib_s]:-}
        if ((rc != 0)) || [[ -z ${P[latency_p99_us]:-} ]]; then  # timeouts are a result, not a failure
            M[error]="no probe answered or timed out (accept-bulk probe exit status $rc, ${M[raw]})"
        elif [[ ${B[established]:-0} != "$W7_BULK_CONNS" ]]; then
            M[error]="${B[established]:-no} of $W7_BULK_CONNS bulk connections established (${out#"$RESULTS_DIR"/}.bulk)"
        fi
        ((${#mp[@]} == 0)) || cpu_fill "$t0" "$t1" "$(awk -v a="$started" -v b="$ended" 'BEGIN { printf "%.3f", (b - a) / 1e9 }')"
        M[bytes]=${B[bytes]:-}  # after cpu_fill: the bulk client counts over a longer window than the probe's
    }
    log_w7() {  # log_w7 RUN SYSTEM
        log "W7 run $1/$W7_RUNS $(sys_label "$2"): probe p50=${M[p50_us]:-?}us p99=${M[p99_us]:-?}us max=${M[max_us]:-?}us completed=${M[probes]:-?} errors=${M[errors]:-?} proxy_cpu=${M[cpu_pct]:--}% wait=${M[wait_pct]:--}% bulk=${M[mib_s]:-?}MiB/s${M[error]:+ error=${M[error]}} (load $(loadavg1))"
        [[ -z ${M[error]:-} ]] || FAILED=1
        if [[ -n ${M[errors]:-} && ${M[errors]} != 0 ]]; then warn "W7 $(sys_label "$2") run $1: ${M[errors]} probe(s) timed out or failed (${M[raw]})"; fi
    }
    if ((WARMUP > 0)); then
        for s in "${SYSTEM_LIST[@]}"; do
            inst_usable "w7:$s" W7 || continue
            log "W7 warm-up $(sys_label "$s") (${WARMUP}s)"
            measure_w7 "w7:$s" "$WARMUP" "$RESULTS_DIR/raw/warmup-W7-$s"
        done
    fi
    for ((run = 1; run <= W7_RUNS; run++)); do
        for s in $(rotated "$run" "${SYSTEM_LIST[@]}"); do
            if ! inst_usable "w7:$s" W7; then
                M=([error]="${I_ERR[w7:$s]}")
            else
                measure_w7 "w7:$s" "$W7_DURATION" "$RESULTS_DIR/raw/W7-run$run-$s"
                inst_usable "w7:$s" W7 || M[error]=${M[error]:-${I_ERR[w7:$s]}}
                log_w7 "$run" "$s"
            fi
            csv_row "$CSV" workload=W7 "${base_row[@]}" duration_s="$W7_DURATION" run="$run" system="$s" loadavg1="$(loadavg1)"
        done
    done
    for s in "${SYSTEM_LIST[@]}"; do inst_stop "w7:$s"; done
    stop_pid "$W7_BACKEND_PID"
fi

[[ -z $IPERF_PID ]] || stop_pid "$IPERF_PID"
stop_pid "$NGINX_PID"
meta "env.load average at end" "$(cut -d' ' -f1-3 /proc/loadavg)"

# ---------------------------------------------------------------- report, charts, publish
report_args=("$RESULTS_DIR")
((CHARTS)) || report_args+=(--no-charts)
python3 "$REPORTER" "${report_args[@]}" || { warn "report.py failed"; FAILED=1; }
if [[ $PUBLISH != 0 ]]; then
    mkdir -p "$REPO_ROOT/docs/img"
    published=0
    for png in "$RESULTS_DIR"/charts/*.png; do
        [[ -e $png ]] || continue
        cp -- "$png" "$REPO_ROOT/docs/img/bench-$(basename "$png")"
        published=$((published + 1))
    done
    log "published $published chart(s) to docs/img/bench-*.png"
fi
cat "$RESULTS_DIR/report.md"
log "results: $RESULTS_DIR"
((FAILED == 0)) || { warn "some measurements failed; see the notes in $RESULTS_DIR/report.md"; exit 1; }

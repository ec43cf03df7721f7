#!/usr/bin/env bash
# Issue 13: bsdproxy's acceleration experiment. A server sends a FILE_BYTES file (1.5 MB) FILES
# times in a row (5) to a client behind a RATE (1.5 Mbit/s) line, directly and through each
# proxy; for every file it reports how long the SERVER took to write it, how long the CLIENT took
# to receive it, the acceleration factor (client time / server time) and each proxy's peak RSS.
# bsdproxy reported a factor of 128 for this shape; an accelerating proxy lets the server finish
# at loopback speed while the proxy feeds the slow client.
#
# The line: each setup gets a network namespace holding the client, joined to the root namespace
# by a veth pair, with a tc token-bucket filter (tbf, RATE, a QUEUE_MS queue) on the root end:
# every byte towards the client leaves through a kernel-enforced 1.5 Mbit/s bottleneck, as on a
# DSL line (the client's upload is not shaped; it carries requests-free ACKs only). Server and
# proxies run in the root namespace on the veth's address, so server <-> proxy traffic is local
# (loopback speed) and only proxy -> client crosses the shaper. This is faithful because nothing
# in the proxy or the server knows about the limit: the client's TCP window and the shaper's
# queue back-pressure into the proxy exactly as a real slow line does, and the proxy either holds
# the rest (accelerating) or stops reading from the server (TCP flow control then stalls the
# server). The alternative, a client on loopback pacing its reads with a small receive buffer,
# shapes by the client's window only: loopback's RTT is microseconds, the pacing is the
# reader's timer, and socket-buffer autotuning on the sender behaves unlike over a real path.
#
# Files are sent on FILES connections one after another (the client opens the next when it has
# the previous in full), the HTTP/1.0 shape bsdproxy accelerated: each response gets the proxy's
# per-connection budget. Five responses on one connection would share one 2 MB budget, and files
# 2-5 would measure the budget, not acceleration. The server's time for a file runs from accept()
# to the moment the peer's kernel has acknowledged every byte (SIOCOUTQ = 0: the proxy, or the
# client when direct, took everything); sendall() alone can return while the bytes still sit in
# the server's own socket buffer. The client's time runs from connect() to EOF.
#
# Setups (SETUPS): direct (the client connects to the server through the shaped line),
# edgeproxy (no acceleration), edgeproxy_accel (`accelerate ACCEL_SIZE` on the listener, from a
# config file, or --accelerate on the command line, whichever the binary accepts; marked "not
# available" when neither is), haproxy (mode tcp, tune.bufsize = ACCEL_SIZE: HAProxy holds up to
# one buffer per direction, so this is its equivalent; 2 MiB is far below its limit, 256 MB when
# HTTP is in use), and optionally haproxy_default (16 KiB buffers), edgeproxy_uring and
# edgeproxy_uring_accel (EDGEPROXY_URING_BIN).
#
# The setups run at the same time, each on its own shaped line, with their first connections
# STAGGER seconds apart (the files then end at different moments, so no two servers write into
# proxies at once); the whole run takes about STAGGER x setups + FILES x 8 s plus start-up, under
# a minute by default. PARALLEL=0 runs the setups one after another instead (4x longer).
#
#   scripts/bench-accelerate.sh
#   QUICK=1 scripts/bench-accelerate.sh        # 150 000-byte files, 3 of them: a test of the script
#   FILES=2 SETUPS="direct edgeproxy_accel" scripts/bench-accelerate.sh
#
# Knobs (environment variables, defaults in brackets):
#   FILES [5; QUICK 3]  FILE_BYTES [1500000; QUICK 150000]  RATE [1500kbit] (tc syntax)
#   QUEUE_MS [100]      the shaper's queue, as tbf latency: a modem's buffer
#   ACCEL_SIZE [2m]     edgeproxy's accelerate SIZE and HAProxy's tune.bufsize (k/m suffixes)
#   SETUPS ["direct edgeproxy edgeproxy_accel haproxy"]
#   PARALLEL [1]  STAGGER [2]   seconds between the setups' first connections
#   PROXY_CPU [0] LOAD_CPU [1]  the proxies on one CPU, servers and clients on the other
#   EDGEPROXY_BIN [build/release/edgeproxy] EDGEPROXY_URING_BIN [build/release-uring/edgeproxy]
#                       copied at start, so a rebuild during the run cannot mix builds
#   RESULTS_DIR [bench-results/accelerate-<UTC timestamp>]
# Output in RESULTS_DIR: report.md (printed at the end), runs.csv (a row per setup and file:
# server_ms, sendall_ms, client_ms, factor, proxy VmHWM/VmRSS in KiB, edgeproxy's own
# acceleration_factor statistic), raw/ (server and client output), logs/ (configs, process logs),
# commands.txt. Needs root (ip netns, tc), iproute2, python3, haproxy. Namespaces, links and
# every process it started are removed on exit, also on failure or Ctrl-C; it signals only the
# processes it started, by PID.
set -euo pipefail

SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd -- "$SCRIPT_DIR/.." && pwd)
BENCH_DIR=$SCRIPT_DIR/bench
ACCEL=$BENCH_DIR/accel.py
# shellcheck disable=SC2034 # lib.sh's free_port runs it
HELPER=$BENCH_DIR/idle.py
# shellcheck source-path=SCRIPTDIR source=bench/lib.sh
source "$BENCH_DIR/lib.sh"
[[ $# -eq 0 ]] || { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 2; }

QUICK=${QUICK:-0}
if [[ $QUICK == 1 ]]; then FILES=${FILES:-3}; FILE_BYTES=${FILE_BYTES:-150000}; fi
FILES=${FILES:-5}
FILE_BYTES=${FILE_BYTES:-1500000}
RATE=${RATE:-1500kbit}
QUEUE_MS=${QUEUE_MS:-100}
ACCEL_SIZE=${ACCEL_SIZE:-2m}
SETUPS=${SETUPS:-direct edgeproxy edgeproxy_accel haproxy}
PARALLEL=${PARALLEL:-1}
STAGGER=${STAGGER:-2}
PROXY_CPU=${PROXY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
EDGEPROXY_BIN=${EDGEPROXY_BIN:-$REPO_ROOT/build/release/edgeproxy}
EDGEPROXY_URING_BIN=${EDGEPROXY_URING_BIN:-$REPO_ROOT/build/release-uring/edgeproxy}
TS=$(date -u +%Y%m%dT%H%M%SZ)
RESULTS_DIR=${RESULTS_DIR:-$REPO_ROOT/bench-results/accelerate-$TS}

int_in "$FILES" 1 100 || die "FILES must be in 1..100"
int_in "$FILE_BYTES" 1000 100000000 || die "FILE_BYTES must be in 1000..100000000"
int_in "$QUEUE_MS" 1 10000 || die "QUEUE_MS must be in 1..10000"
int_in "$STAGGER" 0 60 || die "STAGGER must be in 0..60 seconds"
[[ $PARALLEL == 0 || $PARALLEL == 1 ]] || die "PARALLEL must be 0 or 1"
[[ $RATE =~ ^[0-9]+(bit|kbit|mbit)$ ]] || die "RATE must look like 1500kbit (bit, kbit or mbit)"
[[ $ACCEL_SIZE =~ ^([0-9]+)([km]?)$ ]] || die "ACCEL_SIZE must be bytes with an optional k or m (got '$ACCEL_SIZE')"
case ${BASH_REMATCH[2]} in
    k) ACCEL_BYTES=$((BASH_REMATCH[1] * 1024)) ;;
    m) ACCEL_BYTES=$((BASH_REMATCH[1] * 1048576)) ;;
    *) ACCEL_BYTES=${BASH_REMATCH[1]} ;;
esac
int_in "$ACCEL_BYTES" 1024 268435455 || die "ACCEL_SIZE must be in 1k..255m"
# seconds one file takes on the line (bits / rate), and a deadline for everything with room to spare
RATE_BPS=$(awk -v r="$RATE" 'BEGIN { n = r + 0; if (r ~ /mbit$/) n *= 1e6; else if (r ~ /kbit$/) n *= 1e3; print n }')
FILE_S=$(awk -v b="$FILE_BYTES" -v r="$RATE_BPS" 'BEGIN { printf "%d", b * 8 / r + 1 }')
TIMEOUT_S=$((FILES * (3 * FILE_S + 10) + 60))

[[ $(id -u) == 0 ]] || die "needs root (ip netns, tc)"
for tool in ip tc python3 taskset ss; do
    command -v "$tool" >/dev/null 2>&1 || die "missing $tool (Debian: iproute2, python3, util-linux)"
done
read -ra SETUP_LIST <<<"$SETUPS"
((${#SETUP_LIST[@]})) || die "SETUPS is empty"
for s in "${SETUP_LIST[@]}"; do
    case $s in
        direct | edgeproxy | edgeproxy_accel | edgeproxy_uring | edgeproxy_uring_accel) ;;
        haproxy | haproxy_default) command -v haproxy >/dev/null 2>&1 || die "missing haproxy (scripts/install-deps.sh --bench)" ;;
        *) die "unknown setup '$s' (direct edgeproxy edgeproxy_accel edgeproxy_uring edgeproxy_uring_accel haproxy haproxy_default)" ;;
    esac
done

mkdir -p "$RESULTS_DIR/logs" "$RESULTS_DIR/raw"
: >"$RESULTS_DIR/commands.txt"
TMP_DIR=$(mktemp -d "${TMPDIR:-/tmp}/edgeproxy-accel.XXXXXX")

# ---------------------------------------------------------------- the shaped lines
NETNS=()   # namespaces and root-side links this script made; removed on exit
LINKS=()
net_teardown() {
    local l n
    for l in "${LINKS[@]}"; do ip link del "$l" 2>/dev/null || true; done
    for n in "${NETNS[@]}"; do ip netns del "$n" 2>/dev/null || true; done
    LINKS=(); NETNS=()
}
on_exit() {
    local rc=$?
    # processes first (lib.sh's cleanup: TERM, then KILL, only ours), so no namespace is pinned
    for pid in "${STARTED_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    sleep 0.3
    net_teardown
    (exit "$rc")
    cleanup
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# A /24 of 10.213.0.0/16 that no interface here uses; setup i gets 10.213.N.(4i+1) (root end,
# where server and proxy listen) and 10.213.N.(4i+2) (the client) on a /30.
NET=""
for ((k = 0; k < 50; k++)); do
    octet=$(((($$ + k) % 200) + 20))
    if ! ip -o addr show | grep -q " 10\.213\.$octet\."; then NET=10.213.$octet; break; fi
done
[[ -n $NET ]] || die "no free 10.213.X.0/24 for the test links"

# net_setup I : namespace, veth pair, addresses, shaper for setup I; sets RIP (root end address)
net_setup() {
    local i=$1 ns="edgeproxy-accel-$$-$1" r="ea$$r$1" c="ea$$c$1"
    RIP=$NET.$((4 * i + 1))
    local cip=$NET.$((4 * i + 2))
    ip netns add "$ns" || die "ip netns add failed (root in a container without CAP_SYS_ADMIN?)"
    NETNS+=("$ns")
    ip link add "$r" type veth peer name "$c" || die "ip link add veth failed"
    LINKS+=("$r")
    ip link set "$c" netns "$ns"
    ip addr add "$RIP/30" dev "$r"
    ip link set "$r" up
    ip netns exec "$ns" ip addr add "$cip/30" dev "$c"
    ip netns exec "$ns" ip link set "$c" up
    ip netns exec "$ns" ip link set lo up
    # the line: tbf at RATE on what the root end sends to the client, a QUEUE_MS queue
    tc qdisc add dev "$r" root tbf rate "$RATE" burst 3000 latency "${QUEUE_MS}ms" ||
        die "tc tbf failed on $r (is sch_tbf available?)"
    printf '$ tc qdisc add dev %s root tbf rate %s burst 3000 latency %sms  # client %s in netns %s\n' \
        "$r" "$RATE" "$QUEUE_MS" "$cip" "$ns" >>"$RESULTS_DIR/commands.txt"
    NS_OF[$i]=$ns; RIP_OF[$i]=$RIP
}
declare -A NS_OF=() RIP_OF=()

# ---------------------------------------------------------------- the systems
# edgeproxy binaries are copied (a rebuild during the run cannot mix builds)
declare -A EP_COPY=()
ep_copy() {  # ep_copy BIN -> path of the copy
    local bin=$1
    [[ -x $bin ]] || return 1
    if [[ -z ${EP_COPY[$bin]:-} ]]; then
        EP_COPY[$bin]=$TMP_DIR/edgeproxy-${#EP_COPY[@]}
        cp -- "$bin" "${EP_COPY[$bin]}"
    fi
    echo "${EP_COPY[$bin]}"
}

# accel_args COPY TAG RIP : the arguments that make COPY listen on RIP:9001 with acceleration,
# or return 1 (SETUP_NOTE says why). A listener directive in a file is tried first
# (edgeproxy -t -c FILE), then a command-line flag (--help mentions --accelerate).
accel_args() {
    local bin=$1 tag=$2 rip=$3 conf=$RESULTS_DIR/logs/$2.conf
    cat >"$conf" <<EOF
# scripts/bench-accelerate.sh: one listener with acceleration, one server
listener main {
    bind $rip:9001
    backend main
    accelerate $ACCEL_SIZE
}
backend main {
    server main $rip:9000
}
EOF
    if "$bin" -t -c "$conf" >"$RESULTS_DIR/logs/$tag.check.log" 2>&1; then
        ACCEL_ARGS=(-q -c "$conf")
        return 0
    fi
    local help_text
    help_text=$("$bin" --help 2>&1 || true)  # not "| grep -q": SIGPIPE fails it under pipefail
    if [[ $help_text == *--accelerate* ]]; then
        ACCEL_ARGS=(-q -l "$rip" -p 9001 -b "$rip" -P 9000 --accelerate "$ACCEL_SIZE")
        return 0
    fi
    SETUP_NOTE="not available: this build takes neither 'accelerate $ACCEL_SIZE' in a listener (logs/$tag.check.log) nor --accelerate"
    return 1
}

haproxy_conf() {  # haproxy_conf FILE RIP BUFSIZE("" = default)
    cat >"$1" <<EOF
# scripts/bench-accelerate.sh: HAProxy mode tcp${3:+, tune.bufsize $3}
global
    maxconn 100
${3:+    tune.bufsize $3}
defaults
    mode tcp
    timeout connect 5s
    timeout client 1h
    timeout server 1h
frontend fe
    bind $2:9001
    default_backend be
backend be
    server s1 $2:9000
EOF
}

# wait_listen ADDR PORT : a listening socket on ADDR:PORT within 10 s (ss, no connection made:
# a test connection through a proxy would reach the server and count as a file)
wait_listen() {
    local i
    for ((i = 0; i < 100; i++)); do
        [[ -n $(ss -Hltn "src $1 and sport = :$2" 2>/dev/null) ]] && return 0
        sleep 0.1
    done
    return 1
}

# ---------------------------------------------------------------- one setup
declare -A LABEL=() STATUS=() PROXY_PID=() SERVER_PID=() CLIENT_PID=() HWM=() RSS=() FSTAT=()
label_of() {
    case $1 in
        direct) echo "direct" ;;
        edgeproxy) echo "edgeproxy (epoll)" ;;
        edgeproxy_accel) echo "edgeproxy (epoll), accelerate $ACCEL_SIZE" ;;
        edgeproxy_uring) echo "edgeproxy (io_uring)" ;;
        edgeproxy_uring_accel) echo "edgeproxy (io_uring), accelerate $ACCEL_SIZE" ;;
        haproxy) echo "HAProxy, tune.bufsize $ACCEL_BYTES" ;;
        haproxy_default) echo "HAProxy, default buffers" ;;
    esac
}

# start_setup I NAME : server and proxy of setup I; STATUS[NAME] = ok or why not
start_setup() {
    local i=$1 s=$2 rip=${RIP_OF[$1]} bin copy port=9001
    local -a cmd=()
    SETUP_NOTE=""
    case $s in
        direct) port=9000 ;;
        edgeproxy | edgeproxy_accel) bin=$EDGEPROXY_BIN ;;
        edgeproxy_uring | edgeproxy_uring_accel) bin=$EDGEPROXY_URING_BIN ;;
    esac
    case $s in
        edgeproxy*)
            if ! copy=$(ep_copy "$bin"); then
                STATUS[$s]="not available: $bin not found (make JOBS=1, or set EDGEPROXY_BIN / EDGEPROXY_URING_BIN)"
                return 0
            fi
            if [[ $s == *_accel ]]; then
                if ! accel_args "$copy" "$s" "$rip"; then STATUS[$s]=$SETUP_NOTE; return 0; fi
                cmd=("$copy" "${ACCEL_ARGS[@]}")
            else
                cmd=("$copy" -q -l "$rip" -p 9001 -b "$rip" -P 9000)
            fi ;;
        haproxy | haproxy_default)
            local bufsize=""
            [[ $s == haproxy_default ]] || bufsize=$ACCEL_BYTES
            haproxy_conf "$RESULTS_DIR/logs/$s.cfg" "$rip" "$bufsize"
            if ! haproxy -c -f "$RESULTS_DIR/logs/$s.cfg" >"$RESULTS_DIR/logs/$s.check.log" 2>&1; then
                STATUS[$s]="failed: HAProxy refused logs/$s.cfg (logs/$s.check.log)"
                return 0
            fi
            cmd=(haproxy -f "$RESULTS_DIR/logs/$s.cfg" -db) ;;
    esac
    spawn "server-$s" "$LOAD_CPU" python3 "$ACCEL" server --addr "$rip" --port 9000 --files "$FILES" \
        --bytes "$FILE_BYTES" --out "$RESULTS_DIR/raw/server-$s.txt" --timeout "$TIMEOUT_S"
    SERVER_PID[$s]=$SPAWNED_PID
    if ((${#cmd[@]})); then
        spawn "$s" "$PROXY_CPU" "${cmd[@]}"
        PROXY_PID[$s]=$SPAWNED_PID
    fi
    if ! wait_listen "$rip" 9000 || { ((${#cmd[@]})) && ! wait_listen "$rip" 9001; }; then
        STATUS[$s]="failed: nothing listening on $rip:9000/9001 after 10 s (logs/server-$s.log, logs/$s.log)"
        return 0
    fi
    STATUS[$s]=ok
    CLIENT_PORT[$s]=$port
}
declare -A CLIENT_PORT=()

start_client() {  # start_client I NAME
    local i=$1 s=$2
    spawn "client-$s" "" ip netns exec "${NS_OF[$i]}" timeout "$TIMEOUT_S" taskset -c "$LOAD_CPU" \
        python3 "$ACCEL" client --addr "${RIP_OF[$i]}" --port "${CLIENT_PORT[$s]}" --files "$FILES" \
        --bytes "$FILE_BYTES" --out "$RESULTS_DIR/raw/client-$s.txt" --timeout "$TIMEOUT_S"
    CLIENT_PID[$s]=$SPAWNED_PID
    log "$(label_of "$s"): client started (${RIP_OF[$i]}:${CLIENT_PORT[$s]}, netns ${NS_OF[$i]})"
}

finish_setup() {  # finish_setup NAME : after the client ended: memory, stop, the factor statistic
    local s=$1 pid=${PROXY_PID[$1]:-}
    wait "${CLIENT_PID[$s]}" 2>/dev/null || STATUS[$s]="failed: the client exited with an error (raw/client-$s.txt, logs/client-$s.log)"
    if [[ -n $pid ]]; then
        if kill -0 "$pid" 2>/dev/null; then
            HWM[$s]=$(awk '/^VmHWM:/ { print $2 }' "/proc/$pid/status" 2>/dev/null || true)
            RSS[$s]=$(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status" 2>/dev/null || true)
        else
            STATUS[$s]="failed: the proxy exited during the run (logs/$s.log)"
        fi
        stop_pid "$pid"
        FSTAT[$s]=$(awk '$1 == "acceleration_factor" { print $2; exit }' "$RESULTS_DIR/logs/$s.log" 2>/dev/null || true)
    fi
    stop_pid "${SERVER_PID[$s]}"
    log "$(label_of "$s"): done (${STATUS[$s]}${HWM[$s]:+, proxy VmHWM ${HWM[$s]} KiB})"
}

# ---------------------------------------------------------------- run
log "lines: $RATE, tbf queue ${QUEUE_MS} ms, on $NET.0/24; $FILES file(s) of $FILE_BYTES bytes (~${FILE_S} s each) per setup"
for i in "${!SETUP_LIST[@]}"; do
    net_setup "$i"
    LABEL[${SETUP_LIST[$i]}]=$(label_of "${SETUP_LIST[$i]}")
done
run_group() {  # run_group INDEX... : start, stagger the clients, wait, finish
    local i s
    for i in "$@"; do start_setup "$i" "${SETUP_LIST[$i]}"; done
    local first=1
    for i in "$@"; do
        s=${SETUP_LIST[$i]}
        if [[ ${STATUS[$s]} != ok ]]; then
            log "${LABEL[$s]}: ${STATUS[$s]}"
            continue
        fi
        ((first)) || sleep "$STAGGER"
        first=0
        start_client "$i" "$s"
    done
    for i in "$@"; do
        s=${SETUP_LIST[$i]}
        if [[ ${STATUS[$s]} == ok ]]; then finish_setup "$s"; fi
    done
}
if ((PARALLEL)); then
    run_group "${!SETUP_LIST[@]}"
else
    for i in "${!SETUP_LIST[@]}"; do run_group "$i"; done
fi

# ---------------------------------------------------------------- report
{
    printf 'timestamp\t%s\nquick\t%s\nfiles\t%s\nbytes\t%s\nrate\t%s\n' "$TS" "$QUICK" "$FILES" "$FILE_BYTES" "$RATE"
    printf 'command\tQUICK=%q FILES=%q FILE_BYTES=%q RATE=%q QUEUE_MS=%q ACCEL_SIZE=%q SETUPS=%q PARALLEL=%q STAGGER=%q scripts/bench-accelerate.sh\n' \
        "$QUICK" "$FILES" "$FILE_BYTES" "$RATE" "$QUEUE_MS" "$ACCEL_SIZE" "$SETUPS" "$PARALLEL" "$STAGGER"
    printf 'method\t%s\n' "Each setup: a server (root namespace) sends the file on $FILES connections one after another to a client in its own network namespace behind a veth with tc tbf $RATE (queue ${QUEUE_MS} ms) on the root end; server and proxy talk over loopback. Server ms = accept() to every byte acknowledged by the peer (SIOCOUTQ 0), then close; client ms = connect() to EOF; factor = client ms / server ms. Setups ran $( ((PARALLEL)) && echo "at the same time on separate lines, first connections ${STAGGER} s apart" || echo "one after another"). Proxy VmHWM = peak RSS from /proc/PID/status at the end; the edgeproxy statistic is its own acceleration_factor line at exit."
    printf 'env.kernel\t%s\n' "$(uname -srm)"
    printf 'env.load average at end\t%s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
    printf 'env.haproxy\t%s\n' "$(haproxy -v 2>/dev/null | head -n 1 || echo none)"
    for b in "${!EP_COPY[@]}"; do
        printf 'env.%s\t%s\n' "$b" "$(timeout 2 "${EP_COPY[$b]}" --version 2>&1 | head -n 1), built $(date -u -r "$b" +%Y-%m-%dT%H:%M:%SZ), sha256 $(sha256sum "${EP_COPY[$b]}" | cut -c1-12)"
    done
    printf 'env.repo\t%s @ %s\n' "$REPO_ROOT" "$(git -C "$REPO_ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$([[ -z $(git -C "$REPO_ROOT" status --porcelain --untracked-files=no 2>/dev/null | head -n 1) ]] || echo ' (dirty)')"
    printf 'env.layout\tproxies on CPU %s, servers and clients on CPU %s\n' "$PROXY_CPU" "$LOAD_CPU"
} >"$RESULTS_DIR/meta.tsv"
{
    printf 'setup\tlabel\tstatus\tvmhwm_kib\tvmrss_kib\tfactor_stat\n'
    for s in "${SETUP_LIST[@]}"; do
        printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$s" "${LABEL[$s]}" "${STATUS[$s]:-not run}" "${HWM[$s]:-}" "${RSS[$s]:-}" "${FSTAT[$s]:-}"
    done
} >"$RESULTS_DIR/setups.tsv"
python3 "$ACCEL" report "$RESULTS_DIR" || die "accel.py report failed"
cat "$RESULTS_DIR/report.md"
log "results: $RESULTS_DIR"
failed=0
for s in "${SETUP_LIST[@]}"; do [[ ${STATUS[$s]:-} != failed* ]] || failed=1; done
exit "$failed"

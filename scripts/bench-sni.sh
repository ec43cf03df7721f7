#!/usr/bin/env bash
# W2 with SNI routing, side by side with HAProxy: a new TLS connection per request (wrk over https,
# "Connection: close") through each proxy to one nginx TLS backend (a self-signed P-256
# certificate made with openssl in a temporary folder). The proxies pass TLS through untouched
# and choose the backend by the ClientHello's server name:
#   edgeproxy   route { sni NAME backend tls }
#   HAProxy     mode tcp; tcp-request inspect-delay 5s;
#               tcp-request content accept if { req.ssl_hello_type 1 };
#               use_backend tls if { req.ssl_sni -i NAME }
# and, as references, the same proxies relaying without looking (the systems without _sni).
# Systems are interleaved round by round (each round starts one system later); the report gives
# each system's median conn/s and proxy CPU µs per connection, and per-round ratios (median,
# min-max) against HAProxy with SNI and against the same proxy without SNI.
#
#   scripts/bench-sni.sh
#   ROUNDS=10 DURATION=3 SYSTEMS="haproxy_sni edgeproxy_sni" scripts/bench-sni.sh
#   EXTRA_NAMES=1000 scripts/bench-sni.sh      # 1 000 other names routed elsewhere, before NAME
#
# Knobs (environment variables, defaults in brackets):
#   ROUNDS [10] DURATION [3]  rounds; seconds per run (every system runs once per round)
#   WARMUP [1]                seconds of unrecorded load per system before the first round
#   CONNECTIONS [50]          wrk -t1 -cN
#   SYSTEMS ["haproxy_sni edgeproxy_sni edgeproxy_uring_sni haproxy edgeproxy edgeproxy_uring"]
#   SNI_NAME [localhost]      the name wrk sends (the URL's host: it must resolve to 127.0.0.1)
#   EXTRA_NAMES [0]           other names (host-NNNN.example.com) routed to another backend,
#                             written before SNI_NAME: edgeproxy one `sni` rule each (compiled
#                             into one table), HAProxy one ACL read from a file (-f)
#   PROXY_CPU [0] LOAD_CPU [1]  the proxy on one CPU; wrk and nginx (1 worker) on the other
#   EDGEPROXY_BIN [build/release/edgeproxy]  EDGEPROXY_URING_BIN [build/release-uring/edgeproxy]
#                             copied at start, so a rebuild during the run cannot mix builds
#   RESULTS_DIR [bench-results/sni-<UTC timestamp>]
# Output in RESULTS_DIR: report.md, runs.csv (scripts/bench.sh's columns, workload W2-SNI),
# runs.tsv, raw/ (wrk output), logs/ (configs, process logs), commands.txt. Each run is bounded
# (wrk under timeout); stops only the processes it started, by PID.
set -euo pipefail

SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd -- "$SCRIPT_DIR/.." && pwd)
BENCH_DIR=$SCRIPT_DIR/bench
# shellcheck disable=SC2034 # lib.sh's free_port runs it
HELPER=$BENCH_DIR/idle.py
# shellcheck source-path=SCRIPTDIR source=bench/lib.sh
source "$BENCH_DIR/lib.sh"
[[ $# -eq 0 ]] || { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 2; }

ROUNDS=${ROUNDS:-10}
DURATION=${DURATION:-3}
WARMUP=${WARMUP:-1}
CONNECTIONS=${CONNECTIONS:-50}
SYSTEMS=${SYSTEMS:-haproxy_sni edgeproxy_sni edgeproxy_uring_sni haproxy edgeproxy edgeproxy_uring}
SNI_NAME=${SNI_NAME:-localhost}
EXTRA_NAMES=${EXTRA_NAMES:-0}
PROXY_CPU=${PROXY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
EDGEPROXY_BIN=${EDGEPROXY_BIN:-$REPO_ROOT/build/release/edgeproxy}
EDGEPROXY_URING_BIN=${EDGEPROXY_URING_BIN:-$REPO_ROOT/build/release-uring/edgeproxy}
TS=$(date -u +%Y%m%dT%H%M%SZ)
RESULTS_DIR=${RESULTS_DIR:-$REPO_ROOT/bench-results/sni-$TS}

int_in "$ROUNDS" 1 100 || die "ROUNDS must be in 1..100"
int_in "$DURATION" 1 60 || die "DURATION must be in 1..60 seconds"
int_in "$WARMUP" 0 30 || die "WARMUP must be in 0..30 seconds"
int_in "$CONNECTIONS" 1 1000 || die "CONNECTIONS must be in 1..1000"
int_in "$EXTRA_NAMES" 0 100000 || die "EXTRA_NAMES must be in 0..100000"
[[ $SNI_NAME =~ ^[A-Za-z0-9.-]+$ ]] || die "SNI_NAME must be a host name"
[[ $(getent ahostsv4 "$SNI_NAME" | awk 'NR == 1 {print $1}') == 127.0.0.1 ]] ||
    die "SNI_NAME '$SNI_NAME' does not resolve to 127.0.0.1 (wrk connects to the URL's host)"
for tool in wrk nginx haproxy openssl python3 taskset getent; do
    command -v "$tool" >/dev/null || die "$tool is missing (scripts/install-deps.sh --bench)"
done
read -ra SYSTEM_LIST <<<"$SYSTEMS"
for s in "${SYSTEM_LIST[@]}"; do
    [[ $s =~ ^(haproxy|edgeproxy|edgeproxy_uring)(_sni)?$ ]] ||
        die "unknown system '$s' (haproxy, edgeproxy, edgeproxy_uring, each also with _sni)"
done

TMP_DIR=$(mktemp -d "${TMPDIR:-/tmp}/edgeproxy-bench-sni.XXXXXX")
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
mkdir -p "$RESULTS_DIR/logs" "$RESULTS_DIR/raw"
: >"$RESULTS_DIR/commands.txt"
: >"$RESULTS_DIR/runs.tsv"

# cpu_ns PID : time on CPU of every thread of PID, in nanoseconds (schedstat: finer than the
# 10 ms ticks of /proc/PID/stat, which a 3 s run of a proxy at 20 % of a CPU would make coarse;
# %.0f because mawk's %d stops at 2^31 ns)
cpu_ns() { awk '{ns += $1} END {printf "%.0f\n", ns}' /proc/"$1"/task/*/schedstat; }

# ---------------------------------------------------------------- the TLS backend
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj "/CN=$SNI_NAME" -addext "subjectAltName=DNS:$SNI_NAME" \
    -keyout "$TMP_DIR/key.pem" -out "$TMP_DIR/cert.pem" >"$RESULTS_DIR/logs/openssl.log" 2>&1 ||
    die "openssl could not make a certificate (logs/openssl.log)"
NGINX_PORT=$(free_port)
cat >"$TMP_DIR/nginx.conf" <<EOF
daemon off;
master_process on;
worker_processes 1;
pid $TMP_DIR/nginx.pid;
error_log $RESULTS_DIR/logs/nginx-backend.error.log warn;
events { worker_connections 4096; multi_accept on; }
http {
    access_log off;
    server_tokens off;
    client_body_temp_path $TMP_DIR/body;
    server {
        listen 127.0.0.1:$NGINX_PORT ssl backlog=4096;
        ssl_certificate $TMP_DIR/cert.pem;
        ssl_certificate_key $TMP_DIR/key.pem;
        location = / { default_type text/plain; return 200 "ok\n"; }
    }
}
EOF
cp -- "$TMP_DIR/nginx.conf" "$RESULTS_DIR/logs/nginx-backend.conf"
spawn nginx-backend "$LOAD_CPU" nginx -p "$TMP_DIR" -c "$TMP_DIR/nginx.conf" \
    -e "$RESULTS_DIR/logs/nginx-backend.error.log"
NGINX_PID=$SPAWNED_PID
wait_ready nginx-backend "$NGINX_PID" "$NGINX_PORT" || die "nginx backend: $SYS_ERROR"

# ---------------------------------------------------------------- the proxies
for n in $(seq 0 $((EXTRA_NAMES - 1))); do printf 'host-%04d.example.com\n' "$n"; done >"$TMP_DIR/names.lst"
declare -A PORT=() PID=() LABEL=() COPY=()

edgeproxy_copy() {  # edgeproxy_copy BIN : sets EP_BIN to a copy of BIN in TMP_DIR, made once
    local bin=$1
    [[ -x $bin ]] || die "edgeproxy binary not found: $bin (make release [BACKEND=uring])"
    if [[ -z ${COPY[$bin]:-} ]]; then
        COPY[$bin]=$TMP_DIR/edgeproxy-${#COPY[@]}
        cp -- "$bin" "${COPY[$bin]}"
        printf 'env.%s\t%s\n' "$bin" "$("${COPY[$bin]}" --version 2>&1 | head -n 1), sha256 $(sha256sum "$bin" | cut -c1-12)" \
            >>"$RESULTS_DIR/meta.tsv"
    fi
    EP_BIN=${COPY[$bin]}
}

start_edgeproxy() {  # start_edgeproxy SYSTEM BIN SNI(0|1)
    local s=$1 port conf=$TMP_DIR/$1.conf n
    edgeproxy_copy "$2"
    port=$(free_port)
    {
        echo "backend tls { server nginx 127.0.0.1:$NGINX_PORT }"
        echo "backend other { server none 127.0.0.1:1 }"
        echo "listener main {"
        echo "    bind 127.0.0.1:$port"
        if (($3)); then
            echo "    route {"
            while read -r n; do echo "        sni $n backend other"; done <"$TMP_DIR/names.lst"
            echo "        sni $SNI_NAME backend tls"
            echo "    }"
        else
            echo "    backend tls"
        fi
        echo "}"
    } >"$conf"
    cp -- "$conf" "$RESULTS_DIR/logs/$s.conf"
    spawn "$s" "$PROXY_CPU" "$EP_BIN" -c "$conf" -q --max-connections 4096
    PORT[$s]=$port; PID[$s]=$SPAWNED_PID
    wait_ready "$s" "$SPAWNED_PID" "$port" || die "$s: $SYS_ERROR"
}

start_haproxy() {  # start_haproxy SYSTEM SNI(0|1)
    local s=$1 port cfg=$TMP_DIR/$1.cfg
    port=$(free_port)
    {
        printf 'global\n    nbthread 1\n    maxconn 4096\n'
        printf 'defaults\n    mode tcp\n    timeout connect 5s\n    timeout client 30s\n    timeout server 30s\n'
        printf 'frontend fe\n    bind 127.0.0.1:%s\n' "$port"
        if (($2)); then
            printf '    tcp-request inspect-delay 5s\n'
            printf '    tcp-request content accept if { req.ssl_hello_type 1 }\n'
            ((EXTRA_NAMES == 0)) || printf '    use_backend other if { req.ssl_sni -i -f %s }\n' "$TMP_DIR/names.lst"
            printf '    use_backend tls if { req.ssl_sni -i %s }\n' "$SNI_NAME"
        else
            printf '    default_backend tls\n'
        fi
        printf 'backend tls\n    server nginx 127.0.0.1:%s\n' "$NGINX_PORT"
        printf 'backend other\n    server none 127.0.0.1:1\n'
    } >"$cfg"
    cp -- "$cfg" "$RESULTS_DIR/logs/$s.cfg"
    haproxy -c -f "$cfg" >"$RESULTS_DIR/logs/$s.check.log" 2>&1 || die "invalid HAProxy configuration (logs/$s.cfg)"
    spawn "$s" "$PROXY_CPU" haproxy -f "$cfg" -db
    PORT[$s]=$port; PID[$s]=$SPAWNED_PID
    wait_ready "$s" "$SPAWNED_PID" "$port" || die "$s: $SYS_ERROR"
}

printf '%s\t%s\n' timestamp "$TS" >"$RESULTS_DIR/meta.tsv"
for s in "${SYSTEM_LIST[@]}"; do
    sni=0; [[ $s != *_sni ]] || sni=1
    case ${s%_sni} in
        haproxy) start_haproxy "$s" "$sni"; LABEL[$s]=HAProxy ;;
        edgeproxy) start_edgeproxy "$s" "$EDGEPROXY_BIN" "$sni"; LABEL[$s]="edgeproxy (epoll)" ;;
        edgeproxy_uring) start_edgeproxy "$s" "$EDGEPROXY_URING_BIN" "$sni"; LABEL[$s]="edgeproxy (io_uring)" ;;
    esac
    ((sni)) && LABEL[$s]+=" SNI" || LABEL[$s]+=" plain"
    printf '%s\t%s\n' "$s" "${LABEL[$s]}"
done >"$RESULTS_DIR/systems.tsv"

# A first https request through each proxy: the route and the certificate work.
for s in "${SYSTEM_LIST[@]}"; do
    python3 - "$SNI_NAME" "${PORT[$s]}" <<'EOF' || die "$s does not pass https://$SNI_NAME to the backend"
import ssl, sys, urllib.request
ctx = ssl.create_default_context()
ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
body = urllib.request.urlopen("https://%s:%s/" % (sys.argv[1], sys.argv[2]), context=ctx, timeout=5).read()
sys.exit(0 if body == b"ok\n" else "unexpected body %r" % body)
EOF
done

{
    printf 'proxy_cpu\t%s\nload_cpu\t%s\n' "$PROXY_CPU" "$LOAD_CPU"
    printf 'command\t%s\n' "ROUNDS=$ROUNDS DURATION=$DURATION WARMUP=$WARMUP CONNECTIONS=$CONNECTIONS SYSTEMS=\"$SYSTEMS\" SNI_NAME=$SNI_NAME EXTRA_NAMES=$EXTRA_NAMES PROXY_CPU=$PROXY_CPU LOAD_CPU=$LOAD_CPU scripts/bench-sni.sh"
    printf 'desc\t%s\n' "\`wrk -t1 -c$CONNECTIONS -d${DURATION}s --latency -H 'Connection: close' https://$SNI_NAME:PORT/\` through each proxy to nginx (TLS 1.3, P-256 certificate, 1 worker): nginx closes after every response, wrk reconnects and makes a new TLS handshake, so every request is one new connection whose ClientHello the SNI systems route. $ROUNDS rounds of ${DURATION} s, proxy on CPU $PROXY_CPU, wrk and nginx on CPU $LOAD_CPU; $EXTRA_NAMES other names routed elsewhere before $SNI_NAME."
    printf 'env.kernel\t%s\n' "$(uname -srm)"
    printf 'env.load average at start\t%s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
    printf 'env.wrk\t%s\n' "$(wrk -v 2>&1 | head -n 1 || true)"
    printf 'env.haproxy\t%s\n' "$(haproxy -v 2>&1 | head -n 1)"
    printf 'env.nginx\t%s\n' "$(nginx -v 2>&1 | head -n 1)"
    printf 'env.repo\t%s\n' "$REPO_ROOT @ $(git -C "$REPO_ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')"
} >>"$RESULTS_DIR/meta.tsv"

# measure SYSTEM SECONDS OUT : one wrk run; prints the proxy's CPU ns over it
measure() {
    local s=$1 t0 t1
    t0=$(cpu_ns "${PID[$s]}")
    timeout $(($2 + 15)) taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNECTIONS" -d"$2s" --latency \
        -H "Connection: close" "https://$SNI_NAME:${PORT[$s]}/" >"$3" 2>&1 || true
    t1=$(cpu_ns "${PID[$s]}")
    echo $((t1 - t0))
}

if ((WARMUP > 0)); then
    for s in "${SYSTEM_LIST[@]}"; do measure "$s" "$WARMUP" "$RESULTS_DIR/raw/warmup-$s.txt" >/dev/null; done
fi
n=${#SYSTEM_LIST[@]}
for round in $(seq "$ROUNDS"); do
    for i in $(seq 0 $((n - 1))); do
        s=${SYSTEM_LIST[$(((i + round - 1) % n))]}
        kill -0 "${PID[$s]}" 2>/dev/null || die "$s exited (logs/$s.log)"
        raw=raw/round$round-$s.txt
        ns=$(measure "$s" "$DURATION" "$RESULTS_DIR/$raw")
        printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$s" "$ns" "$DURATION" "$raw" "$(loadavg1)" >>"$RESULTS_DIR/runs.tsv"
        log "round $round $s: $(awk '/Requests\/sec/ {print $2}' "$RESULTS_DIR/$raw") conn/s, proxy $((ns / 1000000)) ms CPU"
    done
done
printf 'env.load average at end\t%s\n' "$(cut -d' ' -f1-3 /proc/loadavg)" >>"$RESULTS_DIR/meta.tsv"

python3 "$BENCH_DIR/sni_report.py" "$RESULTS_DIR" || die "sni_report.py failed"
cat "$RESULTS_DIR/report.md"
log "results: $RESULTS_DIR"

#!/usr/bin/env bash
# Before/after pairs of edgeproxy binaries in plain TCP mode on W1 (keep-alive) and W2 (a
# connection per request), interleaved round by round: bench.sh's systems, backend, layout and
# CPU accounting, for binaries that bench.sh cannot hold side by side (it takes one per backend).
#
#   scripts/ab-tcp.sh BASE_LABEL=BINARY[:ARGS] NEW_LABEL=BINARY[:ARGS] [...]
#   ROUNDS=10 DURATION=3 scripts/ab-tcp.sh base-epoll=/tmp/b/ep new-epoll=/tmp/n/ep \
#       base-uring=/tmp/b/ep-uring new-uring=/tmp/n/ep-uring
#
# Arguments come in pairs; each pair is reported as the second over the first. ARGS (split on
# blanks) are added to that variant's command line: off=BIN on=BIN:"--access-log /tmp/a.log".
# Every binary is copied, started once (as bench.sh starts edgeproxy: -q, --max-connections
# 20000, --splice never when the build has --splice) on PROXY_CPU; nginx (bench/nginx-backend.conf.in, 1 worker) and
# wrk -t1 -c$CONNECTIONS on LOAD_CPU. WARMUP seconds per binary and workload, then ROUNDS rounds
# of W1 then W2, each binary once per workload, each round starting one binary later. Proxy CPU is
# utime+stime of /proc/PID/stat before and after each run. Reports, per pair and workload, the
# median and min-max over the rounds of the within-round ratios new/base of CPU per request (or
# connection), p99 and req/s. Stops only the processes it started. Knobs (defaults): ROUNDS [10]
# DURATION [3] WARMUP [2] CONNECTIONS [100] PROXY_CPU [0] LOAD_CPU [1] WORKLOADS ["W1 W2"]
# RESULTS_DIR [bench-results/ab-tcp-<UTC timestamp>].
set -euo pipefail
SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
BENCH_DIR=$SCRIPT_DIR/bench
HELPER=$BENCH_DIR/idle.py  # lib.sh: free_port
# shellcheck source-path=SCRIPTDIR source=bench/lib.sh
source "$BENCH_DIR/lib.sh"

ROUNDS=${ROUNDS:-10} DURATION=${DURATION:-3} WARMUP=${WARMUP:-2} CONNECTIONS=${CONNECTIONS:-100}
PROXY_CPU=${PROXY_CPU:-0} LOAD_CPU=${LOAD_CPU:-1} WORKLOADS=${WORKLOADS:-W1 W2}
RESULTS_DIR=${RESULTS_DIR:-$SCRIPT_DIR/../bench-results/ab-tcp-$(date -u +%Y%m%dT%H%M%SZ)}
(($# >= 2 && $# % 2 == 0)) || { sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
for tool in wrk nginx python3 taskset; do command -v "$tool" >/dev/null || die "$tool is missing"; done

mkdir -p "$RESULTS_DIR/logs" "$RESULTS_DIR/raw"
: >"$RESULTS_DIR/commands.txt"
TMP_DIR=$(mktemp -d "${TMPDIR:-/tmp}/ab-tcp.XXXXXX")
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
ulimit -Sn "$(ulimit -Hn)" 2>/dev/null || true

LABELS=() PAIRS=()
declare -A BIN=() PORT=() PID=() EXTRA=()
i=0
for spec in "$@"; do
    label=${spec%%=*} bin=${spec#*=}
    EXTRA[$label]=
    if [[ $bin == *:* ]]; then EXTRA[$label]=${bin#*:} bin=${bin%%:*}; fi
    [[ $label =~ ^[A-Za-z0-9_.-]+$ && -x $bin && -z ${BIN[$label]:-} ]] || die "bad argument '$spec'"
    cp -- "$bin" "$TMP_DIR/$label"
    BIN[$label]=$TMP_DIR/$label
    LABELS+=("$label")
    printf '%s\t%s\t%s\t%s\t%s\n' "$label" "$bin" "$(sha256sum "$bin" | cut -c1-12)" \
        "$("$TMP_DIR/$label" --version 2>&1 | head -n 1)" "${EXTRA[$label]}" >>"$RESULTS_DIR/binaries.tsv"
    ((i++ % 2 == 0)) || PAIRS+=("${LABELS[-2]}:$label")
done
printf '%s\n' "${PAIRS[@]}" >"$RESULTS_DIR/pairs.txt"

NGINX_PORT=$(free_port)
mkdir -p "$TMP_DIR/nginx/tmp" "$TMP_DIR/nginx/html"
chmod 711 "$TMP_DIR" "$TMP_DIR/nginx"
fill_template "$BENCH_DIR/nginx-backend.conf.in" "$TMP_DIR/nginx/nginx.conf" \
    "PREFIX=$TMP_DIR/nginx" "PORT=$NGINX_PORT" "WORKERS=1" "NOFILE=$(ulimit -Sn)"
spawn nginx-backend "$LOAD_CPU" nginx -p "$TMP_DIR/nginx" -c "$TMP_DIR/nginx/nginx.conf"
wait_ready nginx-backend "$SPAWNED_PID" "$NGINX_PORT" || die "nginx backend: $SYS_ERROR"
for label in "${LABELS[@]}"; do
    PORT[$label]=$(free_port)
    args=(-q -l 127.0.0.1 -p "${PORT[$label]}" -b 127.0.0.1 -P "$NGINX_PORT" --max-connections 20000)
    # Not "--help | grep -q": grep leaving at the first match kills the writer with SIGPIPE, and
    # under pipefail the pipeline then fails at random.
    help=$("${BIN[$label]}" --help 2>&1 || true)
    [[ $help != *--splice* ]] || args+=(--splice never)
    read -ra extra <<<"${EXTRA[$label]}"
    args+=("${extra[@]}")
    spawn "$label" "$PROXY_CPU" "${BIN[$label]}" "${args[@]}"
    PID[$label]=$SPAWNED_PID
    wait_ready "$label" "$SPAWNED_PID" "${PORT[$label]}" || die "$label: $SYS_ERROR"
done

# run LABEL WORKLOAD SECONDS OUT : one wrk run; prints the proxy's CPU ticks over it
run() {
    local -a hdr=()
    [[ $2 == W1 ]] || hdr=(-H "Connection: close")
    local t0 t1
    t0=$(proc_ticks "${PID[$1]}")
    timeout $(($3 + 30)) taskset -c "$LOAD_CPU" wrk -t1 "-c$CONNECTIONS" "-d${3}s" --latency "${hdr[@]}" \
        "http://127.0.0.1:${PORT[$1]}/" >"$4" 2>&1 || warn "$1 $2: wrk failed ($4)"
    t1=$(proc_ticks "${PID[$1]}")
    kill -0 "${PID[$1]}" 2>/dev/null || die "$1 exited (logs/$1.log)"
    echo $((t1 - t0))
}

read -ra WLS <<<"$WORKLOADS"
log "load average $(cut -d' ' -f1-3 /proc/loadavg); proxies on CPU $PROXY_CPU, nginx and wrk on CPU $LOAD_CPU"
for w in "${WLS[@]}"; do
    for label in "${LABELS[@]}"; do ((WARMUP == 0)) || run "$label" "$w" "$WARMUP" "$RESULTS_DIR/raw/warmup-$w-$label.txt" >/dev/null; done
done
printf 'workload\tround\tsystem\tticks\tloadavg1\n' >"$RESULTS_DIR/runs.tsv"
n=${#LABELS[@]}
for ((r = 1; r <= ROUNDS; r++)); do
    for w in "${WLS[@]}"; do
        for ((k = 0; k < n; k++)); do
            label=${LABELS[$(((k + r - 1) % n))]}
            ticks=$(run "$label" "$w" "$DURATION" "$RESULTS_DIR/raw/$w-r$r-$label.txt")
            printf '%s\t%s\t%s\t%s\t%s\n' "$w" "$r" "$label" "$ticks" "$(loadavg1)" >>"$RESULTS_DIR/runs.tsv"
        done
    done
    log "round $r/$ROUNDS done (load $(loadavg1))"
done
log "load average at the end $(cut -d' ' -f1-3 /proc/loadavg)"

python3 - "$RESULTS_DIR" "$DURATION" "$(getconf CLK_TCK)" <<'PY' | tee "$RESULTS_DIR/report.md"
import csv, re, statistics as st, sys
d, dur, hz = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
UNIT = {"us": 1, "ms": 1e3, "s": 1e6}
def wrk(path):
    t = open(path).read()
    req = int(re.search(r"(\d+) requests in", t).group(1))
    m = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)\b", t, re.M)
    err = sum(int(x) for x in re.findall(r"(?:connect|read|write|timeout) (\d+)", t))
    err += sum(int(x) for x in re.findall(r"Non-2xx or 3xx responses: (\d+)", t))
    return req, float(m.group(1)) * UNIT[m.group(2)], err
rows = {}
for r in csv.DictReader(open(d + "/runs.tsv"), delimiter="\t"):
    req, p99, err = wrk(f"{d}/raw/{r['workload']}-r{r['round']}-{r['system']}.txt")
    rows[r["workload"], r["round"], r["system"]] = dict(
        rps=req / dur, cpu=int(r["ticks"]) / hz * 1e6 / req, p99=p99, err=err)
pairs = [p.split(":") for p in open(d + "/pairs.txt").read().split()]
wls = sorted({k[0] for k in rows})
print("| workload | system | req/s | proxy CPU µs per req/conn | p99 ms | errors |")
print("|---|---|---:|---:|---:|---:|")
for w in wls:
    for s in [x for p in pairs for x in p]:
        v = [x for k, x in rows.items() if k[0] == w and k[2] == s]
        print(f"| {w} | {s} | {st.median(x['rps'] for x in v):,.0f} | {st.median(x['cpu'] for x in v):.2f} "
              f"| {st.median(x['p99'] for x in v) / 1e3:.2f} | {sum(x['err'] for x in v)} |")
print("\nWithin-round ratios new/base: median (min-max) over the rounds\n")
print("| workload | pair | rounds | CPU per req/conn | p99 | req/s |")
print("|---|---|---:|---:|---:|---:|")
for w in wls:
    for base, new in pairs:
        rs = sorted({k[1] for k in rows if k[0] == w and k[2] == base} & {k[1] for k in rows if k[0] == w and k[2] == new})
        cells = []
        for m in ("cpu", "p99", "rps"):
            q = [rows[w, r, new][m] / rows[w, r, base][m] for r in rs]
            cells.append(f"{st.median(q):.3f}x ({min(q):.2f}-{max(q):.2f})")
        print(f"| {w} | {new} / {base} | {len(rs)} | " + " | ".join(cells) + " |")
PY
log "results: $RESULTS_DIR"

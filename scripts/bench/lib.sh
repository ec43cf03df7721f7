# Helpers for scripts/bench.sh (sourced, not run): messages, the processes the benchmark started,
# CPU sets and affinity, /proc accounting, and the runs.csv writer.
# Expects RESULTS_DIR, HELPER and TMP_DIR to be set by the caller before the first spawn.
# shellcheck shell=bash disable=SC2034 # SYS_* and the like are read by the caller

die() { printf 'bench.sh: error: %s\n' "$*" >&2; exit 1; }
log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
warn() { printf 'bench.sh: warning: %s\n' "$*" >&2; }

# ---------------------------------------------------------------- CPU sets
# expand_cpus LIST : "0-2,5" -> "0 1 2 5" (order kept, no validation beyond the syntax)
expand_cpus() {
    local part a b i
    local -a parts ids=()
    IFS=, read -ra parts <<<"$1"
    for part in "${parts[@]}"; do
        if [[ $part =~ ^([0-9]+)-([0-9]+)$ ]]; then
            a=${BASH_REMATCH[1]}; b=${BASH_REMATCH[2]}
            ((a <= b)) || return 1
            for ((i = a; i <= b; i++)); do ids+=("$i"); done
        elif [[ $part =~ ^[0-9]+$ ]]; then
            ids+=("$part")
        else
            return 1
        fi
    done
    ((${#ids[@]})) || return 1
    echo "${ids[*]}"
}

# join_cpus ID... : "0 1 5" -> "0,1,5" (what taskset -c, --cpu-list and the CSV take)
join_cpus() { local IFS=,; echo "$*"; }

# allowed_cpus : the CPUs this shell may run on, e.g. "0 1" (from the affinity mask, which in a
# container can be a subset of what nproc's /proc/cpuinfo shows)
allowed_cpus() {
    local line
    line=$(taskset -pc $$ 2>/dev/null) || { seq -s ' ' 0 $(($(nproc) - 1)); return; }
    expand_cpus "${line##*: }"
}

# ---------------------------------------------------------------- processes we started
STARTED_PIDS=()   # every background process this script started; only these are ever signalled

cleanup() {
    local rc=$? pid i any
    trap - EXIT INT TERM
    for pid in "${STARTED_PIDS[@]}"; do
        kill -0 "$pid" 2>/dev/null && kill -TERM "$pid" 2>/dev/null
    done
    for ((i = 0; i < 50; i++)); do  # up to 5 s for a graceful exit
        any=0
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
    [[ -z ${TMP_DIR:-} ]] || rm -rf -- "$TMP_DIR"
    exit "$rc"
}

# spawn NAME CPUS CMD... : start CMD in the background, pinned to CPUS ("" = not pinned), output
# to logs/NAME.log.  Sets SPAWNED_PID (taskset execs CMD, so it is CMD's PID).
SPAWNED_PID=
spawn() {
    local name=$1 cpus=$2
    local -a pin=()
    shift 2
    [[ -z $cpus ]] || pin=(taskset -c "$cpus")
    printf '$ %s\n' "$(printf '%q ' "${pin[@]}" "$@")" >>"$RESULTS_DIR/commands.txt"
    "${pin[@]}" "$@" >"$RESULTS_DIR/logs/$name.log" 2>&1 </dev/null &
    SPAWNED_PID=$!
    STARTED_PIDS+=("$SPAWNED_PID")
}

# stop_pid PID : TERM, wait up to 5 s, then KILL.  Only for PIDs in STARTED_PIDS.
stop_pid() {
    local pid=$1 i
    [[ -n $pid ]] || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
    wait "$pid" 2>/dev/null || true
}

int_in() {  # int_in VALUE MIN MAX : VALUE is a decimal integer in MIN..MAX
    [[ $1 =~ ^[0-9]+$ ]] || return 1
    (($1 >= $2 && $1 <= $3))
}

pids_alive() {
    local pid
    for pid in "$@"; do kill -0 "$pid" 2>/dev/null || return 1; done
}

children_of() {  # direct children of PID (the workers of a master/worker server)
    cat /proc/"$1"/task/*/children 2>/dev/null || true
}

# set_affinity CPUS PID... : move running processes (all their threads) to CPUS ("" = every
# allowed CPU).  Used to re-pin the shared backends between layouts without restarting them.
set_affinity() {
    local cpus=${1:-$ALL_CPUS_LIST} pid
    shift
    for pid in "$@"; do
        taskset -a -p -c "$cpus" "$pid" >/dev/null 2>&1 || warn "could not set the affinity of pid $pid to $cpus"
    done
}

free_port() { python3 "$HELPER" freeport; }

# port_open PORT : 127.0.0.1:PORT accepts a connection (bash's /dev/tcp: no interpreter start-up)
port_open() { timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }

# wait_ready NAME PID PORT : wait (<= 10 s) until 127.0.0.1:PORT accepts.  Returns 1 with
# SYS_ERROR set if PID died or the port never opened.
wait_ready() {
    local name=$1 pid=$2 port=$3 i
    for ((i = 0; i < 100; i++)); do
        if [[ -n $pid ]] && ! kill -0 "$pid" 2>/dev/null; then
            tail -n 5 "$RESULTS_DIR/logs/$name.log" >&2 || true
            SYS_ERROR="exited during start-up (logs/$name.log)"
            return 1
        fi
        port_open "$port" && return 0
        sleep 0.1
    done
    SYS_ERROR="did not accept connections on 127.0.0.1:$port within 10 s (logs/$name.log)"
    return 1
}

# fill_template IN OUT KEY=VALUE... : replace @KEY@ placeholders
fill_template() {
    local in=$1 out=$2 kv key val
    shift 2
    cp -- "$in" "$out"
    for kv in "$@"; do
        key=${kv%%=*} val=${kv#*=}
        val=${val//\\/\\\\}; val=${val//&/\\&}; val=${val//|/\\|}
        val=${val//$'\n'/\\n}   # GNU sed: \n in the replacement is a newline
        sed -i "s|@${key}@|${val}|g" "$out"
    done
}

# proc_ticks PID... : utime+stime (fields 14+15 of /proc/PID/stat, all threads) summed, in ticks
proc_ticks() {
    local pid total=0 stat rest
    local -a f
    for pid in "$@"; do
        stat=$(<"/proc/$pid/stat") || return 1
        rest=${stat##*) }        # skip "pid (comm) ": comm may contain spaces
        read -ra f <<<"$rest"    # f[0] is field 3 (state)
        total=$((total + f[11] + f[12]))
    done
    echo "$total"
}

# proc_wait_ns PID... : nanoseconds the PIDs' threads spent runnable but waiting for a CPU (field 2
# of /proc/PID/task/*/schedstat), summed. CPU time plus this wait over a window near 100 % of it
# means the process always had work: saturated, even when other load took part of its CPU.
proc_wait_ns() {
    local pid f total=0 a b
    for pid in "$@"; do
        for f in /proc/"$pid"/task/*/schedstat; do
            read -r a b _ <"$f" 2>/dev/null || continue
            total=$((total + b))
        done
    done
    echo "$total"
}

loadavg1() { cut -d' ' -f1 /proc/loadavg; }

# ---------------------------------------------------------------- runs.csv
# One row per measurement.  Columns that do not apply to a workload stay empty.
CSV_COLS=(workload workers streams layout proxy_cpus load_cpus run system duration_s
    requests rps mib_s gbit_s bytes p50_us p99_us max_us probes errors proxy_cpu_s cpu_us_per_req
    cpu_ms_per_gib cpu_pct wait_pct conns rss_before_kib rss_kib bytes_per_conn loadavg1 error raw)

csv_header() { local IFS=,; echo "${CSV_COLS[*]}" >"$1"; }

# csv_row FILE KEY=VALUE... : append a row; values of the global associative array M are used for
# columns not given explicitly.  A value with a comma or a quote is quoted as RFC 4180 says.
declare -A M=()
csv_row() {
    local file=$1 kv c v
    local -a vals=()
    local -A f=()
    shift
    for c in "${!M[@]}"; do f[$c]=${M[$c]}; done
    for kv in "$@"; do f[${kv%%=*}]=${kv#*=}; done
    for c in "${CSV_COLS[@]}"; do
        v=${f[$c]:-}; v=${v//$'\n'/ }
        [[ $v != *[,\"]* ]] || v="\"${v//\"/\"\"}\""
        vals+=("$v")
    done
    (IFS=,; printf '%s\n' "${vals[*]}") >>"$file"
}

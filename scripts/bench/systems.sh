# The systems under test for scripts/bench.sh (sourced, not run).  A system <name> is a few
# functions; to add a column write them and put <name> in SYSTEMS:
#   sys_<name>_label     column title
#   sys_<name>_check     optional: prepare (e.g. copy a binary); die if it cannot work at all, or
#                        return 1 with SYS_SKIP set to leave it out of the run with a note
#   sys_<name>_version   optional: one line for the environment table
#   sys_<name>_start BACKEND_PORT TAG WORKERS CPUS
#       start in front of 127.0.0.1:BACKEND_PORT and wait until it accepts.  WORKERS: "" = the
#       system's default single worker (no flag passed), N = N threads/processes (W6).  CPUS: ""
#       = not pinned, else a CPU list for taskset; with 1 < N <= (CPUs in the list) workers, worker
#       i is also pinned to the i-th CPU of the list (per_worker_cpus).  TAG names log and config files.
#       Sets SYS_PORT (where clients connect), SYS_PIDS (to stop), SYS_MEASURE_PIDS (whose CPU
#       is the proxy's CPU), SYS_RSS_PIDS (whose VmRSS is the proxy's memory); the last three are
#       empty for direct.  On failure returns 1 with SYS_ERROR set.
# shellcheck shell=bash disable=SC2034 # SYS_* are read by the caller

# per_worker_cpus WORKERS CPUS : the CPU ids to pin worker i to, one per worker, or nothing when
# the workers are not pinned one by one (unpinned, a single worker, or more workers than CPUs)
per_worker_cpus() {
    local -a ids=()
    [[ -n $2 && ${1:-1} -gt 1 ]] || return 0
    read -ra ids <<<"$(expand_cpus "$2")"
    ((${#ids[@]} >= $1)) || return 0
    echo "${ids[*]:0:$1}"
}

sys_label() {
    if declare -F "sys_$1_label" >/dev/null; then "sys_$1_label"; else echo "$1"; fi
}

sys_direct_label() { echo "direct"; }
sys_direct_start() {
    SYS_PORT=$1; SYS_PIDS=""; SYS_MEASURE_PIDS=""; SYS_RSS_PIDS=""
}

# ---------------------------------------------------------------- HAProxy (mode tcp)
start_haproxy() {  # start_haproxy BACKEND_PORT TAG WORKERS CPUS EXTRA_DEFAULTS [BIND_OPTIONS]
    local port cfg threads=${3:-1} cpus=$4 extra_global="" pw
    port=$(free_port)
    cfg=$TMP_DIR/$2.cfg
    # maxconn 20000 wants ~40k fds; where the hard limit is lower (containers without
    # CAP_SYS_RESOURCE) HAProxy >= 2.3 refuses to start unless told not to be strict; it then
    # runs with ulimit-n fds, which is enough for every workload here.
    ((NOFILE >= 40100)) || extra_global="    no strict-limits"
    pw=$(per_worker_cpus "$threads" "$cpus")
    [[ -z $pw ]] || extra_global+="${extra_global:+$'\n'}    cpu-map auto:1/1-$threads $pw"
    fill_template "$BENCH_DIR/haproxy-tcp.cfg.in" "$cfg" "PORT=$port" "BACKEND_PORT=$1" \
        "NBTHREAD=$threads" "ULIMIT_N=$NOFILE" "EXTRA_GLOBAL=$extra_global" "EXTRA_DEFAULTS=$5" \
        "BIND_OPTIONS=${6:-}"
    cp -- "$cfg" "$RESULTS_DIR/logs/$2.cfg"
    if ! haproxy -c -f "$cfg" >"$RESULTS_DIR/logs/$2.check.log" 2>&1; then
        SYS_ERROR="invalid HAProxy configuration (logs/$2.cfg, logs/$2.check.log)"
        return 1
    fi
    spawn "$2" "$cpus" haproxy -f "$cfg" -db
    SYS_PORT=$port; SYS_PIDS=$SPAWNED_PID; SYS_MEASURE_PIDS=$SPAWNED_PID; SYS_RSS_PIDS=$SPAWNED_PID
    wait_ready "$2" "$SPAWNED_PID" "$port"
}
sys_haproxy_label() { echo "HAProxy"; }
sys_haproxy_version() { haproxy -v 2>&1 | head -n 1; }
sys_haproxy_start() { start_haproxy "$1" "$2" "$3" "$4" ""; }

# Forced splice in both directions.  With HAProxy 2.6 "option splice-auto" hardly ever engages
# for a plain TCP relay (iperf3 through it runs at the no-splice rate and CPU), so the splice
# column forces it; splice-auto is an optional extra column.
sys_haproxy_splice_label() { echo "HAProxy+splice"; }
sys_haproxy_splice_start() { start_haproxy "$1" "$2" "$3" "$4" "    option splice-request
    option splice-response"; }

sys_haproxy_splice_auto_label() { echo "HAProxy+splice-auto"; }
sys_haproxy_splice_auto_start() { start_haproxy "$1" "$2" "$3" "$4" "    option splice-auto"; }

# The ACK savers of both proxies (decision 0017), for clients that speak first: HAProxy's
# tcp-smart-accept, tcp-smart-connect and defer-accept against edgeproxy's directives of the same
# names (the *_smart edgeproxy columns below).
SMART_EDGEPROXY_ARGS="--tcp-smart-accept --tcp-smart-connect --defer-accept 1"
sys_haproxy_smart_label() { echo "HAProxy+smart"; }
sys_haproxy_smart_start() { start_haproxy "$1" "$2" "$3" "$4" "    option tcp-smart-accept
    option tcp-smart-connect" " defer-accept"; }

# ---------------------------------------------------------------- nginx stream
sys_nginx_stream_label() { echo "nginx-stream"; }
sys_nginx_stream_version() { nginx -v 2>&1 | head -n 1; }
sys_nginx_stream_check() {
    [[ -e /usr/lib/nginx/modules/ngx_stream_module.so ]] ||
        die "nginx stream module missing (/usr/lib/nginx/modules/ngx_stream_module.so); install libnginx-mod-stream (scripts/install-deps.sh --bench) or leave nginx_stream out of SYSTEMS"
}
sys_nginx_stream_start() {
    local port prefix i w="" procs=${3:-1} cpus=$4 affinity="" id
    local -a wpids=()
    port=$(free_port)
    prefix=$TMP_DIR/$2
    mkdir -p "$prefix"
    for id in $(per_worker_cpus "$procs" "$cpus"); do  # one mask per worker: "1" and id zeros
        affinity="${affinity:-worker_cpu_affinity} 1$(printf '%*s' "$id" '' | tr ' ' 0)"
    done
    [[ -z $affinity ]] || affinity+=";"
    cat >"$prefix/nginx.conf" <<EOF
load_module /usr/lib/nginx/modules/ngx_stream_module.so;
daemon off;
master_process on;
worker_processes $procs;
$affinity
worker_rlimit_nofile $NOFILE;
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
    spawn "$2" "$cpus" nginx -p "$prefix" -c "$prefix/nginx.conf" -e "$RESULTS_DIR/logs/$2.error.log"
    SYS_PIDS=$SPAWNED_PID
    wait_ready "$2" "$SPAWNED_PID" "$port" || return 1
    for ((i = 0; i < 50; i++)); do  # the workers do the proxying
        w=$(children_of "$SPAWNED_PID")
        read -ra wpids <<<"${w//$'\n'/ }"
        ((${#wpids[@]} < procs)) || break
        sleep 0.1
    done
    if ((${#wpids[@]} < procs)); then
        SYS_ERROR="found ${#wpids[@]} of $procs nginx worker processes"
        return 1
    fi
    SYS_PORT=$port
    SYS_MEASURE_PIDS=${wpids[*]}
    SYS_RSS_PIDS="$SPAWNED_PID ${wpids[*]}"   # total memory: the master counts too
}

# ---------------------------------------------------------------- edgeproxy
# sys_*_check copies each binary to TMP_DIR, so every workload runs the same build even if build/
# is rebuilt meanwhile; the report names the original path, its mtime and the copy's sha256.
declare -A EP_COPY=() EP_DESC=() EP_VER=() EP_SPLICE=()
edgeproxy_check() {  # edgeproxy_check BIN VAR EXPECTED_BACKEND MAKE_ARGS
    local bin=$1 copy
    if [[ ! -x $bin ]]; then
        if [[ $bin == "$REPO_ROOT/build/"* && $BUILD == 1 ]]; then
            log "building $bin (make $4)"
            # shellcheck disable=SC2086 # MAKE_ARGS is a word list
            make -C "$REPO_ROOT" --no-print-directory $4 >"$TMP_DIR/build.log" 2>&1 ||
                { tail -n 30 "$TMP_DIR/build.log" >&2; die "make $4 failed"; }
        fi
        [[ -x $bin ]] || die "edgeproxy binary not found: $bin (build it with 'make $4', set $2, or leave it out of SYSTEMS)"
    fi
    if [[ -z ${EP_COPY[$bin]:-} ]]; then
        copy=$TMP_DIR/edgeproxy-${#EP_COPY[@]}
        cp -- "$bin" "$copy"
        EP_VER[$bin]=$(timeout 2 "$copy" --version 2>&1 </dev/null | head -n 1) || true
        EP_DESC[$bin]="${EP_VER[$bin]:-unknown} ($bin, built $(date -u -r "$bin" +%Y-%m-%dT%H:%M:%SZ), sha256 $(sha256sum "$copy" | cut -c1-12))"
        EP_SPLICE[$bin]=0
        # Captured first: "| grep -q" would SIGPIPE the binary and fail the pipeline (pipefail).
        local ep_help
        ep_help=$(timeout 2 "$copy" --help 2>&1 </dev/null || true)
        if [[ $ep_help == *--splice* ]]; then EP_SPLICE[$bin]=1; fi
        EP_COPY[$bin]=$copy
    fi
    [[ ${EP_VER[$bin]} == *"backend $3"* ]] || warn "$bin --version says '${EP_VER[$bin]:-nothing}', expected the $3 backend ($2)"
}
# start_edgeproxy BIN BACKEND_PORT TAG WORKERS CPUS SPLICE_MODE ("" = the build has no --splice)
#   [MORE_ARGS]
start_edgeproxy() {
    local port bin=$1 workers=$4 cpus=$5 pw
    local -a args=() extra=() more=()
    port=$(free_port)
    args=(-q -l 127.0.0.1 -p "$port" -b 127.0.0.1 -P "$2" --max-connections 20000)
    if [[ -n $workers ]]; then
        args+=(--workers "$workers")
        pw=$(per_worker_cpus "$workers" "$cpus")
        [[ -z $pw ]] || args+=(--cpu-list "${pw// /,}")
    fi
    [[ -z $6 ]] || args+=(--splice "$6")
    [[ -z $EDGEPROXY_ARGS ]] || read -ra extra <<<"$EDGEPROXY_ARGS"
    [[ -z ${7:-} ]] || read -ra more <<<"$7"
    spawn "$3" "$cpus" "${EP_COPY[$bin]}" "${args[@]}" "${extra[@]}" "${more[@]}"
    SYS_PORT=$port; SYS_PIDS=$SPAWNED_PID; SYS_MEASURE_PIDS=$SPAWNED_PID; SYS_RSS_PIDS=$SPAWNED_PID
    wait_ready "$3" "$SPAWNED_PID" "$port"
}
# The plain columns pass "--splice never" once the build has the flag, so they stay the
# no-splice baseline whatever the default becomes; the *_splice columns pass EDGEPROXY_SPLICE.
ep_plain_mode() { if ((${EP_SPLICE[$1]})); then echo never; fi; }
ep_splice_check() {  # ep_splice_check BIN
    ((${EP_SPLICE[$1]})) && return 0
    SYS_SKIP="$1 --help does not mention --splice (this build cannot splice)"
    return 1
}

sys_edgeproxy_label() { echo "edgeproxy (epoll)"; }
sys_edgeproxy_check() { edgeproxy_check "$EDGEPROXY_BIN" EDGEPROXY_BIN epoll release; }
sys_edgeproxy_version() { echo "${EP_DESC[$EDGEPROXY_BIN]}"; }
sys_edgeproxy_start() { start_edgeproxy "$EDGEPROXY_BIN" "$1" "$2" "$3" "$4" "$(ep_plain_mode "$EDGEPROXY_BIN")"; }

sys_edgeproxy_uring_label() { echo "edgeproxy (io_uring)"; }
sys_edgeproxy_uring_check() { edgeproxy_check "$EDGEPROXY_URING_BIN" EDGEPROXY_URING_BIN io_uring "release BACKEND=uring"; }
sys_edgeproxy_uring_version() { echo "${EP_DESC[$EDGEPROXY_URING_BIN]}"; }
sys_edgeproxy_uring_start() { start_edgeproxy "$EDGEPROXY_URING_BIN" "$1" "$2" "$3" "$4" "$(ep_plain_mode "$EDGEPROXY_URING_BIN")"; }

sys_edgeproxy_splice_label() { echo "edgeproxy (epoll, splice $EDGEPROXY_SPLICE)"; }
sys_edgeproxy_splice_check() { sys_edgeproxy_check && ep_splice_check "$EDGEPROXY_BIN"; }
sys_edgeproxy_splice_start() { start_edgeproxy "$EDGEPROXY_BIN" "$1" "$2" "$3" "$4" "$EDGEPROXY_SPLICE"; }

sys_edgeproxy_uring_splice_label() { echo "edgeproxy (io_uring, splice $EDGEPROXY_SPLICE)"; }
sys_edgeproxy_uring_splice_check() { sys_edgeproxy_uring_check && ep_splice_check "$EDGEPROXY_URING_BIN"; }
sys_edgeproxy_uring_splice_start() { start_edgeproxy "$EDGEPROXY_URING_BIN" "$1" "$2" "$3" "$4" "$EDGEPROXY_SPLICE"; }

sys_edgeproxy_smart_label() { echo "edgeproxy (epoll, smart)"; }
sys_edgeproxy_smart_check() { sys_edgeproxy_check; }
sys_edgeproxy_smart_start() { start_edgeproxy "$EDGEPROXY_BIN" "$1" "$2" "$3" "$4" "$(ep_plain_mode "$EDGEPROXY_BIN")" "$SMART_EDGEPROXY_ARGS"; }

sys_edgeproxy_uring_smart_label() { echo "edgeproxy (io_uring, smart)"; }
sys_edgeproxy_uring_smart_check() { sys_edgeproxy_uring_check; }
sys_edgeproxy_uring_smart_start() { start_edgeproxy "$EDGEPROXY_URING_BIN" "$1" "$2" "$3" "$4" "$(ep_plain_mode "$EDGEPROXY_URING_BIN")" "$SMART_EDGEPROXY_ARGS"; }

KNOWN_SYSTEMS="direct haproxy haproxy_splice haproxy_splice_auto haproxy_smart nginx_stream edgeproxy edgeproxy_uring edgeproxy_splice edgeproxy_uring_splice edgeproxy_smart edgeproxy_uring_smart"

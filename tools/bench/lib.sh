# lib.sh - what the bench scripts share (source it; needs BUILD set): a free loopback
# port, and a ternd started on one and waited for.

# port_free PORT: true if nothing listens on TCP PORT.
port_free() { ! ss -Hltn "sport = :$1" | grep -q .; }

# free_port: prints a free loopback TCP port (and the one after it is free too), below
# the kernel's ephemeral range (32768-60999 here): ss sees listeners only, and a port
# there may be the local end of some connection when ternd binds it.
free_port() {
    local p
    for _ in $(seq 200); do
        p=$(( 20000 + RANDOM % 12000 ))
        port_free "$p" && port_free $((p + 1)) && { echo "$p"; return 0; }
    done
    echo "no free port" >&2; return 1
}

# launch_ternd DIR [FLAGS...]: starts ternd on a free 127.0.0.1 port with its data in
# DIR/data and its log in DIR/ternd.log, waits until it is ready; sets TERND_PID and
# PORT. Exits the script if ternd does not come up.
launch_ternd() {
    PORT=$(free_port)
    start_ternd "$@"
}

# launch_node DIR ID ETCD_URL [FLAGS...]: launch_ternd for cluster node ID on etcd
# ETCD_URL; its in-DC replication endpoint is the port after PORT (free_port checks both).
launch_node() {
    local dir=$1 id=$2 etcd=$3; shift 3
    PORT=$(free_port)
    start_ternd "$dir" --node-id "$id" --etcd "$etcd" \
        --cluster-listen "tcp://127.0.0.1:$((PORT + 1))" "$@"
}

# start_ternd DIR [FLAGS...]: launch_ternd on the port already in PORT.
start_ternd() {
    local dir=$1; shift
    mkdir -p "$dir"
    "$BUILD/bin/ternd" --listen "tcp://127.0.0.1:$PORT" --data "$dir/data" --metrics off \
        "$@" >"$dir/ternd.log" 2>&1 &
    TERND_PID=$!
    for _ in $(seq 100); do
        grep -q "ready on" "$dir/ternd.log" 2>/dev/null && return 0
        kill -0 "$TERND_PID" 2>/dev/null || break
        sleep 0.05
    done
    echo "ternd did not start:" >&2; cat "$dir/ternd.log" >&2; exit 1
}

# thread_cpu PID: one line per thread of PID, "tid name utime stime" (clock ticks from
# /proc/PID/task/*/stat; the name may hold spaces: the fields after the closing
# parenthesis are taken, the name's spaces become _).
thread_cpu() {
    local t
    for t in /proc/"$1"/task/*; do
        [ -r "$t/stat" ] || continue
        echo "${t##*/} $(tr ' ' '_' <"$t/comm") $(sed 's/.*) //' "$t/stat" | awk '{print $12, $13}')"
    done
}

# proc_cpu_ticks PID: utime + stime of every thread of PID so far, in clock ticks (the
# process's own stat, which counts exited threads too).
proc_cpu_ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }

# launch_etcd DIR [FLAGS...]: one etcd member on free 127.0.0.1 ports, data in
# DIR/etcd, log in DIR/etcd.log, waited for; sets ETCD_PID and ETCD_URL. Exits the
# script if etcd is missing or does not come up.
launch_etcd() {
    local dir=$1; shift
    local etcd etcdctl port
    etcd=$(command -v etcd || echo /usr/bin/etcd)
    etcdctl=$(command -v etcdctl || echo /usr/bin/etcdctl)
    [ -x "$etcd" ] || { echo "no etcd on PATH or at /usr/bin/etcd" >&2; exit 1; }
    port=$(free_port)
    ETCD_URL=http://127.0.0.1:$port
    mkdir -p "$dir"
    "$etcd" --name bench --data-dir "$dir/etcd" \
        --listen-client-urls "$ETCD_URL" --advertise-client-urls "$ETCD_URL" \
        --listen-peer-urls "http://127.0.0.1:$((port + 1))" \
        --initial-advertise-peer-urls "http://127.0.0.1:$((port + 1))" \
        --initial-cluster "bench=http://127.0.0.1:$((port + 1))" "$@" >"$dir/etcd.log" 2>&1 &
    ETCD_PID=$!
    for _ in $(seq 100); do
        ETCDCTL_API=3 "$etcdctl" --endpoints "$ETCD_URL" --dial-timeout 1s endpoint health \
            >/dev/null 2>&1 && return 0
        kill -0 "$ETCD_PID" 2>/dev/null || break
        sleep 0.1
    done
    echo "etcd did not start:" >&2; tail -n 20 "$dir/etcd.log" >&2; exit 1
}

# stop_pids PID...: SIGTERM, up to 10 s, then SIGKILL; only processes the calling script
# started (its children, so `wait` reaps them). An exit status other than SIGTERM's (143)
# is reported on stderr, so a node that crashed during a run does not go unnoticed.
stop_pids() {
    local p rc
    for p in "$@"; do
        if [ -n "$p" ]; then kill "$p" 2>/dev/null || true; fi
    done
    for p in "$@"; do
        [ -n "$p" ] || continue
        for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || { rc=$?; [ "$rc" = 143 ] || echo "$(basename "$0"): pid $p exited with status $rc at stop" >&2; }
    done
}

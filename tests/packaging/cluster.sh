#!/bin/sh
#  cluster BUILD SOURCE: scripts/cluster (what `make cluster` runs) starts
#  etcd and three ternd nodes that join one cluster (--check verifies it and
#  stops), refuses a second run on the same ports, stops everything on
#  SIGTERM and after TERN_CLUSTER_EXIT_AFTER, and leaves no process behind.
#  Ports are free ones below the ephemeral range (like tests/common/test_port.c).
set -eu
build=$1
source=$2
script=$source/scripts/cluster
command -v etcd >/dev/null || [ -x /usr/bin/etcd ] ||
    { echo "cluster: no etcd (scripts/bootstrap installs etcd-server)" >&2; exit 1; }

tmp=$(mktemp -d /tmp/tern-cluster-test.XXXXXX)
export TERN_CLUSTER_DIR="$tmp/cluster" TERN_CLUSTER_BIN="$build/bin"
bg=""

#  PIDs of processes whose command line names our cluster dir: only ours.
s_ours() {
    for d in /proc/[0-9]*; do
        case $({ tr '\0' ' ' <"$d/cmdline"; } 2>/dev/null) in
            *"$TERN_CLUSTER_DIR"*) echo "${d#/proc/}" ;;
        esac
    done
}
s_cleanup() {
    [ -n "$bg" ] && kill -TERM "$bg" 2>/dev/null && wait "$bg" 2>/dev/null
    for pid in $(s_ours); do kill -KILL "$pid" 2>/dev/null || true; done
    rm -rf "$tmp"
}
trap s_cleanup EXIT
s_fail() {
    echo "cluster: $*" >&2
    for log in "$TERN_CLUSTER_DIR"/*.log; do
        [ -f "$log" ] && { echo "--- $log" >&2; tail -n 15 "$log" >&2; }
    done
    exit 1
}
s_none_left() {
    left=$(s_ours)
    [ -z "$left" ] || s_fail "$1: processes left behind: $left"
}

#  A block of 40 ports (node N: BASE+10N, +1, +9; etcd: BASE+30, +31) below
#  the ephemeral range, seeded by our pid so parallel runs start apart; the
#  script itself refuses a block where anything listens, then we move on.
low=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
slot=$(( ($$ * 7919) % 290 ))
tries=0
while :; do
    export TERN_CLUSTER_BASE=$((low - 12000 + 40 * slot))
    export TERN_CLUSTER_ETCD_PORT=$((TERN_CLUSTER_BASE + 30))
    if timeout 120 bash "$script" --check >"$tmp/check.out" 2>&1; then
        break
    fi
    tries=$((tries + 1))
    if grep -q "is in use" "$tmp/check.out" && [ $tries -lt 10 ]; then
        slot=$(( (slot + 1) % 290 ))
        continue
    fi
    cat "$tmp/check.out" >&2
    s_fail "--check did not pass"
done
grep -q "check: 3 nodes up" "$tmp/check.out" || s_fail "--check said: $(cat "$tmp/check.out")"
s_none_left "after --check"

#  Running: the endpoints are printed, a second run on the same ports is
#  refused before it starts anything, SIGTERM stops everything.
TERN_CLUSTER_EXIT_AFTER=300 bash "$script" >"$tmp/run.out" 2>&1 &
bg=$!
i=0
until grep -q "Ctrl-C here stops everything" "$tmp/run.out"; do
    i=$((i + 1))
    if [ $i -ge 600 ] || ! kill -0 "$bg" 2>/dev/null; then
        s_fail "no endpoints printed: $(cat "$tmp/run.out")"
    fi
    sleep 0.1
done
grep -q "node 2  clients tcp://127.0.0.1:$((TERN_CLUSTER_BASE + 20))" "$tmp/run.out" ||
    s_fail "endpoints missing: $(cat "$tmp/run.out")"
if bash "$script" --check >"$tmp/second.out" 2>&1; then
    s_fail "a second run on busy ports was accepted"
fi
grep -q "port $TERN_CLUSTER_ETCD_PORT on 127.0.0.1 is in use" "$tmp/second.out" ||
    s_fail "second run: $(cat "$tmp/second.out")"
kill -TERM "$bg"
rc=0
wait "$bg" || rc=$?
bg=""
[ $rc -eq 0 ] || s_fail "SIGTERM: exit $rc: $(cat "$tmp/run.out")"
grep -q "cluster: stopped" "$tmp/run.out" || s_fail "not stopped: $(cat "$tmp/run.out")"
s_none_left "after SIGTERM"

#  TERN_CLUSTER_EXIT_AFTER stops it by itself.
TERN_CLUSTER_EXIT_AFTER=1 timeout 120 bash "$script" >"$tmp/exit.out" 2>&1 ||
    s_fail "EXIT_AFTER: $(cat "$tmp/exit.out")"
grep -q "cluster: stopped" "$tmp/exit.out" || s_fail "EXIT_AFTER: $(cat "$tmp/exit.out")"
s_none_left "after TERN_CLUSTER_EXIT_AFTER"
echo "cluster: ok"

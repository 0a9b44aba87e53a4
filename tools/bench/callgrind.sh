#!/usr/bin/env bash
# callgrind.sh - instructions per published message in each thread of a ternd, counted by
# valgrind's callgrind: what a busy shared host cannot blur (docs/performance.md,
# "Cluster", the cpub pass). Wall-clock CPU figures (cluster.sh cpu) move with the host's
# load; instruction counts do not.
#
# Usage:  tools/bench/callgrind.sh [cluster|single] [OUT]
#   cluster (default): etcd and three nodes (R=3, min_insync=2, durability fsync); nodes 0
#           and 1 run under callgrind, a topic led by node 0 is published to, so node 0 is
#           the leader and node 1 a follower. single: one ternd, same storage flags.
#   OUT [/tmp/tern-callgrind/<stamp>]: the callgrind files (one per thread) and logs.
# Knobs: N [20000] messages (window 256, 1 KB, producer id), BUILD [<repo>/build] (a build
#   with symbols: RelWithDebInfo). The counts are taken between a zero and a dump of the
#   counters around the timed publish (callgrind_control), after a 2,000-message warm-up;
#   the bench keeps its topics (--keep), so no reaper runs inside the window.
# Prints one line per thread that did work: "NODE THREAD instructions/message", where
# THREAD is the actor whose function holds most of the thread's instructions (storer,
# crepl, conn, route, ...), "zmq-io" for libzmq's I/O thread or "etcd" for the cluster's
# etcd threads (their work follows the clock, not the messages). Every process started
# here is stopped by PID.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BUILD=${BUILD:-$ROOT/build}
MODE=${1:-cluster}
OUT=${2:-/tmp/tern-callgrind/$(date +%Y%m%d-%H%M%S)}
N=${N:-20000}
case $MODE in cluster | single) ;; *) echo "callgrind.sh: cluster or single" >&2; exit 2 ;; esac
command -v valgrind >/dev/null || { echo "callgrind.sh: needs valgrind" >&2; exit 1; }
mkdir -p "$OUT"
WORK=$(mktemp -d /tmp/tern-callgrind-work.XXXXXX)
# shellcheck source=lib.sh
. "$HERE/lib.sh"
CTL=$BUILD/bin/ternctl
ETCD_PID=""
PIDS=()
cleanup() {
    stop_pids "${PIDS[@]}"
    stop_pids "$ETCD_PID"
    local d
    for d in "$WORK"/*/; do
        [ -f "$d/ternd.log" ] && cp "$d/ternd.log" "$OUT/$(basename "$d").log"
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

STORAGE=(--durability fsync --partitions 64)
# node DIR NAME [FLAGS...]: a ternd on port PORT (the caller's free_port), under
# callgrind when NAME is given
node() {
    local dir=$1 name=$2; shift 2
    local wrap=()
    [ -n "$name" ] && wrap=(valgrind --tool=callgrind --separate-threads=yes
        "--callgrind-out-file=$OUT/cg.$name")
    mkdir -p "$dir"
    "${wrap[@]}" "$BUILD/bin/ternd" --listen "tcp://127.0.0.1:$PORT" --data "$dir/data" \
        --metrics off "${STORAGE[@]}" "$@" >"$dir/ternd.log" 2>&1 &
    PIDS+=($!)
    for _ in $(seq 600); do grep -q "ready on" "$dir/ternd.log" && return 0; sleep 0.1; done
    echo "callgrind.sh: ternd did not start" >&2; cat "$dir/ternd.log" >&2; exit 1
}

ENDPOINTS=""
PROFILED=()
if [ "$MODE" = single ]; then
    PORT=$(free_port)
    node "$WORK/single" single
    ENDPOINTS=tcp://127.0.0.1:$PORT
    PROFILED=(single)
    TOPIC=cg
else
    launch_etcd "$WORK"
    for i in 0 1 2; do
        name=""
        [ "$i" -lt 2 ] && name=n$i
        PORT=$(free_port)
        # A long ack timeout and ISR lag: a node under callgrind is ~50x slower.
        node "$WORK/n$i" "$name" --node-id "$i" --etcd "$ETCD_URL" \
            --cluster-listen "tcp://127.0.0.1:$((PORT + 1))" --replicas 3 --min-insync 2 \
            --lease 2s --ack-timeout 30s --isr-lag 30s
        ENDPOINTS=$ENDPOINTS${ENDPOINTS:+,}tcp://127.0.0.1:$PORT
    done
    PROFILED=(n0 n1)
    for _ in $(seq 600); do
        led=$("$CTL" -s "$ENDPOINTS" --json cluster partitions 2>/dev/null |
            grep -o '"leader": *[0-9]' | wc -l) || true
        [ "$led" -ge 64 ] && break
        sleep 0.2
    done
    # a topic (bench names it PREFIX.0) whose partition node 0 leads
    TOPIC=""
    for k in $(seq 200); do
        l=$("$CTL" -s "$ENDPOINTS" --json cluster partitions --topic "cg$k.0" |
            grep -o '"leader": *[0-9]*' | head -1 | sed 's/.*: *//')
        if [ "$l" = 0 ]; then TOPIC=cg$k; break; fi
    done
    [ -n "$TOPIC" ] || { echo "callgrind.sh: no topic led by node 0" >&2; exit 1; }
fi

"$CTL" -s "$ENDPOINTS" bench pub --msgs 2000 --prefix "$TOPIC" --quiet --keep >/dev/null
sleep 1
for i in "${!PROFILED[@]}"; do callgrind_control -z "${PIDS[i]}" >/dev/null 2>&1; done
"$CTL" -s "$ENDPOINTS" bench pub --msgs "$N" --prefix "$TOPIC" --quiet --keep --json \
    >"$OUT/bench.json"
sleep 1
for i in "${!PROFILED[@]}"; do callgrind_control -d "${PIDS[i]}" >/dev/null 2>&1; done
sleep 1
if [ "$MODE" = cluster ]; then
    # the leader must not have moved during the run (a slow node can lose its lease)
    l=$("$CTL" -s "$ENDPOINTS" --json cluster partitions --topic "$TOPIC.0" |
        grep -o '"leader": *[0-9]*' | head -1 | sed 's/.*: *//')
    [ "$l" = 0 ] || echo "callgrind.sh: warning: the leader moved to node $l during the run" >&2
fi

# The dump after the zero is the file with the ".1" part (cg.NAME.1-TT, TT the thread).
for name in "${PROFILED[@]}"; do
    for f in "$OUT"/cg."$name".1-*; do
        [ -f "$f" ] || continue
        total=$(awk '/^summary:/ { print $2; exit }' "$f")
        [ "${total:-0}" -gt $((N * 50)) ] || continue
        thread=$(callgrind_annotate --inclusive=yes --threshold=100 --auto=no "$f" 2>/dev/null |
            grep -o -E 'tern_[a-z]+_actor|libzmq|tern_cluster[a-z_]*\.c:s_[a-z_]*thread' | head -1 |
            sed -e 's/^tern_cluster.*thread$/etcd/' -e 's/^tern_//' -e 's/_actor$//' \
                -e 's/^libzmq$/zmq-io/' || true)
        printf "%-7s %-8s %8d\n" "$name" "${thread:-?}" $((total / N))
    done
done | sort | tee "$OUT/summary.txt"

#!/usr/bin/env bash
# handover.sh - SIGTERM on a leader hands its partitions over (issue 14): measures the
# pause a publisher sees and whether it sees any error.
#
# Starts its own cluster (a one-member etcd and three ternd nodes, R=3 min_insync=2, on
# free loopback ports, data under /tmp, removed at exit), and one producer with a
# producer id: `ternctl pub` reading stdin, fed one line every INTERVAL_MS, with every
# node as seed (libtern follows the leader); each acknowledgement line and each line pub
# writes on stderr is stamped (wall clock, ms) as it arrives. Then RUNS times: SIGTERM
# to the current leader of the topic's partition, wait until it has exited, restart it
# on the same port and data dir, wait until it is back in the partition's ISR.
#
# usage: tools/chaos/handover.sh [RUNS [BUILD_DIR]]     RUNS 10, BUILD_DIR ./build
#
# Prints per run: the client's errors in the run (any line pub wrote on stderr; the
# target is 0), the longest gap between consecutive acknowledgements from SIGTERM until
# the restart (ms; the target is < 300), the longest gap in the 2 s before the SIGTERM
# (the baseline), the time from SIGTERM until etcd names the new leader (a watch on the
# partition's key), the time until the node exited and its exit status; then p50/p99 of
# the gap and of the new-leader time over the runs. Exit 0 when every run had no client
# error and the producer is still running.
#
# Knobs (environment): INTERVAL_MS [2] between publishes, LEASE [2s], PARTITIONS [8],
# TOPIC [handover], SIGNAL [TERM] (KILL is the control: no handover, so the gap is the
# lease-driven failover's, seconds), OUT [/tmp/tern-handover/<stamp>] (logs are kept there).
# Every process started here is stopped by PID (trap on EXIT).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
RUNS=${1:-10}
BUILD=${2:-$ROOT/build}
case $RUNS in
'' | *[!0-9]*) echo "handover.sh: RUNS must be a number, not '$RUNS'" >&2; exit 2 ;;
esac
if [ ! -x "$BUILD/bin/ternd" ] || [ ! -x "$BUILD/bin/ternctl" ]; then
    echo "handover.sh: no ternd/ternctl in $BUILD/bin (make build)" >&2; exit 2
fi
INTERVAL_MS=${INTERVAL_MS:-2}
LEASE=${LEASE:-2s}
PARTITIONS=${PARTITIONS:-8}
TOPIC=${TOPIC:-handover}
SIGNAL=${SIGNAL:-TERM}
OUT=${OUT:-/tmp/tern-handover/$(date +%Y%m%d-%H%M%S)}
WORK=$(mktemp -d /tmp/tern-handover-work.XXXXXX)
CTL=$BUILD/bin/ternctl
ETCDCTL=$(command -v etcdctl || echo /usr/bin/etcdctl)
NAME=ho
mkdir -p "$OUT"

ETCD_PID="" GEN_PID="" PUB_PID="" STAMP_PID="" ERRSTAMP_PID="" WATCH_PID="" WATCH_STAMP_PID=""
NODE_PIDS=("" "" "")
cleanup() {
    stop_pids "$GEN_PID" "$PUB_PID"
    stop_pids "$STAMP_PID" "$ERRSTAMP_PID" "$WATCH_PID" "$WATCH_STAMP_PID"
    stop_pids "${NODE_PIDS[@]}"
    stop_pids "$ETCD_PID"
    local i
    for i in 0 1 2; do cp "$WORK/n$i/ternd.log" "$OUT/n$i.log" 2>/dev/null || true; done
    cp "$WORK/etcd.log" "$WORK/acks.log" "$WORK/pub.err" "$WORK/watch.log" "$OUT/" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# shellcheck source=tools/bench/lib.sh
. "$ROOT/tools/bench/lib.sh"
now_ms() { echo $(($(date +%s%N) / 1000000)); }
# stamp: copies stdin to stdout, each line prefixed with the wall clock in ms.
stamp() { perl -MTime::HiRes=time -ne 'BEGIN { $| = 1 } printf "%.3f %s", time * 1000, $_'; }

launch_etcd "$WORK"
NODE_ARGS=(--cluster "$NAME" --replicas 3 --min-insync 2 --lease "$LEASE"
    --partitions "$PARTITIONS")
PORTS=()
ENDPOINTS=""
for i in 0 1 2; do
    launch_node "$WORK/n$i" "$i" "$ETCD_URL" "${NODE_ARGS[@]}"
    NODE_PIDS[i]=$TERND_PID
    PORTS[i]=$PORT
    ENDPOINTS=$ENDPOINTS${ENDPOINTS:+,}tcp://127.0.0.1:$PORT
done

# view FIELD: the topic's partition's FIELD ("leader", "partition") from the cluster's
# view, or nothing.
view() {
    "$CTL" -s "$ENDPOINTS" --json cluster partitions --topic "$TOPIC" 2>/dev/null |
        grep -o "\"$1\": *[0-9]*" | head -1 | sed 's/.*: *//' || true
}
# isr_size: members of the topic's partition's ISR.
isr_size() {
    "$CTL" -s "$ENDPOINTS" --json cluster partitions --topic "$TOPIC" 2>/dev/null |
        tr -d ' \n' | grep -o '"isr":\[[0-9,]*\]' | head -1 | tr -cd ',0-9' |
        awk -F, '{ print ($0 == "" ? 0 : NF) }' || true
}
wait_whole() {
    local n
    for _ in $(seq 600); do
        n=$(isr_size)
        [ -n "$(view leader)" ] && [ "${n:-0}" -ge 3 ] && return 0
        sleep 0.1
    done
    echo "handover.sh: partition of $TOPIC not led with a whole ISR within 60 s" >&2
    "$CTL" -s "$ENDPOINTS" cluster partitions --topic "$TOPIC" >&2 || true
    exit 1
}
wait_whole
PART=$(view partition)
KEY=/tern/$NAME/partitions/$PART

# etcd's record of the partition, every change, stamped.
mkfifo "$WORK/watch.fifo" "$WORK/gen.fifo" "$WORK/acks.fifo" "$WORK/err.fifo"
ETCDCTL_API=3 "$ETCDCTL" --endpoints "$ETCD_URL" watch "$KEY" >"$WORK/watch.fifo" 2>&1 &
WATCH_PID=$!
stamp <"$WORK/watch.fifo" >"$WORK/watch.log" &
WATCH_STAMP_PID=$!

# The producer: a line every INTERVAL_MS into ternctl pub with a fixed producer id.
perl -MTime::HiRes=sleep -e 'BEGIN { $| = 1 } for (my $n = 1; ; $n++) { print "m$n\n"; sleep($ARGV[0] / 1000) }' \
    "$INTERVAL_MS" >"$WORK/gen.fifo" &
GEN_PID=$!
"$CTL" -s "$ENDPOINTS" pub "$TOPIC" --producer "handover-$$" --timeout 60s \
    <"$WORK/gen.fifo" >"$WORK/acks.fifo" 2>"$WORK/err.fifo" &
PUB_PID=$!
stamp <"$WORK/acks.fifo" >"$WORK/acks.log" &
STAMP_PID=$!
stamp <"$WORK/err.fifo" >"$WORK/pub.err" &
ERRSTAMP_PID=$!
sleep 2
[ -s "$WORK/acks.log" ] || { echo "handover.sh: the producer got no acknowledgement" >&2; exit 1; }

echo "handover.sh: etcd $ETCD_URL, nodes $ENDPOINTS, topic $TOPIC partition $PART," \
    "publish every ${INTERVAL_MS} ms, lease $LEASE, signal $SIGNAL, $RUNS runs, logs in $OUT"
# max_gap FROM TO: the longest gap (ms) between consecutive acknowledgements stamped in
# [FROM, TO], counting the gaps at both ends (FROM to the first ack, the last one up to
# the first ack after TO, or to TO when there is none yet).
max_gap() {
    awk -v a="$1" -v b="$2" '$1 >= a { if (p) { g = $1 - p; if (g > m) m = g }
            else { m = $1 - a } p = $1; if (p > b) exit }
        END { if (!p) m = b - a; else if (p < b && b - p > m) m = b - p; printf "%.0f\n", m }' \
        "$WORK/acks.log"
}
# leader_at T OLD: ms from T until the first record etcd shows after T whose leader is
# not OLD ("" if none); the watch prints a record as "partition=P leader=N ...".
leader_at() {
    awk -v t="$1" -v old="$2" '$1 >= t && / leader=/ { s = $0; sub(/.* leader=/, "", s)
            sub(/[^0-9].*/, "", s); if (s != "" && s != old) { printf "%.0f\n", $1 - t; exit } }' \
        "$WORK/watch.log"
}
: >"$OUT/runs.txt"
for r in $(seq "$RUNS"); do
    wait_whole
    L=$(view leader)
    sleep 1
    errs_before=$(wc -l <"$WORK/pub.err")
    t0=$(now_ms)
    kill -"$SIGNAL" "${NODE_PIDS[L]}"
    rc=0
    wait "${NODE_PIDS[L]}" || rc=$?
    t_exit=$(now_ms)
    for _ in $(seq 200); do [ -n "$(leader_at "$t0" "$L")" ] && break; sleep 0.05; done
    # The victim stays down until the publisher has had acknowledgements again for a
    # second (up to 30 s): a restart must not end a pause that would go on without it.
    t_end=$(now_ms)
    for _ in $(seq 300); do
        t_end=$(now_ms)
        [ $((t_end - t_exit)) -ge 1000 ] && [ "$(max_gap $((t_end - 1000)) "$t_end")" -lt 200 ] && break
        sleep 0.1
    done
    kill -0 "$PUB_PID" 2>/dev/null || { echo "handover.sh: ternctl pub exited:" >&2; cat "$WORK/pub.err" >&2; exit 1; }
    errs=$(($(wc -l <"$WORK/pub.err") - errs_before))
    gap=$(max_gap "$t0" "$t_end")
    base=$(max_gap $((t0 - 2000)) "$t0")
    newl=$(leader_at "$t0" "$L")
    echo "run $r: node $L errors $errs max_ack_gap_ms $gap (before: $base) new_leader_ms ${newl:-none}" \
        "exit_ms $((t_exit - t0)) exit_status $rc at $t0" | tee -a "$OUT/runs.txt"
    cp "$WORK/n$L/ternd.log" "$OUT/n$L.run$r.log"
    PORT=${PORTS[L]}
    start_ternd "$WORK/n$L" --node-id "$L" --etcd "$ETCD_URL" \
        --cluster-listen "tcp://127.0.0.1:$((PORT + 1))" "${NODE_ARGS[@]}"
    NODE_PIDS[L]=$TERND_PID
done
wait_whole

# pct P: the P-th percentile (nearest rank) of the numbers on stdin.
pct() { sort -g | awk -v p="$1" '{ v[NR] = $1 } END { i = int((p * NR + 99) / 100); if (i < 1) i = 1; print v[i] }'; }
col() { awk -v k="$1" '{ for (i = 1; i < NF; i++) if ($i == k) print $(i + 1) }' "$OUT/runs.txt"; }
errors=$(col errors | awk '{ s += $1 } END { print s + 0 }')
echo "handover.sh: $RUNS runs: client errors $errors;" \
    "max ack gap p50 $(col max_ack_gap_ms | pct 50) / p99 $(col max_ack_gap_ms | pct 99) ms" \
    "(max $(col max_ack_gap_ms | sort -g | tail -1));" \
    "new leader p50 $(col new_leader_ms | grep -v none | pct 50) / p99 $(col new_leader_ms | grep -v none | pct 99) ms;" \
    "acknowledged $(wc -l <"$WORK/acks.log")" | tee -a "$OUT/runs.txt"
[ "$errors" -eq 0 ]

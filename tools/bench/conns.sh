#!/usr/bin/env bash
# conns.sh - many connected consumers on one ternd: RSS per connection, and no message lost.
#
# Usage: tools/bench/conns.sh [CONSUMERS] [MSGS]     (default 10000 consumers, 100000 msgs)
# PROCS [8] `ternctl bench pubsub` processes, each with CONSUMERS/PROCS consumers in one
# durable group on its own topic (one client = one connection each, heartbeats on) and one
# publisher of MSGS/PROCS; each fails (exit 1) unless every message it published is delivered.
# (Several processes because this container caps a process at 20000 fds, and each libtern
# client holds ~9 fds and 3 threads.)
# ternd's RssAnon is sampled before the clients connect and at its peak while they are
# connected; the difference divided by CONSUMERS is the broker's memory per connection.
# Knobs: HEARTBEAT [5s] (broker heartbeat offered to clients)  BUILD [<repo>/build-bench]
# ternd on 127.0.0.1 (free port), data under /tmp, stopped by PID (trap on EXIT).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BUILD=${BUILD:-$ROOT/build-bench}
CONS=${1:-10000}
MSGS=${2:-100000}
HEARTBEAT=${HEARTBEAT:-5s}
PROCS=${PROCS:-8}
WORK=$(mktemp -d /tmp/tern-conns-work.XXXXXX)
TERND_PID=""
BENCH_PIDS=()
cleanup() {
    for p in "${BENCH_PIDS[@]}" "$TERND_PID"; do
        if [ -n "$p" ] && kill -0 "$p" 2>/dev/null; then
            kill "$p" 2>/dev/null || true
            wait "$p" 2>/dev/null || true
        fi
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# shellcheck source=lib.sh
. "$HERE/lib.sh"
launch_ternd "$WORK" --heartbeat "$HEARTBEAT" --max-connections $(( CONS + 100 ))
anon() { awk '/^RssAnon/ {print $2}' "/proc/$TERND_PID/status"; }
base=$(anon)

for i in $(seq "$PROCS"); do
    "$BUILD/bin/ternctl" -s "tcp://127.0.0.1:$PORT" bench pubsub --consumers $(( CONS / PROCS )) \
        --msgs $(( MSGS / PROCS )) --credit 100 --prefix "bench.conns$i" --name "tern_conns_$CONS" \
        --timeout 120s >"$WORK/out$i.txt" 2>"$WORK/err$i.txt" &
    BENCH_PIDS+=($!)
done
peak=$base
running() { local p; for p in "${BENCH_PIDS[@]}"; do kill -0 "$p" 2>/dev/null && return 0; done; return 1; }
while running; do
    a=$(anon); [ "$a" -gt "$peak" ] && peak=$a
    sleep 0.5
done
rc=0
for i in $(seq "$PROCS"); do
    wait "${BENCH_PIDS[$((i - 1))]}" || rc=$?
    grep RESULT "$WORK/out$i.txt" || { tail -3 "$WORK/err$i.txt" >&2; }
done
BENCH_PIDS=()
echo "CHECK conns consumers=$(( CONS / PROCS * PROCS )) procs=$PROCS msgs=$(( MSGS / PROCS * PROCS ))" \
     "exit=$rc rss_anon_base_kb=$base rss_anon_peak_kb=$peak" \
     "kb_per_conn=$(awk -v a="$peak" -v b="$base" -v n="$CONS" 'BEGIN {printf "%.1f", (a - b) / n}')"
exit "$rc"

#!/usr/bin/env bash
# ab.sh - two builds of tern side by side: durable async publish (window 256, dedup,
# fsync) and consume + ack of the stored backlog, old and new interleaved round by round.
# For "did this change cost anything": the machine's drift hits both alike.
#
# Usage:  tools/bench/ab.sh OLD_BUILD NEW_BUILD [ROUNDS]     (build dirs with bin/ternd, bin/ternctl)
# e.g.    git worktree add /tmp/old REV && cmake -S /tmp/old -B /tmp/old/b -DCMAKE_BUILD_TYPE=Release
#         && cmake --build /tmp/old/b --target ternd ternctl && tools/bench/ab.sh /tmp/old/b build-bench
# Prints each run's RESULT line tagged old/new, then the medians. Listens on 127.0.0.1 only;
# each ternd is stopped by PID and its data removed.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
. "$HERE/lib.sh" # launch_ternd
OLD=$1 NEW=$2 ROUNDS=${3:-4} N=${N:-200000}
WORK=$(mktemp -d)
TERND_PID=""
trap '[ -n "$TERND_PID" ] && kill "$TERND_PID" 2>/dev/null; rm -rf "$WORK"' EXIT

run() { # run TAG BUILD: one fresh ternd, one pub run and one sub run
    local tag=$1 keep=""
    BUILD=$2 # launch_ternd's ternd
    "$BUILD/bin/ternctl" bench --help 2>&1 | grep -q -- --keep && keep=--keep
    rm -rf "$WORK/d"
    launch_ternd "$WORK/d"
    sync
    "$BUILD/bin/ternctl" -s "tcp://127.0.0.1:$PORT" bench pub --msgs "$N" --window 256 --quiet \
        $keep 2>/dev/null | sed -n "s/^RESULT/$tag pub/p"
    "$BUILD/bin/ternctl" -s "tcp://127.0.0.1:$PORT" bench sub --msgs "$N" --credit 1000 --quiet \
        $keep 2>/dev/null | sed -n "s/^RESULT/$tag sub/p"
    kill "$TERND_PID"; wait "$TERND_PID" 2>/dev/null || true; TERND_PID=""
}

for _ in $(seq "$ROUNDS"); do
    run old "$OLD"
    run new "$NEW"
done | tee "$WORK/results"
for tag in old new; do
    for w in pub sub; do
        grep "^$tag $w " "$WORK/results" | sed -n 's/.*msgs_per_s=\([0-9]*\).*/\1/p' | sort -n |
            awk -v t="$tag" -v w="$w" '{ v[NR] = $1 } END {
                m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
                printf "median %s %s msgs/s %d (%d runs)\n", t, w, m, NR }'
    done
done

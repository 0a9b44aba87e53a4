#!/usr/bin/env bash
# backlog.sh - flat-memory check: fill a big backlog (default 10M x 1 KB = 10 GB) into one
# ternd, then drain it with a durable group (consume + ack), sampling ternd's memory
# (/proc/PID/status: VmRSS, RssAnon, RssFile) every second to a CSV.
#
# Usage: tools/bench/backlog.sh [MSGS]        (default 10000000; e.g. 1000000)
# Knobs: DURABILITY [fsync]  SIZE [1024]  OUT [/tmp/tern-backlog/<stamp>]  BUILD [<repo>/build-bench]
# Prints RESULT lines (fill and drain) and CHECK lines with the peak RSS of each phase.
# ternd listens on 127.0.0.1 on a free port, data under /tmp (removed at exit); ternd and
# the sampler are stopped by PID (trap on EXIT).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BUILD=${BUILD:-$ROOT/build-bench}
MSGS=${1:-10000000}
SIZE=${SIZE:-1024}
DURABILITY=${DURABILITY:-fsync}
OUT=${OUT:-/tmp/tern-backlog/$(date +%Y%m%d-%H%M%S)}
WORK=$(mktemp -d /tmp/tern-backlog-work.XXXXXX)
mkdir -p "$OUT"
TERND_PID=""
SAMPLER_PID=""
cleanup() {
    for p in "$SAMPLER_PID" "$TERND_PID"; do
        if [ -n "$p" ] && kill -0 "$p" 2>/dev/null; then
            kill "$p" 2>/dev/null || true
            wait "$p" 2>/dev/null || true
        fi
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# shellcheck source=lib.sh
. "$HERE/lib.sh"
launch_ternd "$WORK" --durability "$DURABILITY" --map-max 64G

PHASE_FILE=$WORK/phase
echo start >"$PHASE_FILE"
CSV=$OUT/rss.csv
echo "t_s,phase,vmrss_kb,rss_anon_kb,rss_file_kb,data_bytes" >"$CSV"
(
    t0=$(date +%s)
    while kill -0 "$TERND_PID" 2>/dev/null; do
        st=/proc/$TERND_PID/status
        echo "$(( $(date +%s) - t0 )),$(cat "$PHASE_FILE"),$(awk '/^VmRSS/ {print $2}' "$st"),$(awk '/^RssAnon/ {print $2}' "$st"),$(awk '/^RssFile/ {print $2}' "$st"),$(du -sb "$WORK/data" | cut -f1)" >>"$CSV"
        sleep 1
    done
) &
SAMPLER_PID=$!

TC=("$BUILD/bin/ternctl" -s "tcp://127.0.0.1:$PORT" bench)
echo fill >"$PHASE_FILE"
"${TC[@]}" pub --prefix bench.backlog --keep --msgs "$MSGS" --size "$SIZE" --window 1024 \
    --durability "$DURABILITY" --name tern_backlog_fill --timeout 60s | tee -a "$OUT/raw.txt"
echo idle >"$PHASE_FILE"
sleep 2
echo drain >"$PHASE_FILE"
"${TC[@]}" sub --prefix bench.backlog --no-fill --msgs "$MSGS" --size "$SIZE" --credit 1000 \
    --durability "$DURABILITY" --name tern_backlog_drain --timeout 60s | tee -a "$OUT/raw.txt"
echo "done" >"$PHASE_FILE"
sleep 1
for ph in fill drain; do
    awk -F, -v ph="$ph" '$2 == ph { if ($3 > r) r = $3; if ($4 > a) a = $4; if ($5 > f) f = $5 }
        END { printf "CHECK backlog_%s peak_vmrss_kb=%d peak_rss_anon_kb=%d peak_rss_file_kb=%d\n", ph, r, a, f }' \
        "$CSV" | tee -a "$OUT/raw.txt"
done
echo "csv: $CSV" >&2

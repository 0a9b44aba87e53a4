#!/usr/bin/env bash
# cpu.sh - where the CPU of one workload goes: user and kernel time per message of each
# ternd thread (by name: ternd-conn, ternd-storer, ternd-route, ZMQbg/IO/0, ...) and of
# the ternctl client, around one `ternctl bench` run against a fresh ternd.
#
# Usage: tools/bench/cpu.sh [pub|sub|fanout] [MSGS]   (default: pub 300000)
# Knobs: DURABILITY [fsync]  BUILD [<repo>/build-bench]  and any further ternctl bench
#   options in BENCH_ARGS (e.g. BENCH_ARGS="--window 1024"), ternd options in TERND_ARGS
#   (e.g. TERND_ARGS="--writemap" or "--batch-bytes 6M").
# sub fills the backlog first (not counted), then measures the drain only. fanout publishes
# MSGS to FANOUT_GROUPS [100] durable groups of one consumer each (`bench pubsub --groups`,
# topic kept) and divides by the deliveries (MSGS x FANOUT_GROUPS); it also prints ternd's
# RssAnon peak (sampled every 100 ms) and VmHWM.
# ternd listens on 127.0.0.1 on a free port, data under /tmp (removed at exit); ternd is
# stopped by PID (trap on EXIT).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BUILD=${BUILD:-$ROOT/build-bench}
MODE=${1:-pub}
MSGS=${2:-300000}
DURABILITY=${DURABILITY:-fsync}
WORK=$(mktemp -d /tmp/tern-cpu.XXXXXX)
TERND_PID=""
cleanup() {
    if [ -n "$TERND_PID" ] && kill -0 "$TERND_PID" 2>/dev/null; then
        kill "$TERND_PID" 2>/dev/null || true
        wait "$TERND_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
case "$MODE" in pub | sub | fanout) ;; *) echo "usage: cpu.sh [pub|sub|fanout] [MSGS]" >&2; exit 2 ;; esac
GROUPS_N=${FANOUT_GROUPS:-100}

# shellcheck source=lib.sh
. "$HERE/lib.sh"
# shellcheck disable=SC2086 # TERND_ARGS is a list of options
launch_ternd "$WORK" --durability "$DURABILITY" ${TERND_ARGS:-}

CTL=("$BUILD/bin/ternctl" -s "tcp://127.0.0.1:$PORT" bench)
if [ "$MODE" = sub ]; then
    "${CTL[@]}" pub --msgs "$MSGS" --prefix cpu --keep --quiet >/dev/null
    RUN=(sub --msgs "$MSGS" --prefix cpu --no-fill)
    PER=$MSGS
elif [ "$MODE" = fanout ]; then
    RUN=(pubsub --msgs "$MSGS" --groups "$GROUPS_N" --keep)
    PER=$((MSGS * GROUPS_N))
else
    PER=$MSGS
    RUN=(pub --msgs "$MSGS")
fi

# utime and stime (clock ticks) of every ternd thread: "tid name utime stime"
snapshot() { thread_cpu "$TERND_PID"; }
snapshot | sort >"$WORK/before"
rss_anon_kb() { awk '/^RssAnon/ {print $2}' "/proc/$TERND_PID/status" 2>/dev/null || echo 0; }
echo 5 >"/proc/$TERND_PID/clear_refs" 2>/dev/null || true
(peak=0; while kill -0 "$TERND_PID" 2>/dev/null && [ ! -e "$WORK/done" ]; do
    r=$(rss_anon_kb); [ "${r:-0}" -gt "$peak" ] && peak=$r && echo "$peak" >"$WORK/peak"
    sleep 0.1; done) &
SAMPLER=$!
/usr/bin/time -f "%U %S" -o "$WORK/client" "${CTL[@]}" "${RUN[@]}" --quiet ${BENCH_ARGS:-} |
    tail -1 | tee "$WORK/result"
snapshot | sort >"$WORK/after"
touch "$WORK/done"; wait "$SAMPLER" 2>/dev/null || true

HZ=$(getconf CLK_TCK)
UNIT=message; [ "$MODE" = fanout ] && UNIT="delivery ($GROUPS_N groups)"
echo "CPU per $UNIT ($MODE, $MSGS msgs, durability $DURABILITY), us: user / kernel"
join "$WORK/before" "$WORK/after" | awk -v n="$PER" -v hz="$HZ" '
    { u = ($6 - $3) * 1e6 / hz / n; s = ($7 - $4) * 1e6 / hz / n
      if (u + s >= 0.05) printf "  %-16s %6.2f / %6.2f\n", $2, u, s
      tu += u; ts += s }
    END { printf "  %-16s %6.2f / %6.2f  (total %.2f)\n", "ternd", tu, ts, tu + ts }'
awk -v n="$PER" '{ printf "  %-16s %6.2f / %6.2f  (total %.2f)\n", "client", $1 * 1e6 / n,
    $2 * 1e6 / n, ($1 + $2) * 1e6 / n }' "$WORK/client"
echo "ternd RssAnon peak $(awk '{printf "%.1f", $1 / 1024}' "$WORK/peak" 2>/dev/null) MB (sampled every 100 ms), now $(rss_anon_kb | awk '{printf "%.1f", $1 / 1024}') MB, VmHWM $(awk '/^VmHWM/ {printf "%.1f", $2 / 1024}' "/proc/$TERND_PID/status") MB"

#!/usr/bin/env bash
# hops.sh - thread wake-ups per message of one `ternctl bench` run: the voluntary context
# switches (a thread that slept, so a wake-up later) of every ternd thread, by name, and
# ternd's CPU time, around the run against a fresh ternd (a 200-message warm-up first,
# not counted). Counts, not timings: they hold on a busy host (docs/performance.md,
# "Hops of a lone message").
#
# Usage: tools/bench/hops.sh [sync|pubsub] [MSGS]      (default: sync 3000)
# Knobs: DURABILITY [none]  BUILD [<repo>/build]  TERND (a ternd binary to measure instead
#   of $BUILD's)  BENCH_ARGS (further ternctl bench options, e.g. "--rate 1000").
# ternd listens on 127.0.0.1 on a free port, data under /tmp (removed at exit); ternd is
# stopped by PID (trap on EXIT).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BUILD=${BUILD:-$ROOT/build}
MODE=${1:-sync}
MSGS=${2:-3000}
DURABILITY=${DURABILITY:-none}
WORK=$(mktemp -d /tmp/tern-hops.XXXXXX)
TERND_PID=""
trap '[ -n "$TERND_PID" ] && kill "$TERND_PID" 2>/dev/null; rm -rf "$WORK"' EXIT
trap 'exit 130' INT TERM
case "$MODE" in sync | pubsub) ;; *) echo "usage: hops.sh [sync|pubsub] [MSGS]" >&2; exit 2 ;; esac

# shellcheck source=lib.sh
. "$HERE/lib.sh"
if [ -n "${TERND:-}" ]; then
    mkdir -p "$WORK/bin" && ln -s "$TERND" "$WORK/bin/ternd"
    OWN_BUILD=$BUILD BUILD=$WORK # launch_ternd runs $BUILD/bin/ternd
    launch_ternd "$WORK" --durability "$DURABILITY"
    BUILD=$OWN_BUILD
else
    launch_ternd "$WORK" --durability "$DURABILITY"
fi
CTL=("$BUILD/bin/ternctl" -s "tcp://127.0.0.1:$PORT" bench "$MODE")
"${CTL[@]}" --msgs 200 --quiet >/dev/null

# "tid name voluntary nonvoluntary utime stime" of every ternd thread
snapshot() {
    local t
    for t in /proc/"$TERND_PID"/task/*; do
        [ -r "$t/status" ] || continue
        echo "${t##*/} $(tr ' ' '_' <"$t/comm")" \
            "$(awk '/^voluntary_ctxt/ {v=$2} /^nonvoluntary_ctxt/ {n=$2} END {print v, n}' "$t/status")" \
            "$(sed 's/.*) //' "$t/stat" | awk '{print $12, $13}')"
    done
}
snapshot | sort >"$WORK/before"
# shellcheck disable=SC2086 # BENCH_ARGS is split into options on purpose
perf stat -x, -e task-clock,context-switches -o "$WORK/client" \
    "${CTL[@]}" --msgs "$MSGS" --quiet ${BENCH_ARGS:-} | grep -E "^p(50|99)_us" || true
snapshot | sort >"$WORK/after"

HZ=$(getconf CLK_TCK)
echo "per message ($MODE, $MSGS msgs, durability $DURABILITY): sleeps (voluntary switches), cpu us"
join "$WORK/before" "$WORK/after" | awk -v n="$MSGS" -v hz="$HZ" '
    { v = ($8 - $3) / n; c = ($10 + $11 - $5 - $6) * 1e6 / hz / n
      if (v >= 0.005 || c >= 0.05) printf "  %-16s %6.2f sleeps %7.2f us\n", $2, v, c
      tv += v; tc += c }
    END { printf "  %-16s %6.2f sleeps %7.2f us\n", "ternd (all)", tv, tc }'
awk -F, -v n="$MSGS" '$3 == "task-clock" { c = $1 } $3 == "context-switches" { s = $1 }
    END { printf "  %-16s %6.2f switches %6.2f us (perf stat, all threads)\n", "client",
          s / n, c * 1000 / n }' "$WORK/client"

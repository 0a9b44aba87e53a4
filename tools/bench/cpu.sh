#!/usr/bin/env bash
# cpu.sh - where the CPU of one workload goes: user and kernel time per message of each
# ternd thread (by name: ternd-conn, ternd-storer, ternd-route, ZMQbg/IO/0, ...) and of
# the ternctl client, around one `ternctl bench` run against a fresh ternd.
#
# Usage: tools/bench/cpu.sh [pub|sub] [MSGS]          (default: pub 300000)
# Knobs: DURABILITY [fsync]  BUILD [<repo>/build-bench]  and any further ternctl bench
#   options in BENCH_ARGS (e.g. BENCH_ARGS="--window 1024"), ternd options in TERND_ARGS
#   (e.g. TERND_ARGS="--writemap").
# sub fills the backlog first (not counted), then measures the drain only.
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
case "$MODE" in pub | sub) ;; *) echo "usage: cpu.sh [pub|sub] [MSGS]" >&2; exit 2 ;; esac

# shellcheck source=lib.sh
. "$HERE/lib.sh"
# shellcheck disable=SC2086 # TERND_ARGS is a list of options
launch_ternd "$WORK" --durability "$DURABILITY" ${TERND_ARGS:-}

CTL=("$BUILD/bin/ternctl" -s "tcp://127.0.0.1:$PORT" bench)
if [ "$MODE" = sub ]; then
    "${CTL[@]}" pub --msgs "$MSGS" --prefix cpu --keep --quiet >/dev/null
    RUN=(sub --msgs "$MSGS" --prefix cpu --no-fill)
else
    RUN=(pub --msgs "$MSGS")
fi

# utime and stime (clock ticks) of every ternd thread: "tid name utime stime"
snapshot() { thread_cpu "$TERND_PID"; }
snapshot | sort >"$WORK/before"
/usr/bin/time -f "%U %S" -o "$WORK/client" "${CTL[@]}" "${RUN[@]}" --quiet ${BENCH_ARGS:-} |
    tail -1 | tee "$WORK/result"
snapshot | sort >"$WORK/after"

HZ=$(getconf CLK_TCK)
echo "CPU per message ($MODE, $MSGS msgs, durability $DURABILITY), us: user / kernel"
join "$WORK/before" "$WORK/after" | awk -v n="$MSGS" -v hz="$HZ" '
    { u = ($6 - $3) * 1e6 / hz / n; s = ($7 - $4) * 1e6 / hz / n
      if (u + s >= 0.05) printf "  %-16s %6.2f / %6.2f\n", $2, u, s
      tu += u; ts += s }
    END { printf "  %-16s %6.2f / %6.2f  (total %.2f)\n", "ternd", tu, ts, tu + ts }'
awk -v n="$MSGS" '{ printf "  %-16s %6.2f / %6.2f  (total %.2f)\n", "client", $1 * 1e6 / n,
    $2 * 1e6 / n, ($1 + $2) * 1e6 / n }' "$WORK/client"

#!/bin/sh
#  socket-guard.sh - runs test binaries under zmq_guard.c, which aborts a
#  process the moment two threads use one ZeroMQ socket at once.
#
#  usage: tools/chaos/socket-guard.sh [RUNS [BUILD_DIR [TEST...]]]
#         RUNS defaults to 10, BUILD_DIR to ./build, TEST to it_client_kill
#         it_checker (names of $BUILD_DIR/bin binaries). Each run's output
#         goes to $BUILD_DIR/socket-guard/TEST.RUN.log, kept only when the
#         run failed. Prints one line per run; exit 0 when every run passed
#         with no overlap and no libzmq assertion.
#
#  docs/client.md ("Threading model") cites its results (tools/chaos/README.md).
set -u
RUNS=${1:-10}
BUILD=${2:-build}
[ $# -gt 2 ] && shift 2 || set -- it_client_kill it_checker
HERE=$(cd "$(dirname "$0")" && pwd)
OUT="$BUILD/socket-guard"
mkdir -p "$OUT"
SHIM="$OUT/zmq_guard.so"
cc -O1 -g -shared -fPIC -o "$SHIM" "$HERE/zmq_guard.c" -ldl || exit 2
SHIM=$(cd "$OUT" && pwd)/zmq_guard.so
failed=0
i=1
while [ "$i" -le "$RUNS" ]; do
    for test in "$@"; do
        log="$OUT/$test.$i.log"
        ZMQ_GUARD_REPORT=1 LD_PRELOAD="$SHIM" "$BUILD/bin/$test" --jobs 1 >"$log" 2>&1
        rc=$?
        overlaps=$(grep -c 'zmq_guard: socket' "$log")
        asserts=$(grep -c 'Assertion failed' "$log")
        echo "socket-guard: $test run $i: exit $rc, $overlaps overlaps, $asserts libzmq assertions"
        if [ "$rc" -ne 0 ] || [ "$overlaps" -ne 0 ] || [ "$asserts" -ne 0 ]; then
            failed=$((failed + 1))
        else
            rm -f "$log"
        fi
    done
    i=$((i + 1))
done
echo "socket-guard: $failed failed runs"
[ "$failed" -eq 0 ]

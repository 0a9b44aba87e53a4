#!/bin/sh
#  dc-cut.sh - the long form of issue 15's DC cut: "a DC cut off from the
#  others for 10 s, 30 s and 300 s ... while every DC takes writes,
#  including the same (producer, seq) on both sides".
#
#  Runs xdc_cut/long_cut of tests/integration/it_xdc_cut.c once per
#  duration: two clustered DCs of three nodes, every etcd and node in a
#  network namespace of its own, producers in both DCs paced at RATE
#  messages/s per DC and topic, dc1 cut off from dc2 by blackhole routes
#  both ways for the duration (a producer "twin" publishes the same
#  (producer, seq) in both DCs meanwhile), then healed, then the drills' end:
#  every DC converged, `ternctl cluster verify` in every DC, a group per DC
#  reads every topic, tern-check --dcs 2 on the history and every in-sync
#  replica's log. The 10 s cut is xdc_cut/cut_10s, in `make test`: the same
#  code.
#
#  usage: tools/chaos/dc-cut.sh [SECONDS...]     (default: 30 300)
#  Environment: BUILD (default ./build, configured: `make build`), RATE
#  (default 20), EXTRA (ternd flags for every node, space-separated, e.g.
#  "--repl-heartbeat 300ms"; a cut of 100 s or more adds --dedup-window of
#  twice the cut unless EXTRA sets one: see below), LOG (default
#  BUILD/chaos-dc-cut-SECONDS.log).
#  Needs root (or CAP_NET_ADMIN and CAP_SYS_ADMIN) and iproute2.
#
#  Prints one `cut:` line per run: detection (ms from the cut until the
#  first and the last of the 6 cross-DC links reported it, as `ternctl
#  peers` shows the link state), the first client failure and publishing
#  again, the links live again and every DC converged (ms from the heal),
#  acknowledged publishes; then tern-check's summary. Exit 0 when every run
#  passed (nothing acknowledged lost, verify clean).
set -eu

build=${BUILD:-build}
durations=${*:-30 300}
if [ ! -f "$build/CMakeCache.txt" ]; then
    echo "dc-cut.sh: $build is not a configured build dir (run make build)" >&2
    exit 2
fi
command -v etcd >/dev/null || {
    echo "dc-cut.sh: etcd is not installed (scripts/bootstrap installs it)" >&2
    exit 2
}
cmake --build "$build" -j2 --target it_xdc_cut ternd ternctl tern-check >/dev/null

XDC_REPORT='^cut: |^xdc: (converged|publish)|^tern-check: '
. "$(dirname "$0")/lib.sh"
trap netns_sweep EXIT
failed=0
for secs in $durations; do
    case $secs in
    '' | *[!0-9]*)
        echo "dc-cut.sh: durations are whole seconds, not '$secs'" >&2
        exit 2
        ;;
    esac
    log=${LOG:-$build/chaos-dc-cut-$secs.log}
    echo "dc-cut.sh: ${secs} s cut, rate ${RATE:-20}/s per DC and topic, log in $log"
    # The test deletes its namespaces at its end; those of an interrupted
    # run are swept at the script's exit (netns_sweep, tools/chaos/lib.sh).
    # Twins are resolved only while the first copy's dedup entry lives
    # (storage/dedup_window, 2 min by default; docs/replication.md
    # "Conflicts"): a longer cut runs with a window of twice the cut, as
    # the docs tell an operator to, unless EXTRA sets one.
    extra=${EXTRA:-}
    case "$extra" in
    *--dedup-window*) ;;
    *) [ "$secs" -lt 100 ] || extra="$extra --dedup-window $((secs * 2))s" ;;
    esac
    echo "dc-cut.sh: ternd flags:${extra:- (none)}"
    export TERN_XDC_CUT_S="$secs" TERN_XDC_CUT_RATE="${RATE:-20}" TERN_XDC_EXTRA="$extra"
    xdc_run "$log" "$build/bin/it_xdc_cut" --jobs 1 --filter 'xdc_cut/long_cut'
    if [ "$RC" -ne 0 ]; then
        echo "dc-cut.sh: ${secs} s FAILED (exit $RC); the full log is $log" >&2
        failed=1
    fi
done
[ "$failed" -eq 0 ] && echo "dc-cut.sh: passed"
exit "$failed"

#!/bin/sh
#  soak.sh - the long form of the drills across DCs (issue 15, "Reachability,
#  measured").
#
#  Starts three clustered DCs of three nodes on loopback (each with its own
#  three-member etcd and cluster name, node ids unique across DCs, every
#  DC peering with the other two), publishes in every DC at a fixed rate,
#  runs a random drill every 30-60 s for DURATION (a DC cut off from the
#  others for 10 s, a node moved to other ports, a node replaced with an
#  empty data dir, etcd quorum lost for 10 s, a partition leader SIGSTOPped
#  across its lease, a rolling restart of a DC), then ends like every drill:
#  every DC converged, `ternctl cluster verify` in every DC, a group per DC
#  reads every topic, `ternctl audit` of every topic in every DC, and
#  tern-check --dcs 3 on the recorded history and every in-sync replica's
#  log. It is xdc_drills/soak of tests/integration/it_xdc_drills.c with
#  TERN_XDC_SOAK_S set, so the short drills in `make test` and this long
#  form run the same code (tests/integration/xdc_harness.c).
#
#  Run as root (or with CAP_NET_ADMIN and CAP_SYS_ADMIN) with iproute2, the
#  DCs run in network namespaces from the start, every etcd and node in one
#  of its own (as tools/chaos/dc-cut.sh does), and the cut is real:
#  blackhole routes between the DC's namespaces and the others', both ways,
#  for 10 s. Without them the soak says so on its first line and the cut
#  falls back to `ternctl peers pause` on both sides.
#
#  usage: tools/chaos/soak.sh [DURATION [BUILD_DIR]]
#         DURATION in seconds, or with a unit: 300, 5m, 1h (default 30m);
#         BUILD_DIR defaults to ./build (configured: `make build`).
#  Environment: RATE messages/s per DC and topic (default 20), SEED (the
#  drill sequence; printed), LOG (default BUILD_DIR/chaos-soak.log).
#
#  Prints one `soak: drill` line per drill (first client failure and
#  publishing again, in ms from the fault; failed pub runs; publish attempts
#  and failed ones from the fault until converged; convergence), one `soak:
#  availability` line per drill kind (its attempts and failed attempts over
#  every drill of that kind, between_drills for the time between them) and
#  one for all, the audit rows (reachability per group and DC), the summary
#  and tern-check's summary. Exit 0 when every drill recovered, every DC
#  converged, verify passed and the checker found nothing.
set -eu

duration=${1:-30m}
build=${2:-build}
case $duration in
*h) secs=$((${duration%h} * 3600)) ;;
*m) secs=$((${duration%m} * 60)) ;;
*s) secs=${duration%s} ;;
*) secs=$duration ;;
esac
case $secs in
'' | *[!0-9]*)
    echo "soak.sh: DURATION must be seconds or N[smh], not '$duration'" >&2
    exit 2
    ;;
esac
if [ ! -f "$build/CMakeCache.txt" ]; then
    echo "soak.sh: $build is not a configured build dir (run make build)" >&2
    exit 2
fi
command -v etcd >/dev/null || {
    echo "soak.sh: etcd is not installed (scripts/bootstrap installs it)" >&2
    exit 2
}
log=${LOG:-$build/chaos-soak.log}

cmake --build "$build" -j2 --target it_xdc_drills ternd ternctl tern-check >/dev/null
echo "soak.sh: ${secs} s, 3 DCs x 3 nodes, rate ${RATE:-20}/s per DC and topic, log in $log"

export TERN_XDC_SOAK_S="$secs"
[ -z "${RATE:-}" ] || export TERN_XDC_SOAK_RATE="$RATE"
[ -z "${SEED:-}" ] || export TERN_XDC_SOAK_SEED="$SEED"
XDC_REPORT='^soak: |^drill: |^xdc: (audit|converged|publish)|^tern-check: '
. "$(dirname "$0")/lib.sh"
# The test deletes its namespaces at its end; those of an interrupted run
# are swept at the script's exit (netns_sweep, tools/chaos/lib.sh).
trap netns_sweep EXIT
xdc_run "$log" "$build/bin/it_xdc_drills" --jobs 1 --filter 'xdc_drills/soak'
if [ "$RC" -ne 0 ]; then
    echo "soak.sh: FAILED (exit $RC); the full log is $log" >&2
    exit 1
fi
echo "soak.sh: passed; the full log is $log"

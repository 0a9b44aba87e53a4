#!/bin/sh
#  leader-kills.sh - the long form of the leader-kill fault test (issue 14).
#
#  Starts its own cluster (a one-member etcd and three ternd nodes on free
#  loopback ports, temp data dirs), puts it under load from two producers
#  with producer ids, kills the leader of partition 0 with kill -9 KILLS
#  times (restarting the victim and waiting until it is back in sync each
#  time), then has a group consume every topic and runs tern-check on the
#  recorded history and every in-sync replica's log. It is
#  cluster_fault/leader_kills of tests/integration/it_cluster_fault.c with
#  TERN_CHAOS_KILLS=KILLS, so the short form in `make test` and this long
#  form run the same code.
#
#  usage: tools/chaos/leader-kills.sh [KILLS [BUILD_DIR]]
#         KILLS defaults to 500, BUILD_DIR to ./build (configured already;
#         `make build` does that). The full output goes to
#         $BUILD_DIR/chaos-leader-kills.log.
#
#  Prints one `failover:` line per kill (time from the kill until etcd names
#  a new leader, and until the producer's next acknowledgement), the
#  p50/p99 of both, and tern-check's summary. Exit 0 when every kill failed
#  over and the checker found nothing.
#
#  PROFILE (environment) picks the failure detection being timed:
#    test     (the default) the test's flags: --lease 1s --ack-timeout 2s
#             --isr-lag 1s over an etcd with its default 1000 ms election
#             timeout, which raises that lease to its minimum TTL, 2 s
#    default  ternd's defaults: --lease 2s --ack-timeout 5s --isr-lag 4s,
#             etcd's defaults
#    fast     docs/cluster.md "The fast profile": --lease 1s --isr-lag 2s
#             (--ack-timeout 5s, the default), etcd --election-timeout 500
#             --heartbeat-interval 100
#  LEASE, ACK_TIMEOUT, ISR_LAG (environment) override the profile's. The
#  log of a profile other than test is $BUILD_DIR/chaos-leader-kills-PROFILE.log.
set -eu

kills=${1:-500}
build=${2:-build}
case $kills in
'' | *[!0-9]*)
    echo "leader-kills.sh: KILLS must be a number, not '$kills'" >&2
    exit 2
    ;;
esac
if [ ! -f "$build/CMakeCache.txt" ]; then
    echo "leader-kills.sh: $build is not a configured build dir (run make build)" >&2
    exit 2
fi
command -v etcd >/dev/null || {
    echo "leader-kills.sh: etcd is not installed (scripts/bootstrap installs it)" >&2
    exit 2
}

profile=${PROFILE:-test}
log="$build/chaos-leader-kills.log"
case $profile in
test) lease='' ack='' lag='' election='' heartbeat='' ;;
default) lease=2s ack=5s lag=4s election='' heartbeat='' ;;
fast) lease=1s ack=5s lag=2s election=500 heartbeat=100 ;;
*)
    echo "leader-kills.sh: PROFILE must be test, default or fast, not '$profile'" >&2
    exit 2
    ;;
esac
[ "$profile" = test ] || log="$build/chaos-leader-kills-$profile.log"
lease=${LEASE:-$lease} ack=${ACK_TIMEOUT:-$ack} lag=${ISR_LAG:-$lag}

cmake --build "$build" -j2 --target it_cluster_fault ternd ternctl tern-check >/dev/null
echo "leader-kills.sh: $kills leader kills, profile $profile (lease ${lease:-1s} ack-timeout ${ack:-2s} isr-lag ${lag:-1s} etcd election ${election:-1000} ms), log in $log"
status=0
TERN_CHAOS_KILLS=$kills TERN_CHAOS_LEASE=$lease TERN_CHAOS_ACK_TIMEOUT=$ack TERN_CHAOS_ISR_LAG=$lag \
    TERN_ETCD_ELECTION_MS=$election TERN_ETCD_HEARTBEAT_MS=$heartbeat \
    "$build/bin/it_cluster_fault" --filter 'cluster_fault/leader_kills' \
    --jobs 1 >"$log" 2>&1 || status=$?

grep -E '^failover:' "$log" | tail -n 5 || true
grep -E '^failover-summary:|^tern-check:|Synthesis' "$log" || true
if [ "$status" -ne 0 ]; then
    echo "leader-kills.sh: FAILED (exit $status); the end of $log:" >&2
    grep -v "^failover:" "$log" | tail -n 40 >&2
fi
exit "$status"

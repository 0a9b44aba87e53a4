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
#         $BUILD_DIR/chaos-leader-kills.log (started anew past LOG_MAX_MB,
#         default 200, the previous part kept as .log.1), every `failover:`
#         line also to .log.failover. It refuses to start with less than
#         MIN_FREE_MB (default 2048) free in $TMPDIR (/tmp). Interrupted
#         (INT, TERM, HUP), it stops the test and every process the test
#         started by their process group (the test's PID).
#
#  Prints one `failover:` line per kill (time from the kill until etcd names
#  a new leader, and until the producer's next acknowledgement), the
#  p50/p99 of both, and tern-check's summary. Exit 0 when every kill failed
#  over and the checker found nothing.
#
#  PROFILE (environment) picks the failure detection being timed:
#    test     (the default) the test's flags: --lease 1s --ack-timeout 2s
#             --isr-lag 1s over an etcd with its default 1000 ms election
#             timeout (etcd grants the 2 s ternd asks for, lease + 1 s; before
#             the lease polls of docs/cluster.md "Failure detection" such a
#             lease was in effect 2 s)
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

# Long runs: the test's data dirs grow with every message (three replicas of
# two producers' logs, /tmp/tern-it-*), so look at the free space first.
free_mb=$(df -Pm "${TMPDIR:-/tmp}" | awk 'NR == 2 {print $4}')
if [ "${free_mb:-0}" -lt "${MIN_FREE_MB:-2048}" ]; then
    echo "leader-kills.sh: only ${free_mb} MB free in ${TMPDIR:-/tmp} (MIN_FREE_MB ${MIN_FREE_MB:-2048})" >&2
    exit 2
fi

# The test runs in a process group of its own (setsid, group id = its PID)
# so that an interrupted run stops it, its worker and every etcd and ternd
# it started, by that id. Its output goes through a rotator: the log starts
# anew past LOG_MAX_MB (the previous part kept as $log.1), while every
# `failover:` line also goes to $log.failover, never rotated.
pidfile="$log.pid" statusfile="$log.status" fifo="$log.fifo"
rm -f "$pidfile" "$statusfile" "$fifo" "$log.1" "$log.failover"
mkfifo "$fifo"
pid=''
# The test's worker (Criterion's boxfort-worker, a child of the test) makes a
# process group of its own, with the etcd and ternd it starts: those groups are
# stopped by their ids too (the children's PIDs, found before the test dies).
stop() {
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        echo "leader-kills.sh: stopping the test (process group $pid and its workers')" >&2
        groups="$pid $(ps -o pid= --ppid "$pid" 2>/dev/null | tr '\n' ' ')"
        for g in $groups; do kill -TERM -- "-$g" 2>/dev/null || kill -TERM "$g" 2>/dev/null || true; done
        sleep 2
        for g in $groups; do kill -KILL -- "-$g" 2>/dev/null || true; done
    fi
    rm -f "$fifo" "$pidfile"
}
trap stop EXIT
trap 'exit 130' INT TERM HUP
# mawk reads a pipe in blocks unless told -W interactive: lines would come late.
interactive=''
awk -W version 2>/dev/null | grep -q mawk && interactive='-W interactive'
# shellcheck disable=SC2086 # $interactive is zero or two words
awk $interactive -v out="$log" -v fo="$log.failover" -v max=$((${LOG_MAX_MB:-200} * 1048576)) '
    { print > out; fflush(out); n += length($0) + 1
      if (/^failover/) { print > fo; fflush(fo) }
      if (n > max) { close(out); system("mv \"" out "\" \"" out ".1\""); n = 0 } }' <"$fifo" &
rotator=$!
(
    TERN_CHAOS_KILLS=$kills TERN_CHAOS_LEASE=$lease TERN_CHAOS_ACK_TIMEOUT=$ack TERN_CHAOS_ISR_LAG=$lag \
        TERN_ETCD_ELECTION_MS=$election TERN_ETCD_HEARTBEAT_MS=$heartbeat \
        sh -c 'echo $$ >"$1"; shift; exec setsid "$@"' sh "$pidfile" \
        "$build/bin/it_cluster_fault" --filter 'cluster_fault/leader_kills' --jobs 1 >"$fifo" 2>&1
    echo $? >"$statusfile"
) &
runner=$!
while [ ! -s "$pidfile" ] && kill -0 "$runner" 2>/dev/null; do sleep 0.1; done
pid=$(cat "$pidfile" 2>/dev/null || true)
wait "$runner" || true
wait "$rotator" || true
pid=''
status=$(cat "$statusfile" 2>/dev/null || echo 1)
rm -f "$statusfile"

tail -n 5 "$log.failover" 2>/dev/null || true
grep -E '^failover-summary:|^tern-check:|Synthesis' "$log" || true
if [ "$status" -ne 0 ]; then
    echo "leader-kills.sh: FAILED (exit $status); the end of $log:" >&2
    grep -v "^failover:" "$log" | tail -n 40 >&2
fi
exit "$status"

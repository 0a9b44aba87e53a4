#!/usr/bin/env bash
# cluster.sh - a three-node cluster (R=3, min_insync=2) against a single node with the
# same storage settings, same host, same run, interleaved rounds; prints the medians and
# the cluster/single ratio per workload (issue 14, docs/performance.md "Cluster").
#
# Usage:  tools/bench/cluster.sh [WORKLOAD ...]          (from anywhere; default: all)
# Workloads (each run against the single node AND the cluster, order alternating by round):
#   pub   durable async publish: ternctl bench pub, window 256 (its default), 1 KB, dedup
#         on, spread over TOPICS topics (so several partitions, led by several nodes)
#   sub   consume + ack: ternctl bench sub over the same topics (fills, then times the drain)
#   sync  one publish in flight (window 1): round trip p50 / p99
#   cpu   CPU per message of each process (user + kernel, from /proc/PID/task/*/stat as
#         tools/bench/cpu.sh reads it) around one async publish to ONE topic: on the
#         cluster that topic's leader and its two followers, against the single node
#
# The client is given every node's endpoint (-s A,B,C): libtern follows the leaders and
# publishes each topic to its partition's leader.
#
# Knobs: REPS [3]  N [100000] (pub, sub msgs)  TOPICS [6]  SYNC_N [1000]  CPU_N [50000]
#   PARTITIONS [64]  DURABILITY [fsync]  LEASE [2s]  OUT [/tmp/tern-cluster-bench/<stamp>]
#   PUB_ARGS: more ternctl bench options for pub and cpu (e.g. "--window 1024")
#   BUILD [<repo>/build-bench] (Release)  NOBUILD=1 skips the cmake build.
#   QUICK=1 tiny counts (smoke test).
# etcd (one member) and four ternd processes listen on 127.0.0.1 on free ports, data under
# /tmp (removed at exit); every process started here is stopped by PID (trap on EXIT).
# Before each timed run it waits until every ternd is idle (wait_idle: the reaper of the
# topics the previous run deleted). Instructions per message: tools/bench/callgrind.sh.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BUILD=${BUILD:-$ROOT/build-bench}
REPS=${REPS:-3}
if [ "${QUICK:-0}" = 1 ]; then
    N=3000; SYNC_N=100; CPU_N=3000; REPS=1
else
    N=${N:-100000}; SYNC_N=${SYNC_N:-1000}; CPU_N=${CPU_N:-50000}
fi
TOPICS=${TOPICS:-6}
read -ra PUB_OPTS <<<"${PUB_ARGS:-}"
PARTITIONS=${PARTITIONS:-64}
DURABILITY=${DURABILITY:-fsync}
LEASE=${LEASE:-2s}
OUT=${OUT:-/tmp/tern-cluster-bench/$(date +%Y%m%d-%H%M%S)}
WORK=$(mktemp -d /tmp/tern-cluster-bench-work.XXXXXX)
WORKLOADS=("$@")
[ ${#WORKLOADS[@]} -eq 0 ] && WORKLOADS=(pub sub sync cpu)
for w in "${WORKLOADS[@]}"; do
    case $w in pub | sub | sync | cpu) ;; *) echo "cluster.sh: unknown workload '$w'" >&2; exit 2 ;; esac
done
mkdir -p "$OUT"
RAW=$OUT/raw.txt
: >"$RAW"

ETCD_PID=""
SINGLE_PID=""
NODE_PIDS=()
# The nodes before etcd: a stopping node hands over and revokes its lease there. The
# logs are kept in OUT (a node that did not stop cleanly says why there).
cleanup() {
    stop_pids "${NODE_PIDS[@]}" "$SINGLE_PID"
    stop_pids "$ETCD_PID"
    local d
    for d in "$WORK"/*/; do
        [ -f "$d/ternd.log" ] && cp "$d/ternd.log" "$OUT/$(basename "$d").log"
    done
    cp "$WORK/etcd.log" "$OUT/" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ "${NOBUILD:-0}" != 1 ]; then
    cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >"$OUT/build.log" 2>&1
    cmake --build "$BUILD" --target ternd ternctl -j2 >>"$OUT/build.log" 2>&1
fi
CTL=$BUILD/bin/ternctl

# shellcheck source=lib.sh
. "$HERE/lib.sh"
STORAGE=(--durability "$DURABILITY" --partitions "$PARTITIONS")
launch_etcd "$WORK"
ENDPOINTS=""
NODE_PORTS=()
for i in 0 1 2; do
    launch_node "$WORK/n$i" "$i" "$ETCD_URL" --replicas 3 --min-insync 2 --lease "$LEASE" \
        "${STORAGE[@]}"
    NODE_PIDS+=("$TERND_PID")
    NODE_PORTS+=("$PORT")
    ENDPOINTS=$ENDPOINTS${ENDPOINTS:+,}tcp://127.0.0.1:$PORT
done
launch_ternd "$WORK/single" "${STORAGE[@]}"
SINGLE_PID=$TERND_PID
SINGLE=tcp://127.0.0.1:$PORT

# Every partition led before anything is timed.
for _ in $(seq 300); do
    led=$("$CTL" -s "$ENDPOINTS" --json cluster partitions 2>/dev/null |
        grep -o '"leader": *[0-9]' | wc -l) || true
    [ "$led" -ge "$PARTITIONS" ] && break
    sleep 0.1
done
[ "$led" -ge "$PARTITIONS" ] || { echo "cluster.sh: $led of $PARTITIONS partitions led" >&2; exit 1; }

echo "cluster.sh: etcd $ETCD_URL, nodes $ENDPOINTS (pids ${NODE_PIDS[*]}), single $SINGLE" \
    "(pid $SINGLE_PID); durability $DURABILITY, R=3 min_insync=2, lease $LEASE;" \
    "REPS=$REPS N=$N TOPICS=$TOPICS SYNC_N=$SYNC_N CPU_N=$CPU_N PUB_ARGS='${PUB_ARGS:-}';" \
    "raw in $RAW"

# field JSON KEY: a number from ternctl bench --json.
field() { grep -o "\"$2\": *[0-9.]*" <<<"$1" | head -1 | sed 's/.*: *//'; }

# bench SIDE SERVER WORKLOAD ROUND: one ternctl bench run; appends "workload side round
# key value" lines to RAW.
bench() {
    local side=$1 server=$2 w=$3 r=$4 out prefix
    prefix=b$RANDOM.$r
    case $w in
    pub) out=$("$CTL" -s "$server" bench pub --msgs "$N" --topics "$TOPICS" --prefix "$prefix" \
        --quiet --json "${PUB_OPTS[@]}") ;;
    sub) out=$("$CTL" -s "$server" bench sub --msgs "$N" --topics "$TOPICS" --prefix "$prefix" \
        --quiet --json) ;;
    sync) out=$("$CTL" -s "$server" bench sync --msgs "$SYNC_N" --prefix "$prefix" --quiet --json) ;;
    esac
    {
        echo "$w $side $r msgs_per_s $(field "$out" msgs_per_s)"
        echo "$w $side $r p50_us $(field "$out" p50_us)"
        echo "$w $side $r p99_us $(field "$out" p99_us)"
    } >>"$RAW"
}

# txn_id DIR: the last LMDB transaction id of the store in DIR (mdb_stat, lmdb-utils).
txn_id() {
    mdb_stat -e "$1" 2>/dev/null | awk '/Last transaction ID/ { print $4; exit }' | grep . || echo 0
}

# cpu_run SIDE ROUND: one async publish of CPU_N msgs to one topic; appends "cpu SIDE
# ROUND ROLE us_per_msg" (ROLE: single, leader, follower, client) and per-thread lines
# "thread SIDE ROUND ROLE NAME user_us sys_us" to RAW.
cpu_run() {
    local side=$1 r=$2 server=$SINGLE prefix pids roles dirs i leader
    prefix=cpu$RANDOM.$r
    if [ "$side" = single ]; then
        pids=("$SINGLE_PID"); roles=(single); dirs=("$WORK/single/data")
    else
        server=$ENDPOINTS
        leader=$("$CTL" -s "$ENDPOINTS" --json cluster partitions --topic "$prefix.0" |
            grep -o '"leader": *[0-9]*' | head -1 | sed 's/.*: *//')
        pids=(); roles=(); dirs=()
        for i in 0 1 2; do
            pids+=("${NODE_PIDS[i]}")
            dirs+=("$WORK/n$i/data")
            if [ "$i" = "$leader" ]; then roles+=(leader); else roles+=(follower); fi
        done
    fi
    for i in "${!pids[@]}"; do thread_cpu "${pids[i]}" | sort >"$WORK/before.$i"; done
    for i in "${!pids[@]}"; do txn_id "${dirs[i]}" >"$WORK/txn.$i"; done
    /usr/bin/time -f "%U %S" -o "$WORK/client" "$CTL" -s "$server" bench pub --msgs "$CPU_N" \
        --prefix "$prefix" --quiet "${PUB_OPTS[@]}" >/dev/null
    for i in "${!pids[@]}"; do thread_cpu "${pids[i]}" | sort >"$WORK/after.$i"; done
    # LMDB's last transaction id moves by one per commit of the node's storer
    for i in "${!pids[@]}"; do
        echo "commits $side $r ${roles[i]} $(($(txn_id "${dirs[i]}") - $(cat "$WORK/txn.$i")))" >>"$RAW"
    done
    local hz
    hz=$(getconf CLK_TCK)
    for i in "${!pids[@]}"; do
        join "$WORK/before.$i" "$WORK/after.$i" | awk -v n="$CPU_N" -v hz="$hz" \
            -v pre="thread $side $r ${roles[i]}" '
            { u = ($6 - $3) * 1e6 / hz / n; s = ($7 - $4) * 1e6 / hz / n
              printf "%s %s %.3f %.3f\n", pre, $2, u, s; t += u + s }
            END { split(pre, a, " "); printf "cpu %s %s %s %.3f\n", a[2], a[3], a[4], t }' \
            >>"$RAW"
    done
    awk -v n="$CPU_N" -v side="$side" -v r="$r" \
        '{ printf "cpu %s %s client %.3f\n", side, r, ($1 + $2) * 1e6 / n }' "$WORK/client" >>"$RAW"
}

# wait_idle: until every ternd here is idle (under 3 clock ticks of CPU in 0.5 s, up to
# 20 s). ternctl bench deletes its topics at the end, and each node's storer then
# removes their messages in steps (the reaper, storage/tern_store_reap.c), at about
# the CPU of storing them: without this wait that work of one run landed in the next
# run's figures (CPU per message and throughput both), three times over on the cluster.
wait_idle() {
    local before after p n first=""
    for n in $(seq 40); do
        before=0; after=0
        for p in "${NODE_PIDS[@]}" "$SINGLE_PID"; do before=$((before + $(proc_cpu_ticks "$p"))); done
        first=${first:-$before}
        sleep 0.5
        for p in "${NODE_PIDS[@]}" "$SINGLE_PID"; do after=$((after + $(proc_cpu_ticks "$p"))); done
        if [ $((after - before)) -lt 3 ]; then
            [ "$n" -gt 1 ] && echo "cluster.sh: waited $(((n - 1) * 5 / 10)).$(((n - 1) * 5 % 10)) s" \
                "for the nodes to go idle ($(((after - first) * 1000 / $(getconf CLK_TCK))) ms of their CPU)" >&2
            return 0
        fi
    done
    echo "cluster.sh: the nodes did not go idle within 20 s; measuring anyway" >&2
}

for r in $(seq "$REPS"); do
    sides=(single cluster)
    [ $((r % 2)) = 0 ] && sides=(cluster single)
    for w in "${WORKLOADS[@]}"; do
        for side in "${sides[@]}"; do
            wait_idle
            if [ "$w" = cpu ]; then
                cpu_run "$side" "$r"
            elif [ "$side" = single ]; then
                bench single "$SINGLE" "$w" "$r"
            else
                bench cluster "$ENDPOINTS" "$w" "$r"
            fi
        done
        echo "cluster.sh: round $r $w done" >&2
    done
done

# median of the values on stdin
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR) print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }
# pick W SIDE KEY: the values of that key, one per round
pick() { awk -v w="$1" -v s="$2" -v k="$3" '$1 == w && $2 == s && $4 == k { print $5 }' "$RAW"; }
# per_round W KEY: cluster/single per round, as "r1 r2 ..."
per_round() {
    awk -v w="$1" -v k="$2" '$1 == w && $4 == k { v[$2 " " $3] = $5; if ($3 > n) n = $3 }
        END { for (r = 1; r <= n; r++) if (v["single " r] > 0)
                  printf "%s%.2f", (r > 1 ? " / " : ""), v["cluster " r] / v["single " r] }' "$RAW"
}

{
    echo "| workload | single | cluster (R=3, min_insync=2) | cluster/single (per round) |"
    echo "|---|---|---|---|"
    for w in "${WORKLOADS[@]}"; do
        case $w in
        pub | sub) keys=(msgs_per_s) ;;
        sync) keys=(p50_us p99_us) ;;
        cpu) continue ;;
        esac
        for k in "${keys[@]}"; do
            s=$(pick "$w" single "$k" | median); c=$(pick "$w" cluster "$k" | median)
            awk -v w="$w" -v k="$k" -v s="$s" -v c="$c" -v pr="$(per_round "$w" "$k")" \
                'BEGIN { printf "| %s %s | %.0f | %.0f | **%.2f** (%s) |\n", w, k, s, c, c / s, pr }'
        done
    done
    if printf '%s\n' "${WORKLOADS[@]}" | grep -qx cpu; then
        echo
        echo "CPU per message, us (user + kernel), async publish of $CPU_N msgs to one topic, medians:"
        for role in single leader follower client; do
            for side in single cluster; do
                v=$(awk -v s="$side" -v ro="$role" '$1 == "cpu" && $2 == s && $4 == ro { print $5 }' \
                    "$RAW" | median)
                [ -n "$v" ] && echo "  $side $role: $v"
            done
        done
        s=$(awk '$1 == "cpu" && $2 == "single" && $4 == "single" { print $5 }' "$RAW" | median)
        # per round: leader + both followers, the cluster's whole cost of a message
        c=$(awk '$1 == "cpu" && $2 == "cluster" && $4 != "client" { t[$3] += $5 }
            END { for (r in t) print t[r] }' "$RAW" | median)
        awk -v s="$s" -v c="$c" 'BEGIN { printf "  cluster, all three nodes: %.2f us = %.2fx the single node; it adds %.2f us per message\n", c, c / s, c - s }'
        echo "  messages per LMDB commit (medians over rounds; each node's storer):"
        for role in single leader follower; do
            v=$(awk -v ro="$role" -v n="$CPU_N" '$1 == "commits" && $4 == ro && $5 > 0 { print n / $5 }' \
                "$RAW" | median)
            [ -n "$v" ] && echo "    $role: $v"
        done
        echo "  per thread (median over rounds, user / kernel us), leader and followers:"
        awk '$1 == "thread" { k = $4 " " $5; u[k] = u[k] " " $6; s[k] = s[k] " " $7 }
            END { for (k in u) print k "|" u[k] "|" s[k] }' "$RAW" | sort | while IFS='|' read -r k us ss; do
            mu=$(tr ' ' '\n' <<<"$us" | grep . | median); ms=$(tr ' ' '\n' <<<"$ss" | grep . | median)
            awk -v k="$k" -v u="$mu" -v s="$ms" 'BEGIN { if (u + s >= 0.05) printf "    %-28s %6.2f / %6.2f\n", k, u, s }'
        done
    fi
} | tee "$OUT/summary.md"

#!/usr/bin/env bash
# vs-nats.sh - tern vs NATS JetStream 2.9 (and the libzmq / LMDB ceilings), same machine,
# same run, interleaved rounds; prints the medians and the tern/NATS ratio per workload.
#
# Usage:  tools/bench/vs-nats.sh [WORKLOAD ...]         (from anywhere; default: all)
# Workloads (each one is run for tern AND its NATS / ceiling counterpart):
#   pub      durable async publish, window 256, dedup on   (tern fsync vs JS file + Msg-Id)
#   pubnone  async publish with ternd --durability none     (vs raw libzmq DEALER->ROUTER)
#   sub      consume + ack of a stored backlog              (vs JS pull consume + ack)
#   sync     one publish in flight, fsync and none          (vs JS js_Publish)
#   fanout   1 publisher, 100 groups x 1 consumer           (tern only: delivered msgs/s);
#            publish + consume at once, max and at a fixed 20k msgs/s (end-to-end latency)
#   size     100 B and 64 KB async publish                  (tern fsync vs JS file, with and
#            without Msg-Id)
#   prod     4 and 16 producers                             (tern fsync vs 4 / 16 js_bench
#            processes publishing into one JetStream stream at once)
#   ceil     zmq tcp-thr, zmq tcp-lat, lmdb sync b4096, b128 and b1
#
# Durability of each side (say it whenever quoting a ratio):
#   JetStream 2.9 file store acknowledges after one write(2) and BEFORE any fsync (the
#   server fsyncs from a 2-minute timer); tern's default (--durability fsync) acknowledges
#   after an fsync'd LMDB commit; tern --durability none acknowledges after an unsynced
#   commit (the same class as JetStream 2.9).
#
# Knobs: REPS [3]  N [200000] (async/consume msgs)  SYNC_N [3000] (fsync sync publish)
#   SYNC_NONE_N [20000]  FAN_N [20000]  BIG_N [20000] (64 KB msgs)  OUT [/tmp/tern-vs-nats/<stamp>]
#   BIN [/tmp/tern-bench/build] (shared bench binaries)  BUILD [<repo>/build-bench]
#   NOBUILD=1 skips the cmake build.  QUICK=1 tiny counts (smoke test).
# Everything listens on 127.0.0.1 on free ports; data lives under /tmp and is removed;
# every process started here is stopped by PID (trap on EXIT).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BUILD=${BUILD:-$ROOT/build-bench}
BIN=${BIN:-/tmp/tern-bench/build}
SHARED=${SHARED:-$ROOT/../shared/bench}
REPS=${REPS:-3}
QUICK=${QUICK:-0}
if [ "$QUICK" = 1 ]; then
    N=5000; SYNC_N=200; SYNC_NONE_N=500; FAN_N=500; BIG_N=200; ZMQ_N=20000; ZMQ_LAT_N=2000; LSECS=0.5
else
    N=${N:-200000}; SYNC_N=${SYNC_N:-3000}; SYNC_NONE_N=${SYNC_NONE_N:-20000}; FAN_N=${FAN_N:-20000}
    BIG_N=${BIG_N:-20000}; ZMQ_N=1000000; ZMQ_LAT_N=50000; LSECS=3
fi
OUT=${OUT:-/tmp/tern-vs-nats/$(date +%Y%m%d-%H%M%S)}
WORK=$(mktemp -d /tmp/tern-vs-nats-work.XXXXXX)
WORKLOADS=("$@")
[ ${#WORKLOADS[@]} -eq 0 ] && WORKLOADS=(pub pubnone sub sync fanout size prod ceil)
mkdir -p "$OUT"
RAW=$OUT/raw.txt
LOG=$OUT/log.txt
: >>"$RAW"

TERND_PID=""
NATS_PID=""
cleanup() {
    for p in "$TERND_PID" "$NATS_PID"; do
        if [ -n "$p" ] && kill -0 "$p" 2>/dev/null; then
            kill "$p" 2>/dev/null || true
            wait "$p" 2>/dev/null || true
        fi
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { echo "[$(date +%H:%M:%S)] $*" | tee -a "$LOG" >&2; }
want() { local w; for w in "${WORKLOADS[@]}"; do [ "$w" = "$1" ] && return 0; done; return 1; }

# shellcheck source=lib.sh
. "$HERE/lib.sh" # port_free, free_port, launch_ternd

# run_bench REP CMD... - runs one benchmark, tags its RESULT lines with rep=.
run_bench() {
    local rep=$1; shift
    echo "# $*" >>"$LOG"
    "$@" 2>>"$LOG" | sed -n "s/^RESULT .*/& rep=$rep/p" | tee -a "$RAW" || log "FAILED: $*"
}

# ---------------------------------------------------------------- servers
start_ternd() { # start_ternd DURABILITY: fresh data dir, free port; sets TS (endpoint)
    rm -rf "$WORK/tern"
    launch_ternd "$WORK/tern" --durability "$1"
    TS=tcp://127.0.0.1:$PORT
}
stop_ternd() { # stop_ternd TAG: records peak RSS, stops by PID, removes the data
    local hwm anon
    hwm=$(awk '/VmHWM/ {print $2}' "/proc/$TERND_PID/status" 2>/dev/null || echo 0)
    anon=$(awk '/RssAnon/ {print $2}' "/proc/$TERND_PID/status" 2>/dev/null || echo 0)
    echo "CHECK ternd_$1 vmhwm_kb=$hwm rss_anon_at_end_kb=$anon rep=$REP" >>"$RAW"
    kill "$TERND_PID"; wait "$TERND_PID" 2>/dev/null || true; TERND_PID=""
    rm -rf "$WORK/tern"
}
start_nats() { # fresh JetStream file store, free port; sets NU
    local port; port=$(free_port)
    rm -rf "$WORK/nats"; mkdir -p "$WORK/nats"
    nats-server -js -sd "$WORK/nats/store" -a 127.0.0.1 -p "$port" >"$WORK/nats/server.log" 2>&1 &
    NATS_PID=$!
    NU=nats://127.0.0.1:$port
    for _ in $(seq 100); do port_free "$port" || return 0; sleep 0.05; done
    log "nats-server did not start"; cat "$WORK/nats/server.log" >&2; exit 1
}
stop_nats() {
    kill "$NATS_PID"; wait "$NATS_PID" 2>/dev/null || true; NATS_PID=""
    rm -rf "$WORK/nats"
}

TB() { "$BUILD/bin/ternctl" -s "$TS" bench "$@" --quiet; }
JS() { "$BIN/js_bench" -u "$NU" "$@"; }

# js_producers REP P: P js_bench publishers at once (one process each: js_bench has one
# producer) into one fresh stream, N/P messages each, window 256, no Msg-Id; one RESULT
# line js_pubasync_file_pP = all their messages / the slowest one's time (counting the
# overlap as perfect, which flatters JetStream).
js_producers() {
    local rep=$1 p=$2 i out pids=()
    JS -r -m pubasync -n 1 -w 1 -N js_create >/dev/null 2>>"$LOG"
    out=$WORK/js_p$p.txt; : >"$out"
    for i in $(seq "$p"); do
        JS -m pubasync -n $(( N / p )) -w 256 -N js_part >>"$out" 2>>"$LOG" &
        pids+=($!)
    done
    wait "${pids[@]}" || log "FAILED: js_producers $p"
    awk -v p="$p" -v rep="$rep" '/^RESULT/ {
            for (i = 1; i <= NF; i++) {
                split($i, kv, "=")
                if (kv[1] == "msgs") m += kv[2]
                if (kv[1] == "secs" && kv[2] + 0 > s) s = kv[2] + 0
            }
        }
        END { if (s > 0) printf "RESULT name=js_pubasync_file_p%d msgs=%d secs=%.4f msgs_per_s=%.0f p50_us=NA p99_us=NA lat=publish_to_ack size=1024 window=256 producers=%d dedup=0 storage=file rep=%d\n", p, m, s, m / s, p, rep }' \
        "$out" | tee -a "$RAW"
    rm -f "$out"
}

# ---------------------------------------------------------------- one round
round() {
    local rep=$1
    REP=$rep
    log "round $rep/$REPS"
    # --- tern, default durability (fsync before ack)
    if want pub || want sub || want sync || want fanout || want size || want prod; then
        start_ternd fsync
        sync
        want pub && run_bench "$rep" TB pub --msgs "$N" --window 256 --name tern_pub_fsync_dedup
        want pub && run_bench "$rep" TB pub --msgs "$N" --window 256 --no-dedup \
            --name tern_pub_fsync_nodedup
        want sub && run_bench "$rep" TB sub --msgs "$N" --credit 1000 --name tern_consume_fsync
        want sync && run_bench "$rep" TB sync --msgs "$SYNC_N" --name tern_pubsync_fsync
        want fanout && run_bench "$rep" TB pubsub --msgs "$FAN_N" --groups 100 \
            --name tern_fanout_g100
        want fanout && run_bench "$rep" TB pubsub --msgs "$N" --name tern_pubsub_g1
        want fanout && run_bench "$rep" TB pubsub --msgs $(( N / 4 )) --rate 20000 \
            --name tern_pubsub_rate20k
        if want size; then
            run_bench "$rep" TB pub --msgs "$N" --size 100 --name tern_pub_fsync_100B
            run_bench "$rep" TB pub --msgs "$BIG_N" --size 65536 --name tern_pub_fsync_64KB
        fi
        if want prod; then
            run_bench "$rep" TB pub --msgs "$N" --producers 4 --name tern_pub_fsync_p4
            run_bench "$rep" TB pub --msgs "$N" --producers 16 --name tern_pub_fsync_p16
        fi
        stop_ternd fsync
    fi
    # --- NATS JetStream 2.9 file store (ack before fsync)
    if want pub || want sub || want sync || want size || want pubnone || want prod; then
        start_nats
        sync
        want pub && run_bench "$rep" JS -r -m pubasync -n "$N" -w 256 -d -N js_pubasync_file_dedup
        if want pub || want pubnone || want sub; then   # (also the backlog js_consume reads)
            run_bench "$rep" JS -r -m pubasync -n "$N" -w 256 -N js_pubasync_file
        fi
        want sub && run_bench "$rep" JS -m consume -n "$N" -b 256 -N js_consume_file
        want sync && run_bench "$rep" JS -r -m pubsync -n "$SYNC_NONE_N" -N js_pubsync_file
        want sync && run_bench "$rep" JS -r -m pubsync -n "$SYNC_NONE_N" -d -N js_pubsync_file_dedup
        if want size; then
            run_bench "$rep" JS -r -m pubasync -n "$N" -s 100 -w 256 -N js_pubasync_file_100B
            run_bench "$rep" JS -r -m pubasync -n "$BIG_N" -s 65536 -w 256 -N js_pubasync_file_64KB
            # with Nats-Msg-Id, like tern's runs (dedup on)
            run_bench "$rep" JS -r -m pubasync -n "$N" -s 100 -w 256 -d -N js_pubasync_file_dedup_100B
            run_bench "$rep" JS -r -m pubasync -n "$BIG_N" -s 65536 -w 256 -d \
                -N js_pubasync_file_dedup_64KB
        fi
        if want prod; then
            js_producers "$rep" 4
            js_producers "$rep" 16
        fi
        stop_nats
    fi
    # --- tern --durability none
    if want pubnone || want sync; then
        start_ternd none
        want pubnone && run_bench "$rep" TB pub --msgs "$N" --window 256 --durability none \
            --name tern_pub_none_dedup
        want pubnone && run_bench "$rep" TB pub --msgs "$N" --window 1024 --durability none \
            --name tern_pub_none_w1024
        want sync && run_bench "$rep" TB sync --msgs "$SYNC_NONE_N" --durability none \
            --name tern_pubsync_none
        want pubnone && run_bench "$rep" TB sub --msgs "$N" --durability none \
            --name tern_consume_none
        stop_ternd none
    fi
    # --- ceilings
    if want ceil; then
        local zp; zp=$(free_port)
        run_bench "$rep" "$BIN/zmq_bench" -m tcp-thr -s 1024 -n "$ZMQ_N" -p "$zp"
        zp=$(free_port)
        run_bench "$rep" "$BIN/zmq_bench" -m tcp-lat -s 1024 -n "$ZMQ_LAT_N" -p "$zp"
        mkdir -p "$WORK/lmdb"
        sync
        run_bench "$rep" "$BIN/lmdb_bench" -d "$WORK/lmdb/db" -m sync -b 4096 -t "$LSECS" \
            -N lmdb_sync_b4096
        rm -rf "$WORK/lmdb/db"; sync
        # the batch one producer's window of 256 forms: half the window per commit
        run_bench "$rep" "$BIN/lmdb_bench" -d "$WORK/lmdb/db" -m sync -b 128 -t "$LSECS" \
            -N lmdb_sync_b128
        rm -rf "$WORK/lmdb/db"; sync
        run_bench "$rep" "$BIN/lmdb_bench" -d "$WORK/lmdb/db" -m sync -b 1 -t "$LSECS" \
            -N lmdb_sync_b1
        rm -rf "$WORK/lmdb"
    fi
}

# ---------------------------------------------------------------- main
if [ "${NOBUILD:-0}" != 1 ]; then
    log "building tern (Release) in $BUILD"
    cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >>"$LOG" 2>&1
    cmake --build "$BUILD" --target ternd ternctl -j2 >>"$LOG" 2>&1
fi
if [ ! -x "$BIN/js_bench" ]; then
    log "building the shared bench programs into $BIN"
    make -s -C "$SHARED" B="$BIN" >>"$LOG" 2>&1
fi
command -v nats-server >/dev/null || { echo "nats-server missing (scripts/bootstrap bench)" >&2; exit 1; }
{
    echo "date: $(date -Is)"
    echo "host: $(uname -srm), $(nproc) cpus, $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
    echo "cpu: $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)"
    echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "nats-server: $(nats-server --version 2>&1)"
    echo "tern: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null) (+ working tree), $BUILD"
    echo "fs /tmp: $(findmnt -n -o FSTYPE,SOURCE,OPTIONS -T /tmp)"
    echo "reps: $REPS quick: $QUICK workloads: ${WORKLOADS[*]} N=$N SYNC_N=$SYNC_N FAN_N=$FAN_N"
} >"$OUT/env.txt"
cat "$OUT/env.txt" >&2

for rep in $(seq "$REPS"); do round "$rep"; done

"$HERE/ratios.sh" "$RAW" | tee "$OUT/ratios.md"
if [ -x "$SHARED/summarize.sh" ]; then
    "$SHARED/summarize.sh" "$RAW" >"$OUT/summary.md" || true
fi
log "raw: $RAW  ratios: $OUT/ratios.md  summary: $OUT/summary.md"

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
#   lat      publish -> delivery through a durable group with acks at fixed offered rates
#            (RATES): tern fsync and none (`ternctl bench pubsub --rate R`) vs JetStream
#            and core NATS (`js_bench -m pubsub [-C] -F -R R`, send-asap), p50/p99/p999
#            (also runs the LMDB b1 commit the fsync target is stated against)
#   fanout   1 publisher, 100 groups x 1 consumer           (vs js_fanout: JetStream, 100
#            durable consumers, one subscriber each: delivered msgs/s);
#            publish + consume at once, max and at a fixed 20k msgs/s (end-to-end latency)
#   size     100 B and 64 KB async publish                  (tern fsync vs JS file, with and
#            without Msg-Id; 64 KB also vs LMDB synced commits of 64 KB records, MB/s, at
#            the records per commit tern formed in the same round)
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
# Memory: while each workload runs, the server's RssAnon and VmRSS are sampled from
#   /proc/PID/status every 100 ms (with its established connections), VmHWM is reset before
#   it (clear_refs) and read after it, and the sizes are read again SETTLE seconds after the
#   load: one MEM line per workload and server in raw.txt, and a table in ratios.md with the
#   issue's bound for ternd (64 MB + 64 KB per connection) beside each peak.
#
# Knobs: REPS [3]  N [200000] (async/consume msgs)  SYNC_N [3000] (fsync sync publish)
#   SYNC_NONE_N [20000]  FAN_N [20000]  BIG_N [20000] (64 KB msgs)  OUT [/tmp/tern-vs-nats/<stamp>]
#   RATES ["1000 5000 20000"] (lat, msgs/s)  LAT_MS [5000] (lat: msgs = rate x LAT_MS / 1000)
#   BIG_BATCH [auto] (64 KB records per LMDB commit; auto = what tern formed, else 128)
#   SETTLE [1] (secs between the end of a workload and the after-load sizes)
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
RATES=${RATES:-1000 5000 20000}
BIG_BATCH=${BIG_BATCH:-auto}
if [ "$QUICK" = 1 ]; then
    N=5000; SYNC_N=200; SYNC_NONE_N=500; FAN_N=500; BIG_N=200; ZMQ_N=20000; ZMQ_LAT_N=2000; LSECS=0.5
    LAT_MS=${LAT_MS:-250}; SETTLE=${SETTLE:-0.3}
else
    N=${N:-200000}; SYNC_N=${SYNC_N:-3000}; SYNC_NONE_N=${SYNC_NONE_N:-20000}; FAN_N=${FAN_N:-20000}
    BIG_N=${BIG_N:-20000}; ZMQ_N=1000000; ZMQ_LAT_N=50000; LSECS=3
    LAT_MS=${LAT_MS:-5000}; SETTLE=${SETTLE:-1}
fi
OUT=${OUT:-/tmp/tern-vs-nats/$(date +%Y%m%d-%H%M%S)}
WORK=$(mktemp -d /tmp/tern-vs-nats-work.XXXXXX)
WORKLOADS=("$@")
[ ${#WORKLOADS[@]} -eq 0 ] && WORKLOADS=(pub pubnone sub sync lat fanout size prod ceil)
mkdir -p "$OUT"
RAW=$OUT/raw.txt
LOG=$OUT/log.txt
: >>"$RAW"

TERND_PID=""
NATS_PID=""
MEM_SAMPLER=""
cleanup() {
    for p in "$MEM_SAMPLER" "$TERND_PID" "$NATS_PID"; do
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
. "$HERE/lib.sh" # port_free, free_port, start_ternd

# bench_name CMD...: the RESULT name the command was given (--name X or -N X).
bench_name() {
    while [ $# -gt 1 ]; do
        case $1 in --name | -N) echo "$2"; return ;; esac
        shift
    done
    echo unnamed
}

# mem_status PID: "RssAnon VmRSS VmHWM" of PID in kB (0 0 0 once it is gone).
mem_status() {
    awk '/^RssAnon/ {a = $2} /^VmRSS/ {r = $2} /^VmHWM/ {h = $2}
        END {printf "%d %d %d\n", a, r, h}' "/proc/$1/status" 2>/dev/null || echo "0 0 0"
}

# mem_start PID PORT: resets PID's VmHWM, then samples "RssAnon VmRSS conns" (conns: the
# established TCP connections on its listening PORT) every 100 ms into $WORK/mem.txt, in
# the background, until mem_stop.
mem_start() {
    local pid=$1 port=$2
    echo 5 >"/proc/$pid/clear_refs" 2>/dev/null || true
    : >"$WORK/mem.txt"
    (
        while kill -0 "$pid" 2>/dev/null; do
            read -r a r _ < <(mem_status "$pid")
            echo "$a $r $(ss -Htn state established "( sport = :$port )" | wc -l)"
            sleep 0.1
        done
    ) >>"$WORK/mem.txt" 2>/dev/null &
    MEM_SAMPLER=$!
}

# mem_stop REP NAME SERVER PID IDLE_KB EXTRA: stops the sampler, waits SETTLE seconds, and
# appends one MEM line: the peaks while NAME ran, VmHWM, the sizes after the load, and for
# ternd the bound 64 MB + 64 KB per connection (at the peak connection count).
mem_stop() {
    local rep=$1 name=$2 server=$3 pid=$4 idle=$5 extra=$6 hwm after_a after_r
    kill "$MEM_SAMPLER" 2>/dev/null || true
    wait "$MEM_SAMPLER" 2>/dev/null || true
    MEM_SAMPLER=""
    # one more sample as the load ends, so a workload shorter than 100 ms has two
    read -r after_a after_r hwm < <(mem_status "$pid")
    echo "$after_a $after_r 0" >>"$WORK/mem.txt"
    sleep "$SETTLE"
    read -r after_a after_r _ < <(mem_status "$pid")
    awk -v name="$name" -v server="$server" -v hwm="$hwm" -v aa="$after_a" -v ar="$after_r" \
        -v idle="$idle" -v rep="$rep" -v extra="$extra" '
        { if (n == 0) a0 = $1; if ($1 > pa) pa = $1; if ($2 > pr) pr = $2; if ($3 > pc) pc = $3; n++ }
        END {
            printf "MEM name=%s server=%s rss_anon_peak_kb=%d vmrss_peak_kb=%d vmhwm_kb=%d", name, server, pa, pr, hwm
            printf " rss_anon_start_kb=%d", a0
            printf " rss_anon_after_kb=%d vmrss_after_kb=%d rss_anon_idle_kb=%d conns_peak=%d samples=%d", aa, ar, idle, pc, n
            if (server ~ /^ternd/) printf " bound_kb=%d", 65536 + 64 * pc
            if (extra != "") printf " %s", extra
            printf " rep=%d\n", rep
        }' "$WORK/mem.txt" | tee -a "$RAW"
}

# tern_commits: LMDB commits ternd made so far (its /metrics), or empty.
tern_commits() {
    curl -s --max-time 2 "http://$TERN_METRICS/metrics" 2>/dev/null |
        awk '$1 == "tern_storage_commits_total" {print $2}'
}

# run_bench REP CMD... - runs one benchmark, tags its RESULT lines with rep=; a TB / JS / JF
# command's server (ternd / nats-server) is sampled while it runs (mem_start / mem_stop).
run_bench() {
    local rep=$1; shift
    local name pid="" port server idle c0="" c1 extra=""
    name=$(bench_name "$@")
    case $1 in
        TB) pid=$TERND_PID; port=$PORT; server=$TERND_TAG; idle=$TERND_IDLE; c0=$(tern_commits) ;;
        JS | JF) pid=$NATS_PID; port=$NATS_PORT; server=nats; idle=$NATS_IDLE ;;
    esac
    [ -n "$pid" ] && mem_start "$pid" "$port"
    echo "# $*" >>"$LOG"
    "$@" 2>>"$LOG" | sed -n "s/^RESULT .*/& rep=$rep/p" | tee -a "$RAW" || log "FAILED: $*"
    if [ -n "$pid" ]; then
        if [ -n "$c0" ]; then
            c1=$(tern_commits)
            [ -n "$c1" ] && extra="commits=$((c1 - c0))"
            LAST_COMMITS=$((${c1:-0} - c0))
        fi
        mem_stop "$rep" "$name" "$server" "$pid" "$idle" "$extra"
    fi
}

# ---------------------------------------------------------------- servers
ternd_up() { # ternd_up DURABILITY: fresh data dir, free port, /metrics on PORT+1; sets TS
    rm -rf "$WORK/tern"
    PORT=$(free_port) # (free_port checks PORT+1 too)
    TERN_METRICS=127.0.0.1:$((PORT + 1))
    start_ternd "$WORK/tern" --durability "$1" --metrics "$TERN_METRICS"
    TS=tcp://127.0.0.1:$PORT
    TERND_TAG=ternd_$1
    sleep 0.2
    read -r TERND_IDLE _ < <(mem_status "$TERND_PID")
}
ternd_down() { # ternd_down TAG: records peak RSS, stops by PID, removes the data
    local hwm anon
    hwm=$(awk '/VmHWM/ {print $2}' "/proc/$TERND_PID/status" 2>/dev/null || echo 0)
    anon=$(awk '/RssAnon/ {print $2}' "/proc/$TERND_PID/status" 2>/dev/null || echo 0)
    echo "CHECK ternd_$1 vmhwm_kb=$hwm rss_anon_at_end_kb=$anon rss_anon_idle_kb=$TERND_IDLE rep=$REP" >>"$RAW"
    kill "$TERND_PID"; wait "$TERND_PID" 2>/dev/null || true; TERND_PID=""
    rm -rf "$WORK/tern"
}
start_nats() { # fresh JetStream file store, free port; sets NU, NATS_PORT, NATS_IDLE
    NATS_PORT=$(free_port)
    rm -rf "$WORK/nats"; mkdir -p "$WORK/nats"
    nats-server -js -sd "$WORK/nats/store" -a 127.0.0.1 -p "$NATS_PORT" >"$WORK/nats/server.log" 2>&1 &
    NATS_PID=$!
    NU=nats://127.0.0.1:$NATS_PORT
    for _ in $(seq 100); do
        if ! port_free "$NATS_PORT"; then
            read -r NATS_IDLE _ < <(mem_status "$NATS_PID")
            return 0
        fi
        sleep 0.05
    done
    log "nats-server did not start"; cat "$WORK/nats/server.log" >&2; exit 1
}
stop_nats() {
    kill "$NATS_PID"; wait "$NATS_PID" 2>/dev/null || true; NATS_PID=""
    rm -rf "$WORK/nats"
}

TB() { "$BUILD/bin/ternctl" -s "$TS" bench "$@" --quiet; }
JS() { "$BIN/js_bench" -u "$NU" "$@"; }
JF() { "$BUILD/bin/js_fanout" -u "$NU" "$@"; }
lat_n() { echo $(( $1 * LAT_MS / 1000 > 100 ? $1 * LAT_MS / 1000 : 100 )); } # lat_n RATE: msgs

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
    if want pub || want sub || want sync || want lat || want fanout || want size || want prod; then
        ternd_up fsync
        sync
        want pub && run_bench "$rep" TB pub --msgs "$N" --window 256 --name tern_pub_fsync_dedup
        want pub && run_bench "$rep" TB pub --msgs "$N" --window 256 --no-dedup \
            --name tern_pub_fsync_nodedup
        want sub && run_bench "$rep" TB sub --msgs "$N" --credit 1000 --name tern_consume_fsync
        want sync && run_bench "$rep" TB sync --msgs "$SYNC_N" --name tern_pubsync_fsync
        if want lat; then
            for r in $RATES; do
                run_bench "$rep" TB pubsub --rate "$r" --msgs "$(lat_n "$r")" \
                    --name "tern_pubsub_fsync_r$r"
            done
        fi
        want fanout && run_bench "$rep" TB pubsub --msgs "$FAN_N" --groups 100 \
            --name tern_fanout_g100
        want fanout && run_bench "$rep" TB pubsub --msgs "$N" --name tern_pubsub_g1
        want fanout && run_bench "$rep" TB pubsub --msgs $(( N / 4 )) --rate 20000 \
            --name tern_pubsub_rate20k
        if want size; then
            run_bench "$rep" TB pub --msgs "$N" --size 100 --name tern_pub_fsync_100B
            LAST_COMMITS=0
            run_bench "$rep" TB pub --msgs "$BIG_N" --size 65536 --name tern_pub_fsync_64KB
            # the records per commit tern formed: the LMDB 64 KB ceiling commits as many
            TERN_BIG_BATCH=$(( LAST_COMMITS > 0 ? (BIG_N + LAST_COMMITS / 2) / LAST_COMMITS : 0 ))
        fi
        if want prod; then
            run_bench "$rep" TB pub --msgs "$N" --producers 4 --name tern_pub_fsync_p4
            run_bench "$rep" TB pub --msgs "$N" --producers 16 --name tern_pub_fsync_p16
        fi
        ternd_down fsync
    fi
    # --- NATS JetStream 2.9 file store (ack before fsync)
    if want pub || want sub || want sync || want lat || want fanout || want size || want pubnone ||
        want prod; then
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
        if want lat; then
            # send-asap (-F) on both: libtern writes at once too (js_bench's README)
            for r in $RATES; do
                run_bench "$rep" JS -r -m pubsub -F -R "$r" -n "$(lat_n "$r")" \
                    -N "js_pubsub_asap_r$r"
                run_bench "$rep" JS -m pubsub -C -F -R "$r" -n "$(lat_n "$r")" \
                    -N "nats_core_pubsub_asap_r$r"
            done
        fi
        if want fanout; then
            if [ -x "$BUILD/bin/js_fanout" ]; then
                run_bench "$rep" JF -n "$FAN_N" -c 100 -N js_fanout_c100
            else
                log "no $BUILD/bin/js_fanout (libnats-dev missing at cmake time): fan-out peer skipped"
            fi
        fi
        if want prod; then
            js_producers "$rep" 4
            js_producers "$rep" 16
        fi
        stop_nats
    fi
    # --- tern --durability none
    if want pubnone || want sync || want lat; then
        ternd_up none
        want pubnone && run_bench "$rep" TB pub --msgs "$N" --window 256 --durability none \
            --name tern_pub_none_dedup
        want pubnone && run_bench "$rep" TB pub --msgs "$N" --window 1024 --durability none \
            --name tern_pub_none_w1024
        want sync && run_bench "$rep" TB sync --msgs "$SYNC_NONE_N" --durability none \
            --name tern_pubsync_none
        want pubnone && run_bench "$rep" TB sub --msgs "$N" --durability none \
            --name tern_consume_none
        if want lat; then
            for r in $RATES; do
                run_bench "$rep" TB pubsub --rate "$r" --msgs "$(lat_n "$r")" --durability none \
                    --name "tern_pubsub_none_r$r"
            done
        fi
        ternd_down none
    fi
    # --- ceilings
    if want ceil; then
        local zp; zp=$(free_port)
        run_bench "$rep" "$BIN/zmq_bench" -m tcp-thr -s 1024 -n "$ZMQ_N" -p "$zp"
        zp=$(free_port)
        run_bench "$rep" "$BIN/zmq_bench" -m tcp-lat -s 1024 -n "$ZMQ_LAT_N" -p "$zp"
    fi
    mkdir -p "$WORK/lmdb"
    if want ceil; then
        lmdb_run "$rep" -b 4096 -N lmdb_sync_b4096
        # the batch one producer's window of 256 forms: half the window per commit
        lmdb_run "$rep" -b 128 -N lmdb_sync_b128
    fi
    # one synced commit: the fsync sync-publish and publish -> delivery targets add it
    if want ceil || want lat; then
        lmdb_run "$rep" -b 1 -N lmdb_sync_b1
    fi
    if want size; then
        local bb=$BIG_BATCH
        [ "$bb" = auto ] && bb=${TERN_BIG_BATCH:-0}
        [ "$bb" -gt 0 ] 2>/dev/null || bb=128
        lmdb_run "$rep" -s 65536 -b "$bb" -N lmdb_sync_64KB
    fi
    rm -rf "$WORK/lmdb"
}

# lmdb_run REP ARGS...: one lmdb_bench -m sync run of LSECS on a fresh env.
lmdb_run() {
    local rep=$1; shift
    rm -rf "$WORK/lmdb/db"; sync
    run_bench "$rep" "$BIN/lmdb_bench" -d "$WORK/lmdb/db" -m sync -t "$LSECS" "$@"
    rm -rf "$WORK/lmdb/db"
}

# ---------------------------------------------------------------- main
if [ "${NOBUILD:-0}" != 1 ]; then
    log "building tern (Release) in $BUILD"
    cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >>"$LOG" 2>&1
    cmake --build "$BUILD" --target ternd ternctl -j2 >>"$LOG" 2>&1
    # the fan-out peer: a target only where libnats is installed
    cmake --build "$BUILD" --target js_fanout -j2 >>"$LOG" 2>&1 ||
        log "js_fanout not built (libnats-dev missing? scripts/bootstrap bench)"
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
    echo "rates: $RATES LAT_MS=$LAT_MS BIG_N=$BIG_N BIG_BATCH=$BIG_BATCH SETTLE=$SETTLE"
} >"$OUT/env.txt"
cat "$OUT/env.txt" >&2

for rep in $(seq "$REPS"); do round "$rep"; done

"$HERE/ratios.sh" "$RAW" | tee "$OUT/ratios.md"
if [ -x "$SHARED/summarize.sh" ]; then
    "$SHARED/summarize.sh" "$RAW" >"$OUT/summary.md" || true
fi
log "raw: $RAW  ratios: $OUT/ratios.md  summary: $OUT/summary.md"

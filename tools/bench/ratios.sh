#!/usr/bin/env bash
# ratios.sh RAW... - medians per RESULT name, then tern vs NATS / ceiling ratios per
# workload, as Markdown (used by vs-nats.sh; rerun it on kept raw.txt files).
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 raw.txt..." >&2; exit 2; }

cat "$@" | awk '
function sortn(a, n,    i, j, t) {
    for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j+1] = a[j]; a[j+1] = t }
}
function med(name, key,    n, i, a) {
    n = cnt[name, key]; if (n == 0) return ""
    for (i = 1; i <= n; i++) a[i] = val[name, key, i] + 0
    sortn(a, n)
    return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
function f(x) { if (x == "") return "-"; if (x >= 100) return sprintf("%.0f", x); if (x >= 10) return sprintf("%.1f", x); return sprintf("%.2f", x) }
function r(a, b) { if (a == "" || b == "" || b == 0) return "-"; return sprintf("%.2f", a / b) }
# row LABEL TERN PEER KEY TARGET: tern and peer medians of KEY and tern/peer
function row(label, t, p, key, target,    a, b) {
    a = med(t, key); b = med(p, key)
    printf "| %s | %s | %s | %s | %s | %s | %s |\n", label, t, f(a), p, f(b), r(a, b), target
}
/^RESULT / {
    name = ""
    for (i = 2; i <= NF; i++) {
        split($i, kv, "=")
        if (kv[1] == "name") name = kv[2]
    }
    if (name == "") next
    if (!(name in seen)) { seen[name] = 1; order[++nn] = name }
    for (i = 2; i <= NF; i++) {
        split($i, kv, "=")
        if (kv[1] ~ /^(msgs_per_s|p50_us|p99_us|p999_us|delivered_per_s)$/ && kv[2] != "NA")
            val[name, kv[1], ++cnt[name, kv[1]]] = kv[2]
    }
    next
}
/^CHECK / { checks[++nc] = $0 }
END {
    print "## Medians"
    print ""
    print "| name | runs | msgs/s | p50 us | p99 us | p999 us | delivered/s |"
    print "|---|---|---|---|---|---|---|"
    for (k = 1; k <= nn; k++) {
        n = order[k]
        printf "| %s | %d | %s | %s | %s | %s | %s |\n", n, cnt[n, "msgs_per_s"], f(med(n, "msgs_per_s")),
            f(med(n, "p50_us")), f(med(n, "p99_us")), f(med(n, "p999_us")), f(med(n, "delivered_per_s"))
    }
    print ""
    print "## tern vs peer (ratio = tern / peer of the median)"
    print ""
    print "| workload | tern | tern median | peer | peer median | ratio | target |"
    print "|---|---|---|---|---|---|---|"
    row("durable async publish msgs/s (dedup)", "tern_pub_fsync_dedup", "js_pubasync_file_dedup", "msgs_per_s", ">= 2")
    row("durable async publish msgs/s vs LMDB ceiling", "tern_pub_fsync_dedup", "lmdb_sync_b4096", "msgs_per_s", ">= 0.5")
    row("durable async publish msgs/s vs LMDB at the batch a 256 window forms (~128)", "tern_pub_fsync_dedup", "lmdb_sync_b128", "msgs_per_s", "-")
    row("durable async publish msgs/s (no dedup)", "tern_pub_fsync_nodedup", "js_pubasync_file", "msgs_per_s", "-")
    row("durability none async publish vs libzmq tcp-thr", "tern_pub_none_dedup", "zmq_tcp-thr_1024B", "msgs_per_s", ">= 0.5")
    row("durability none async publish vs JS", "tern_pub_none_dedup", "js_pubasync_file", "msgs_per_s", "-")
    row("consume + ack backlog msgs/s", "tern_consume_fsync", "js_consume_file", "msgs_per_s", ">= 2")
    row("sync publish none p50 us", "tern_pubsync_none", "js_pubsync_file", "p50_us", "<= 1")
    row("sync publish none p99 us", "tern_pubsync_none", "js_pubsync_file", "p99_us", "<= 1")
    row("sync publish fsync p50 us vs JS (no fsync)", "tern_pubsync_fsync", "js_pubsync_file", "p50_us", "-")
    a = med("lmdb_sync_b1", "p50_us"); b = med("zmq_tcp-lat_1024B", "p50_us"); t = med("tern_pubsync_fsync", "p50_us")
    printf "| sync publish fsync p50 us vs LMDB b1 commit + zmq round trip | tern_pubsync_fsync | %s | lmdb_sync_b1 + zmq_tcp-lat | %s | %s | <= 1.5 |\n", f(t), (a == "" || b == "") ? "-" : f(a + b), (a == "" || b == "") ? "-" : r(t, a + b)
    row("async publish 100 B msgs/s", "tern_pub_fsync_100B", "js_pubasync_file_100B", "msgs_per_s", "-")
    row("async publish 1 KB msgs/s", "tern_pub_fsync_nodedup", "js_pubasync_file", "msgs_per_s", "-")
    row("async publish 64 KB msgs/s", "tern_pub_fsync_64KB", "js_pubasync_file_64KB", "msgs_per_s", "-")
    row("async publish 100 B msgs/s vs JS with Msg-Id", "tern_pub_fsync_100B", "js_pubasync_file_dedup_100B", "msgs_per_s", "-")
    row("async publish 64 KB msgs/s vs JS with Msg-Id", "tern_pub_fsync_64KB", "js_pubasync_file_dedup_64KB", "msgs_per_s", "-")
    row("async publish 4 producers msgs/s", "tern_pub_fsync_p4", "js_pubasync_file_p4", "msgs_per_s", "-")
    row("async publish 16 producers msgs/s", "tern_pub_fsync_p16", "js_pubasync_file_p16", "msgs_per_s", "-")
    row("fan-out 100 groups x 1 consumer, deliveries/s", "tern_fanout_g100", "js_fanout_c100", "delivered_per_s", ">= 2")
    a = med("tern_pub_fsync_64KB", "msgs_per_s"); b = med("lmdb_sync_64KB", "msgs_per_s")
    printf "| 64 KB durable publish MB/s vs LMDB synced commits of 64 KB records | tern_pub_fsync_64KB | %s | lmdb_sync_64KB | %s | %s | >= 0.5 |\n", (a == "") ? "-" : f(a * 65536 / 1e6), (b == "") ? "-" : f(b * 65536 / 1e6), r(a, b)
    printf "| publish + consume at once msgs/s (e2e p50 / p99 us) | tern_pubsub_g1 | %s (%s / %s) | - | - | - | - |\n", f(med("tern_pubsub_g1", "msgs_per_s")), f(med("tern_pubsub_g1", "p50_us")), f(med("tern_pubsub_g1", "p99_us"))
    printf "| latency under load: 20k msgs/s offered, e2e p50 / p99 / p999 us | tern_pubsub_rate20k | %s / %s / %s | - | - | - | - |\n", f(med("tern_pubsub_rate20k", "p50_us")), f(med("tern_pubsub_rate20k", "p99_us")), f(med("tern_pubsub_rate20k", "p999_us"))
    latency_table()
    if (nc) { print ""; for (k = 1; k <= nc; k++) print "    " checks[k] }
}
# The publish -> delivery rows at fixed rates (workload lat), one line per rate, with the
# issue-16 targets: none p50 <= JS p50 and p99 <= JS p99; fsync p50 <= JS p50 + one LMDB
# synced commit (b1 p50) and fsync p99 <= JS p99.
function tri(n, k3) { return f(med(n, "p50_us")) " / " f(med(n, "p99_us")) (k3 ? " / " f(med(n, "p999_us")) : "") }
function ok(c) { return c ? "yes" : "no" }
function latency_table(    k, m, rr, nr, rates, i, js, cn, tn, tf, b1, t) {
    for (k = 1; k <= nn; k++)
        if (match(order[k], /_r[0-9]+$/) && order[k] ~ /^(tern_pubsub_(fsync|none)|js_pubsub_asap|nats_core_pubsub_asap)_r/) {
            rr = substr(order[k], RSTART + 2) + 0
            if (!(rr in rates)) { rates[rr] = 1; rl[++nr] = rr }
        }
    if (nr == 0) return
    sortn(rl, nr)
    b1 = med("lmdb_sync_b1", "p50_us")
    print ""
    print "## Publish -> delivery at fixed rates (durable group / consumer with acks; p50 / p99 / p999 us)"
    print ""
    print "| rate msgs/s | JetStream -F | core NATS -F | tern none | tern fsync | none p50 <= JS | none p99 <= JS | fsync p50 <= JS + LMDB b1 (" f(b1) ") | fsync p99 <= JS |"
    print "|---|---|---|---|---|---|---|---|---|"
    for (i = 1; i <= nr; i++) {
        rr = rl[i]; js = "js_pubsub_asap_r" rr; cn = "nats_core_pubsub_asap_r" rr
        tn = "tern_pubsub_none_r" rr; tf = "tern_pubsub_fsync_r" rr
        t = (med(js, "p50_us") != "")
        printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", rr, tri(js, 1), tri(cn, 0), tri(tn, 1), tri(tf, 1),
            (t && med(tn, "p50_us") != "") ? ok(med(tn, "p50_us") <= med(js, "p50_us")) : "-",
            (t && med(tn, "p99_us") != "") ? ok(med(tn, "p99_us") <= med(js, "p99_us")) : "-",
            (t && med(tf, "p50_us") != "" && b1 != "") ? ok(med(tf, "p50_us") <= med(js, "p50_us") + b1) : "-",
            (t && med(tf, "p99_us") != "") ? ok(med(tf, "p99_us") <= med(js, "p99_us")) : "-"
    }
}'

# Memory per workload and server (MEM lines of vs-nats.sh): the largest peak over the rounds
# (the bound holds "at every moment"), the size after the load, and ternd's bound.
cat "$@" | awk '
function mb(kb) { return sprintf("%.1f", kb / 1024) }
/^MEM / {
    delete kv
    for (i = 2; i <= NF; i++) { split($i, p, "="); kv[p[1]] = p[2] }
    key = kv["name"] SUBSEP kv["server"]
    if (!(key in seen)) { seen[key] = 1; order[++n] = key }
    runs[key]++
    if (kv["rss_anon_peak_kb"] + 0 > pa[key]) pa[key] = kv["rss_anon_peak_kb"] + 0
    if (kv["vmrss_peak_kb"] + 0 > pr[key]) pr[key] = kv["vmrss_peak_kb"] + 0
    if (kv["vmhwm_kb"] + 0 > ph[key]) ph[key] = kv["vmhwm_kb"] + 0
    if (kv["rss_anon_after_kb"] + 0 > aa[key]) aa[key] = kv["rss_anon_after_kb"] + 0
    if (kv["rss_anon_start_kb"] + 0 > st[key]) st[key] = kv["rss_anon_start_kb"] + 0
    if (kv["rss_anon_idle_kb"] + 0 > idle[key]) idle[key] = kv["rss_anon_idle_kb"] + 0
    if (kv["conns_peak"] + 0 > pc[key]) pc[key] = kv["conns_peak"] + 0
    if ("bound_kb" in kv && kv["bound_kb"] + 0 > bd[key]) bd[key] = kv["bound_kb"] + 0
    if ("bound_kb" in kv && kv["rss_anon_peak_kb"] + 0 > kv["bound_kb"] + 0) over[key]++
}
END {
    if (n == 0) exit
    print ""
    print "## Memory per workload (MB; peaks sampled every 100 ms, largest over the rounds; start = as the workload began; after = " \
        "SETTLE s after the load; bound = 64 MB + 64 KB x peak connections, ternd only)"
    print ""
    print "| workload | server | runs | conns | RssAnon start | RssAnon peak | bound | within | VmRSS peak | VmHWM | RssAnon after | RssAnon idle |"
    print "|---|---|---|---|---|---|---|---|---|---|---|---|"
    for (k = 1; k <= n; k++) {
        key = order[k]; split(key, nm, SUBSEP)
        printf "| %s | %s | %d | %d | %s | %s | %s | %s | %s | %s | %s | %s |\n", nm[1], nm[2], runs[key], pc[key],
            mb(st[key]), mb(pa[key]), (key in bd) ? mb(bd[key]) : "-", (key in bd) ? ((key in over) ? "no (" over[key] " runs)" : "yes") : "-",
            mb(pr[key]), mb(ph[key]), mb(aa[key]), mb(idle[key])
    }
}'

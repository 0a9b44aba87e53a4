/*  tern_http.c - /metrics and /healthz over libmicrohttpd (see tern_http.h).

    Everything rendered here is read with relaxed atomic loads: counters may
    be a few microseconds apart from each other within one scrape, which
    Prometheus tolerates; no counter is ever read torn.
*/
#include "tern_http.h"
#include "tern_hostport.h"
#include "tern_json.h"
#include "tern_peer.h"
#include "tern_series.h"
#include "tern_work.h"
#include <arpa/inet.h>
#include <dirent.h>
#include <inttypes.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/statvfs.h>
#include <unistd.h>

#define S_DISK_MIN (1u << 20) //  free disk bytes below which /healthz says "disk full"

struct tern_http_t {
    struct MHD_Daemon *daemon;   //  owned; runs its own thread
    const tern_config_t *config; //  borrowed
    tern_metrics_t *metrics;     //  borrowed
    tern_store_t *store;         //  borrowed
    tern_repl_stats_t *repl;     //  borrowed, NULL without replication
    tern_cluster_t *cluster;     //  borrowed, NULL on a single node
    int port;                    //  bound port
};

// ---------------------------------------------------------------------------
//  Rendering

static void s_printf(tern_json_t *out, const char *format, ...) {
    char line[1024];
    va_list args;
    va_start(args, format);
    vsnprintf(line, sizeof line, format, args);
    va_end(args);
    tern_json_raw(out, line);
}

static void s_head(tern_json_t *out, const char *name, const char *type, const char *help) {
    s_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void s_metric(tern_json_t *out, const char *name, const char *type, const char *help,
                     uint64_t value) {
    s_head(out, name, type, help);
    s_printf(out, "%s %" PRIu64 "\n", name, value);
}

//  Label values: topic and group names are validated on input, but escape
//  anyway (\, ", newline) so the exposition can never break.
static void s_label(char *dst, size_t cap, const char *src) {
    size_t n = 0;
    for (; *src && n + 3 < cap; src++) {
        if (*src == '\\' || *src == '"') {
            dst[n++] = '\\';
            dst[n++] = *src;
        } else if (*src == '\n') {
            dst[n++] = '\\';
            dst[n++] = 'n';
        } else {
            dst[n++] = *src;
        }
    }
    dst[n] = 0;
}

typedef struct {
    tern_json_t *out;        //  where to write
    tern_series_counter_t c; //  counter being written, or TERN_SC_COUNT for inflight
    bool group;              //  group series (else topic series)
} s_each_t;

static void s_series_line(const tern_series_slot_t *slot, void *arg) {
    s_each_t *each = (s_each_t *)arg;
    if ((slot->group[0] != 0) != each->group) {
        return;
    }
    char topic[2 * TERN_TOPIC_MAX + 2], group[2 * TERN_NAME_MAX + 2];
    s_label(topic, sizeof topic, slot->topic);
    s_label(group, sizeof group, slot->group);
    const char *name =
        each->c < TERN_SC_COUNT ? tern_series_counter_name(each->c) : "tern_group_inflight";
    if (each->c < TERN_SC_COUNT) {
        uint64_t v = atomic_load_explicit(&slot->counters[each->c], memory_order_relaxed);
        if (each->group) {
            s_printf(each->out, "%s{topic=\"%s\",group=\"%s\"} %" PRIu64 "\n", name, topic, group,
                     v);
        } else {
            s_printf(each->out, "%s{topic=\"%s\"} %" PRIu64 "\n", name, topic, v);
        }
    } else {
        int64_t v = atomic_load_explicit(&slot->inflight, memory_order_relaxed);
        s_printf(each->out, "%s{topic=\"%s\",group=\"%s\"} %" PRId64 "\n", name, topic, group,
                 v < 0 ? 0 : v);
    }
}

static void s_series(tern_json_t *out, tern_series_t *series) {
    static const char *help[TERN_SC_COUNT] = {
        "Messages stored, per topic.",
        "Publishes answered as duplicates, per topic.",
        "Deliveries (every one, redeliveries included), per group.",
        "Deliveries with a delivery count above 1 (ack wait, nack, consumer gone), per group.",
        "Messages acknowledged, per group.",
        "Negative acknowledgements, per group.",
        "Messages moved to the group's dead-letter queue.",
        "Messages the group never got because they expired first."};
    for (int c = 0; c < TERN_SC_COUNT; c++) {
        s_head(out, tern_series_counter_name((tern_series_counter_t)c), "counter", help[c]);
        s_each_t each = {out, (tern_series_counter_t)c, c >= TERN_SC_DELIVERED};
        tern_series_each(series, s_series_line, &each);
    }
    s_head(out, "tern_group_inflight", "gauge", "Messages delivered and not yet acknowledged.");
    s_each_t each = {out, TERN_SC_COUNT, true};
    tern_series_each(series, s_series_line, &each);
}

static void s_histo(tern_json_t *out, const char *name, const char *help, tern_histo_t *h) {
    s_head(out, name, "histogram", help);
    uint64_t cumulative = 0;
    for (int i = 0; i <= TERN_HISTO_BUCKETS; i++) {
        cumulative += atomic_load_explicit(&h->buckets[i], memory_order_relaxed);
        if (i < TERN_HISTO_BUCKETS) {
            s_printf(out, "%s_bucket{le=\"%g\"} %" PRIu64 "\n", name, tern_histo_bound(i),
                     cumulative);
        } else {
            s_printf(out, "%s_bucket{le=\"+Inf\"} %" PRIu64 "\n", name, cumulative);
        }
    }
    s_printf(out, "%s_sum %.9f\n", name,
             (double)atomic_load_explicit(&h->sum_ns, memory_order_relaxed) / 1e9);
    //  _count equals the +Inf bucket by definition (loaded once above).
    s_printf(out, "%s_count %" PRIu64 "\n", name, cumulative);
}

static uint64_t s_rss_bytes(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long size = 0, resident = 0;
    if (f) {
        if (fscanf(f, "%lu %lu", &size, &resident) != 2) {
            resident = 0;
        }
        fclose(f);
    }
    return (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE);
}

static uint64_t s_open_fds(void) {
    DIR *dir = opendir("/proc/self/fd");
    uint64_t n = 0;
    if (dir) {
        struct dirent *e;
        while ((e = readdir(dir))) {
            n += e->d_name[0] != '.';
        }
        closedir(dir);
        n = n ? n - 1 : 0; //  the descriptor opendir itself holds
    }
    return n;
}

//  Per-peer replication figures, tern_repl_*{peer="NAME"}.
static void s_repl(tern_json_t *out, const tern_config_t *config, tern_repl_stats_t *repl) {
    static const struct {
        const char *name; //  metric name
        const char *type; //  counter or gauge
        const char *help; //  HELP text
        size_t offset;    //  field in tern_repl_peer_stats_t
        bool ms;          //  value in ms, exported in seconds
    } fields[] = {
        {"tern_repl_peer_lag_messages", "gauge", "Local records the peer has not confirmed.",
         offsetof(tern_repl_peer_stats_t, lag_msgs), false},
        {"tern_repl_peer_lag_seconds", "gauge",
         "Age of the oldest local record the peer has not confirmed.",
         offsetof(tern_repl_peer_stats_t, lag_ms), true},
        {"tern_repl_peer_last_seen_seconds", "gauge",
         "Unix time of the peer's last frame (0: never).",
         offsetof(tern_repl_peer_stats_t, last_seen_ms), true},
        {"tern_repl_records_shipped_total", "counter", "Records shipped to the peer.",
         offsetof(tern_repl_peer_stats_t, sent), false},
        {"tern_repl_records_applied_total", "counter", "Records applied from the peer.",
         offsetof(tern_repl_peer_stats_t, received), false},
        {"tern_repl_acks_shipped_total", "counter", "Ack-state changes shipped to the peer.",
         offsetof(tern_repl_peer_stats_t, acks_sent), false},
        {"tern_repl_acks_applied_total", "counter", "Ack-state changes received from the peer.",
         offsetof(tern_repl_peer_stats_t, acks_received), false},
        {"tern_repl_outbox_dropped_total", "counter",
         "Records dropped by outbox retention before the peer got them.",
         offsetof(tern_repl_peer_stats_t, lost), false},
        {"tern_repl_connect_failures", "gauge", "Failed connection attempts since last live.",
         offsetof(tern_repl_peer_stats_t, failures), false},
        {"tern_repl_failovers_total", "counter", "Moves of the link to another peer endpoint.",
         offsetof(tern_repl_peer_stats_t, failovers), false},
    };
    uint32_t peers = config->peer_count < TERN_PEERS_MAX ? config->peer_count : TERN_PEERS_MAX;
    s_head(out, "tern_repl_peer_state", "gauge",
           "1 for the outbound link's current state (idle, connecting, live, paused).");
    for (uint32_t p = 0; p < peers; p++) {
        char peer[2 * sizeof config->peers[p].name];
        s_label(peer, sizeof peer, config->peers[p].name);
        uint32_t state = atomic_load_explicit(&repl->peers[p].state, memory_order_relaxed);
        //  The names ternctl peers shows: one vocabulary, tern_peer.c's.
        for (uint32_t st = 0; st < TERN_PEER_STATES_; st++) {
            s_printf(out, "tern_repl_peer_state{peer=\"%s\",state=\"%s\"} %d\n", peer,
                     tern_peer_state_name((tern_peer_state_t)st), state == st);
        }
    }
    for (size_t f = 0; f < sizeof fields / sizeof fields[0]; f++) {
        s_head(out, fields[f].name, fields[f].type, fields[f].help);
        for (uint32_t p = 0; p < peers; p++) {
            char peer[2 * sizeof config->peers[p].name];
            s_label(peer, sizeof peer, config->peers[p].name);
            _Atomic uint64_t *v = (_Atomic uint64_t *)((char *)&repl->peers[p] + fields[f].offset);
            uint64_t value = atomic_load_explicit(v, memory_order_relaxed);
            if (fields[f].ms) {
                s_printf(out, "%s{peer=\"%s\"} %.3f\n", fields[f].name, peer,
                         (double)value / 1000.0);
            } else {
                s_printf(out, "%s{peer=\"%s\"} %" PRIu64 "\n", fields[f].name, peer, value);
            }
        }
    }
    s_metric(out, "tern_repl_refused_total", "counter",
             "Replication handshakes refused (version, duplicate node id, unknown DC).",
             atomic_load(&repl->refused_version) + atomic_load(&repl->refused_node_id) +
                 atomic_load(&repl->refused_unknown_dc));
    s_metric(out, "tern_repl_looped_total", "counter",
             "Replicated records dropped because they did not come from their origin.",
             atomic_load(&repl->looped));
}

//  ---------------------------------------------------------------------------
//  The cluster view (docs/cluster.md, "Metrics")

tern_http_role_t tern_http_partition_role(const tern_partmap_record_t *rec, uint32_t self) {
    if (rec->leader == self) {
        return TERN_HTTP_ROLE_LEADER;
    }
    for (uint32_t i = 0; i < rec->nreplicas && i < TERN_PLACEMENT_REPLICAS_MAX; i++) {
        if (rec->replicas[i] == self) {
            return TERN_HTTP_ROLE_FOLLOWER;
        }
    }
    return TERN_HTTP_ROLE_NONE;
}

//  One gauge per partition: FIELD picks the value.
static void s_partition_gauge(tern_json_t *out, const tern_http_cluster_t *view, const char *name,
                              const char *help, int field) {
    s_head(out, name, "gauge", help);
    for (uint32_t p = 0; p < view->partitions; p++) {
        const tern_http_partition_t *part = &view->parts[p];
        uint64_t values[5] = {(uint64_t)part->role, part->epoch, part->isr_size, part->position,
                              part->has_leader};
        s_printf(out, "%s{partition=\"%u\"} %" PRIu64 "\n", name, p, values[field]);
    }
}

static void s_follower_lag(tern_json_t *out, tern_metrics_t *m) {
    s_head(out, "tern_partition_follower_lag_seconds", "gauge",
           "How long a follower of a partition this node leads has not been caught up.");
    for (uint32_t p = 0; m->follower_lag && p < m->follower_lag_partitions; p++) {
        const tern_metrics_lag_t *row = &m->follower_lag[(size_t)p * TERN_METRICS_FOLLOWERS];
        for (int i = 0; i < TERN_METRICS_FOLLOWERS; i++) {
            uint32_t node = atomic_load_explicit(&row[i].node, memory_order_acquire);
            if (node) {
                uint64_t lag = atomic_load_explicit(&row[i].lag_ms, memory_order_relaxed);
                s_printf(out,
                         "tern_partition_follower_lag_seconds{partition=\"%u\",node=\"%u\"} "
                         "%.3f\n",
                         p, node - 1, (double)lag / 1000.0);
            }
        }
    }
}

char *tern_http_render_cluster(const tern_http_cluster_t *view, tern_metrics_t *m) {
    tern_json_t out;
    tern_json_init(&out);
    s_metric(&out, "tern_cluster_lease_renewals_total", "counter",
             "Lease keepalives etcd answered.", view->stats.renewals);
    s_metric(&out, "tern_cluster_lease_failures_total", "counter", "Lease keepalives that failed.",
             view->stats.renew_failures);
    s_metric(&out, "tern_cluster_failovers_total", "counter",
             "Partition leader changes this node wrote as the controller.", view->stats.failovers);
    s_metric(&out, "tern_cluster_lease_revokes_total", "counter",
             "Other nodes' leases this node revoked because etcd reported them lapsed.",
             view->stats.lease_revokes);
    s_metric(&out, "tern_cluster_late_renewals_total", "counter",
             "Own lease renewals answered too late to be trusted (fenced, moved to a new lease).",
             view->stats.late_renewals);
    s_metric(&out, "tern_cluster_isr_changes_total", "counter",
             "ISR changes this node wrote (as a leader) that etcd accepted.",
             view->stats.isr_changes);
    s_metric(&out, "tern_cluster_controller", "gauge", "1 while this node is the controller.",
             view->controller);
    s_metric(&out, "tern_cluster_lease_ok", "gauge",
             "1 while this node's lease is surely alive (else it neither acks nor delivers).",
             view->lease_ok);
    s_metric(&out, "tern_cluster_min_insync", "gauge",
             "cluster/min_insync: fewest in-sync replicas a publish is acknowledged with.",
             view->min_insync);
    s_metric(&out, "tern_cluster_stale_frames_total", "counter",
             "In-DC frames refused because they carried an older epoch than the view.",
             tern_metrics_get(m->cluster_stale_frames));
    s_partition_gauge(&out, view, "tern_partition_role",
                      "This node's role in the partition: 2 leader, 1 follower, 0 none.", 0);
    s_partition_gauge(&out, view, "tern_partition_epoch", "The partition record's epoch.", 1);
    s_partition_gauge(&out, view, "tern_partition_isr_size",
                      "Members of the partition's in-sync replica set.", 2);
    s_partition_gauge(&out, view, "tern_partition_position",
                      "The leader's log position (this node's, where it leads; else 0).", 3);
    s_partition_gauge(&out, view, "tern_partition_has_leader",
                      "1 when the partition record names a leader.", 4);
    s_follower_lag(&out, m);
    return out.data; //  ownership moves to the caller
}

//  Copies the view out of CLUSTER and renders it into OUT.
static void s_cluster(tern_json_t *out, const tern_config_t *config, tern_cluster_t *cluster,
                      tern_metrics_t *m) {
    tern_http_cluster_t view = {.partitions = tern_cluster_partitions(cluster),
                                .min_insync = config->min_insync};
    tern_cluster_stats(cluster, &view.stats);
    uint32_t self = tern_cluster_self(cluster);
    view.controller = tern_cluster_controller(cluster) == self;
    view.lease_ok = tern_cluster_lease_ok(cluster);
    view.parts = tern_alloc((size_t)view.partitions * sizeof *view.parts + 1);
    for (uint32_t p = 0; p < view.partitions; p++) {
        tern_partmap_record_t rec;
        if (tern_cluster_record(cluster, p, &rec)) {
            view.parts[p].role = tern_http_partition_role(&rec, self);
            view.parts[p].epoch = rec.epoch;
            view.parts[p].isr_size = rec.nisr;
            view.parts[p].position = tern_cluster_position(cluster, p);
            view.parts[p].has_leader = rec.leader != TERN_NODE_NONE;
        }
    }
    char *text = tern_http_render_cluster(&view, m);
    tern_json_raw(out, text);
    free(text);
    free(view.parts);
}

char *tern_http_render_metrics(const tern_config_t *config, tern_metrics_t *m, tern_store_t *store,
                               tern_repl_stats_t *repl, tern_cluster_t *cluster) {
    tern_json_t out;
    tern_json_init(&out);
    char dc[2 * sizeof config->dc];
    s_label(dc, sizeof dc, config->dc);
    s_head(&out, "tern_build_info", "gauge", "Version, node id and datacenter of this node.");
    s_printf(&out, "tern_build_info{version=\"0.1.0\",node_id=\"%u\",dc=\"%s\"} 1\n",
             config->node_id, dc);
    char reason[128];
    s_metric(&out, "tern_up", "gauge", "1 when /healthz would answer 200.",
             tern_http_health(config, m, reason, sizeof reason) ? 1 : 0);

    s_metric(&out, "tern_messages_published_total", "counter", "Messages stored (not duplicates).",
             tern_metrics_get(m->published));
    s_metric(&out, "tern_messages_duplicates_total", "counter",
             "Publishes answered as duplicates of a stored message.",
             tern_metrics_get(m->duplicates));
    s_metric(&out, "tern_publish_errors_total", "counter",
             "Publishes refused (storage full, clock, limits).",
             tern_metrics_get(m->publish_errors));
    s_metric(&out, "tern_messages_delivered_total", "counter",
             "Deliveries (every one, redeliveries included), all groups.",
             tern_metrics_get(m->delivered));
    s_metric(&out, "tern_messages_redelivered_total", "counter",
             "Deliveries with a delivery count above 1, all groups.",
             tern_metrics_get(m->redelivered));
    s_metric(&out, "tern_messages_acked_total", "counter", "Acknowledgements, all groups.",
             tern_metrics_get(m->acked));
    s_metric(&out, "tern_messages_nacked_total", "counter",
             "Negative acknowledgements, all groups.", tern_metrics_get(m->nacked));
    s_metric(&out, "tern_messages_dead_lettered_total", "counter",
             "Messages moved to a dead-letter queue, all groups.", tern_metrics_get(m->dead));

    tern_store_stats_t st;
    tern_store_stats(store, &st);
    s_metric(&out, "tern_messages_expired_total", "counter",
             "Messages removed from disk by the TTL sweep.", st.expired);
    s_metric(&out, "tern_messages_retention_trimmed_total", "counter",
             "Messages removed by topic retention (max_age, max_msgs, max_bytes).",
             st.retention_trimmed);
    s_series(&out, m->series);
    s_metric(&out, "tern_metrics_series", "gauge",
             "Label sets in use by the per-topic/group metrics (capped, then topic=\"other\").",
             tern_series_count(m->series));

    s_histo(&out, "tern_publish_durable_seconds",
            "Time from a publish reaching the storer to its durable commit.", &m->durable_latency);
    s_histo(&out, "tern_publish_deliver_seconds",
            "Time from a message being stored to its first delivery.", &m->deliver_latency);

    s_metric(&out, "tern_storage_file_bytes", "gauge", "Size of data.mdb on disk.", st.file_bytes);
    s_metric(&out, "tern_storage_map_size_bytes", "gauge", "Current LMDB map size.", st.map_size);
    s_metric(&out, "tern_storage_map_used_bytes", "gauge", "LMDB map in use (last page).",
             st.map_used);
    s_metric(&out, "tern_storage_map_max_bytes", "gauge", "storage/map_max: the map ceiling.",
             config->map_max);
    s_metric(&out, "tern_storage_writemap", "gauge",
             "1 when LMDB writes through its map (storage/writemap, disk reserved).",
             (uint64_t)st.writemap);
    s_metric(&out, "tern_storage_reserve_refused_total", "counter",
             "Map growths the disk could not reserve (storage/writemap): the map stayed full.",
             st.reserve_refused);
    s_metric(&out, "tern_storage_full", "gauge",
             "1 when the last publish failed because storage is full.",
             (uint64_t)atomic_load(&m->storage_full));
    s_metric(&out, "tern_storage_commits_total", "counter", "LMDB write transactions committed.",
             st.commits);
    s_metric(&out, "tern_storage_full_errors_total", "counter",
             "Commits that hit storage-full (appends refused).", st.full_errors);
    s_metric(&out, "tern_storage_corrupt_records_total", "counter",
             "Records whose CRC did not match when read.", st.corrupt_records);
    s_metric(&out, "tern_topics", "gauge", "Topics stored.", st.topics);
    s_metric(&out, "tern_dedup_entries", "gauge", "Dedup entries on disk.", st.dedup_entries);
    s_metric(&out, "tern_outbox_dropped_total", "counter",
             "Outbox entries dropped before every peer confirmed them (retention).",
             st.outbox_dropped);

    if (repl) {
        s_repl(&out, config, repl);
    }
    if (cluster) {
        s_cluster(&out, config, cluster, m);
    }
    s_metric(
        &out, "tern_connections", "gauge", "Client sessions open.",
        (uint64_t)(tern_metrics_get(m->connections) > 0 ? tern_metrics_get(m->connections) : 0));
    s_metric(&out, "tern_sessions_total", "counter", "Client sessions ever opened.",
             tern_metrics_get(m->sessions_total));
    s_metric(&out, "tern_send_dropped_total", "counter",
             "Frames dropped because the client was gone or its queue full.",
             tern_metrics_get(m->send_dropped));
    s_metric(&out, "tern_auth_refused_total", "counter",
             "CURVE handshakes refused by the ZAP handler (unknown or bad key).",
             tern_metrics_get(m->auth_refused));
    s_metric(&out, "tern_auth_denied_total", "counter",
             "Commands refused because the client's role does not allow them.",
             tern_metrics_get(m->auth_denied));
    s_head(&out, "tern_decode_errors_total", "counter", "Frames that did not decode, by code.");
    for (int i = 0; i < TERN_METRICS_CODES; i++) {
        s_printf(&out, "tern_decode_errors_total{code=\"%s\"} %" PRIu64 "\n",
                 tern_metrics_code_name(i), tern_metrics_get(m->decode_errors[i]));
    }

    s_metric(&out, "process_resident_memory_bytes", "gauge", "Resident set size.", s_rss_bytes());
    s_metric(&out, "process_open_fds", "gauge", "Open file descriptors.", s_open_fds());
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
        s_metric(&out, "process_max_fds", "gauge", "Limit of open file descriptors.",
                 (uint64_t)rl.rlim_cur);
    }
    s_head(&out, "process_start_time_seconds", "gauge", "Start time, unix seconds.");
    s_printf(&out, "process_start_time_seconds %.3f\n", (double)m->started_ms / 1000.0);
    char *text = out.data; //  ownership moves to the caller
    return text;
}

bool tern_http_health(const tern_config_t *config, tern_metrics_t *m, char *reason,
                      size_t reason_cap) {
    if (!atomic_load(&m->serving)) {
        snprintf(reason, reason_cap, "not serving");
        return false;
    }
    if (atomic_load(&m->storage_full)) {
        snprintf(reason, reason_cap, "storage full (storage/map_max or disk): publishes fail");
        return false;
    }
    if (access(config->data_dir, W_OK) != 0) {
        snprintf(reason, reason_cap, "data directory %s not writable", config->data_dir);
        return false;
    }
    struct statvfs vfs;
    if (statvfs(config->data_dir, &vfs) == 0 &&
        (uint64_t)vfs.f_bavail * (uint64_t)vfs.f_frsize < S_DISK_MIN) {
        snprintf(reason, reason_cap, "disk full under %s", config->data_dir);
        return false;
    }
    snprintf(reason, reason_cap, "ok");
    return true;
}

// ---------------------------------------------------------------------------
//  The server

static enum MHD_Result s_reply(struct MHD_Connection *connection, unsigned status,
                               const char *content_type, char *body) {
    //  MHD frees BODY with free() once sent.
    if (!body) {
        return MHD_NO; //  out of memory: drop the connection
    }
    struct MHD_Response *response =
        MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
    if (!response) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(response, "Content-Type", content_type);
    MHD_add_response_header(response, "Cache-Control", "no-store");
    enum MHD_Result rc = MHD_queue_response(connection, status, response);
    MHD_destroy_response(response);
    return rc;
}

static enum MHD_Result s_handle(void *cls, struct MHD_Connection *connection, const char *url,
                                const char *method, const char *version, const char *upload_data,
                                size_t *upload_data_size, void **req_cls) {
    (void)version;
    (void)upload_data;
    (void)req_cls;
    tern_http_t *self = (tern_http_t *)cls;
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        return s_reply(connection, MHD_HTTP_METHOD_NOT_ALLOWED, "text/plain",
                       strdup("method not allowed\n"));
    }
    if (*upload_data_size) {
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (strcmp(url, "/metrics") == 0) {
        return s_reply(connection, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8",
                       tern_http_render_metrics(self->config, self->metrics, self->store,
                                                self->repl, self->cluster));
    }
    if (strcmp(url, "/healthz") == 0) {
        char reason[512], body[600];
        bool ok = tern_http_health(self->config, self->metrics, reason, sizeof reason);
        snprintf(body, sizeof body, ok ? "ok\n" : "unavailable: %s\n", reason);
        return s_reply(connection, ok ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE,
                       "text/plain; charset=utf-8", strdup(body));
    }
    return s_reply(connection, MHD_HTTP_NOT_FOUND, "text/plain",
                   strdup("not found: try /metrics or /healthz\n"));
}

bool tern_http_parse_address(const char *address, char *host, size_t host_cap, int *port) {
    char text[16], *end = NULL;
    if (!tern_hostport_split(address, host, host_cap, text, sizeof text)) {
        return false;
    }
    long p = strtol(text, &end, 10);
    *port = (int)p;
    return *end == '\0' && p >= 0 && p <= 65535;
}

//  Resolves HOST ("*" = every interface) to an IPv4 address.
static bool s_resolve(const char *host, struct sockaddr_in *addr) {
    if (strcmp(host, "*") == 0 || strcmp(host, "0.0.0.0") == 0) {
        addr->sin_addr.s_addr = htonl(INADDR_ANY);
        return true;
    }
    if (inet_pton(AF_INET, host, &addr->sin_addr) == 1) {
        return true;
    }
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_INET;
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(host, NULL, &hints, &res) != 0 || !res) {
        return false;
    }
    addr->sin_addr = ((struct sockaddr_in *)res->ai_addr)->sin_addr;
    freeaddrinfo(res);
    return true;
}

tern_http_t *tern_http_new(const tern_config_t *config, tern_metrics_t *metrics,
                           tern_store_t *store, tern_repl_stats_t *repl, tern_cluster_t *cluster,
                           char *errbuf, size_t errlen) {
    char host[256];
    int port = 0;
    if (!tern_http_parse_address(config->metrics, host, sizeof host, &port)) {
        snprintf(errbuf, errlen, "metrics: bad address \"%s\" (expected HOST:PORT)",
                 config->metrics);
        return NULL;
    }
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)port);
    if (!s_resolve(host, &addr)) {
        snprintf(errbuf, errlen, "metrics: cannot resolve \"%s\" to an IPv4 address", host);
        return NULL;
    }
    tern_http_t *self = tern_alloc(sizeof *self);
    self->config = config;
    self->metrics = metrics;
    self->store = store;
    self->repl = repl;
    self->cluster = cluster;
    self->daemon = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL, (uint16_t)port,
                                    NULL, NULL, s_handle, self, MHD_OPTION_SOCK_ADDR,
                                    (struct sockaddr *)&addr, MHD_OPTION_CONNECTION_LIMIT, 64u,
                                    MHD_OPTION_CONNECTION_TIMEOUT, 10u, MHD_OPTION_END);
    if (!self->daemon) {
        snprintf(errbuf, errlen, "metrics: cannot listen on %s (in use?)", config->metrics);
        free(self);
        return NULL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(self->daemon, MHD_DAEMON_INFO_BIND_PORT);
    self->port = info ? (int)info->port : port;
    return self;
}

void tern_http_destroy(tern_http_t **self_p) {
    if (!self_p || !*self_p) {
        return;
    }
    MHD_stop_daemon((*self_p)->daemon);
    free(*self_p);
    *self_p = NULL;
}

int tern_http_port(tern_http_t *self) {
    return self ? self->port : 0;
}

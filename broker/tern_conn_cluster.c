/*  tern_conn_cluster.c - conn in a clustered DC: who may publish here, and
    the cluster* admin operations answered from the view.

    Part of the conn actor (tern_conn.c), on conn's thread. On a single node
    (args->cluster NULL) nothing here runs: conn's only cost is the NULL
    check before calling in. In a cluster, conn refuses a PUBLISH, and a
    SUBSCRIBE to an exact topic, whose partition this node does not lead
    (ERROR TERN_ENOTLEADER, reason tern_cluster_not_leader: the leader's
    endpoint, so a client can go there). A PUBLISH to a partition it leads
    whose record has an ISR smaller than cluster/min_insync is refused here
    with ERROR TERN_EREPLICAS, before the storer: that code means "not
    stored" (a publish appended and then not confirmed by the ISR gets
    TERN_ETIMEOUT from crepl instead, its outcome unknown). What it leads,
    and with how short an ISR, is cached per view version and read again
    only when the version moves; the lease is asked once per drain of the
    ROUTER, not per message.

    Sticky refusals (docs/protocol.md, "Producer order"): a refusal here
    stores nothing, and a client that pipelines would otherwise see the
    publishes behind the refused one stored before its resend (a lease
    that lapsed for a moment refuses N, renews, stores N+1). So in an
    ordered session (its HELLO carried `rs` true, as libtern's node
    sessions' do), a refused PUBLISH to partition P makes every later one
    of the session to P refused too, with the same code, until one arrives
    with `rs` true: the client's resend, sent alone, of the oldest publish
    to P it has not had answered. Other sessions (older clients) are
    refused one publish at a time, as before.
        stuck[P] \ PUBLISH to P   rs true            no rs / rs false
        0                         checked            checked
        code                      -> 0, checked      refused (code)
    "checked" = the leader, lease and ISR checks; a refusal there, for an
    ordered session, sets stuck[P] to its code.

    Admin operations (docs/protocol.md "Admin operations in a cluster"):
        cluster           the view as JSON (nodes, map); TERN_ESTATE on a
                          single node
        cluster.handover  partition, to: tern_cluster_handover
        cluster.verify    partition [, topic [, upto [, at]]]: without topic,
                          the topics of the partition this node holds with
                          their last_seq; with topic, tern_store_digest of
                          it up to upto (default its last_seq), with the
                          dedup entries of messages stored since half a
                          dedup window before at (unix ms, ternctl's
                          clock; default ours), chained with
                          tern_store_group_digest (its groups). ternctl
                          cluster verify asks every replica and compares
                          the digests up to the seq they all have.
*/
#include "tern_conn_priv.h"
#include "tern_admin.h"
#include "tern_json.h"
#include "tern_partition.h"
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

//  The most nodes the `cluster` op lists (node ids are 0..TERN_ID_NODE_MAX;
//  a DC's cluster is a handful of them).
#define S_NODES_MAX 256

// ---------------------------------------------------------------------------
//  Who leads what

void c_cluster_refresh(c_conn_t *self) {
    tern_cluster_t *cluster = self->args->cluster;
    self->lease_ok = tern_cluster_lease_ok(cluster);
    uint64_t version = tern_cluster_version(cluster);
    if (self->leads && version == self->view_version) {
        return;
    }
    if (!self->leads) {
        self->partitions = tern_cluster_partitions(cluster);
        self->leads = tern_alloc(self->partitions ? self->partitions : 1);
        self->isr_short = tern_alloc(self->partitions ? self->partitions : 1);
    }
    //  The record's leader, not tern_cluster_leads: the lease is checked
    //  per drain (it can lapse without any change of the view).
    uint32_t me = tern_cluster_self(cluster);
    for (uint32_t p = 0; p < self->partitions; p++) {
        tern_partmap_record_t rec;
        self->leads[p] = tern_cluster_record(cluster, p, &rec) && rec.leader == me;
        //  The ack rule's REFUSE (its ISR test; no positions needed).
        self->isr_short[p] =
            self->leads[p] &&
            tern_partmap_ack_check(&rec, NULL, NULL, 0, 0, self->config->min_insync, NULL, 0) ==
                TERN_PARTMAP_REFUSE;
    }
    self->view_version = version;
}

//  ERROR TERN_EREPLICAS for a publish to P, whose ISR is too short: the
//  reason names the numbers, as the ack rule words them.
static void s_refuse_replicas(c_conn_t *self, c_session_t *session, const tern_frame_t *frame,
                              uint32_t p) {
    char why[160] = "too few in-sync replicas";
    tern_partmap_record_t rec;
    if (tern_cluster_record(self->args->cluster, p, &rec)) {
        tern_partmap_ack_check(&rec, NULL, NULL, 0, 0, self->config->min_insync, why, sizeof why);
    }
    char reason[TERN_REASON_MAX + 1];
    snprintf(reason, sizeof reason, "partition %u has %s; nothing was stored: retry later",
             (unsigned)p, why);
    c_send_error(self, session->rid, session->rid_size, frame->req_id, TERN_EREPLICAS, reason);
}

//  A PUBLISH of SESSION to P was refused with CODE (nothing stored): an
//  ordered session's later publishes to P are refused until a resend.
static void s_stick(c_conn_t *self, c_session_t *session, uint32_t p, tern_err_t code) {
    if (!session->ordered || p >= self->partitions) {
        return;
    }
    if (!session->stuck) {
        session->stuck = tern_alloc(self->partitions * sizeof *session->stuck);
    }
    if (!session->stuck[p]) {
        session->stuck_count++;
    }
    session->stuck[p] = (uint16_t)code;
}

//  Whether FRAME, a PUBLISH of SESSION to P, is refused because an earlier
//  one was (ERROR sent, with the code that refused that one); a resend
//  (`rs` true) ends P's refusals and is checked like any publish.
static bool s_held(c_conn_t *self, c_session_t *session, const tern_frame_t *frame, uint32_t p) {
    if (p >= self->partitions || !session->stuck || !session->stuck[p]) {
        return false;
    }
    if (frame->resend) {
        session->stuck[p] = 0;
        session->stuck_count--;
        return false;
    }
    char reason[TERN_REASON_MAX + 1];
    snprintf(reason, sizeof reason,
             "refused: an earlier publish of this session to partition %u was refused (%s); "
             "resend it first, marked as a resend (rs)",
             (unsigned)p, tern_errname((tern_err_t)session->stuck[p]));
    c_send_error(self, session->rid, session->rid_size, frame->req_id,
                 (tern_err_t)session->stuck[p], reason);
    return true;
}

bool c_cluster_admit(c_conn_t *self, c_session_t *session, const tern_frame_t *frame) {
    uint32_t p = tern_partition_of(frame->topic, strlen(frame->topic), self->partitions);
    bool publish = frame->cmd == TERN_CMD_PUBLISH;
    if (publish && session->stuck_count && s_held(self, session, frame, p)) {
        return false;
    }
    if (self->lease_ok && p < self->partitions && self->leads[p]) {
        if (publish && self->isr_short[p]) {
            s_refuse_replicas(self, session, frame, p);
            s_stick(self, session, p, TERN_EREPLICAS);
            return false;
        }
        return true;
    }
    char reason[TERN_REASON_MAX + 1];
    tern_cluster_not_leader(self->args->cluster, p, reason, sizeof reason);
    if (!self->lease_ok && p < self->partitions && self->leads[p]) {
        //  It leads in the view, but its lease may have lapsed: another node
        //  may lead already. Say so rather than name ourselves.
        snprintf(reason, sizeof reason,
                 "partition %u: this node's cluster lease may have lapsed; retry", (unsigned)p);
    }
    c_send_error(self, session->rid, session->rid_size, frame->req_id, TERN_ENOTLEADER, reason);
    if (publish) {
        s_stick(self, session, p, TERN_ENOTLEADER);
    }
    return false;
}

void c_cluster_destroy(c_conn_t *self) {
    free(self->leads);
    self->leads = NULL;
    free(self->isr_short);
    self->isr_short = NULL;
}

// ---------------------------------------------------------------------------
//  cluster

static void s_json_ids(tern_json_t *json, const char *key, const uint32_t *ids, uint32_t n) {
    tern_json_key(json, key);
    tern_json_raw(json, "[");
    for (uint32_t i = 0; i < n; i++) {
        char num[16];
        snprintf(num, sizeof num, "%s%u", i ? "," : "", (unsigned)ids[i]);
        tern_json_raw(json, num);
    }
    tern_json_raw(json, "]");
}

//  The map: one object per partition; counts each node's leader_of and
//  replica_of into LEADS and HOLDS (indexed by node id, S_NODES_MAX).
static void s_json_map(c_conn_t *self, tern_json_t *json, uint32_t *leads, uint32_t *holds) {
    tern_cluster_t *cluster = self->args->cluster;
    uint32_t me = tern_cluster_self(cluster);
    tern_json_key(json, "map");
    tern_json_raw(json, "[");
    for (uint32_t p = 0; p < tern_cluster_partitions(cluster); p++) {
        tern_partmap_record_t rec;
        if (!tern_cluster_record(cluster, p, &rec)) {
            continue;
        }
        tern_json_sep(json);
        tern_json_raw(json, "{");
        tern_json_key_u64(json, "partition", p);
        tern_json_key(json, "leader");
        if (rec.leader == TERN_NODE_NONE) {
            tern_json_raw(json, "null");
        } else {
            char num[16];
            snprintf(num, sizeof num, "%u", (unsigned)rec.leader);
            tern_json_raw(json, num);
            leads[rec.leader % S_NODES_MAX]++;
        }
        tern_json_key_u64(json, "epoch", rec.epoch);
        s_json_ids(json, "replicas", rec.replicas, rec.nreplicas);
        s_json_ids(json, "isr", rec.isr, rec.nisr);
        tern_json_key_u64(json, "position",
                          rec.leader == me ? tern_cluster_position(cluster, p) : 0);
        tern_json_raw(json, "}");
        for (uint32_t i = 0; i < rec.nreplicas; i++) {
            holds[rec.replicas[i] % S_NODES_MAX]++;
        }
    }
    tern_json_raw(json, "]");
}

static void s_json_nodes(c_conn_t *self, tern_json_t *json, const uint32_t *leads,
                         const uint32_t *holds) {
    tern_cluster_t *cluster = self->args->cluster;
    tern_cluster_node_t *nodes = tern_alloc(S_NODES_MAX * sizeof *nodes);
    size_t count = tern_cluster_nodes(cluster, nodes, S_NODES_MAX);
    count = count < S_NODES_MAX ? count : S_NODES_MAX;
    uint32_t controller = tern_cluster_controller(cluster);
    tern_json_key(json, "nodes");
    tern_json_raw(json, "[");
    for (size_t i = 0; i < count; i++) {
        const tern_cluster_node_t *node = &nodes[i];
        tern_json_sep(json);
        tern_json_raw(json, "{");
        tern_json_key_u64(json, "node_id", node->id);
        tern_json_key_str(json, "dc", node->dc);
        tern_json_key_str(json, "endpoint", node->endpoint);
        if (node->repl_endpoint[0]) {
            tern_json_key_str(json, "repl", node->repl_endpoint); //  for the peer DCs
        }
        tern_json_key_str(json, "state", node->up ? "up" : "down");
        tern_json_key_bool(json, "controller", node->id == controller);
        tern_json_key_u64(json, "leader_of", leads[node->id % S_NODES_MAX]);
        tern_json_key_u64(json, "replica_of", holds[node->id % S_NODES_MAX]);
        tern_json_raw(json, "}");
    }
    tern_json_raw(json, "]");
    free(nodes);
}

//  The view as CLUSTER.md "Admin op cluster" gives it: the map is written
//  first (into its own buffer) because it counts what each node leads.
static void s_reply_cluster(c_conn_t *self, const c_session_t *session, uint64_t req_id) {
    tern_cluster_t *cluster = self->args->cluster;
    uint32_t *leads = tern_alloc(S_NODES_MAX * sizeof *leads);
    uint32_t *holds = tern_alloc(S_NODES_MAX * sizeof *holds);
    tern_json_t map, json;
    tern_json_init(&map);
    tern_json_init(&json);
    s_json_map(self, &map, leads, holds);
    uint32_t controller = tern_cluster_controller(cluster);
    tern_json_raw(&json, "{");
    tern_json_key_str(&json, "cluster",
                      self->config->cluster_name[0] ? self->config->cluster_name
                                                    : self->config->dc);
    tern_json_key_u64(&json, "node_id", tern_cluster_self(cluster));
    tern_json_key_u64(&json, "partitions", tern_cluster_partitions(cluster));
    tern_json_key_u64(&json, "replicas", self->config->replicas);
    tern_json_key_u64(&json, "min_insync", self->config->min_insync);
    tern_json_key(&json, "controller");
    if (controller == TERN_NODE_NONE) {
        tern_json_raw(&json, "null");
    } else {
        char num[16];
        snprintf(num, sizeof num, "%u", (unsigned)controller);
        tern_json_raw(&json, num);
    }
    tern_json_key_bool(&json, "lease_ok", tern_cluster_lease_ok(cluster));
    s_json_nodes(self, &json, leads, holds);
    tern_json_sep(&json);
    tern_json_rawn(&json, map.data, map.len);
    tern_json_raw(&json, "}");
    c_send_reply(self, session->rid, session->rid_size, req_id, &json);
    tern_json_free(&json);
    tern_json_free(&map);
    free(leads);
    free(holds);
}

// ---------------------------------------------------------------------------
//  cluster.handover, cluster.verify

//  TEXT as a decimal number into *OUT: false when it is not one.
static bool s_decimal(const char *text, uint64_t *out) {
    if (text[0] < '0' || text[0] > '9') {
        return false;
    }
    char *end = NULL;
    *out = strtoull(text, &end, 10);
    return end && *end == 0;
}

//  Metadata KEY of FRAME as a number below LIMIT into *OUT; false (ERROR
//  TERN_EINVAL sent) when it is missing or not one.
static bool s_arg_u64(c_conn_t *self, const c_session_t *session, const tern_frame_t *frame,
                      const char *key, uint64_t limit, uint64_t *out) {
    char value[32];
    if (tern_admin_arg(frame, key, value, sizeof value) && s_decimal(value, out) && *out < limit) {
        return true;
    }
    char reason[TERN_REASON_MAX + 1];
    snprintf(reason, sizeof reason, "%s needs a %s argument below %" PRIu64, frame->name, key,
             limit);
    c_send_error(self, session->rid, session->rid_size, frame->req_id, TERN_EINVAL, reason);
    return false;
}

static void s_reply_handover(c_conn_t *self, const c_session_t *session,
                             const tern_frame_t *frame) {
    tern_cluster_t *cluster = self->args->cluster;
    uint64_t partition, to;
    if (!s_arg_u64(self, session, frame, "partition", tern_cluster_partitions(cluster),
                   &partition) ||
        !s_arg_u64(self, session, frame, "to", TERN_NODE_NONE, &to)) {
        return;
    }
    tern_err_t rc = tern_cluster_handover(cluster, (uint32_t)partition, (uint32_t)to);
    if (rc != TERN_OK) {
        char reason[TERN_REASON_MAX + 1];
        snprintf(reason, sizeof reason,
                 "node %" PRIu64 " cannot lead partition %" PRIu64
                 " (it must be a live in-sync replica)",
                 to, partition);
        c_send_error(self, session->rid, session->rid_size, frame->req_id, rc, reason);
        return;
    }
    tern_json_t json;
    tern_json_init(&json);
    tern_json_raw(&json, "{");
    tern_json_key_u64(&json, "partition", partition);
    tern_json_key_u64(&json, "to", to);
    tern_json_key_bool(&json, "queued", true);
    tern_json_raw(&json, "}");
    c_send_reply(self, session->rid, session->rid_size, frame->req_id, &json);
    tern_json_free(&json);
}

typedef struct {
    tern_json_t *json;   //  the topics array being written
    uint32_t partition;  //  the partition asked about
    uint32_t partitions; //  the cluster's partition count
} s_verify_t;

static bool s_verify_topic(const tern_topic_info_t *topic, void *arg) {
    s_verify_t *verify = (s_verify_t *)arg;
    if (tern_partition_of(topic->name, strlen(topic->name), verify->partitions) ==
        verify->partition) {
        tern_json_sep(verify->json);
        tern_json_raw(verify->json, "{");
        tern_json_key_str(verify->json, "topic", topic->name);
        tern_json_key_u64(verify->json, "last_seq", topic->last_seq);
        tern_json_raw(verify->json, "}");
    }
    return true;
}

//  Optional decimal argument NAME of FRAME into *VALUE (left as it is when
//  absent); false when it is there but not a number.
static bool s_opt_u64(const tern_frame_t *frame, const char *name, uint64_t *value) {
    char text[32];
    uint64_t parsed;
    if (!tern_admin_arg(frame, name, text, sizeof text)) {
        return true;
    }
    if (!s_decimal(text, &parsed)) {
        return false;
    }
    *value = parsed;
    return true;
}

//  Without topic: {"partition","node_id","position","topics":[{"topic",
//  "last_seq"}]}. With topic: {"partition","node_id","topic","last_seq",
//  "upto","dedup_since","groups","log","digest"} (16 hex digits each: the
//  group state, the log, both), upto clamped to last_seq. Dedup entries are
//  compared for messages stored in the last half window before "at" (the
//  same time for every replica when ternctl passes it): older ones
//  legitimately differ (each node stamps and expires them on its own
//  clock; tern_store_digest), and a half window leaves room for clocks and
//  slow answers.
static tern_err_t s_verify(c_conn_t *self, const tern_frame_t *frame, uint32_t partition,
                           tern_json_t *json, char *reason, size_t cap) {
    tern_cluster_t *cluster = self->args->cluster;
    char topic[TERN_TOPIC_MAX + 1];
    tern_json_raw(json, "{");
    tern_json_key_u64(json, "partition", partition);
    tern_json_key_u64(json, "node_id", tern_cluster_self(cluster));
    if (!tern_admin_arg(frame, "topic", topic, sizeof topic)) {
        tern_json_key_u64(json, "position", tern_cluster_position(cluster, partition));
        tern_json_key(json, "topics");
        tern_json_raw(json, "[");
        s_verify_t verify = {json, partition, tern_cluster_partitions(cluster)};
        tern_err_t rc = tern_store_topic_list(self->reader, s_verify_topic, &verify);
        tern_json_raw(json, "]}");
        snprintf(reason, cap, "cannot list topics");
        return rc;
    }
    if (tern_partition_of(topic, strlen(topic), tern_cluster_partitions(cluster)) != partition) {
        snprintf(reason, cap, "topic '%.200s' is not in partition %u", topic, (unsigned)partition);
        return TERN_EINVAL;
    }
    tern_topic_info_t info = {0};
    tern_err_t rc = tern_store_topic_get(self->reader, topic, &info);
    uint64_t upto = info.last_seq, digest = 0, at = tern_now_ms();
    if (!s_opt_u64(frame, "upto", &upto) || !s_opt_u64(frame, "at", &at)) {
        snprintf(reason, cap, "invalid upto (a seq) or at (unix ms) argument");
        return TERN_EINVAL;
    }
    upto = upto < info.last_seq ? upto : info.last_seq;
    uint64_t half = self->config->dedup_window_ms / 2;
    uint64_t since = at > half ? (at - half) * 1000000ull : 0;
    uint64_t log = 0, groups = 0;
    if (rc == TERN_OK) {
        rc = tern_store_digest(self->reader, topic, upto, since, &log);
    }
    if (rc == TERN_OK) {
        rc = tern_store_group_digest(self->reader, topic, upto, &groups);
    }
    if (rc != TERN_OK) {
        snprintf(reason, cap, "cannot digest topic '%.200s': %s", topic, tern_strerror(rc));
        return rc;
    }
    //  "digest" covers both, so ternctl compares group state too; a topic
    //  without groups keeps its log digest.
    digest = groups ? tern_partition_hash(&groups, sizeof groups, log) : log;
    char hex[24];
    snprintf(hex, sizeof hex, "%016" PRIx64, groups);
    tern_json_key_str(json, "groups", hex);
    snprintf(hex, sizeof hex, "%016" PRIx64, log);
    tern_json_key_str(json, "log", hex);
    snprintf(hex, sizeof hex, "%016" PRIx64, digest);
    tern_json_key_str(json, "topic", topic);
    tern_json_key_u64(json, "last_seq", info.last_seq);
    tern_json_key_u64(json, "upto", upto);
    tern_json_key_u64(json, "dedup_since", since / 1000000ull);
    tern_json_key_str(json, "digest", hex);
    tern_json_raw(json, "}");
    return TERN_OK;
}

static void s_reply_verify(c_conn_t *self, const c_session_t *session, const tern_frame_t *frame) {
    uint64_t partition;
    if (!s_arg_u64(self, session, frame, "partition", tern_cluster_partitions(self->args->cluster),
                   &partition)) {
        return;
    }
    char reason[TERN_REASON_MAX + 1];
    tern_json_t json;
    tern_json_init(&json);
    tern_err_t rc = tern_store_read_begin(self->reader);
    if (rc == TERN_OK) {
        rc = s_verify(self, frame, (uint32_t)partition, &json, reason, sizeof reason);
    } else {
        snprintf(reason, sizeof reason, "cannot read the store");
    }
    tern_store_read_end(self->reader);
    if (rc == TERN_OK) {
        c_send_reply(self, session->rid, session->rid_size, frame->req_id, &json);
    } else {
        c_send_error(self, session->rid, session->rid_size, frame->req_id, rc, reason);
    }
    tern_json_free(&json);
}

void c_cluster_admin(c_conn_t *self, c_session_t *session, const tern_frame_t *frame,
                     tern_admin_op_t op) {
    if (!self->args->cluster) {
        c_send_error(self, session->rid, session->rid_size, frame->req_id, TERN_ESTATE,
                     "not a cluster (cluster/etcd is not set)");
    } else if (op == TERN_ADMIN_CLUSTER) {
        s_reply_cluster(self, session, frame->req_id);
    } else if (op == TERN_ADMIN_CLUSTER_HANDOVER) {
        s_reply_handover(self, session, frame);
    } else {
        s_reply_verify(self, session, frame);
    }
}

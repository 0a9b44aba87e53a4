/*  ternctl_cluster.c - ternctl against a clustered DC: `ternctl cluster`
    (nodes, partitions, verify, handover).

    A clustered node answers the admin op `cluster` with its view: the nodes
    (endpoint, up or down) and the partition map (leader of each
    partition); a single node answers TERN_ESTATE ("not a cluster"). The
    other commands need nothing from here: libtern sends an op about one
    topic to the leader of its partition and gathers `topics` and `trace`
    from every node (tern.h, tern_admin). Here:
    - `cluster partitions` takes each partition's position from its leader;
    - `cluster verify` asks each replica of each partition for its topics
      (cluster.verify) and then for a digest of each topic up to the seq all
      replicas hold (its log and its groups' state), and compares them; a
      difference is asked again a few times first, since group state follows
      the log asynchronously.
    Each node is asked through one client (s_nodes_t), reused for all its
    questions.
*/
#include "tern_partition.h"
#include "ternctl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define S_NODES_MAX 64 //  nodes of one cluster ternctl talks to

// ---------------------------------------------------------------------------
//  Asking nodes

//  One client per node, made at its first question.
typedef struct {
    const ternctl_args_t *args;         //  borrowed: timeout, CURVE
    size_t count;                       //  entries used
    uint64_t id[S_NODES_MAX];           //  node id
    char endpoint[S_NODES_MAX][256];    //  its client endpoint
    tern_client_t *client[S_NODES_MAX]; //  its client, NULL until asked
    int64_t timeout_ms;                 //  per question
} s_nodes_t;

static void s_nodes_destroy(s_nodes_t *nodes) {
    for (size_t i = 0; i < nodes->count; i++) {
        tern_client_destroy(&nodes->client[i]);
    }
    nodes->count = 0;
}

//  Asks OP with KV of ENDPOINT's client CLIENT (made at the first call) and
//  parses the reply into *DOC. Returns the error code (reason in
//  tern_last_reason()); TERN_EMALFORMED when the reply is not JSON.
static int s_ask(const ternctl_args_t *args, int64_t timeout_ms, const char *endpoint,
                 tern_client_t **client, const char *op, const tern_header_t *kv, size_t count,
                 tern_json_value_t **doc) {
    *doc = NULL;
    if (!*client) {
        ternctl_args_t at = *args;
        at.server = endpoint;
        *client = ternctl_client(&at, (int)timeout_ms, NULL, 0);
        if (!*client) {
            return TERN_EINVAL;
        }
    }
    char *reply = NULL;
    int rc = tern_admin(*client, op, kv, count, &reply, (int)(timeout_ms > 0 ? timeout_ms : 1));
    if (rc != TERN_OK) {
        return rc;
    }
    *doc = tern_json_parse(reply, strlen(reply));
    free(reply);
    return *doc ? TERN_OK : TERN_EMALFORMED;
}

//  Node ID's entry in NODES, or -1.
static int s_node_at(const s_nodes_t *nodes, uint64_t id) {
    for (size_t i = 0; i < nodes->count; i++) {
        if (nodes->id[i] == id) {
            return (int)i;
        }
    }
    return -1;
}

//  Asks node ID (an entry of NODES) OP; 1 with a message on stderr when it
//  cannot answer.
static int s_ask_node(s_nodes_t *nodes, uint64_t id, const char *op, const tern_header_t *kv,
                      size_t count, tern_json_value_t **doc) {
    int i = s_node_at(nodes, id);
    if (i < 0) {
        fprintf(stderr, "ternctl: %s: node %llu is not in the cluster view\n", op,
                (unsigned long long)id);
        return 1;
    }
    int rc = s_ask(nodes->args, nodes->timeout_ms, nodes->endpoint[i], &nodes->client[i], op, kv,
                   count, doc);
    if (rc != TERN_OK) {
        const char *reason = tern_last_reason();
        fprintf(stderr, "ternctl: %s on node %llu (%s): %s (%s)\n", op, (unsigned long long)id,
                nodes->endpoint[i], reason && reason[0] ? reason : tern_strerror(rc),
                tern_errname(rc));
        return 1;
    }
    return 0;
}

//  The up nodes of VIEW into NODES.
static void s_nodes_from(s_nodes_t *nodes, const ternctl_args_t *args,
                         const tern_json_value_t *view) {
    memset(nodes, 0, sizeof *nodes);
    nodes->args = args;
    nodes->timeout_ms = ternctl_timeout_ms(args, 5000);
    const tern_json_value_t *list = tern_json_get(view, "nodes");
    for (size_t i = 0; list && list->kind == TERN_JSON_ARRAY && i < list->count; i++) {
        const tern_json_value_t *node = list->items[i];
        const tern_json_value_t *state = tern_json_get(node, "state");
        const tern_json_value_t *endpoint = tern_json_get(node, "endpoint");
        if (nodes->count == S_NODES_MAX || !state || strcmp(state->text, "up") != 0 || !endpoint ||
            endpoint->kind != TERN_JSON_STRING) {
            continue;
        }
        nodes->id[nodes->count] = tern_json_get_u64(node, "node_id");
        snprintf(nodes->endpoint[nodes->count], sizeof nodes->endpoint[0], "%s", endpoint->text);
        nodes->count++;
    }
}

// ---------------------------------------------------------------------------
//  The view

//  The entry of partition P in VIEW's map, or NULL.
static const tern_json_value_t *s_partition(const tern_json_value_t *view, uint64_t p) {
    const tern_json_value_t *map = tern_json_get(view, "map");
    for (size_t i = 0; map && map->kind == TERN_JSON_ARRAY && i < map->count; i++) {
        if (tern_json_get_u64(map->items[i], "partition") == p) {
            return map->items[i];
        }
    }
    return NULL;
}

//  True when PARTITION's entry names a leader; its id into *ID.
static bool s_leader_of(const tern_json_value_t *partition, uint64_t *id) {
    const tern_json_value_t *leader = partition ? tern_json_get(partition, "leader") : NULL;
    if (!leader || leader->kind != TERN_JSON_NUMBER) {
        return false;
    }
    *id = tern_json_get_u64(partition, "leader");
    return true;
}

//  The partition of TOPIC in VIEW's cluster.
static uint64_t s_partition_of(const tern_json_value_t *view, const char *topic) {
    return tern_partition_of(topic, strlen(topic), (uint32_t)tern_json_get_u64(view, "partitions"));
}

//  Prints the array text ROWS (built by the caller) as --json lines or a
//  table with COLUMNS, EMPTY when it has no rows. Returns 0 or 1.
static int s_print_rows(const ternctl_args_t *args, tern_json_t *rows, const char *const *columns,
                        const char *empty) {
    tern_json_value_t *doc = tern_json_parse(rows->data, rows->len);
    tern_json_free(rows);
    if (!doc) {
        fprintf(stderr, "ternctl: internal error: cannot parse the merged rows\n");
        return 1;
    }
    if (args->json) {
        ternctl_print_json(doc);
    } else if (doc->count == 0 && empty) {
        printf("%s\n", empty);
        fflush(stdout);
    } else {
        ternctl_print_table(doc, columns);
    }
    tern_json_value_destroy(&doc);
    return 0;
}

// ---------------------------------------------------------------------------
//  ternctl cluster

//  The view of the node asked, or 1 with the reason (a single node: "not a
//  cluster (cluster/etcd is not set)").
static int s_view_or_fail(const ternctl_args_t *args, tern_json_value_t **view) {
    return ternctl_admin_call(args, "cluster", NULL, 0, NULL, view);
}

static const char *const s_node_cols[] = {"node_id",    "dc",        "endpoint",   "state",
                                          "controller", "leader_of", "replica_of", NULL};
//  The same and REPL, when a node has a cross-DC replication endpoint.
static const char *const s_node_repl_cols[] = {
    "node_id", "dc", "endpoint", "state", "controller", "leader_of", "replica_of", "repl", NULL};

static int s_cmd_nodes(const ternctl_args_t *args, const tern_json_value_t *view) {
    const tern_json_value_t *nodes = tern_json_get(view, "nodes");
    const char *const *cols = s_node_cols;
    for (size_t i = 0; nodes && nodes->kind == TERN_JSON_ARRAY && i < nodes->count; i++) {
        if (tern_json_get(nodes->items[i], "repl")) {
            cols = s_node_repl_cols;
        }
    }
    tern_json_t rows;
    tern_json_init(&rows);
    tern_json_raw(&rows, "[");
    for (size_t i = 0; nodes && nodes->kind == TERN_JSON_ARRAY && i < nodes->count; i++) {
        const tern_json_value_t *node = nodes->items[i];
        tern_json_sep(&rows);
        tern_json_raw(&rows, "{");
        for (size_t c = 0; cols[c]; c++) {
            const tern_json_value_t *v = tern_json_get(node, cols[c]);
            tern_json_key(&rows, cols[c]);
            if (v) {
                tern_json_write_value(&rows, v);
            } else {
                tern_json_raw(&rows, "null");
            }
        }
        tern_json_raw(&rows, "}");
    }
    tern_json_raw(&rows, "]");
    return s_print_rows(args, &rows, cols, "no nodes");
}

static const char *const s_partition_cols[] = {"partition", "leader",   "epoch", "replicas",
                                               "isr",       "position", NULL};

//  One row of `cluster partitions`: VIEW's entry P with the position its
//  leader reported (LEADER_VIEW: the leader's own view, or NULL).
static void s_partition_row(tern_json_t *rows, const tern_json_value_t *entry,
                            const tern_json_value_t *leader_view) {
    const tern_json_value_t *own =
        leader_view ? s_partition(leader_view, tern_json_get_u64(entry, "partition")) : NULL;
    tern_json_sep(rows);
    tern_json_raw(rows, "{");
    for (size_t c = 0; s_partition_cols[c]; c++) {
        const char *key = s_partition_cols[c];
        const tern_json_value_t *v =
            tern_json_get(strcmp(key, "position") == 0 && own ? own : entry, key);
        tern_json_key(rows, key);
        if (v) {
            tern_json_write_value(rows, v);
        } else {
            tern_json_raw(rows, "null");
        }
    }
    tern_json_raw(rows, "}");
}

static int s_cmd_partitions(const ternctl_args_t *args, const tern_json_value_t *view,
                            const char *topic) {
    s_nodes_t nodes;
    s_nodes_from(&nodes, args, view);
    tern_json_value_t *views[S_NODES_MAX] = {0};
    //  Positions: each node knows those of the partitions it leads.
    for (size_t n = 0; n < nodes.count; n++) {
        if (s_ask(args, nodes.timeout_ms, nodes.endpoint[n], &nodes.client[n], "cluster", NULL, 0,
                  &views[n]) != TERN_OK) {
            fprintf(stderr,
                    "ternctl: cluster partitions: node %llu did not answer: positions of "
                    "its partitions shown as 0\n",
                    (unsigned long long)nodes.id[n]);
        }
    }
    const tern_json_value_t *map = tern_json_get(view, "map");
    tern_json_t rows;
    tern_json_init(&rows);
    tern_json_raw(&rows, "[");
    uint64_t only = topic ? s_partition_of(view, topic) : 0;
    for (size_t i = 0; map && map->kind == TERN_JSON_ARRAY && i < map->count; i++) {
        const tern_json_value_t *entry = map->items[i];
        uint64_t leader;
        if (topic && tern_json_get_u64(entry, "partition") != only) {
            continue;
        }
        int at = s_leader_of(entry, &leader) ? s_node_at(&nodes, leader) : -1;
        s_partition_row(&rows, entry, at >= 0 ? views[at] : NULL);
    }
    tern_json_raw(&rows, "]");
    for (size_t n = 0; n < S_NODES_MAX; n++) {
        tern_json_value_destroy(&views[n]);
    }
    s_nodes_destroy(&nodes);
    return s_print_rows(args, &rows, s_partition_cols, "no partitions");
}

static int s_cmd_handover(const ternctl_args_t *args, const char *partition, const char *to) {
    uint64_t p, node;
    if (!ternctl_parse_u64(partition, &p)) {
        return ternctl_usage("invalid PARTITION '%s' (a partition number)", partition);
    }
    if (!to || !ternctl_parse_u64(to, &node)) {
        return ternctl_usage("cluster handover needs --to NODE_ID%s", "");
    }
    tern_header_t kv[2] = {{"partition", partition}, {"to", to}};
    return ternctl_admin_print(args, "cluster.handover", kv, 2, NULL);
}

//  TOPIC's entry in a cluster.verify reply DOC (its topics list), or NULL
//  when the replica does not hold it.
static const tern_json_value_t *s_entry(const tern_json_value_t *doc, const char *topic) {
    const tern_json_value_t *topics = doc ? tern_json_get(doc, "topics") : NULL;
    for (size_t i = 0; topics && topics->kind == TERN_JSON_ARRAY && i < topics->count; i++) {
        const tern_json_value_t *name = tern_json_get(topics->items[i], "topic");
        if (name && strcmp(name->text, topic) == 0) {
            return topics->items[i];
        }
    }
    return NULL;
}

static bool s_holds(const tern_json_value_t *doc, const char *topic) {
    return s_entry(doc, topic) != NULL;
}

//  last_seq of TOPIC on the replica that answered DOC; 0 without it.
static uint64_t s_last_seq(const tern_json_value_t *doc, const char *topic) {
    const tern_json_value_t *entry = s_entry(doc, topic);
    return entry ? tern_json_get_u64(entry, "last_seq") : 0;
}

//  Asks the replicas IDS[0..COUNT) for the digest of one topic (KV: its
//  partition, name and upto) and compares them: its log and its groups
//  (cluster.verify chains both). Group state follows the log asynchronously
//  (docs/cluster.md, "Group state"), so a difference is asked again a few
//  times, S_VERIFY_PAUSE_MS apart, before it counts: one that lasts is
//  real. Returns 1 when they agree, 0 when not, -1 when a replica did not
//  answer.
#define S_VERIFY_TRIES    5
#define S_VERIFY_PAUSE_MS 200
static int s_same_digest(s_nodes_t *nodes, const uint64_t *ids, size_t count,
                         const tern_header_t *kv) {
    for (int attempt = 0;; attempt++) {
        char first[24] = "";
        bool same = true;
        for (size_t e = 0; e < count; e++) {
            tern_json_value_t *doc = NULL;
            if (s_ask_node(nodes, ids[e], "cluster.verify", kv, 4, &doc)) {
                return -1;
            }
            const tern_json_value_t *digest = tern_json_get(doc, "digest");
            const char *text = digest && digest->kind == TERN_JSON_STRING ? digest->text : "";
            same &= e == 0 || strcmp(first, text) == 0;
            if (e == 0) {
                snprintf(first, sizeof first, "%s", text);
            }
            tern_json_value_destroy(&doc);
        }
        if (same || attempt + 1 == S_VERIFY_TRIES) {
            return same ? 1 : 0;
        }
        usleep(S_VERIFY_PAUSE_MS * 1000);
    }
}

//  Compares the replicas IDS[0..COUNT) (their topic lists in LISTS) of
//  partition P topic by topic, each up to the seq every replica holds.
//  Writes the topics that differ into DIFFERS (a JSON array being built);
//  returns how many topics were compared, or -1 when a replica did not
//  answer.
static int s_verify_topics(s_nodes_t *nodes, const char *p, const uint64_t *ids,
                           tern_json_value_t **lists, size_t count, tern_json_t *differs) {
    int compared = 0;
    for (size_t r = 0; r < count; r++) {
        const tern_json_value_t *topics = tern_json_get(lists[r], "topics");
        for (size_t t = 0; topics && topics->kind == TERN_JSON_ARRAY && t < topics->count; t++) {
            const tern_json_value_t *name = tern_json_get(topics->items[t], "topic");
            bool seen = false; //  an earlier list has it: handled there
            for (size_t e = 0; e < r && name; e++) {
                seen |= s_holds(lists[e], name->text);
            }
            uint64_t upto = UINT64_MAX;
            for (size_t e = 0; e < count && name; e++) {
                uint64_t last = s_last_seq(lists[e], name->text);
                upto = last < upto ? last : upto;
            }
            if (!name || seen || upto == 0) {
                continue; //  compared already, or some replica has none of it yet
            }
            //  One wall-clock time for every replica: each compares the
            //  dedup entries of the messages stored in the half window
            //  before it (cluster.verify), the same messages on all.
            struct timespec now;
            clock_gettime(CLOCK_REALTIME, &now);
            char number[24], at[24];
            snprintf(number, sizeof number, "%llu", (unsigned long long)upto);
            snprintf(at, sizeof at, "%lld",
                     (long long)now.tv_sec * 1000 + (long long)(now.tv_nsec / 1000000));
            tern_header_t kv[4] = {
                {"partition", p}, {"topic", name->text}, {"upto", number}, {"at", at}};
            int same = s_same_digest(nodes, ids, count, kv);
            if (same < 0) {
                return -1;
            }
            compared++;
            if (!same) {
                tern_json_sep(differs);
                tern_json_str(differs, name->text);
            }
        }
    }
    return compared;
}

//  One row of `cluster verify` for map ENTRY into ROWS; *SAME false when
//  the replicas differ. Returns 0, or 1 when a replica could not answer.
static int s_verify_partition(s_nodes_t *nodes, const tern_json_value_t *entry, tern_json_t *rows,
                              bool *same) {
    uint64_t ids[S_NODES_MAX], leader = UINT64_MAX;
    tern_json_value_t *lists[S_NODES_MAX] = {0};
    size_t count = 0;
    char p[24];
    snprintf(p, sizeof p, "%llu", (unsigned long long)tern_json_get_u64(entry, "partition"));
    tern_header_t kv[1] = {{"partition", p}};
    const tern_json_value_t *replicas = tern_json_get(entry, "replicas");
    s_leader_of(entry, &leader);
    int rc = 0;
    uint64_t position = 0;
    for (size_t i = 0; replicas && i < replicas->count && count < S_NODES_MAX && rc == 0; i++) {
        uint64_t id;
        if (!ternctl_parse_u64(replicas->items[i]->text, &id) || s_node_at(nodes, id) < 0) {
            fprintf(stderr,
                    "ternctl: cluster verify: partition %s: replica %s is down: not "
                    "compared\n",
                    p, replicas->items[i]->text);
            continue;
        }
        rc = s_ask_node(nodes, id, "cluster.verify", kv, 1, &lists[count]);
        position = id == leader ? tern_json_get_u64(lists[count], "position") : position;
        ids[count++] = id;
    }
    tern_json_t differs;
    tern_json_init(&differs);
    tern_json_raw(&differs, "[");
    int compared = rc == 0 ? s_verify_topics(nodes, p, ids, lists, count, &differs) : -1;
    tern_json_raw(&differs, "]");
    *same = compared >= 0 && differs.len == 2;
    tern_json_sep(rows);
    tern_json_raw(rows, "{");
    tern_json_key(rows, "partition");
    tern_json_raw(rows, p);
    tern_json_key_bool(rows, "identical", *same);
    tern_json_key(rows, "replicas");
    tern_json_raw(rows, "[");
    for (size_t i = 0; i < count; i++) {
        char id[24];
        snprintf(id, sizeof id, "%s%llu", i ? "," : "", (unsigned long long)ids[i]);
        tern_json_raw(rows, id);
    }
    tern_json_raw(rows, "]");
    tern_json_key_u64(rows, "position", position);
    tern_json_key_u64(rows, "topics", compared > 0 ? (uint64_t)compared : 0);
    tern_json_key(rows, "differs");
    tern_json_rawn(rows, differs.data, differs.len);
    tern_json_raw(rows, "}");
    tern_json_free(&differs);
    for (size_t i = 0; i < count; i++) {
        tern_json_value_destroy(&lists[i]);
    }
    return compared < 0 ? 1 : 0;
}

static const char *const s_verify_cols[] = {"partition", "identical", "replicas", "position",
                                            "topics",    "differs",   NULL};

static int s_cmd_verify(const ternctl_args_t *args, const tern_json_value_t *view) {
    s_nodes_t nodes;
    s_nodes_from(&nodes, args, view);
    const tern_json_value_t *map = tern_json_get(view, "map");
    tern_json_t rows;
    tern_json_init(&rows);
    tern_json_raw(&rows, "[");
    bool all_same = true;
    int rc = 0;
    for (size_t i = 0; map && map->kind == TERN_JSON_ARRAY && i < map->count; i++) {
        bool same = true;
        rc |= s_verify_partition(&nodes, map->items[i], &rows, &same);
        all_same &= same;
    }
    tern_json_raw(&rows, "]");
    s_nodes_destroy(&nodes);
    int printed = s_print_rows(args, &rows, s_verify_cols, "no partitions");
    if (!all_same) {
        fprintf(stderr, "ternctl: cluster verify: replicas differ (see identical=false)\n");
    }
    return printed || rc || !all_same ? 1 : 0;
}

const ternctl_opt_t ternctl_cluster_opts[] = {{"topic", true}, {"to", true}, {NULL, false}};

int ternctl_cmd_cluster(const ternctl_args_t *args) {
    const char *sub = args->positional_count ? args->positional[0] : "";
    const char *topic = ternctl_value(args, ternctl_cluster_opts, "topic");
    const char *to = ternctl_value(args, ternctl_cluster_opts, "to");
    bool handover = strcmp(sub, "handover") == 0;
    if (sub[0] && !handover && strcmp(sub, "partitions") != 0 && strcmp(sub, "verify") != 0) {
        return ternctl_usage("unknown cluster subcommand '%s'", sub);
    }
    if (args->positional_count > (handover ? 2u : 1u) || (handover && args->positional_count < 2)) {
        return ternctl_usage(handover ? "cluster handover needs exactly one PARTITION%s"
                                      : "cluster %s takes no more arguments",
                             handover ? "" : sub);
    }
    if (topic && strcmp(sub, "partitions") != 0) {
        return ternctl_usage("--topic applies only to 'cluster partitions'%s", "");
    }
    if (to && !handover) {
        return ternctl_usage("--to applies only to 'cluster handover'%s", "");
    }
    if (handover) {
        return s_cmd_handover(args, args->positional[1], to);
    }
    tern_json_value_t *view = NULL;
    int rc = s_view_or_fail(args, &view);
    if (rc) {
        return rc;
    }
    rc = !sub[0]                          ? s_cmd_nodes(args, view)
         : strcmp(sub, "partitions") == 0 ? s_cmd_partitions(args, view, topic)
                                          : s_cmd_verify(args, view);
    tern_json_value_destroy(&view);
    return rc;
}

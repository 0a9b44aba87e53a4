/*  tern_client_admin.c - admin requests (tern_admin): ADMIN out, REPLY or ERROR back; in a cluster,
   to the right nodes.

    The caller's thread encodes the ADMIN frame (operation name and
    arguments as metadata) and waits; the I/O thread keeps the request on
    its pending list, sends it in the current session, and completes the
    waiter with the REPLY's JSON, an ERROR, a first-contact refusal,
    TERN_ECLOSED at shutdown, or a timeout once the caller's deadline has
    passed (docs/client.md, "Administration"). A read (s_ops) lost with its
    session is sent again in the next one; a write is never sent twice: it
    may have run, so it fails with TERN_ETIMEOUT, "outcome unknown".

    In a cluster (the probe of tern_client_cluster.c found a map), where a
    request goes depends on its operation (s_scopes, docs/client.md
    "Administration in a cluster"):
    - about one topic (topic.*, groups, group.*, dlq.*, msg.*, audit): to
      the leader of the topic's partition, through that node's session.
      Only the leader takes writes (a follower answers TERN_ENOTLEADER) and
      only it holds the live state of the topic's groups. An ERROR
      TERN_ENOTLEADER naming another leader is followed at once; one that
      names none, a node that does not come up or refuses the connection,
      or a partition without a leader waits for a refreshed map with the
      backoff of the map refresh (100 ms .. 1 s, jittered) and asks again,
      at most S_TRIES_MAX times and never past the caller's deadline.
      Asking again is safe only for what never ran: conn answers
      TERN_ENOTLEADER before anything executes (after a commit crepl
      answers TERN_ETIMEOUT, outcome unknown), and an unreachable node was
      never sent the request. A node session lost while a request waits
      there fails it (OP_ABANDON): a read is asked again at the new leader,
      a write returns TERN_ETIMEOUT, outcome unknown. Any other refusal of
      the node's session (TERN_EDENIED, ...) is returned as it is;
    - `topics` and `trace`: every up node is asked and the answers merged,
      each topic (or the traced message) taken from the leader of its
      partition, a follower's copy only when the leader did not answer.
      A node whose session is down gets 2 x connect_timeout_ms to come up;
      one lost while it is asked ends its wait at once (OP_ABANDON);
    - every other operation (status, peers*, cluster*, unknown names): the
      seed session, as on a single node, so `cluster.verify` and `status`
      still reach the node the application chose.
*/
#include "tern_client_int.h"
#include "tern_partition.h"

//  ---------------------------------------------------------------------------
//  The caller's side

//  Encodes ARGS (COUNT pairs) into tl_meta as FRAME's metadata.
static tern_err_t s_admin_args(const tern_header_t *args, size_t count, tern_frame_t *frame) {
    tern_kv_t kv[TERN_META_MAX_ENTRIES];
    for (size_t i = 0; i < count; i++) {
        if (!args[i].key || !args[i].value) {
            return TERN_EINVAL;
        }
        kv[i] = (tern_kv_t){args[i].key, strlen(args[i].key), args[i].value, strlen(args[i].value)};
    }
    size_t meta_len;
    tern_err_t rc = tern_meta_encode(kv, count, tl_meta, sizeof tl_meta, &meta_len);
    if (rc == TERN_OK) {
        frame->meta = tl_meta;
        frame->meta_size = meta_len;
        frame->meta_count = (uint32_t)count;
        frame->fields |= TERN_F_META;
    }
    return rc;
}

static void s_admin_free(cl_admin_t *admin) {
    free(admin->hdr);
    free(admin);
}

//  A new request for operation OP_NAME with ARGS, its header encoded, with
//  a waiter and a deadline TIMEOUT_MS (< 0: none) from now, in *ADMIN_P;
//  ONCE: never to be sent in a second session.
static tern_err_t s_admin_new(tern_client_t *self, const char *op_name, const tern_header_t *args,
                              size_t count, bool once, int timeout_ms, cl_admin_t **admin_p) {
    tern_frame_t frame;
    tern_frame_init(&frame, TERN_CMD_ADMIN);
    frame.req_id = atomic_fetch_add(&self->next_req, 1);
    snprintf(frame.name, sizeof frame.name, "%s", op_name);
    frame.fields |= TERN_F_NAME;
    tern_err_t rc = count ? s_admin_args(args, count, &frame) : TERN_OK;
    size_t len = 0;
    if (rc == TERN_OK) {
        rc = tern_frame_encode(&frame, tl_header, sizeof tl_header, &len);
    }
    if (rc != TERN_OK) {
        return rc;
    }
    cl_admin_t *admin = tern_alloc(sizeof *admin);
    admin->op.type = OP_ADMIN;
    admin->req_id = frame.req_id;
    admin->hdr = tern_alloc(len);
    memcpy(admin->hdr, tl_header, len);
    admin->hdr_len = len;
    admin->once = once;
    admin->waiter = tern_alloc(sizeof *admin->waiter);
    admin->deadline = timeout_ms < 0 ? INT64_MAX : s_now_ms() + timeout_ms;
    *admin_p = admin;
    return TERN_OK;
}

//  One admin request as the caller made it.
typedef struct {
    const char *op;            //  operation name
    const tern_header_t *args; //  its arguments
    size_t count;              //  how many
    const char *topic;         //  the `topic` argument, or NULL
    bool once;                 //  a write: never sent twice
    int64_t deadline;          //  give up then (ms, monotonic); INT64_MAX: never
} s_req_t;

//  Milliseconds left until DEADLINE as a timeout (-1: none), at least 1.
static int s_left(int64_t deadline) {
    if (deadline == INT64_MAX) {
        return -1;
    }
    int64_t left = deadline - s_now_ms();
    return left < 1 ? 1 : left > INT32_MAX ? INT32_MAX : (int)left;
}

//  Queues REQ on SELF's own session, to be answered within TIMEOUT_MS
//  (< 0: no limit); its waiter into *WAITER_P.
static tern_err_t s_admin_push(tern_client_t *self, const s_req_t *req, int timeout_ms,
                               cl_waiter_t **waiter_p) {
    cl_admin_t *admin = NULL;
    tern_err_t rc =
        s_admin_new(self, req->op, req->args, req->count, req->once, timeout_ms, &admin);
    if (rc != TERN_OK) {
        return rc;
    }
    cl_waiter_t *waiter = admin->waiter;
    pthread_mutex_lock(&self->mutex);
    rc = cl_unavailable(self);
    if (rc == TERN_OK) {
        s_push_op(self, &admin->op); //  the I/O thread owns it now
        *waiter_p = waiter;
    }
    pthread_mutex_unlock(&self->mutex);
    if (rc != TERN_OK) {
        s_admin_free(admin);
        free(waiter);
    }
    return rc;
}

//  Waits up to TIMEOUT_MS (< 0: no limit) for WAITER (of s_admin_push on
//  SELF) and takes its answer; WAITER is gone afterwards.
static tern_err_t s_admin_wait(tern_client_t *self, cl_waiter_t *waiter, int timeout_ms,
                               char **json_out) {
    struct timespec deadline = cl_abs_deadline(timeout_ms < 0 ? 0 : timeout_ms);
    tern_err_t rc;
    pthread_mutex_lock(&self->mutex);
    if (cl_wait_done(self, waiter, timeout_ms, &deadline)) {
        rc = waiter->code;
        s_set_reason(waiter->reason);
        *json_out = waiter->json;
        free(waiter);
    } else {
        waiter->abandoned = true; //  the I/O thread frees it
        rc = cl_timeout_code(self);
    }
    pthread_mutex_unlock(&self->mutex);
    return rc;
}

//  Runs REQ through SELF's own session and waits for its answer.
static tern_err_t s_admin_one(tern_client_t *self, const s_req_t *req, char **json_out) {
    cl_waiter_t *waiter = NULL;
    tern_err_t rc = s_admin_push(self, req, s_left(req->deadline), &waiter);
    return rc == TERN_OK ? s_admin_wait(self, waiter, s_left(req->deadline), json_out) : rc;
}

//  ---------------------------------------------------------------------------
//  In a cluster: where each operation goes

typedef enum {
    S_AT_SEED,   //  the seed session (status, peers*, cluster*, any other)
    S_AT_LEADER, //  the leader of its topic's partition
    S_GATHER     //  every up node, answers merged
} s_scope_t;

//  The operations libtern knows: where each runs and whether running it
//  twice differs from running it once (the broker's table is
//  broker/tern_admin.c; libtern cannot link it). A name not here runs on
//  the seed session and counts as a write.
static const struct {
    const char *op;  //  operation name
    s_scope_t scope; //  where it runs
    bool write;      //  not idempotent: never sent twice
} s_ops[] = {
    {"topics", S_GATHER, false},         {"trace", S_GATHER, false},
    {"topic.info", S_AT_LEADER, false},  {"topic.create", S_AT_LEADER, true},
    {"topic.edit", S_AT_LEADER, true},   {"topic.delete", S_AT_LEADER, true},
    {"topic.purge", S_AT_LEADER, true},  {"groups", S_AT_LEADER, false},
    {"group.delete", S_AT_LEADER, true}, {"group.reset", S_AT_LEADER, true},
    {"group.seek", S_AT_LEADER, true},   {"dlq.list", S_AT_LEADER, false},
    {"dlq.get", S_AT_LEADER, false},     {"dlq.replay", S_AT_LEADER, true},
    {"dlq.purge", S_AT_LEADER, true},    {"msg.get", S_AT_LEADER, false},
    {"msg.view", S_AT_LEADER, false},    {"audit", S_AT_LEADER, false},
    {"status", S_AT_SEED, false},        {"peers", S_AT_SEED, false},
    {"cluster", S_AT_SEED, false},       {"cluster.verify", S_AT_SEED, false},
};

//  Where REQ runs; sets REQ->once.
static s_scope_t s_scope(s_req_t *req) {
    req->once = true;
    for (size_t i = 0; i < sizeof s_ops / sizeof s_ops[0]; i++) {
        if (strcmp(s_ops[i].op, req->op) == 0) {
            req->once = s_ops[i].write;
            //  Without a topic the broker refuses it (TERN_ETOPIC): anywhere.
            return s_ops[i].scope == S_AT_LEADER && !req->topic ? S_AT_SEED : s_ops[i].scope;
        }
    }
    return S_AT_SEED;
}

#define S_TRIES_MAX      20               /* a routed request asks this many times at most */
#define S_UNREACHABLE    ((tern_err_t)-1) /* a node session did not come up */
#define S_BACKOFF_MIN_MS 100              /* first wait for a fresh map */
#define S_BACKOFF_MAX_MS 1000             /* longest wait for a fresh map */

//  Runs REQ on node session NODE once it is up, waiting at most twice the
//  connect timeout for that: S_UNREACHABLE when it does not come up in
//  time, else the session's refusal as it is (TERN_ECONNREFUSED,
//  TERN_EDENIED, ...; its reason set).
static tern_err_t s_node_ask(tern_client_t *node, const s_req_t *req, char **json_out) {
    int wait = 2 * (int)node->options.connect_timeout_ms;
    int left = s_left(req->deadline);
    tern_err_t rc = tern_client_wait_connected(node, left >= 0 && left < wait ? left : wait);
    if (rc != TERN_OK) {
        return rc == TERN_ETIMEOUT ? S_UNREACHABLE : rc;
    }
    return s_admin_one(node, req, json_out);
}

//  True when RC (its reason in tl_reason) for REQ means it did not run, or
//  may run again without harm: worth asking the leader again.
static bool s_retry(const s_req_t *req, tern_err_t rc) {
    if (rc == TERN_ENOTLEADER || rc == TERN_ECONNREFUSED || rc == S_UNREACHABLE) {
        return true; //  refused before anything ran, or never sent
    }
    //  Its node session was lost while it waited there (OP_ABANDON).
    return rc == TERN_ETIMEOUT && !req->once && strcmp(tl_reason, CL_ADMIN_UNKNOWN) == 0;
}

//  Applies the hint of the ERROR TERN_ENOTLEADER just received (its reason
//  in tl_reason) for partition P, asked of node ASKED: true when it names
//  another node as the leader, to be asked at once.
static bool s_follow_hint(tern_client_t *self, uint32_t p, int64_t asked) {
    uint32_t partition;
    int64_t leader;
    char endpoint[CL_MAP_ENDPOINT_MAX + 1];
    if (!cl_map_hint(tl_reason, &partition, &leader, endpoint, sizeof endpoint) || partition != p ||
        leader == asked || leader == CL_NO_LEADER) {
        return false;
    }
    pthread_mutex_lock(&self->mutex);
    cl_map_t *map = cl_cluster_map(self);
    bool moved = map && cl_map_apply_hint(map, partition, leader, endpoint);
    pthread_mutex_unlock(&self->mutex);
    return moved;
}

//  Asks for a fresh map and waits out ATTEMPT's backoff. False when the
//  deadline would pass first, or the client closes.
static bool s_backoff(tern_client_t *self, uint32_t attempt, uint64_t *rng, int64_t deadline) {
    uint32_t delay = tern_backoff_delay(attempt, S_BACKOFF_MIN_MS, S_BACKOFF_MAX_MS, rng);
    if (deadline != INT64_MAX && s_now_ms() + delay >= deadline) {
        return false;
    }
    struct timespec until = cl_abs_deadline((int)delay);
    pthread_mutex_lock(&self->mutex);
    cl_cluster_refresh_soon(self);
    while (!self->closing && cl_wait(&self->cond, &self->mutex, (int)delay, &until)) {
        //  cond is broadcast for many reasons: wait the whole delay
    }
    bool closing = self->closing;
    pthread_mutex_unlock(&self->mutex);
    return !closing;
}

//  Runs REQ at the leader of its topic's partition, following leader
//  changes (see the top of the file).
static tern_err_t s_admin_leader(tern_client_t *self, const s_req_t *req, char **json_out) {
    uint64_t rng = tern_rand_seed();
    tern_err_t rc = TERN_ENOTLEADER;
    char reason[TERN_REASON_MAX + 1] = "";
    for (uint32_t attempt = 0; attempt < S_TRIES_MAX; attempt++) {
        pthread_mutex_lock(&self->mutex);
        cl_map_t *map = cl_cluster_map(self);
        uint32_t p = cl_map_partition(map, req->topic, strlen(req->topic));
        int64_t leader = cl_map_leader(map, p);
        tern_client_t *node =
            leader == CL_NO_LEADER ? NULL : cl_cluster_session(self, (uint32_t)leader);
        pthread_mutex_unlock(&self->mutex);
        rc = node ? s_node_ask(node, req, json_out) : S_UNREACHABLE;
        if (!s_retry(req, rc)) {
            return rc;
        }
        if (rc == S_UNREACHABLE || !tl_reason[0]) {
            snprintf(reason, sizeof reason, "partition %u has no reachable leader", (unsigned)p);
        } else if (rc == TERN_ECONNREFUSED) {
            snprintf(reason, sizeof reason, "partition %u's leader (node %lld): %.180s",
                     (unsigned)p, (long long)leader, tl_reason);
        } else {
            snprintf(reason, sizeof reason, "%s", tl_reason);
        }
        if (rc == TERN_ENOTLEADER && s_follow_hint(self, p, leader)) {
            continue;
        }
        if (!s_backoff(self, attempt, &rng, req->deadline)) {
            break;
        }
    }
    s_set_reason(reason);
    //  Out of tries or time: the last cause (a refused connection, a read
    //  lost with its session), else "no reachable leader".
    return rc == S_UNREACHABLE ? TERN_ENOTLEADER : rc;
}

//  One element of a node's answer to a gathered request.
typedef struct {
    char *topic;      //  its `topic`, owned
    const char *item; //  its JSON text, in its node's reply
    size_t len;       //  bytes of it
    bool from_leader; //  its node leads the topic's partition
    bool fallback;    //  that leader did not answer: a follower's copy will do
} s_row_t;

//  What a gathered request collects.
typedef struct {
    uint32_t partitions; //  of the cluster
    int64_t *leaders;    //  per partition, a copy of the map's, owned
    uint32_t node_id;    //  the node whose reply is being read
    bool *answered;      //  per partition: its leader answered, owned
    s_row_t *rows;       //  every element read so far, owned
    size_t count;        //  rows used
    size_t cap;          //  rows allocated
} s_gather_t;

static void s_gather_row(const char *item, size_t len, const char *topic, void *arg) {
    s_gather_t *g = arg;
    uint32_t p = tern_partition_of(topic, strlen(topic), g->partitions);
    if (g->count == g->cap) {
        g->cap = g->cap ? 2 * g->cap : 64;
        g->rows = tern_realloc(g->rows, g->cap * sizeof *g->rows);
    }
    g->rows[g->count++] = (s_row_t){tern_strdup(topic), item, len,
                                    g->leaders[p] == (int64_t)g->node_id, !g->answered[p]};
}

//  By topic; the leader's copy first.
static int s_row_cmp(const void *a, const void *b) {
    const s_row_t *x = a, *y = b;
    int c = strcmp(x->topic, y->topic);
    return c ? c : (int)y->from_leader - (int)x->from_leader;
}

//  The kept rows of G as the answer: an array (ARRAY), else the first kept
//  one; NULL when none is kept. Caller owns it.
static char *s_gather_reply(s_gather_t *g, bool array) {
    qsort(g->rows, g->count, sizeof *g->rows, s_row_cmp);
    size_t size = 3, n = 0;
    for (size_t i = 0; i < g->count; i++) {
        size += g->rows[i].len + 1;
    }
    char *out = tern_alloc(size);
    out[n++] = '[';
    for (size_t i = 0; i < g->count; i++) {
        const s_row_t *row = &g->rows[i];
        bool again = i > 0 && strcmp(row->topic, g->rows[i - 1].topic) == 0;
        if (again || (!row->from_leader && !row->fallback)) {
            continue; //  a topic's second copy, or a follower's while its leader answered
        }
        if (!array) {
            memcpy(out, row->item, row->len);
            out[row->len] = '\0';
            return out;
        }
        if (n > 1) {
            out[n++] = ',';
        }
        memcpy(out + n, row->item, row->len);
        n += row->len;
    }
    out[n++] = ']';
    out[n] = '\0';
    if (!array) {
        free(out);
        return NULL;
    }
    return out;
}

static void s_gather_free(s_gather_t *g, char **replies, size_t count) {
    for (size_t i = 0; i < g->count; i++) {
        free(g->rows[i].topic);
    }
    free(g->rows);
    free(g->leaders);
    free(g->answered);
    for (size_t i = 0; i < count; i++) {
        free(replies[i]);
    }
}

//  The up nodes of the map and their sessions into IDS and NODES, the
//  leaders into G. Returns how many nodes.
static size_t s_gather_nodes(tern_client_t *self, s_gather_t *g, uint32_t *ids,
                             tern_client_t **nodes) {
    size_t n = 0;
    pthread_mutex_lock(&self->mutex);
    cl_map_t *map = cl_cluster_map(self);
    g->partitions = map->partitions;
    g->leaders = tern_alloc(map->partitions * sizeof *g->leaders);
    memcpy(g->leaders, map->leader, map->partitions * sizeof *g->leaders);
    g->answered = tern_alloc(map->partitions * sizeof *g->answered);
    memset(g->answered, 0, map->partitions * sizeof *g->answered);
    for (size_t i = 0; i < map->node_count; i++) {
        uint32_t id = map->nodes[i].node_id;
        tern_client_t *node = map->nodes[i].up ? cl_cluster_session(self, id) : NULL;
        if (node) {
            ids[n] = id;
            nodes[n++] = node;
        }
    }
    pthread_mutex_unlock(&self->mutex);
    return n;
}

//  Runs REQ (topics, trace) on every up node and merges the answers (see
//  the top of the file).
static tern_err_t s_admin_gather(tern_client_t *self, const s_req_t *req, char **json_out) {
    s_gather_t g = {0};
    uint32_t ids[CL_MAP_NODES_MAX];
    tern_client_t *nodes[CL_MAP_NODES_MAX];
    char *replies[CL_MAP_NODES_MAX] = {0};
    size_t n = s_gather_nodes(self, &g, ids, nodes);
    tern_err_t rc = TERN_ETIMEOUT, one[CL_MAP_NODES_MAX];
    char reason[TERN_REASON_MAX + 1] = "no node of the cluster answered";
    //  Asked all at once; a node whose session is not up gets at most twice
    //  the connect timeout, so one lost node does not eat the others' time.
    cl_waiter_t *waiters[CL_MAP_NODES_MAX];
    int64_t until[CL_MAP_NODES_MAX];
    for (size_t i = 0; i < n; i++) {
        int64_t cap = s_now_ms() + 2 * (int64_t)nodes[i]->options.connect_timeout_ms;
        until[i] = tern_client_connected(nodes[i]) || cap > req->deadline ? req->deadline : cap;
        one[i] = s_admin_push(nodes[i], req, s_left(until[i]), &waiters[i]);
    }
    for (size_t i = 0; i < n; i++) {
        if (one[i] == TERN_OK) {
            one[i] = s_admin_wait(nodes[i], waiters[i], s_left(until[i]), &replies[i]);
        }
        if (one[i] != TERN_OK && rc != TERN_ENOTFOUND) {
            rc = one[i]; //  "not found" is the answer that matters for trace
            if (tl_reason[0]) {
                snprintf(reason, sizeof reason, "%s", tl_reason);
            }
        }
    }
    for (uint32_t p = 0; p < g.partitions; p++) {
        for (size_t i = 0; i < n; i++) {
            g.answered[p] |= replies[i] && g.leaders[p] == (int64_t)ids[i];
        }
    }
    bool array = strcmp(req->op, "topics") == 0, answers = false, bad = false;
    for (size_t i = 0; i < n && !bad; i++) {
        g.node_id = ids[i];
        answers |= replies[i] != NULL;
        bad =
            replies[i] && !cl_json_items(replies[i], strlen(replies[i]), "topic", s_gather_row, &g);
        if (bad) {
            rc = TERN_EMALFORMED;
            snprintf(reason, sizeof reason, "node %u's answer to %s is not JSON", (unsigned)ids[i],
                     req->op);
        }
    }
    *json_out = answers && !bad ? s_gather_reply(&g, array) : NULL;
    s_gather_free(&g, replies, n);
    if (*json_out) {
        s_set_reason(NULL);
        return TERN_OK;
    }
    if (answers && !bad) {
        rc = TERN_ENOTFOUND; //  trace: no node holds it
    }
    s_set_reason(reason);
    return rc;
}

tern_err_t tern_admin(tern_client_t *self, const char *op_name, const tern_header_t *args,
                      size_t count, char **json_out, int timeout_ms) {
    if (json_out) {
        *json_out = NULL;
    }
    s_set_reason(NULL);
    if (!self || !op_name || !json_out || (count && !args) || count > TERN_META_MAX_ENTRIES) {
        return TERN_EINVAL;
    }
    if (s_on_io_thread(self)) {
        return TERN_ESTATE;
    }
    if (!tern_name_valid(op_name, strlen(op_name))) {
        s_set_reason(tern_reason_name(tl_reason, sizeof tl_reason, "admin operation", op_name));
        return TERN_ENAME;
    }
    timeout_ms = cl_timeout(self, timeout_ms);
    s_req_t req = {op_name, args, count,
                   NULL,    true, timeout_ms < 0 ? INT64_MAX : s_now_ms() + timeout_ms};
    for (size_t i = 0; i < count; i++) {
        if (args[i].key && args[i].value && strcmp(args[i].key, "topic") == 0) {
            req.topic = args[i].value;
        }
    }
    s_scope_t scope = s_scope(&req);
    if (scope != S_AT_SEED && !self->root) {
        //  Where it goes depends on the mode, which the probe finds out.
        pthread_mutex_lock(&self->mutex);
        tern_err_t rc = cl_mode_wait(self, timeout_ms);
        bool cluster = self->cluster != NULL;
        pthread_mutex_unlock(&self->mutex);
        if (rc != TERN_OK) {
            return rc;
        }
        if (cluster) {
            return scope == S_AT_LEADER ? s_admin_leader(self, &req, json_out)
                                        : s_admin_gather(self, &req, json_out);
        }
    }
    return s_admin_one(self, &req, json_out);
}

//  ---------------------------------------------------------------------------
//  I/O thread

void cl_send_admin(tern_client_t *self, cl_admin_t *admin) {
    //  A write goes out once: cl_admins_lost fails it with its session.
    if (self->state != S_READY || admin->sent_gen == self->gen ||
        (admin->once && admin->sent_gen)) {
        return;
    }
    if (s_send(self, admin->hdr, admin->hdr_len, NULL, 0, false)) {
        admin->sent_gen = self->gen;
    } else {
        self->resend_needed = true;
    }
}

static cl_admin_t *s_admin_take(tern_client_t *self, uint64_t req_id) {
    for (cl_admin_t **p = &self->admins; *p; p = &(*p)->next) {
        if ((*p)->req_id == req_id) {
            cl_admin_t *admin = *p;
            *p = admin->next;
            return admin;
        }
    }
    return NULL;
}

void cl_handle_reply(tern_client_t *self, const tern_frame_t *frame) {
    cl_admin_t *admin = s_admin_take(self, frame->req_id);
    if (!admin) {
        return;
    }
    pthread_mutex_lock(&self->mutex);
    if (!admin->waiter->abandoned) {
        char *json = tern_alloc(frame->payload_size + 1);
        if (frame->payload_size) {
            memcpy(json, frame->payload, frame->payload_size);
        }
        admin->waiter->json = json;
    }
    cl_waiter_finish(self, admin->waiter, TERN_OK, NULL);
    pthread_mutex_unlock(&self->mutex);
    s_admin_free(admin);
}

bool cl_handle_admin_error(tern_client_t *self, const tern_frame_t *frame) {
    cl_admin_t *admin = s_admin_take(self, frame->req_id);
    if (!admin) {
        return false;
    }
    pthread_mutex_lock(&self->mutex);
    cl_waiter_finish(self, admin->waiter, (tern_err_t)frame->code, frame->reason);
    pthread_mutex_unlock(&self->mutex);
    s_admin_free(admin);
    return true;
}

void cl_admins_fail(tern_client_t *self, tern_err_t code, const char *reason) {
    while (self->admins) {
        cl_admin_t *admin = self->admins;
        self->admins = admin->next;
        cl_waiter_finish(self, admin->waiter, code, reason);
        s_admin_free(admin);
    }
}

void cl_admins_expire(tern_client_t *self, int64_t now) {
    for (cl_admin_t **p = &self->admins; *p;) {
        cl_admin_t *admin = *p;
        if (now > admin->deadline) {
            *p = admin->next;
            pthread_mutex_lock(&self->mutex);
            cl_waiter_finish(self, admin->waiter, cl_timeout_code(self), NULL);
            pthread_mutex_unlock(&self->mutex);
            s_admin_free(admin);
        } else {
            p = &admin->next;
        }
    }
}

//  Completes ADMIN, taken off the list, as sent in a lost session (when it
//  was sent) or as never sent. Mutex held.
static void s_admin_lost(tern_client_t *self, cl_admin_t *admin) {
    if (admin->sent_gen) {
        cl_waiter_finish(self, admin->waiter, TERN_ETIMEOUT, CL_ADMIN_UNKNOWN);
    } else {
        cl_waiter_finish(self, admin->waiter, TERN_ENOTLEADER, CL_LOST_REASON);
    }
    s_admin_free(admin);
}

void cl_admins_lost(tern_client_t *self) {
    for (cl_admin_t **p = &self->admins; *p;) {
        cl_admin_t *admin = *p;
        //  A node session's reads too: tern_admin asks the partition's
        //  leader again, wherever it is now.
        if ((admin->once || self->root) && admin->sent_gen) {
            *p = admin->next;
            s_admin_lost(self, admin);
        } else {
            p = &admin->next;
        }
    }
}

void cl_admins_abandon(tern_client_t *self) {
    self->abandoned = true;
    while (self->admins) {
        cl_admin_t *admin = self->admins;
        self->admins = admin->next;
        s_admin_lost(self, admin);
    }
}

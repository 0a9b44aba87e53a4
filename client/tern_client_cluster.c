/*  tern_client_cluster.c - cluster mode: the probe, node sessions, routing by partition leader.

    Every root client runs this file's thread. It waits for the first
    session and sends ADMIN `cluster`: ERROR TERN_ESTATE (a single node, or
    a broker without clusters: any other refusal) makes the client what it
    always was, and the thread ends; its only cost was that one request,
    during which publishes wait in the window (io_mode UNKNOWN). A map
    makes the client a cluster client:

    - Publishes go to the leader of their topic's partition
      (tern_partition_of, as ternd), through a node session per node: a
      tern_client_t of its own (root set) with its own DEALER and I/O
      thread in the root's ZeroMQ context, opened the first time a
      publish or a subscription needs that node. The publish keeps its
      encoded header (producer, producer_seq) and payload until it
      completes (an s_cpub_t wrapping the node session's window entry), so
      a resend to another node is the same bytes and the broker's dedup
      turns it into the original msg_id.
    - It is routed again, not completed, on ERROR TERN_ENOTLEADER (its
      reason names the new leader, applied to the map at once), when its
      node session is lost (abandoned: the session's window fails back to
      here; lost = TCP down after being up, never up in time, or the map
      says the node is down), or when the node refused the connection; it
      waits in its partition's list while the partition has no reachable
      leader, and the thread retries the waiting ones after each map
      refresh. A partition's publishes leave in publish order and go to
      one node at a time (s_part_t): a later publish never overtakes an
      earlier one that is still in flight at the old leader or waits for
      a resend, so one producer's publishes are stored in their order. The
      publishes made while the I/O thread hands over its first window
      (cl_cluster_take_window) are held until that is done. A publish rerouted for longer than 3 x
   timeout_ms (at least 30 s) completes with its last error, and so does one its leader refused
   S_REFUSALS_MAX times without naming another (lease lapsed: the DC cannot take writes).
   TERN_EREPLICAS and every other code complete it (tern.h). A publish sent alone (a probe)
   carries `rs`, the resend mark that ends a node's sticky refusals (s_part_t).
    - A subscription to one topic lives on its partition leader's session
      and moves when the leader changes or its session is lost; a pattern
      lives on every node. Deliveries keep their node session's message, so
      an ack goes to the session that delivered it.
    - The map is refreshed every 3 s on any live session (the seed first),
      and every 100 ms..1 s (backoff, which a refresh asked for by an ERROR
      waits out too) while a partition has no leader or a publish is
      parked.

    Threads: the cluster thread (this file's loop, under the root's mutex
    except while it waits for a reply), the node sessions' I/O threads
    (s_cpub_done, s_deliver) and the application threads (publish,
    subscribe). Everything here is guarded by the root's mutex; a node
    session's mutex is taken inside it, never around it.
*/
#include "tern_client_int.h"
#include "tern_partition.h"

#define S_TICK_MS        100   /* local checks: lost sessions, parked publishes */
#define S_REFRESH_MS     3000  /* map refresh when all is well */
#define S_ADMIN_MS       2000  /* a refresh's wait for its reply */
#define S_FOLLOW_MS      500   /* a subscription attaches again at most this often */
#define S_HOPS_MAX       2     /* immediate reroutes before a publish waits for a refresh */
#define S_REFUSALS_MAX   3     /* the leader's own refusals before the publish fails */
#define S_REROUTE_MIN_MS 30000 /* a publish is rerouted at least this long */
#define S_PENDING        ((tern_err_t)-1) /* a subscription waits for its first answer */

//  One node's session.
typedef struct {
    uint32_t node_id;      //  the node
    tern_client_t *client; //  its session, owned
    int64_t created;       //  when it was opened (ms, monotonic)
    bool lost;             //  down after being up, refused, or never up in time
    bool abandoned;        //  its window went back to routing in this loss
} s_link_t;

//  A publish in cluster mode, from tern_publish_async to its completion.
typedef struct _s_cpub_t {
    struct _s_cpub_t *next;           //  its partition's waiting list (or held, or expired)
    tern_client_t *root;              //  the client
    uint32_t partition;               //  its topic's
    uint64_t order;                   //  publish order (cluster->next_order), for waiting
    uint64_t req_id;                  //  in hdr
    uint64_t producer_seq;            //  in hdr
    zmq_msg_t hdr;                    //  encoded PUBLISH header, shared by every send
    zmq_msg_t payload;                //  payload, shared by every send
    tern_pub_fn *fn;                  //  the application's callback or NULL
    void *arg;                        //  its argument
    int64_t deadline;                 //  rerouting stops after this
    uint32_t hops;                    //  reroutes since it last waited for a refresh
    uint32_t refusals;                //  the leader's own refusals (s_refused)
    uint64_t parked_at;               //  cluster->refreshes when it last began to wait
    uint32_t node_id;                 //  node it was last sent to
    bool unsure;                      //  a send's answer was lost with its session: maybe stored
    bool probe;                       //  sent alone while its partition probes (s_part_t)
    bool marked;                      //  hdr carries `rs` (a resend), since its first probe
    tern_err_t code;                  //  the last reroutable error
    char reason[TERN_REASON_MAX + 1]; //  its reason
} s_cpub_t;

//  A routed subscription's subscription on one node session.
struct _cl_att_t {
    cl_att_t *next;           //  the subscription's list
    uint32_t node_id;         //  the node
    tern_client_t *client;    //  its session, borrowed from the link
    tern_subscription_t *sub; //  on that session (it owns it)
};

//  One partition's publishes on their way. The order of one producer's
//  publishes to a partition holds only if no publish of it is ever sent
//  to a node while an earlier one of it waits or is in flight at another
//  node: a later one could be stored there first. So a partition's
//  publishes go to one node at a time (sent_node): while some are in
//  flight there and the map names another leader, the rest wait until
//  those came back (answered, or returned for rerouting) and then go in
//  publish order. After a publish came back for rerouting the partition
//  sends one at a time (probing) until a send is answered: a node that
//  refused one publish because it did not lead yet could otherwise store
//  the next one, which it got before the resend (its leadership arrived
//  in between). Every switch to a node (the first send, or one to a node
//  other than the last) starts with a probe too: the map can be ahead of
//  the node (a hint or a refresh names it before it knows it leads), and
//  a pipelined first batch could then see its head refused and the rest
//  stored. What probing cannot cover, a node that refuses one of several
//  publishes already pipelined to it (its lease lapsed for a moment) and
//  could store the later ones, the node covers: our node sessions say in
//  their HELLO that they mark resends (`rs`), and a node then refuses the
//  later ones too until a probe, which is marked, arrives (docs/protocol.md,
//  "Producer order"). After any error the partition probes as well, since
//  the node may refuse what was sent behind it.
typedef struct {
    s_cpub_t *head;      //  publishes waiting to be sent, in publish order
    s_cpub_t *tail;      //  the newest of them
    uint32_t sent_node;  //  node of the publishes in flight (or of the last ones)
    uint32_t sent_count; //  publishes in flight there
    bool sent_once;      //  sent_node is set: some publish was sent
    bool probing;        //  one in flight at a time until one is answered
} s_part_t;

struct _cl_cluster_t {
    cl_map_t *map;                    //  the partition map, owned
    s_link_t links[CL_MAP_NODES_MAX]; //  node sessions opened so far
    size_t link_count;                //  how many
    s_part_t *parts;                  //  per partition: its publishes' routing, owned
    size_t waiting;                   //  publishes waiting in parts[].head lists
    uint64_t next_order;              //  order of the next publish routed
    bool window_taken;                //  the root's first window went to routing
    s_cpub_t *held;                   //  publishes made before that, in order
    s_cpub_t *held_tail;              //  the newest of them
    bool refresh_now;                 //  refresh at the next tick
    int64_t next_refresh;             //  time of the next refresh
    uint32_t refresh_attempt;         //  fast refreshes in a row (backoff)
    uint64_t refreshes;               //  map refreshes tried so far
    int64_t earliest_refresh;         //  refresh_now waits until then (backoff)
    uint64_t rng;                     //  backoff jitter
};

//  ---------------------------------------------------------------------------
//  Node sessions

//  The session of NODE_ID, opened now if needed; NULL if the map does not
//  know the node or it cannot be opened.
static s_link_t *s_link(tern_client_t *self, uint32_t node_id) {
    cl_cluster_t *cluster = self->cluster;
    for (size_t i = 0; i < cluster->link_count; i++) {
        if (cluster->links[i].node_id == node_id) {
            return &cluster->links[i];
        }
    }
    const cl_map_node_t *node = cl_map_node(cluster->map, node_id);
    if (!node || !node->endpoint[0] || cluster->link_count == CL_MAP_NODES_MAX) {
        return NULL;
    }
    tern_client_options_t options = self->options;
    options.producer_id = self->producer;
    options.window = 65536; //  the root's window bounds what is in flight
    options.publish_block_ms = 0;
    if (self->curve_server[0]) {
        options.curve_server_key = self->curve_server;
        options.curve_public_key = self->curve_public;
        options.curve_secret_key = self->curve_secret;
    }
    const char *endpoint = node->endpoint;
    //  Request ids of each session start far apart from the root's, whose
    //  publishes the session carries: a reply finds its request.
    uint64_t req_base = (uint64_t)(cluster->link_count + 1) << 40;
    tern_client_t *client = cl_client_new(&endpoint, 1, &options, self, req_base);
    if (!client) {
        return NULL;
    }
    s_link_t *link = &cluster->links[cluster->link_count++];
    *link = (s_link_t){.node_id = node_id, .client = client, .created = s_now_ms()};
    return link;
}

//  Notices lost sessions: their windows go back to routing once per loss.
static void s_links_check(tern_client_t *self, int64_t now) {
    cl_cluster_t *cluster = self->cluster;
    for (size_t i = 0; i < cluster->link_count; i++) {
        s_link_t *link = &cluster->links[i];
        tern_client_t *client = link->client;
        pthread_mutex_lock(&client->mutex);
        bool ready = client->ready, was_up = client->gen > 0;
        pthread_mutex_unlock(&client->mutex);
        const cl_map_node_t *node = cl_map_node(cluster->map, link->node_id);
        bool late = now - link->created > 2 * (int64_t)self->options.connect_timeout_ms;
        //  A node the map says is down (its etcd lease expired: stopped,
        //  cut off) is lost even while our TCP session to it looks fine: its
        //  partitions move, and what waits there is sent to the new leaders.
        bool lost = (!ready && (link->lost || was_up || late)) || (node && !node->up);
        if (lost && !link->abandoned) {
            link->abandoned = true;
            cluster->refresh_now = true;
            cl_op_t *op = tern_alloc(sizeof *op);
            op->type = OP_ABANDON;
            pthread_mutex_lock(&client->mutex);
            s_push_op(client, op);
            pthread_mutex_unlock(&client->mutex);
        }
        if (!lost) {
            link->abandoned = false;
        }
        link->lost = lost;
    }
}

//  ---------------------------------------------------------------------------
//  Publishing

static void s_cpub_done(const tern_pub_result_t *result, void *arg);

//  Puts CPUB in its partition's waiting list, in publish order: a publish
//  that came back for rerouting goes before those published after it.
static void s_wait(cl_cluster_t *cluster, s_cpub_t *cpub) {
    s_part_t *part = &cluster->parts[cpub->partition];
    cpub->parked_at = cluster->refreshes;
    s_cpub_t **p = &part->head;
    if (part->tail && part->tail->order < cpub->order) {
        p = &part->tail->next;
    }
    while (*p && (*p)->order < cpub->order) {
        p = &(*p)->next;
    }
    cpub->next = *p;
    *p = cpub;
    if (!cpub->next) {
        part->tail = cpub;
    }
    cluster->waiting++;
}

//  Hands CPUB to LINK's node session. Mutex held.
static void s_send_to(s_part_t *part, s_link_t *link, s_cpub_t *cpub) {
    tern_client_t *client = link->client;
    cpub->node_id = link->node_id;
    part->sent_node = link->node_id;
    part->sent_once = true;
    part->sent_count++;
    pthread_mutex_lock(&client->mutex);
    cl_pub_t *pub = client->pub_free;
    if (pub) {
        client->pub_free = pub->next;
        memset(pub, 0, sizeof *pub);
    } else {
        pub = tern_alloc(sizeof *pub);
    }
    pub->op.type = OP_PUB;
    pub->req_id = cpub->req_id;
    pub->producer_seq = cpub->producer_seq;
    zmq_msg_init(&pub->hdr);
    zmq_msg_copy(&pub->hdr, &cpub->hdr);
    zmq_msg_init(&pub->payload);
    zmq_msg_copy(&pub->payload, &cpub->payload);
    pub->fn = s_cpub_done;
    pub->arg = cpub;
    client->inflight++;
    s_push_op(client, &pub->op);
    pthread_mutex_unlock(&client->mutex);
}

//  Sends PARTITION's waiting publishes to its leader, in order, as far as
//  the rules of s_part_t allow; the rest wait for a map refresh (no
//  reachable leader, or one that sent them away too often) or for the
//  answers in flight. Mutex held.
static void s_pump(tern_client_t *self, uint32_t partition) {
    cl_cluster_t *cluster = self->cluster;
    s_part_t *part = &cluster->parts[partition];
    while (part->head && !self->closing) {
        s_cpub_t *cpub = part->head;
        if (cpub->hops > S_HOPS_MAX && cpub->parked_at == cluster->refreshes) {
            break; //  asks again only with a newer map
        }
        int64_t leader = cl_map_leader(cluster->map, partition);
        s_link_t *link = leader == CL_NO_LEADER ? NULL : s_link(self, (uint32_t)leader);
        if (!link || link->lost) {
            break;
        }
        if (part->sent_count && (part->sent_node != link->node_id || part->probing)) {
            return; //  an answer in flight lets the next ones go (s_cpub_done)
        }
        if (!part->sent_once || part->sent_node != link->node_id) {
            part->probing = true; //  a switch: this node may not lead yet
        }
        cpub->probe = part->probing;
        if (cpub->probe && !cpub->marked) {
            //  Sent alone and the oldest of its partition not answered: a
            //  resend (rs), which ends the node's sticky refusals of this
            //  partition (docs/protocol.md, "Producer order"). Kept marked:
            //  it is sent again only as a probe.
            cpub->marked = cl_pub_mark_resend(&cpub->hdr);
        }
        if (cpub->hops > S_HOPS_MAX) {
            cpub->hops = 0;
        }
        part->head = cpub->next;
        if (!part->head) {
            part->tail = NULL;
        }
        cluster->waiting--;
        s_send_to(part, link, cpub);
    }
    if (part->head) {
        cluster->refresh_now = true;
        pthread_cond_signal(&self->tick);
    }
}

//  Makes PUB (a root window entry or a new publish to PARTITION) a routed
//  publish; its header and payload move into it and PUB goes to pub_free.
//  Mutex held.
static s_cpub_t *s_cpub_new(tern_client_t *self, uint32_t partition, cl_pub_t *pub) {
    s_cpub_t *cpub = tern_alloc(sizeof *cpub);
    cpub->root = self;
    cpub->partition = partition;
    cpub->req_id = pub->req_id;
    cpub->producer_seq = pub->producer_seq;
    zmq_msg_init(&cpub->hdr);
    zmq_msg_move(&cpub->hdr, &pub->hdr);
    zmq_msg_init(&cpub->payload);
    zmq_msg_move(&cpub->payload, &pub->payload);
    zmq_msg_close(&pub->hdr);
    zmq_msg_close(&pub->payload);
    cpub->fn = pub->fn;
    cpub->arg = pub->arg;
    int64_t span = 3 * (int64_t)self->options.timeout_ms;
    cpub->deadline = s_now_ms() + (span < S_REROUTE_MIN_MS ? S_REROUTE_MIN_MS : span);
    pub->next = self->pub_free;
    self->pub_free = pub;
    return cpub;
}

//  Routes CPUB, the newest publish so far. Mutex held.
static void s_route_new(tern_client_t *self, s_cpub_t *cpub) {
    cpub->order = self->cluster->next_order++;
    s_wait(self->cluster, cpub);
    s_pump(self, cpub->partition);
}

void cl_cluster_publish(tern_client_t *self, const char *topic, cl_pub_t *pub) {
    cl_cluster_t *cluster = self->cluster;
    s_cpub_t *cpub = s_cpub_new(self, cl_map_partition(cluster->map, topic, strlen(topic)), pub);
    if (cluster->window_taken) {
        s_route_new(self, cpub);
        return;
    }
    //  The root's I/O thread has not yet handed over the publishes made
    //  before the mode was known (cl_cluster_take_window): this one goes
    //  after them.
    cpub->next = NULL;
    if (cluster->held_tail) {
        cluster->held_tail->next = cpub;
    } else {
        cluster->held = cpub;
    }
    cluster->held_tail = cpub;
}

//  Completes CPUB for the application: its callback with RESULT, then its
//  window slot. No lock held.
static void s_cpub_finish(s_cpub_t *cpub, const tern_pub_result_t *result) {
    tern_client_t *self = cpub->root;
    if (cpub->fn) {
        cpub->fn(result, cpub->arg);
    }
    zmq_msg_close(&cpub->hdr);
    zmq_msg_close(&cpub->payload);
    free(cpub);
    pthread_mutex_lock(&self->mutex);
    self->inflight--;
    pthread_cond_broadcast(&self->cond);
    pthread_mutex_unlock(&self->mutex);
}

//  Codes after which the publish is routed again rather than completed: the
//  node does not lead (any more), its session was lost, or it refused us.
static bool s_reroutable(tern_err_t code) {
    return code == TERN_ENOTLEADER || code == TERN_ECONNREFUSED;
}

//  Whether RESULT (a reroutable code) is the leader's own refusal, as
//  opposed to "go elsewhere": the node the map names refused without naming
//  another leader (its etcd lease lapsed; the whole DC may have lost etcd).
//  S_REFUSALS_MAX of those, each after a map refresh, complete the publish
//  with it: a clear answer for the application, which may retry with the
//  same producer_seq. Applies a hint to the map. LOST: RESULT is our lost
//  session's, not the node's answer. Mutex held.
static bool s_refused(tern_client_t *self, s_cpub_t *cpub, const tern_pub_result_t *result,
                      bool lost) {
    cl_cluster_t *cluster = self->cluster;
    if (result->code == TERN_ECONNREFUSED) {
        for (size_t i = 0; i < cluster->link_count; i++) {
            if (cluster->links[i].node_id == cpub->node_id) {
                cluster->links[i].lost = cluster->links[i].abandoned = true;
            }
        }
        return false;
    }
    if (lost) {
        return false; //  our session is gone, not the node's answer
    }
    uint32_t partition;
    int64_t leader;
    char endpoint[CL_MAP_ENDPOINT_MAX + 1];
    if (cl_map_hint(result->reason, &partition, &leader, endpoint, sizeof endpoint) &&
        partition == cpub->partition && leader != (int64_t)cpub->node_id) {
        //  Another leader, or none yet (then it waits for one).
        cl_map_apply_hint(cluster->map, partition, leader, endpoint);
        return false;
    }
    if (!cpub->probe && cluster->parts[cpub->partition].probing) {
        //  One sent before it came back first: the node refused this one
        //  for that one (sticky), which says nothing of this one.
        return false;
    }
    cpub->hops = S_HOPS_MAX + 1; //  wait for a refresh before asking again
    return ++cpub->refusals >= S_REFUSALS_MAX;
}

//  A node session completed a publish (on its I/O thread).
static void s_cpub_done(const tern_pub_result_t *result, void *arg) {
    s_cpub_t *cpub = arg;
    tern_client_t *self = cpub->root;
    pthread_mutex_lock(&self->mutex);
    s_part_t *part = &self->cluster->parts[cpub->partition];
    part->sent_count--;
    bool lost = tl_session_lost; //  set where CL_LOST_REASON is raised (tern_client_io.c)
    if (lost) {
        cpub->unsure = true;
    }
    if (!self->closing && s_reroutable(result->code) && s_now_ms() < cpub->deadline &&
        !s_refused(self, cpub, result, lost)) {
        cpub->code = result->code;
        snprintf(cpub->reason, sizeof cpub->reason, "%s", result->reason);
        cpub->hops++;
        cpub->probe = false;
        part->probing = true;
        self->cluster->refresh_now = true;
        s_wait(self->cluster, cpub);
        s_pump(self, cpub->partition);
        pthread_mutex_unlock(&self->mutex);
        return;
    }
    //  Answered: what waited behind it may go now (all of it once the
    //  probe was acknowledged). After an error (TERN_EREPLICAS, or a
    //  refusal it gave up on) the node refuses the publishes sent behind it
    //  until a resend (sticky): the partition probes again, and its next
    //  publish goes alone, marked.
    if (result->code != TERN_OK) {
        part->probing = true;
    } else if (cpub->probe) {
        part->probing = false;
    }
    s_pump(self, cpub->partition);
    pthread_mutex_unlock(&self->mutex);
    //  TERN_EREPLICAS says "this request was not stored"; after an earlier
    //  send whose answer was lost (the node died after it may have stored
    //  it) the publish's outcome is unknown: say so, as for a post-commit
    //  wait (a resend with the same producer_seq tells which).
    tern_pub_result_t unknown;
    if (result->code == TERN_EREPLICAS && cpub->unsure) {
        unknown = *result;
        unknown.code = TERN_ETIMEOUT;
        unknown.reason = "refused for too few in-sync replicas after an earlier send's answer "
                         "was lost with its node: the outcome is unknown; resend with the same "
                         "producer seq";
        result = &unknown;
    }
    s_cpub_finish(cpub, result);
}

//  Takes PART's waiting publishes past their deadline (all when closing)
//  off its list, onto *TAIL_P in publish order. Mutex held.
static void s_part_expire(cl_cluster_t *cluster, s_part_t *part, int64_t now, bool closing,
                          s_cpub_t ***tail_p) {
    part->tail = NULL;
    for (s_cpub_t **p = &part->head; *p;) {
        s_cpub_t *cpub = *p;
        if (closing || now >= cpub->deadline) {
            *p = cpub->next;
            cpub->next = NULL;
            **tail_p = cpub;
            *tail_p = &cpub->next;
            cluster->waiting--;
        } else {
            part->tail = cpub;
            p = &cpub->next;
        }
    }
}

//  Sends the waiting publishes that may go now (after a map refresh, or
//  once a lost session's window came back); those past their deadline go
//  to EXPIRED, for the caller to complete without the lock. Mutex held.
static void s_waiting_retry(tern_client_t *self, int64_t now, s_cpub_t **expired) {
    cl_cluster_t *cluster = self->cluster;
    s_cpub_t **expired_tail = expired;
    while (*expired_tail) {
        expired_tail = &(*expired_tail)->next;
    }
    for (uint32_t p = 0; cluster->waiting && p < cluster->map->partitions; p++) {
        if (cluster->parts[p].head) {
            s_part_expire(cluster, &cluster->parts[p], now, self->closing, &expired_tail);
            s_pump(self, p);
        }
    }
}

//  Completes EXPIRED with their last error (TERN_ECLOSED when closing).
//  No lock held.
static void s_expired_finish(s_cpub_t *expired, bool closing) {
    while (expired) {
        s_cpub_t *cpub = expired;
        expired = cpub->next;
        tern_pub_result_t result = {.code = closing ? TERN_ECLOSED : cpub->code,
                                    .producer_seq = cpub->producer_seq,
                                    .reason = closing ? "" : cpub->reason};
        if (!closing && !result.code) {
            result.code = TERN_ENOTLEADER;
        }
        s_cpub_finish(cpub, &result);
    }
}

//  The partition of the window entry PUB's topic (that of "" if its header
//  cannot be read: it was encoded here, so never).
static uint32_t s_pub_partition(cl_pub_t *pub, uint32_t partitions) {
    tern_frame_t frame;
    tern_limits_t limits = {.max_payload = (size_t)1 << 31};
    bool ok = tern_frame_decode(&frame, zmq_msg_data(&pub->hdr), zmq_msg_size(&pub->hdr),
                                zmq_msg_data(&pub->payload), zmq_msg_size(&pub->payload),
                                &limits) == TERN_OK;
    const char *topic = ok ? frame.topic : "";
    return tern_partition_of(topic, strlen(topic), partitions);
}

void cl_cluster_take_window(tern_client_t *self) {
    //  Nothing in it was sent (io_mode was UNKNOWN). Its topics are decoded
    //  without the root's mutex, which application threads wait on: only
    //  this (the I/O) thread touches the window now, since io_mode CLUSTER
    //  sends every new publish to held. Then it is routed in order, and
    //  after it what was published meanwhile (held), under one lock so that
    //  no new publish goes between them.
    pthread_mutex_lock(&self->mutex);
    cl_pub_t *window = self->win_head;
    uint32_t partitions = self->cluster->map->partitions; //  never changes
    pthread_mutex_unlock(&self->mutex);
    size_t count = 0;
    for (cl_pub_t *pub = window; pub; pub = pub->next) {
        count++;
    }
    uint32_t *partition = tern_alloc((count ? count : 1) * sizeof *partition);
    size_t i = 0;
    for (cl_pub_t *pub = window; pub; pub = pub->next) {
        partition[i++] = s_pub_partition(pub, partitions);
    }
    pthread_mutex_lock(&self->mutex);
    cl_cluster_t *cluster = self->cluster;
    self->win_head = self->win_tail = NULL;
    i = 0;
    while (window) {
        cl_pub_t *pub = window;
        window = pub->next;
        s_route_new(self, s_cpub_new(self, partition[i++], pub));
    }
    free(partition);
    cluster->window_taken = true;
    while (cluster->held) {
        s_cpub_t *cpub = cluster->held;
        cluster->held = cpub->next;
        s_route_new(self, cpub);
    }
    cluster->held_tail = NULL;
    pthread_mutex_unlock(&self->mutex);
}

//  ---------------------------------------------------------------------------
//  Subscriptions

//  A delivery on a node session for the routed subscription ARG.
static void s_deliver(tern_message_t *msg, void *arg) {
    tern_subscription_t *sub = arg;
    tern_client_t *self = sub->client;
    pthread_mutex_lock(&self->mutex);
    if (sub->closed) {
        pthread_mutex_unlock(&self->mutex);
        tern_message_destroy(&msg); //  unacked: its group gets it back
        return;
    }
    cl_sub_hand(self, sub, msg);
}

//  Ends ATT's subscription and frees ATT.
static void s_detach(cl_att_t *att) {
    tern_unsubscribe(&att->sub);
    free(att);
}

static void s_attach(tern_client_t *self, tern_subscription_t *sub, uint32_t node_id) {
    s_link_t *link = s_link(self, node_id);
    if (!link) {
        return;
    }
    cl_att_t *att = tern_alloc(sizeof *att);
    att->node_id = node_id;
    att->client = link->client;
    att->sub = cl_sub_attach(link->client, sub, s_deliver, sub);
    att->next = sub->atts;
    sub->atts = att;
}

//  Whether ATT's subscription was closed by an ERROR; its code in *CODE.
static bool s_att_failed(cl_att_t *att, tern_err_t *code) {
    pthread_mutex_lock(&att->client->mutex);
    bool failed = att->sub->closed;
    *code = att->sub->error;
    pthread_mutex_unlock(&att->client->mutex);
    return failed;
}

//  Whether SUB should be on NODE_ID now.
static bool s_wanted(tern_client_t *self, tern_subscription_t *sub, uint32_t node_id) {
    cl_map_t *map = self->cluster->map;
    if (sub->wildcard) {
        return cl_map_node(map, node_id) != NULL;
    }
    int64_t leader = cl_map_leader(map, cl_map_partition(map, sub->pattern, strlen(sub->pattern)));
    return leader == (int64_t)node_id;
}

//  Moves SUB to where the map says it belongs: an exact topic to its
//  partition's leader, a pattern to every node. Mutex held.
static void s_follow(tern_client_t *self, tern_subscription_t *sub, int64_t now) {
    if (sub->closed || !sub->routed) {
        return;
    }
    bool attached[CL_MAP_NODES_MAX] = {false};
    cl_map_t *map = self->cluster->map;
    for (cl_att_t **p = &sub->atts; *p;) {
        cl_att_t *att = *p;
        tern_err_t code;
        if (!s_wanted(self, sub, att->node_id) || s_att_failed(att, &code)) {
            *p = att->next;
            s_detach(att);
            continue;
        }
        for (size_t i = 0; i < map->node_count; i++) {
            attached[i] |= map->nodes[i].node_id == att->node_id;
        }
        p = &att->next;
    }
    if (now < sub->next_follow) {
        return;
    }
    for (size_t i = 0; i < map->node_count; i++) {
        if (!attached[i] && s_wanted(self, sub, map->nodes[i].node_id)) {
            s_attach(self, sub, map->nodes[i].node_id);
            sub->next_follow = now + S_FOLLOW_MS;
        }
    }
}

//  The first answer of SUB's node subscriptions: TERN_OK when one is up,
//  an error (not TERN_ENOTLEADER, which following fixes) that closed one,
//  or S_PENDING while waiting. Mutex held.
static tern_err_t s_sub_state(tern_subscription_t *sub) {
    for (cl_att_t *att = sub->atts; att; att = att->next) {
        pthread_mutex_lock(&att->client->mutex);
        bool up = att->sub->gen != 0 && !att->sub->closed;
        tern_err_t code = att->sub->closed ? att->sub->error : TERN_OK;
        pthread_mutex_unlock(&att->client->mutex);
        if (up) {
            return TERN_OK;
        }
        if (code && code != TERN_ENOTLEADER && code != TERN_ECONNREFUSED) {
            return code;
        }
    }
    return S_PENDING;
}

tern_err_t cl_cluster_subscribe(tern_client_t *self, tern_subscription_t *sub) {
    sub->routed = true;
    free(sub->waiter); //  its node subscriptions answer instead (s_sub_state)
    sub->waiter = NULL;
    sub->next = self->subs;
    self->subs = sub;
    int64_t until = s_now_ms() + (int64_t)self->options.timeout_ms;
    tern_err_t rc = S_PENDING;
    while (rc == S_PENDING) {
        s_follow(self, sub, s_now_ms());
        rc = s_sub_state(sub);
        if (rc == S_PENDING && (self->closing || s_now_ms() >= until)) {
            rc = self->closing ? TERN_ECLOSED : TERN_ETIMEOUT;
        }
        if (rc == S_PENDING) {
            //  Node sessions do not signal the root: look again shortly.
            struct timespec slice = cl_abs_deadline(20);
            cl_wait(&self->cond, &self->mutex, 20, &slice);
        }
    }
    if (rc != TERN_OK) {
        cl_cluster_unsubscribe(sub);
        sub->closed = true; //  stays in the list; freed with the client
        snprintf(tl_reason, sizeof tl_reason, "%s",
                 rc == TERN_ETIMEOUT ? "no node of the cluster answered the subscription" : "");
    }
    return rc;
}

void cl_cluster_unsubscribe(tern_subscription_t *sub) {
    while (sub->atts) {
        cl_att_t *att = sub->atts;
        sub->atts = att->next;
        s_detach(att);
    }
}

tern_err_t cl_cluster_credit(tern_subscription_t *sub, uint32_t n) {
    tern_err_t rc = TERN_ESTATE;
    for (cl_att_t *att = sub->atts; att; att = att->next) {
        if (tern_subscription_credit(att->sub, n) == TERN_OK) {
            rc = TERN_OK;
        }
    }
    return rc;
}

uint64_t cl_cluster_sub_id(tern_subscription_t *sub) {
    return sub->atts ? tern_subscription_id(sub->atts->sub) : 0;
}

//  ---------------------------------------------------------------------------
//  The map

//  Asks a live session (the seed's first, then any node's) for the map.
//  Returns it (caller owns it) or NULL. No lock held.
static cl_map_t *s_map_fetch(tern_client_t *self) {
    pthread_mutex_lock(&self->mutex);
    tern_client_t *via = self->ready ? self : NULL;
    cl_cluster_t *cluster = self->cluster;
    for (size_t i = 0; !via && cluster && i < cluster->link_count; i++) {
        tern_client_t *client = cluster->links[i].client;
        if (!cluster->links[i].lost && tern_client_connected(client)) {
            via = client;
        }
    }
    pthread_mutex_unlock(&self->mutex);
    char *json = NULL;
    if (!via || tern_admin(via, "cluster", NULL, 0, &json, S_ADMIN_MS) != TERN_OK) {
        return NULL;
    }
    char why[TERN_REASON_MAX + 1];
    cl_map_t *map = cl_map_parse(json, strlen(json), why, sizeof why);
    free(json);
    return map;
}

//  Whether some partition has no leader.
static bool s_map_incomplete(const cl_map_t *map) {
    for (uint32_t p = 0; p < map->partitions; p++) {
        if (map->leader[p] == CL_NO_LEADER) {
            return true;
        }
    }
    return false;
}

//  Refreshes the map and schedules the next refresh: soon (with backoff)
//  while something waits for a leader, else in S_REFRESH_MS. No lock held.
static void s_refresh(tern_client_t *self) {
    cl_map_t *map = s_map_fetch(self);
    pthread_mutex_lock(&self->mutex);
    cl_cluster_t *cluster = self->cluster;
    if (map && map->partitions == cluster->map->partitions) {
        cl_map_destroy(&cluster->map);
        cluster->map = map;
    } else {
        cl_map_destroy(&map); //  a cluster never changes its partition count
    }
    cluster->refresh_now = false;
    cluster->refreshes++;
    bool urgent = !map || cluster->waiting || s_map_incomplete(cluster->map);
    //  A refresh asked for (refresh_now) waits out the backoff too, so a
    //  leader that keeps refusing is not asked in a loop.
    uint32_t fast = tern_backoff_delay(cluster->refresh_attempt, S_TICK_MS, 1000, &cluster->rng);
    cluster->refresh_attempt = urgent ? cluster->refresh_attempt + 1 : 0;
    int64_t now = s_now_ms();
    cluster->next_refresh = now + (urgent ? fast : S_REFRESH_MS);
    cluster->earliest_refresh = now + fast;
    pthread_mutex_unlock(&self->mutex);
}

//  ---------------------------------------------------------------------------
//  For admin requests (tern_client_admin.c)

tern_err_t cl_mode_wait(tern_client_t *self, int timeout_ms) {
    struct timespec deadline = cl_abs_deadline(timeout_ms < 0 ? 0 : timeout_ms);
    while (!self->mode_known) {
        tern_err_t rc = cl_unavailable(self);
        if (rc != TERN_OK) {
            return rc;
        }
        if (!cl_wait(&self->cond, &self->mutex, timeout_ms, &deadline)) {
            return cl_timeout_code(self);
        }
    }
    return TERN_OK;
}

cl_map_t *cl_cluster_map(tern_client_t *self) {
    return self->cluster ? self->cluster->map : NULL;
}

tern_client_t *cl_cluster_session(tern_client_t *self, uint32_t node_id) {
    s_link_t *link = self->cluster ? s_link(self, node_id) : NULL;
    return link && !link->lost ? link->client : NULL;
}

void cl_cluster_refresh_soon(tern_client_t *self) {
    if (self->cluster) {
        self->cluster->refresh_now = true;
        pthread_cond_signal(&self->tick);
    }
}

//  ---------------------------------------------------------------------------
//  The thread

//  Asks the first session whether this is a cluster. Returns the map
//  (cluster mode), or NULL with *CLOSING false for a single node, or true
//  when the client closed first.
static cl_map_t *s_probe(tern_client_t *self, bool *closing) {
    *closing = false;
    while (true) {
        pthread_mutex_lock(&self->mutex);
        //  No timeout: WELCOME (cl_handle_welcome) and tern_client_destroy
        //  signal tick, and nothing else ends this wait. A timed wait here
        //  once hid a missing signal as a 1 s stall of every client's first
        //  publishes; untimed, a missed wakeup hangs every publish, which
        //  any test sees (it_client: probe_wakes_at_welcome).
        while (!self->ready && !self->closing) {
            cl_wait(&self->tick, &self->mutex, -1, NULL);
        }
        *closing = self->closing;
        pthread_mutex_unlock(&self->mutex);
        if (*closing) {
            return NULL;
        }
        char *json = NULL;
        tern_err_t rc = tern_admin(self, "cluster", NULL, 0, &json, S_ADMIN_MS);
        if (rc == TERN_OK) {
            char why[TERN_REASON_MAX + 1];
            cl_map_t *map = cl_map_parse(json, strlen(json), why, sizeof why);
            free(json);
            return map; //  a reply we cannot read: treated as a single node
        }
        if (rc == TERN_ECLOSED) {
            *closing = true;
            return NULL;
        }
        pthread_mutex_lock(&self->mutex);
        bool refused = self->refusal != TERN_OK; //  no session: not the broker's answer
        pthread_mutex_unlock(&self->mutex);
        if (rc != TERN_ETIMEOUT && !refused) {
            return NULL; //  TERN_ESTATE "not a cluster", or a broker without the op
        }
        //  No answer in time, or no session: ask the next one.
        pthread_mutex_lock(&self->mutex);
        struct timespec deadline = cl_abs_deadline(100);
        cl_wait(&self->tick, &self->mutex, 100, &deadline);
        pthread_mutex_unlock(&self->mutex);
    }
}

//  Tells everyone the mode: waiting subscribers, and the I/O thread, which
//  sends its window (single) or hands it to routing (cluster).
static void s_mode_set(tern_client_t *self, cl_map_t *map) {
    pthread_mutex_lock(&self->mutex);
    if (map) {
        cl_cluster_t *cluster = tern_alloc(sizeof *cluster);
        cluster->map = map;
        cluster->parts = tern_alloc(map->partitions * sizeof *cluster->parts);
        cluster->rng = tern_rand_seed();
        cluster->next_refresh = s_now_ms() + (s_map_incomplete(map) ? 0 : S_REFRESH_MS);
        self->cluster = cluster;
    }
    cl_mode_known(self, map ? CL_MODE_CLUSTER : CL_MODE_SINGLE);
    pthread_mutex_unlock(&self->mutex);
}

//  One turn of the cluster thread: lost sessions, parked publishes,
//  subscriptions. Mutex held; released while completing expired publishes.
static void s_turn(tern_client_t *self, int64_t now) {
    s_links_check(self, now);
    s_cpub_t *expired = NULL;
    s_waiting_retry(self, now, &expired);
    for (tern_subscription_t *sub = self->subs; sub; sub = sub->next) {
        s_follow(self, sub, now);
    }
    if (expired) {
        pthread_mutex_unlock(&self->mutex);
        s_expired_finish(expired, false);
        pthread_mutex_lock(&self->mutex);
    }
}

void *cl_cluster_thread(void *arg) {
    tern_client_t *self = arg;
    bool closing;
    cl_map_t *map = s_probe(self, &closing);
    if (closing) {
        return NULL;
    }
    s_mode_set(self, map);
    if (!map) {
        return NULL; //  a single node: nothing more to do, ever
    }
    pthread_mutex_lock(&self->mutex);
    while (!self->closing) {
        cl_cluster_t *cluster = self->cluster;
        int64_t now = s_now_ms();
        if ((cluster->refresh_now && now >= cluster->earliest_refresh) ||
            now >= cluster->next_refresh) {
            pthread_mutex_unlock(&self->mutex);
            s_refresh(self);
            pthread_mutex_lock(&self->mutex);
        }
        s_turn(self, s_now_ms());
        struct timespec deadline = cl_abs_deadline(S_TICK_MS);
        cl_wait(&self->tick, &self->mutex, S_TICK_MS, &deadline);
    }
    pthread_mutex_unlock(&self->mutex);
    return NULL;
}

void cl_cluster_destroy(tern_client_t *self) {
    cl_cluster_t *cluster = self->cluster;
    if (!cluster) {
        return;
    }
    //  Closing each session completes its window: s_cpub_done sees
    //  closing and completes each publish with TERN_ECLOSED.
    for (size_t i = 0; i < cluster->link_count; i++) {
        tern_client_destroy(&cluster->links[i].client);
    }
    s_cpub_t *expired = cluster->held, **tail = &expired;
    while (*tail) {
        tail = &(*tail)->next;
    }
    for (uint32_t p = 0; p < cluster->map->partitions; p++) {
        s_part_expire(cluster, &cluster->parts[p], 0, true, &tail);
    }
    s_expired_finish(expired, true);
    cluster->held = cluster->held_tail = NULL;
    free(cluster->parts);
    for (tern_subscription_t *sub = self->subs; sub; sub = sub->next) {
        while (sub->atts) {
            cl_att_t *att = sub->atts;
            sub->atts = att->next;
            free(att); //  its subscription went with its session
        }
    }
    cl_map_destroy(&cluster->map);
    free(cluster);
    self->cluster = NULL;
}

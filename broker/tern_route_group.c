/*  tern_route_group.c - route: topics, groups, subscriptions and acks.

    What route knows of topics and groups (durable ones opened through the
    storer, ephemeral ones per subscription), subscriptions joining them
    (patterns included), sessions going away, and the consumer's ACK, NACK,
    TERM and CREDIT.
*/
#include "tern_route_priv.h"
#include <inttypes.h>
#include <string.h>

// ---------------------------------------------------------------------------
//  Groups

//  The key of durable group NAME on TOPIC_ID in route's durable table.
static void s_durable_key(char *key, uint32_t topic_id, const char *name) {
    snprintf(key, S_DURABLE_KEY_MAX, "%u/%s", topic_id, name);
}

//  Durable group NAME on TOPIC_ID, or NULL if route has not opened it.
r_group_t *r_durable_get(r_route_t *self, uint32_t topic_id, const char *name) {
    char key[S_DURABLE_KEY_MAX];
    s_durable_key(key, topic_id, name);
    return (r_group_t *)zhashx_lookup(self->durable, key);
}

static void s_group_add_consumer(r_group_t *group, r_sub_t *sub) {
    for (size_t i = 0; i < group->nconsumers; i++) {
        if (group->consumers[i] == sub) {
            return;
        }
    }
    if (group->nconsumers == group->capconsumers) {
        group->capconsumers = group->capconsumers ? group->capconsumers * 2 : 4;
        group->consumers = tern_realloc(group->consumers, group->capconsumers * sizeof(r_sub_t *));
    }
    group->consumers[group->nconsumers++] = sub;
    group->pool->consumers++;
    zlistx_add_end(sub->groups, group);
}

static void s_group_remove_consumer(r_group_t *group, r_sub_t *sub) {
    for (size_t i = 0; i < group->nconsumers; i++) {
        if (group->consumers[i] == sub) {
            memmove(&group->consumers[i], &group->consumers[i + 1],
                    (group->nconsumers - i - 1) * sizeof(r_sub_t *));
            group->nconsumers--;
            group->pool->consumers--;
            if (group->rr >= group->nconsumers) {
                group->rr = 0;
            }
            return;
        }
    }
}

//  One thing SUB's OK waited for is done (r_handle_sub's joins, or a new
//  group's OPEN): the OK goes when it was the last.
static void s_ok_wait_done(r_route_t *self, r_sub_t *sub) {
    if (sub && sub->ok_waits > 0 && --sub->ok_waits == 0) {
        r_send_ok(self, sub->session, sub->ok_req, sub->id);
    }
}

//  GROUP's OPEN is back (or the group is gone): the SUBSCRIBE that made it
//  is answered once none of its new groups is still opening.
static void s_open_done(r_route_t *self, r_group_t *group) {
    r_sub_t *sub = group->opener;
    group->opener = NULL;
    s_ok_wait_done(self, sub);
}

//  Destroys GROUP: its pending entries (released from their holders) and its
//  consumer links.
void r_group_destroy(r_route_t *self, r_group_t *group) {
    s_open_done(self, group);
    while (group->head) {
        r_pend_destroy(group->head);
    }
    group->pool->consumers -= group->nconsumers;
    for (size_t i = 0; i < group->nconsumers; i++) {
        r_sub_t *sub = group->consumers[i];
        void *handle = zlistx_find(sub->groups, group);
        if (handle) {
            zlistx_delete(sub->groups, handle);
        }
    }
    if (group->name[0]) {
        char key[S_DURABLE_KEY_MAX];
        s_durable_key(key, group->topic->id, group->name);
        zhashx_delete(self->durable, key);
    }
    zlistx_delete(group->topic->groups, group->topic_handle);
    free(group->consumers);
    zlistx_delete(self->groups, group->handle);
    free(group);
}

static r_group_t *s_group_new(r_route_t *self, r_topic_t *topic, const char *name) {
    r_group_t *group = tern_alloc(sizeof *group);
    group->topic = topic;
    snprintf(group->name, sizeof group->name, "%s", name);
    group->pool = &self->pool;
    group->handle = zlistx_add_end(self->groups, group);
    group->topic_handle = zlistx_add_end(topic->groups, group);
    return group;
}

//  The expiry (unix ms) of the message of a pending entry loaded for GROUP:
//  r_timers drops the entry then even if no consumer comes. A message gone
//  from the log (swept after its TTL, or removed by retention) expires now.
static uint64_t s_stored_expiry(r_route_t *self, const r_group_t *group, uint64_t seq) {
    tern_err_t rc = tern_store_read(self->reader, group->topic->id, seq, &self->frame);
    if (rc == TERN_ENOTFOUND) {
        return tern_now_ms();
    }
    return rc == TERN_OK ? r_expire_ms(self->frame.expire_at_ns) : 0;
}

bool r_load_pending(const tern_entry_t *entry, void *arg) {
    r_load_t *load = (r_load_t *)arg;
    r_group_t *group = load->group;
    for (r_pend_t *pend = group->head; pend; pend = pend->next) {
        if (pend->seq == entry->seq) {
            pend->stored = true;
            return true;
        }
    }
    r_pend_t *pend = r_pend_new(group, entry->seq, entry->priority);
    pend->stored = true;
    pend->count = entry->delivery_count;
    uint64_t now = tern_now_ms();
    pend->due_ms = load->stored_due && entry->due_ms > now ? entry->due_ms : now;
    pend->expire_ms = s_stored_expiry(load->self, group, entry->seq);
    group->rescan = true;
    r_check_at(group, pend->due_ms);
    return true;
}

//  The storer created (or found) durable GROUP: load its state.
void r_group_loaded(r_route_t *self, r_group_t *group, tern_err_t err) {
    s_open_done(self, group);
    tern_group_info_t info;
    if (err == TERN_OK) {
        err = r_read_begin(self);
    }
    if (err == TERN_OK) {
        err = tern_store_group_get(self->reader, group->topic->id, group->name, &info);
    }
    if (err == TERN_OK) {
        memcpy(group->lane_next, info.lane_next, sizeof group->lane_next);
        //  In a cluster the stored state may be a failed leader's, replicated:
        //  its entries are due when they were there (a single node's restart
        //  redelivers at once).
        r_load_t load = {self, group, self->cluster != NULL};
        err = tern_store_pending_list(self->reader, group->topic->id, group->name, r_load_pending,
                                      &load);
    }
    if (err != TERN_OK) {
        zsys_error("route: cannot open group %s on %s: %s", group->name, group->topic->name,
                   tern_strerror(err));
        group->state = G_FAILED;
        return;
    }
    group->state = G_READY;
    group->dirty = true;
}

r_topic_t *r_topic_get(r_route_t *self, uint32_t id) {
    return (r_topic_t *)zhashx_lookup(self->topics, S_KEY(id));
}

r_topic_t *r_topic_by_name(r_route_t *self, const char *name) {
    for (r_topic_t *topic = (r_topic_t *)zhashx_first(self->topics); topic;
         topic = (r_topic_t *)zhashx_next(self->topics)) {
        if (streq(topic->name, name)) {
            return topic;
        }
    }
    return NULL;
}

//  SUB joins its group on TOPIC (creating or opening it). APPEARED: TOPIC
//  was created after SUB was made, so every one of its messages is new for
//  SUB: start NEW then means the topic's first seq, not last_seq + 1 (which
//  would skip the messages of the commit that created the topic).
static void s_join(r_route_t *self, r_sub_t *sub, r_topic_t *topic, bool appeared) {
    uint8_t start = appeared && sub->start == TERN_START_NEW ? TERN_START_FIRST : sub->start;
    r_group_t *group = NULL;
    if (sub->group[0]) {
        char key[S_DURABLE_KEY_MAX];
        s_durable_key(key, topic->id, sub->group);
        group = (r_group_t *)zhashx_lookup(self->durable, key);
        if (!group) {
            group = s_group_new(self, topic, sub->group);
            zhashx_insert(self->durable, key, group);
            tern_op_t *op = r_op(self, TERN_OP_OPEN, group, 0);
            op->start = start;
            op->start_value = sub->start_value;
            if (sub->ok_waits > 0) { //  r_handle_sub: its OK waits for this OPEN
                group->opener = sub;
                sub->ok_waits++;
            }
        }
    } else {
        tern_topic_info_t info;
        tern_err_t rc = r_read_begin(self);
        if (rc == TERN_OK) {
            rc = tern_store_topic_get_id(self->reader, topic->id, &info);
        }
        if (rc != TERN_OK) {
            return;
        }
        group = s_group_new(self, topic, "");
        group->owner = sub;
        uint64_t from = info.first_seq ? info.first_seq : 1;
        if (start == TERN_START_NEW) {
            from = info.last_seq + 1;
        } else if (start == TERN_START_SEQ && sub->start_value > from) {
            from = sub->start_value;
        } else if (start == TERN_START_TIME) {
            group->min_ts_ns = sub->start_value;
        }
        for (int p = 0; p < S_LANES; p++) {
            group->lane_next[p] = from;
        }
        group->state = G_READY;
        group->dirty = true;
    }
    s_group_add_consumer(group, sub);
}

//  True when SUB has joined a group on TOPIC.
static bool s_sub_on(const r_sub_t *sub, const r_topic_t *topic) {
    for (r_group_t *group = (r_group_t *)zlistx_first(sub->groups); group;
         group = (r_group_t *)zlistx_next(sub->groups)) {
        if (group->topic == topic) {
            return true;
        }
    }
    return false;
}

void r_topic_join(r_route_t *self, r_topic_t *topic, bool appeared) {
    if (!topic->led) {
        return; //  another node serves it (cluster)
    }
    for (r_sub_t *sub = (r_sub_t *)zlistx_first(self->subs); sub;
         sub = (r_sub_t *)zlistx_next(self->subs)) {
        if (tern_pattern_match(sub->pattern, topic->name) && !s_sub_on(sub, topic)) {
            s_join(self, sub, topic, appeared);
        }
    }
}

r_topic_t *r_topic_add(r_route_t *self, uint32_t id, const char *name) {
    r_topic_t *topic = tern_alloc(sizeof *topic);
    topic->id = id;
    snprintf(topic->name, sizeof topic->name, "%s", name);
    topic->groups = zlistx_new();
    topic->led = !self->cluster || r_cluster_leads(self, name, &topic->epoch);
    topic->partition = r_cluster_partition(self, name);
    topic->hw = self->cluster ? 0 : UINT64_MAX; //  cluster: raised by crepl's NOTICEs
    zhashx_insert(self->topics, S_KEY(id), topic);
    r_topic_join(self, topic, true);
    return topic;
}

void r_topic_destroy(r_route_t *self, r_topic_t *topic) {
    r_group_t *group;
    while ((group = (r_group_t *)zlistx_first(topic->groups))) {
        r_group_destroy(self, group);
    }
    zlistx_destroy(&topic->groups);
    zhashx_delete(self->topics, S_KEY(topic->id));
    free(topic);
}

bool r_topic_each(const tern_topic_info_t *info, void *arg) {
    r_route_t *self = (r_route_t *)arg;
    if (!r_topic_get(self, info->id)) {
        r_topic_add(self, info->id, info->name);
    }
    return true;
}

//  At start: a durable group with pending entries is opened now, not when a
//  subscription joins it, so that their timers (max_deliver, expiry) run
//  even if no consumer ever comes back. Loaded by r_open_pending.
static bool s_group_each_pending(const tern_group_info_t *info, void *arg) {
    r_route_t *self = (r_route_t *)arg;
    r_topic_t *topic = r_topic_get(self, info->topic_id);
    if (info->pending && topic && !r_durable_get(self, info->topic_id, info->name)) {
        char key[S_DURABLE_KEY_MAX];
        s_durable_key(key, info->topic_id, info->name);
        zhashx_insert(self->durable, key, s_group_new(self, topic, info->name));
    }
    return true;
}

//  Opens every stored durable group with pending entries (the reader's
//  transaction open).
void r_open_pending(r_route_t *self) {
    if (tern_store_group_list(self->reader, 0, s_group_each_pending, self) != TERN_OK) {
        zsys_error("route: cannot list groups: their timers wait for a consumer");
    }
    for (r_group_t *group = (r_group_t *)zlistx_first(self->groups); group;
         group = (r_group_t *)zlistx_next(self->groups)) {
        if (group->state == G_LOADING) {
            r_group_loaded(self, group, TERN_OK);
        }
    }
}

// ---------------------------------------------------------------------------
//  Subscriptions

void r_sub_remove(r_route_t *self, r_sub_t *sub) {
    uint64_t now = tern_now_ms();
    //  In-flight messages go back to their groups at once.
    size_t nheld = 0;
    r_pend_t **held = (r_pend_t **)tern_tagmap_list(&sub->tags, UINT64_MAX, &nheld);
    for (size_t i = 0; i < nheld; i++) {
        r_pend_t *pend = held[i];
        r_pend_release(pend);
        pend->due_ms = now;
        pend->group->rescan = true;
        r_check_at(pend->group, now);
    }
    free(held);
    r_group_t *group;
    while ((group = (r_group_t *)zlistx_first(sub->groups))) {
        zlistx_delete(sub->groups, zlistx_cursor(sub->groups));
        if (group->opener == sub) {
            group->opener = NULL; //  nobody to answer
        }
        s_group_remove_consumer(group, sub);
        if (group->owner == sub) {
            r_group_destroy(self, group);
        }
    }
    zlistx_delete(self->subs, sub->handle);
    zhashx_delete(sub->session->subs, S_KEY(sub->id));
    tern_tagmap_fini(&sub->tags);
    zlistx_destroy(&sub->groups);
    free(sub);
}

void r_session_gone(r_route_t *self, uint64_t session_id) {
    r_session_t *session = (r_session_t *)zhashx_lookup(self->sessions, S_KEY(session_id));
    if (!session) {
        return;
    }
    r_sub_t *sub;
    while ((sub = (r_sub_t *)zhashx_first(session->subs))) {
        r_sub_remove(self, sub);
    }
    zhashx_delete(self->sessions, S_KEY(session_id)); //  frees it (r_session_free)
}

void r_handle_sub(r_route_t *self, r_session_t *session, tern_event_t *ev) {
    if (!ev->text || !tern_pattern_valid(ev->text, strlen(ev->text))) {
        r_send_error(self, session, ev->req_id, TERN_ETOPIC, "bad topic pattern");
        return;
    }
    if (ev->group[0] && !tern_name_valid(ev->group, strlen(ev->group))) {
        r_send_error(self, session, ev->req_id, TERN_ENAME, "bad group name");
        return;
    }
    if (ev->start > TERN_START_TIME) {
        r_send_error(self, session, ev->req_id, TERN_ERANGE, "bad start");
        return;
    }
    if (zhashx_size(session->subs) >= self->config->max_subscriptions) {
        r_send_error(self, session, ev->req_id, TERN_ELIMIT,
                     "too many subscriptions on this connection (server/max_subscriptions)");
        return;
    }
    r_sub_t *sub = tern_alloc(sizeof *sub);
    sub->id = ++session->next_sub_id;
    sub->session = session;
    snprintf(sub->pattern, sizeof sub->pattern, "%s", ev->text);
    snprintf(sub->group, sizeof sub->group, "%s", ev->group);
    sub->start = ev->start;
    sub->start_value = ev->start_value;
    sub->window = tern_route_window(ev->credit, self->config->max_inflight);
    sub->groups = zlistx_new();
    sub->handle = zlistx_add_end(self->subs, sub);
    zhashx_insert(session->subs, S_KEY(sub->id), sub);
    //  The OK goes only once the subscription's start is fixed, so that
    //  whatever the client publishes after it is delivered to it: after the
    //  joins (an ephemeral group reads the topic's last seq there), and for
    //  a durable subscription after the OPENs of the groups it creates (a
    //  "new" group starts at its OPEN's commit; route gets the result in
    //  that commit's NOTICE, which in a cluster crepl holds until the ISR
    //  has the group, tern_crepl_group.c, so a leader killed after the OK
    //  cannot lose the group and its start). One count stands for this
    //  function until the joins are done.
    sub->ok_req = ev->req_id;
    sub->ok_waits = 1;
    if (self->cluster) {
        r_cluster_sync(self); //  `led` as of now, not of the last loop turn
    }
    //  In a cluster only the topics this node leads: the others' leaders
    //  serve them (r_cluster_tick joins them here if this node takes over).
    for (r_topic_t *topic = (r_topic_t *)zhashx_first(self->topics); topic;
         topic = (r_topic_t *)zhashx_next(self->topics)) {
        if (topic->led && tern_pattern_match(sub->pattern, topic->name)) {
            s_join(self, sub, topic, false);
        }
    }
    s_ok_wait_done(self, sub); //  the joins are done
    if (self->config->verbose) {
        zsys_info("route: session %" PRIu64 " sub %" PRIu64 " on %s group '%s' window %u",
                  session->id, sub->id, sub->pattern, sub->group, sub->window);
    }
}

void r_handle_ack(r_route_t *self, r_session_t *session, r_sub_t *sub, tern_event_t *ev) {
    r_pend_t *pend = (r_pend_t *)tern_tagmap_get(&sub->tags, ev->tag);
    if (ev->type == TERN_EV_ACK && ev->cumulative) {
        size_t n = 0;
        r_pend_t **list = (r_pend_t **)tern_tagmap_list(&sub->tags, ev->tag, &n);
        for (size_t i = 0; i < n; i++) {
            r_pend_ack(self, list[i]);
        }
        free(list);
        if (n == 0 && (ev->tag == 0 || ev->tag > sub->next_tag)) {
            r_send_error(self, session, ev->req_id, TERN_ENOTFOUND, "unknown tag");
        }
        return;
    }
    if (!pend) {
        r_send_error(self, session, ev->req_id, TERN_ENOTFOUND, "unknown or expired tag");
        return;
    }
    uint64_t now = tern_now_ms();
    if (ev->type == TERN_EV_ACK) {
        r_pend_ack(self, pend);
    } else if (ev->type == TERN_EV_NACK) {
        tern_metrics_add(self->metrics->nacked, 1);
        r_count(self, pend->group, TERN_SC_NACKED);
        if (self->config->verbose) {
            zsys_info("route: nacked %s/%s seq %" PRIu64 " trace %s", pend->group->topic->name,
                      pend->group->name, pend->seq, pend->trace ? pend->trace : "-");
        }
        uint64_t delay = ev->has_delay
                             ? ev->delay_ms
                             : tern_route_backoff_ms(self->config->backoff_ms,
                                                     self->config->backoff_max_ms, pend->count);
        //  Persist the NACK itself (its history event) even when this was the
        //  last delivery and r_pend_retry dead-letters the message at once.
        if (pend->group->name[0]) {
            r_op(self, TERN_OP_NACK, pend->group, pend->seq)->due_ms = now + delay;
        }
        r_pend_retry(self, pend, now + delay, false);
    } else {
        r_pend_release(pend);
        r_pend_dead(self, pend, ev->text && ev->text[0] ? ev->text : "term");
    }
}

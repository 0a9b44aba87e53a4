/*  tern_audit.c - delivery audit and message trace from the stored history.

    The store records, in the same transaction as each change, one event per
    step of a message's life (stored, delivered, acked, nacked, dead,
    replayed, expired). An audit replays those events message by message:
    for each group, a message it was owed ends in exactly one state, acked,
    dead, expired or pending, so the four always add up to `published` and
    the numbers can be checked against what producers and consumers saw.

    A group is owed a message if the history shows the group handling it, or
    if the message was stored after the group was created (a group created
    with --from first is owed older messages too, but they count only once
    it has handled them). Messages whose history is gone (trace retention,
    or stored while tracing was off) are not counted; `gaps` says how many
    seqs in the audited range had no history.

    delivered counts DELIVERED events (every delivery, redeliveries too) and
    redelivered those with a delivery count above 1: the definitions of the
    group counters and of the metrics (docs/operations.md, "Delivery
    counters"). A peer DC's ack writes ACKED like a local one (the store's
    ack-state apply), and no DELIVERED: it was not delivered here.
*/
#include "tern_audit.h"
#include "tern_partition.h"
#include "tern_work.h"
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { S_NONE = 0, S_ACKED = 1, S_DEAD = 2, S_EXPIRED = 3 };

typedef struct {
    uint64_t msg_id;     //  the message
    uint64_t seq;        //  its seq
    uint64_t stored_ns;  //  when it was stored
    uint32_t deliveries; //  deliveries so far
} s_stuck_t;

typedef struct {
    char name[TERN_NAME_MAX + 1];          //  group name
    uint64_t created_ns;                   //  group creation time
    uint64_t published;                    //  totals over the audited messages
    uint64_t delivered;                    //  deliveries (DELIVERED events)
    uint64_t acked;                        //  ended acked
    uint64_t pending;                      //  not yet acked, dead or expired
    uint64_t redelivered;                  //  deliveries with delivery count > 1
    uint64_t dead;                         //  ended in the DLQ
    uint64_t expired;                      //  expired before the group acked them
    uint64_t oldest_ns;                    //  stored time of the oldest pending message
    s_stuck_t stuck[TERN_AUDIT_STUCK_MAX]; //  oldest pending messages
    size_t nstuck;                         //  entries used
    //  The message being replayed:
    bool m_touched;          //  the group has events for it
    uint32_t m_deliveries;   //  DELIVERED events
    uint32_t m_redeliveries; //  DELIVERED events with count > 1
    int m_state;             //  S_*
} s_group_t;

typedef struct {
    s_group_t *groups;  //  owned array
    size_t ngroups;     //  used
    const char *filter; //  only this group ("" = all)
    uint64_t since_ns;  //  messages stored before this are skipped
    uint64_t now_ns;    //  audit time
    //  The message being replayed:
    bool have;          //  some event seen
    uint64_t seq;       //  its seq
    bool stored;        //  STORED seen
    uint64_t stored_ns; //  when
    uint64_t expire_ns; //  expiry, 0 = never
    uint64_t msg_id;    //  id
    bool swept;         //  EXPIRED (sweep) seen
    //  Topic-wide:
    uint64_t prev_seq; //  last audited seq with history
    uint64_t gaps;     //  seqs without history between audited ones
    uint64_t scanned;  //  events read
    bool truncated;    //  stopped at TERN_AUDIT_SCAN_MAX
} s_audit_t;

const char *tern_trace_type_name(int type) {
    static const char *names[] = {"unknown", "stored",   "delivered",  "acked",   "nacked",
                                  "dead",    "replayed", "replicated", "expired", "timeout"};
    return type >= 1 && type <= 9 ? names[type] : names[0];
}

static void s_key_raw(tern_json_t *out, const char *key, const char *raw) {
    tern_json_sep(out);
    tern_json_str(out, key);
    tern_json_raw(out, ":");
    tern_json_raw(out, raw);
}

static bool s_group_each(const tern_group_info_t *info, void *arg) {
    s_audit_t *audit = (s_audit_t *)arg;
    if (audit->filter[0] && strcmp(audit->filter, info->name) != 0) {
        return true;
    }
    if (audit->ngroups == TERN_AUDIT_GROUPS_MAX) {
        return false;
    }
    s_group_t *g = &audit->groups[audit->ngroups++];
    memset(g, 0, sizeof *g);
    snprintf(g->name, sizeof g->name, "%s", info->name);
    g->created_ns = info->created_ns;
    return true;
}

static s_group_t *s_group(s_audit_t *audit, const char *name) {
    for (size_t i = 0; i < audit->ngroups; i++) {
        if (strcmp(audit->groups[i].name, name) == 0) {
            return &audit->groups[i];
        }
    }
    return NULL;
}

//  The current message is complete: count it for every group it was owed to.
static void s_finish(s_audit_t *audit) {
    if (!audit->have) {
        return;
    }
    bool counted = audit->stored && audit->stored_ns >= audit->since_ns;
    if (counted) {
        if (audit->prev_seq && audit->seq > audit->prev_seq + 1) {
            audit->gaps += audit->seq - audit->prev_seq - 1;
        }
        audit->prev_seq = audit->seq;
    }
    bool expired = audit->swept || (audit->expire_ns && audit->expire_ns <= audit->now_ns);
    for (size_t i = 0; i < audit->ngroups; i++) {
        s_group_t *g = &audit->groups[i];
        bool owed = g->m_touched || audit->stored_ns >= g->created_ns;
        if (counted && owed) {
            g->published++;
            g->delivered += g->m_deliveries;
            g->redelivered += g->m_redeliveries;
            if (g->m_state == S_ACKED) {
                g->acked++;
            } else if (g->m_state == S_DEAD) {
                g->dead++;
            } else if (g->m_state == S_EXPIRED || expired) {
                g->expired++;
            } else {
                g->pending++;
                if (!g->oldest_ns || audit->stored_ns < g->oldest_ns) {
                    g->oldest_ns = audit->stored_ns;
                }
                if (g->nstuck < TERN_AUDIT_STUCK_MAX) {
                    s_stuck_t *s = &g->stuck[g->nstuck++];
                    s->msg_id = audit->msg_id;
                    s->seq = audit->seq;
                    s->stored_ns = audit->stored_ns;
                    s->deliveries = g->m_deliveries;
                }
            }
        }
        g->m_touched = false;
        g->m_deliveries = g->m_redeliveries = 0;
        g->m_state = S_NONE;
    }
    audit->have = audit->stored = audit->swept = false;
    audit->stored_ns = audit->expire_ns = audit->msg_id = 0;
}

static bool s_audit_event(const tern_trace_event_t *ev, void *arg) {
    s_audit_t *audit = (s_audit_t *)arg;
    if (++audit->scanned > TERN_AUDIT_SCAN_MAX) {
        audit->truncated = true;
        return false;
    }
    if (!audit->have || ev->seq != audit->seq) {
        s_finish(audit);
        audit->have = true;
        audit->seq = ev->seq;
    }
    if (ev->type == TERN_TRACE_STORED) {
        audit->stored = true;
        audit->stored_ns = ev->at_ns;
        audit->expire_ns = ev->expire_at_ns;
        audit->msg_id = ev->msg_id;
        return true;
    }
    if (ev->type == TERN_TRACE_EXPIRED && !ev->group[0]) {
        audit->swept = true;
        return true;
    }
    s_group_t *g = ev->group[0] ? s_group(audit, ev->group) : NULL;
    if (!g) {
        return true;
    }
    g->m_touched = true;
    switch (ev->type) {
        case TERN_TRACE_DELIVERED:
            g->m_deliveries++;
            g->m_redeliveries += ev->delivery_count > 1;
            break;
        case TERN_TRACE_ACKED:
            g->m_state = S_ACKED;
            break;
        case TERN_TRACE_DEAD:
            g->m_state = S_DEAD;
            break;
        case TERN_TRACE_REPLAYED:
            g->m_state = S_NONE;
            break;
        case TERN_TRACE_EXPIRED:
            if (g->m_state == S_NONE) {
                g->m_state = S_EXPIRED;
            }
            break;
        default:
            break;
    }
    return true;
}

tern_err_t tern_audit_json(tern_store_reader_t *reader, const char *topic, const char *group,
                           uint64_t since_ms, uint64_t now_ns, tern_json_t *out) {
    tern_topic_info_t info;
    tern_err_t rc = tern_store_topic_get(reader, topic, &info);
    if (rc != TERN_OK) {
        return rc;
    }
    s_audit_t audit;
    memset(&audit, 0, sizeof audit);
    audit.filter = group ? group : "";
    audit.now_ns = now_ns;
    uint64_t since_ns = since_ms * 1000000ull;
    audit.since_ns = since_ms && now_ns > since_ns ? now_ns - since_ns : 0;
    audit.groups = tern_alloc(TERN_AUDIT_GROUPS_MAX * sizeof(s_group_t));
    rc = tern_store_group_list(reader, info.id, s_group_each, &audit);
    if (rc == TERN_OK && audit.filter[0] && audit.ngroups == 0) {
        rc = TERN_ENOTFOUND;
    }
    if (rc == TERN_OK) {
        rc = tern_store_trace_scan(reader, info.id, 1, UINT64_MAX, s_audit_event, &audit);
    }
    if (rc != TERN_OK) {
        free(audit.groups);
        return rc;
    }
    if (!audit.truncated) {
        s_finish(&audit);
    }
    tern_json_raw(out, "[");
    for (size_t i = 0; i < audit.ngroups; i++) {
        s_group_t *g = &audit.groups[i];
        tern_json_sep(out);
        tern_json_raw(out, "{");
        tern_json_key_str(out, "topic", topic);
        tern_json_key_str(out, "group", g->name);
        tern_json_key_u64(out, "published", g->published);
        tern_json_key_u64(out, "delivered", g->delivered);
        tern_json_key_u64(out, "acked", g->acked);
        tern_json_key_u64(out, "pending", g->pending);
        tern_json_key_u64(out, "redelivered", g->redelivered);
        tern_json_key_u64(out, "dead", g->dead);
        tern_json_key_u64(out, "expired", g->expired);
        uint64_t owed = g->published - g->expired;
        char num[64];
        snprintf(num, sizeof num, "%.6f", owed ? (double)g->acked / (double)owed : 1.0);
        s_key_raw(out, "reachability", num);
        uint64_t oldest_ms =
            g->oldest_ns && now_ns > g->oldest_ns ? (now_ns - g->oldest_ns) / 1000000ull : 0;
        tern_json_key_u64(out, "oldest_unacked_ms", oldest_ms);
        tern_json_key_u64(out, "gaps", audit.gaps);
        tern_json_key_bool(out, "truncated", audit.truncated);
        tern_json_sep(out);
        tern_json_str(out, "stuck");
        tern_json_raw(out, ":[");
        for (size_t j = 0; j < g->nstuck; j++) {
            s_stuck_t *s = &g->stuck[j];
            tern_json_sep(out);
            tern_json_raw(out, "{");
            tern_json_key_u64(out, "msg_id", s->msg_id);
            tern_json_key_u64(out, "seq", s->seq);
            tern_json_key_u64(out, "age_ms",
                              now_ns > s->stored_ns ? (now_ns - s->stored_ns) / 1000000ull : 0);
            tern_json_key_u64(out, "deliveries", s->deliveries);
            tern_json_raw(out, "}");
        }
        tern_json_raw(out, "]}");
    }
    tern_json_raw(out, "]");
    free(audit.groups);
    return TERN_OK;
}

//  ---------------------------------------------------------------------------
//  Trace

#define S_TRACE_GROUPS 64 //  groups summarised in one trace

typedef struct {
    tern_json_t *out;                              //  the events array being written
    tern_trace_event_t stored;                     //  the STORED event (type 0 if none)
    char names[S_TRACE_GROUPS][TERN_NAME_MAX + 1]; //  groups seen
    int states[S_TRACE_GROUPS];                    //  their last state (S_*)
    uint32_t deliveries[S_TRACE_GROUPS];           //  DELIVERED events
    uint32_t redelivered[S_TRACE_GROUPS];          //  those with delivery count > 1
    size_t ngroups;                                //  used
    bool swept;                                    //  expired by the sweep
} s_trace_t;

static bool s_trace_event(const tern_trace_event_t *ev, void *arg) {
    s_trace_t *trace = (s_trace_t *)arg;
    tern_json_t *out = trace->out;
    tern_json_sep(out);
    tern_json_raw(out, "{");
    tern_json_key_str(out, "event", tern_trace_type_name(ev->type));
    tern_json_key_u64(out, "at_ms", ev->at_ns / 1000000ull);
    tern_json_key_str(out, "group", ev->group);
    tern_json_key_u64(out, "delivery_count", ev->delivery_count);
    tern_json_key_str(out, "detail", ev->detail);
    tern_json_raw(out, "}");
    if (ev->type == TERN_TRACE_STORED) {
        trace->stored = *ev;
        return true;
    }
    if (!ev->group[0] || ev->type == TERN_TRACE_REPLICATED) {
        trace->swept |= ev->type == TERN_TRACE_EXPIRED;
        return true;
    }
    size_t i = 0;
    while (i < trace->ngroups && strcmp(trace->names[i], ev->group) != 0) {
        i++;
    }
    if (i == trace->ngroups) {
        if (i == S_TRACE_GROUPS) {
            return true;
        }
        snprintf(trace->names[i], sizeof trace->names[i], "%s", ev->group);
        trace->states[i] = S_NONE;
        trace->deliveries[i] = 0;
        trace->redelivered[i] = 0;
        trace->ngroups++;
    }
    if (ev->type == TERN_TRACE_DELIVERED) {
        trace->deliveries[i]++;
        trace->redelivered[i] += ev->delivery_count > 1;
    } else if (ev->type == TERN_TRACE_ACKED) {
        trace->states[i] = S_ACKED;
    } else if (ev->type == TERN_TRACE_DEAD) {
        trace->states[i] = S_DEAD;
    } else if (ev->type == TERN_TRACE_REPLAYED) {
        trace->states[i] = S_NONE;
    } else if (ev->type == TERN_TRACE_EXPIRED && trace->states[i] == S_NONE) {
        trace->states[i] = S_EXPIRED;
    }
    return true;
}

tern_err_t tern_trace_json(tern_store_reader_t *reader, uint64_t msg_id, uint64_t now_ns,
                           const tern_config_t *config, tern_json_t *out) {
    uint32_t topic_id = 0;
    uint64_t seq = 0;
    tern_err_t rc = tern_store_trace_find(reader, msg_id, &topic_id, &seq);
    if (rc != TERN_OK) {
        return rc;
    }
    tern_topic_info_t topic;
    if (tern_store_topic_get_id(reader, topic_id, &topic) != TERN_OK) {
        topic.name[0] = 0; //  deleted since
    }
    tern_json_t events;
    tern_json_init(&events);
    s_trace_t *trace = tern_alloc(sizeof *trace);
    trace->out = &events;
    tern_json_raw(&events, "[");
    rc = tern_store_trace_scan(reader, topic_id, seq, seq, s_trace_event, trace);
    tern_json_raw(&events, "]");
    if (rc == TERN_OK) {
        const tern_trace_event_t *st = &trace->stored;
        bool expired = trace->swept || (st->expire_at_ns && st->expire_at_ns <= now_ns);
        tern_json_raw(out, "{");
        tern_json_key_u64(out, "msg_id", msg_id);
        tern_json_key_str(out, "topic", topic.name);
        tern_json_key_u64(out, "seq", seq);
        tern_json_key_str(out, "trace_id", st->type ? st->detail : "");
        tern_json_key_str(out, "origin", st->type ? st->group : "");
        tern_json_key_u64(out, "stored_at_ms", st->at_ns / 1000000ull);
        tern_json_key_u64(out, "expire_at_ms", st->expire_at_ns / 1000000ull);
        tern_json_key_bool(out, "expired", expired);
        s_key_raw(out, "events", events.data);
        tern_json_sep(out);
        tern_json_str(out, "groups");
        tern_json_raw(out, ":[");
        for (size_t i = 0; i < trace->ngroups; i++) {
            static const char *state_names[] = {"pending", "acked", "dead", "expired"};
            int state = trace->states[i];
            if (state == S_NONE && expired) {
                state = S_EXPIRED;
            }
            tern_json_sep(out);
            tern_json_raw(out, "{");
            tern_json_key_str(out, "group", trace->names[i]);
            tern_json_key_str(out, "state", state_names[state]);
            tern_json_key_u64(out, "deliveries", trace->deliveries[i]);
            tern_json_key_u64(out, "redelivered", trace->redelivered[i]);
            tern_json_raw(out, "}");
        }
        tern_json_raw(out, "]");
        //  Replication: which peers confirmed the outbox position of this
        //  (locally originated) message. In a cluster, positions are per
        //  partition: the topic's partition's confirmation covers it (none
        //  when the topic is gone: its partition is not known any more).
        uint64_t position = 0;
        tern_store_trace_outbox(reader, msg_id, &position);
        bool clustered = config && config->etcd[0];
        if (clustered && !topic.name[0]) {
            position = 0;
        }
        uint32_t pt =
            clustered ? tern_partition_of(topic.name, strlen(topic.name), config->partitions) : 0;
        tern_json_key_u64(out, "outbox_position", position);
        tern_json_sep(out);
        tern_json_str(out, "replicas");
        tern_json_raw(out, ":[");
        for (uint32_t p = 0; position && config && p < config->peer_count && p < TERN_PEERS_MAX;
             p++) {
            uint64_t confirmed = 0;
            tern_err_t err =
                clustered
                    ? tern_store_outbox_confirmed_pt(reader, config->peers[p].name, pt, &confirmed)
                    : tern_store_outbox_confirmed(reader, config->peers[p].name, &confirmed);
            if (err != TERN_OK) {
                confirmed = 0;
            }
            tern_json_sep(out);
            tern_json_raw(out, "{");
            tern_json_key_str(out, "peer", config->peers[p].name);
            tern_json_key_bool(out, "confirmed", confirmed >= position);
            //  When: the recorded time of the peer's first confirmation at
            //  or past the position (0 = not known: not confirmed yet, or
            //  confirmed before the time was recorded, or swept; always in
            //  a cluster, which keeps no confirmation history).
            uint64_t at_ns = 0;
            if (clustered || confirmed < position ||
                tern_store_trace_confirmed_at(reader, config->peers[p].name, position, &at_ns) !=
                    TERN_OK) {
                at_ns = 0;
            }
            tern_json_key_u64(out, "replicated_at_ms", at_ns / 1000000ull);
            tern_json_raw(out, "}");
        }
        tern_json_raw(out, "]}");
    }
    free(trace);
    tern_json_free(&events);
    return rc;
}

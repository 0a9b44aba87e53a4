/*  tern_check.c - tern-check, the history checker: proves on a recorded
    history that the brokers kept their promises.

    Fault tests record what their clients saw (publish attempts and their
    outcomes, deliveries, acks) and what every node holds at the end (its
    log, groups, DLQs), as one JSON object per line (docs/checker.md), then
    run bin/tern-check on the file. It prints one line per violation, each
    starting with the letter of the rule it breaks and citing FILE:LINE of
    the events that prove it, then a summary line; exit 0 when clean, 1 on
    any violation, 2 on bad usage or a malformed line. The rules:
      (a) every acknowledged message is in every listed node's log of its
          topic exactly once, at its acknowledged seq, with its producer
          and producer seq (unless listed as expired);
      (b) a dedup key (producer, producer_seq) names one message: every
          acknowledgement of it has the same msg_id, and no node stores it
          twice or under two msg_ids;
      (c) order: seqs strictly increase along each log; per producer, the
          log follows producer_seq order; replicas agree on every seq;
      (d) a publish refused with a --refused-code was not kept: neither a
          later duplicate ack nor (when the refusal was its key's last
          attempt) a stored copy or a delivery shows it, unless another
          attempt of its key failed with another code (its outcome unknown,
          e.g. TERN_ETIMEOUT: that attempt may be the one kept);
      (e) every acknowledged message was delivered to every listed group of
          its topic (unless in that group's DLQ or expired), nothing stored
          nowhere was delivered, and every consumer ack follows a delivery.
    A test tool: it links protocol/ (tern_alloc, tern_errname) and czmq's
    zhashx, reuses ternctl's JSON reader, and never asserts on its input.
*/
#include "tern_err.h"
#include "tern_alloc.h"
#include "tern_check_history.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_NONE        SIZE_MAX //  no event / no index
#define S_REFUSED_MAX 16       //  --refused-code options
#define S_KEY_MAX     96       //  an index key: a letter and up to three numbers

typedef enum { R_PRESENT, R_DEDUP, R_ORDER, R_REFUSED, R_DELIVERED, R_RULES } s_rule_t;

//  One message by msg_id: what the history says of it.
typedef struct {
    uint64_t msg_id; //  its id
    uint64_t topic;  //  name id of its topic (0 until an event names it)
    size_t acked;    //  its first "ok" publish event, or S_NONE
    size_t stored;   //  its first stored event on any node, or S_NONE
    bool expired;    //  an expired event lists it
    bool superseded; //  a twin whose key another DC acknowledged with a lower msg_id
} s_msg_t;

//  One dedup key (producer, producer_seq): its publish attempts and copies.
typedef struct {
    size_t ok;      //  first "ok" attempt, or S_NONE
    size_t last;    //  last attempt, or S_NONE
    size_t refused; //  last attempt refused with a --refused-code, or S_NONE
    bool unsure;    //  an attempt failed with another code: it may have been kept
    size_t stored;  //  first stored event with this key, or S_NONE
    bool twin;      //  acknowledged in two DCs under different msg_ids (--dcs)
} s_dkey_t;

//  One node's log of one topic.
typedef struct {
    uint64_t dc;    //  name id of its DC (0: none given)
    uint64_t node;  //  name id
    uint64_t topic; //  name id
    size_t last;    //  its last stored event so far, or S_NONE
    size_t next;    //  next log of the same topic, or S_NONE
} s_log_t;

typedef struct {
    ck_history_t *history;                 //  the events, owned
    uint64_t refused_codes[S_REFUSED_MAX]; //  codes that mean "not stored"
    size_t refused_code_count;             //  how many
    size_t limit;                          //  lines printed per rule, 0 = all
    size_t min_logs;                       //  logs each published topic needs listed, 0 = any
    size_t dcs;                            //  DCs each published topic needs logs of, 0 = any
    size_t twins;                          //  dedup keys acknowledged in two DCs (--dcs)
    size_t violations[R_RULES];            //  per rule
    zhashx_t *index;                       //  "X:n:n:n" -> value + 1 (s_get/s_put)
    s_msg_t *msgs;                         //  by first appearance
    size_t msg_count;                      //  used
    size_t msg_cap;                        //  allocated
    s_dkey_t *dkeys;                       //  by first appearance
    size_t dkey_count;                     //  used
    size_t dkey_cap;                       //  allocated
    s_log_t *logs;                         //  by first appearance
    size_t log_count;                      //  used
    size_t log_cap;                        //  allocated
    size_t *topic_logs;                    //  name id -> first log of that topic
    bool *topic_published;                 //  name id -> a publish names this topic
    size_t attempts;                       //  publish events
    size_t acked;                          //  distinct msg_ids acknowledged
    size_t refused;                        //  attempts refused with a --refused-code
    size_t stored;                         //  distinct msg_ids in any log
    size_t deliveries;                     //  deliver events
    size_t delivered;                      //  distinct (group, msg_id) delivered
    size_t acks;                           //  consumer ack events
    size_t lost;                           //  acknowledged, missing from a listed log
    size_t undelivered;                    //  (group, acknowledged message) never delivered
} s_check_t;

//  ---------------------------------------------------------------------------
//  Index: one hash of short printf-formed keys to sizes

static bool s_get(s_check_t *self, size_t *value, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void s_put(s_check_t *self, size_t value, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static bool s_get(s_check_t *self, size_t *value, const char *fmt, ...) {
    char key[S_KEY_MAX];
    va_list args;
    va_start(args, fmt);
    vsnprintf(key, sizeof key, fmt, args);
    va_end(args);
    void *found = zhashx_lookup(self->index, key);
    if (found && value) {
        *value = (size_t)(uintptr_t)found - 1;
    }
    return found != NULL;
}

//  Sets KEY to VALUE (inserts or replaces).
static void s_put(s_check_t *self, size_t value, const char *fmt, ...) {
    char key[S_KEY_MAX];
    va_list args;
    va_start(args, fmt);
    vsnprintf(key, sizeof key, fmt, args);
    va_end(args);
    zhashx_update(self->index, key, (void *)(uintptr_t)(value + 1));
}

//  Grows ARRAY (of COUNT items of SIZE bytes, CAP allocated) for one more.
static void *s_grow(void *array, size_t count, size_t *cap, size_t size) {
    if (count < *cap) {
        return array;
    }
    *cap = *cap ? *cap * 2 : 256;
    return tern_realloc(array, *cap * size);
}

//  ---------------------------------------------------------------------------
//  Reports

static const ck_event_t *s_ev(const s_check_t *self, size_t index) {
    return &self->history->events[index];
}

static const char *s_name(const s_check_t *self, uint64_t id) {
    return ck_history_name(self->history, id);
}

//  "FILE:LINE" of event INDEX. The tool is single-threaded: a few rotating
//  buffers let one report line cite several events.
static const char *s_at(const s_check_t *self, size_t index) {
    static char buffers[4][320];
    static int next;
    char *buf = buffers[next++ % 4];
    return ck_history_where(self->history, s_ev(self, index), buf, sizeof buffers[0]);
}

static void s_violation(s_check_t *self, s_rule_t rule, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void s_violation(s_check_t *self, s_rule_t rule, const char *fmt, ...) {
    static const char *const letters[R_RULES] = {"a", "b", "c", "d", "e"};
    self->violations[rule]++;
    if (self->limit && self->violations[rule] > self->limit) {
        return;
    }
    va_list args;
    va_start(args, fmt);
    printf("(%s) ", letters[rule]);
    vprintf(fmt, args);
    printf("\n");
    va_end(args);
}

//  ---------------------------------------------------------------------------
//  Records

//  The message MSG_ID, created on first use; TOPIC (0 = unknown) fills in
//  its topic when it has none yet.
static s_msg_t *s_msg(s_check_t *self, uint64_t msg_id, uint64_t topic) {
    size_t at;
    if (!s_get(self, &at, "m:%llu", (unsigned long long)msg_id)) {
        self->msgs = s_grow(self->msgs, self->msg_count, &self->msg_cap, sizeof *self->msgs);
        at = self->msg_count++;
        self->msgs[at] = (s_msg_t){msg_id, 0, S_NONE, S_NONE, false, false};
        s_put(self, at, "m:%llu", (unsigned long long)msg_id);
    }
    if (!self->msgs[at].topic) {
        self->msgs[at].topic = topic;
    }
    return &self->msgs[at];
}

//  The dedup key of EV (NULL when it has no producer), created on first use.
static s_dkey_t *s_dkey(s_check_t *self, const ck_event_t *ev) {
    if (!ev->v[CK_PRODUCER]) {
        return NULL;
    }
    size_t at;
    unsigned long long producer = ev->v[CK_PRODUCER], seq = ev->v[CK_PRODUCER_SEQ];
    if (!s_get(self, &at, "k:%llu:%llu", producer, seq)) {
        self->dkeys = s_grow(self->dkeys, self->dkey_count, &self->dkey_cap, sizeof *self->dkeys);
        at = self->dkey_count++;
        self->dkeys[at] =
            (s_dkey_t){.ok = S_NONE, .last = S_NONE, .refused = S_NONE, .stored = S_NONE};
        s_put(self, at, "k:%llu:%llu", producer, seq);
    }
    return &self->dkeys[at];
}

//  The log of (DC, NODE, TOPIC), created on first use.
static size_t s_log(s_check_t *self, uint64_t dc, uint64_t node, uint64_t topic) {
    size_t at;
    unsigned long long d = dc, n = node, t = topic;
    if (!s_get(self, &at, "l:%llu:%llu:%llu", d, n, t)) {
        self->logs = s_grow(self->logs, self->log_count, &self->log_cap, sizeof *self->logs);
        at = self->log_count++;
        self->logs[at] = (s_log_t){dc, node, topic, S_NONE, self->topic_logs[topic]};
        self->topic_logs[topic] = at;
        s_put(self, at, "l:%llu:%llu:%llu", d, n, t);
    }
    return at;
}

static bool s_is_refused(const s_check_t *self, uint64_t code) {
    for (size_t i = 0; i < self->refused_code_count; i++) {
        if (self->refused_codes[i] == code) {
            return true;
        }
    }
    return false;
}

//  "msg_id X (topic T seq S, producer P seq N)" of event EV into BUF.
static const char *s_describe(const s_check_t *self, const ck_event_t *ev, char *buf, size_t cap) {
    int n =
        snprintf(buf, cap, "msg_id %llu (topic %s seq %llu", (unsigned long long)ev->v[CK_MSG_ID],
                 s_name(self, ev->v[CK_TOPIC]), (unsigned long long)ev->v[CK_SEQ]);
    if (ev->v[CK_PRODUCER] && n > 0 && (size_t)n < cap) {
        snprintf(buf + n, cap - (size_t)n, ", producer %s seq %llu)",
                 s_name(self, ev->v[CK_PRODUCER]), (unsigned long long)ev->v[CK_PRODUCER_SEQ]);
    } else if (n > 0 && (size_t)n < cap) {
        snprintf(buf + n, cap - (size_t)n, ")");
    }
    return buf;
}

//  ---------------------------------------------------------------------------
//  Pass 1: publish attempts (rules b and d)

//  An "ok" publish EV (event INDEX) of message MSG: one msg_id, one publish.
static void s_publish_acked(s_check_t *self, size_t index, s_msg_t *msg) {
    const ck_event_t *ev = s_ev(self, index);
    if (msg->acked == S_NONE) {
        msg->acked = index;
        self->acked++;
        return;
    }
    const ck_event_t *first = s_ev(self, msg->acked);
    if (first->v[CK_TOPIC] != ev->v[CK_TOPIC] || first->v[CK_SEQ] != ev->v[CK_SEQ] ||
        first->v[CK_PRODUCER] != ev->v[CK_PRODUCER] ||
        first->v[CK_PRODUCER_SEQ] != ev->v[CK_PRODUCER_SEQ]) {
        char a[256], b[256];
        s_violation(self, R_DEDUP, "one msg_id acknowledged for two publishes: %s at %s, %s at %s",
                    s_describe(self, first, a, sizeof a), s_at(self, msg->acked),
                    s_describe(self, ev, b, sizeof b), s_at(self, index));
    }
}

//  An "ok" publish (event INDEX) of KEY whose msg_id differs from the
//  first ok of its key in another DC (event FIRST): twins of a partition
//  (docs/replication.md "Conflicts"). Every DC keeps the lowest msg_id, so
//  the higher one is superseded: excused from presence and delivery, and
//  must be in no log (s_pass_present). The key's ok becomes the lowest.
static void s_twin(s_check_t *self, size_t index, s_dkey_t *key) {
    const ck_event_t *ev = s_ev(self, index), *first = s_ev(self, key->ok);
    bool lower = ev->v[CK_MSG_ID] < first->v[CK_MSG_ID];
    s_msg(self, lower ? first->v[CK_MSG_ID] : ev->v[CK_MSG_ID], 0)->superseded = true;
    self->twins += !key->twin;
    key->twin = true;
    if (lower) {
        key->ok = index;
    }
}

//  An "ok" publish (event INDEX) of KEY: the same msg_id as every earlier
//  ok of the key in its DC, and (unless --dcs makes them twins) in others.
static void s_publish_key_ok(s_check_t *self, size_t index, s_dkey_t *key) {
    const ck_event_t *ev = s_ev(self, index);
    unsigned long long k = (unsigned long long)(key - self->dkeys), dc = ev->v[CK_DC];
    size_t mine = S_NONE;
    if (!s_get(self, &mine, "o:%llu:%llu", k, dc)) {
        s_put(self, index, "o:%llu:%llu", k, dc);
        mine = key->ok != S_NONE && !self->dcs ? key->ok : S_NONE;
    }
    if (mine != S_NONE && s_ev(self, mine)->v[CK_MSG_ID] != ev->v[CK_MSG_ID]) {
        s_violation(self, R_DEDUP,
                    "producer %s seq %llu re-sent: acknowledged as msg_id %llu at %s, then "
                    "as msg_id %llu at %s",
                    s_name(self, ev->v[CK_PRODUCER]), (unsigned long long)ev->v[CK_PRODUCER_SEQ],
                    (unsigned long long)s_ev(self, mine)->v[CK_MSG_ID], s_at(self, mine),
                    (unsigned long long)ev->v[CK_MSG_ID], s_at(self, index));
    } else if (mine == S_NONE && key->ok != S_NONE &&
               s_ev(self, key->ok)->v[CK_MSG_ID] != ev->v[CK_MSG_ID]) {
        s_twin(self, index, key);
    }
}

//  Publish event INDEX against what its dedup key saw before it.
static void s_publish_key(s_check_t *self, size_t index, s_dkey_t *key) {
    const ck_event_t *ev = s_ev(self, index);
    if (ev->v[CK_OUTCOME]) {
        const ck_event_t *first = key->ok == S_NONE ? NULL : s_ev(self, key->ok);
        s_publish_key_ok(self, index, key);
        if (!first && key->refused != S_NONE && !key->unsure && ev->v[CK_DUPLICATE]) {
            s_violation(
                self, R_REFUSED,
                "producer %s seq %llu refused with code %llu at %s, then acknowledged "
                "as a duplicate (msg_id %llu) at %s: the refused publish was kept",
                s_name(self, ev->v[CK_PRODUCER]), (unsigned long long)ev->v[CK_PRODUCER_SEQ],
                (unsigned long long)s_ev(self, key->refused)->v[CK_CODE], s_at(self, key->refused),
                (unsigned long long)ev->v[CK_MSG_ID], s_at(self, index));
        }
        if (!first) {
            key->ok = index;
        }
    } else if (s_is_refused(self, ev->v[CK_CODE])) {
        key->refused = index;
    } else {
        key->unsure = true;
    }
    key->last = index;
}

static void s_pass_publishes(s_check_t *self) {
    for (size_t i = 0; i < self->history->count; i++) {
        const ck_event_t *ev = s_ev(self, i);
        if (ev->kind != CK_PUBLISH) {
            continue;
        }
        self->attempts++;
        self->topic_published[ev->v[CK_TOPIC]] = true;
        if (!ev->v[CK_OUTCOME] && s_is_refused(self, ev->v[CK_CODE])) {
            self->refused++;
        }
        if (ev->v[CK_OUTCOME]) {
            s_publish_acked(self, i, s_msg(self, ev->v[CK_MSG_ID], ev->v[CK_TOPIC]));
        }
        s_dkey_t *key = s_dkey(self, ev);
        if (key) {
            s_publish_key(self, i, key);
        }
    }
}

//  ---------------------------------------------------------------------------
//  Pass 2: the nodes' logs (rules a, b and c as they are read)

//  Stored event INDEX in log LOG against the log's previous entries.
static void s_stored_in_log(s_check_t *self, size_t index, size_t log) {
    const ck_event_t *ev = s_ev(self, index);
    const s_log_t *l = &self->logs[log];
    const char *node = s_name(self, ev->v[CK_NODE_NAME]), *topic = s_name(self, ev->v[CK_TOPIC]);
    unsigned long long msg_id = ev->v[CK_MSG_ID], seq = ev->v[CK_SEQ];
    size_t prev;
    if (l->last != S_NONE && s_ev(self, l->last)->v[CK_SEQ] >= seq) {
        s_violation(self, R_ORDER, "node %s, topic %s: seq %llu at %s follows seq %llu at %s", node,
                    topic, seq, s_at(self, index),
                    (unsigned long long)s_ev(self, l->last)->v[CK_SEQ], s_at(self, l->last));
    }
    if (s_get(self, &prev, "L:%zu:%llu", log, msg_id)) {
        s_violation(self, R_PRESENT,
                    "msg_id %llu is twice in node %s's log of %s: seq %llu at %s "
                    "and seq %llu at %s",
                    msg_id, node, topic, (unsigned long long)s_ev(self, prev)->v[CK_SEQ],
                    s_at(self, prev), seq, s_at(self, index));
    } else {
        s_put(self, index, "L:%zu:%llu", log, msg_id);
    }
    //  Order holds per producer and origin DC (the DC that acknowledged it);
    //  a twin's winner is appended where it arrives (docs/replication.md).
    unsigned long long producer = ev->v[CK_PRODUCER], origin = 0;
    const s_dkey_t *key = producer ? s_dkey(self, ev) : NULL;
    if (s_get(self, &prev, "m:%llu", msg_id) && self->msgs[prev].acked != S_NONE) {
        origin = s_ev(self, self->msgs[prev].acked)->v[CK_DC];
    }
    if (producer && !key->twin && s_get(self, &prev, "p:%zu:%llu:%llu", log, producer, origin) &&
        s_ev(self, prev)->v[CK_PRODUCER_SEQ] > ev->v[CK_PRODUCER_SEQ]) {
        s_violation(self, R_ORDER,
                    "node %s, topic %s: producer %s seq %llu (seq %llu, at %s) is stored after "
                    "its seq %llu (seq %llu, at %s)",
                    node, topic, s_name(self, ev->v[CK_PRODUCER]),
                    (unsigned long long)ev->v[CK_PRODUCER_SEQ], seq, s_at(self, index),
                    (unsigned long long)s_ev(self, prev)->v[CK_PRODUCER_SEQ],
                    (unsigned long long)s_ev(self, prev)->v[CK_SEQ], s_at(self, prev));
    }
    if (producer) {
        s_put(self, index, "p:%zu:%llu:%llu", log, producer, origin);
    }
    self->logs[log].last = index;
}

//  True if events A and B are of the same node (name and DC).
static bool s_same_node(const ck_event_t *a, const ck_event_t *b) {
    return a->v[CK_NODE_NAME] == b->v[CK_NODE_NAME] && a->v[CK_DC] == b->v[CK_DC];
}

//  Stored event INDEX against the other copies of its dedup key and its
//  seq: on the same node (stored twice) and on the others (replicas differ).
static void s_stored_across(s_check_t *self, size_t index) {
    const ck_event_t *ev = s_ev(self, index);
    unsigned long long node = ev->v[CK_NODE_NAME], producer = ev->v[CK_PRODUCER];
    unsigned long long pseq = ev->v[CK_PRODUCER_SEQ], dc = ev->v[CK_DC];
    char a[256], b[256];
    size_t prev;
    if (producer && s_get(self, &prev, "n:%llu:%llu:%llu:%llu", dc, node, producer, pseq)) {
        const ck_event_t *p = s_ev(self, prev);
        if (p->v[CK_MSG_ID] != ev->v[CK_MSG_ID] || p->v[CK_TOPIC] != ev->v[CK_TOPIC]) {
            s_violation(
                self, R_DEDUP, "node %s stores producer %s seq %llu twice: %s at %s, %s at %s",
                s_name(self, node), s_name(self, producer), pseq, s_describe(self, p, a, sizeof a),
                s_at(self, prev), s_describe(self, ev, b, sizeof b), s_at(self, index));
        }
    } else if (producer) {
        s_put(self, index, "n:%llu:%llu:%llu:%llu", dc, node, producer, pseq);
    }
    s_dkey_t *key = s_dkey(self, ev);
    if (key && key->stored == S_NONE) {
        key->stored = index;
    } else if (key && s_ev(self, key->stored)->v[CK_MSG_ID] != ev->v[CK_MSG_ID] &&
               !s_same_node(s_ev(self, key->stored), ev)) {
        s_violation(
            self, R_DEDUP, "producer %s seq %llu is %s on node %s (%s) but %s on node %s (%s)",
            s_name(self, producer), pseq, s_describe(self, s_ev(self, key->stored), a, sizeof a),
            s_name(self, s_ev(self, key->stored)->v[CK_NODE_NAME]), s_at(self, key->stored),
            s_describe(self, ev, b, sizeof b), s_name(self, node), s_at(self, index));
    }
    //  Each DC's log has its own seqs: replicas agree within a DC.
    unsigned long long topic = ev->v[CK_TOPIC], seq = ev->v[CK_SEQ];
    if (!s_get(self, &prev, "s:%llu:%llu:%llu", dc, topic, seq)) {
        s_put(self, index, "s:%llu:%llu:%llu", dc, topic, seq);
    } else if (s_ev(self, prev)->v[CK_MSG_ID] != ev->v[CK_MSG_ID] &&
               !s_same_node(s_ev(self, prev), ev)) {
        s_violation(self, R_ORDER,
                    "topic %s seq %llu is msg_id %llu on node %s (%s) but msg_id %llu "
                    "on node %s (%s)",
                    s_name(self, topic), seq, (unsigned long long)s_ev(self, prev)->v[CK_MSG_ID],
                    s_name(self, s_ev(self, prev)->v[CK_NODE_NAME]), s_at(self, prev),
                    (unsigned long long)ev->v[CK_MSG_ID], s_name(self, node), s_at(self, index));
    }
}

static void s_pass_state(s_check_t *self) {
    size_t prev;
    for (size_t i = 0; i < self->history->count; i++) {
        const ck_event_t *ev = s_ev(self, i);
        unsigned long long group = ev->v[CK_GROUP_NAME], msg_id = ev->v[CK_MSG_ID];
        if (ev->kind == CK_STORED) {
            s_stored_in_log(self, i,
                            s_log(self, ev->v[CK_DC], ev->v[CK_NODE_NAME], ev->v[CK_TOPIC]));
            s_stored_across(self, i);
            s_msg_t *msg = s_msg(self, ev->v[CK_MSG_ID], ev->v[CK_TOPIC]);
            self->stored += msg->stored == S_NONE;
            msg->stored = msg->stored == S_NONE ? i : msg->stored;
        } else if (ev->kind == CK_NODE && (ev->has & (1u << CK_TOPIC))) {
            s_log(self, ev->v[CK_DC], ev->v[CK_NODE_NAME], ev->v[CK_TOPIC]);
        } else if (ev->kind == CK_NODE) {
            //  Every topic published to, as the node holds them all.
            for (size_t t = 0; t < self->history->name_count; t++) {
                if (self->topic_published[t]) {
                    s_log(self, ev->v[CK_DC], ev->v[CK_NODE_NAME], t);
                }
            }
        } else if (ev->kind == CK_EXPIRED) {
            s_msg(self, ev->v[CK_MSG_ID], ev->v[CK_TOPIC])->expired = true;
        } else if (ev->kind == CK_DLQ) {
            s_put(self, i, "q:%llu:%llu", group, msg_id);
        } else if (ev->kind == CK_GROUP &&
                   !s_get(self, &prev, "g:%llu:%llu", group, (unsigned long long)ev->v[CK_TOPIC])) {
            s_put(self, i, "g:%llu:%llu", group, (unsigned long long)ev->v[CK_TOPIC]);
        }
    }
}

//  ---------------------------------------------------------------------------
//  Pass 3: every acknowledged message on every listed log (rule a), and
//  refusals that were the last word on their key (rule d)

//  Acknowledged message MSG in log LOG; returns false if it is missing.
static bool s_present_in(s_check_t *self, const s_msg_t *msg, size_t log) {
    const ck_event_t *ack = s_ev(self, msg->acked);
    const char *node = s_name(self, self->logs[log].node);
    char a[256];
    size_t at;
    bool found = s_get(self, &at, "L:%zu:%llu", log, (unsigned long long)msg->msg_id);
    if (msg->superseded && found) {
        //  Rule (b): the twin that lost must be gone from every log.
        s_violation(self, R_DEDUP,
                    "acknowledged %s at %s lost to a lower msg_id of its key in another DC "
                    "but is still in node %s's log at %s",
                    s_describe(self, ack, a, sizeof a), s_at(self, msg->acked), node,
                    s_at(self, at));
        return true;
    } else if (msg->superseded) {
        return true;
    } else if (!found) {
        s_violation(self, R_PRESENT, "acknowledged %s at %s is missing from node %s's log",
                    s_describe(self, ack, a, sizeof a), s_at(self, msg->acked), node);
        return false;
    }
    //  Each DC's log has its own seqs: the acknowledged seq is its DC's.
    const ck_event_t *copy = s_ev(self, at);
    bool same_dc = copy->v[CK_DC] == ack->v[CK_DC];
    if ((same_dc && copy->v[CK_SEQ] != ack->v[CK_SEQ]) ||
        copy->v[CK_PRODUCER] != ack->v[CK_PRODUCER] ||
        copy->v[CK_PRODUCER_SEQ] != ack->v[CK_PRODUCER_SEQ]) {
        char b[256];
        s_violation(self, R_PRESENT, "acknowledged %s at %s is %s on node %s at %s",
                    s_describe(self, ack, a, sizeof a), s_at(self, msg->acked),
                    s_describe(self, copy, b, sizeof b), node, s_at(self, at));
    }
    return true;
}

//  With --min-logs: topic T, published to, must have that many listed logs
//  (replicas), so that a cluster test whose ISR shrank cannot pass by
//  checking fewer copies than it promised.
//  With --dcs: likewise logs of that many DCs, so that a cross-DC test
//  cannot pass by listing one DC.
static void s_min_logs(s_check_t *self, size_t t) {
    size_t logs = 0, dcs = 0;
    for (size_t log = self->topic_logs[t]; log != S_NONE; log = self->logs[log].next) {
        logs++;
        size_t other = self->logs[log].next;
        while (other != S_NONE && self->logs[other].dc != self->logs[log].dc) {
            other = self->logs[other].next;
        }
        dcs += other == S_NONE; //  the last log of its DC in the chain
    }
    if (self->topic_published[t] && logs < self->min_logs) {
        s_violation(self, R_PRESENT, "topic %s has %zu node log%s listed, --min-logs is %zu",
                    s_name(self, t), logs, logs == 1 ? "" : "s", self->min_logs);
    }
    if (self->topic_published[t] && dcs < self->dcs) {
        s_violation(self, R_PRESENT, "topic %s has logs of %zu DC%s listed, --dcs is %zu",
                    s_name(self, t), dcs, dcs == 1 ? "" : "s", self->dcs);
    }
}

static void s_pass_present(s_check_t *self) {
    for (size_t i = 0; i < self->msg_count; i++) {
        const s_msg_t *msg = &self->msgs[i];
        if (msg->acked == S_NONE || msg->expired) {
            continue;
        }
        bool lost = false;
        for (size_t log = self->topic_logs[msg->topic]; log != S_NONE; log = self->logs[log].next) {
            lost |= !s_present_in(self, msg, log);
        }
        self->lost += lost;
    }
    for (size_t i = 0; i < self->dkey_count; i++) {
        const s_dkey_t *key = &self->dkeys[i];
        if (key->refused == S_NONE || key->last != key->refused || key->ok != S_NONE ||
            key->unsure || key->stored == S_NONE) {
            continue;
        }
        const ck_event_t *ev = s_ev(self, key->refused), *copy = s_ev(self, key->stored);
        char a[256];
        s_violation(self, R_REFUSED,
                    "producer %s seq %llu refused with code %llu at %s (its last attempt) is "
                    "stored on node %s: %s at %s",
                    s_name(self, ev->v[CK_PRODUCER]), (unsigned long long)ev->v[CK_PRODUCER_SEQ],
                    (unsigned long long)ev->v[CK_CODE], s_at(self, key->refused),
                    s_name(self, copy->v[CK_NODE_NAME]), s_describe(self, copy, a, sizeof a),
                    s_at(self, key->stored));
    }
    for (size_t t = 0; t < self->history->name_count; t++) {
        if (self->topic_published[t] && self->topic_logs[t] == S_NONE) {
            printf("note: no node's log of topic %s is listed: rule (a) was not checked for it\n",
                   s_name(self, t));
        }
        s_min_logs(self, t);
    }
}

//  ---------------------------------------------------------------------------
//  Pass 4: deliveries and consumer acks (rules e and d)

//  Deliver event INDEX: counted, and checked to be a message that exists.
static void s_delivery(s_check_t *self, size_t index) {
    const ck_event_t *ev = s_ev(self, index);
    unsigned long long group = ev->v[CK_GROUP_NAME], msg_id = ev->v[CK_MSG_ID];
    size_t count;
    self->deliveries++;
    if (!s_get(self, &count, "d:%llu:%llu", group, msg_id)) {
        self->delivered++;
        s_put(self, index, "D:%llu:%llu", group, msg_id);
        count = 0;
    }
    s_put(self, count + 1, "d:%llu:%llu", group, msg_id);
    size_t at;
    const s_msg_t *msg = s_get(self, &at, "m:%llu", msg_id) ? &self->msgs[at] : NULL;
    bool known = msg && (msg->acked != S_NONE || msg->stored != S_NONE || msg->expired);
    if (!known && count == 0 && self->topic_logs[ev->v[CK_TOPIC]] != S_NONE) {
        s_violation(self, R_DELIVERED,
                    "msg_id %llu delivered to group %s at %s is in no node's log of %s and was "
                    "never acknowledged",
                    msg_id, s_name(self, group), s_at(self, index), s_name(self, ev->v[CK_TOPIC]));
    }
    s_dkey_t *key = (ev->has & (1u << CK_PRODUCER)) ? s_dkey(self, ev) : NULL;
    if (key && key->refused != S_NONE && key->last == key->refused && key->ok == S_NONE &&
        !key->unsure && count == 0) {
        s_violation(self, R_REFUSED,
                    "producer %s seq %llu refused with code %llu at %s (its last attempt) was "
                    "delivered to group %s as msg_id %llu at %s",
                    s_name(self, ev->v[CK_PRODUCER]), (unsigned long long)ev->v[CK_PRODUCER_SEQ],
                    (unsigned long long)s_ev(self, key->refused)->v[CK_CODE],
                    s_at(self, key->refused), s_name(self, group), msg_id, s_at(self, index));
    }
}

//  Group event INDEX (first of its group and topic): every acknowledged
//  message of the topic reached it, unless dead-lettered or expired.
static void s_group_complete(s_check_t *self, size_t index) {
    const ck_event_t *ev = s_ev(self, index);
    unsigned long long group = ev->v[CK_GROUP_NAME];
    for (size_t i = 0; i < self->msg_count; i++) {
        const s_msg_t *msg = &self->msgs[i];
        unsigned long long msg_id = msg->msg_id;
        if (msg->acked == S_NONE || msg->topic != ev->v[CK_TOPIC] || msg->expired ||
            msg->superseded || s_get(self, NULL, "d:%llu:%llu", group, msg_id) ||
            s_get(self, NULL, "q:%llu:%llu", group, msg_id)) {
            continue;
        }
        char a[256];
        self->undelivered++;
        s_violation(self, R_DELIVERED, "acknowledged %s at %s was never delivered to group %s (%s)",
                    s_describe(self, s_ev(self, msg->acked), a, sizeof a), s_at(self, msg->acked),
                    s_name(self, group), s_at(self, index));
    }
}

static void s_pass_deliveries(s_check_t *self) {
    for (size_t i = 0; i < self->history->count; i++) {
        if (s_ev(self, i)->kind == CK_DELIVER) {
            s_delivery(self, i);
        }
    }
    for (size_t i = 0; i < self->history->count; i++) {
        const ck_event_t *ev = s_ev(self, i);
        unsigned long long group = ev->v[CK_GROUP_NAME], msg_id = ev->v[CK_MSG_ID];
        size_t first;
        if (ev->kind != CK_ACK) {
            continue;
        }
        self->acks++;
        if (!s_get(self, &first, "D:%llu:%llu", group, msg_id)) {
            s_violation(self, R_DELIVERED,
                        "group %s acked msg_id %llu at %s, never delivered to it",
                        s_name(self, group), msg_id, s_at(self, i));
        } else if (first > i) {
            s_violation(self, R_DELIVERED,
                        "group %s acked msg_id %llu at %s before its first delivery at %s",
                        s_name(self, group), msg_id, s_at(self, i), s_at(self, first));
        }
    }
    for (size_t i = 0; i < self->history->count; i++) {
        const ck_event_t *ev = s_ev(self, i);
        size_t first;
        if (ev->kind == CK_GROUP &&
            s_get(self, &first, "g:%llu:%llu", (unsigned long long)ev->v[CK_GROUP_NAME],
                  (unsigned long long)ev->v[CK_TOPIC]) &&
            first == i) {
            s_group_complete(self, i);
        }
    }
}

//  ---------------------------------------------------------------------------
//  main

static int s_usage(const char *problem, const char *arg) {
    if (problem) {
        fprintf(stderr, "tern-check: %s%s%s\n", problem, arg ? " " : "", arg ? arg : "");
    }
    fprintf(problem ? stderr : stdout,
            "usage: tern-check [--refused-code CODE]... [--limit N] [--min-logs N] [--dcs N]\n"
            "                  [FILE...]\n"
            "Reads a history of publish attempts, deliveries, acks and the nodes' final\n"
            "state (docs/checker.md), prints one line per violation of rules (a)-(e),\n"
            "each citing FILE:LINE, then a summary line.\n"
            "  --refused-code CODE  a publish refused with CODE (a number, or a name such\n"
            "                       as TERN_EFULL) was not stored (rule d); repeatable\n"
            "  --limit N            print at most N violations per rule (all are counted)\n"
            "  --min-logs N         every topic published to needs N node logs listed\n"
            "                       (the replicas of a cluster; rule a)\n"
            "  --dcs N              a cross-DC history (events tagged \"dc\"): every topic\n"
            "                       published to needs logs of N DCs; seqs compared within\n"
            "                       a DC; a key acknowledged in two DCs is a twin, the\n"
            "                       lowest msg_id must be everywhere, the others nowhere\n"
            "  FILE                 history files, read in order (\"-\" or none: stdin)\n"
            "Exit: 0 no violation, 1 violations, 2 bad usage or a malformed line.\n");
    return problem ? 2 : 0;
}

//  CODE as a number or a tern_errname() name; 0 if neither.
static uint64_t s_parse_code(const char *text) {
    char *end;
    unsigned long long n = strtoull(text, &end, 10);
    if (*text >= '0' && *text <= '9' && !*end) {
        return n;
    }
    for (int code = 1; code < 1000; code++) {
        if (strcmp(tern_errname(code), text) == 0) {
            return (uint64_t)code;
        }
    }
    return 0;
}

//  Reads the options into SELF; returns -1 to go on, else the exit code.
static int s_options(s_check_t *self, int argc, char **argv, int *first_file) {
    int i = 1;
    for (; i < argc && argv[i][0] == '-' && argv[i][1]; i++) {
        const char *value = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            return s_usage(NULL, NULL);
        } else if (strcmp(argv[i], "--") == 0) {
            i++;
            break;
        } else if (strcmp(argv[i], "--refused-code") == 0) {
            uint64_t code = value ? s_parse_code(value) : 0;
            if (!code || self->refused_code_count == S_REFUSED_MAX) {
                return s_usage("--refused-code needs a non-zero code or name (16 at most):",
                               value ? value : "(none)");
            }
            self->refused_codes[self->refused_code_count++] = code;
            i++;
        } else if (strcmp(argv[i], "--limit") == 0 || strcmp(argv[i], "--min-logs") == 0 ||
                   strcmp(argv[i], "--dcs") == 0) {
            char *end = NULL;
            unsigned long long n = value ? strtoull(value, &end, 10) : 0;
            if (!value || *value < '0' || *value > '9' || *end) {
                char problem[64];
                snprintf(problem, sizeof problem, "%s needs a number, got", argv[i]);
                return s_usage(problem, value ? value : "(none)");
            }
            size_t *slot = argv[i][2] == 'l'   ? &self->limit
                           : argv[i][2] == 'm' ? &self->min_logs
                                               : &self->dcs;
            *slot = (size_t)n;
            i++;
        } else {
            return s_usage("unknown option", argv[i]);
        }
    }
    *first_file = i;
    return -1;
}

static void s_summary(const s_check_t *self) {
    size_t total = 0;
    if (self->dcs) {
        printf("tern-check: dcs=%zu twins=%zu\n", self->dcs, self->twins);
    }
    for (int r = 0; r < R_RULES; r++) {
        total += self->violations[r];
    }
    printf("tern-check: attempts=%zu acked=%zu refused=%zu stored=%zu deliveries=%zu "
           "delivered=%zu duplicates_delivered=%zu consumer_acks=%zu lost=%zu undelivered=%zu "
           "violations=%zu (a=%zu b=%zu c=%zu d=%zu e=%zu)\n",
           self->attempts, self->acked, self->refused, self->stored, self->deliveries,
           self->delivered, self->deliveries - self->delivered, self->acks, self->lost,
           self->undelivered, total, self->violations[R_PRESENT], self->violations[R_DEDUP],
           self->violations[R_ORDER], self->violations[R_REFUSED], self->violations[R_DELIVERED]);
}

static void s_free(s_check_t *self) {
    ck_history_destroy(&self->history);
    zhashx_destroy(&self->index);
    free(self->msgs);
    free(self->dkeys);
    free(self->logs);
    free(self->topic_logs);
    free(self->topic_published);
}

int main(int argc, char **argv) {
    s_check_t self = {0};
    int first_file = argc, rc = s_options(&self, argc, argv, &first_file);
    if (rc >= 0) {
        return rc;
    }
    self.history = ck_history_new();
    rc = 2;
    for (int i = first_file; i < argc; i++) {
        if (!ck_history_read(self.history, argv[i])) {
            goto done;
        }
    }
    if (first_file == argc && !ck_history_read(self.history, "-")) {
        goto done;
    }
    self.index = zhashx_new();
    size_t names = self.history->name_count;
    self.topic_logs = tern_alloc(names * sizeof *self.topic_logs);
    memset(self.topic_logs, 0xff, names * sizeof *self.topic_logs); //  all S_NONE
    self.topic_published = tern_alloc(names * sizeof *self.topic_published);
    if (!self.index) {
        tern_oom(0);
    }
    s_pass_publishes(&self);
    s_pass_state(&self);
    s_pass_present(&self);
    s_pass_deliveries(&self);
    s_summary(&self);
    rc = 0;
    for (int r = 0; r < R_RULES; r++) {
        rc |= self.violations[r] > 0;
    }
done:
    fflush(stdout);
    s_free(&self);
    return rc;
}

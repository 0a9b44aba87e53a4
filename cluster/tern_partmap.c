/*  tern_partmap.c - partition records, the rules that change them, and
    their text form.

    Pure logic (see tern_partmap.h for the rules). One table of fields drives
    both the encoder and the decoder of the text form, and the encoder checks
    the same invariants as the decoder, so it never writes what a reader
    would refuse.
*/
#include "tern_partmap.h"
#include "tern_alloc.h"
#include "tern_id.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct tern_partmap_t {
    uint32_t partitions;            //  number of records
    tern_partmap_record_t *records; //  one per partition, indexed by partition
};

//  True when NODE is among the COUNT ids at SET (an ISR, replicas, live nodes).
static bool s_member(const uint32_t *set, size_t count, uint32_t node) {
    for (size_t i = 0; i < count; i++) {
        if (set[i] == node) {
            return true;
        }
    }
    return false;
}

static const tern_partmap_replica_t *s_replica(const tern_partmap_replica_t *reps, size_t count,
                                               uint32_t node) {
    for (size_t i = 0; i < count; i++) {
        if (reps[i].node == node) {
            return &reps[i];
        }
    }
    return NULL;
}

//  NULL when the COUNT ids at SET are valid node ids without repeats.
static const char *s_check_set(const uint32_t *set, uint32_t count) {
    for (uint32_t i = 0; i < count; i++) {
        if (set[i] > TERN_ID_NODE_MAX) {
            return "node id above 1023";
        }
        if (s_member(set, i, set[i])) {
            return "node id listed twice";
        }
    }
    return NULL;
}

tern_err_t tern_partmap_record_check(const tern_partmap_record_t *rec, const char **why) {
    const char *bad = NULL;
    if (rec->nreplicas > TERN_PLACEMENT_REPLICAS_MAX || rec->nisr > rec->nreplicas) {
        bad = rec->nreplicas > TERN_PLACEMENT_REPLICAS_MAX ? "too many replicas"
                                                           : "isr larger than replicas";
    }
    if (!bad) {
        bad = s_check_set(rec->replicas, rec->nreplicas);
    }
    if (!bad) {
        bad = s_check_set(rec->isr, rec->nisr);
    }
    for (uint32_t i = 0; !bad && i < rec->nisr; i++) {
        if (!s_member(rec->replicas, rec->nreplicas, rec->isr[i])) {
            bad = "isr member not a replica";
        }
    }
    if (!bad && rec->leader != TERN_NODE_NONE && !s_member(rec->isr, rec->nisr, rec->leader)) {
        bad = "leader not in isr";
    }
    if (bad && why) {
        *why = bad;
    }
    return bad ? TERN_EINVAL : TERN_OK;
}

bool tern_partmap_record_same(const tern_partmap_record_t *a, const tern_partmap_record_t *b) {
    return a->partition == b->partition && a->leader == b->leader && a->epoch == b->epoch &&
           a->ver == b->ver && a->nreplicas == b->nreplicas && a->nisr == b->nisr &&
           memcmp(a->replicas, b->replicas, a->nreplicas * sizeof a->replicas[0]) == 0 &&
           memcmp(a->isr, b->isr, a->nisr * sizeof a->isr[0]) == 0;
}

//  Settles *NEXT, a copy of CUR with a new leader and ISR: the unused ISR
//  entries are zeroed (records compare and print the same however they
//  were made), and if the leader and the ISR as a set are unchanged, *NEXT
//  becomes CUR exactly. Returns true when it changed.
static bool s_settle(const tern_partmap_record_t *cur, tern_partmap_record_t *next) {
    memset(next->isr + next->nisr, 0,
           (TERN_PLACEMENT_REPLICAS_MAX - next->nisr) * sizeof next->isr[0]);
    bool changed = next->leader != cur->leader || next->nisr != cur->nisr;
    for (uint32_t i = 0; !changed && i < next->nisr; i++) {
        changed = !s_member(cur->isr, cur->nisr, next->isr[i]);
    }
    if (!changed) {
        *next = *cur;
    }
    return changed;
}

bool tern_partmap_in_isr(const tern_partmap_record_t *rec, uint32_t node) {
    return s_member(rec->isr, rec->nisr, node);
}

bool tern_partmap_in_replicas(const tern_partmap_record_t *rec, uint32_t node) {
    return s_member(rec->replicas, rec->nreplicas, node);
}

//  --- Election -------------------------------------------------------------

uint32_t tern_partmap_elect(const tern_partmap_record_t *rec, const uint32_t *live, size_t count) {
    if (rec->leader != TERN_NODE_NONE && s_member(live, count, rec->leader) &&
        tern_partmap_in_isr(rec, rec->leader)) {
        return rec->leader;
    }
    //  Replica order is placement order: the preferred leader comes first.
    for (uint32_t i = 0; i < rec->nreplicas; i++) {
        uint32_t node = rec->replicas[i];
        if (tern_partmap_in_isr(rec, node) && s_member(live, count, node)) {
            return node;
        }
    }
    return TERN_NODE_NONE;
}

bool tern_partmap_can_lead(const tern_partmap_record_t *rec, uint32_t node, const uint32_t *live,
                           size_t count) {
    return node != TERN_NODE_NONE && tern_partmap_in_isr(rec, node) && s_member(live, count, node);
}

bool tern_partmap_failover(const tern_partmap_record_t *cur, const uint32_t *live, size_t count,
                           tern_partmap_record_t *next) {
    *next = *cur;
    next->leader = tern_partmap_elect(cur, live, count);
    if (next->leader != TERN_NODE_NONE) {
        //  Some ISR member is live: the dead ones leave. With none live the
        //  ISR stays whole, the set of nodes allowed to lead again.
        next->nisr = 0;
        for (uint32_t i = 0; i < cur->nisr; i++) {
            if (s_member(live, count, cur->isr[i])) {
                next->isr[next->nisr++] = cur->isr[i];
            }
        }
    }
    return s_settle(cur, next);
}

//  --- ISR ------------------------------------------------------------------

void tern_partmap_replica_confirm(tern_partmap_replica_t *rep, uint64_t durable,
                                  uint64_t leader_end, uint64_t as_of_ms) {
    //  Not max(): after a truncation to a new leader's log a position may
    //  legitimately go down.
    rep->durable = durable;
    if (durable >= leader_end && as_of_ms > rep->caught_up_ms) {
        rep->caught_up_ms = as_of_ms;
    }
}

static bool s_recent(const tern_partmap_replica_t *rep, uint64_t now_ms, uint64_t lag_ms) {
    return rep && (rep->caught_up_ms >= now_ms || now_ms - rep->caught_up_ms <= lag_ms);
}

bool tern_partmap_isr_next(const tern_partmap_record_t *rec, const tern_partmap_replica_t *reps,
                           size_t count, uint64_t high_watermark, uint64_t now_ms, uint64_t lag_ms,
                           tern_partmap_record_t *next) {
    *next = *rec;
    next->nisr = 0;
    for (uint32_t i = 0; i < rec->nreplicas; i++) {
        uint32_t node = rec->replicas[i];
        const tern_partmap_replica_t *rep = s_replica(reps, count, node);
        bool keep;
        if (node == rec->leader) {
            keep = true;
        } else if (tern_partmap_in_isr(rec, node)) {
            keep = s_recent(rep, now_ms, lag_ms);
        } else {
            keep = s_recent(rep, now_ms, lag_ms) && rep->durable >= high_watermark;
        }
        if (keep) {
            next->isr[next->nisr++] = node;
        }
    }
    return s_settle(rec, next);
}

//  Appends " (node 2, 4)" for the COUNT nodes at SET to the text in WHY.
static void s_append_nodes(char *why, size_t len, const uint32_t *set, uint32_t count) {
    size_t at = strlen(why);
    for (uint32_t i = 0; i < count && at < len; i++) {
        int n = snprintf(why + at, len - at, "%s%" PRIu32, i == 0 ? " (node " : ", ", set[i]);
        at += n > 0 ? (size_t)n : 0;
    }
    if (count > 0 && at < len) {
        snprintf(why + at, len - at, ")");
    }
}

//  Adds to BEHIND the members of ISR (COUNT) without POS durable in REPS,
//  unless already listed.
static void s_behind(const uint32_t *isr, uint32_t count, const tern_partmap_replica_t *reps,
                     size_t nreps, uint64_t pos, uint32_t *behind, uint32_t *nbehind) {
    for (uint32_t i = 0; i < count; i++) {
        const tern_partmap_replica_t *rep = s_replica(reps, nreps, isr[i]);
        if ((!rep || rep->durable < pos) && !s_member(behind, *nbehind, isr[i])) {
            behind[(*nbehind)++] = isr[i];
        }
    }
}

tern_partmap_ack_t tern_partmap_ack_check(const tern_partmap_record_t *rec,
                                          const tern_partmap_record_t *pending,
                                          const tern_partmap_replica_t *reps, size_t count,
                                          uint64_t pos, uint32_t min_insync, char *why,
                                          size_t len) {
    //  No WHY: no reason formatted either. The leader asks once per held
    //  commit and position, and a WAIT is the usual answer (docs/performance.md,
    //  "Cluster": its snprintf was ~7 % of the leader's crepl).
    bool say = why && len > 0;
    if (say) {
        why[0] = 0;
    }
    min_insync = min_insync > 0 ? min_insync : 1;
    if (rec->leader == TERN_NODE_NONE) {
        if (say) {
            snprintf(why, len, "partition %" PRIu32 " has no leader", rec->partition);
        }
        return TERN_PARTMAP_REFUSE;
    }
    if (rec->nisr < min_insync) {
        if (say) {
            snprintf(why, len, "%" PRIu32 " in-sync replica%s", rec->nisr,
                     rec->nisr == 1 ? "" : "s");
            s_append_nodes(why, len, rec->isr, rec->nisr);
            size_t at = strlen(why);
            snprintf(why + at, len - at, ", cluster/min_insync is %" PRIu32, min_insync);
        }
        return TERN_PARTMAP_REFUSE;
    }
    uint32_t behind[2 * TERN_PLACEMENT_REPLICAS_MAX];
    uint32_t nbehind = 0;
    s_behind(rec->isr, rec->nisr, reps, count, pos, behind, &nbehind);
    if (pending) {
        s_behind(pending->isr, pending->nisr, reps, count, pos, behind, &nbehind);
    }
    if (nbehind == 0) {
        return TERN_PARTMAP_ACK;
    }
    if (say) {
        snprintf(why, len, "waiting for %" PRIu32 " in-sync replica%s to fsync", nbehind,
                 nbehind == 1 ? "" : "s");
        s_append_nodes(why, len, behind, nbehind);
    }
    return TERN_PARTMAP_WAIT;
}

//  --- Fencing --------------------------------------------------------------

tern_partmap_epoch_t tern_partmap_fence(uint64_t record_epoch, uint64_t frame_epoch) {
    if (frame_epoch < record_epoch) {
        return TERN_PARTMAP_EPOCH_STALE;
    }
    return frame_epoch > record_epoch ? TERN_PARTMAP_EPOCH_AHEAD : TERN_PARTMAP_EPOCH_CURRENT;
}

//  --- Text form ------------------------------------------------------------

typedef const char *(s_parse_fn)(const char *value, size_t len, tern_partmap_record_t *rec);
typedef int(s_format_fn)(const tern_partmap_record_t *rec, char *buf, size_t len);

//  Parses a plain decimal number (no sign, no leading zero) up to MAX.
static const char *s_parse_u64(const char *text, size_t len, uint64_t max, uint64_t *out) {
    uint64_t value = 0;
    if (len == 0 || (len > 1 && text[0] == '0')) {
        return "not a plain decimal number";
    }
    for (size_t i = 0; i < len; i++) {
        if (text[i] < '0' || text[i] > '9') {
            return "not a plain decimal number";
        }
        unsigned digit = (unsigned)(text[i] - '0');
        if (value > (max - digit) / 10) {
            return "number out of range";
        }
        value = value * 10 + digit;
    }
    *out = value;
    return NULL;
}

//  Parses a comma-separated list of node ids (maybe empty) into SET.
static const char *s_parse_nodes(const char *text, size_t len, uint32_t *set, uint32_t *count) {
    *count = 0;
    size_t at = 0;
    while (at < len) {
        size_t end = at;
        while (end < len && text[end] != ',') {
            end++;
        }
        uint64_t node = 0;
        const char *bad = s_parse_u64(text + at, end - at, TERN_ID_NODE_MAX, &node);
        if (bad) {
            return bad;
        }
        if (*count == TERN_PLACEMENT_REPLICAS_MAX) {
            return "too many replicas";
        }
        set[(*count)++] = (uint32_t)node;
        at = end + 1;
        if (end + 1 == len) {
            return "list ends with a comma";
        }
    }
    return NULL;
}

static const char *s_parse_partition(const char *v, size_t n, tern_partmap_record_t *rec) {
    uint64_t value = 0;
    const char *bad = s_parse_u64(v, n, UINT32_MAX, &value);
    rec->partition = (uint32_t)value;
    return bad;
}

static const char *s_parse_leader(const char *v, size_t n, tern_partmap_record_t *rec) {
    uint64_t value = TERN_NODE_NONE;
    const char *bad =
        n == 4 && memcmp(v, "none", 4) == 0 ? NULL : s_parse_u64(v, n, TERN_ID_NODE_MAX, &value);
    rec->leader = (uint32_t)value;
    return bad;
}

static const char *s_parse_epoch(const char *v, size_t n, tern_partmap_record_t *rec) {
    return s_parse_u64(v, n, UINT64_MAX, &rec->epoch);
}

static const char *s_parse_ver(const char *v, size_t n, tern_partmap_record_t *rec) {
    return s_parse_u64(v, n, UINT64_MAX, &rec->ver);
}

static const char *s_parse_replicas(const char *v, size_t n, tern_partmap_record_t *rec) {
    return s_parse_nodes(v, n, rec->replicas, &rec->nreplicas);
}

static const char *s_parse_isr(const char *v, size_t n, tern_partmap_record_t *rec) {
    return s_parse_nodes(v, n, rec->isr, &rec->nisr);
}

static int s_format_nodes(const uint32_t *set, uint32_t count, char *buf, size_t len) {
    size_t at = 0;
    for (uint32_t i = 0; i < count; i++) {
        int n = snprintf(buf + (at < len ? at : len), at < len ? len - at : 0, "%s%" PRIu32,
                         i ? "," : "", set[i]);
        at += (size_t)n;
    }
    if (len > 0 && count == 0) {
        buf[0] = 0;
    }
    return (int)at;
}

static int s_format_partition(const tern_partmap_record_t *rec, char *buf, size_t len) {
    return snprintf(buf, len, "%" PRIu32, rec->partition);
}

static int s_format_leader(const tern_partmap_record_t *rec, char *buf, size_t len) {
    return rec->leader == TERN_NODE_NONE ? snprintf(buf, len, "none")
                                         : snprintf(buf, len, "%" PRIu32, rec->leader);
}

static int s_format_epoch(const tern_partmap_record_t *rec, char *buf, size_t len) {
    //  -1: left out (an etcd value cannot know its own revision).
    return rec->epoch == 0 ? -1 : snprintf(buf, len, "%" PRIu64, rec->epoch);
}

static int s_format_ver(const tern_partmap_record_t *rec, char *buf, size_t len) {
    return rec->ver == 0 ? -1 : snprintf(buf, len, "%" PRIu64, rec->ver);
}

static int s_format_replicas(const tern_partmap_record_t *rec, char *buf, size_t len) {
    return s_format_nodes(rec->replicas, rec->nreplicas, buf, len);
}

static int s_format_isr(const tern_partmap_record_t *rec, char *buf, size_t len) {
    return s_format_nodes(rec->isr, rec->nisr, buf, len);
}

//  The fields of the text form, in the order the encoder writes them.
static const struct {
    const char *key;     //  as written before '='
    bool required;       //  a record without it is malformed
    s_parse_fn *parse;   //  value -> record field; NULL or a static reason
    s_format_fn *format; //  record field -> value; snprintf's return, -1: omit
} s_fields[] = {
    {"partition", true, s_parse_partition, s_format_partition},
    {"leader", true, s_parse_leader, s_format_leader},
    {"epoch", false, s_parse_epoch, s_format_epoch},
    {"ver", false, s_parse_ver, s_format_ver},
    {"replicas", true, s_parse_replicas, s_format_replicas},
    {"isr", true, s_parse_isr, s_format_isr},
};
#define S_FIELDS (sizeof s_fields / sizeof s_fields[0])

tern_err_t tern_partmap_record_encode(const tern_partmap_record_t *rec, char *buf, size_t len) {
    if (tern_partmap_record_check(rec, NULL) != TERN_OK) {
        return TERN_EINVAL;
    }
    char value[TERN_PARTMAP_TEXT_MAX];
    size_t at = 0;
    for (size_t f = 0; f < S_FIELDS; f++) {
        int n = s_fields[f].format(rec, value, sizeof value);
        if (n < 0) {
            continue;
        }
        int w = snprintf(buf + (at < len ? at : len), at < len ? len - at : 0, "%s%s=%s",
                         at ? " " : "", s_fields[f].key, value);
        at += (size_t)w;
    }
    return at < len ? TERN_OK : TERN_ETOOBIG;
}

//  Parses one `key=value` of N bytes into REC, marking SEEN.
static const char *s_decode_field(const char *text, size_t n, tern_partmap_record_t *rec,
                                  bool *seen) {
    const char *eq = memchr(text, '=', n);
    if (!eq || eq == text) {
        return "field is not key=value";
    }
    size_t klen = (size_t)(eq - text);
    for (size_t i = 0; i < klen; i++) {
        if ((text[i] < 'a' || text[i] > 'z') && text[i] != '_') {
            return "key is not [a-z_]+";
        }
    }
    for (size_t f = 0; f < S_FIELDS; f++) {
        if (strlen(s_fields[f].key) == klen && memcmp(s_fields[f].key, text, klen) == 0) {
            if (seen[f]) {
                return "key repeated";
            }
            seen[f] = true;
            return s_fields[f].parse(eq + 1, n - klen - 1, rec);
        }
    }
    return NULL; //  unknown key: a newer version's, ignored
}

tern_err_t tern_partmap_record_decode(const char *text, size_t len, tern_partmap_record_t *rec,
                                      const char **why) {
    tern_partmap_record_t out = {.leader = TERN_NODE_NONE};
    bool seen[S_FIELDS] = {false};
    const char *bad = text == NULL || len == 0 ? "empty" : NULL;
    size_t at = 0;
    while (!bad && at <= len) {
        const char *space = memchr(text + at, ' ', len - at);
        size_t end = space ? (size_t)(space - text) : len;
        bad = end == at ? "empty field (extra space)"
                        : s_decode_field(text + at, end - at, &out, seen);
        at = end + 1;
    }
    for (size_t f = 0; !bad && f < S_FIELDS; f++) {
        if (s_fields[f].required && !seen[f]) {
            bad = "a required key is missing (partition, leader, replicas, isr)";
        }
    }
    if (!bad) {
        tern_partmap_record_check(&out, &bad);
    }
    if (bad) {
        if (why) {
            *why = bad;
        }
        return TERN_EMALFORMED;
    }
    *rec = out;
    return TERN_OK;
}

//  --- The map --------------------------------------------------------------

tern_partmap_t *tern_partmap_new(uint32_t partitions) {
    if (partitions == 0) {
        return NULL;
    }
    tern_partmap_t *self = tern_alloc(sizeof *self);
    self->partitions = partitions;
    self->records = tern_alloc((size_t)partitions * sizeof *self->records);
    for (uint32_t p = 0; p < partitions; p++) {
        self->records[p].partition = p;
        self->records[p].leader = TERN_NODE_NONE;
    }
    return self;
}

void tern_partmap_destroy(tern_partmap_t **self_p) {
    if (self_p && *self_p) {
        free((*self_p)->records);
        free(*self_p);
        *self_p = NULL;
    }
}

uint32_t tern_partmap_partitions(const tern_partmap_t *self) {
    return self->partitions;
}

const tern_partmap_record_t *tern_partmap_get(const tern_partmap_t *self, uint32_t partition) {
    return partition < self->partitions ? &self->records[partition] : NULL;
}

tern_err_t tern_partmap_apply(tern_partmap_t *self, const tern_partmap_record_t *rec) {
    if (rec->partition >= self->partitions) {
        return TERN_ERANGE;
    }
    if (tern_partmap_record_check(rec, NULL) != TERN_OK) {
        return TERN_EINVAL;
    }
    tern_partmap_record_t *stored = &self->records[rec->partition];
    if (rec->epoch < stored->epoch) {
        return TERN_ESTATE;
    }
    *stored = *rec;
    return TERN_OK;
}

void tern_partmap_count(const tern_partmap_t *self, uint32_t node, uint32_t *leader_of,
                        uint32_t *replica_of) {
    *leader_of = 0;
    *replica_of = 0;
    for (uint32_t p = 0; p < self->partitions; p++) {
        const tern_partmap_record_t *rec = &self->records[p];
        *leader_of += rec->leader == node;
        *replica_of += tern_partmap_in_replicas(rec, node);
    }
}

/*  tern_proto_group.c - the payloads of CREPL_GROUP and CREPL_GSTATE.

    An in-DC leader ships group state to its followers (docs/protocol.md,
    section 14): CREPL_GROUP carries a list of group ops of one topic, each
    [type, aux, count, seq, value, group, reason] and, on an ack or dead op
    with an ack-state outbox entry (cross-DC on), an 8th element ob, its
    position; CREPL_GSTATE a snapshot
    of one group, [group, [lane cursors], delivered, redelivered, acked,
    nacked, created_ns, [pending entries], [DLQ entries]] with entries
    [seq, due_ms, count, priority, reason], or the list of a topic's group
    names. Only protocol/ sees msgpack. Encoding writes straight into the
    caller's buffer (tern_proto_int.h: DELIVER and ACK ops are shipped per
    consumed message); decoding reads the bytes in place with tern_proto.c's
    cursor, as the header codec does: no msgpack_zone, and no heap but a
    group state's entry arrays. A list is decoded whole before any of it is
    handed out, so a frame is applied entirely or not at all.
*/
#include "tern_proto.h"
#include "tern_proto_int.h"
#include "tern_alloc.h"

#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

#define S_OP_FIELDS    7 //  elements of one encoded op
#define S_ENTRY_FIELDS 5 //  elements of one encoded entry
#define S_STATE_FIELDS 9 //  elements of one encoded group state
#define S_OP_MIN       8 //  bytes of the smallest op: fixarray + 7 one-byte values
#define S_ENTRY_MIN    6 //  bytes of the smallest entry: fixarray + 5 one-byte values
#define S_NAME_MIN     2 //  bytes of the smallest name: a one-byte fixstr

//  Starts packing into W over BUF (CAP bytes), where the frame is sent from.
static void s_begin(tern_wbuf_t *w, msgpack_packer *pk, uint8_t *buf, size_t cap) {
    *w = (tern_wbuf_t){buf, cap, 0, false};
    msgpack_packer_init(pk, w, tern_wbuf_write);
}

//  TERN_ETOOBIG if W overflowed, else its length into *LEN.
static tern_err_t s_finish(const tern_wbuf_t *w, size_t *len) {
    if (w->overflow) {
        return TERN_ETOOBIG;
    }
    *len = w->len;
    return TERN_OK;
}

static void s_pack_str(msgpack_packer *pk, const char *s) {
    msgpack_pack_str_with_body(pk, s, strlen(s));
}

//  A cursor over DATA (SIZE bytes; NULL reads as empty).
static tern_rcur_t s_cur(const uint8_t *data, size_t size) {
    return (tern_rcur_t){data, data ? data + size : data};
}

//  A str into OUT (CAP bytes with the NUL). False if it is not a str or
//  too long.
static bool s_str(tern_rcur_t *c, char *out, size_t cap) {
    const char *s;
    uint32_t len;
    if (tern_rcur_str(c, &s, &len) != TERN_OK || len >= cap) {
        return false;
    }
    memcpy(out, s, len);
    out[len] = 0;
    return true;
}

//  An unsigned integer into *OUT, at most MAX.
static bool s_uint(tern_rcur_t *c, uint64_t max, uint64_t *out) {
    uint64_t v;
    if (tern_rcur_uint(c, &v) != TERN_OK || v > max) {
        return false;
    }
    *out = v;
    return true;
}

//  An array header of exactly SIZE elements.
static bool s_array(tern_rcur_t *c, uint32_t size) {
    uint32_t n;
    return tern_rcur_array(c, &n) == TERN_OK && n == size;
}

//  A list header into *COUNT, whose elements take at least MIN bytes each:
//  a count the bytes left cannot hold is refused before anything is sized
//  by it.
static bool s_list(tern_rcur_t *c, size_t min, uint32_t *count) {
    return tern_rcur_array(c, count) == TERN_OK &&
           (uint64_t)*count * min <= (uint64_t)(c->end - c->p);
}

tern_err_t tern_gops_encode(const tern_gop_t *ops, size_t count, uint8_t *buf, size_t cap,
                            size_t *len) {
    if ((!ops && count) || !buf || !len) {
        return TERN_EINVAL;
    }
    tern_wbuf_t w;
    msgpack_packer pk;
    s_begin(&w, &pk, buf, cap);
    msgpack_pack_array(&pk, count);
    for (size_t i = 0; i < count; i++) {
        const tern_gop_t *op = &ops[i];
        //  The outbox position only when there is one (cross-DC on): an
        //  op without it is the 7 fields of before.
        msgpack_pack_array(&pk, op->ob ? S_OP_FIELDS + 1 : S_OP_FIELDS);
        msgpack_pack_uint8(&pk, op->type);
        msgpack_pack_uint8(&pk, op->aux);
        msgpack_pack_uint32(&pk, op->count);
        msgpack_pack_uint64(&pk, op->seq);
        msgpack_pack_uint64(&pk, op->value);
        s_pack_str(&pk, op->group);
        s_pack_str(&pk, op->reason);
        if (op->ob) {
            msgpack_pack_uint64(&pk, op->ob);
        }
    }
    return s_finish(&w, len);
}

static bool s_gop(tern_rcur_t *c, tern_gop_t *op) {
    uint64_t type, aux, count;
    uint32_t fields;
    //  The ack-state outbox position is an 8th element, there only when
    //  set (cross-DC on).
    if (tern_rcur_array(c, &fields) != TERN_OK ||
        (fields != S_OP_FIELDS && fields != S_OP_FIELDS + 1) || !s_uint(c, TERN_GOP_PURGE, &type) ||
        type < TERN_GOP_OPEN || !s_uint(c, UINT8_MAX, &aux) || !s_uint(c, UINT32_MAX, &count) ||
        !s_uint(c, UINT64_MAX, &op->seq) || !s_uint(c, UINT64_MAX, &op->value) ||
        !s_str(c, op->group, sizeof op->group) || !op->group[0] ||
        !s_str(c, op->reason, sizeof op->reason)) {
        return false;
    }
    op->ob = 0;
    if (fields > S_OP_FIELDS && !s_uint(c, UINT64_MAX, &op->ob)) {
        return false;
    }
    op->type = (uint8_t)type;
    op->aux = (uint8_t)aux;
    op->count = (uint32_t)count;
    return true;
}

tern_err_t tern_gops_decode(const uint8_t *data, size_t size,
                            void (*fn)(const tern_gop_t *op, void *arg), void *arg) {
    if (!fn) {
        return TERN_EINVAL;
    }
    tern_rcur_t c = s_cur(data, size);
    tern_gop_t op;
    uint32_t count = 0;
    bool ok = s_list(&c, S_OP_MIN, &count);
    for (uint32_t i = 0; ok && i < count; i++) {
        ok = s_gop(&c, &op);
    }
    if (!ok || c.p != c.end) {
        return TERN_EMALFORMED;
    }
    //  Valid throughout: read again, handing each op out.
    c = s_cur(data, size);
    s_list(&c, S_OP_MIN, &count);
    for (uint32_t i = 0; i < count; i++) {
        s_gop(&c, &op);
        fn(&op, arg);
    }
    return TERN_OK;
}

static void s_pack_entries(msgpack_packer *pk, const tern_gentry_t *entries, size_t count) {
    msgpack_pack_array(pk, count);
    for (size_t i = 0; i < count; i++) {
        msgpack_pack_array(pk, S_ENTRY_FIELDS);
        msgpack_pack_uint64(pk, entries[i].seq);
        msgpack_pack_uint64(pk, entries[i].due_ms);
        msgpack_pack_uint32(pk, entries[i].count);
        msgpack_pack_uint8(pk, entries[i].priority);
        s_pack_str(pk, entries[i].reason);
    }
}

tern_err_t tern_gstate_encode(const tern_gstate_t *state, uint8_t *buf, size_t cap, size_t *len) {
    if (!state || !buf || !len) {
        return TERN_EINVAL;
    }
    tern_wbuf_t w;
    msgpack_packer pk;
    s_begin(&w, &pk, buf, cap);
    msgpack_pack_array(&pk, S_STATE_FIELDS);
    s_pack_str(&pk, state->group);
    msgpack_pack_array(&pk, TERN_PRIORITY_MAX + 1);
    for (int i = 0; i <= TERN_PRIORITY_MAX; i++) {
        msgpack_pack_uint64(&pk, state->lane_next[i]);
    }
    msgpack_pack_uint64(&pk, state->delivered);
    msgpack_pack_uint64(&pk, state->redelivered);
    msgpack_pack_uint64(&pk, state->acked);
    msgpack_pack_uint64(&pk, state->nacked);
    msgpack_pack_uint64(&pk, state->created_ns);
    s_pack_entries(&pk, state->pending, state->npending);
    s_pack_entries(&pk, state->dead, state->ndead);
    return s_finish(&w, len);
}

//  A list of entries into a new array *OUT of *COUNT (the caller frees it
//  whether or not the list was valid).
static bool s_entries(tern_rcur_t *c, tern_gentry_t **out, size_t *count) {
    uint32_t n;
    if (!s_list(c, S_ENTRY_MIN, &n)) {
        return false;
    }
    *out = tern_alloc((n ? n : 1) * sizeof **out);
    for (*count = 0; *count < n; (*count)++) {
        tern_gentry_t *entry = &(*out)[*count];
        uint64_t deliveries, prio;
        if (!s_array(c, S_ENTRY_FIELDS) || !s_uint(c, UINT64_MAX, &entry->seq) || entry->seq == 0 ||
            !s_uint(c, UINT64_MAX, &entry->due_ms) || !s_uint(c, UINT32_MAX, &deliveries) ||
            !s_uint(c, TERN_PRIORITY_MAX, &prio) ||
            !s_str(c, entry->reason, sizeof entry->reason)) {
            return false;
        }
        entry->count = (uint32_t)deliveries;
        entry->priority = (uint8_t)prio;
    }
    return true;
}

tern_err_t tern_gstate_decode(const uint8_t *data, size_t size, tern_gstate_t *out) {
    if (!out) {
        return TERN_EINVAL;
    }
    memset(out, 0, sizeof *out);
    tern_rcur_t c = s_cur(data, size);
    bool ok = s_array(&c, S_STATE_FIELDS) && s_str(&c, out->group, sizeof out->group) &&
              out->group[0] && s_array(&c, TERN_PRIORITY_MAX + 1);
    for (int i = 0; ok && i <= TERN_PRIORITY_MAX; i++) {
        ok = s_uint(&c, UINT64_MAX, &out->lane_next[i]);
    }
    ok = ok && s_uint(&c, UINT64_MAX, &out->delivered) &&
         s_uint(&c, UINT64_MAX, &out->redelivered) && s_uint(&c, UINT64_MAX, &out->acked) &&
         s_uint(&c, UINT64_MAX, &out->nacked) && s_uint(&c, UINT64_MAX, &out->created_ns) &&
         s_entries(&c, &out->pending, &out->npending) && s_entries(&c, &out->dead, &out->ndead) &&
         c.p == c.end;
    if (!ok) {
        tern_gstate_clear(out);
        return TERN_EMALFORMED;
    }
    return TERN_OK;
}

void tern_gstate_clear(tern_gstate_t *state) {
    if (state) {
        free(state->pending);
        free(state->dead);
        state->pending = state->dead = NULL;
        state->npending = state->ndead = 0;
    }
}

tern_err_t tern_gnames_encode(const char *const *names, size_t count, uint8_t *buf, size_t cap,
                              size_t *len) {
    if ((!names && count) || !buf || !len) {
        return TERN_EINVAL;
    }
    tern_wbuf_t w;
    msgpack_packer pk;
    s_begin(&w, &pk, buf, cap);
    msgpack_pack_array(&pk, count);
    for (size_t i = 0; i < count; i++) {
        s_pack_str(&pk, names[i]);
    }
    return s_finish(&w, len);
}

tern_err_t tern_gnames_decode(const uint8_t *data, size_t size,
                              void (*fn)(const char *name, void *arg), void *arg) {
    tern_rcur_t c = s_cur(data, size);
    char name[TERN_NAME_MAX + 1];
    uint32_t count = 0;
    bool ok = fn && s_list(&c, S_NAME_MIN, &count);
    for (uint32_t i = 0; ok && i < count; i++) {
        ok = s_str(&c, name, sizeof name) && name[0];
    }
    if (!ok || c.p != c.end) {
        return TERN_EMALFORMED;
    }
    //  Valid throughout: read again, handing each name out.
    c = s_cur(data, size);
    s_list(&c, S_NAME_MIN, &count);
    for (uint32_t i = 0; i < count; i++) {
        s_str(&c, name, sizeof name);
        fn(name, arg);
    }
    return TERN_OK;
}

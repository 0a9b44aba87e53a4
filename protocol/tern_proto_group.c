/*  tern_proto_group.c - the payloads of CREPL_GROUP and CREPL_GSTATE.

    An in-DC leader ships group state to its followers (docs/protocol.md,
    section 14): CREPL_GROUP carries a list of group ops of one topic, each
    [type, aux, count, seq, value, group, reason]; CREPL_GSTATE a snapshot
    of one group, [group, [lane cursors], delivered, redelivered, acked,
    nacked, created_ns, [pending entries], [DLQ entries]] with entries
    [seq, due_ms, count, priority, reason], or the list of a topic's group
    names. Only protocol/ sees msgpack. Encoding writes straight into the
    caller's buffer (tern_proto_int.h: DELIVER and ACK ops are shipped per
    consumed message); decoding uses msgpack-c's object tree.
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

//  Copies string object O into OUT (CAP bytes with the NUL). False if O is
//  not a string or too long.
static bool s_str(const msgpack_object *o, char *out, size_t cap) {
    if (o->type != MSGPACK_OBJECT_STR || o->via.str.size >= cap) {
        return false;
    }
    memcpy(out, o->via.str.ptr, o->via.str.size);
    out[o->via.str.size] = 0;
    return true;
}

//  Unsigned integer object O into *OUT, at most MAX.
static bool s_uint(const msgpack_object *o, uint64_t max, uint64_t *out) {
    if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER || o->via.u64 > max) {
        return false;
    }
    *out = o->via.u64;
    return true;
}

static bool s_array(const msgpack_object *o, uint32_t size) {
    return o->type == MSGPACK_OBJECT_ARRAY && (size == UINT32_MAX || o->via.array.size == size);
}

//  Unpacks DATA (SIZE bytes) as one msgpack object into *RESULT (the
//  caller destroys it). False if malformed or trailing bytes follow.
static bool s_unpack(const uint8_t *data, size_t size, msgpack_unpacked *result) {
    msgpack_unpacked_init(result);
    size_t off = 0;
    return data &&
           msgpack_unpack_next(result, (const char *)data, size, &off) == MSGPACK_UNPACK_SUCCESS &&
           off == size;
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

static bool s_gop(const msgpack_object *o, tern_gop_t *op) {
    uint64_t type, aux, count;
    if (!s_array(o, S_OP_FIELDS) && !s_array(o, S_OP_FIELDS + 1)) {
        return false;
    }
    op->ob = 0;
    if (o->via.array.size > S_OP_FIELDS &&
        !s_uint(&o->via.array.ptr[S_OP_FIELDS], UINT64_MAX, &op->ob)) {
        return false;
    }
    const msgpack_object *f = o->via.array.ptr;
    if (!s_uint(&f[0], TERN_GOP_PURGE, &type) || type < TERN_GOP_OPEN ||
        !s_uint(&f[1], UINT8_MAX, &aux) || !s_uint(&f[2], UINT32_MAX, &count) ||
        !s_uint(&f[3], UINT64_MAX, &op->seq) || !s_uint(&f[4], UINT64_MAX, &op->value) ||
        !s_str(&f[5], op->group, sizeof op->group) || !op->group[0] ||
        !s_str(&f[6], op->reason, sizeof op->reason)) {
        return false;
    }
    op->type = (uint8_t)type;
    op->aux = (uint8_t)aux;
    op->count = (uint32_t)count;
    return true;
}

tern_err_t tern_gops_decode(const uint8_t *data, size_t size, tern_gop_t **ops, size_t *count) {
    if (!ops || !count) {
        return TERN_EINVAL;
    }
    *ops = NULL;
    *count = 0;
    msgpack_unpacked result;
    tern_err_t rc = TERN_EMALFORMED;
    if (s_unpack(data, size, &result) && s_array(&result.data, UINT32_MAX)) {
        const msgpack_object_array *list = &result.data.via.array;
        tern_gop_t *out = tern_alloc((list->size ? list->size : 1) * sizeof *out);
        size_t n = 0;
        while (n < list->size && s_gop(&list->ptr[n], &out[n])) {
            n++;
        }
        if (n == list->size) {
            *ops = out;
            *count = n;
            rc = TERN_OK;
        } else {
            free(out);
        }
    }
    msgpack_unpacked_destroy(&result);
    return rc;
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

//  Entries of list object O into a new array *OUT of *COUNT.
static bool s_entries(const msgpack_object *o, tern_gentry_t **out, size_t *count) {
    if (!s_array(o, UINT32_MAX)) {
        return false;
    }
    const msgpack_object_array *list = &o->via.array;
    *out = tern_alloc((list->size ? list->size : 1) * sizeof **out);
    for (*count = 0; *count < list->size; (*count)++) {
        const msgpack_object *e = &list->ptr[*count];
        tern_gentry_t *entry = &(*out)[*count];
        uint64_t n, prio;
        if (!s_array(e, S_ENTRY_FIELDS) || !s_uint(&e->via.array.ptr[0], UINT64_MAX, &entry->seq) ||
            entry->seq == 0 || !s_uint(&e->via.array.ptr[1], UINT64_MAX, &entry->due_ms) ||
            !s_uint(&e->via.array.ptr[2], UINT32_MAX, &n) ||
            !s_uint(&e->via.array.ptr[3], TERN_PRIORITY_MAX, &prio) ||
            !s_str(&e->via.array.ptr[4], entry->reason, sizeof entry->reason)) {
            return false;
        }
        entry->count = (uint32_t)n;
        entry->priority = (uint8_t)prio;
    }
    return true;
}

tern_err_t tern_gstate_decode(const uint8_t *data, size_t size, tern_gstate_t *out) {
    if (!out) {
        return TERN_EINVAL;
    }
    memset(out, 0, sizeof *out);
    msgpack_unpacked result;
    bool ok = s_unpack(data, size, &result) && s_array(&result.data, S_STATE_FIELDS);
    const msgpack_object *f = ok ? result.data.via.array.ptr : NULL;
    ok = ok && s_str(&f[0], out->group, sizeof out->group) && out->group[0] &&
         s_array(&f[1], TERN_PRIORITY_MAX + 1);
    for (int i = 0; ok && i <= TERN_PRIORITY_MAX; i++) {
        ok = s_uint(&f[1].via.array.ptr[i], UINT64_MAX, &out->lane_next[i]);
    }
    ok = ok && s_uint(&f[2], UINT64_MAX, &out->delivered) &&
         s_uint(&f[3], UINT64_MAX, &out->redelivered) && s_uint(&f[4], UINT64_MAX, &out->acked) &&
         s_uint(&f[5], UINT64_MAX, &out->nacked) && s_uint(&f[6], UINT64_MAX, &out->created_ns) &&
         s_entries(&f[7], &out->pending, &out->npending) &&
         s_entries(&f[8], &out->dead, &out->ndead);
    msgpack_unpacked_destroy(&result);
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
    msgpack_unpacked result;
    bool ok = fn && s_unpack(data, size, &result) && s_array(&result.data, UINT32_MAX);
    char name[TERN_NAME_MAX + 1];
    for (uint32_t i = 0; ok && i < result.data.via.array.size; i++) {
        ok = s_str(&result.data.via.array.ptr[i], name, sizeof name) && name[0];
    }
    for (uint32_t i = 0; ok && i < result.data.via.array.size; i++) {
        s_str(&result.data.via.array.ptr[i], name, sizeof name);
        fn(name, arg);
    }
    if (fn) {
        msgpack_unpacked_destroy(&result);
    }
    return ok ? TERN_OK : TERN_EMALFORMED;
}

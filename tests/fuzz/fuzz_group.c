/*  fuzz_group.c - libFuzzer target for the group-state payload decoders
    (protocol/tern_proto_group.c: CREPL_GROUP ops, CREPL_GSTATE states and
    name lists), which a follower runs on whatever its leader's socket
    brings.

    Input layout: byte 0 picks the decoder (0 ops, 1 state, 2 names, by its
    value mod 3), the rest is the payload. Properties: each decoder answers
    TERN_OK or TERN_EMALFORMED; a list that is not OK hands out nothing; a
    decoded op, state or name is within its limits (strings NUL-terminated
    inside their fields, group and names not empty, priorities in range);
    and what decoded encodes again and decodes to the same values. Linked
    with fuzz_replay.c (test_fuzz_group), it replays the committed corpus as
    a unit test.
*/
#include "fuzz_check.h"
#include "tern_proto.h"

#include <stdlib.h>
#include <string.h>

#define S_OPS_MAX 4096 //  ops one input may hand out (a payload's bytes bound it)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

//  What the ops decoder handed out.
typedef struct {
    tern_gop_t *ops; //  S_OPS_MAX
    size_t count;    //  handed out
} s_ops_t;

static void s_op(const tern_gop_t *op, void *arg) {
    s_ops_t *got = arg;
    CHECK(got->count < S_OPS_MAX);
    CHECK(op->group[0] && strlen(op->group) <= TERN_NAME_MAX);
    CHECK(strlen(op->reason) <= TERN_REASON_MAX);
    CHECK(op->type >= TERN_GOP_OPEN && op->type <= TERN_GOP_PURGE);
    got->ops[got->count++] = *op;
}

static void s_name(const char *name, void *arg) {
    CHECK(name[0] && strlen(name) <= TERN_NAME_MAX);
    (*(size_t *)arg)++;
}

static void s_fuzz_ops(const uint8_t *in, size_t len) {
    s_ops_t got = {calloc(S_OPS_MAX, sizeof(tern_gop_t)), 0};
    CHECK(got.ops);
    tern_err_t rc = tern_gops_decode(in, len, s_op, &got);
    CHECK(rc == TERN_OK || rc == TERN_EMALFORMED);
    CHECK(rc == TERN_OK || got.count == 0);
    if (rc == TERN_OK) {
        size_t cap = len + 64, out_len = 0;
        uint8_t *out = malloc(cap);
        CHECK(out);
        CHECK(tern_gops_encode(got.ops, got.count, out, cap, &out_len) == TERN_OK);
        s_ops_t again = {calloc(S_OPS_MAX, sizeof(tern_gop_t)), 0};
        CHECK(again.ops);
        CHECK(tern_gops_decode(out, out_len, s_op, &again) == TERN_OK);
        CHECK(again.count == got.count);
        for (size_t i = 0; i < got.count; i++) {
            const tern_gop_t *a = &got.ops[i], *b = &again.ops[i];
            CHECK(a->type == b->type && a->aux == b->aux && a->count == b->count);
            CHECK(a->seq == b->seq && a->value == b->value && a->ob == b->ob);
            CHECK(strcmp(a->group, b->group) == 0 && strcmp(a->reason, b->reason) == 0);
        }
        free(again.ops);
        free(out);
    }
    free(got.ops);
}

static void s_fuzz_state(const uint8_t *in, size_t len) {
    tern_gstate_t state;
    tern_err_t rc = tern_gstate_decode(in, len, &state);
    CHECK(rc == TERN_OK || rc == TERN_EMALFORMED);
    if (rc != TERN_OK) {
        CHECK(state.pending == NULL && state.dead == NULL);
        return;
    }
    CHECK(state.group[0] && strlen(state.group) <= TERN_NAME_MAX);
    for (size_t i = 0; i < state.npending + state.ndead; i++) {
        const tern_gentry_t *e =
            i < state.npending ? &state.pending[i] : &state.dead[i - state.npending];
        CHECK(e->seq > 0 && e->priority <= TERN_PRIORITY_MAX);
        CHECK(strlen(e->reason) <= TERN_REASON_MAX);
    }
    size_t cap = len + 64, out_len = 0;
    uint8_t *out = malloc(cap);
    CHECK(out);
    CHECK(tern_gstate_encode(&state, out, cap, &out_len) == TERN_OK);
    tern_gstate_t again;
    CHECK(tern_gstate_decode(out, out_len, &again) == TERN_OK);
    CHECK(strcmp(again.group, state.group) == 0 && again.acked == state.acked);
    CHECK(again.npending == state.npending && again.ndead == state.ndead);
    CHECK(memcmp(again.lane_next, state.lane_next, sizeof state.lane_next) == 0);
    tern_gstate_clear(&again);
    tern_gstate_clear(&state);
    free(out);
}

static void s_fuzz_names(const uint8_t *in, size_t len) {
    size_t count = 0;
    tern_err_t rc = tern_gnames_decode(in, len, s_name, &count);
    CHECK(rc == TERN_OK || rc == TERN_EMALFORMED);
    CHECK(rc == TERN_OK || count == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) {
        return 0;
    }
    //  Exact-size copy, so the sanitizer sees any read past the payload.
    size_t len = size - 1;
    uint8_t *in = malloc(len ? len : 1);
    CHECK(in);
    memcpy(in, data + 1, len);
    switch (data[0] % 3) {
        case 0:
            s_fuzz_ops(in, len);
            break;
        case 1:
            s_fuzz_state(in, len);
            break;
        default:
            s_fuzz_names(in, len);
            break;
    }
    free(in);
    return 0;
}

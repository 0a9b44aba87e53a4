/*  test_proto_group.c - the group-state payloads' decoders
    (protocol/tern_proto_group.c) on bytes they must not trust: they read
    in place with tern_proto.c's cursor, hand out nothing of a list that is
    malformed anywhere, and size nothing by a count the bytes cannot hold.
    (The round trips of ops and states are in test_store_gstate.c.) */
#include "tern_proto.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#define S_MAX 8 //  items a test collects

//  What a decoder handed out.
typedef struct {
    tern_gop_t ops[S_MAX]; //  ops, in order
    char names[S_MAX][32]; //  names, in order
    size_t count;          //  handed out
} s_got_t;

static void s_op_add(const tern_gop_t *op, void *arg) {
    s_got_t *got = arg;
    cr_assert_lt(got->count, S_MAX);
    got->ops[got->count++] = *op;
}

static void s_name_add(const char *name, void *arg) {
    s_got_t *got = arg;
    cr_assert_lt(got->count, S_MAX);
    snprintf(got->names[got->count++], sizeof got->names[0], "%s", name);
}

Test(proto_group, names_round_trip) {
    const char *names[] = {"audit", "billing", "g"};
    uint8_t buf[256];
    size_t len = 0;
    cr_assert_eq(tern_gnames_encode(names, 3, buf, sizeof buf, &len), TERN_OK);
    s_got_t got = {.count = 0};
    cr_assert_eq(tern_gnames_decode(buf, len, s_name_add, &got), TERN_OK);
    cr_assert_eq(got.count, 3);
    for (size_t i = 0; i < 3; i++) {
        cr_assert_str_eq(got.names[i], names[i]);
    }
    got.count = 0;
    cr_assert_eq(tern_gnames_decode(buf, 0, s_name_add, &got), TERN_EMALFORMED);
    cr_assert_eq(tern_gnames_decode(NULL, 0, s_name_add, &got), TERN_EMALFORMED);
    cr_assert_eq(got.count, 0);
}

//  The third op has no group: the first two must not reach FN either (a
//  CREPL_GROUP frame is applied whole or not at all).
Test(proto_group, malformed_op_hands_out_nothing) {
    tern_gop_t ops[3] = {{.type = TERN_GOP_ACK, .seq = 1, .group = "g"},
                         {.type = TERN_GOP_ACK, .seq = 2, .group = "g"},
                         {.type = TERN_GOP_ACK, .seq = 3, .group = ""}};
    uint8_t buf[1024];
    size_t len = 0;
    cr_assert_eq(tern_gops_encode(ops, 3, buf, sizeof buf, &len), TERN_OK);
    s_got_t got = {.count = 0};
    cr_assert_eq(tern_gops_decode(buf, len, s_op_add, &got), TERN_EMALFORMED);
    cr_assert_eq(got.count, 0, "%zu ops of a malformed frame handed out", got.count);
    cr_assert_eq(tern_gops_decode(buf, len, NULL, NULL), TERN_EINVAL);

    const char *names[] = {"a", "", "c"};
    cr_assert_eq(tern_gnames_encode(names, 3, buf, sizeof buf, &len), TERN_OK);
    cr_assert_eq(tern_gnames_decode(buf, len, s_name_add, &got), TERN_EMALFORMED);
    cr_assert_eq(got.count, 0);
}

Test(proto_group, trailing_bytes_and_wrong_types) {
    tern_gop_t op = {.type = TERN_GOP_DELIVER, .seq = 5, .group = "g"};
    uint8_t buf[256];
    size_t len = 0;
    cr_assert_eq(tern_gops_encode(&op, 1, buf, sizeof buf, &len), TERN_OK);
    s_got_t got = {.count = 0};
    buf[len] = 0x00; //  one more value after the list
    cr_assert_eq(tern_gops_decode(buf, len + 1, s_op_add, &got), TERN_EMALFORMED);
    cr_assert_eq(tern_gops_decode(buf, len, s_op_add, &got), TERN_OK);
    cr_assert_eq(got.count, 1);
    cr_assert_eq(got.ops[0].seq, 5);
    //  [[-1, ...]]: a negative type; a map where the list should be.
    static const uint8_t negative[] = {0x91, 0x97, 0xff, 0, 0, 0, 0, 0xa1, 'g', 0xa0};
    static const uint8_t map[] = {0x80};
    cr_assert_eq(tern_gops_decode(negative, sizeof negative, s_op_add, &got), TERN_EMALFORMED);
    cr_assert_eq(tern_gops_decode(map, sizeof map, s_op_add, &got), TERN_EMALFORMED);
    cr_assert_eq(got.count, 1);
}

//  A group state whose pending list claims 2^31 entries in a few bytes:
//  refused before an array is sized by the claim (tern_alloc would end the
//  process).
Test(proto_group, state_count_past_the_bytes) {
    tern_gstate_t state;
    memset(&state, 0, sizeof state);
    snprintf(state.group, sizeof state.group, "g");
    uint8_t buf[512];
    size_t len = 0;
    cr_assert_eq(tern_gstate_encode(&state, buf, sizeof buf, &len), TERN_OK);
    //  The state ends with two empty lists (0x90 0x90): the first becomes
    //  an array32 header of 0x80000000 with a single entry's worth after.
    cr_assert_eq(buf[len - 2], 0x90);
    cr_assert_eq(buf[len - 1], 0x90);
    static const uint8_t tail[] = {0xdd, 0x80, 0, 0, 0, 0x95, 1, 2, 3, 4, 0xa0, 0x90};
    memcpy(buf + len - 2, tail, sizeof tail);
    len += sizeof tail - 2;
    tern_gstate_t got;
    cr_assert_eq(tern_gstate_decode(buf, len, &got), TERN_EMALFORMED);
    cr_assert_null(got.pending);
    cr_assert_eq(got.npending, 0);
    //  The same with an honest count of one decodes.
    buf[len - 11] = 0;
    buf[len - 8] = 1;
    cr_assert_eq(tern_gstate_decode(buf, len, &got), TERN_OK);
    cr_assert_eq(got.npending, 1);
    cr_assert_eq(got.pending[0].seq, 1);
    cr_assert_eq(got.pending[0].priority, 4);
    tern_gstate_clear(&got);
}

//  An ack or dead op may carry an 8th element, its ack-state outbox
//  position (ob); nothing past it, and it must be an unsigned integer.
Test(proto_group, op_with_outbox_position) {
    tern_gop_t ops[2] = {{.type = TERN_GOP_ACK, .seq = 1, .group = "g", .ob = 42},
                         {.type = TERN_GOP_ACK, .seq = 2, .group = "g"}};
    uint8_t buf[256];
    size_t len = 0;
    cr_assert_eq(tern_gops_encode(ops, 2, buf, sizeof buf, &len), TERN_OK);
    s_got_t got = {.count = 0};
    cr_assert_eq(tern_gops_decode(buf, len, s_op_add, &got), TERN_OK);
    cr_assert_eq(got.count, 2);
    cr_assert_eq(got.ops[0].ob, 42);
    cr_assert_eq(got.ops[1].ob, 0);
    //  [[3, 0, 0, 1, 0, "g", "", 42, 0]]: nine elements; then ob as a str.
    static const uint8_t nine[] = {0x91, 0x99, 3, 0, 0, 1, 0, 0xa1, 'g', 0xa0, 42, 0};
    static const uint8_t str_ob[] = {0x91, 0x98, 3, 0, 0, 1, 0, 0xa1, 'g', 0xa0, 0xa1, 'x'};
    got.count = 0;
    cr_assert_eq(tern_gops_decode(nine, sizeof nine, s_op_add, &got), TERN_EMALFORMED);
    cr_assert_eq(tern_gops_decode(str_ob, sizeof str_ob, s_op_add, &got), TERN_EMALFORMED);
    cr_assert_eq(got.count, 0);
}

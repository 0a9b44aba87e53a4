/*  test_admin.c - the admin operations table (broker/tern_admin.c): lookup
    by name, the row of each enum value, and argument parsing.
*/
#include "tern_admin.h"
#include <criterion/criterion.h>
#include <string.h>

#define S_KV(k, v)                                                                                 \
    { k, sizeof k - 1, v, sizeof v - 1 }

//  An ADMIN frame whose arguments are the COUNT pairs KV, encoded into META.
static void s_frame(tern_frame_t *frame, uint8_t *meta, size_t cap, const tern_kv_t *kv,
                    size_t count) {
    size_t meta_size = 0;
    cr_assert_eq(tern_meta_encode(kv, count, meta, cap, &meta_size), TERN_OK);
    tern_frame_init(frame, TERN_CMD_ADMIN);
    frame->meta = meta;
    frame->meta_size = meta_size;
}

//  Usage: conn looks an ADMIN frame's name up, checks what the row asks
//  for, parses the arguments into a request and hands it to the row's actor.
Test(admin, usage_lookup_and_parse) {
    const tern_admin_desc_t *desc = tern_admin_lookup("group.seek");
    cr_assert_not_null(desc);
    cr_assert_eq(desc->op, TERN_ADMIN_GROUP_SEEK);
    cr_assert_eq(desc->actor, TERN_ADMIN_BY_ROUTE);
    cr_assert_eq(desc->right, TERN_ADMIN_RIGHT_ADMIN);
    cr_assert(desc->args & TERN_ADMIN_ARG_TOPIC);
    cr_assert(desc->args & TERN_ADMIN_ARG_GROUP);

    uint8_t meta[64];
    tern_kv_t kv[] = {S_KV("to", "seq:42")};
    tern_frame_t frame;
    s_frame(&frame, meta, sizeof meta, kv, 1);
    tern_admin_t admin = {0};
    char reason[128] = "";
    cr_assert_eq(tern_admin_parse(desc, &frame, &admin, reason, sizeof reason), TERN_OK);
    cr_assert_eq(admin.start, TERN_START_SEQ);
    cr_assert_eq(admin.start_value, 42);

    cr_assert_null(tern_admin_lookup("no.such.op"));
}

Test(admin, every_enum_value_has_its_row) {
    for (unsigned op = 0; op < TERN_ADMIN_OP_COUNT; op++) {
        const tern_admin_desc_t *desc = tern_admin_desc((tern_admin_op_t)op);
        cr_assert_not_null(desc);
        cr_assert_eq((unsigned)desc->op, op, "row %u is %s", op, desc->name);
        cr_assert_eq(tern_admin_lookup(desc->name), desc);
        cr_assert_str_eq(tern_admin_name(op), desc->name);
    }
    cr_assert_str_eq(tern_admin_name(TERN_ADMIN_OP_COUNT), "?");
    cr_assert_null(tern_admin_desc(TERN_ADMIN_OP_COUNT));
}

Test(admin, seek_needs_to_and_seq_must_be_a_number) {
    const tern_admin_desc_t *seek = tern_admin_lookup("group.seek");
    tern_frame_t frame;
    tern_frame_init(&frame, TERN_CMD_ADMIN);
    tern_admin_t admin = {0};
    char reason[128] = "";
    cr_assert_eq(tern_admin_parse(seek, &frame, &admin, reason, sizeof reason), TERN_EINVAL);
    cr_assert_str_eq(reason, "missing or invalid to argument (first, new, seq:N or time:DUR)");

    uint8_t meta[64];
    tern_kv_t kv[] = {S_KV("seq", "x1")};
    s_frame(&frame, meta, sizeof meta, kv, 1);
    const tern_admin_desc_t *replay = tern_admin_lookup("dlq.replay");
    cr_assert_eq(tern_admin_parse(replay, &frame, &admin, reason, sizeof reason), TERN_EINVAL);
    cr_assert_str_eq(reason, "invalid seq argument");
}

Test(admin, limits_parse_units) {
    const tern_admin_desc_t *create = tern_admin_lookup("topic.create");
    uint8_t meta[128];
    tern_kv_t kv[] = {S_KV("max_age_ms", "2h"), S_KV("max_msgs", "10"), S_KV("max_bytes", "1MiB")};
    tern_frame_t frame;
    s_frame(&frame, meta, sizeof meta, kv, 3);
    tern_admin_t admin = {0};
    char reason[128] = "";
    cr_assert_eq(tern_admin_parse(create, &frame, &admin, reason, sizeof reason), TERN_OK);
    cr_assert_eq(admin.max_age_ms, 2 * 3600 * 1000ull);
    cr_assert_eq(admin.max_msgs, 10);
    cr_assert_eq(admin.max_bytes, 1 << 20);
}

Test(admin, positions) {
    uint8_t start = 0;
    uint64_t value = 0;
    cr_assert(tern_admin_parse_position("first", &start, &value));
    cr_assert_eq(start, TERN_START_FIRST);
    cr_assert(tern_admin_parse_position("new", &start, &value));
    cr_assert_eq(start, TERN_START_NEW);
    cr_assert(tern_admin_parse_position("time:1s", &start, &value));
    cr_assert_eq(start, TERN_START_TIME);
    cr_assert_gt(value, 0);
    cr_assert_not(tern_admin_parse_position("seq:0", &start, &value));
    cr_assert_not(tern_admin_parse_position("last", &start, &value));
}

//  Every id argument (seq, count, trace's msg_id) goes through this parser.
Test(admin, seq_is_a_decimal_of_at_least_one) {
    uint64_t seq = 0;
    cr_assert(tern_admin_parse_seq("42", &seq));
    cr_assert_eq(seq, 42);
    const char *bad[] = {"0", "", "-1", "+5", " 5", "5x", "x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_not(tern_admin_parse_seq(bad[i], &seq), "'%s' taken as a seq", bad[i]);
    }
}

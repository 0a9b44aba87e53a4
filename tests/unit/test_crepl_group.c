/*  test_crepl_group.c - what a cluster leader's storer ships of its
    committed group ops (tern_crepl_group_collect): OPEN, SEEK and RESET
    go as the seq their commit resolved, never as the start rule. */
#include "tern_crepl.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

static tern_op_t s_op(uint8_t type, uint8_t start, uint64_t start_seq) {
    tern_op_t op;
    memset(&op, 0, sizeof op);
    op.type = type;
    op.start = start;
    op.start_value = 123; //  a TIME, say: the follower must not see it
    op.start_seq = start_seq;
    op.topic_id = 7;
    strcpy(op.group, "g");
    return op;
}

Test(crepl_group, collect_ships_resolved_start) {
    tern_op_t items[5] = {
        s_op(TERN_OP_OPEN, TERN_START_NEW, 42),   //  created at 42
        s_op(TERN_OP_OPEN, TERN_START_NEW, 0),    //  existed: changed nothing
        s_op(TERN_OP_SEEK, TERN_START_TIME, 17),  //  moved to 17
        s_op(TERN_OP_RESET, TERN_START_FIRST, 3), //  reopened at 3
        s_op(TERN_OP_ACK, 0, 0),
    };
    items[4].seq = 9;
    tern_ops_t ops = {items, 5, 5, NULL};
    tern_notice_t notice;
    memset(&notice, 0, sizeof notice);
    tern_crepl_group_collect(&notice, &ops);
    cr_assert_eq(notice.gop_count, 4);
    uint64_t want[3] = {42, 17, 3};
    for (size_t i = 0; i < 3; i++) {
        cr_assert_eq(notice.gops[i].aux, TERN_START_SEQ, "op %zu", i);
        cr_assert_eq(notice.gops[i].value, want[i], "op %zu", i);
        cr_assert_eq(notice.gop_topics[i], 7);
    }
    cr_assert_eq(notice.gops[1].type, TERN_GOP_SEEK);
    cr_assert_eq(notice.gops[3].type, TERN_GOP_ACK);
    cr_assert_eq(notice.gops[3].seq, 9);
    free(notice.gops);
    free(notice.gop_topics);
}

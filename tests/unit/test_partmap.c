/*  test_partmap.c - partition records and their rules (cluster/
    tern_partmap.c): election only inside the ISR, ISR shrink and expand,
    the acknowledgement rule with min_insync, epoch fencing, the text form
    and the map. No sockets, no clock, no etcd. */
#include "tern_partmap.h"
#include <criterion/criterion.h>
#include <string.h>

//  Partition 5 on nodes 2, 0, 4 (placement order), led by 2, all in sync.
static tern_partmap_record_t s_record(void) {
    tern_partmap_record_t rec = {.partition = 5,
                                 .leader = 2,
                                 .epoch = 100,
                                 .nreplicas = 3,
                                 .replicas = {2, 0, 4},
                                 .nisr = 3,
                                 .isr = {2, 0, 4}};
    return rec;
}

//  Usage: the controller fails over a partition whose leader died, the
//  leader decides when to acknowledge, and the record travels as text.
Test(partmap, usage) {
    tern_partmap_record_t rec = s_record();
    uint32_t live[] = {0, 4, 7}; //  node 2 lost its lease
    tern_partmap_record_t next;
    cr_assert(tern_partmap_failover(&rec, live, 3, &next));
    cr_assert_eq(next.leader, 0u); //  the first live ISR member in replica order
    cr_assert_eq(next.nisr, 2u);
    cr_assert_eq(next.isr[0], 0u);
    cr_assert_eq(next.isr[1], 4u);
    next.epoch = 117; //  the revision etcd gave the CAS write

    //  The new leader acknowledges position 42 once both ISR members have it.
    tern_partmap_replica_t reps[] = {{.node = 0, .durable = 42}, {.node = 4, .durable = 41}};
    char why[128];
    cr_assert_eq(tern_partmap_ack_check(&next, NULL, reps, 2, 42, 2, why, sizeof why),
                 TERN_PARTMAP_WAIT);
    cr_assert_str_eq(why, "waiting for 1 in-sync replica to fsync (node 4)");
    reps[1].durable = 42;
    cr_assert_eq(tern_partmap_ack_check(&next, NULL, reps, 2, 42, 2, why, sizeof why),
                 TERN_PARTMAP_ACK);

    //  Frames from the old leader's epoch are refused.
    cr_assert_eq(tern_partmap_fence(next.epoch, 100), TERN_PARTMAP_EPOCH_STALE);
    cr_assert_eq(tern_partmap_fence(next.epoch, 117), TERN_PARTMAP_EPOCH_CURRENT);

    char text[TERN_PARTMAP_TEXT_MAX];
    cr_assert_eq(tern_partmap_record_encode(&next, text, sizeof text), TERN_OK);
    cr_assert_str_eq(text, "partition=5 leader=0 epoch=117 replicas=2,0,4 isr=0,4");
    tern_partmap_record_t back;
    cr_assert_eq(tern_partmap_record_decode(text, strlen(text), &back, NULL), TERN_OK);
    cr_assert(tern_partmap_record_same(&back, &next));
}

//  --- Election ---------------------------------------------------------

Test(partmap, live_leader_stays) {
    tern_partmap_record_t rec = s_record(), next;
    uint32_t live[] = {0, 2, 4};
    cr_assert_eq(tern_partmap_elect(&rec, live, 3), 2u);
    cr_assert_not(tern_partmap_failover(&rec, live, 3, &next));
    cr_assert(tern_partmap_record_same(&rec, &next));
}

//  Node 0 is live and a replica but out of sync: never chosen.
Test(partmap, never_elects_outside_isr) {
    tern_partmap_record_t rec = s_record(), next;
    rec.nisr = 2;
    rec.isr[0] = 2;
    rec.isr[1] = 4;
    uint32_t live[] = {0, 4};
    cr_assert_eq(tern_partmap_elect(&rec, live, 2), 4u);
    //  With 4 gone as well, nobody: the live out-of-sync node 0 is not taken.
    uint32_t only0[] = {0, 9};
    cr_assert_eq(tern_partmap_elect(&rec, only0, 2), TERN_NODE_NONE);
    cr_assert(tern_partmap_failover(&rec, only0, 2, &next));
    cr_assert_eq(next.leader, TERN_NODE_NONE);
    //  The ISR is kept whole: the nodes that may lead once they return.
    cr_assert_eq(next.nisr, 2u);
    cr_assert_eq(next.isr[0], 2u);
    cr_assert_eq(next.isr[1], 4u);
    //  A record that says the leader is out of the ISR is not trusted either.
    rec.leader = 0;
    cr_assert_eq(tern_partmap_elect(&rec, only0, 2), TERN_NODE_NONE);
}

//  Exhaustively: every ISR and live set over 3 replicas elects a live ISR
//  member, or none exactly when no ISR member is live.
Test(partmap, election_property) {
    for (unsigned isr_bits = 1; isr_bits < 8; isr_bits++) {
        for (unsigned live_bits = 0; live_bits < 16; live_bits++) {
            tern_partmap_record_t rec = s_record(), next;
            rec.nisr = 0;
            for (int i = 0; i < 3; i++) {
                if (isr_bits & (1u << i)) {
                    rec.isr[rec.nisr++] = rec.replicas[i];
                }
            }
            rec.leader = tern_partmap_in_isr(&rec, 2) ? 2 : TERN_NODE_NONE;
            uint32_t live[4];
            size_t nlive = 0;
            uint32_t cand[] = {2, 0, 4, 9};
            bool any = false;
            for (int i = 0; i < 4; i++) {
                if (live_bits & (1u << i)) {
                    live[nlive++] = cand[i];
                    any = any || tern_partmap_in_isr(&rec, cand[i]);
                }
            }
            uint32_t leader = tern_partmap_elect(&rec, live, nlive);
            cr_assert_eq(leader != TERN_NODE_NONE, any);
            if (any) {
                cr_assert(tern_partmap_in_isr(&rec, leader));
                cr_assert(tern_partmap_can_lead(&rec, leader, live, nlive));
            }
            tern_partmap_failover(&rec, live, nlive, &next);
            cr_assert_eq(tern_partmap_record_check(&next, NULL), TERN_OK);
            cr_assert(next.nisr > 0);
        }
    }
}

//  A leaderless partition gets the first ISR member that comes back.
Test(partmap, leaderless_partition_recovers) {
    tern_partmap_record_t rec = s_record(), next;
    rec.leader = TERN_NODE_NONE;
    uint32_t back[] = {4};
    cr_assert(tern_partmap_failover(&rec, back, 1, &next));
    cr_assert_eq(next.leader, 4u);
    cr_assert_eq(next.nisr, 1u);
    cr_assert_eq(next.isr[0], 4u);
}

Test(partmap, handover_target) {
    tern_partmap_record_t rec = s_record();
    rec.nisr = 2; //  2 and 0 in sync, 4 is not
    uint32_t live[] = {0, 2, 4};
    cr_assert(tern_partmap_can_lead(&rec, 0, live, 3));
    cr_assert_not(tern_partmap_can_lead(&rec, 4, live, 3));
    cr_assert_not(tern_partmap_can_lead(&rec, 0, live + 1, 2)); //  0 not live
    cr_assert_not(tern_partmap_can_lead(&rec, 7, live, 3));
    cr_assert_not(tern_partmap_can_lead(&rec, TERN_NODE_NONE, live, 3));
}

//  --- ISR --------------------------------------------------------------

Test(partmap, confirm_tracks_catch_up) {
    tern_partmap_replica_t rep = {.node = 0, .durable = 0, .caught_up_ms = 1000};
    //  Behind the end the batch was sent at: durable moves, caught_up does not.
    tern_partmap_replica_confirm(&rep, 10, 20, 1500);
    cr_assert_eq(rep.durable, 10u);
    cr_assert_eq(rep.caught_up_ms, 1000u);
    //  Reached it: caught up as of the send time.
    tern_partmap_replica_confirm(&rep, 20, 20, 1600);
    cr_assert_eq(rep.caught_up_ms, 1600u);
    //  A late answer about an older batch does not move time backwards.
    tern_partmap_replica_confirm(&rep, 20, 15, 1550);
    cr_assert_eq(rep.caught_up_ms, 1600u);
    //  After a truncation the position may go down.
    tern_partmap_replica_confirm(&rep, 18, 30, 1700);
    cr_assert_eq(rep.durable, 18u);
}

//  lag_ms = 4000: a follower last caught up 4000 ms ago stays, 4001 leaves.
Test(partmap, isr_shrinks_after_lag) {
    tern_partmap_record_t rec = s_record(), next;
    tern_partmap_replica_t reps[] = {{.node = 2, .durable = 50, .caught_up_ms = 10000},
                                     {.node = 0, .durable = 40, .caught_up_ms = 6000},
                                     {.node = 4, .durable = 50, .caught_up_ms = 9999}};
    cr_assert_not(tern_partmap_isr_next(&rec, reps, 3, 50, 10000, 4000, &next));
    cr_assert(tern_partmap_record_same(&rec, &next));
    cr_assert(tern_partmap_isr_next(&rec, reps, 3, 50, 10001, 4000, &next));
    cr_assert_eq(next.nisr, 2u);
    cr_assert_eq(next.isr[0], 2u);
    cr_assert_eq(next.isr[1], 4u);
    cr_assert_eq(next.leader, 2u);
    cr_assert_eq(next.epoch, rec.epoch);
    //  The leader itself never leaves, however old its own entry.
    reps[0].caught_up_ms = 0;
    cr_assert(tern_partmap_isr_next(&rec, reps, 3, 50, 10001, 4000, &next));
    cr_assert(tern_partmap_in_isr(&next, 2));
    //  A follower the leader has no entry for is not in sync.
    cr_assert(tern_partmap_isr_next(&rec, reps, 1, 50, 10001, 4000, &next));
    cr_assert_eq(next.nisr, 1u);
    cr_assert_eq(next.isr[0], 2u);
}

//  Node 4 is out; it rejoins only when durable >= high watermark and it is
//  caught up within lag_ms.
Test(partmap, isr_expands_at_high_watermark) {
    tern_partmap_record_t rec = s_record(), next;
    rec.nisr = 2; //  {2, 0}
    tern_partmap_replica_t reps[] = {{.node = 2, .durable = 80, .caught_up_ms = 20000},
                                     {.node = 0, .durable = 80, .caught_up_ms = 20000},
                                     {.node = 4, .durable = 69, .caught_up_ms = 19000}};
    cr_assert_not(tern_partmap_isr_next(&rec, reps, 3, 70, 20000, 4000, &next));
    reps[2].durable = 70;
    cr_assert(tern_partmap_isr_next(&rec, reps, 3, 70, 20000, 4000, &next));
    cr_assert_eq(next.nisr, 3u);
    cr_assert(tern_partmap_in_isr(&next, 4));
    //  Placement order, not join order.
    cr_assert_eq(next.isr[2], 4u);
    //  At the watermark but silent for longer than lag_ms: stays out.
    reps[2].caught_up_ms = 15000;
    cr_assert_not(tern_partmap_isr_next(&rec, reps, 3, 70, 20000, 4000, &next));
}

//  --- Acknowledgement ----------------------------------------------------

Test(partmap, ack_needs_min_insync) {
    tern_partmap_record_t rec = s_record();
    rec.nisr = 1; //  only the leader, 2
    tern_partmap_replica_t reps[] = {{.node = 2, .durable = 9}, {.node = 0, .durable = 9}};
    char why[128];
    //  Durable on the leader and even on node 0, but 0 is not in the ISR:
    //  one in-sync copy is never enough with min_insync 2.
    cr_assert_eq(tern_partmap_ack_check(&rec, NULL, reps, 2, 9, 2, why, sizeof why),
                 TERN_PARTMAP_REFUSE);
    cr_assert_str_eq(why, "1 in-sync replica (node 2), cluster/min_insync is 2");
    //  min_insync 1 (an operator's choice) allows it; 0 counts as 1.
    cr_assert_eq(tern_partmap_ack_check(&rec, NULL, reps, 2, 9, 1, why, sizeof why),
                 TERN_PARTMAP_ACK);
    cr_assert_eq(tern_partmap_ack_check(&rec, NULL, reps, 2, 9, 0, NULL, 0), TERN_PARTMAP_ACK);
    rec.nisr = 0;
    rec.leader = TERN_NODE_NONE;
    cr_assert_eq(tern_partmap_ack_check(&rec, NULL, reps, 2, 9, 1, why, sizeof why),
                 TERN_PARTMAP_REFUSE);
    cr_assert_str_eq(why, "partition 5 has no leader");
}

Test(partmap, ack_waits_for_every_isr_member) {
    tern_partmap_record_t rec = s_record();
    tern_partmap_replica_t reps[] = {
        {.node = 2, .durable = 30}, {.node = 0, .durable = 29}, {.node = 4, .durable = 35}};
    char why[128];
    cr_assert_eq(tern_partmap_ack_check(&rec, NULL, reps, 3, 30, 2, why, sizeof why),
                 TERN_PARTMAP_WAIT);
    cr_assert_str_eq(why, "waiting for 1 in-sync replica to fsync (node 0)");
    //  Two of three is not enough while the third is in the ISR.
    cr_assert_eq(tern_partmap_ack_check(&rec, NULL, reps, 3, 31, 2, why, sizeof why),
                 TERN_PARTMAP_WAIT);
    cr_assert_str_eq(why, "waiting for 2 in-sync replicas to fsync (node 2, 0)");
    //  A member the leader has no entry for has confirmed nothing.
    cr_assert_eq(tern_partmap_ack_check(&rec, NULL, reps + 1, 2, 1, 2, why, sizeof why),
                 TERN_PARTMAP_WAIT);
    cr_assert_eq(tern_partmap_ack_check(&rec, NULL, reps, 3, 29, 2, why, sizeof why),
                 TERN_PARTMAP_ACK);
    //  A tiny reason buffer is cut, never overrun.
    char tiny[8];
    cr_assert_eq(tern_partmap_ack_check(&rec, NULL, reps, 3, 31, 2, tiny, sizeof tiny),
                 TERN_PARTMAP_WAIT);
    cr_assert_eq(strlen(tiny), 7u);
    //  Without a buffer (the leader's hot path) the same answers, nothing
    //  formatted.
    cr_assert_eq(tern_partmap_ack_check(&rec, NULL, reps, 3, 31, 2, NULL, 0), TERN_PARTMAP_WAIT);
    cr_assert_eq(tern_partmap_ack_check(&rec, NULL, reps, 3, 29, 2, NULL, 0), TERN_PARTMAP_ACK);
    cr_assert_eq(tern_partmap_ack_check(&rec, NULL, reps, 3, 31, 4, NULL, 0), TERN_PARTMAP_REFUSE);
    strcpy(why, "kept");
    cr_assert_eq(tern_partmap_ack_check(&rec, NULL, reps, 3, 31, 2, why, 0), TERN_PARTMAP_WAIT);
    cr_assert_str_eq(why, "kept");
}

//  While an ISR change is being written, the leader waits on the members of
//  both the committed and the pending ISR; min_insync counts the committed.
Test(partmap, ack_during_isr_change) {
    tern_partmap_record_t rec = s_record(), pending;
    rec.nisr = 2; //  committed {2, 0}
    tern_partmap_replica_t reps[] = {{.node = 2, .durable = 50, .caught_up_ms = 100},
                                     {.node = 0, .durable = 50, .caught_up_ms = 100},
                                     {.node = 4, .durable = 45, .caught_up_ms = 100}};
    //  Expansion proposed: 4 reached the high watermark 45.
    cr_assert(tern_partmap_isr_next(&rec, reps, 3, 45, 100, 4000, &pending));
    char why[128];
    cr_assert_eq(tern_partmap_ack_check(&rec, &pending, reps, 3, 50, 2, why, sizeof why),
                 TERN_PARTMAP_WAIT);
    cr_assert_str_eq(why, "waiting for 1 in-sync replica to fsync (node 4)");
    cr_assert_eq(tern_partmap_ack_check(&rec, NULL, reps, 3, 50, 2, why, sizeof why),
                 TERN_PARTMAP_ACK);
    //  Shrink proposed to {2} alone: the committed ISR still counts for
    //  min_insync, and node 0 is still waited on.
    pending = rec;
    pending.nisr = 1;
    reps[1].durable = 49;
    cr_assert_eq(tern_partmap_ack_check(&rec, &pending, reps, 3, 50, 2, why, sizeof why),
                 TERN_PARTMAP_WAIT);
    cr_assert_str_eq(why, "waiting for 1 in-sync replica to fsync (node 0)");
    //  Once written, the smaller ISR is below min_insync: refused.
    cr_assert_eq(tern_partmap_ack_check(&pending, NULL, reps, 3, 50, 2, why, sizeof why),
                 TERN_PARTMAP_REFUSE);
}

//  --- Fencing ------------------------------------------------------------

Test(partmap, epoch_fencing) {
    cr_assert_eq(tern_partmap_fence(100, 99), TERN_PARTMAP_EPOCH_STALE);
    cr_assert_eq(tern_partmap_fence(100, 0), TERN_PARTMAP_EPOCH_STALE);
    cr_assert_eq(tern_partmap_fence(100, 100), TERN_PARTMAP_EPOCH_CURRENT);
    cr_assert_eq(tern_partmap_fence(100, 101), TERN_PARTMAP_EPOCH_AHEAD);
    cr_assert_eq(tern_partmap_fence(UINT64_MAX, UINT64_MAX - 1), TERN_PARTMAP_EPOCH_STALE);
}

//  --- Text form ----------------------------------------------------------

static void s_round_trip(const tern_partmap_record_t *rec, const char *expected) {
    char text[TERN_PARTMAP_TEXT_MAX];
    cr_assert_eq(tern_partmap_record_encode(rec, text, sizeof text), TERN_OK);
    cr_assert_str_eq(text, expected);
    tern_partmap_record_t back;
    memset(&back, 0xee, sizeof back);
    cr_assert_eq(tern_partmap_record_decode(text, strlen(text), &back, NULL), TERN_OK, "%s", text);
    cr_assert(tern_partmap_record_same(&back, rec), "%s", text);
}

Test(partmap, codec_round_trips) {
    tern_partmap_record_t rec = s_record();
    s_round_trip(&rec, "partition=5 leader=2 epoch=100 replicas=2,0,4 isr=2,0,4");
    //  The order of the key's writes, which survives an etcd restore.
    rec.ver = 130;
    s_round_trip(&rec, "partition=5 leader=2 epoch=100 ver=130 replicas=2,0,4 isr=2,0,4");
    rec.ver = 0;
    //  Without a leader, and with epoch 0 (an etcd value: the revision of
    //  the write is the epoch, so the value leaves it out).
    rec.leader = TERN_NODE_NONE;
    rec.epoch = 0;
    rec.nisr = 1;
    rec.isr[0] = 4;
    s_round_trip(&rec, "partition=5 leader=none replicas=2,0,4 isr=4");
    //  Unassigned: no replicas, no ISR.
    tern_partmap_record_t empty = {.partition = 4294967295u, .leader = TERN_NODE_NONE};
    s_round_trip(&empty, "partition=4294967295 leader=none replicas= isr=");
    //  The largest record fits TERN_PARTMAP_TEXT_MAX.
    tern_partmap_record_t big = {
        .partition = UINT32_MAX, .leader = 1000, .epoch = UINT64_MAX, .ver = UINT64_MAX};
    big.nreplicas = big.nisr = TERN_PLACEMENT_REPLICAS_MAX;
    for (uint32_t i = 0; i < TERN_PLACEMENT_REPLICAS_MAX; i++) {
        big.replicas[i] = big.isr[i] = 1023 - i;
    }
    big.leader = 1023; //  the first replica, so in the ISR
    char text[TERN_PARTMAP_TEXT_MAX];
    cr_assert_eq(tern_partmap_record_encode(&big, text, sizeof text), TERN_OK);
    tern_partmap_record_t back;
    cr_assert_eq(tern_partmap_record_decode(text, strlen(text), &back, NULL), TERN_OK);
    cr_assert(tern_partmap_record_same(&back, &big));
}

Test(partmap, codec_any_order_and_unknown_keys) {
    const char *text = "isr=4,2 future_key=x,y=z replicas=2,0,4 leader=4 partition=7";
    tern_partmap_record_t rec;
    cr_assert_eq(tern_partmap_record_decode(text, strlen(text), &rec, NULL), TERN_OK);
    cr_assert_eq(rec.partition, 7u);
    cr_assert_eq(rec.leader, 4u);
    cr_assert_eq(rec.epoch, 0u);
    cr_assert_eq(rec.nreplicas, 3u);
    cr_assert_eq(rec.nisr, 2u);
    //  LEN bounds the input: no terminator is needed or read.
    const char *longer = "partition=1 leader=none replicas=3 isr=3 GARBAGE";
    cr_assert_eq(tern_partmap_record_decode(longer, 40, &rec, NULL), TERN_OK);
    cr_assert_eq(rec.partition, 1u);
}

Test(partmap, codec_refuses_malformed) {
    static const char *const bad[] = {
        "",
        " ",
        "partition=5 leader=2 replicas=2,0,4",                              //  isr missing
        "partition=5 leader=2 replicas=2,0,4 isr=2 isr=2",                  //  repeated
        "partition=5  leader=2 replicas=2,0,4 isr=2",                       //  two spaces
        "partition=5 leader=2 replicas=2,0,4 isr=2 ",                       //  trailing space
        " partition=5 leader=2 replicas=2,0,4 isr=2",                       //  leading space
        "partition=5 leader=2 replicas=2,0,4 isr=2,",                       //  trailing comma
        "partition=5 leader=2 replicas=2,,4 isr=2",                         //  empty element
        "partition=05 leader=2 replicas=2,0,4 isr=2",                       //  leading zero
        "partition=-5 leader=2 replicas=2,0,4 isr=2",                       //  sign
        "partition=+5 leader=2 replicas=2,0,4 isr=2",                       //  sign
        "partition=4294967296 leader=2 replicas=2,0,4 isr=2",               //  above u32
        "partition=5 leader=2 epoch=18446744073709551616 replicas=2 isr=2", //  above u64
        "partition=5 leader=1024 replicas=1024 isr=1024",                   //  node id above 1023
        "partition=5 leader=2 replicas=2,0,2 isr=2",                        //  replica twice
        "partition=5 leader=2 replicas=2,0,4 isr=2,2",                      //  isr member twice
        "partition=5 leader=2 replicas=2,0,4 isr=2,7",                      //  isr outside replicas
        "partition=5 leader=0 replicas=2,0,4 isr=2",                        //  leader outside isr
        "partition=5 leader= replicas=2,0,4 isr=2",                         //  empty leader
        "partition=5 leader=None replicas=2,0,4 isr=2",                     //  case matters
        "partition=5 leader=2 replicas=2,0,4 isr=2 =x",                     //  empty key
        "partition=5 leader=2 replicas=2,0,4 isr=2 Key=x",                  //  key not [a-z_]+
        "partition=5 leader=2 replicas=2,0,4 isr=2 junk",                   //  no '='
        "partition=5 leader=2 replicas=0x2 isr=",                           //  hex
        "partition=5 leader=none replicas=1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17 isr=",
        "partition=5\tleader=2 replicas=2 isr=2", //  tab is not a separator
    };
    tern_partmap_record_t rec = s_record();
    tern_partmap_record_t before = rec;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *why = NULL;
        cr_assert_eq(tern_partmap_record_decode(bad[i], strlen(bad[i]), &rec, &why),
                     TERN_EMALFORMED, "accepted: '%s'", bad[i]);
        cr_assert_not_null(why);
        cr_assert_eq(memcmp(&rec, &before, sizeof rec), 0, "changed by '%s'", bad[i]);
    }
    //  A NUL inside the given length is a bad byte, not an end.
    const char nul[] = "partition=5\0 leader=2 replicas=2 isr=2";
    cr_assert_eq(tern_partmap_record_decode(nul, sizeof nul - 1, &rec, NULL), TERN_EMALFORMED);
    cr_assert_eq(tern_partmap_record_decode(NULL, 0, &rec, NULL), TERN_EMALFORMED);
}

//  Every prefix of a good text is either refused or a whole record: a
//  truncated etcd value never reads as something else.
Test(partmap, codec_prefixes) {
    const char *text = "partition=5 leader=2 epoch=100 replicas=2,0,4 isr=2,0,4";
    size_t len = strlen(text);
    for (size_t n = 0; n < len; n++) {
        tern_partmap_record_t rec;
        tern_err_t rc = tern_partmap_record_decode(text, n, &rec, NULL);
        if (rc == TERN_OK) {
            //  Only a prefix that cuts the ISR list between members parses.
            cr_assert(n >= strlen("partition=5 leader=2 epoch=100 replicas=2,0,4 isr=2"), "%zu", n);
        } else {
            cr_assert_eq(rc, TERN_EMALFORMED);
        }
    }
}

Test(partmap, encode_refuses_invalid_and_small_buffers) {
    tern_partmap_record_t rec = s_record();
    char text[TERN_PARTMAP_TEXT_MAX];
    const char *why = NULL;
    rec.leader = 7;
    cr_assert_eq(tern_partmap_record_check(&rec, &why), TERN_EINVAL);
    cr_assert_str_eq(why, "leader not in isr");
    cr_assert_eq(tern_partmap_record_encode(&rec, text, sizeof text), TERN_EINVAL);
    rec = s_record();
    rec.nreplicas = TERN_PLACEMENT_REPLICAS_MAX + 1;
    cr_assert_eq(tern_partmap_record_encode(&rec, text, sizeof text), TERN_EINVAL);
    rec = s_record();
    char small[20];
    cr_assert_eq(tern_partmap_record_encode(&rec, small, sizeof small), TERN_ETOOBIG);
    cr_assert_eq(strlen(small), sizeof small - 1);
}

//  --- The map ------------------------------------------------------------

Test(partmap, map_applies_newer_records_only) {
    tern_partmap_t *map = tern_partmap_new(8);
    cr_assert_not_null(map);
    cr_assert_eq(tern_partmap_partitions(map), 8u);
    const tern_partmap_record_t *got = tern_partmap_get(map, 5);
    cr_assert_eq(got->partition, 5u);
    cr_assert_eq(got->leader, TERN_NODE_NONE);
    cr_assert_null(tern_partmap_get(map, 8));

    tern_partmap_record_t rec = s_record();
    cr_assert_eq(tern_partmap_apply(map, &rec), TERN_OK);
    cr_assert_eq(tern_partmap_get(map, 5)->leader, 2u);
    //  A late watch event with an older epoch does not undo a newer one.
    tern_partmap_record_t old = rec;
    old.epoch = 99;
    old.leader = 0;
    cr_assert_eq(tern_partmap_apply(map, &old), TERN_ESTATE);
    cr_assert_eq(tern_partmap_get(map, 5)->leader, 2u);
    cr_assert_eq(tern_partmap_apply(map, &rec), TERN_OK); //  the same again
    rec.partition = 8;
    cr_assert_eq(tern_partmap_apply(map, &rec), TERN_ERANGE);
    rec = s_record();
    rec.leader = 9;
    cr_assert_eq(tern_partmap_apply(map, &rec), TERN_EINVAL);

    uint32_t led, held;
    tern_partmap_count(map, 2, &led, &held);
    cr_assert_eq(led, 1u);
    cr_assert_eq(held, 1u);
    tern_partmap_count(map, 4, &led, &held);
    cr_assert_eq(led, 0u);
    cr_assert_eq(held, 1u);
    cr_assert_null(tern_partmap_new(0));
    tern_partmap_destroy(&map);
    cr_assert_null(map);
    tern_partmap_destroy(&map);
}

/*  test_cluster_peer.c - the outbound replication link state machine
    (cluster/tern_peer.c): transitions, backoff 1 s, 2 s, 5 s, 5 s,
    heartbeat death, operator pause/resume. No sockets, no clock. */
#include "tern_peer.h"
#include <criterion/criterion.h>

//  Usage: a link connects at once, goes live on WELCOME, dies when silent.
Test(peer, usage) {
    tern_peer_t *link = tern_peer_new(NULL, 1, 1000);
    cr_assert_not_null(link);
    cr_assert_eq(tern_peer_state(link), TERN_PEER_IDLE);
    cr_assert_eq(tern_peer_event(link, TERN_PEER_TICK, 1000), TERN_PEER_A_CONNECT);
    cr_assert_eq(tern_peer_state(link), TERN_PEER_HELLO);
    cr_assert_eq(tern_peer_event(link, TERN_PEER_WELCOME, 1010), TERN_PEER_A_STREAM);
    cr_assert_eq(tern_peer_state(link), TERN_PEER_LIVE);
    cr_assert_str_eq(tern_peer_state_name(tern_peer_state(link)), "live");
    cr_assert_eq(tern_peer_event(link, TERN_PEER_FRAME, 2000), 0u);
    cr_assert_eq(tern_peer_last_seen(link), 2000u);
    cr_assert_eq(tern_peer_deadline(link), 5000u);
    cr_assert_eq(tern_peer_event(link, TERN_PEER_TICK, 4999), 0u);
    cr_assert_eq(tern_peer_event(link, TERN_PEER_TICK, 5000), TERN_PEER_A_CLOSE);
    cr_assert_eq(tern_peer_state(link), TERN_PEER_IDLE);
    //  Lost after LIVE: the first retry is 1 s later.
    cr_assert_eq(tern_peer_deadline(link), 6000u);
    tern_peer_destroy(&link);
    cr_assert_null(link);
    tern_peer_destroy(&link);
}

Test(peer, backoff_schedule) {
    cr_assert_eq(tern_peer_backoff_ms(1), 1000u);
    cr_assert_eq(tern_peer_backoff_ms(2), 2000u);
    cr_assert_eq(tern_peer_backoff_ms(3), 5000u);
    cr_assert_eq(tern_peer_backoff_ms(4), 5000u);
    cr_assert_eq(tern_peer_backoff_ms(100), 5000u);
}

//  A peer that never answers: attempts at 0, then +3 s handshake timeout
//  followed by 1 s, 2 s, 5 s, 5 s waits.
Test(peer, unanswered_handshakes_back_off) {
    tern_peer_timing_t timing = {.handshake_ms = 3000, .dead_ms = 3000};
    tern_peer_t *link = tern_peer_new(&timing, 1, 0);
    uint64_t now = 0;
    uint64_t expected_wait[] = {1000, 2000, 5000, 5000, 5000};
    cr_assert_eq(tern_peer_event(link, TERN_PEER_TICK, now), TERN_PEER_A_CONNECT);
    for (size_t i = 0; i < sizeof expected_wait / sizeof expected_wait[0]; i++) {
        cr_assert_eq(tern_peer_event(link, TERN_PEER_TICK, now + 2999), 0u);
        now += 3000;
        cr_assert_eq(tern_peer_deadline(link), now);
        cr_assert_eq(tern_peer_event(link, TERN_PEER_TICK, now), TERN_PEER_A_CLOSE);
        cr_assert_eq(tern_peer_failures(link), (uint32_t)(i + 1));
        cr_assert_eq(tern_peer_deadline(link), now + expected_wait[i]);
        cr_assert_eq(tern_peer_event(link, TERN_PEER_TICK, now + expected_wait[i] - 1), 0u);
        now += expected_wait[i];
        cr_assert_eq(tern_peer_event(link, TERN_PEER_TICK, now), TERN_PEER_A_CONNECT);
    }
    //  Success resets the schedule.
    cr_assert_eq(tern_peer_event(link, TERN_PEER_WELCOME, now + 5), TERN_PEER_A_STREAM);
    cr_assert_eq(tern_peer_failures(link), 0u);
    tern_peer_destroy(&link);
}

Test(peer, refused_backs_off_and_counts) {
    tern_peer_t *link = tern_peer_new(NULL, 1, 0);
    tern_peer_event(link, TERN_PEER_TICK, 0);
    cr_assert_eq(tern_peer_event(link, TERN_PEER_REFUSED, 10), TERN_PEER_A_CLOSE);
    cr_assert_eq(tern_peer_state(link), TERN_PEER_IDLE);
    cr_assert_eq(tern_peer_deadline(link), 1010u);
    cr_assert_eq(tern_peer_event(link, TERN_PEER_TICK, 1010), TERN_PEER_A_CONNECT);
    cr_assert_eq(tern_peer_event(link, TERN_PEER_REFUSED, 1020), TERN_PEER_A_CLOSE);
    cr_assert_eq(tern_peer_deadline(link), 3020u);
    //  Events that do not apply are ignored.
    cr_assert_eq(tern_peer_event(link, TERN_PEER_WELCOME, 1030), 0u);
    cr_assert_eq(tern_peer_event(link, TERN_PEER_FRAME, 1030), 0u);
    cr_assert_eq(tern_peer_state(link), TERN_PEER_IDLE);
    cr_assert_eq(tern_peer_event(link, (tern_peer_event_t)99, 1030), 0u);
    tern_peer_destroy(&link);
}

Test(peer, live_refused_closes) {
    tern_peer_t *link = tern_peer_new(NULL, 1, 0);
    tern_peer_event(link, TERN_PEER_TICK, 0);
    tern_peer_event(link, TERN_PEER_WELCOME, 1);
    cr_assert_eq(tern_peer_event(link, TERN_PEER_REFUSED, 2), TERN_PEER_A_CLOSE);
    cr_assert_eq(tern_peer_deadline(link), 1002u);
    tern_peer_destroy(&link);
}

Test(peer, pause_and_resume) {
    tern_peer_t *link = tern_peer_new(NULL, 1, 0);
    tern_peer_event(link, TERN_PEER_TICK, 0);
    tern_peer_event(link, TERN_PEER_WELCOME, 1);
    cr_assert_eq(tern_peer_event(link, TERN_PEER_PAUSE, 2), TERN_PEER_A_CLOSE);
    cr_assert_eq(tern_peer_state(link), TERN_PEER_PAUSED);
    cr_assert_str_eq(tern_peer_state_name(TERN_PEER_PAUSED), "paused");
    cr_assert_eq(tern_peer_deadline(link), UINT64_MAX);
    //  Nothing wakes a paused link but RESUME, and no timeout fires.
    cr_assert_eq(tern_peer_event(link, TERN_PEER_TICK, 1000000), 0u);
    cr_assert_eq(tern_peer_event(link, TERN_PEER_WELCOME, 1000000), 0u);
    cr_assert_eq(tern_peer_event(link, TERN_PEER_PAUSE, 1000000), 0u);
    cr_assert_eq(tern_peer_state(link), TERN_PEER_PAUSED);
    cr_assert_eq(tern_peer_event(link, TERN_PEER_RESUME, 1000001), TERN_PEER_A_CONNECT);
    cr_assert_eq(tern_peer_state(link), TERN_PEER_HELLO);
    cr_assert_eq(tern_peer_failures(link), 0u);
    //  Pausing an idle link needs no close; resume while not paused is ignored.
    tern_peer_event(link, TERN_PEER_REFUSED, 1000002);
    cr_assert_eq(tern_peer_event(link, TERN_PEER_RESUME, 1000003), 0u);
    cr_assert_eq(tern_peer_event(link, TERN_PEER_PAUSE, 1000003), 0u);
    cr_assert_eq(tern_peer_state(link), TERN_PEER_PAUSED);
    tern_peer_destroy(&link);
}

Test(peer, handshake_timeout) {
    tern_peer_timing_t timing = {.handshake_ms = 500, .dead_ms = 700};
    tern_peer_t *link = tern_peer_new(&timing, 1, 100);
    cr_assert_eq(tern_peer_event(link, TERN_PEER_TICK, 50), 0u); //  not due yet
    cr_assert_eq(tern_peer_event(link, TERN_PEER_TICK, 100), TERN_PEER_A_CONNECT);
    cr_assert_eq(tern_peer_deadline(link), 600u);
    //  Frames before WELCOME keep nothing alive: the handshake must finish.
    tern_peer_event(link, TERN_PEER_FRAME, 550);
    cr_assert_eq(tern_peer_event(link, TERN_PEER_TICK, 600), TERN_PEER_A_CLOSE);
    cr_assert_eq(tern_peer_state(link), TERN_PEER_IDLE);
    tern_peer_destroy(&link);
}

//  WAKE: the peer connected to us, so it is back; an idle link retries now.
Test(peer, wake_retries_idle_link_at_once) {
    tern_peer_t *link = tern_peer_new(NULL, 1, 0);
    tern_peer_event(link, TERN_PEER_TICK, 0);
    tern_peer_event(link, TERN_PEER_WELCOME, 1);
    tern_peer_event(link, TERN_PEER_TICK, 3001); //  dead: retry at 4001
    tern_peer_event(link, TERN_PEER_TICK, 4001);
    tern_peer_event(link, TERN_PEER_TICK, 7001); //  handshake timeout: retry at 9001
    cr_assert_eq(tern_peer_state(link), TERN_PEER_IDLE);
    cr_assert_eq(tern_peer_deadline(link), 9001u);
    cr_assert_eq(tern_peer_event(link, TERN_PEER_WAKE, 8000), TERN_PEER_A_CONNECT);
    cr_assert_eq(tern_peer_state(link), TERN_PEER_HELLO);
    cr_assert_eq(tern_peer_failures(link), 2u);
    //  Ignored while connecting, live or paused.
    cr_assert_eq(tern_peer_event(link, TERN_PEER_WAKE, 8001), 0u);
    tern_peer_event(link, TERN_PEER_WELCOME, 8002);
    cr_assert_eq(tern_peer_event(link, TERN_PEER_WAKE, 8003), 0u);
    tern_peer_event(link, TERN_PEER_PAUSE, 8004);
    cr_assert_eq(tern_peer_event(link, TERN_PEER_WAKE, 8005), 0u);
    cr_assert_eq(tern_peer_state(link), TERN_PEER_PAUSED);
    tern_peer_destroy(&link);
}

//  Three endpoints, the first two dead: the link moves on at once and the
//  backoff waits only after a whole round failed.
Test(peer, endpoints_rotate_and_back_off_per_round) {
    tern_peer_timing_t timing = {.handshake_ms = 3000, .dead_ms = 3000};
    tern_peer_t *link = tern_peer_new(&timing, 3, 0);
    cr_assert_eq(tern_peer_endpoint(link), 0u);
    cr_assert_eq(tern_peer_event(link, TERN_PEER_TICK, 0), TERN_PEER_A_CONNECT);
    //  Endpoint 0 never answers: endpoint 1 at once, no backoff.
    cr_assert_eq(tern_peer_event(link, TERN_PEER_TICK, 3000),
                 TERN_PEER_A_CLOSE | TERN_PEER_A_CONNECT);
    cr_assert_eq(tern_peer_state(link), TERN_PEER_HELLO);
    cr_assert_eq(tern_peer_endpoint(link), 1u);
    cr_assert_eq(tern_peer_failures(link), 0u);
    //  Endpoint 1 refuses (another DC answered there): endpoint 2 at once.
    cr_assert_eq(tern_peer_event(link, TERN_PEER_REFUSED, 3010),
                 TERN_PEER_A_CLOSE | TERN_PEER_A_CONNECT);
    cr_assert_eq(tern_peer_endpoint(link), 2u);
    cr_assert_eq(tern_peer_failovers(link), 2u);
    //  Endpoint 2 fails too: the round is over, back off 1 s, from endpoint 0.
    cr_assert_eq(tern_peer_event(link, TERN_PEER_TICK, 6010), TERN_PEER_A_CLOSE);
    cr_assert_eq(tern_peer_state(link), TERN_PEER_IDLE);
    cr_assert_eq(tern_peer_failures(link), 1u);
    cr_assert_eq(tern_peer_endpoint(link), 0u);
    cr_assert_eq(tern_peer_deadline(link), 7010u);
    cr_assert_eq(tern_peer_event(link, TERN_PEER_TICK, 7010), TERN_PEER_A_CONNECT);
    cr_assert_eq(tern_peer_event(link, TERN_PEER_TICK, 10010),
                 TERN_PEER_A_CLOSE | TERN_PEER_A_CONNECT);
    //  Endpoint 1 answers: live, the schedule starts over.
    cr_assert_eq(tern_peer_event(link, TERN_PEER_WELCOME, 10020), TERN_PEER_A_STREAM);
    cr_assert_eq(tern_peer_endpoint(link), 1u);
    cr_assert_eq(tern_peer_failures(link), 0u);
    cr_assert_eq(tern_peer_failovers(link), 4u);
    tern_peer_destroy(&link);
}

//  A live link that dies fails over at once to the next endpoint (a node
//  that moved there); when that one fails too the round is over: 1 s.
Test(peer, lost_live_link_fails_over_at_once) {
    tern_peer_t *link = tern_peer_new(NULL, 2, 0);
    tern_peer_event(link, TERN_PEER_TICK, 0);
    tern_peer_event(link, TERN_PEER_WELCOME, 5);
    cr_assert_eq(tern_peer_endpoint(link), 0u);
    cr_assert_eq(tern_peer_event(link, TERN_PEER_TICK, 3005),
                 TERN_PEER_A_CLOSE | TERN_PEER_A_CONNECT);
    cr_assert_eq(tern_peer_state(link), TERN_PEER_HELLO);
    cr_assert_eq(tern_peer_endpoint(link), 1u);
    cr_assert_eq(tern_peer_failovers(link), 1u);
    cr_assert_eq(tern_peer_event(link, TERN_PEER_TICK, 6005), TERN_PEER_A_CLOSE);
    cr_assert_eq(tern_peer_state(link), TERN_PEER_IDLE);
    cr_assert_eq(tern_peer_deadline(link), 7005u);
    cr_assert_eq(tern_peer_endpoint(link), 0u);
    //  Resume-like success on endpoint 0 later resets the round.
    tern_peer_event(link, TERN_PEER_TICK, 7005);
    tern_peer_event(link, TERN_PEER_WELCOME, 7006);
    cr_assert_eq(tern_peer_failures(link), 0u);
    tern_peer_destroy(&link);
}

//  One endpoint: every failure is a full round (the plain schedule), no
//  failovers; out-of-range counts are clamped.
Test(peer, one_endpoint_never_fails_over) {
    tern_peer_t *link = tern_peer_new(NULL, 0, 0);
    tern_peer_event(link, TERN_PEER_TICK, 0);
    cr_assert_eq(tern_peer_event(link, TERN_PEER_REFUSED, 10), TERN_PEER_A_CLOSE);
    cr_assert_eq(tern_peer_endpoint(link), 0u);
    cr_assert_eq(tern_peer_failovers(link), 0u);
    cr_assert_eq(tern_peer_failures(link), 1u);
    tern_peer_destroy(&link);
    link = tern_peer_new(NULL, 1000, 0);
    for (uint64_t now = 0; now <= 8 * 3000; now += 3000) {
        tern_peer_event(link, TERN_PEER_TICK, now);
    }
    cr_assert_eq(tern_peer_failures(link), 1u); //  8 endpoints = one round
    cr_assert_eq(tern_peer_endpoint(link), 0u);
    tern_peer_destroy(&link);
}

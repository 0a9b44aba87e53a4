/*  test_actor.c - the actors' poll loop (broker/tern_actor.c): handlers of
    readable sockets, the prepare and after hooks, $TERM.
*/
#include "tern_actor.h"
#include <criterion/criterion.h>
#include <stdatomic.h>

typedef struct {
    char endpoint[64];      //  the PULL the actor binds
    _Atomic int received;   //  frames its handler read
    _Atomic int turns;      //  after-hook calls
    _Atomic int extra;      //  calls of the one-turn reader's handler
    bool stop_at_once;      //  the loop's flag
    void *pull;             //  raw PULL
    void *one_turn;         //  a second PULL, added by prepare on the first turn only
    zsock_t *one_turn_sock; //  its owner
} s_actor_t;

static void s_on_pull(void *actor, void *arg) {
    s_actor_t *self = actor;
    (void)arg;
    char buf[16];
    while (zmq_recv(self->pull, buf, sizeof buf, ZMQ_DONTWAIT) >= 0) {
        self->received++; //  drain: one call per turn, many frames
    }
}

static void s_on_extra(void *actor, void *arg) {
    (void)arg;
    s_actor_t *self = actor;
    char buf[16];
    while (zmq_recv(self->one_turn, buf, sizeof buf, ZMQ_DONTWAIT) >= 0) {
        self->extra++;
    }
}

static long s_prepare(tern_loop_t *loop, void *actor) {
    s_actor_t *self = actor;
    if (self->turns == 0 && self->one_turn) {
        tern_loop_reader(loop, self->one_turn, s_on_extra, NULL);
    }
    return 50;
}

static void s_after(void *actor) {
    ((s_actor_t *)actor)->turns++;
}

static void s_actor(zsock_t *pipe, void *arg) {
    s_actor_t *self = arg;
    zsock_t *pull = zsock_new_pull(self->endpoint);
    self->pull = zsock_resolve(pull);
    tern_loop_t loop;
    tern_loop_init(&loop, pipe, self, s_prepare, s_after);
    tern_loop_reader(&loop, self->pull, s_on_pull, (void *)&self->received);
    loop.stop_at_once = self->stop_at_once;
    zsock_signal(pipe, 0);
    tern_loop_run(&loop);
    zsock_destroy(&pull);
}

//  Usage: an actor registers its sockets, hooks, and runs until $TERM.
Test(actor, usage_loop_until_term) {
    s_actor_t state = {0};
    snprintf(state.endpoint, sizeof state.endpoint, "inproc://test-actor-%p", (void *)&state);
    zactor_t *actor = zactor_new(s_actor, &state);
    cr_assert_not_null(actor);
    char endpoint[80];
    snprintf(endpoint, sizeof endpoint, ">%s", state.endpoint);
    zsock_t *push = zsock_new_push(endpoint);
    for (int i = 0; i < 100; i++) {
        zstr_send(push, "x");
    }
    for (int i = 0; i < 200 && state.received < 100; i++) {
        zclock_sleep(10);
    }
    cr_assert_eq(state.received, 100);
    cr_assert_gt(state.turns, 0); //  after runs every turn
    zactor_destroy(&actor);       //  $TERM ends tern_loop_run
    zsock_destroy(&push);
}

//  A reader prepare adds lasts one turn; timeouts alone still run `after`.
Test(actor, prepare_readers_last_one_turn) {
    s_actor_t state = {0};
    snprintf(state.endpoint, sizeof state.endpoint, "inproc://test-actor-%p", (void *)&state);
    state.one_turn_sock = zsock_new_pull("inproc://test-actor-one-turn");
    state.one_turn = zsock_resolve(state.one_turn_sock);
    zsock_t *push = zsock_new_push(">inproc://test-actor-one-turn");
    zstr_send(push, "a"); //  queued before the first turn: seen by it
    zclock_sleep(20);
    zactor_t *actor = zactor_new(s_actor, &state);
    for (int i = 0; i < 100 && state.turns < 3; i++) {
        zclock_sleep(20);
    }
    cr_assert_geq(state.turns, 3);
    int extra = state.extra;
    zstr_send(push, "b"); //  after the first turn: nobody polls it any more
    zclock_sleep(150);
    cr_assert_eq(state.extra, extra);
    cr_assert_leq(extra, 1);
    zactor_destroy(&actor);
    zsock_destroy(&push);
    zsock_destroy(&state.one_turn_sock);
}

Test(actor, stop_at_once_and_a_full_loop) {
    s_actor_t state = {.stop_at_once = true};
    snprintf(state.endpoint, sizeof state.endpoint, "inproc://test-actor-%p", (void *)&state);
    zactor_t *actor = zactor_new(s_actor, &state);
    zactor_destroy(&actor);

    tern_loop_t loop;
    zsock_t *pipe = zsock_new(ZMQ_PAIR);
    tern_loop_init(&loop, pipe, NULL, NULL, NULL);
    for (int i = 1; i < TERN_LOOP_SOCKETS_MAX; i++) {
        cr_assert_eq(tern_loop_reader(&loop, zsock_resolve(pipe), s_on_extra, NULL), 0);
    }
    cr_assert_eq(tern_loop_reader(&loop, zsock_resolve(pipe), s_on_extra, NULL), -1);
    zsock_destroy(&pipe);
}

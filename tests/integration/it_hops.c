/*  it_hops.c - the lone message's hops through a real ternd (issue 16).

    A topic nothing listens on does not wake route per commit (tern_quiet.h:
    the storer leaves its appends out of the NOTICE), and a subscription
    that joins such a topic, exact, by pattern or as a durable group, gets
    the next message at once, also when it joins while a publisher is busy
    on the topic (the storer's and route's fences). Wake-ups are counted
    from /proc (test_threads.h), never timed.
*/
#include "harness.h"
#include "test_threads.h"
#include "tern_id.h"
#include "tern_store.h"

#include <criterion/criterion.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

//  Publishes DATA to TOPIC and waits for its PUBACK; returns its msg_id.
static uint64_t s_publish(tern_client_t *client, const char *topic, const char *data) {
    tern_pub_options_t msg;
    tern_pub_options_init(&msg);
    msg.topic = topic;
    msg.payload = data;
    msg.size = strlen(data);
    tern_pub_result_t res;
    tern_err_t rc = tern_publish(client, &msg, 20000, &res);
    cr_assert_eq(rc, TERN_OK, "publish to %s: %s", topic, tern_errname(rc));
    return res.msg_id;
}

//  Publishes COUNT messages to TOPIC, so that route has seen it without a
//  group and marked it quiet.
static void s_make_quiet(tern_client_t *client, const char *topic, int count) {
    for (int i = 0; i < count; i++) {
        s_publish(client, topic, "before");
    }
}

Test(hops, publishes_nobody_listens_to_do_not_wake_route, .fini = it_teardown, .timeout = 60) {
    it_broker_t *b = it_start_broker("--durability", "none", NULL);
    tern_client_t *client = it_client(b, NULL);
    s_make_quiet(client, "hop.nobody", 20);
    long route0 = test_thread_sleeps(b->pid, "ternd-route");
    long storer0 = test_thread_sleeps(b->pid, "ternd-storer");
    cr_assert_geq(route0, 0);
    s_make_quiet(client, "hop.nobody", 400);
    long route = test_thread_sleeps(b->pid, "ternd-route") - route0;
    long storer = test_thread_sleeps(b->pid, "ternd-storer") - storer0;
    //  About one storer sleep per sync publish; route only its own timer
    //  (once a second). Before the skip it slept once per commit.
    cr_assert_geq(storer, 200, "the storer slept %ld times for 400 publishes", storer);
    cr_assert_lt(route, 100, "route slept %ld times for 400 publishes to a topic nobody reads",
                 route);
    tern_client_destroy(&client);
}

//  Subscribes to PATTERN (GROUP NULL: ephemeral), from new messages, with a
//  pull queue, after TOPIC went quiet; the next publish must be delivered.
static void s_join_quiet(const char *topic, const char *pattern, const char *group) {
    it_broker_t *b = it_start_broker("--durability", "none", NULL);
    tern_client_t *pub = it_client(b, NULL), *con = it_client(b, NULL);
    s_make_quiet(pub, topic, 20);
    tern_sub_options_t opts;
    tern_sub_options_init(&opts);
    opts.group = group;
    opts.start = TERN_FROM_NEW;
    tern_subscription_t *sub = NULL;
    cr_assert_eq(tern_subscribe(con, pattern, &opts, NULL, NULL, &sub), TERN_OK);
    s_publish(pub, topic, "after");
    tern_message_t *msg = NULL;
    tern_err_t rc = tern_subscription_next(sub, 10000, &msg);
    cr_assert_eq(rc, TERN_OK, "the message after the subscribe never came (%s)", tern_errname(rc));
    cr_assert_eq(tern_message_size(msg), 5);
    cr_assert_eq(memcmp(tern_message_data(msg), "after", 5), 0);
    cr_assert_eq(tern_message_seq(msg), 21);
    tern_message_destroy(&msg);
    tern_client_destroy(&con);
    tern_client_destroy(&pub);
}

Test(hops, ephemeral_subscription_to_a_quiet_topic, .fini = it_teardown, .timeout = 60) {
    s_join_quiet("hop.q1", "hop.q1", NULL);
}

Test(hops, pattern_subscription_to_a_quiet_topic, .fini = it_teardown, .timeout = 60) {
    s_join_quiet("hop.q2", "hop.*", NULL);
}

Test(hops, durable_group_on_a_quiet_topic, .fini = it_teardown, .timeout = 60) {
    s_join_quiet("hop.q3", "hop.q3", "g1");
}

typedef struct {
    tern_client_t *client; //  the publisher's
    atomic_int started;    //  publishes begun (message i carries "i")
    atomic_int stop_at;    //  publish up to this many (set by the test)
} s_pub_state_t;

static void *s_publisher(void *arg) {
    s_pub_state_t *state = (s_pub_state_t *)arg;
    char data[32];
    int i;
    while ((i = atomic_load(&state->started)) < atomic_load(&state->stop_at)) {
        atomic_store(&state->started, i + 1);
        snprintf(data, sizeof data, "%d", i + 1);
        s_publish(state->client, "hop.busy", data);
    }
    return NULL;
}

//  The race the fences close: a subscription joins the topic between a
//  commit and the storer's look at the quiet flag. Every message published
//  after tern_subscribe returned is delivered, in five rounds of subscribe,
//  drain, unsubscribe (the topic goes quiet again in between).
Test(hops, subscribing_while_a_publisher_is_busy_misses_nothing, .fini = it_teardown,
     .timeout = 120) {
    it_broker_t *b = it_start_broker("--durability", "none", NULL);
    s_pub_state_t state = {.client = it_client(b, NULL)};
    tern_client_t *con = it_client(b, NULL);
    for (int round = 0; round < 5; round++) {
        //  Publishing until told where to stop, 20 first with nobody
        //  listening (the topic goes quiet), then during the subscribe.
        int before = atomic_load(&state.started);
        atomic_store(&state.stop_at, INT_MAX);
        pthread_t thread;
        cr_assert_eq(pthread_create(&thread, NULL, s_publisher, &state), 0);
        while (atomic_load(&state.started) < before + 20) {
            usleep(1000);
        }
        tern_sub_options_t opts;
        tern_sub_options_init(&opts);
        opts.start = TERN_FROM_NEW;
        opts.credit = 1000;
        tern_subscription_t *sub = NULL;
        cr_assert_eq(tern_subscribe(con, "hop.busy", &opts, NULL, NULL, &sub), TERN_OK);
        int from = atomic_load(&state.started) + 1; //  begun after the subscribe
        atomic_store(&state.stop_at, from + 200);
        pthread_join(thread, NULL);
        int last = atomic_load(&state.started); //  from + 200, unless it ran past first
        bool *seen = calloc((size_t)last + 1, 1);
        int got = 0;
        tern_message_t *msg = NULL;
        while (got < last - from + 1 && tern_subscription_next(sub, 5000, &msg) == TERN_OK) {
            char data[32] = "";
            memcpy(data, tern_message_data(msg),
                   tern_message_size(msg) < 31 ? tern_message_size(msg) : 31);
            int n = atoi(data);
            if (n >= from && n <= last && !seen[n]) {
                seen[n] = true;
                got++;
            }
            tern_message_destroy(&msg);
        }
        for (int n = from; n <= last; n++) {
            cr_assert(seen[n], "round %d: message %d (of %d..%d) never came", round, n, from, last);
        }
        free(seen);
        cr_assert_eq(tern_unsubscribe(&sub), TERN_OK);
    }
    tern_client_destroy(&con);
    tern_client_destroy(&state.client);
}

//  The storer writes id.last_ms only when it moved (most commits of a sync
//  publisher fall in a millisecond an earlier commit already stored): after
//  a kill -9 the stored value still covers the last acknowledged id, so ids
//  stay monotonic across the restart.
Test(hops, id_last_ms_covers_every_acknowledged_id, .fini = it_teardown, .timeout = 60) {
    it_broker_t *b = it_start_broker("--durability", "none", NULL);
    tern_client_t *client = it_client(b, NULL);
    uint64_t last_id = 0;
    for (int i = 0; i < 300; i++) {
        last_id = s_publish(client, "hop.ids", "x");
    }
    tern_client_destroy(&client);
    it_broker_kill(b);
    tern_store_config_t config;
    tern_store_config_defaults(&config);
    config.dir = b->data_dir;
    tern_err_t err = TERN_OK;
    tern_store_t *store = tern_store_new(&config, &err);
    cr_assert(store, "cannot open %s: %s", config.dir, tern_strerror(err));
    tern_store_reader_t *reader = tern_store_reader_new(store);
    cr_assert_eq(tern_store_read_begin(reader), TERN_OK);
    uint64_t stored = 0;
    cr_assert_eq(tern_store_get_u64(reader, "id.last_ms", &stored), TERN_OK);
    tern_store_read_end(reader);
    tern_store_reader_destroy(&reader);
    tern_store_destroy(&store);
    cr_assert_geq(stored, tern_id_unix_ms(last_id),
                  "id.last_ms %llu is before the last id's ms %llu", (unsigned long long)stored,
                  (unsigned long long)tern_id_unix_ms(last_id));
    cr_assert(it_broker_start(b), "restart failed");
    client = it_client(b, NULL);
    uint64_t next = s_publish(client, "hop.ids", "y");
    cr_assert_gt(next, last_id, "id %llu after the restart, %llu before", (unsigned long long)next,
                 (unsigned long long)last_id);
    tern_client_destroy(&client);
}

/*  it_client_kill.c - libtern's DEALER when its broker dies mid-traffic.

    A consumer whose socket still holds a backlog of DELIVERs (two frames
    each) when ternd is SIGKILLed: with ZMQ_IMMEDIATE, libzmq 4.3 ended the
    socket's pipe under a half-read message and aborted the process in the
    next frame's read (`Assertion failed: !_more (src/fq.cpp:112)`, seen
    once in it_checker); the client must survive every kill and the group
    must get every message.

    One client that publishes synchronously from two threads (lone
    publishes: the caller-side send of tern_client_pub.c), pipelines
    bursts of async publishes from a third and receives its own topic,
    while ternd is SIGKILLed and restarted again and again: it must
    survive, keep publishing and complete every publish it accepted.
*/
#include "harness.h"

#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define S_TOPIC   "it.kill"
#define S_KILLS   10    //  SIGKILL + restart cycles of each test
#define S_LOAD_MS 500   //  traffic between two kills
#define S_BACKLOG 12000 //  messages the consumer test stores first
#define S_CREDIT  4000  //  its credit: DELIVERs queued in the client's socket
#define S_GROUP   "kill-g"

//  What the load threads share with the test.
typedef struct {
    tern_client_t *client;  //  the client under test
    atomic_bool stop;       //  the load threads end
    atomic_long sync_ok;    //  tern_publish calls that returned TERN_OK
    atomic_long async_sent; //  tern_publish_async calls accepted
    atomic_long async_done; //  their completions (any outcome)
    atomic_long delivered;  //  DELIVERs seen by the subscription callback
} s_load_t;

static void s_on_publish(const tern_pub_result_t *res, void *arg) {
    (void)res;
    s_load_t *load = arg;
    atomic_fetch_add(&load->async_done, 1);
}

static void s_on_message(tern_message_t *msg, void *arg) {
    s_load_t *load = arg;
    atomic_fetch_add(&load->delivered, 1);
    tern_message_destroy(&msg);
}

//  Lone synchronous publishes, one after the other: each finds the window
//  empty, so the caller sends it itself when the I/O thread is parked.
static void *s_sync_thread(void *arg) {
    s_load_t *load = arg;
    char data[64];
    for (long i = 0; !atomic_load(&load->stop); i++) {
        snprintf(data, sizeof data, "sync-%ld-%p", i, (void *)&i);
        tern_pub_options_t msg;
        tern_pub_options_init(&msg);
        msg.topic = S_TOPIC;
        msg.payload = data;
        msg.size = strlen(data);
        if (tern_publish(load->client, &msg, 1000, NULL) == TERN_OK) {
            atomic_fetch_add(&load->sync_ok, 1);
        }
    }
    return NULL;
}

//  Bursts of pipelined publishes with a pause between them, so that the
//  window fills (the I/O thread sends) and empties (callers send) by turns.
static void *s_async_thread(void *arg) {
    s_load_t *load = arg;
    char data[512];
    memset(data, 'k', sizeof data);
    while (!atomic_load(&load->stop)) {
        for (int i = 0; i < 40 && !atomic_load(&load->stop); i++) {
            tern_pub_options_t msg;
            tern_pub_options_init(&msg);
            msg.topic = S_TOPIC;
            msg.payload = data;
            msg.size = 64 + (size_t)i * 8;
            if (tern_publish_async(load->client, &msg, s_on_publish, load) == TERN_OK) {
                atomic_fetch_add(&load->async_sent, 1);
            }
        }
        it_sleep_ms(3);
    }
    return NULL;
}

Test(client_kill, direct_sends_across_kills, .fini = it_teardown, .timeout = 120) {
    it_broker_t *b = it_start_broker("--heartbeat", "200ms", NULL);
    tern_client_options_t options;
    tern_client_options_init(&options);
    options.name = "it-kill";
    options.window = 64;
    options.backoff_min_ms = 10;
    options.backoff_max_ms = 100;
    options.publish_block_ms = 200;
    s_load_t *load = calloc(1, sizeof *load);
    load->client = it_client(b, &options);
    tern_sub_options_t sub_options;
    tern_sub_options_init(&sub_options);
    tern_subscription_t *sub = NULL;
    cr_assert_eq(tern_subscribe(load->client, S_TOPIC, &sub_options, s_on_message, load, &sub),
                 TERN_OK, "subscribe: %s", tern_last_reason());

    pthread_t threads[3];
    cr_assert_eq(pthread_create(&threads[0], NULL, s_sync_thread, load), 0);
    cr_assert_eq(pthread_create(&threads[1], NULL, s_sync_thread, load), 0);
    cr_assert_eq(pthread_create(&threads[2], NULL, s_async_thread, load), 0);
    for (int kill = 0; kill < S_KILLS; kill++) {
        long before = atomic_load(&load->delivered);
        it_sleep_ms(S_LOAD_MS);
        it_broker_kill(b);
        cr_assert(it_broker_start(b), "restart %d failed", kill + 1);
        if (kill == 0) {
            cr_assert_gt(atomic_load(&load->delivered), before, "no delivery before a kill");
        }
    }
    it_sleep_ms(S_LOAD_MS);
    atomic_store(&load->stop, true);
    for (int i = 0; i < 3; i++) {
        pthread_join(threads[i], NULL);
    }
    fprintf(stderr,
            "it_client_kill: %d kills; %ld sync publishes, %ld async (%ld completed), "
            "%ld deliveries\n",
            S_KILLS, atomic_load(&load->sync_ok), atomic_load(&load->async_sent),
            atomic_load(&load->async_done), atomic_load(&load->delivered));

    //  Every accepted publish completes, and the client still works.
    cr_assert_eq(tern_flush(load->client, 30000), TERN_OK, "flush: %s", tern_last_reason());
    cr_assert_eq(atomic_load(&load->async_done), atomic_load(&load->async_sent));
    tern_pub_options_t msg;
    tern_pub_options_init(&msg);
    msg.topic = S_TOPIC;
    msg.payload = "after";
    msg.size = 5;
    cr_assert_eq(tern_publish(load->client, &msg, 10000, NULL), TERN_OK,
                 "publish after the kills: %s", tern_last_reason());
    cr_assert_gt(atomic_load(&load->sync_ok), S_KILLS, "the sync publishers hardly ran");
    tern_client_destroy(&load->client);
    free(load);
}

//  The consumer test's state, shared with its callback (I/O thread).
typedef struct {
    atomic_long delivered;           //  deliveries, duplicates included
    atomic_long distinct;            //  producer_seqs seen
    atomic_bool seen[S_BACKLOG + 1]; //  per producer_seq
} s_consumer_t;

//  A slow consumer: each delivery takes ~100 us, so a backlog of DELIVERs
//  waits in the client's socket when the broker dies.
static void s_on_backlog(tern_message_t *msg, void *arg) {
    s_consumer_t *c = arg;
    uint64_t pseq = tern_message_producer_seq(msg);
    if (pseq >= 1 && pseq <= S_BACKLOG && !atomic_exchange(&c->seen[pseq], true)) {
        atomic_fetch_add(&c->distinct, 1);
    }
    atomic_fetch_add(&c->delivered, 1);
    tern_message_ack(msg, false);
    tern_message_destroy(&msg);
    nanosleep(&(struct timespec){.tv_nsec = 100000}, NULL);
}

Test(client_kill, broker_killed_mid_multipart, .fini = it_teardown, .timeout = 120) {
    it_broker_t *b = it_start_broker("--heartbeat", "200ms", NULL);
    tern_client_options_t options;
    tern_client_options_init(&options);
    options.name = "it-kill-pub";
    options.producer_id = "KILL-P";
    options.window = 256;
    tern_client_t *producer = it_client(b, &options);
    char data[100];
    memset(data, 'b', sizeof data);
    for (int seq = 1; seq <= S_BACKLOG; seq++) {
        tern_pub_options_t msg;
        tern_pub_options_init(&msg);
        msg.topic = S_TOPIC;
        msg.payload = data;
        msg.size = sizeof data;
        msg.producer_seq = (uint64_t)seq;
        cr_assert_eq(tern_publish_async(producer, &msg, NULL, NULL), TERN_OK, "publish %d: %s", seq,
                     tern_last_reason());
    }
    cr_assert_eq(tern_flush(producer, 60000), TERN_OK, "flush: %s", tern_last_reason());
    tern_client_destroy(&producer);

    options.name = "it-kill-sub";
    options.producer_id = NULL;
    options.backoff_min_ms = 10;
    options.backoff_max_ms = 100;
    tern_client_t *client = it_client(b, &options);
    s_consumer_t *c = calloc(1, sizeof *c);
    tern_sub_options_t sub_options;
    tern_sub_options_init(&sub_options);
    sub_options.group = S_GROUP;
    sub_options.start = TERN_FROM_FIRST;
    sub_options.credit = S_CREDIT;
    tern_subscription_t *sub = NULL;
    cr_assert_eq(tern_subscribe(client, S_TOPIC, &sub_options, s_on_backlog, c, &sub), TERN_OK,
                 "subscribe: %s", tern_last_reason());
    int kills = 0;
    for (; kills < S_KILLS && atomic_load(&c->distinct) < S_BACKLOG; kills++) {
        //  Once the consumer is busy again, the broker has sent it a
        //  credit's worth of DELIVERs: most of them wait in its socket.
        long from = atomic_load(&c->delivered);
        int64_t deadline = it_now_ms() + 20000;
        while (atomic_load(&c->delivered) < from + 200 && it_now_ms() < deadline) {
            it_sleep_ms(2);
        }
        cr_assert_geq(atomic_load(&c->delivered), from + 200, "no deliveries after restart %d",
                      kills);
        it_broker_kill(b);
        cr_assert(it_broker_start(b), "restart %d failed", kills + 1);
    }
    int64_t deadline = it_now_ms() + 60000;
    while (atomic_load(&c->distinct) < S_BACKLOG && it_now_ms() < deadline) {
        it_sleep_ms(20);
    }
    fprintf(stderr,
            "it_client_kill: %d kills with DELIVERs queued; %ld deliveries, %ld of %d "
            "messages\n",
            kills, atomic_load(&c->delivered), atomic_load(&c->distinct), S_BACKLOG);
    cr_assert_eq(atomic_load(&c->distinct), S_BACKLOG, "the group lost messages");
    tern_client_destroy(&client);
    free(c);
}

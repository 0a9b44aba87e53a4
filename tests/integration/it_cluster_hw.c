/*  it_cluster_hw.c - the high watermark: a consumer never reads a message
    the in-sync replicas do not have (docs/checker.md rule (e), "dirty read").

    etcd and three ternd nodes (cluster_harness.h), one partition. A
    consumer subscribes on the leader and reads a first message (the
    subscription works, the ISR is full). Both followers are SIGSTOPped, so
    nothing can replicate, and a message is published (async: its PUBACK
    waits for the ISR too). The consumer must not get it while the followers
    are stopped, and neither may a second subscription made then from the
    first seq (it reads the store from its cursor, not the commit's notice).
    After SIGCONT both get it, and the publish is acknowledged. Last, the
    leader is stopped (SIGTERM) while it holds such a message: a clean exit.
    cluster/ack_timeout and cluster/isr_lag are far longer than the pause,
    so neither a timeout nor a shrunk ISR releases the message early.
*/
#include "cluster_harness.h"

#include <criterion/criterion.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#define S_PAUSE_MS 2000 //  how long "not delivered" is watched

static const char *const s_flags[] = {
    "--lease", "10s", "--ack-timeout", "60s", "--isr-lag", "60s", "--replace-after", "10m", NULL};

static void s_fini(void) {
    it_cluster_teardown();
}

TestSuite(cluster_hw, .fini = s_fini, .timeout = 240);

static atomic_int s_pub_code = -1; //  the async publish's outcome (-1: none yet)

static void s_on_pub(const tern_pub_result_t *result, void *arg) {
    (void)arg;
    atomic_store(&s_pub_code, (int)result->code);
}

static tern_subscription_t *s_subscribe(tern_client_t *client, const char *topic) {
    tern_sub_options_t options;
    tern_sub_options_init(&options);
    options.start = TERN_FROM_FIRST;
    tern_subscription_t *sub = NULL;
    cr_assert_eq(tern_subscribe(client, topic, &options, NULL, NULL, &sub), TERN_OK,
                 "subscribe %s: %s", topic, tern_last_reason());
    return sub;
}

//  The next message of SUB within TIMEOUT_MS: its payload into BUF, or ""
//  if none came.
static void s_next(tern_subscription_t *sub, int timeout_ms, char *buf, size_t cap) {
    buf[0] = '\0';
    tern_message_t *msg = NULL;
    if (tern_subscription_next(sub, timeout_ms, &msg) == TERN_OK) {
        size_t size = tern_message_size(msg);
        size = size < cap - 1 ? size : cap - 1;
        memcpy(buf, tern_message_data(msg), size);
        buf[size] = '\0';
        tern_message_ack(msg, false);
        tern_message_destroy(&msg);
    }
}

Test(cluster_hw, no_delivery_before_the_isr_has_it) {
    it_cluster_t *cl = it_cluster_new(3, 1, 1, s_flags);
    cr_assert(cl, "cannot set up the cluster");
    cr_assert(it_cluster_start(cl, 60000), "the cluster did not start");
    tern_partmap_record_t rec;
    cr_assert(it_cluster_wait_isr_full(cl, 0, 30000, &rec), "partition 0: ISR not full");
    int leader = (int)rec.leader;

    char eps[IT_CLUSTER_NODES_MAX * 64];
    tern_client_options_t options;
    tern_client_options_init(&options);
    options.name = "hw";
    tern_client_t *client =
        tern_client_new(it_cluster_endpoints_from(cl, leader, eps, sizeof eps), &options);
    cr_assert(client, "client: %s", tern_last_reason());
    const char *topic = "hw.t";
    tern_subscription_t *sub = s_subscribe(client, topic);
    tern_pub_options_t msg;
    tern_pub_options_init(&msg);
    msg.topic = topic;
    msg.payload = "first";
    msg.size = 5;
    tern_pub_result_t res;
    cr_assert_eq(tern_publish(client, &msg, 30000, &res), TERN_OK, "first publish: %s",
                 tern_last_reason());
    char got[64];
    s_next(sub, 30000, got, sizeof got);
    cr_assert_str_eq(got, "first", "the first message was not delivered");

    for (int i = 0; i < 3; i++) {
        if (i != leader) {
            it_cluster_pause_node(cl, i);
        }
    }
    msg.payload = "second";
    msg.size = 6;
    cr_assert_eq(tern_publish_async(client, &msg, s_on_pub, NULL), TERN_OK);
    s_next(sub, S_PAUSE_MS, got, sizeof got);
    cr_assert_str_eq(got, "", "delivered while no follower has it: a dirty read");
    //  A subscription made now catches up from seq 1 by reading the store.
    tern_subscription_t *late = s_subscribe(client, topic);
    s_next(late, 30000, got, sizeof got);
    cr_assert_str_eq(got, "first");
    s_next(late, S_PAUSE_MS / 2, got, sizeof got);
    cr_assert_str_eq(got, "", "a catch-up read past the replicated position");
    cr_assert_eq(atomic_load(&s_pub_code), -1, "acknowledged without the followers");

    for (int i = 0; i < 3; i++) {
        if (i != leader) {
            it_cluster_resume_node(cl, i);
        }
    }
    s_next(sub, 30000, got, sizeof got);
    cr_assert_str_eq(got, "second", "not delivered once the followers had it");
    s_next(late, 30000, got, sizeof got);
    cr_assert_str_eq(got, "second", "the late subscription did not get it either");
    cr_assert_eq(tern_flush(client, 30000), TERN_OK);
    cr_assert_eq(atomic_load(&s_pub_code), TERN_OK, "publish outcome %d", atomic_load(&s_pub_code));

    //  A leader stopped (SIGTERM) while it holds a NOTICE frees it: a clean
    //  exit (under ASan: no leak), and so do the followers.
    for (int i = 0; i < 3; i++) {
        if (i != leader) {
            it_cluster_pause_node(cl, i);
        }
    }
    msg.payload = "third";
    msg.size = 5;
    cr_assert_eq(tern_publish_async(client, &msg, NULL, NULL), TERN_OK);
    s_next(sub, S_PAUSE_MS / 2, got, sizeof got);
    cr_assert_str_eq(got, "", "delivered while no follower has it (third)");
    tern_client_destroy(&client);
    int rc = it_cluster_stop_node(cl, leader, 30000);
    cr_assert_eq(rc, 0, "leader %d: exit %d on SIGTERM", leader, rc);
    for (int i = 0; i < 3; i++) {
        if (i != leader) {
            it_cluster_resume_node(cl, i);
            rc = it_cluster_stop_node(cl, i, 30000);
            cr_assert_eq(rc, 0, "node %d: exit %d on SIGTERM", i, rc);
        }
    }
    it_cluster_destroy(&cl);
}

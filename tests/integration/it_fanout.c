/*  it_fanout.c - fan-out to many durable groups through a real ternd.

    Route reads a message once per snapshot and every group delivering it in
    that round shares the copy (tern_route_deliver.c, s_cache_read): each
    group must still get exactly the stored bytes and metadata of each
    message, also when two topics with the same seqs are delivered in the
    same round, with empty, small (kept inside the zmq_msg_t) and large
    payloads. And a consumer that takes nothing for a while among 100
    groups holds back neither the others nor its own later deliveries.
*/
#include "harness.h"

#include <criterion/criterion.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define S_TOPICS     2   //  it.fan.0 and it.fan.1: the same seqs on both
#define S_MSGS       240 //  per topic
#define S_GROUPS     12  //  groups subscribed before the publishes
#define S_CLIENTS    4   //  the groups spread over this many connections
#define S_SLOW_MSGS  1500
#define S_SLOW_GROUP 100 //  groups in the slow-consumer test

static const size_t s_sizes[] = {0, 5, 33, 34, 1024, 3000, 70000};
#define S_NSIZES (sizeof s_sizes / sizeof s_sizes[0])

//  What message INDEX (from 0) of topic TOPIC carries: a payload that
//  differs per topic and per message, a key, a header and a priority.
static size_t s_size(size_t index) {
    return s_sizes[index % S_NSIZES];
}

static uint8_t s_byte(int topic, size_t index, size_t at) {
    return (uint8_t)(index * 31 + at + (size_t)topic * 101);
}

//  What one group received: per topic and seq, the message's identity.
typedef struct {
    atomic_size_t count;                 //  messages received and checked
    atomic_size_t bad;                   //  messages that differed from what was published
    char first_bad[256];                 //  the first difference (set once, by count of bad)
    uint64_t msg_id[S_TOPICS][S_MSGS];   //  by topic and seq - 1
    uint64_t ts_ns[S_TOPICS][S_MSGS];    //  broker receive time
    char trace[S_TOPICS][S_MSGS][64];    //  trace id (the broker generated it)
    uint32_t received[S_TOPICS][S_MSGS]; //  how many times
} s_group_t;

static void s_bad(s_group_t *group, const char *what, const tern_message_t *msg) {
    if (atomic_fetch_add(&group->bad, 1) == 0) {
        snprintf(group->first_bad, sizeof group->first_bad, "%s: topic %s seq %llu", what,
                 tern_message_topic(msg), (unsigned long long)tern_message_seq(msg));
    }
}

//  Checks MSG against what was published under its topic and seq.
static void s_check(s_group_t *group, const tern_message_t *msg) {
    const char *topic = tern_message_topic(msg);
    int t = topic[strlen(topic) - 1] - '0';
    uint64_t seq = tern_message_seq(msg);
    if (t < 0 || t >= S_TOPICS || seq < 1 || seq > S_MSGS) {
        s_bad(group, "unexpected message", msg);
        return;
    }
    size_t index = seq - 1;
    const uint8_t *data = tern_message_data(msg);
    bool same = tern_message_size(msg) == s_size(index);
    for (size_t at = 0; same && at < s_size(index); at++) {
        same = data[at] == s_byte(t, index, at);
    }
    char key[32], value[32];
    snprintf(key, sizeof key, "k%d-%zu", t, index);
    snprintf(value, sizeof value, "v%d-%zu", t, index);
    const char *header = tern_message_header_get(msg, "h");
    if (!same) {
        s_bad(group, "payload differs", msg);
    } else if (strcmp(tern_message_key(msg), key) != 0 || !header || strcmp(header, value) != 0 ||
               tern_message_header_count(msg) != 1 ||
               tern_message_priority(msg) != (int)(index % 10)) {
        s_bad(group, "metadata differs", msg);
    }
    group->msg_id[t][index] = tern_message_id(msg);
    group->ts_ns[t][index] = tern_message_timestamp_ns(msg);
    snprintf(group->trace[t][index], sizeof group->trace[t][index], "%s",
             tern_message_trace_id(msg));
    group->received[t][index]++;
}

static void s_on_msg(tern_message_t *msg, void *arg) {
    s_group_t *group = arg;
    s_check(group, msg);
    tern_message_ack(msg, false);
    tern_message_destroy(&msg);
    atomic_fetch_add(&group->count, 1);
}

static void s_topic_create(it_broker_t *b, const char *topic) {
    it_result_t r;
    it_ctl(&r, b, 10000, "topic", "create", topic, NULL);
    it_assert_ok(&r, "topic create");
    it_result_free(&r);
}

static tern_client_t *s_client(it_broker_t *b, const char *name) {
    tern_client_options_t options;
    tern_client_options_init(&options);
    options.name = name;
    return it_client(b, &options);
}

//  Subscribes group NAME on PATTERN from the first message; FN NULL: pull.
static tern_subscription_t *s_subscribe(tern_client_t *client, const char *pattern,
                                        const char *name, tern_msg_fn *fn, void *arg) {
    tern_sub_options_t options;
    tern_sub_options_init(&options);
    options.group = name;
    options.start = TERN_FROM_FIRST;
    tern_subscription_t *sub = NULL;
    tern_err_t rc = tern_subscribe(client, pattern, &options, fn, arg, &sub);
    cr_assert_eq(rc, TERN_OK, "subscribe %s: %s (%s)", name, tern_errname(rc), tern_last_reason());
    return sub;
}

//  Publishes the S_MSGS messages of every topic, alternating topics so
//  that both have the same seqs, and waits for every PUBACK.
static void s_publish_all(it_broker_t *b) {
    tern_client_t *client = s_client(b, "it-fan-pub");
    uint8_t *payload = malloc(70000);
    cr_assert(payload);
    for (size_t index = 0; index < S_MSGS; index++) {
        for (int t = 0; t < S_TOPICS; t++) {
            char topic[32], key[32], value[32];
            snprintf(topic, sizeof topic, "it.fan.%d", t);
            snprintf(key, sizeof key, "k%d-%zu", t, index);
            snprintf(value, sizeof value, "v%d-%zu", t, index);
            for (size_t at = 0; at < s_size(index); at++) {
                payload[at] = s_byte(t, index, at);
            }
            tern_header_t header = {"h", value};
            tern_pub_options_t msg;
            tern_pub_options_init(&msg);
            msg.topic = topic;
            msg.payload = payload;
            msg.size = s_size(index);
            msg.key = key;
            msg.priority = (int)(index % 10);
            msg.headers = &header;
            msg.header_count = 1;
            cr_assert_eq(tern_publish_async(client, &msg, NULL, NULL), TERN_OK);
        }
    }
    cr_assert_eq(tern_flush(client, 60000), TERN_OK);
    free(payload);
    tern_client_destroy(&client);
}

//  Waits until every group in GROUPS (N) received TARGET messages.
static void s_wait_all(s_group_t **groups, size_t n, size_t target, int timeout_ms) {
    for (int waited = 0; waited < timeout_ms; waited += 20) {
        size_t done = 0;
        for (size_t i = 0; i < n; i++) {
            done += atomic_load(&groups[i]->count) >= target;
        }
        if (done == n) {
            return;
        }
        usleep(20 * 1000);
    }
    for (size_t i = 0; i < n; i++) {
        cr_assert_geq(atomic_load(&groups[i]->count), target, "group %zu got %zu of %zu", i,
                      atomic_load(&groups[i]->count), target);
    }
}

Test(fanout, every_group_gets_the_stored_bytes_and_metadata, .fini = it_teardown, .timeout = 180) {
    it_broker_t *b = it_start_broker(NULL);
    //  Both topics exist before the pattern subscriptions, so every group
    //  joins both at once and sees their messages in the same rounds.
    s_topic_create(b, "it.fan.0");
    s_topic_create(b, "it.fan.1");
    tern_client_t *clients[S_CLIENTS];
    s_group_t *groups[S_GROUPS + 1];
    for (size_t c = 0; c < S_CLIENTS; c++) {
        clients[c] = s_client(b, "it-fan-sub");
    }
    for (size_t g = 0; g < S_GROUPS; g++) {
        groups[g] = calloc(1, sizeof(s_group_t));
        char name[32];
        snprintf(name, sizeof name, "live%zu", g);
        s_subscribe(clients[g % S_CLIENTS], "it.fan.*", name, s_on_msg, groups[g]);
    }
    s_publish_all(b);
    s_wait_all(groups, S_GROUPS, S_TOPICS * S_MSGS, 120000);

    //  A group opened afterwards reads the same messages back in rounds of
    //  its own: the reference.
    groups[S_GROUPS] = calloc(1, sizeof(s_group_t));
    s_subscribe(clients[0], "it.fan.*", "late", s_on_msg, groups[S_GROUPS]);
    s_wait_all(groups + S_GROUPS, 1, S_TOPICS * S_MSGS, 60000);

    const s_group_t *ref = groups[S_GROUPS];
    for (size_t g = 0; g <= S_GROUPS; g++) {
        s_group_t *group = groups[g];
        cr_assert_eq(atomic_load(&group->bad), 0, "group %zu: %s", g, group->first_bad);
        for (int t = 0; t < S_TOPICS; t++) {
            for (size_t i = 0; i < S_MSGS; i++) {
                cr_assert_eq(group->received[t][i], 1, "group %zu topic %d seq %zu: %u times", g, t,
                             i + 1, group->received[t][i]);
                cr_assert_eq(group->msg_id[t][i], ref->msg_id[t][i], "group %zu topic %d seq %zu",
                             g, t, i + 1);
                cr_assert_eq(group->ts_ns[t][i], ref->ts_ns[t][i]);
                cr_assert_str_eq(group->trace[t][i], ref->trace[t][i]);
            }
        }
    }
    for (size_t c = 0; c < S_CLIENTS; c++) {
        tern_client_destroy(&clients[c]);
    }
    for (size_t g = 0; g <= S_GROUPS; g++) {
        free(groups[g]);
    }
}

//  Counts what a group of the slow-consumer test received, by seq.
typedef struct {
    atomic_size_t count;               //  messages received
    atomic_uint received[S_SLOW_MSGS]; //  how many times each seq
} s_tally_t;

static void s_on_tally(tern_message_t *msg, void *arg) {
    s_tally_t *tally = arg;
    uint64_t seq = tern_message_seq(msg);
    if (seq >= 1 && seq <= S_SLOW_MSGS) {
        atomic_fetch_add(&tally->received[seq - 1], 1);
    }
    tern_message_ack(msg, false);
    tern_message_destroy(&msg);
    atomic_fetch_add(&tally->count, 1);
}

Test(fanout, a_slow_consumer_among_100_groups_holds_back_no_one, .fini = it_teardown,
     .timeout = 240) {
    it_broker_t *b = it_start_broker(NULL);
    s_topic_create(b, "it.fan.slow");
    //  99 groups that ack at once, 10 per connection; one that takes nothing
    //  until the others are done (its deliveries wait in its client's queue,
    //  unacked: it holds its credit and its byte share all that time).
    tern_client_t *clients[10];
    s_tally_t *tallies[S_SLOW_GROUP - 1];
    for (size_t c = 0; c < 10; c++) {
        clients[c] = s_client(b, "it-fan-fast");
    }
    for (size_t g = 0; g < S_SLOW_GROUP - 1; g++) {
        tallies[g] = calloc(1, sizeof(s_tally_t));
        char name[32];
        snprintf(name, sizeof name, "fast%zu", g);
        s_subscribe(clients[g % 10], "it.fan.slow", name, s_on_tally, tallies[g]);
    }
    tern_client_t *slow_client = s_client(b, "it-fan-slow");
    tern_subscription_t *slow = s_subscribe(slow_client, "it.fan.slow", "slow", NULL, NULL);

    tern_client_t *pub = s_client(b, "it-fan-pub");
    char payload[1024];
    memset(payload, 'x', sizeof payload);
    for (size_t i = 0; i < S_SLOW_MSGS; i++) {
        tern_pub_options_t msg;
        tern_pub_options_init(&msg);
        msg.topic = "it.fan.slow";
        msg.payload = payload;
        msg.size = sizeof payload;
        cr_assert_eq(tern_publish_async(pub, &msg, NULL, NULL), TERN_OK);
    }
    cr_assert_eq(tern_flush(pub, 60000), TERN_OK);
    tern_client_destroy(&pub);

    //  The 99 get everything while the slow one has taken nothing.
    for (int waited = 0; waited < 150000; waited += 50) {
        size_t done = 0;
        for (size_t g = 0; g < S_SLOW_GROUP - 1; g++) {
            done += atomic_load(&tallies[g]->count) >= S_SLOW_MSGS;
        }
        if (done == S_SLOW_GROUP - 1) {
            break;
        }
        usleep(50 * 1000);
    }
    for (size_t g = 0; g < S_SLOW_GROUP - 1; g++) {
        cr_assert_eq(atomic_load(&tallies[g]->count), S_SLOW_MSGS, "group fast%zu got %zu of %d", g,
                     atomic_load(&tallies[g]->count), S_SLOW_MSGS);
        for (size_t i = 0; i < S_SLOW_MSGS; i++) {
            cr_assert_eq(atomic_load(&tallies[g]->received[i]), 1, "fast%zu seq %zu: %u times", g,
                         i + 1, atomic_load(&tallies[g]->received[i]));
        }
    }
    //  Then the slow one takes everything, in order, each once.
    for (size_t i = 0; i < S_SLOW_MSGS; i++) {
        tern_message_t *msg = NULL;
        tern_err_t rc = tern_subscription_next(slow, 20000, &msg);
        cr_assert_eq(rc, TERN_OK, "slow consumer: message %zu: %s", i + 1, tern_errname(rc));
        cr_assert_eq(tern_message_seq(msg), i + 1);
        cr_assert_eq(tern_message_delivery_count(msg), 1);
        cr_assert_eq(tern_message_size(msg), sizeof payload);
        tern_message_ack(msg, false);
        tern_message_destroy(&msg);
    }
    tern_client_destroy(&slow_client);
    for (size_t c = 0; c < 10; c++) {
        tern_client_destroy(&clients[c]);
    }
    for (size_t g = 0; g < S_SLOW_GROUP - 1; g++) {
        free(tallies[g]);
    }
}

/*  test_broker.c - a real ternd node in-process, driven over TCP by a raw
    DEALER speaking the wire protocol: publish -> durable commit -> PUBACK,
    subscribe/deliver/ack, competing consumers, redelivery, DLQ, priorities,
    dedup, session death, restart, errors.
*/
#include "tern_broker.h"
#include "tern_config.h"
#include "tern_proto.h"
#include "test_dir.h"
#include <criterion/criterion.h>
#include <dirent.h>
#include <czmq.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    zsock_t *sock;      //  DEALER
    void *raw;          //  its libzmq handle
    uint64_t req_id;    //  request counter
    zmq_msg_t hdr;      //  last received header (the frame borrows it)
    zmq_msg_t body;     //  last received payload
    tern_frame_t frame; //  last received frame
} client_t;

static char s_dir[TEST_DIR_MAX];

static tern_broker_t *s_broker(tern_config_t *config, bool fresh) {
    if (fresh) {
        cr_assert_not_null(test_dir_make(s_dir, "test-broker"));
    }
    tern_config_defaults(config);
    snprintf(config->data_dir, sizeof config->data_dir, "%s", s_dir);
    snprintf(config->listen, sizeof config->listen, "tcp://127.0.0.1:*");
    config->map_initial = 8 << 20;
    config->durability = TERN_DURABILITY_NONE;
    return NULL;
}

static tern_broker_t *s_start(const tern_config_t *config) {
    char err[512] = "";
    tern_broker_t *broker = tern_broker_new(config, err, sizeof err);
    cr_assert_not_null(broker, "broker: %s", err);
    return broker;
}

static void s_cleanup_dir(void) {
    cr_assert_eq(test_dir_remove(s_dir), 0);
}

static void s_send(client_t *c, tern_frame_t *f, const void *payload, size_t size) {
    uint8_t buf[TERN_HEADER_MAX];
    size_t len = 0;
    cr_assert_eq(tern_frame_encode(f, buf, sizeof buf, &len), TERN_OK, "encode %s",
                 tern_cmd_name(f->cmd));
    bool has_payload = tern_cmd_has_payload(f->cmd);
    cr_assert_eq(zmq_send(c->raw, buf, len, has_payload ? ZMQ_SNDMORE : 0), (int)len);
    if (has_payload) {
        zmq_send(c->raw, payload, size, 0);
    }
}

//  Receives the next frame that is not a HEARTBEAT; false on timeout.
static bool s_recv(client_t *c, int timeout_ms) {
    while (true) {
        zmq_pollitem_t item = {c->raw, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&item, 1, timeout_ms) <= 0) {
            return false;
        }
        zmq_msg_close(&c->hdr);
        zmq_msg_close(&c->body);
        zmq_msg_init(&c->hdr);
        zmq_msg_init(&c->body);
        zmq_msg_recv(&c->hdr, c->raw, 0);
        bool body = false;
        if (zmq_msg_more(&c->hdr)) {
            zmq_msg_recv(&c->body, c->raw, 0);
            body = true;
        }
        tern_err_t rc = tern_frame_decode(&c->frame, zmq_msg_data(&c->hdr), zmq_msg_size(&c->hdr),
                                          body ? zmq_msg_data(&c->body) : NULL,
                                          body ? zmq_msg_size(&c->body) : 0, NULL);
        cr_assert_eq(rc, TERN_OK, "client decode %d", rc);
        if (c->frame.cmd != TERN_CMD_HEARTBEAT) {
            return true;
        }
    }
}

static void s_expect(client_t *c, tern_cmd_t cmd) {
    cr_assert(s_recv(c, 5000), "timeout waiting for %s", tern_cmd_name(cmd));
    cr_assert_eq(c->frame.cmd, cmd, "expected %s, got %s (code %u %s topic %s seq %lu)",
                 tern_cmd_name(cmd), tern_cmd_name(c->frame.cmd), c->frame.code, c->frame.reason,
                 c->frame.topic, (unsigned long)c->frame.seq);
}

static client_t *s_connect_hb(tern_broker_t *broker, uint32_t heartbeat_ms) {
    client_t *c = calloc(1, sizeof *c);
    c->sock = zsock_new_dealer(tern_broker_endpoint(broker));
    cr_assert_not_null(c->sock);
    c->raw = zsock_resolve(c->sock);
    zmq_msg_init(&c->hdr);
    zmq_msg_init(&c->body);
    tern_frame_t f;
    tern_frame_init(&f, TERN_CMD_HELLO);
    f.req_id = ++c->req_id;
    f.proto_version = TERN_PROTO_VERSION;
    f.heartbeat_ms = heartbeat_ms;
    snprintf(f.name, sizeof f.name, "test");
    s_send(c, &f, NULL, 0);
    s_expect(c, TERN_CMD_WELCOME);
    return c;
}

static client_t *s_connect(tern_broker_t *broker) {
    return s_connect_hb(broker, 15000);
}

static void s_close(client_t **c_p) {
    client_t *c = *c_p;
    zmq_msg_close(&c->hdr);
    zmq_msg_close(&c->body);
    zsock_destroy(&c->sock);
    free(c);
    *c_p = NULL;
}

static void s_bye(client_t *c) {
    tern_frame_t f;
    tern_frame_init(&f, TERN_CMD_BYE);
    s_send(c, &f, NULL, 0);
}

static uint64_t s_publish(client_t *c, const char *topic, const char *data, uint8_t priority,
                          const char *producer, uint64_t producer_seq) {
    tern_frame_t f;
    tern_frame_init(&f, TERN_CMD_PUBLISH);
    f.req_id = ++c->req_id;
    snprintf(f.topic, sizeof f.topic, "%s", topic);
    f.priority = priority;
    f.fields |= TERN_F_PRIORITY;
    if (producer) {
        snprintf(f.producer, sizeof f.producer, "%s", producer);
        f.producer_seq = producer_seq;
        f.fields |= TERN_F_PRODUCER;
    }
    s_send(c, &f, data, strlen(data));
    return f.req_id;
}

//  Waits for the PUBACK entry of REQ_ID.
static tern_puback_t s_puback(client_t *c, uint64_t req_id) {
    while (true) {
        s_expect(c, TERN_CMD_PUBACK);
        for (uint32_t i = 0; i < c->frame.ack_count; i++) {
            tern_puback_t ack;
            cr_assert_eq(tern_frame_puback(&c->frame, i, &ack), TERN_OK);
            if (ack.req_id == req_id) {
                return ack;
            }
        }
    }
}

static uint64_t s_subscribe(client_t *c, const char *pattern, const char *group, uint32_t credit) {
    tern_frame_t f;
    tern_frame_init(&f, TERN_CMD_SUBSCRIBE);
    f.req_id = ++c->req_id;
    snprintf(f.topic, sizeof f.topic, "%s", pattern);
    if (group) {
        snprintf(f.group, sizeof f.group, "%s", group);
        f.fields |= TERN_F_GROUP;
    }
    f.credit = credit;
    s_send(c, &f, NULL, 0);
    s_expect(c, TERN_CMD_OK);
    cr_assert_eq(c->frame.req_id, f.req_id);
    cr_assert_gt(c->frame.sub_id, 0);
    return c->frame.sub_id;
}

static void s_ack(client_t *c, tern_cmd_t cmd, uint64_t sub_id, uint64_t tag) {
    tern_frame_t f;
    tern_frame_init(&f, cmd);
    f.req_id = ++c->req_id;
    f.sub_id = sub_id;
    f.tag = tag;
    s_send(c, &f, NULL, 0);
}

static void s_admin(client_t *c, const char *op, const char *topic, const char *group) {
    tern_frame_t f;
    tern_frame_init(&f, TERN_CMD_ADMIN);
    f.req_id = ++c->req_id;
    snprintf(f.name, sizeof f.name, "%s", op);
    tern_kv_t kv[2];
    size_t n = 0;
    if (topic) {
        kv[n++] = (tern_kv_t){"topic", 5, topic, strlen(topic)};
    }
    if (group) {
        kv[n++] = (tern_kv_t){"group", 5, group, strlen(group)};
    }
    uint8_t meta[1024];
    size_t meta_len = 0;
    if (n) {
        cr_assert_eq(tern_meta_encode(kv, n, meta, sizeof meta, &meta_len), TERN_OK);
        f.meta = meta;
        f.meta_size = meta_len;
        f.meta_count = (uint32_t)n;
        f.fields |= TERN_F_META;
    }
    s_send(c, &f, NULL, 0);
}

static char *s_reply_text(client_t *c) {
    s_expect(c, TERN_CMD_REPLY);
    return strndup((const char *)c->frame.payload, c->frame.payload_size);
}

Test(broker, usage_publish_subscribe_ack) {
    tern_config_t config;
    s_broker(&config, true);
    tern_broker_t *broker = s_start(&config);
    client_t *c = s_connect(broker);

    uint64_t r1 = s_publish(c, "orders.eu", "one", 4, NULL, 0);
    tern_puback_t ack = s_puback(c, r1);
    cr_assert_eq(ack.code, TERN_OK);
    cr_assert_eq(ack.seq, 1);
    cr_assert_gt(ack.msg_id, 0);
    uint64_t r2 = s_publish(c, "orders.eu", "two", 4, NULL, 0);
    cr_assert_eq(s_puback(c, r2).seq, 2);

    uint64_t sub = s_subscribe(c, "orders.*", "billing", 0);
    const char *expect[] = {"one", "two"};
    for (int i = 0; i < 2; i++) {
        s_expect(c, TERN_CMD_DELIVER);
        cr_assert_eq(c->frame.sub_id, sub);
        cr_assert_eq(c->frame.seq, (uint64_t)i + 1);
        cr_assert_eq(c->frame.delivery_count, 1);
        cr_assert_str_eq(c->frame.topic, "orders.eu");
        cr_assert_eq(c->frame.payload_size, strlen(expect[i]));
        cr_assert(memcmp(c->frame.payload, expect[i], strlen(expect[i])) == 0);
        cr_assert(tern_trace_valid(c->frame.trace_id, strlen(c->frame.trace_id)));
        s_ack(c, TERN_CMD_ACK, sub, c->frame.tag);
    }
    //  Live delivery after subscribe.
    s_publish(c, "orders.eu", "three", 4, NULL, 0);
    bool got = false;
    for (int i = 0; i < 3 && !got; i++) {
        cr_assert(s_recv(c, 5000));
        if (c->frame.cmd == TERN_CMD_DELIVER) {
            cr_assert_eq(c->frame.seq, 3);
            s_ack(c, TERN_CMD_ACK, sub, c->frame.tag);
            got = true;
        }
    }
    cr_assert(got);
    zclock_sleep(200);
    s_admin(c, "groups", "orders.eu", NULL);
    char *text = s_reply_text(c);
    cr_assert(strstr(text, "\"group\":\"billing\""), "%s", text);
    cr_assert(strstr(text, "\"pending\":0"), "%s", text);
    free(text);
    s_admin(c, "status", NULL, NULL);
    text = s_reply_text(c);
    cr_assert(strstr(text, "\"connections\":1"), "%s", text);
    free(text);
    s_bye(c);
    s_close(&c);
    tern_broker_destroy(&broker);
    cr_assert_null(broker);
    s_cleanup_dir();
}

//  True if a thread of this process is named NAME (/proc/self/task/*/comm).
static bool s_thread_named(const char *name) {
    DIR *dir = opendir("/proc/self/task");
    cr_assert_not_null(dir);
    bool found = false;
    struct dirent *ent;
    while (!found && (ent = readdir(dir)) != NULL) {
        char path[300], comm[32] = "";
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", ent->d_name);
        FILE *f = fopen(path, "r");
        if (f) {
            found = fgets(comm, sizeof comm, f) && strncmp(comm, name, strlen(name)) == 0 &&
                    comm[strlen(name)] == '\n';
            fclose(f);
        }
    }
    closedir(dir);
    return found;
}

//  Each actor names its thread, so top -H and perf show who spends what.
Test(broker, actor_threads_are_named) {
    tern_config_t config;
    s_broker(&config, true);
    tern_broker_t *broker = s_start(&config);
    cr_assert(s_thread_named("ternd-conn"));
    cr_assert(s_thread_named("ternd-storer"));
    cr_assert(s_thread_named("ternd-route"));
    tern_broker_destroy(&broker);
    cr_assert_not(s_thread_named("ternd-storer"));
    s_cleanup_dir();
}

Test(broker, errors_keep_the_session) {
    tern_config_t config;
    s_broker(&config, true);
    tern_broker_t *broker = s_start(&config);
    client_t *c = calloc(1, sizeof *c);
    c->sock = zsock_new_dealer(tern_broker_endpoint(broker));
    c->raw = zsock_resolve(c->sock);
    zmq_msg_init(&c->hdr);
    zmq_msg_init(&c->body);
    //  Before HELLO.
    s_publish(c, "a", "x", 4, NULL, 0);
    s_expect(c, TERN_CMD_ERROR);
    cr_assert_eq(c->frame.code, TERN_ESTATE);
    s_close(&c);

    c = s_connect(broker);
    zmq_send(c->raw, "garbage", 7, 0);
    s_expect(c, TERN_CMD_ERROR);
    cr_assert_neq(c->frame.code, TERN_OK);
    uint64_t sub = s_subscribe(c, "other", "g", 0);
    s_ack(c, TERN_CMD_ACK, sub, 99);
    s_expect(c, TERN_CMD_ERROR);
    cr_assert_eq(c->frame.code, TERN_ENOTFOUND);
    cr_assert_eq(c->frame.req_id, c->req_id);
    s_ack(c, TERN_CMD_ACK, sub + 7, 1);
    s_expect(c, TERN_CMD_ERROR);
    cr_assert_eq(c->frame.code, TERN_ENOTFOUND);
    //  Still serving.
    uint64_t r = s_publish(c, "a", "ok", 4, NULL, 0);
    cr_assert_eq(s_puback(c, r).code, TERN_OK);
    s_admin(c, "topic.info", "nope", NULL);
    s_expect(c, TERN_CMD_ERROR);
    cr_assert_eq(c->frame.code, TERN_ENOTFOUND);
    s_close(&c);

    //  A second node on the same endpoint fails cleanly.
    tern_config_t busy = config;
    snprintf(busy.listen, sizeof busy.listen, "%s", tern_broker_endpoint(broker));
    char dir2[TEST_DIR_MAX];
    cr_assert_not_null(test_dir_make(dir2, "test-broker2"));
    snprintf(busy.data_dir, sizeof busy.data_dir, "%s", dir2);
    char err[512] = "";
    tern_broker_t *second = tern_broker_new(&busy, err, sizeof err);
    cr_assert_null(second);
    cr_assert(strstr(err, "cannot listen"), "%s", err);
    tern_broker_destroy(&broker);
    cr_assert_eq(test_dir_remove(dir2), 0);
    s_cleanup_dir();
}

Test(broker, competing_consumers_and_session_death) {
    tern_config_t config;
    s_broker(&config, true);
    tern_broker_t *broker = s_start(&config);
    client_t *a = s_connect(broker);
    client_t *b = s_connect(broker);
    uint64_t sa = s_subscribe(a, "jobs", "workers", 0);
    uint64_t sb = s_subscribe(b, "jobs", "workers", 0);
    client_t *p = s_connect(broker);
    uint64_t last = 0;
    for (int i = 0; i < 10; i++) {
        last = s_publish(p, "jobs", "job", 4, NULL, 0);
    }
    s_puback(p, last);
    int got_a = 0, got_b = 0;
    uint64_t held_seq = 0;
    while (got_a + got_b < 10) {
        zmq_pollitem_t items[] = {{a->raw, 0, ZMQ_POLLIN, 0}, {b->raw, 0, ZMQ_POLLIN, 0}};
        cr_assert_gt(zmq_poll(items, 2, 5000), 0);
        if (items[0].revents & ZMQ_POLLIN) {
            s_expect(a, TERN_CMD_DELIVER);
            got_a++;
            if (got_a == 1) {
                held_seq = a->frame.seq; //  a keeps this one unacked
            } else {
                s_ack(a, TERN_CMD_ACK, sa, a->frame.tag);
            }
        }
        if (items[1].revents & ZMQ_POLLIN) {
            s_expect(b, TERN_CMD_DELIVER);
            got_b++;
            s_ack(b, TERN_CMD_ACK, sb, b->frame.tag);
        }
    }
    cr_assert_gt(got_a, 0);
    cr_assert_gt(got_b, 0);
    //  a leaves: its unacked message goes to b at once.
    s_bye(a);
    s_expect(b, TERN_CMD_DELIVER);
    cr_assert_eq(b->frame.seq, held_seq);
    cr_assert_eq(b->frame.delivery_count, 2);
    s_ack(b, TERN_CMD_ACK, sb, b->frame.tag);
    cr_assert_not(s_recv(b, 300));
    s_close(&a);
    s_close(&b);
    s_close(&p);
    tern_broker_destroy(&broker);
    s_cleanup_dir();
}

Test(broker, redelivery_then_dlq_and_replay) {
    tern_config_t config;
    s_broker(&config, true);
    config.ack_wait_ms = 200;
    config.backoff_ms = 50;
    config.max_deliver = 3;
    tern_broker_t *broker = s_start(&config);
    client_t *c = s_connect(broker);
    uint64_t sub = s_subscribe(c, "t", "g", 0);
    uint64_t r = s_publish(c, "t", "m", 4, NULL, 0);
    (void)r;
    uint64_t start = zclock_mono();
    for (uint32_t n = 1; n <= 3; n++) {
        do {
            cr_assert(s_recv(c, 5000));
        } while (c->frame.cmd == TERN_CMD_PUBACK);
        cr_assert_eq(c->frame.cmd, TERN_CMD_DELIVER);
        cr_assert_eq(c->frame.delivery_count, n);
        if (n == 2) {
            s_ack(c, TERN_CMD_NACK, sub, c->frame.tag); //  nack: backoff 100 ms
        }
    }
    //  After ack_wait + backoffs: 200 + 50 + 100 + ... at least 300 ms.
    cr_assert_geq(zclock_mono() - start, 300);
    //  The third delivery times out: max_deliver reached -> DLQ, no more deliveries.
    cr_assert_not(s_recv(c, 700));
    s_admin(c, "dlq.list", "t", "g");
    char *text = s_reply_text(c);
    cr_assert(strstr(text, "\"reason\":\"max_deliver\""), "%s", text);
    cr_assert(strstr(text, "\"seq\":1"), "%s", text);
    free(text);
    s_admin(c, "dlq.replay", "t", "g");
    text = s_reply_text(c);
    cr_assert(strstr(text, "\"replayed\":1"), "%s", text);
    free(text);
    s_expect(c, TERN_CMD_DELIVER);
    cr_assert_eq(c->frame.seq, 1);
    s_ack(c, TERN_CMD_TERM, sub, c->frame.tag);
    zclock_sleep(100);
    s_admin(c, "dlq.list", "t", "g");
    text = s_reply_text(c);
    cr_assert(strstr(text, "\"reason\":\"term\""), "%s", text);
    free(text);
    s_close(&c);
    tern_broker_destroy(&broker);
    s_cleanup_dir();
}

Test(broker, priority_dedup_and_restart) {
    tern_config_t config;
    s_broker(&config, true);
    config.durability = TERN_DURABILITY_BATCH;
    tern_broker_t *broker = s_start(&config);
    client_t *c = s_connect(broker);
    s_publish(c, "p", "low1", 1, NULL, 0);
    s_publish(c, "p", "high", 9, NULL, 0);
    uint64_t r = s_publish(c, "p", "low2", 1, "prod", 7);
    tern_puback_t first = s_puback(c, r);
    cr_assert_not(first.duplicate);
    r = s_publish(c, "p", "low2-again", 1, "prod", 7);
    tern_puback_t dup = s_puback(c, r);
    cr_assert(dup.duplicate);
    cr_assert_eq(dup.msg_id, first.msg_id);
    cr_assert_eq(dup.seq, first.seq);
    s_close(&c);
    tern_broker_destroy(&broker);

    //  Restart on the same data: everything is still there, high first.
    s_broker(&config, false);
    config.durability = TERN_DURABILITY_BATCH;
    broker = s_start(&config);
    c = s_connect(broker);
    uint64_t sub = s_subscribe(c, "p", "g", 0);
    const char *expect[] = {"high", "low1", "low2"};
    for (int i = 0; i < 3; i++) {
        s_expect(c, TERN_CMD_DELIVER);
        cr_assert_eq(c->frame.payload_size, strlen(expect[i]), "message %d", i);
        cr_assert(memcmp(c->frame.payload, expect[i], strlen(expect[i])) == 0);
        s_ack(c, TERN_CMD_ACK, sub, c->frame.tag);
    }
    r = s_publish(c, "p", "later", 4, NULL, 0);
    tern_puback_t later = s_puback(c, r);
    cr_assert_gt(later.msg_id, first.msg_id);
    cr_assert_eq(later.seq, 4);
    s_close(&c);
    tern_broker_destroy(&broker);
    s_cleanup_dir();
}

Test(broker, ephemeral_and_credit) {
    tern_config_t config;
    s_broker(&config, true);
    tern_broker_t *broker = s_start(&config);
    client_t *c = s_connect(broker);
    uint64_t last = 0;
    for (int i = 0; i < 5; i++) {
        last = s_publish(c, "e.x", "m", 4, NULL, 0);
    }
    s_puback(c, last);
    uint64_t sub = s_subscribe(c, "e.>", NULL, 2); //  window 2
    s_expect(c, TERN_CMD_DELIVER);
    uint64_t t1 = c->frame.tag;
    s_expect(c, TERN_CMD_DELIVER);
    uint64_t t2 = c->frame.tag;
    cr_assert_not(s_recv(c, 300)); //  window full
    tern_frame_t f;
    tern_frame_init(&f, TERN_CMD_ACK);
    f.sub_id = sub;
    f.tag = t2;
    f.cumulative = true;
    f.fields |= TERN_F_CUMULATIVE;
    s_send(c, &f, NULL, 0);
    (void)t1;
    s_expect(c, TERN_CMD_DELIVER);
    cr_assert_eq(c->frame.seq, 3);
    s_expect(c, TERN_CMD_DELIVER);
    cr_assert_eq(c->frame.seq, 4);
    s_close(&c);
    tern_broker_destroy(&broker);
    s_cleanup_dir();
}

Test(broker, heartbeat_timeout_returns_inflight) {
    tern_config_t config;
    s_broker(&config, true);
    config.heartbeat_ms = 100;
    config.heartbeat_timeout_ms = 400;
    tern_broker_t *broker = s_start(&config);
    client_t *a = s_connect_hb(broker, 100);
    client_t *b = s_connect_hb(broker, 1000); //  b may stay quiet for 3 s
    s_subscribe(a, "hb", "g", 1);
    uint64_t r = s_publish(b, "hb", "m", 4, NULL, 0);
    s_puback(b, r);
    s_expect(a, TERN_CMD_DELIVER); //  a holds it and then goes silent
    uint64_t sb = s_subscribe(b, "hb", "g", 0);
    //  b keeps its session alive while waiting; a's times out.
    bool got = false;
    for (int i = 0; i < 20 && !got; i++) {
        tern_frame_t f;
        tern_frame_init(&f, TERN_CMD_HEARTBEAT);
        s_send(b, &f, NULL, 0);
        if (s_recv(b, 100) && b->frame.cmd == TERN_CMD_DELIVER) {
            got = true;
        }
    }
    cr_assert(got, "the in-flight message did not move to b");
    cr_assert_eq(b->frame.delivery_count, 2);
    s_ack(b, TERN_CMD_ACK, sb, b->frame.tag);
    //  a's session is gone: it must say HELLO again.
    s_publish(a, "hb", "late", 4, NULL, 0);
    bool estate = false;
    for (int i = 0; i < 5 && !estate; i++) {
        cr_assert(s_recv(a, 2000));
        estate = a->frame.cmd == TERN_CMD_ERROR && a->frame.code == TERN_ESTATE;
    }
    cr_assert(estate);
    s_close(&a);
    s_close(&b);
    tern_broker_destroy(&broker);
    s_cleanup_dir();
}

Test(broker, ttl_and_payload_limit) {
    tern_config_t config;
    s_broker(&config, true);
    config.max_payload = 1024;
    tern_broker_t *broker = s_start(&config);
    client_t *c = s_connect(broker);
    tern_frame_t f;
    tern_frame_init(&f, TERN_CMD_PUBLISH);
    f.req_id = ++c->req_id;
    snprintf(f.topic, sizeof f.topic, "ttl.t");
    f.ttl_ms = 100;
    f.fields |= TERN_F_TTL;
    s_send(c, &f, "short-lived", 11);
    s_puback(c, f.req_id);
    //  Over max_payload: ERROR naming the request, the session goes on.
    char big[2000];
    memset(big, 'x', sizeof big);
    big[sizeof big - 1] = 0;
    uint64_t r = s_publish(c, "ttl.t", big, 4, NULL, 0);
    s_expect(c, TERN_CMD_ERROR);
    cr_assert_eq(c->frame.code, TERN_ETOOBIG);
    cr_assert_eq(c->frame.req_id, r);
    zclock_sleep(300);
    r = s_publish(c, "ttl.t", "kept", 4, NULL, 0);
    cr_assert_eq(s_puback(c, r).seq, 2);
    uint64_t sub = s_subscribe(c, "ttl.t", NULL, 0);
    s_expect(c, TERN_CMD_DELIVER);
    cr_assert_eq(c->frame.seq, 2, "an expired message was delivered");
    s_ack(c, TERN_CMD_ACK, sub, c->frame.tag);
    cr_assert_not(s_recv(c, 300));
    //  Admin topic writes go through the storer.
    s_admin(c, "topic.purge", "ttl.t", NULL);
    char *text = s_reply_text(c);
    cr_assert(strstr(text, "\"purged\":"), "%s", text);
    free(text);
    s_admin(c, "topic.delete", "ttl.t", NULL);
    text = s_reply_text(c);
    cr_assert(strstr(text, "\"deleted\":true"), "%s", text);
    free(text);
    s_admin(c, "topic.delete", "ttl.t", NULL);
    s_expect(c, TERN_CMD_ERROR);
    cr_assert_eq(c->frame.code, TERN_ENOTFOUND);
    s_close(&c);
    tern_broker_destroy(&broker);
    s_cleanup_dir();
}

Test(broker, disconnect_without_bye_is_noticed_before_the_timeout) {
    tern_config_t config;
    s_broker(&config, true);
    config.heartbeat_ms = 100;
    config.heartbeat_timeout_ms = 30000;
    tern_broker_t *broker = s_start(&config);
    client_t *a = s_connect(broker);
    client_t *b = s_connect(broker);
    s_subscribe(a, "dc", "g", 1);
    uint64_t r = s_publish(b, "dc", "m", 4, NULL, 0);
    s_puback(b, r);
    s_expect(a, TERN_CMD_DELIVER);
    uint64_t sb = s_subscribe(b, "dc", "g", 0);
    zsock_set_linger(a->sock, 0);
    s_close(&a); //  TCP closes, no BYE
    int64_t start = zclock_mono();
    s_expect(b, TERN_CMD_DELIVER);
    cr_assert_lt(zclock_mono() - start, 3000);
    cr_assert_eq(b->frame.delivery_count, 2);
    s_ack(b, TERN_CMD_ACK, sb, b->frame.tag);
    s_close(&b);
    tern_broker_destroy(&broker);
    s_cleanup_dir();
}

Test(broker, a_client_announcing_a_long_heartbeat_is_not_timed_out_early) {
    tern_config_t config;
    s_broker(&config, true);
    config.heartbeat_ms = 100;
    config.heartbeat_timeout_ms = 300;
    tern_broker_t *broker = s_start(&config);
    client_t *c = s_connect_hb(broker, 1000); //  dead only after 3 s of silence
    zclock_sleep(1000);
    uint64_t r = s_publish(c, "quiet", "m", 4, NULL, 0);
    cr_assert_eq(s_puback(c, r).code, TERN_OK);
    s_close(&c);
    tern_broker_destroy(&broker);
    s_cleanup_dir();
}

/*  test_repl.c - the repl actor in process: two nodes (tern_broker_t) on
    loopback. Covers what the 3-DC integration suite cannot in its time: a
    peer gone longer than the outbox retention loses what was dropped, and
    that loss is counted per peer (and the records published afterwards
    still arrive). */
#include "tern_broker.h"
#include "tern_proto.h"
#include "test_port.h"
#include "test_dir.h"
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zmq.h>

static void s_config(tern_config_t *config, const char *dc, uint32_t node, const char *dir,
                     int repl_port, const char *peer, int peer_port) {
    tern_config_defaults(config);
    snprintf(config->dc, sizeof config->dc, "%s", dc);
    config->node_id = node;
    snprintf(config->data_dir, sizeof config->data_dir, "%s", dir);
    snprintf(config->listen, sizeof config->listen, "tcp://127.0.0.1:%d", test_port());
    snprintf(config->metrics, sizeof config->metrics, "off");
    snprintf(config->repl_listen, sizeof config->repl_listen, "tcp://127.0.0.1:%d", repl_port);
    config->outbox_retention_ms = 300; //  below the flag's minimum: in-process only
    config->sweep_interval_ms = 100;
    config->durability = TERN_DURABILITY_NONE;
    config->peer_count = 1;
    snprintf(config->peers[0].name, sizeof config->peers[0].name, "%s", peer);
    snprintf(config->peers[0].endpoint, sizeof config->peers[0].endpoint, "tcp://127.0.0.1:%d",
             peer_port);
}

static void s_send(void *sock, const tern_frame_t *frame) {
    uint8_t buf[TERN_HEADER_MAX];
    size_t len = 0;
    cr_assert_eq(tern_frame_encode(frame, buf, sizeof buf, &len), TERN_OK);
    bool payload = tern_cmd_has_payload(frame->cmd);
    cr_assert_geq(zmq_send(sock, buf, len, payload ? ZMQ_SNDMORE : 0), 0);
    if (payload) {
        cr_assert_geq(zmq_send(sock, frame->payload, frame->payload_size, 0), 0);
    }
}

static tern_cmd_t s_recv_cmd(void *sock) {
    uint8_t buf[TERN_HEADER_MAX];
    int n = zmq_recv(sock, buf, sizeof buf, 0);
    cr_assert_gt(n, 0, "no reply from the broker");
    int more = 0;
    size_t size = sizeof more;
    zmq_getsockopt(sock, ZMQ_RCVMORE, &more, &size);
    while (more) {
        uint8_t skip[16];
        zmq_recv(sock, skip, sizeof skip, 0);
        zmq_getsockopt(sock, ZMQ_RCVMORE, &more, &size);
    }
    tern_frame_t frame;
    cr_assert_eq(tern_frame_decode(&frame, buf, (size_t)n, NULL, 0, NULL), TERN_OK);
    return frame.cmd;
}

//  Publishes COUNT messages to the client endpoint and waits for the acks.
static void s_publish(void *ctx, const char *endpoint, int count) {
    void *sock = zmq_socket(ctx, ZMQ_DEALER);
    int timeout = 5000, linger = 0;
    zmq_setsockopt(sock, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
    zmq_setsockopt(sock, ZMQ_LINGER, &linger, sizeof linger);
    cr_assert_eq(zmq_connect(sock, endpoint), 0);
    tern_frame_t frame;
    tern_frame_init(&frame, TERN_CMD_HELLO);
    frame.proto_version = TERN_PROTO_VERSION;
    frame.heartbeat_ms = 15000;
    s_send(sock, &frame);
    cr_assert_eq(s_recv_cmd(sock), TERN_CMD_WELCOME);
    for (int i = 0; i < count; i++) {
        tern_frame_init(&frame, TERN_CMD_PUBLISH);
        frame.req_id = (uint64_t)i + 1;
        snprintf(frame.topic, sizeof frame.topic, "lost.t");
        frame.payload = (const uint8_t *)"x";
        frame.payload_size = 1;
        s_send(sock, &frame);
    }
    //  PUBACKs are batched: count entries until all came.
    int acked = 0;
    while (acked < count) {
        uint8_t buf[TERN_HEADER_MAX];
        int n = zmq_recv(sock, buf, sizeof buf, 0);
        cr_assert_gt(n, 0, "missing PUBACKs (%d of %d)", acked, count);
        tern_frame_t ack;
        cr_assert_eq(tern_frame_decode(&ack, buf, (size_t)n, NULL, 0, NULL), TERN_OK);
        if (ack.cmd == TERN_CMD_PUBACK) {
            acked += (int)ack.ack_count;
        }
    }
    zmq_close(sock);
}

static uint64_t s_wait(_Atomic uint64_t *value, uint64_t expected, int timeout_ms) {
    for (int waited = 0; waited < timeout_ms; waited += 50) {
        if (atomic_load(value) >= expected) {
            break;
        }
        usleep(50 * 1000);
    }
    return atomic_load(value);
}

Test(repl, peer_gone_past_retention_loses_counted_records, .timeout = 60) {
    char dir_a[TEST_DIR_MAX], dir_b[TEST_DIR_MAX];
    cr_assert_not_null(test_dir_make(dir_a, "repl-a"));
    cr_assert_not_null(test_dir_make(dir_b, "repl-b"));
    int port_a = test_port(), port_b = test_port();
    tern_config_t config_a, config_b;
    s_config(&config_a, "dca", 1, dir_a, port_a, "dcb", port_b);
    s_config(&config_b, "dcb", 2, dir_b, port_b, "dca", port_a);
    char errbuf[512] = "";
    tern_broker_t *a = tern_broker_new(&config_a, errbuf, sizeof errbuf);
    cr_assert_not_null(a, "%s", errbuf);
    void *ctx = zmq_ctx_new();
    //  dcb is down: these 5 wait in dca's outbox, then retention drops them.
    s_publish(ctx, tern_broker_endpoint(a), 5);
    usleep(1000 * 1000);
    tern_repl_stats_t *stats_a = tern_broker_repl_stats(a);
    cr_assert_not_null(stats_a);
    tern_broker_t *b = tern_broker_new(&config_b, errbuf, sizeof errbuf);
    cr_assert_not_null(b, "%s", errbuf);
    cr_assert_eq(s_wait(&stats_a->peers[0].lost, 5, 10000), 5u,
                 "the loss of 5 records is not counted for dcb");
    //  What is published now still arrives, exactly once.
    s_publish(ctx, tern_broker_endpoint(a), 3);
    tern_repl_stats_t *stats_b = tern_broker_repl_stats(b);
    cr_assert_eq(s_wait(&stats_b->peers[0].received, 3, 10000), 3u);
    usleep(1200 * 1000);
    cr_assert_eq(atomic_load(&stats_b->peers[0].received), 3u);
    cr_assert_eq(atomic_load(&stats_a->peers[0].lost), 5u);
    cr_assert_eq(atomic_load(&stats_a->peers[0].state), 2u); //  live
    tern_broker_destroy(&b);
    tern_broker_destroy(&a);
    zmq_ctx_term(ctx);
    cr_assert_eq(test_dir_remove(dir_a), 0);
    cr_assert_eq(test_dir_remove(dir_b), 0);
}

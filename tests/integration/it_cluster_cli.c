/*  it_cluster_cli.c - ternctl and conn against a clustered DC: `ternctl
    cluster` and `cluster partitions` given one node, TERN_ENOTLEADER for a
    publish sent to a node that does not lead the topic's partition,
    `ternctl topics` and topic admin (create, info, purge, delete, audit,
    groups) given a node that does not lead the topic, and a single node
    saying "not a cluster".

    Three ternd on a real etcd (etcd_harness.h), each with --etcd,
    --cluster-listen and --node-id; every process is stopped by its PID
    (it_teardown, it_etcd_destroy).
*/
#include "cluster_harness.h"
#include "etcd_harness.h"
#include "harness.h"
#include "tern_partition.h"
#include "test_port.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_PARTITIONS 8
#define S_NODES      3
#define S_WAIT_MS    30000

TestSuite(cluster_cli, .init = it_suite_etcd_start, .fini = it_suite_etcd_stop, .timeout = 240);

//  Node ID of cluster NAME, started (cluster_harness.h).
static it_broker_t *s_node(const char *name, uint32_t id) {
    return it_suite_node(name, id, S_PARTITIONS, NULL);
}

//  Lines of OUT that contain NEEDLE.
static int s_count(const char *out, const char *needle) {
    int n = 0;
    for (const char *p = out; (p = strstr(p, needle)); p += strlen(needle)) {
        n++;
    }
    return n;
}

//  Waits until `ternctl cluster partitions --json` on B has every partition
//  with a leader and 3 replicas; its output into R (caller frees).
static void s_wait_placed(it_broker_t *b, it_result_t *r) {
    int64_t deadline = it_now_ms() + S_WAIT_MS;
    while (true) {
        int rc = it_ctl(r, b, 10000, "cluster", "partitions", NULL);
        char **lines = NULL;
        char *copy = strdup(r->out); //  it_split_lines cuts it
        size_t n = rc == 0 ? it_split_lines(copy, &lines) : 0;
        size_t placed = 0;
        for (size_t i = 0; i < n; i++) {
            const char *v = NULL;
            size_t len = 0;
            int64_t leader;
            if (it_json_int(lines[i], "leader", &leader) &&
                it_json_raw(lines[i], "replicas", &v, &len) && s_count(v, ",") >= 2) {
                placed++;
            }
        }
        free(lines);
        free(copy);
        if (placed == S_PARTITIONS) {
            return;
        }
        cr_assert(it_now_ms() < deadline, "partitions not placed: rc %d\n%s\n%s", rc, r->out,
                  r->err);
        it_result_free(r);
        it_sleep_ms(200);
    }
}

//  The leader of TOPIC's partition in `cluster partitions --json` output OUT.
static int64_t s_leader(const char *out, const char *topic) {
    uint32_t p = tern_partition_of(topic, strlen(topic), S_PARTITIONS);
    char *copy = strdup(out);
    char **lines = NULL;
    size_t n = it_split_lines(copy, &lines);
    int64_t leader = -1;
    for (size_t i = 0; i < n; i++) {
        if (it_json_field(lines[i], "partition") == (int64_t)p) {
            it_json_int(lines[i], "leader", &leader);
        }
    }
    free(lines);
    free(copy);
    return leader;
}

//  A raw session on B (no libtern: it would follow the leaders), after
//  HELLO.
static it_raw_t *s_raw(it_broker_t *b) {
    it_raw_t *raw = it_raw_new(b->endpoint);
    cr_assert(raw);
    cr_assert(it_raw_hello(raw, "it-cluster-cli"), "no WELCOME");
    return raw;
}

Test(cluster_cli, view_enotleader_and_topics_from_any_node) {
    it_broker_t *nodes[S_NODES];
    for (uint32_t i = 0; i < S_NODES; i++) {
        nodes[i] = s_node("clicli", i);
    }
    it_result_t r;
    s_wait_placed(nodes[1], &r);
    char *partitions = strdup(r.out);
    it_result_free(&r);

    //  ternctl cluster: 3 up nodes, exactly one controller.
    int64_t deadline = it_now_ms() + S_WAIT_MS;
    while (true) {
        int rc = it_ctl(&r, nodes[2], 10000, "cluster", NULL);
        if (rc == 0 && s_count(r.out, "\"state\":\"up\"") == S_NODES &&
            s_count(r.out, "\"controller\":true") == 1) {
            break;
        }
        cr_assert(it_now_ms() < deadline, "ternctl cluster: rc %d\n%s\n%s", rc, r.out, r.err);
        it_result_free(&r);
        it_sleep_ms(200);
    }
    cr_assert_eq(s_count(r.out, "\"node_id\""), S_NODES, "%s", r.out);
    cr_assert(strstr(r.out, nodes[0]->endpoint), "%s", r.out);
    it_result_free(&r);
    //  As a table for people: a heading and one row per node.
    cr_assert_eq(it_ctl_text(&r, nodes[0], 10000, NULL, "cluster", NULL), 0, "%s", r.err);
    cr_assert(strstr(r.out, "NODE_ID") && strstr(r.out, "LEADER_OF"), "%s", r.out);
    cr_assert_eq(s_count(r.out, " up "), S_NODES, "%s", r.out);
    it_result_free(&r);

    //  A topic, its leader, and a node that does not lead it.
    const char *topic = "cli.t1";
    int64_t leader = s_leader(partitions, topic);
    cr_assert(leader >= 0 && leader < S_NODES, "no leader for %s:\n%s", topic, partitions);
    it_broker_t *other = nodes[(leader + 1) % S_NODES];

    //  PUBLISH, and an exact SUBSCRIBE, to the non-leader: TERN_ENOTLEADER
    //  naming the leader's endpoint; nothing stored.
    it_raw_t *raw = s_raw(other);
    static const tern_cmd_t cmds[] = {TERN_CMD_PUBLISH, TERN_CMD_SUBSCRIBE};
    for (size_t i = 0; i < 2; i++) {
        tern_frame_t f, reply;
        tern_frame_init(&f, cmds[i]);
        f.req_id = 7 + i;
        snprintf(f.topic, sizeof f.topic, "%s", topic);
        f.fields |= TERN_F_TOPIC | (cmds[i] == TERN_CMD_PUBLISH ? TERN_F_PAYLOAD : 0);
        if (cmds[i] == TERN_CMD_PUBLISH) {
            f.payload = (const uint8_t *)"x";
            f.payload_size = 1;
        }
        f.credit = 10; //  SUBSCRIBE's window
        tern_err_t rc = it_raw_send_frame(raw, &f);
        cr_assert_eq(rc, TERN_OK, "%s: %s", tern_cmd_name(cmds[i]), tern_strerror(rc));
        cr_assert_eq(it_raw_recv_reply(raw, &reply, 5000), TERN_OK);
        cr_assert_eq(reply.code, TERN_ENOTLEADER, "%s: %s code %u: %s", tern_cmd_name(cmds[i]),
                     tern_cmd_name(reply.cmd), reply.code, reply.reason);
        cr_assert(strstr(reply.reason, nodes[leader]->endpoint), "reason: %s", reply.reason);
    }
    it_raw_destroy(&raw);

    //  Published at its leader, listed by `ternctl topics` given another node.
    it_pub(nodes[leader], topic, "hello {n}", 3);
    cr_assert_eq(it_ctl(&r, other, 10000, "topics", NULL), 0, "%s", r.err);
    cr_assert_eq(s_count(r.out, "\"topic\":\"cli.t1\""), 1, "%s", r.out);
    cr_assert(strstr(r.out, "\"last_seq\":3"), "%s", r.out);
    it_result_free(&r);
    //  groups TOPIC given another node: answered by the leader.
    cr_assert_eq(it_ctl(&r, other, 10000, "groups", topic, NULL), 0, "%s", r.err);
    it_result_free(&r);
    //  Topic admin given a node that does not lead the topic: libtern runs
    //  it at the leader (without that, the node answers TERN_ENOTLEADER).
    int64_t other_id = (leader + 1) % S_NODES;
    char made[32];
    for (int t = 0;; t++) {
        snprintf(made, sizeof made, "cli.made.%d", t);
        if (s_leader(partitions, made) != other_id) {
            break;
        }
    }
    cr_assert_eq(it_ctl(&r, other, 10000, "topic", "create", made, NULL), 0, "%s", r.err);
    it_result_free(&r);
    it_pub(other, made, "m{n}", 2);
    cr_assert_eq(it_ctl(&r, other, 10000, "topic", "info", made, NULL), 0, "%s", r.err);
    cr_assert_eq(it_json_field(r.out, "last_seq"), 2, "%s", r.out);
    it_result_free(&r);
    cr_assert_eq(it_ctl(&r, other, 10000, "audit", topic, NULL), 0, "%s", r.err);
    it_result_free(&r);
    cr_assert_eq(it_ctl(&r, other, 10000, "topic", "purge", made, "--force", NULL), 0, "%s", r.err);
    it_result_free(&r);
    cr_assert_eq(it_ctl(&r, other, 10000, "topic", "delete", made, "--force", NULL), 0, "%s",
                 r.err);
    it_result_free(&r);
    cr_assert_eq(it_ctl(&r, other, 10000, "topic", "info", made, NULL), 1, "%s", r.out);
    cr_assert(strstr(r.err, "TERN_ENOTFOUND"), "%s", r.err);
    it_result_free(&r);
    //  bench given one node: publishes follow the leaders, and the topics it
    //  made are deleted on their leaders (a follower refuses topic.delete).
    cr_assert_eq(it_ctl(&r, other, 60000, "bench", "pub", "--msgs", "300", "--topics", "6", NULL),
                 0, "%s\n%s", r.out, r.err);
    cr_assert(!strstr(r.err, "cannot delete"), "%s", r.err);
    it_result_free(&r);

    //  cluster verify: every partition compared, the copies identical (up
    //  to what all replicas hold).
    cr_assert_eq(it_ctl(&r, other, 30000, "cluster", "verify", NULL), 0, "%s\n%s", r.out, r.err);
    cr_assert_eq(s_count(r.out, "\"identical\":true"), S_PARTITIONS, "%s", r.out);
    it_result_free(&r);
    //  cluster.verify with a topic: the leader's digest of it.
    char p[16];
    snprintf(p, sizeof p, "%u", (unsigned)tern_partition_of(topic, strlen(topic), S_PARTITIONS));
    tern_client_t *client = tern_client_new(nodes[leader]->endpoint, NULL);
    cr_assert(client);
    tern_header_t kv[3] = {{"partition", p}, {"topic", topic}, {"upto", "2"}};
    char *json = NULL;
    cr_assert_eq(tern_admin(client, "cluster.verify", kv, 3, &json, 5000), TERN_OK, "%s",
                 tern_last_reason());
    cr_assert_eq(it_json_field(json, "upto"), 2, "%s", json);
    cr_assert_eq(it_json_field(json, "last_seq"), 3, "%s", json);
    char digest[32];
    cr_assert(it_json_str(json, "digest", digest, sizeof digest) && strlen(digest) == 16, "%s",
              json);
    free(json);
    //  at (unix ms): dedup entries are compared for the messages stored
    //  since half a dedup window (2 min by default) before it; not a
    //  number: refused.
    tern_header_t at_kv[4] = {{"partition", p}, {"topic", topic}, {"upto", "2"}, {"at", "900000"}};
    cr_assert_eq(tern_admin(client, "cluster.verify", at_kv, 4, &json, 5000), TERN_OK, "%s",
                 tern_last_reason());
    cr_assert_eq(it_json_field(json, "dedup_since"), 900000 - 60000, "%s", json);
    free(json);
    at_kv[3].value = "soon";
    cr_assert_eq(tern_admin(client, "cluster.verify", at_kv, 4, &json, 5000), TERN_EINVAL);
    kv[1].value = "cli.elsewhere.x"; //  (almost surely) another partition: refused
    if (tern_partition_of(kv[1].value, strlen(kv[1].value), S_PARTITIONS) != (uint32_t)atoi(p)) {
        cr_assert_eq(tern_admin(client, "cluster.verify", kv, 3, &json, 5000), TERN_EINVAL);
    }
    tern_client_destroy(&client);

    //  cluster partitions --topic: one row, the leader's position.
    cr_assert_eq(it_ctl(&r, other, 10000, "cluster", "partitions", "--topic", topic, NULL), 0, "%s",
                 r.err);
    cr_assert_eq(s_count(r.out, "\"partition\""), 1, "%s", r.out);
    it_result_free(&r);
    free(partitions);
}

Test(cluster_cli, single_node_is_not_a_cluster) {
    it_broker_t *b = it_start_broker(NULL);
    cr_assert(b);
    //  The admin op: TERN_ESTATE with the reason.
    it_raw_t *raw = s_raw(b);
    tern_frame_t f, reply;
    tern_frame_init(&f, TERN_CMD_ADMIN);
    f.req_id = 9;
    snprintf(f.name, sizeof f.name, "cluster");
    f.fields |= TERN_F_NAME;
    cr_assert_eq(it_raw_send_frame(raw, &f), TERN_OK);
    cr_assert_eq(it_raw_recv_reply(raw, &reply, 5000), TERN_OK);
    cr_assert_eq(reply.code, TERN_ESTATE, "code %u: %s", reply.code, reply.reason);
    cr_assert(strstr(reply.reason, "not a cluster"), "%s", reply.reason);
    it_raw_destroy(&raw);
    //  ternctl says so, and the other commands work as on any single node.
    it_result_t r;
    cr_assert_eq(it_ctl_text(&r, b, 10000, NULL, "cluster", NULL), 1, "%s", r.out);
    cr_assert(strstr(r.err, "not a cluster"), "%s", r.err);
    it_result_free(&r);
    it_pub(b, "one.t", "x", 1);
    cr_assert_eq(it_ctl(&r, b, 10000, "topics", NULL), 0, "%s", r.err);
    cr_assert(strstr(r.out, "\"topic\":\"one.t\""), "%s", r.out);
    it_result_free(&r);
}

//  Waits until TOPIC's partition is led by node LEADER, as B's view says.
static void s_wait_leader(it_broker_t *b, const char *topic, int64_t leader) {
    int64_t deadline = it_now_ms() + S_WAIT_MS;
    while (true) {
        it_result_t r;
        int rc = it_ctl(&r, b, 10000, "cluster", "partitions", "--topic", topic, NULL);
        int64_t now = rc == 0 ? s_leader(r.out, topic) : -1;
        it_result_free(&r);
        if (now == leader) {
            return;
        }
        cr_assert(it_now_ms() < deadline, "partition of %s not led by %lld (now %lld)", topic,
                  (long long)leader, (long long)now);
        it_sleep_ms(200);
    }
}

//  Asks NODES[0] to hand TOPIC's partition over to node TO, and waits
//  until every node's view shows it.
static void s_handover(it_broker_t **nodes, const char *topic, int64_t to) {
    it_broker_t *b = nodes[0];
    char p[16], node[16];
    snprintf(p, sizeof p, "%u", (unsigned)tern_partition_of(topic, strlen(topic), S_PARTITIONS));
    snprintf(node, sizeof node, "%lld", (long long)to);
    it_result_t r;
    cr_assert_eq(it_ctl(&r, b, 10000, "cluster", "handover", p, "--to", node, NULL), 0, "%s",
                 r.err);
    cr_assert(strstr(r.out, "\"queued\":true"), "%s", r.out);
    it_result_free(&r);
    for (int i = 0; i < S_NODES; i++) {
        s_wait_leader(nodes[i], topic, to);
    }
}

//  A pattern subscription gets a topic's messages only from the node that
//  leads its partition, and a running one picks the topic up when its node
//  becomes the leader again.
Test(cluster_cli, route_delivers_only_where_leader) {
    it_broker_t *nodes[S_NODES];
    for (uint32_t i = 0; i < S_NODES; i++) {
        nodes[i] = s_node("clroute", i);
    }
    it_result_t r;
    s_wait_placed(nodes[0], &r);
    const char *topic = "rt.a";
    int64_t leader = s_leader(r.out, topic);
    it_result_free(&r);
    cr_assert(leader >= 0 && leader < S_NODES);
    int64_t next = (leader + 1) % S_NODES;
    it_broker_t *l = nodes[leader];
    it_pub(l, topic, "m{n}", 3);

    //  While it leads: the pattern gets the 3 messages.
    cr_assert_eq(it_ctl(&r, l, 15000, "sub", "rt.>", "--from", "first", "--count", "3", "--timeout",
                        "5s", NULL),
                 0, "%s", r.err);
    cr_assert_eq(s_count(r.out, "\"topic\":\"rt.a\""), 3, "%s", r.out);
    it_result_free(&r);

    //  Handed over: the former leader delivers nothing of it. (A raw
    //  session: libtern itself would follow the leaders.)
    s_handover(nodes, topic, next);
    it_raw_t *raw = s_raw(l);
    tern_frame_t f, got;
    tern_frame_init(&f, TERN_CMD_SUBSCRIBE);
    f.req_id = 11;
    snprintf(f.topic, sizeof f.topic, "rt.>");
    f.fields |= TERN_F_TOPIC | TERN_F_START;
    f.start = TERN_START_FIRST;
    f.credit = 10;
    cr_assert_eq(it_raw_send_frame(raw, &f), TERN_OK);
    cr_assert_eq(it_raw_recv_reply(raw, &got, 5000), TERN_OK);
    cr_assert_eq(got.cmd, TERN_CMD_OK, "%s %u %s", tern_cmd_name(got.cmd), got.code, got.reason);
    cr_assert_eq(it_raw_recv_reply(raw, &got, 1000), TERN_ETIMEOUT, "delivered by a follower: %s",
                 tern_cmd_name(got.cmd));

    //  The same subscription picks the topic up when its node leads again:
    //  the 3 messages from the first.
    s_handover(nodes, topic, leader);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(it_raw_recv_reply(raw, &got, 10000), TERN_OK, "message %d not delivered", i);
        cr_assert_eq(got.cmd, TERN_CMD_DELIVER, "%s", tern_cmd_name(got.cmd));
        cr_assert_str_eq(got.topic, topic);
    }
    it_raw_destroy(&raw);
}

/*  test_client_map.c - libtern's partition map (client/tern_client_map.c): the
    ADMIN `cluster` reply read into routes, its refusals, and the
    TERN_ENOTLEADER reasons that name a new leader. */
#include "../../client/tern_client_map.h"
#include "tern_partition.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

//  The reply of docs/protocol.md's example, two partitions.
static const char *s_reply =
    "{\"cluster\":\"dc1\",\"node_id\":1,\"partitions\":2,\"replicas\":3,\"min_insync\":2,"
    "\"controller\":0,"
    "\"nodes\":[{\"node_id\":0,\"dc\":\"dc1\",\"endpoint\":\"tcp://127.0.0.1:7600\","
    "\"state\":\"up\",\"controller\":true,\"leader_of\":1,\"replica_of\":2},"
    "{\"node_id\":2,\"dc\":\"dc1\",\"endpoint\":\"tcp://127.0.0.1:7620\",\"state\":\"down\","
    "\"controller\":false,\"leader_of\":1,\"replica_of\":2}],"
    "\"map\":[{\"partition\":0,\"leader\":2,\"epoch\":123,\"replicas\":[2,0,1],"
    "\"isr\":[2,0,1],\"position\":17},"
    "{\"partition\":1,\"leader\":null,\"epoch\":9,\"replicas\":[0,2],\"isr\":[],"
    "\"position\":0}]}";

//  Usage: read the reply, then route a topic to its partition's leader.
Test(client_map, usage) {
    char why[256] = "";
    cl_map_t *map = cl_map_parse(s_reply, strlen(s_reply), why, sizeof why);
    cr_assert_not_null(map, "%s", why);
    const char *topic = "orders.eu";
    uint32_t p = cl_map_partition(map, topic, strlen(topic));
    cr_assert_eq(p, tern_partition_of(topic, strlen(topic), 2)); //  as ternd computes it
    int64_t leader = cl_map_leader(map, 0);
    cr_assert_eq(leader, 2);
    const cl_map_node_t *node = cl_map_node(map, (uint32_t)leader);
    cr_assert_not_null(node);
    cr_assert_str_eq(node->endpoint, "tcp://127.0.0.1:7620");
    cl_map_destroy(&map);
    cr_assert_null(map);
}

Test(client_map, fields) {
    char why[256] = "";
    cl_map_t *map = cl_map_parse(s_reply, strlen(s_reply), why, sizeof why);
    cr_assert_not_null(map, "%s", why);
    cr_assert_eq(map->partitions, 2u);
    cr_assert_eq(map->node_count, 2u);
    cr_assert(map->nodes[0].up);
    cr_assert_not(map->nodes[1].up);
    cr_assert_eq(map->epoch[0], 123u);
    cr_assert_eq(map->epoch[1], 9u);
    cr_assert_eq(cl_map_leader(map, 1), CL_NO_LEADER);
    cr_assert_eq(cl_map_leader(map, 2), CL_NO_LEADER); //  out of range
    cr_assert_null(cl_map_node(map, 1));
    cl_map_destroy(&map);
    cl_map_destroy(&map); //  idempotent
    cl_map_destroy(NULL);
}

Test(client_map, routes_64_partitions_like_ternd) {
    //  A 64-partition map with leaders p % 3: every topic goes where
    //  tern_partition_of says, including one that needs the 32-byte stripes.
    char json[8192];
    size_t n = (size_t)snprintf(json, sizeof json,
                                "{\"partitions\":64,\"nodes\":[{\"node_id\":0,\"endpoint\":\"a\"},"
                                "{\"node_id\":1,\"endpoint\":\"b\"},{\"node_id\":2,"
                                "\"endpoint\":\"c\"}],\"map\":[");
    for (int p = 0; p < 64; p++) {
        n += (size_t)snprintf(json + n, sizeof json - n, "%s{\"partition\":%d,\"leader\":%d}",
                              p ? "," : "", p, p % 3);
    }
    snprintf(json + n, sizeof json - n, "]}");
    char why[256];
    cl_map_t *map = cl_map_parse(json, strlen(json), why, sizeof why);
    cr_assert_not_null(map, "%s", why);
    const char *topics[] = {"orders.eu", "a", "t.0", "0123456789abcdef0123456789abcdef0123456789"};
    for (size_t i = 0; i < sizeof topics / sizeof *topics; i++) {
        uint32_t p = tern_partition_of(topics[i], strlen(topics[i]), 64);
        cr_assert_eq(cl_map_partition(map, topics[i], strlen(topics[i])), p);
        cr_assert_eq(cl_map_leader(map, p), (int64_t)(p % 3));
    }
    cr_assert_eq(cl_map_partition(map, "orders.eu", 9), 35u); //  docs/protocol.md's vector
    cl_map_destroy(&map);
}

Test(client_map, refuses_what_it_cannot_route) {
    const char *bad[] = {
        "",
        "[]",
        "{\"partitions\":2,\"nodes\":[]}",                                //  no map
        "{\"partitions\":2,\"map\":[]}",                                  //  no nodes
        "{\"nodes\":[],\"map\":[]}",                                      //  no partitions
        "{\"partitions\":0,\"nodes\":[],\"map\":[]}",                     //  P = 0
        "{\"partitions\":99999999,\"nodes\":[],\"map\":[]}",              //  P too large
        "{\"partitions\":2,\"nodes\":[],\"map\":[{\"partition\":2}]}",    //  out of range
        "{\"partitions\":2,\"nodes\":[{\"endpoint\":\"x\"}],\"map\":[]}", //  node without id
        "{\"partitions\":2,\"nodes\":[],\"map\":[{\"partition\":0,\"leader\":-1}]}",
        "{\"partitions\":2,\"nodes\":[],\"map\":[{\"partition\":0,\"leader\":1}",
        "{\"partitions\":2,\"nodes\":[],\"map\":[]",
        "{\"partitions\":2,\"nodes\":[],\"map\":[],}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char why[256] = "";
        cl_map_t *map = cl_map_parse(bad[i], strlen(bad[i]), why, sizeof why);
        cr_assert_null(map, "accepted %s", bad[i]);
        cr_assert(strncmp(why, "cluster map: ", 13) == 0, "%s: %s", bad[i], why);
    }
    //  Unknown keys and values of every kind are skipped.
    const char *ok = "{\"x\":{\"y\":[1,\"]\",{\"z\":null}],\"w\":true},\"partitions\":1,"
                     "\"nodes\":[{\"node_id\":4,\"extra\":[{}],\"endpoint\":\"tcp://h:1\"}],"
                     "\"map\":[{\"partition\":0,\"leader\":4,\"epoch\":1}],\"tail\":-1.5e3}";
    char why[256] = "";
    cl_map_t *map = cl_map_parse(ok, strlen(ok), why, sizeof why);
    cr_assert_not_null(map, "%s", why);
    cr_assert_eq(cl_map_leader(map, 0), 4);
    cr_assert(map->nodes[0].up); //  no state given: up
    cl_map_destroy(&map);
    //  Read as a whole document: the members may come in any order.
    const char *reordered = "{\"map\":[{\"partition\":1,\"leader\":0}],\"nodes\":[{\"node_id\":0}],"
                            "\"partitions\":2}";
    map = cl_map_parse(reordered, strlen(reordered), why, sizeof why);
    cr_assert_not_null(map, "%s", why);
    cr_assert_eq(cl_map_leader(map, 1), 0);
    cr_assert_eq(cl_map_leader(map, 0), CL_NO_LEADER);
    cl_map_destroy(&map);
}

Test(client_map, not_leader_hints) {
    uint32_t p = 0;
    int64_t leader = 0;
    char endpoint[256];
    cr_assert(cl_map_hint("partition 7 is led by node 2 at tcp://127.0.0.1:7620", &p, &leader,
                          endpoint, sizeof endpoint));
    cr_assert_eq(p, 7u);
    cr_assert_eq(leader, 2);
    cr_assert_str_eq(endpoint, "tcp://127.0.0.1:7620");
    cr_assert(cl_map_hint("partition 3 has no leader", &p, &leader, endpoint, sizeof endpoint));
    cr_assert_eq(p, 3u);
    cr_assert_eq(leader, CL_NO_LEADER);
    cr_assert_str_eq(endpoint, "");
    //  Without the endpoint (the answering node does not know it).
    cr_assert(cl_map_hint("partition 4 is led by node 1", &p, &leader, endpoint, sizeof endpoint));
    cr_assert_eq(p, 4u);
    cr_assert_eq(leader, 1);
    cr_assert_str_eq(endpoint, "");
    const char *bad[] = {NULL,
                         "",
                         "no such topic 'x'",
                         "partition x has no leader",
                         "partition 3 is led by node 2 at ",
                         "partition 3 is led by node 2 at a b",
                         "partition 3 is led by node 2x",
                         "partition 3 has no leader yet",
                         "partition 3: node 1's etcd lease may have lapsed"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        cr_assert_not(cl_map_hint(bad[i], &p, &leader, endpoint, sizeof endpoint), "%s", bad[i]);
    }
}

Test(client_map, hints_move_a_partition) {
    char why[256];
    cl_map_t *map = cl_map_parse(s_reply, strlen(s_reply), why, sizeof why);
    cr_assert_not_null(map);
    //  A known node: only the leader changes.
    cr_assert(cl_map_apply_hint(map, 0, 0, "tcp://127.0.0.1:7600"));
    cr_assert_eq(cl_map_leader(map, 0), 0);
    //  A node the map did not list: added with the hint's endpoint.
    cr_assert(cl_map_apply_hint(map, 1, 5, "tcp://127.0.0.1:7650"));
    cr_assert_eq(cl_map_leader(map, 1), 5);
    cr_assert_str_eq(cl_map_node(map, 5)->endpoint, "tcp://127.0.0.1:7650");
    //  No leader; out of range; an unknown node without an endpoint.
    cr_assert(cl_map_apply_hint(map, 1, CL_NO_LEADER, ""));
    cr_assert_eq(cl_map_leader(map, 1), CL_NO_LEADER);
    cr_assert_not(cl_map_apply_hint(map, 2, 0, ""));
    cr_assert_not(cl_map_apply_hint(map, 0, 9, ""));
    cr_assert_eq(cl_map_leader(map, 0), 0);
    cl_map_destroy(&map);
}

//  What cl_json_items saw: each element's text and `topic`, joined.
typedef struct {
    char items[512]; //  "TEXT|VALUE;" per element
} s_seen_t;

static void s_seen(const char *item, size_t len, const char *value, void *arg) {
    s_seen_t *seen = arg;
    size_t used = strlen(seen->items);
    snprintf(seen->items + used, sizeof seen->items - used, "%.*s|%s;", (int)len, item, value);
}

//  The walker that merges `topics` and `trace` answers of several nodes.
Test(client_map, json_items_of_admin_replies) {
    s_seen_t seen = {""};
    const char *topics = " [ {\"topic\":\"a.b\",\"msgs\":3,\"x\":{\"topic\":\"no\"}} ,"
                         "{\"msgs\":1}, 7, {\"topic\":5} ] ";
    cr_assert(cl_json_items(topics, strlen(topics), "topic", s_seen, &seen));
    cr_assert_str_eq(seen.items, "{\"topic\":\"a.b\",\"msgs\":3,\"x\":{\"topic\":\"no\"}}|a.b;"
                                 "{\"msgs\":1}|;7|;{\"topic\":5}|;");
    //  An object (trace's answer): one call with the whole of it.
    seen.items[0] = '\0';
    const char *trace = "{\"msg_id\":9,\"topic\":\"t\"}";
    cr_assert(cl_json_items(trace, strlen(trace), "topic", s_seen, &seen));
    cr_assert_str_eq(seen.items, "{\"msg_id\":9,\"topic\":\"t\"}|t;");
    //  Empty array: no call. Broken text: false.
    seen.items[0] = '\0';
    cr_assert(cl_json_items("[]", 2, "topic", s_seen, &seen));
    cr_assert_str_eq(seen.items, "");
    cr_assert_not(cl_json_items("[{\"topic\":\"a\"}", 14, "topic", s_seen, &seen));
    cr_assert_not(cl_json_items("[1] x", 5, "topic", s_seen, &seen));
}

/*  it_cluster_netns.c - real network splits of a clustered DC (issue 14:
    "a leader cut off from its followers but still reaching etcd, and the
    reverse", with network namespaces the test creates).

    Each test makes its own namespaces (netns_harness.h): a bridge, one
    namespace for the test process (the "client": its producers, consumer,
    ternctl and raw client), one for the etcd member and one per node, each
    node listening on its namespace's 10.77 address. The faults are real:
    blackhole routes between two namespaces, both ways, so the kernel drops
    what the cut pair sends each other while every other link works.

    The tests themselves are it_cluster_fault.c's two split tests, the
    functions of cluster_faults.c that both suites call; it_cluster_cut
    cuts between namespaces
    when the cluster runs in them (cluster_harness.c: a node's cluster
    port: cut from that node; etcd's client port: cut from etcd), so the
    load, the assertions and the end are
    shared, not copied: producers with producer ids under load, a consumer
    group reading every topic, `ternctl cluster verify`, the ISR replicas'
    data dirs read after a kill -9 of every node, and tern-check on the
    whole history (rules a-e, docs/checker.md). What changes is that the
    processes see a real network fail (connects refused by the route,
    packets dropped) instead of cut_shim.c's silent sockets.

    Without root or iproute2 (no namespace can be made) the tests skip.
*/
#include "cluster_faults.h"
#include "netns_harness.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

static it_netns_t *s_net; //  the test's namespaces

//  Stops the producers and kills every process by PID (it_fault_fini), then
//  deletes the namespaces they ran in.
static void s_net_fini(void) {
    it_fault_fini();
    it_cluster_set_netns(NULL);
    it_netns_destroy(&s_net);
}

TestSuite(cluster_netns, .fini = s_net_fini);

//  The namespaces of a client, etcd and NODES nodes (skips the test if they
//  cannot be made), with the test process in the client's and clusters
//  created from now on in them.
static void s_net_setup(int nodes) {
    char why[1024] = "";
    s_net = it_netns_new(IT_NETNS_NODE(nodes), why, sizeof why);
    if (s_net == NULL) {
        cr_skip_test("cannot create network namespaces (needs root and iproute2): %s", why);
    }
    cr_assert(it_netns_enter(s_net, IT_NETNS_CLIENT), "cannot enter the client namespace");
    it_cluster_set_netns(s_net);
}

//  The namespaces themselves: a node answers across the bridge, not once
//  the client's link to it is cut, again after the heal; the other node
//  stays reachable throughout.
Test(cluster_netns, cut_and_heal) {
    s_net_setup(2);
    it_cluster_t *cl = it_cluster_new(2, 1, IT_FAULT_PARTITIONS, it_fault_flags);
    cr_assert(cl, "cannot set up the cluster");
    cr_assert(strstr(cl->node[0]->endpoint, it_netns_addr(s_net, IT_NETNS_NODE(0))), "node 0 at %s",
              cl->node[0]->endpoint);
    cr_assert(it_cluster_start(cl, 60000), "the cluster did not start in its namespaces");
    it_result_t r;
    it_ctl(&r, cl->node[0], 10000, "status", NULL);
    it_assert_ok(&r, "status across the bridge");
    it_result_free(&r);
    cr_assert(it_netns_cut(s_net, IT_NETNS_CLIENT, IT_NETNS_NODE(0)));
    int rc = it_ctl(&r, cl->node[0], 3000, "status", NULL);
    cr_assert_neq(rc, 0, "ternctl status answered through a cut link:\n%s", r.out);
    it_result_free(&r);
    it_ctl(&r, cl->node[1], 10000, "status", NULL);
    it_assert_ok(&r, "status of the node not cut");
    it_result_free(&r);
    cr_assert(it_netns_heal(s_net, IT_NETNS_CLIENT, IT_NETNS_NODE(0)));
    it_ctl(&r, cl->node[0], 10000, "status", NULL);
    it_assert_ok(&r, "status after the heal");
    it_result_free(&r);
    it_cluster_destroy(&cl);
}

//  Issue 14: partition 0's leader cut off from both followers (both ways),
//  still reaching etcd and the clients: it keeps its lease, so it must
//  shrink its ISR below min_insync and refuse (TERN_EREPLICAS), never
//  acknowledge from one copy; after the heal the followers rejoin;
//  verify and tern-check (--min-logs 2).
Test(cluster_netns, leader_cut_from_followers) {
    s_net_setup(IT_FAULT_NODES);
    it_fault_leader_cut_from_followers();
}

//  Issue 14, the reverse: partition 0's leader cut off from etcd only,
//  still reaching its followers and the clients: its lease lapses, another
//  node leads, and the deposed node must fence itself (a raw client talking
//  to it alone gets no acknowledgement after the new epoch began); after
//  the heal it rejoins; verify and tern-check.
Test(cluster_netns, leader_cut_from_etcd) {
    s_net_setup(IT_FAULT_NODES);
    it_fault_leader_cut_from_etcd();
}

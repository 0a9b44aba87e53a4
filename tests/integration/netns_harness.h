/*  netns_harness.h - real network splits for the cluster tests: network
    namespaces the test creates, joined by a bridge, cut with blackhole
    routes.

    it_netns_new makes a private "switch" namespace holding a bridge and one
    namespace per host (the client, etcd, each node), each with lo up and a
    veth into the bridge carrying 10.77.X.(10 + host)/24, X chosen from the
    pid (every test has its own bridge, so parallel tests never share a
    segment). Nothing is added to the root namespace: the test process
    itself moves into the client namespace (it_netns_enter) and reaches the
    others over the bridge. A child started by a thread inherits that
    thread's namespace, so a process is started inside host H by entering H,
    forking, and going back home (cluster_harness.c does this for etcd and
    the nodes, whose PIDs it keeps as before).

    it_netns_cut(A, B) adds a blackhole route to B's address in A and to A's
    in B: exactly that pair stops talking, both ways; it_netns_heal removes
    them. it_netns_destroy deletes every namespace (their veths go with
    them); kill the processes inside first, by PID. Needs root (or
    CAP_NET_ADMIN and CAP_SYS_ADMIN) and iproute2: without them
    it_netns_new returns NULL with the reason, and the tests skip.
*/
#ifndef TERN_IT_NETNS_HARNESS_H_INCLUDED
#define TERN_IT_NETNS_HARNESS_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>

#define IT_NETNS_HOSTS_MAX 16
//  One cluster's layout (cluster_harness.c); xdc_harness.h numbers the
//  hosts of several DCs its own way (IT_XDC_HOST), the client still host 0.
#define IT_NETNS_CLIENT  0         //  host of the test process and its children
#define IT_NETNS_ETCD    1         //  host of the etcd member
#define IT_NETNS_NODE(i) (2 + (i)) //  host of node I

typedef struct {
    int hosts;                         //  namespaces besides the switch
    int subnet;                        //  X of 10.77.X.0/24
    char sw[32];                       //  the switch namespace's name
    char name[IT_NETNS_HOSTS_MAX][32]; //  host H's namespace name
    char addr[IT_NETNS_HOSTS_MAX][16]; //  host H's address, 10.77.X.(10 + H)
    bool made[IT_NETNS_HOSTS_MAX + 1]; //  namespace H (last: the switch) exists
    int home_fd;                       //  the namespace the test started in, or -1
    int current;                       //  host the calling thread is in, -1: home
} it_netns_t;

/*  Makes the switch and HOSTS (1..IT_NETNS_HOSTS_MAX) host namespaces,
    wired as above. NULL if anything fails (no root, no iproute2): the
    reason is written to WHY (CAP bytes), and whatever was made is removed. */
it_netns_t *it_netns_new(int hosts, char *why, size_t cap);

/*  Host H's address ("10.77.X.Y"). */
const char *it_netns_addr(const it_netns_t *self, int h);

/*  Moves the calling thread into host H's namespace (H -1: back to the one
    the test started in). Threads and children started afterwards by this
    thread are in it too. False (reason on stderr) if setns failed. */
bool it_netns_enter(it_netns_t *self, int h);

/*  Cuts / heals the pair A, B with blackhole routes both ways. */
bool it_netns_cut(it_netns_t *self, int a, int b);
bool it_netns_heal(it_netns_t *self, int a, int b);

/*  Adds (ADD) or removes, in host A only, a blackhole route to each of the
    COUNT hosts TO, in one `ip -batch` run. One way is enough to stop TCP
    between them (A's replies are dropped too); the other way is for
    symmetry. False (reason on stderr) if any route failed. */
bool it_netns_blackhole(it_netns_t *self, int a, const int *to, size_t count, bool add);

/*  Back home, every namespace deleted, freed, *SELF_P nulled. Safe on NULL.
    Kill the processes inside first (by PID). */
void it_netns_destroy(it_netns_t **self_p);

#endif

/*  xdc_harness.h - several clustered DCs on loopback (or in network
    namespaces: the last section) for the cross-DC drills (issue 15), and
    the cross-DC history the checker reads.

    N DCs of M nodes each: every DC has its own etcd (one member or three),
    its own cluster name, node ids unique across DCs (DC d's node i has id
    d * 10 + i + 1), a --repl-listen endpoint per node and a --peer NAME=
    every repl endpoint of every other DC. Built on harness.h (every ternd
    is adopted: it_teardown stops it by PID) and etcd_harness.h (each etcd
    is stopped by PID in it_xdc_destroy, or by its atexit hook).

    The history (docs/checker.md, with the "dc" field): every publish
    attempt and its outcome, made through `ternctl pub` with every client
    endpoint of its DC (libtern follows the partition leaders), each tagged
    with its DC; at the end every DC's deliveries to a group of its own, and
    the log of every in-sync replica of every DC, read from its data dir
    after the nodes are killed. it_xdc_finish runs `ternctl cluster verify`
    in every DC and `tern-check --dcs N` on it.

    Waits poll with a deadline; nothing here asserts a duration. Times are
    measured (it_now_ms) and printed for the drill reports.
*/
#ifndef TERN_IT_XDC_HARNESS_H_INCLUDED
#define TERN_IT_XDC_HARNESS_H_INCLUDED

#include "etcd_harness.h"
#include "harness.h"
#include "netns_harness.h"
#include "test_dir.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define IT_XDC_DCS_MAX     3
#define IT_XDC_NODES_MAX   3
#define IT_XDC_BATCH_MAX   1000 //  messages per it_xdc_pub
#define IT_XDC_STREAMS_MAX 32   //  producers (it_xdc_pub) per it_xdc_t

//  One clustered DC.
typedef struct {
    char name[8];                                 //  dc1, dc2, ...
    char cluster[32];                             //  cluster/name
    int count;                                    //  nodes
    uint32_t first_id;                            //  node i has id first_id + i
    it_etcd_t *etcd;                              //  its etcd, owned
    it_broker_t *node[IT_XDC_NODES_MAX];          //  adopted (it_teardown stops them)
    char repl[IT_XDC_NODES_MAX][64];              //  --repl-listen of each node
    char repl_list[IT_XDC_NODES_MAX * 64];        //  every repl endpoint, comma-separated
    char client_list[IT_XDC_NODES_MAX * 64 + 64]; //  every client endpoint, comma-separated
} it_xdc_dc_t;

//  One producer of the drills: a libtern client kept across publishes.
typedef struct {
    int dc;                //  the DC it publishes in
    char producer[32];     //  its producer id ("" = slot free)
    tern_client_t *client; //  connected to every client endpoint of DC, or NULL
} it_xdc_stream_t;

//  The DCs, their history and what the drills counted.
typedef struct {
    int count;                                   //  DCs
    uint32_t partitions;                         //  per DC
    it_xdc_dc_t dc[IT_XDC_DCS_MAX];              //  dc[d] is named dc<d+1>
    char dir[TEST_DIR_MAX];                      //  temp dir: history and kept logs
    char path[TEST_DIR_MAX + 32];                //  the history file
    FILE *hist;                                  //  open on PATH
    it_xdc_stream_t streams[IT_XDC_STREAMS_MAX]; //  producers, by first use
    size_t attempts;                             //  publish attempts (acknowledged or failed)
    size_t acked;                                //  acknowledged publishes
    size_t failed;                               //  failed attempts (each recorded as an err)
} it_xdc_t;

/*  Describes DCS (1..IT_XDC_DCS_MAX) DCs of NODES (1..IT_XDC_NODES_MAX)
    nodes with PARTITIONS partitions each, every DC on a fresh etcd of
    ETCD_MEMBERS (1 or 3) members (started here), each node with the
    NULL-terminated extra ternd flags EXTRA (may be NULL; at most 8). Does
    not start the nodes. Asserts (criterion) on failure. Caller owns the
    result; destroy with it_xdc_destroy. */
it_xdc_t *it_xdc_new(int dcs, int nodes, uint32_t partitions, int etcd_members,
                     const char *const *extra);

/*  Starts every node of every DC (each DC's nodes spawned together, then
    awaited) and waits until every partition of every DC is led. */
void it_xdc_start(it_xdc_t *self);

/*  Waits until every partition of DC D is led (`ternctl cluster
    partitions`); false after TIMEOUT_MS. */
bool it_xdc_wait_led(it_xdc_t *self, int d, int timeout_ms);

/*  Publishes COUNT messages to TOPIC in DC D as PRODUCER from *SEQ, one at
    a time through PRODUCER's libtern client (kept across calls, connected
    to every client endpoint of D: it follows the partition leaders; with
    TERN_XDC_PIPELINED set, through one `ternctl pub --count` run instead:
    pipelined, which shows the ordering bug of docs/cluster.md "Drills
    across DCs"), records every acknowledgement and, on a failure, one err
    attempt for the first unacknowledged seq; advances *SEQ
    to that one (the next call resends from there: the client's retry,
    deduplicated by the broker). COUNT at most IT_XDC_BATCH_MAX. Returns how
    many were acknowledged. */
int it_xdc_pub(it_xdc_t *self, int d, const char *topic, const char *producer, uint64_t *seq,
               int count);

/*  The index in DC D of the node that leads TOPIC's partition now (asked of
    the running nodes), or -1. */
int it_xdc_leader_of(it_xdc_t *self, int d, const char *topic);

/*  `ternctl peers VERB NAME` (pause, resume) on every running node of D. */
void it_xdc_peers(it_xdc_t *self, int d, const char *verb, const char *name);

/*  Kills node I of DC D (SIGKILL) and starts it again on its data dir; when
    MOVE, on new client and cluster ports first (a moved instance), when
    WIPE, on an empty data dir (a replaced instance). Asserts it started. */
void it_xdc_restart_node(it_xdc_t *self, int d, int i, bool kill, bool move, bool wipe);

/*  Waits until every DC holds, for each of the TOPICS (COUNT), the same
    msg_ids (read through ternctl sub --from first); returns the ms it
    waited, or -1 after TIMEOUT_MS (what each DC held on stderr). */
int64_t it_xdc_converge(it_xdc_t *self, const char *const *topics, size_t count, int timeout_ms);

/*  TOPIC's msg_ids in DC D (`ternctl sub --from first`, no group), sorted
    into *IDS_P (caller frees); how many. */
size_t it_xdc_read_ids(it_xdc_t *self, int d, const char *topic, int64_t **ids_p);

/*  Durable group GROUP of DC D reads TOPIC (from the first message when the
    group is new) until IDLE_MS pass without a delivery, acking each
    (`ternctl sub --group`): the delivered msg_ids, sorted into *IDS_P
    (caller frees); how many. Not recorded in the history (it_xdc_finish's
    groups are). */
size_t it_xdc_group_read(it_xdc_t *self, int d, const char *topic, const char *group, int idle_ms,
                         int64_t **ids_p);

/*  `ternctl cluster verify` in DC D (each run's output on stderr) until it
    passes or TIMEOUT_MS runs out (the followers apply asynchronously); its
    last exit code. */
int it_xdc_verify(it_xdc_t *self, int d, int timeout_ms);

/*  The end of every drill: converged (asserted last), `ternctl cluster verify`
    in every DC (asserted; run again after the groups read, asserted only
    with TERN_XDC_VERIFY_GROUPS set), a group per DC (g-dcN) reads every topic
    (deliveries recorded) and `ternctl audit` of every topic in every DC is
    printed (`xdc: audit DC {json}` lines), every in-sync replica of every DC dumped after
    the nodes are killed, and tern-check --dcs N --min-logs 2N on the
    history (asserted clean). Prints the checker's summary. */
void it_xdc_finish(it_xdc_t *self, const char *const *topics, size_t count);

/*  Stops every node and etcd by PID, removes the history dir (kept when the
    test failed, as it asserts before), frees, nulls *SELF_P. Safe on NULL. */
void it_xdc_destroy(it_xdc_t **self_p);

/*  ---------------------------------------------------------------------------
    DCs in network namespaces and DC cuts (branch dccut: issue 15's "a DC cut
    off from the others", tests/integration/it_xdc_cut.c)

    it_xdc_netns_new makes netns_harness.h's namespaces for DCS DCs: host 0
    for the test process (its producers, ternctl, the link watcher), and a
    host for DC d's etcd and one for each of its nodes (IT_XDC_HOST). It
    moves the calling thread into host 0, and every it_xdc_new from then on
    starts its etcds and nodes in their hosts, listening on the host's 10.77
    address (with --insecure: not loopback), until it_xdc_netns_destroy.
    it_xdc_cut then blackholes the routes between every host of DC d and
    every host of the other DCs, both ways: each DC still reaches its own
    etcd and nodes and the test reaches every node; only traffic between DC
    d and the others stops, as on a cut WAN link. */

//  Host of DC D's node I (I -1: its etcd); host 0 is the test's.
#define IT_XDC_HOST(d, i) (1 + (d) * (1 + IT_XDC_NODES_MAX) + 1 + (i))

/*  Makes the namespaces of DCS DCs as above and enters host 0. NULL (the
    reason in WHY, CAP bytes) without root or iproute2: skip the test.
    Caller owns the result: it_xdc_netns_destroy, after it_xdc_destroy. */
it_netns_t *it_xdc_netns_new(int dcs, char *why, size_t cap);

/*  Back to the namespace the test started in, new DCs on loopback again,
    every namespace deleted; *NET_P nulled. Safe on NULL. Stop the
    processes inside first (it_xdc_destroy). */
void it_xdc_netns_destroy(it_netns_t **net_p);

/*  Cuts (ON) or heals DC D off from every other DC, both ways (the DCs must
    run in namespaces). False (reason on stderr) if a route could not be
    changed; the heal removes what the cut added. */
bool it_xdc_cut(it_xdc_t *self, int d, bool on);

/*  The links between DCs as their nodes report them: a thread asks every
    node for `peers` (tern_admin, a client of its own per node) every 50 ms
    and notes, per node and other DC, whether the link is live (its state
    in `ternctl peers`: the connection whose heartbeats decide it, not the
    extra ones to the other DC's partition leaders) and when that last
    changed. Caller owns the result: it_xdc_watch_destroy, before
    it_xdc_destroy. */
typedef struct it_xdc_watch_t it_xdc_watch_t;
it_xdc_watch_t *it_xdc_watch_new(it_xdc_t *xdc);

//  When the links between DC D and the others changed to LIVE (it_xdc_watch_wait).
typedef struct {
    int links;        //  links between D and the others (both directions), asked of their nodes
    int seen;         //  of those, how many changed to LIVE at or after SINCE
    int64_t first_ms; //  ms from SINCE to the first such change, or -1
    int64_t last_ms;  //  ms from SINCE to the last one once every link changed, or -1
} it_xdc_seen_t;

/*  Waits up to TIMEOUT_MS until every link between DC D and every other DC,
    on the nodes of both sides, was seen LIVE (or not live) at or after
    SINCE (it_now_ms()), and says when. The times are those of the answers
    (50 ms apart at most, plus a `peers` round trip). */
it_xdc_seen_t it_xdc_watch_wait(it_xdc_watch_t *self, int d, bool live, int64_t since,
                                int timeout_ms);

/*  Stops the thread, destroys its clients, frees, nulls *SELF_P. Safe on
    NULL. */
void it_xdc_watch_destroy(it_xdc_watch_t **self_p);

#endif

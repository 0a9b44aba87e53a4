/*  tern_cluster_priv.h - the cluster actor's state, shared by its files.

    tern_cluster.c      the object, the view (what other threads read), the
                        thread's loop: keepalive, watch, requests
    tern_cluster_join.c joining: lease, cluster/partitions, identity, the
                        node key, and re-joining after a lost lease
    tern_cluster_ctl.c  the writes: controller (records, failover, replica
                        repair), ISR requests and handovers
    tern_cluster_detect.c  fast failure detection: the lease timing rules
                        (renewals we trust) and the revoke of a lease etcd
                        reports lapsed
    tern_cluster_restore.c etcd restored from a backup: record vers, the
                        view file, writing newer records back

    Threads. The actor thread is the only one that talks to etcd and the
    only writer of the view; it writes under LOCK, and other threads read
    under LOCK and copy out. Requests from other threads (ISR, handover)
    are put in REQ_* under LOCK and a byte on the wake pipe rouses the
    thread. lease_until, version, positions and the counters are atomics.
*/
#ifndef TERN_CLUSTER_PRIV_H_INCLUDED
#define TERN_CLUSTER_PRIV_H_INCLUDED

#include "tern_cluster.h"
#include "tern_etcd.h"
#include <pthread.h>
#include <stdatomic.h>

//  Longest etcd key we build: PREFIX/partitions/<p>.
#define TERN_CLUSTER_KEY_MAX 160

//  One node of the view, with what only the thread needs.
typedef struct {
    tern_cluster_node_t info; //  what readers get
    int64_t mod_revision;     //  revision of the last event applied to it
    int64_t down_since_ms;    //  monotonic ms its key went (or first seen missing)
    int64_t lease;            //  the lease its node key is bound to (0: down)
    int64_t lease_ms;         //  its record's `lease=` (0: an older node, not polled)
} tern_cluster_member_t;

//  A pending request from another thread, one per partition.
typedef struct {
    bool isr;                   //  an ISR write is pending
    uint64_t isr_epoch;         //  ... for the record led in this epoch
    tern_partmap_record_t next; //  ... with this ISR
    uint32_t handover_to;       //  TERN_NODE_NONE: no handover pending
} tern_cluster_req_t;

struct tern_cluster_t {
    //  settings, fixed after new
    uint32_t self_id;           //  node/id
    uint32_t partitions;        //  cluster/partitions (the cluster's)
    uint32_t replicas;          //  cluster/replicas
    int64_t lease_ms;           //  cluster/lease
    int64_t replace_after_ms;   //  cluster/replace_after
    char name[65];              //  cluster name (cluster/name or node/dc)
    char prefix[80];            //  "/tern/NAME"
    char endpoints[1024];       //  etcd members (for the watch)
    char member[256];           //  the etcd member the client used last (thread)
    char node_value[1000];      //  our node record, the value of PREFIX/nodes/<id>
    char cluster_endpoint[256]; //  cluster/listen, announced
    char dc[65];                //  node/dc, announced
    char repl_endpoint[256];    //  repl/listen, announced ("": no cross-DC replication)
    char identity[40];          //  our replica identity
    //  the thread's own (no lock)
    tern_etcd_t *etcd;           //  owned; the thread's client after new
    tern_etcd_watch_t *watch;    //  owned
    int64_t lease;               //  our lease id (0: none)
    int64_t ttl_ms;              //  TTL etcd granted, in ms (lease_ms + 1 s or more)
    int64_t renew_sent_ms;       //  send time of the last renewal etcd answered
    bool relet_due;              //  a late renewal: move our keys to a new lease before trusting
    int64_t next_keepalive_ms;   //  monotonic time of the next keepalive
    int64_t next_renew_log_ms;   //  failing renewals: when to log again (0: renewing)
    int64_t next_campaign_ms;    //  earliest next controller campaign
    int64_t next_control_ms;     //  next periodic controller pass
    int64_t control_since_ms;    //  when we became controller (0: we are not)
    bool control_dirty;          //  membership changed: run a controller pass
    int64_t watch_down_since_ms; //  the watch said DOWN then (0: it is up)
    int64_t next_sync_ms;        //  next full re-read of the prefix
    int64_t max_revision;        //  highest etcd revision seen (a read below it: etcd went back)
    bool went_back;              //  etcd went back in time: watch anew
    int64_t hold_until_ms;       //  ... and take no decision before then (republish first)
    bool republish_due;          //  etcd holds an older record than the view: write ours back
    int64_t next_republish_ms;   //  earliest next try of that write
    bool view_dirty;             //  records changed since the view file was written
    char view_path[1100];        //  DATA/cluster-view ("": not kept), tern_cluster_restore.c
    pthread_t thread;            //  the actor thread
    bool thread_started;         //  thread is running
    pthread_t poll_thread;       //  the lease polls' thread (tern_cluster_detect.c)
    bool poll_started;           //  poll_thread is running
    tern_etcd_t *poll_etcd;      //  owned; poll_thread's own etcd client
    int wake[2];                 //  pipe: [1] written by other threads, [0] polled
    atomic_bool stop;            //  destroy asks the thread to end
    //  the view (written by the thread under lock)
    pthread_mutex_t lock;           //  guards the view and REQS
    tern_partmap_record_t *records; //  PARTITIONS records (unassigned when no key)
    int64_t *mod_revision;          //  per partition: its key's mod_revision, 0 = absent
    tern_cluster_member_t *members; //  nodes ever seen, by id
    size_t nmembers;                //  entries in members
    size_t members_max;             //  allocated entries
    uint32_t controller;            //  controller node id, TERN_NODE_NONE
    int64_t controller_revision;    //  revision of the last controller event applied
    char new_endpoint[256];         //  a client endpoint to announce ("" = none pending)
    tern_cluster_req_t *reqs;       //  per partition, requests from other threads
    uint64_t *etcd_ver;             //  per partition: ver of the record etcd holds (0: none)
    uint64_t *etcd_epoch;           //  per partition: epoch of the record etcd holds
    bool *conflict;                 //  per partition: etcd and the view differ at one ver
    bool reqs_pending;              //  some entry of reqs is set
    //  atomics any thread reads
    atomic_uint_fast64_t version;    //  grows on every view change
    atomic_int_fast64_t lease_until; //  monotonic ms until which the lease is ok
    atomic_uint_fast64_t *positions; //  per partition, set by crepl
    atomic_uint_fast64_t renewals;   //  stats
    atomic_uint_fast64_t renew_failures;
    atomic_uint_fast64_t failovers;
    atomic_uint_fast64_t isr_changes;
    atomic_uint_fast64_t lease_revokes;
    atomic_uint_fast64_t late_renewals;
};

//  tern_cluster.c
int64_t tern_cluster_now_ms(void);
void tern_cluster_key(tern_cluster_t *self, char *buf, size_t len, const char *what, long id);
//  Applies one key of PREFIX as a read found it (DELETED: the key went at
//  KV->mod_revision) to the view under the lock: a partition key below the
//  revision the view holds means etcd went back. (Watch events, which may
//  lag a read, go through tern_cluster.c's s_apply.) Thread only.
void tern_cluster_apply_kv(tern_cluster_t *self, const tern_etcd_kv_t *kv, bool deleted);
//  Reads KEY (or PREFIX when PREFIX_READ) again and applies what it finds
//  (an absent partition key as deleted). TERN_OK or the etcd error.
tern_err_t tern_cluster_reread(tern_cluster_t *self, const char *key, bool prefix_read,
                               int64_t *revision_p);
//  Parses a node record (`id=2 endpoint=... cluster=... identity=... dc=...`,
//  unknown fields ignored) into the text fields of INFO.
void tern_cluster_parse_node(const char *text, tern_cluster_node_t *info);
//  The ids of the live nodes into LIVE (TERN_ID_NODE_MAX + 1 entries).
size_t tern_cluster_live(tern_cluster_t *self, uint32_t *live);
//  Renews the lease if it is due (also called between long runs of writes).
void tern_cluster_tick_keepalive(tern_cluster_t *self);
//  Reads the whole prefix into the view and (re)starts the watch after it.
bool tern_cluster_load(tern_cluster_t *self);
//  Rouses the thread (any thread).
void tern_cluster_wake(tern_cluster_t *self);
//  Allocates the view of PARTITIONS partitions (once, at join).
void tern_cluster_size(tern_cluster_t *self, uint32_t partitions);

//  tern_cluster_join.c
bool tern_cluster_join(tern_cluster_t *self, const tern_config_t *config, char *errbuf,
                       size_t errlen);
//  After a lost lease: a new lease and the node key again. False: try later.
bool tern_cluster_rejoin(tern_cluster_t *self);
//  After a late renewal (relet_due): our keys onto a new lease, or, if the
//  old one was revoked meanwhile, a re-join. Leaves relet_due set when etcd
//  did not answer (the next keepalive tries again).
void tern_cluster_relet(tern_cluster_t *self);
//  Rewrites our node key with an endpoint from tern_cluster_set_endpoint.
void tern_cluster_announce(tern_cluster_t *self);
//  Our node record (the value of PREFIX/nodes/<id>) with client ENDPOINT.
void tern_cluster_node_value(tern_cluster_t *self, const char *endpoint);

//  tern_cluster_detect.c
//  The TTL to ask etcd for: cluster/lease plus one second (see the file).
int64_t tern_cluster_grant_ttl_s(const tern_cluster_t *self);
//  A grant (SENT, DONE: monotonic ms around the call) or a renewal etcd
//  answered: sets lease_until if the renewal can be trusted; a late one
//  sets relet_due instead (the caller then calls tern_cluster_relet), and
//  no renewal of that lease is trusted again.
void tern_cluster_renewed(tern_cluster_t *self, int64_t sent, int64_t done, bool grant);
//  Starts the thread that polls the leases this node watches over, every
//  lease/16, revoking those etcd reports lapsed. False if it cannot.
bool tern_cluster_detect_start(tern_cluster_t *self);
//  Stops it (sets STOP) and frees its client; safe if it never started.
void tern_cluster_detect_stop(tern_cluster_t *self);
//  A node record's `lease=` (ms), 0 when it has none.
int64_t tern_cluster_record_lease_ms(const char *text);

//  tern_cluster_restore.c (etcd restored from a backup: docs/cluster.md
//  "etcd backup and restore")
//  The ver a new write of REC's partition gets: above every ver the view
//  or etcd has known for it, so never lower after etcd went back.
uint64_t tern_cluster_next_ver(tern_cluster_t *self, const tern_partmap_record_t *rec);
//  The first ver above TOP that WRITER (a node id) may write: its low bits
//  name the writer, so two writers never write the same ver.
uint64_t tern_cluster_ver_after(uint32_t writer, uint64_t top);
//  The first ver WRITER may write over a record at VER and EPOCH whose key
//  has etcd mod_revision REVISION: above all three (tern_cluster_next_ver,
//  and the join's ISR exit, which reads the record straight from etcd).
uint64_t tern_cluster_ver_above(uint32_t writer, uint64_t ver, uint64_t epoch, int64_t revision);
//  etcd went back (restored from a backup): the view's revision bookkeeping
//  starts again, what etcd holds is read anew and every record this node
//  holds newer is written back; no decision during the hold. Under LOCK.
void tern_cluster_went_back(tern_cluster_t *self);
//  A read at REVISION (etcd's header): below the highest revision seen,
//  etcd went back (restored from a snapshot): logged, and the view's
//  revision bookkeeping starts again from it. Under the view lock.
void tern_cluster_check_revision(tern_cluster_t *self, int64_t revision);
//  Loads DATA/cluster-view (the newest records this node saw, kept across
//  restarts) into the view; a missing file is no error. After the view is
//  sized, before the first read of etcd.
void tern_cluster_view_load(tern_cluster_t *self, const char *data_dir);
//  Writes the view file when records changed (fsync'd, then renamed);
//  unless NOW, only right after a lease renewal (the fsync must not delay
//  the next one). Thread only (or after it ended).
void tern_cluster_view_save(tern_cluster_t *self, bool now);
//  Writes back, by CAS, every record the view holds newer than etcd's.
void tern_cluster_republish(tern_cluster_t *self);
//  True for a while after etcd went back: no controller pass, ISR write or
//  handover, so that every live node can write its newer records back
//  before anyone decides on the restored ones. Thread only.
bool tern_cluster_holding(tern_cluster_t *self);

//  tern_cluster_ctl.c
//  Writes NEXT as it is by CAS on the view's mod_revision of its key; on
//  success the view takes it. False when the CAS failed (the key is read
//  again) or etcd did not answer.
bool tern_cluster_cas_write(tern_cluster_t *self, const tern_partmap_record_t *next);
void tern_cluster_campaign(tern_cluster_t *self);
void tern_cluster_control(tern_cluster_t *self);
void tern_cluster_serve_requests(tern_cluster_t *self);
//  Writes REC for PARTITION by CAS on its mod_revision (a new epoch when
//  NEW_EPOCH, else REC->epoch is kept in the value). On success the view
//  takes it at once. False when the CAS failed (the view is re-read) or etcd
//  did not answer.
bool tern_cluster_cas_record(tern_cluster_t *self, const tern_partmap_record_t *rec,
                             bool new_epoch);

#endif

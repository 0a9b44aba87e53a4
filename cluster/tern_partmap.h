/*  tern_partmap.h - partition records and the rules that change them.

    Every partition of a clustered DC has one record in etcd: its leader,
    its epoch, its replicas (placement order, tern_placement.h) and its
    in-sync replica set (ISR). This file holds the record and a map of all
    of them as plain structs, the pure decisions the controller and the
    leaders take on them, and the record's text form (the value stored in
    etcd). No sockets, no clock, no etcd: callers pass the live nodes, the
    replicas' positions and the time, and write the records this returns by
    compare-and-swap. docs/cluster.md gives the reasons.

    The rules, in short:
    - Election: a new leader is only ever an ISR member that is live, the
      first of them in replica order. None live: no leader, ISR kept, so the
      partition waits for an ISR member rather than lose acknowledged data.
    - ISR: a follower stays in sync while it has been caught up with the
      leader within the last lag_ms; it rejoins once its durable position
      reaches the acknowledged position (high watermark) and it is caught up.
    - Ack: a publish at position POS is acknowledged when every ISR member
      has POS durable and the ISR has at least min_insync members.
    - Fencing: a frame whose epoch is older than the record's is refused.

    The rule functions take records that pass tern_partmap_record_check, as
    every record in a map and every decoded record does.
*/
#ifndef TERN_PARTMAP_H_INCLUDED
#define TERN_PARTMAP_H_INCLUDED

#include "tern_err.h"
#include "tern_placement.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

//  Longest text form of a record, with its terminator.
#define TERN_PARTMAP_TEXT_MAX 512

typedef struct {
    uint32_t partition;                             //  0..P-1
    uint32_t leader;                                //  node id, TERN_NODE_NONE: no leader
    uint64_t epoch;                                 //  ver of the write that made the leader
    uint64_t ver;                                   //  order of the key's writes (0: unknown)
    uint32_t nreplicas;                             //  entries in replicas (0: unassigned)
    uint32_t replicas[TERN_PLACEMENT_REPLICAS_MAX]; //  node ids, placement order
    uint32_t nisr;                                  //  entries in isr
    uint32_t isr[TERN_PLACEMENT_REPLICAS_MAX];      //  in-sync node ids, a subset of replicas
} tern_partmap_record_t;

//  What a leader knows of one replica (itself included) of its partition.
typedef struct {
    uint32_t node;         //  the replica's node id
    uint64_t durable;      //  last log position it confirmed durable (fsync'd)
    uint64_t caught_up_ms; //  last time it held everything the leader had then
} tern_partmap_replica_t;

typedef enum {
    TERN_PARTMAP_ACK = 0,    //  acknowledge now
    TERN_PARTMAP_WAIT = 1,   //  an ISR member has not confirmed yet: wait (bounded)
    TERN_PARTMAP_REFUSE = 2, //  ISR smaller than min_insync: refuse (TERN_EREPLICAS)
} tern_partmap_ack_t;

typedef enum {
    TERN_PARTMAP_EPOCH_CURRENT = 0, //  same epoch: accept
    TERN_PARTMAP_EPOCH_STALE = 1,   //  older than the record: refuse and count
    TERN_PARTMAP_EPOCH_AHEAD = 2,   //  newer than our record: refresh the map first
} tern_partmap_epoch_t;

typedef struct tern_partmap_t tern_partmap_t;

//  --- The record ---------------------------------------------------------

/*  Checks the invariants every record obeys: at most
    TERN_PLACEMENT_REPLICAS_MAX replicas, node ids 0..TERN_ID_NODE_MAX and
    distinct, ISR a subset of replicas without repeats, leader NONE or an
    ISR member, and no ISR or leader without replicas. Returns TERN_OK or
    TERN_EINVAL with *WHY (when WHY is not NULL) a static phrase. */
tern_err_t tern_partmap_record_check(const tern_partmap_record_t *rec, const char **why);

/*  True when A and B hold the same fields (entries past nreplicas and nisr
    are not compared). */
bool tern_partmap_record_same(const tern_partmap_record_t *a, const tern_partmap_record_t *b);

/*  True when NODE is in the record's ISR (resp. replicas). */
bool tern_partmap_in_isr(const tern_partmap_record_t *rec, uint32_t node);
bool tern_partmap_in_replicas(const tern_partmap_record_t *rec, uint32_t node);

//  --- Election (the controller) -------------------------------------------

/*  The node that should lead REC given the COUNT live node ids at LIVE: the
    current leader when it is live, else the first ISR member in replica
    order that is live, else TERN_NODE_NONE. Never a node outside the ISR. */
uint32_t tern_partmap_elect(const tern_partmap_record_t *rec, const uint32_t *live, size_t count);

/*  True when NODE may take over REC (a handover): a live ISR member. */
bool tern_partmap_can_lead(const tern_partmap_record_t *rec, uint32_t node, const uint32_t *live,
                           size_t count);

/*  Applies a membership change to CUR: the leader from tern_partmap_elect;
    ISR members that are not live leave the ISR, unless none is live, in
    which case the ISR is kept whole (each member holds every acknowledged
    message, so any of them may lead when it returns). Writes the result to
    *NEXT (epoch unchanged: the write sets it) and returns true when it
    differs from CUR, i.e. when it must be written. */
bool tern_partmap_failover(const tern_partmap_record_t *cur, const uint32_t *live, size_t count,
                           tern_partmap_record_t *next);

//  --- ISR (the leader) ---------------------------------------------------

/*  Records that REP confirmed DURABLE. LEADER_END is the leader's log end
    when the confirmed batch was sent, at AS_OF_MS (for a heartbeat on an
    idle log: its end now, and now): if DURABLE reaches it, the replica was
    caught up at AS_OF_MS. A leader starts every replica's entry at the time
    it became leader, which gives each follower lag_ms to show up. */
void tern_partmap_replica_confirm(tern_partmap_replica_t *rep, uint64_t durable,
                                  uint64_t leader_end, uint64_t as_of_ms);

/*  The ISR REC should have at NOW_MS, given what the leader knows of its
    replicas (COUNT entries at REPS; a replica without an entry is not in
    sync) and HIGH_WATERMARK, the last acknowledged position:
    - the leader stays;
    - an ISR follower stays while NOW_MS - caught_up_ms <= LAG_MS;
    - another replica joins when durable >= HIGH_WATERMARK and it was caught
      up within LAG_MS.
    Writes REC with the new ISR (replica order) to *NEXT and returns true
    when the ISR changed. The leader then writes it by CAS and, until that
    write succeeds, waits on the members of both ISRs before acknowledging
    (pass *NEXT as PENDING to tern_partmap_ack_check). */
bool tern_partmap_isr_next(const tern_partmap_record_t *rec, const tern_partmap_replica_t *reps,
                           size_t count, uint64_t high_watermark, uint64_t now_ms, uint64_t lag_ms,
                           tern_partmap_record_t *next);

/*  Whether a publish at log position POS can be acknowledged, given the
    durable positions at REPS (COUNT entries, the leader's own included):
    ACK when every ISR member has POS durable and the ISR has at least
    min_insync members; REFUSE when the ISR is too small (or REC has no
    leader); WAIT otherwise. PENDING (may be NULL) is an ISR change being
    written: its members must have POS durable too, while min_insync counts
    REC's ISR, the committed one. On WAIT and REFUSE, writes a reason that
    names the numbers and nodes into WHY (LEN bytes; may be NULL), e.g. "1
    in-sync replica (node 2), cluster/min_insync is 2". */
tern_partmap_ack_t tern_partmap_ack_check(const tern_partmap_record_t *rec,
                                          const tern_partmap_record_t *pending,
                                          const tern_partmap_replica_t *reps, size_t count,
                                          uint64_t pos, uint32_t min_insync, char *why, size_t len);

//  --- Fencing (every in-DC frame) -----------------------------------------

/*  Compares the epoch a frame carries with the record's. */
tern_partmap_epoch_t tern_partmap_fence(uint64_t record_epoch, uint64_t frame_epoch);

//  --- Text form (the etcd value) ----------------------------------------

/*  Writes REC as `partition=5 leader=2 epoch=123 ver=130 replicas=2,0,4
    isr=2,4` (leader=none without a leader; epoch and ver left out when 0:
    readers then take the key's mod_revision, as an etcd value cannot know
    the revision of its own write) into BUF (LEN bytes,
    TERN_PARTMAP_TEXT_MAX is enough), NUL-terminated. Returns TERN_OK,
    TERN_EINVAL when REC breaks an invariant (tern_partmap_record_check), or
    TERN_ETOOBIG when LEN is too small. */
tern_err_t tern_partmap_record_encode(const tern_partmap_record_t *rec, char *buf, size_t len);

/*  Parses LEN bytes at TEXT (no terminator needed) into *REC: fields
    `key=value` separated by one space, in any order, partition, leader,
    replicas and isr required, epoch optional (0), unknown keys ignored (a
    newer version may add some), ver optional (0). Numbers are plain
    decimal. Returns TERN_OK,
    or TERN_EMALFORMED with *REC unchanged and *WHY (when WHY is not NULL) a
    static phrase, for bad syntax, a number out of range, a repeated key or
    a record that breaks an invariant. Never asserts on its input. */
tern_err_t tern_partmap_record_decode(const char *text, size_t len, tern_partmap_record_t *rec,
                                      const char **why);

//  --- The map -------------------------------------------------------------

/*  Creates a map of PARTITIONS (>= 1) unassigned records (no replicas, no
    leader, epoch 0). Returns NULL when PARTITIONS is 0. Caller owns the
    result. */
tern_partmap_t *tern_partmap_new(uint32_t partitions);

/*  Safe on NULL; nulls *SELF_P. */
void tern_partmap_destroy(tern_partmap_t **self_p);

/*  Number of partitions. */
uint32_t tern_partmap_partitions(const tern_partmap_t *self);

/*  The record of PARTITION, or NULL when out of range. Borrowed; valid until
    the next tern_partmap_apply or the map's destruction. */
const tern_partmap_record_t *tern_partmap_get(const tern_partmap_t *self, uint32_t partition);

/*  Stores REC (copied) unless it is older than the stored record: watch
    events can arrive late or twice. Returns TERN_OK (stored, or the same
    epoch again), TERN_ERANGE when its partition is out of range, TERN_EINVAL
    when it breaks an invariant, or TERN_ESTATE when its epoch is older. */
tern_err_t tern_partmap_apply(tern_partmap_t *self, const tern_partmap_record_t *rec);

/*  How many partitions NODE leads and holds a replica of. */
void tern_partmap_count(const tern_partmap_t *self, uint32_t node, uint32_t *leader_of,
                        uint32_t *replica_of);

#endif

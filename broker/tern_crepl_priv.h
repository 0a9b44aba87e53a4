/*  tern_crepl_priv.h - the crepl actor's private state, shared by its files.

    Only broker/tern_crepl*.c include this. tern_crepl.c runs the actor (its
    sockets, the inbox, the view, timers, the loop); tern_crepl_lead.c the
    leader side (ship, hold and acknowledge publishes, answer SYNC, ISR);
    tern_crepl_follow.c the follower side (SYNC, apply through the storer,
    CONFIRM). Functions shared between them are prefixed c_; each file's own
    helpers stay static (s_).

    Positions. Per led partition `end` counts from 1: position 1 is the log
    as the node found it when it became leader (a follower confirms it with
    CAUGHT), each record shipped live takes the next one. So a confirmation
    of 0 means "not synced in this epoch", and a duplicate publish, counted
    at the current end, is never acknowledged before the followers synced
    (its original may be in the inherited log only).
*/
#ifndef TERN_CREPL_PRIV_H_INCLUDED
#define TERN_CREPL_PRIV_H_INCLUDED

#include "tern_crepl.h"
#include "tern_partition.h"
#include "tern_partmap.h"
#include "tern_proto.h"
#include "tern_work.h"
#include <stdbool.h>
#include <stdint.h>

#define C_DRAIN_MAX     1024    //  messages per drain
#define C_REC_POOL      1024    //  spent follower records kept for reuse (1.4 MB at most)
#define C_HWM           1000000 //  socket HWMs (a SYNC answer is at most one chunk)
#define C_RING          4096    //  ship times kept per led partition
#define C_ISR_MS        100     //  ISR maintenance interval
#define C_SYNC_WAIT_MS  250     //  a SYNC that heard no answer frame this long is sent again
#define C_SILENCE_MS    3000    //  a live stream silent this long (and 4 heartbeats) syncs again
#define C_SYNC_RETRY_MS 200     //  a SYNC that could not be sent is tried again after
#define C_LINKS_MAX     64      //  leader nodes followed (one DEALER each)
#define C_PEERS_MAX     64      //  follower nodes known on the ROUTER
#define C_RMAX          TERN_PLACEMENT_REPLICAS_MAX
#define C_LINE_MAX      4096          //  one SYNC line: topic and its anchors
#define C_RECORDS_MAX   (1024 * 1024) //  a CREPL_RECORDS payload (and server/max_payload)
#define C_RECORDS_FIRST (64 * 1024)   //  its first allocation
//  A SYNC answer carries at most this many records, or stops at the first
//  record after this many payload bytes; the follower asks again for the
//  rest (tern_crepl_sync.c). TERN_CREPL_CHUNK_RECORDS (environment, read
//  once at start) lowers the record bound: a test knob only.
#define C_CHUNK_RECORDS 8192
#define C_CHUNK_BYTES   (16 * 1024 * 1024)
//  Each consecutive answer to a follower that stopped short doubles its
//  record bound, up to this many times the bound (a partition that takes
//  more records per round than one bound still gets there).
#define C_CHUNK_GROWTH 4
//  The outbox part of a SYNC answer (cross-DC on) carries at most this many
//  entries, or stops after the frame that passes this many payload bytes;
//  the rest comes in the next rounds (tern_crepl_outbox.c, "Chunks").
//  TERN_CREPL_CHUNK_OUTBOX (environment, read once at start) lowers the
//  entry bound: a test knob only. The entry bound grows with the rounds
//  like the record bound.
#define C_OB_CHUNK_ENTRIES 16384
#define C_OB_CHUNK_BYTES   (2 * 1024 * 1024)

//  The in-DC frame fields (protocol/tern_proto.h: `pt`, `ep`).
#define C_PT(f) ((f)->partition)
#define C_EP(f) ((f)->epoch)

//  A follower node as our ROUTER knows it: where to send its frames.
typedef struct {
    uint32_t node;             //  node id
    uint8_t rid[TERN_RID_MAX]; //  routing id of its DEALER
    size_t rid_size;           //  0: unknown
} c_peer_t;

//  A follower whose SYNC answers stopped short (the budget grows with each,
//  tern_crepl_sync.c).
typedef struct {
    uint32_t node;    //  the follower
    uint64_t epoch;   //  our leadership the count is of
    uint32_t rounds;  //  consecutive answers that stopped short
    uint64_t ob_next; //  outbox position the next round resumes at (0: from the start)
} c_short_t;

//  A partition this node leads (leading false: it does not).
typedef struct {
    bool leading;                        //  we lead it in EPOCH
    uint64_t epoch;                      //  that epoch
    uint64_t end;                        //  last position (1 = the inherited log)
    uint64_t acked;                      //  highest position acknowledged (high watermark)
    tern_partmap_record_t rec;           //  the record as the view has it
    tern_partmap_replica_t reps[C_RMAX]; //  every replica; [0] is this node
    bool synced[C_RMAX];                 //  that follower gets the live stream
    size_t nreps;                        //  entries used
    bool pending_set;                    //  an ISR change was requested
    tern_partmap_record_t pending;       //  that change
    uint64_t pending_ms;                 //  when it was requested
    uint64_t *ship_ms;                   //  C_RING: when each position became the end (owned)
    uint64_t wait_gen;                   //  c_evaluate round in which WAIT_POS was found
    uint64_t wait_pos;                   //  lowest position that waits in that round
    uint8_t *out;             //  pending CREPL_RECORDS payload (owned, tern_crepl_ship.c)
    size_t out_len;           //  its bytes used
    size_t out_cap;           //  allocated
    size_t out_hint;          //  the last payload's allocation
    uint64_t out_pos;         //  position of its first entry
    uint64_t out_count;       //  its entries
    bool out_dirty;           //  on self->ship_dirty
    bool gqueued;             //  CREPL_GROUP frames of it queued (sent before its next record)
    c_short_t shorts[C_RMAX]; //  catch-ups in rounds, per follower (tern_crepl_sync.c)
} c_lead_t;

typedef enum {
    C_F_IDLE = 0,    //  must send SYNC
    C_F_SYNCING = 1, //  SYNC sent, waiting for CAUGHT
    C_F_LIVE = 2     //  caught up: the live stream
} c_phase_t;

//  A partition this node follows (following false: it does not).
typedef struct {
    bool following;    //  a replica of it, led by LEADER in EPOCH
    uint32_t leader;   //  the leader's node id
    uint64_t epoch;    //  its epoch
    uint8_t phase;     //  c_phase_t
    uint64_t sync_ms;  //  when SYNC was last sent or tried (0: at once)
    uint64_t seen_ms;  //  last frame of this stream
    uint64_t recv;     //  last live position queued for the storer
    uint64_t durable;  //  last position committed here
    uint64_t stream;   //  generation: bumps at every (re)sync
    uint64_t inflight; //  its records at the storer
    bool to_confirm;   //  durable moved: CONFIRM at the end of this inbox drain
    uint64_t rounds;   //  catch-up rounds that stopped short since the last CAUGHT
    uint64_t ob_next;  //  CAUGHT "more"'s sq, echoed by the next SYNC (0: none)
} c_follow_t;

//  Our DEALER to a leader node's ROUTER.
typedef struct {
    uint32_t node;      //  the leader's node id
    zsock_t *dealer;    //  owned
    char endpoint[256]; //  its cluster endpoint
    uint64_t seen_ms;   //  last frame from it, or when the DEALER was opened
} c_link_t;

//  What one held COMMITTED item waits for in one partition.
typedef struct {
    uint32_t pt;    //  partition
    uint64_t epoch; //  the epoch its records were shipped in
    uint64_t pos;   //  highest position of its records there
    bool decided;   //  acknowledged (err TERN_OK) or failed
    tern_err_t err; //  TERN_OK, TERN_ETIMEOUT, TERN_ENOTLEADER
} c_need_t;

//  A follower's CREPL_SYNC that came while records were shipped ahead of
//  this node's commit: answered at the next SYNCED (tern_crepl_sync.c).
typedef struct c_parked_t {
    uint8_t rid[TERN_RID_MAX]; //  the follower's routing id
    size_t rid_size;           //  its length
    tern_frame_t frame;        //  the SYNC; its payload points at DATA
    uint8_t *data;             //  a copy of its payload (owned, NULL when empty)
    struct c_parked_t *next;   //  FIFO link
} c_parked_t;

//  A CREPL_GROUP frame queued until the end of the drain (tern_crepl_group.c).
typedef struct c_gframe_t c_gframe_t;

typedef struct c_held_t {
    tern_committed_t *item;   //  owned (NULL for a held NOTICE)
    tern_notice_t *notice;    //  owned: a NOTICE for route (tern_crepl_notice.c), or NULL
    tern_repl_batch_t *batch; //  owned: a cross-DC batch (tern_crepl_inbound.c), or NULL
    c_need_t *needs;          //  owned array
    size_t count;             //  used
    size_t cap;               //  allocated
    uint64_t deadline_ms;     //  cluster/ack_timeout from its arrival
    uint64_t sync_gen;        //  a NOTICE: waits until self->synced_gen reaches it
    struct c_held_t *next;    //  FIFO link
} c_held_t;

typedef struct {
    tern_crepl_args_t *args;      //  borrowed
    const tern_config_t *config;  //  borrowed
    tern_cluster_t *cluster;      //  borrowed
    tern_crepl_stats_t stats_s;   //  used when args->stats is NULL
    tern_crepl_stats_t *stats;    //  args->stats or &stats_s
    uint32_t self_id;             //  our node id
    uint32_t partitions;          //  P
    uint64_t version;             //  view version last applied
    zsock_t *router_sock;         //  cluster/listen ROUTER, owned
    void *router;                 //  its raw handle
    zsock_t *inbox_sock;          //  PULL, owned
    zsock_t *storer_sock;         //  PUSH, owned
    zsock_t *conn_sock;           //  PUSH, owned
    tern_store_reader_t *reader;  //  our read handle on the store
    c_lead_t *leads;              //  [P]
    c_follow_t *follows;          //  [P]
    c_peer_t peers[C_PEERS_MAX];  //  follower nodes on the ROUTER
    size_t peer_count;            //  used
    c_link_t links[C_LINKS_MAX];  //  leader nodes we follow
    size_t link_count;            //  used
    c_held_t *held;               //  COMMITTED items waiting (FIFO head)
    c_held_t *held_tail;          //  its tail
    zsock_t *route_sock;          //  PUSH to route's inbox, owned
    uint64_t *ob_sent;            //  [P] sum of the confirmations last sent (NULL: no peers)
    c_gframe_t *gframes;          //  this drain's CREPL_GROUP frames (FIFO head, owned)
    c_gframe_t *gframes_tail;     //  its tail (tern_crepl_group.c)
    c_held_t *inbound;            //  cross-DC batches waiting (FIFO head, tern_crepl_inbound.c)
    c_held_t *inbound_tail;       //  its tail
    zsock_t *repl_sock;           //  PUSH to the repl actor's inbox, owned (NULL until needed)
    c_held_t *notices;            //  NOTICEs waiting, in commit order (FIFO head)
    c_held_t *notices_tail;       //  its tail
    c_need_t *last_needs;         //  what the last COMMITTED waits for (owned array)
    size_t last_count;            //  used (0: none since the last NOTICE)
    size_t last_cap;              //  allocated
    uint64_t eval_gen;            //  c_evaluate rounds
    tern_repl_batch_t *batch;     //  follower batch being filled (NULL until needed)
    size_t batches_out;           //  follower batches at the storer
    tern_repl_rec_t **rec_pool;   //  spent follower records for reuse (owned; c_rec_pool_free)
    size_t rec_pool_count;        //  used
    bool confirms_pending;        //  some follows[].to_confirm set (c_confirm_flush)
    uint64_t hb_ms;               //  heartbeat interval (lease / 4)
    uint64_t chunk_records;       //  records per SYNC answer (C_CHUNK_RECORDS or the test knob)
    uint64_t chunk_outbox;        //  outbox entries per answer (C_OB_CHUNK_ENTRIES or the knob)
    uint64_t next_hb_ms;          //  next heartbeat round
    uint64_t next_isr_ms;         //  next ISR round
    bool deferred;                //  the storer flushes after its results (TERN_WORK_SYNCED)
    uint64_t synced_gen;          //  SYNCEDs received
    bool unsynced;                //  deferred: a COMMITTED came after the last SYNCED
    c_parked_t *parked;           //  SYNCs waiting for the next SYNCED (FIFO head, owned)
    c_parked_t *parked_tail;      //  its tail
    uint32_t *ship_dirty;         //  [P] led partitions with a pending payload (owned)
    size_t ship_dirty_count;      //  used
    uint8_t buf[TERN_HEADER_MAX]; //  encode buffer
} c_repl_t;

//  tern_crepl.c
//  Encodes FRAME and sends it (with FRAME->payload's bytes when the command
//  has a payload) to RID on the ROUTER, or on DEALER SOCK when RID is NULL.
//  Returns 0 or -1 (errno).
int c_send(c_repl_t *self, void *sock, const uint8_t *rid, size_t rid_size,
           const tern_frame_t *frame);
//  Sends the LEN header bytes already encoded at HDR and a reference
//  to PAYLOAD (zero copy) to RID on the ROUTER. Returns 0 or -1 (errno).
int c_send_encoded(c_repl_t *self, const uint8_t *rid, size_t rid_size, const uint8_t *hdr,
                   size_t len, zmq_msg_t *payload);
//  Initialises FRAME as CMD of partition PT in EPOCH at position POS.
void c_frame_init(tern_frame_t *frame, tern_cmd_t cmd, uint32_t pt, uint64_t epoch, uint64_t pos);
//  Counts a frame refused as older than the view's epoch.
void c_count_stale(c_repl_t *self);
//  Reads the view again if it changed: leaderships and followings.
void c_refresh(c_repl_t *self);
c_peer_t *c_peer(c_repl_t *self, uint32_t node, bool create);
uint32_t c_partition_of(c_repl_t *self, const char *topic);

//  tern_crepl_lead.c
void c_lead_start(c_repl_t *self, uint32_t pt, const tern_partmap_record_t *rec);
void c_lead_stop(c_repl_t *self, uint32_t pt);
void c_lead_update(c_repl_t *self, uint32_t pt, const tern_partmap_record_t *rec);
//  A COMMITTED item from the storer (takes ownership).
void c_committed(c_repl_t *self, tern_committed_t *item);
//  Ships the record SRC (stored at RES, payload BODY) as CREPL_RECORD at POS
//  to every synced follower of PT: added to its CREPL_RECORDS payload
//  (tern_crepl_ship.c), or sent alone when too large for one; a follower we
//  cannot send to drops out of the live stream (it sees the gap at the next
//  heartbeat and syncs again).
void c_ship_record(c_repl_t *self, uint32_t pt, c_lead_t *lead, const tern_frame_t *src,
                   const tern_append_result_t *res, zmq_msg_t *body, uint64_t pos);

//  LEAD's next stream position (its new end), shipped at NOW: durable here
//  at once unless the storer flushes after handing over (self->deferred).
//  Inline: once per shipped record.
static inline uint64_t c_next_pos(c_repl_t *self, c_lead_t *lead, uint64_t now) {
    uint64_t pos = ++lead->end;
    lead->ship_ms[pos % C_RING] = now;
    if (!self->deferred) {
        lead->reps[0].durable = pos; //  the storer committed it here
    }
    return pos;
}
//  Ships a committed record (FRAME stored at RES, payload BODY) of NEED's
//  partition at its next position (c_ship_record) and raises NEED's
//  position to it; a duplicate ships nothing and waits for the end.
void c_ship_next(c_repl_t *self, c_need_t *need, const tern_frame_t *frame,
                 const tern_append_result_t *res, zmq_msg_t *body, uint64_t now);
//  Adds HELD's needs to what the next NOTICE waits for (the same commit's
//  COMMITTED and cross-DC batch: tern_crepl_inbound.c), per partition the
//  highest position.
void c_last_needs_add(c_repl_t *self, const c_held_t *held);
//  HELD's need for PT, added (undecided, or failed when we do not lead PT)
//  when missing.
c_need_t *c_held_need(c_repl_t *self, c_held_t *held, uint32_t pt);

//  Appends HELD to the FIFO at *HEAD / *TAIL (held items, cross-DC batches,
//  NOTICEs).
void c_held_push(c_held_t **head, c_held_t **tail, c_held_t *held);

//  Decides HELD's undecided needs where it can (c_decide, at NOW); true
//  once every one is decided.
bool c_held_decide(c_repl_t *self, c_held_t *held, bool lease_ok, uint64_t now);

//  tern_crepl_inbound.c: records received from another DC (the repl actor's
//  batches, committed here): shipped like publishes, handed back to repl
//  once the ISR has them.
void c_inbound(c_repl_t *self, tern_repl_batch_t *batch);
void c_inbound_evaluate(c_repl_t *self);

//  A CREPL_TOPIC frame: OP (tern_crepl_topic_op_t) on TOPIC at POS, LIMITS
//  (NULL: none) as its payload written into TEXT (CAP bytes, >= 64).
void c_topic_frame(tern_frame_t *frame, uint32_t pt, uint64_t epoch, uint64_t pos,
                   const char *topic, uint32_t op, const tern_topic_limits_t *limits, char *text,
                   size_t cap);
//  Acknowledges or fails held items; FORCE_TIME: check deadlines too.
void c_evaluate(c_repl_t *self);
//  Decides NEED if it can be (the ack rule, lost leadership, DEADLINE).
void c_decide(c_repl_t *self, c_need_t *need, bool lease_ok, uint64_t now, uint64_t deadline);
void c_lead_timers(c_repl_t *self, uint64_t now);
//  Frames on the ROUTER (SYNC, CONFIRM).
void c_handle_router(void *actor, void *unused);
//  The partition a frame from a follower names, if we lead it in the
//  frame's epoch, else NULL; counts stale frames.
c_lead_t *c_fence_lead(c_repl_t *self, const tern_frame_t *frame);
//  Index of NODE's entry in lead->reps (a follower: >= 1), or -1.
int c_rep_index(c_lead_t *lead, uint32_t node);

//  The storer flushed its last commit to disk (TERN_WORK_SYNCED): every
//  position shipped so far is durable here.
void c_synced(c_repl_t *self);

//  The cross-DC outbox (tern_crepl_outbox.c): a leader's confirmations to
//  its synced followers when they moved (a heartbeat round), and the outbox
//  part of a SYNC answer (in the answer's read snapshot; 0 or -1), one
//  chunk of it per round (ROUND: where it starts, its bound, where the next
//  round resumes).
typedef struct {
    uint64_t from;   //  0: the whole outbox (RESET from our first entry); else resume here
    uint64_t budget; //  entries this round may carry (at least one goes)
    uint64_t next;   //  set: where the next round resumes, 0 when every entry went
} c_ob_round_t;
void c_outbox_confirms(c_repl_t *self, uint32_t pt, c_lead_t *lead);
int c_outbox_snapshot(c_repl_t *self, const uint8_t *rid, size_t rid_size, uint32_t pt,
                      uint64_t epoch, uint64_t req_id, c_ob_round_t *round);

//  tern_crepl_ship.c
//  Adds the header of LEN bytes encoded in self->buf (a CREPL_RECORD or
//  CREPL_TOPIC at POS) and PAYLOAD to PT's pending CREPL_RECORDS payload
//  (copied). False when it is too large for one: send it alone.
bool c_ship_add(c_repl_t *self, uint32_t pt, c_lead_t *lead, uint64_t pos, size_t hdr_len,
                const uint8_t *payload, size_t payload_size);
//  Sends FRAME (pt, ep: of LEAD) to LEAD's synced followers, its header
//  encoded once in a buffer of its own (never self->buf) and PAYLOAD of
//  SIZE bytes (malloc'd; ownership taken: ZeroMQ frees it once sent) by
//  reference; a follower it cannot reach leaves the live stream.
void c_ship_frame(c_repl_t *self, c_lead_t *lead, const tern_frame_t *frame, uint8_t *payload,
                  size_t size);
//  Sends every pending payload to the synced followers (end of each drain).
void c_ship_flush(c_repl_t *self);
//  Frees LEAD's pending payload unsent (its leadership ended).
void c_ship_drop(c_lead_t *lead);

//  tern_crepl_notice.c
//  A NOTICE from the storer (takes ownership): held behind the earlier ones
//  until the ISR has its messages.
void c_notice(c_repl_t *self, tern_notice_t *notice);
//  PT's leadership started: an inherited NOTICE of its topics' last_seqs,
//  released once the followers synced (position 1).
void c_notice_inherit(c_repl_t *self, uint32_t pt);
//  Forwards the decided NOTICEs at the head of the FIFO to route.
void c_notices_evaluate(c_repl_t *self);
//  At SYNCED (deferred flush): ships the group ops of the NOTICEs whose
//  commit is now on disk (c_group_ship); c_notice does at once otherwise.
void c_notices_synced(c_repl_t *self);
//  Frees every held NOTICE (shutdown: route stops after us, nobody sends).
void c_notices_drop(c_repl_t *self);

//  tern_crepl_sync.c
//  Reads a SYNC answer's bound: BOUND, or the test knob KNOB (environment)
//  when it lowers it.
uint64_t c_chunk_bound(const char *knob, uint64_t bound);
//  CREPL_SYNC from the follower at RID: truncations, the catch-up (one
//  chunk of it), CAUGHT (position 0 when more is to come).
void c_answer_sync(c_repl_t *self, const uint8_t *rid, size_t rid_size, const tern_frame_t *frame);
//  At SYNCED: answers the SYNCs parked since the last one. SHUTDOWN: frees
//  them unanswered.
void c_parked_answer(c_repl_t *self, bool shutdown);
//  Frees every held item unanswered (shutdown: conn, stopped first, is
//  gone; its clients resend to the partition's next leader).
void c_held_drop(c_repl_t *self);

//  tern_crepl_group.c
//  Queues NOTICE's group ops (gops) of the partitions we lead as
//  CREPL_GROUP frames, then frees them from NOTICE. A frame that opens a
//  group takes a position, and HELD (NOTICE's entry) waits for it.
void c_group_ship(c_repl_t *self, tern_notice_t *notice, c_held_t *held);
//  Sends the queued CREPL_GROUP frames to the synced followers: at the end
//  of each drain of the inbox, after the drain's records went out.
void c_group_flush(c_repl_t *self);
//  Sends the queued CREPL_GROUP frames of PT only (c_ship_add, before a
//  record of a later commit: its pending records went out just before).
void c_group_flush_pt(c_repl_t *self, uint32_t pt);
//  In a SYNC answer (self->reader open on the snapshot of the catch-up):
//  the group state of every topic of PT as CREPL_GSTATE frames to RID.
//  Returns 0, or -1 if a send failed.
int c_group_snapshot(c_repl_t *self, const uint8_t *rid, size_t rid_size, uint32_t pt,
                     uint64_t epoch, uint64_t req_id);
//  A follower's CREPL_GROUP / CREPL_GSTATE record REC of PT committed with
//  ERR: counts and logs what was skipped. True when the stream must sync
//  again (it was not applied).
bool c_group_done(c_repl_t *self, uint32_t pt, const tern_repl_rec_t *rec, tern_err_t err);

//  tern_crepl_follow.c
void c_follow_start(c_repl_t *self, uint32_t pt, const tern_partmap_record_t *rec);
void c_follow_stop(c_repl_t *self, uint32_t pt);
void c_follow_timers(c_repl_t *self, uint64_t now);
//  Frames on a DEALER (TRUNCATE, RECORD, CAUGHT, HEARTBEAT).
void c_handle_dealer(c_repl_t *self, c_link_t *link);
//  The storer committed BATCH (takes ownership): the positions it made
//  durable are confirmed to the leaders at the next c_confirm_flush.
void c_batch_done(c_repl_t *self, tern_repl_batch_t *batch);
//  Sends one CONFIRM per partition whose durable position moved since the
//  last call (end of each inbox drain and timer turn).
void c_confirm_flush(c_repl_t *self);
void c_flush_batch(c_repl_t *self);
/*  Frees the spent follower records kept for reuse (at the actor's end). */
void c_rec_pool_free(c_repl_t *self);
void c_links_close(c_repl_t *self);

#endif

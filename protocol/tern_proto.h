/*  tern_proto.h - the wire codec: ZeroMQ frames <-> tern_frame_t.

    Every tern message on the wire is a ZeroMQ multipart message: frame 1 is a
    msgpack header (magic, version, command, request id, fields), frame 2, when
    the command carries one, is the payload, passed through untouched. This
    module turns header bytes into a validated tern_frame_t and back. It has no
    sockets, no threads and no allocations on the hot path; msgpack-c is seen
    only inside protocol/. docs/protocol.md is the specification.

    Ownership: a decoded frame copies every short string into its own fixed
    arrays (NUL-terminated), and BORROWS the metadata map, the PUBACK entries
    and the payload from the buffers given to tern_frame_decode: those pointers
    are valid until the caller frees or reuses those buffers.
*/
#ifndef TERN_PROTO_H_INCLUDED
#define TERN_PROTO_H_INCLUDED

#include "tern_err.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TERN_PROTO_MAGIC       0x544E /* "TN" */
#define TERN_PROTO_VERSION     1      /* the version this build speaks */
#define TERN_PROTO_MIN_VERSION 1      /* the oldest version it accepts */

/*  Limits. Decoding enforces these; see docs/protocol.md. */
#define TERN_TOPIC_MAX        200     /* topic name or pattern, bytes */
#define TERN_NAME_MAX         64      /* group, producer, dc, client, op names */
#define TERN_KEY_MAX          128     /* ordering key */
#define TERN_TRACE_MAX        55      /* W3C traceparent "00-<32>-<16>-<2>" */
#define TERN_REASON_MAX       256     /* ERROR / DLQ reason text */
#define TERN_META_MAX_ENTRIES 32      /* metadata map entries */
#define TERN_META_KEY_MAX     64      /* metadata key bytes */
#define TERN_META_VALUE_MAX   1024    /* metadata value bytes */
#define TERN_HEADER_MAX       65536   /* encoded header frame, bytes */
#define TERN_PAYLOAD_MAX      1048576 /* default max payload, bytes (1 MiB) */
#define TERN_PUBACK_MAX       2048 /* entries in one PUBACK frame (29 B each; fits TERN_HEADER_MAX) */
#define TERN_PRIORITY_MAX     9    /* priorities are 0..9 */
#define TERN_PRIORITY_DEFAULT 4

typedef enum {
    /*  Client protocol */
    TERN_CMD_HELLO = 1,       /* c->s: version, name, heartbeat_ms */
    TERN_CMD_WELCOME = 2,     /* s->c: version, node_id, dc, heartbeat_ms, max_payload */
    TERN_CMD_PUBLISH = 3,     /* c->s: message fields + payload frame */
    TERN_CMD_PUBACK = 4,      /* s->c: acks[] (one entry per PUBLISH, batched) */
    TERN_CMD_SUBSCRIBE = 5,   /* c->s: topic (pattern), group?, start, start_value, credit */
    TERN_CMD_UNSUBSCRIBE = 6, /* c->s: sub_id */
    TERN_CMD_DELIVER = 7,     /* s->c: sub_id, tag, message fields + payload frame */
    TERN_CMD_ACK = 8,         /* c->s: sub_id, tag, cumulative */
    TERN_CMD_NACK = 9,        /* c->s: sub_id, tag, delay_ms? */
    TERN_CMD_TERM = 10,       /* c->s: sub_id, tag, reason? */
    TERN_CMD_CREDIT = 11,     /* c->s: sub_id, credit (added) */
    TERN_CMD_HEARTBEAT = 12,  /* both ways, no fields */
    TERN_CMD_ERROR = 13,      /* s->c: code, reason; req_id names the failed request */
    TERN_CMD_BYE = 14,        /* both ways: the session ends */
    TERN_CMD_OK = 15,         /* s->c: generic success reply; sub_id for SUBSCRIBE */
    TERN_CMD_ADMIN = 16,      /* c->s: name = operation, meta = arguments */
    TERN_CMD_REPLY = 17,      /* s->c: admin result; payload = one JSON document */
    /*  Replication protocol (node <-> node) */
    TERN_CMD_REPL_HELLO = 32,     /* dc, node_id, version, position = last applied from you,
                                     optional nm = the sender's store identity */
    TERN_CMD_REPL_WELCOME = 33,   /* dc, node_id, version, position */
    TERN_CMD_REPL_RECORD = 34,    /* position, message fields (msg_id, origin...) + payload */
    TERN_CMD_REPL_ACKSTATE = 35,  /* position, topic, group, msg_id, op (code), reason? */
    TERN_CMD_REPL_CONFIRM = 36,   /* position: everything up to it is durably applied */
    TERN_CMD_REPL_HEARTBEAT = 37, /* position = sender's last outbox position */
    /*  In-DC replication (node <-> node inside a clustered DC; every frame
        carries partition and epoch, for fencing) */
    TERN_CMD_CREPL_SYNC = 48,      /* f->l: node_id; payload "LAST_SEQ TOPIC\n" lines */
    TERN_CMD_CREPL_TRUNCATE = 49,  /* l->f: topic, seq = keep up to it */
    TERN_CMD_CREPL_RECORD = 50,    /* l->f: position (0 = catch-up), seq, message + payload */
    TERN_CMD_CREPL_CAUGHT = 51,    /* l->f: position = the live stream starts after it;
                                      0: the answer stopped short, SYNC again */
    TERN_CMD_CREPL_CONFIRM = 52,   /* f->l: node_id, position durable on the follower */
    TERN_CMD_CREPL_HEARTBEAT = 53, /* l->f: position = the leader's end */
    TERN_CMD_CREPL_TOPIC = 54,     /* l->f: position, topic, code = tern_crepl_topic_op_t;
                                      payload "MAX_AGE_MS MAX_MSGS MAX_BYTES" */
    TERN_CMD_CREPL_GROUP = 55,     /* l->f: topic; payload = msgpack list of group ops
                                      (tern_gops_encode); optional position: a frame that
                                      opens a new group consumes one, others none */
    TERN_CMD_CREPL_GSTATE = 56,    /* l->f (SYNC answer): topic, code = tern_crepl_gstate_t;
                                      payload = msgpack (tern_gstate_encode / _names) */
    TERN_CMD_CREPL_RECORDS = 57,   /* l->f: position of the first entry; payload = entries
                                      (tern_records_put), each an encoded CREPL_RECORD or
                                      CREPL_TOPIC of the same pt and ep at consecutive positions */
    TERN_CMD_CREPL_OUTBOX = 58,    /* l->f: the partition's cross-DC outbox state, code =
                                      tern_crepl_outbox_t; consumes no position */
    TERN_CMD_MAX_
} tern_cmd_t;

/*  CREPL_OUTBOX's code (docs/protocol.md section 14). */
typedef enum {
    TERN_CREPL_OUTBOX_CONFIRMS = 1, //  payload "POS PEER\n" lines: what each peer DC confirmed
    TERN_CREPL_OUTBOX_RESET = 2,    //  SYNC answer: drop entries >= sq, last = pos; payload =
                                    //  the leader's entries from sq, "POS KIND SEQ MSG_ID OP
                                    //  AT_NS gGROUP tTOPIC\n" lines
    TERN_CREPL_OUTBOX_MORE = 3      //  more entry lines of the same answer
} tern_crepl_outbox_t;

/*  CREPL_TOPIC's code: the topic admin op a follower applies. */
typedef enum {
    TERN_CREPL_TOPIC_PUT = 1,    //  create if missing, set the payload's limits (create, edit)
    TERN_CREPL_TOPIC_DELETE = 2, //  delete the topic (missing: nothing to do)
    TERN_CREPL_TOPIC_PURGE = 3   //  remove its messages, seqs continue (missing: nothing)
} tern_crepl_topic_op_t;

/*  CREPL_GSTATE's code: what the snapshot frame carries. */
typedef enum {
    TERN_CREPL_GSTATE_NAMES = 1, //  every group name of the topic: the follower drops the others
    TERN_CREPL_GSTATE_GROUP = 2, //  one group's state: REPLACES the follower's
    TERN_CREPL_GSTATE_MORE = 3,  //  more pending / DLQ entries of the group of the last GROUP
    TERN_CREPL_GSTATE_NAMES_PART = 4 //  some group names, in order, more NAMES follow: the
                                     //  follower drops the others after `g` (if set) up to the
                                     //  last name listed; a final NAMES after `g` to the end
} tern_crepl_gstate_t;

/*  Group state changes an in-DC leader ships to its followers (CREPL_GROUP),
    by group name; the numbers are the broker's tern_op_type_t. */
typedef enum {
    TERN_GOP_OPEN = 1,    //  create if missing at (aux = start, value = start_value)
    TERN_GOP_DELIVER = 2, //  seq delivered (aux = lane, count, value = due_ms, reason = consumer)
    TERN_GOP_ACK = 3,     //  seq acked (aux = cause)
    TERN_GOP_NACK = 4,    //  seq due again at value (aux = cause)
    TERN_GOP_DEAD = 5,    //  seq to the DLQ (count, reason)
    TERN_GOP_REPLAY = 6,  //  DLQ entry seq (0 = all) back to pending, due at value
    TERN_GOP_SEEK = 7,    //  cursors to (aux = start, value), pending dropped
    TERN_GOP_RESET = 8,   //  state deleted, opened at (aux = start, value)
    TERN_GOP_DROP = 9,    //  the group and all its state deleted
    TERN_GOP_PURGE = 10   //  the DLQ emptied
} tern_gop_type_t;

/*  ACK / DEAD aux: a peer DC's ack-state change the leader applied; the
    follower applies it the same way by seq (lane cursor moved past it when
    not delivered there, a DLQ entry acked), not as a plain ack / dead. */
#define TERN_GOP_AUX_PEER 3

typedef struct {
    uint8_t type;                     //  tern_gop_type_t
    uint8_t aux;                      //  lane, cause or start mode (see the types)
    uint32_t count;                   //  delivery count (DELIVER, DEAD)
    uint64_t seq;                     //  the message (REPLAY: 0 = all)
    uint64_t value;                   //  due_ms or start_value
    char group[TERN_NAME_MAX + 1];    //  the group
    char reason[TERN_REASON_MAX + 1]; //  DEAD: why; DELIVER: the consumer
    uint64_t ob;                      //  ACK / DEAD: its ack-state outbox position (0 = none)
} tern_gop_t;

/*  A pending or DLQ entry of a group in a CREPL_GSTATE snapshot. */
typedef struct {
    uint64_t seq;                     //  the message
    uint64_t due_ms;                  //  pending: redelivery time; DLQ: time it died
    uint32_t count;                   //  delivery count
    uint8_t priority;                 //  its lane
    char reason[TERN_REASON_MAX + 1]; //  DLQ: why
} tern_gentry_t;

/*  One group's state in a CREPL_GSTATE snapshot (GROUP or MORE). */
typedef struct {
    char group[TERN_NAME_MAX + 1];             //  the group
    uint64_t lane_next[TERN_PRIORITY_MAX + 1]; //  lane cursors
    uint64_t delivered;                        //  counters, as the leader has them
    uint64_t redelivered;                      //  ...
    uint64_t acked;                            //  ...
    uint64_t nacked;                           //  ...
    uint64_t created_ns;                       //  creation time
    tern_gentry_t *pending;                    //  pending entries (owned when decoded)
    size_t npending;                           //  used
    tern_gentry_t *dead;                       //  DLQ entries (owned when decoded)
    size_t ndead;                              //  used
} tern_gstate_t;

/*  Where a new group starts reading (SUBSCRIBE.start). */
typedef enum {
    TERN_START_FIRST = 0, /* the first message still stored (default) */
    TERN_START_NEW = 1,   /* only messages published after the subscribe */
    TERN_START_SEQ = 2,   /* start_value = first seq to deliver */
    TERN_START_TIME = 3   /* start_value = unix time in ns; first message at or after */
} tern_start_t;

/*  Named TTL classes (PUBLISH.ttl_class); durations are broker config. */
typedef enum {
    TERN_TTL_NONE = 0,
    TERN_TTL_INSTANT = 1,  /* default 30 s */
    TERN_TTL_BUSINESS = 2, /* default 2 h */
    TERN_TTL_SYNC = 3      /* default 7 d */
} tern_ttl_class_t;

/*  Bits of tern_frame_t.fields: which optional fields were present. */
#define TERN_F_TOPIC      (1u << 0)
#define TERN_F_GROUP      (1u << 1)
#define TERN_F_PRODUCER   (1u << 2)
#define TERN_F_KEY        (1u << 3)
#define TERN_F_TRACE      (1u << 4)
#define TERN_F_META       (1u << 5)
#define TERN_F_TTL        (1u << 6)
#define TERN_F_PRIORITY   (1u << 7)
#define TERN_F_DELAY      (1u << 8)
#define TERN_F_REASON     (1u << 9)
#define TERN_F_START      (1u << 10)
#define TERN_F_CUMULATIVE (1u << 11)
#define TERN_F_EXPIRE     (1u << 12)
#define TERN_F_ORIGIN     (1u << 13)
#define TERN_F_NAME       (1u << 14)
#define TERN_F_PAYLOAD    (1u << 15)
#define TERN_F_RESEND     (1u << 16)

/*  One PUBACK entry: the result of one PUBLISH. */
typedef struct {
    uint64_t req_id; //  the PUBLISH's request id
    uint64_t msg_id; //  the stored message's id (the original one if duplicate)
    uint64_t seq;    //  its sequence in the topic on this node
    uint32_t code;   //  TERN_OK, or why it was not stored (e.g. TERN_EFULL)
    bool duplicate;  //  true when (producer, producer_seq) was seen before
} tern_puback_t;

/*  A decoded (or to-be-encoded) frame. One flat struct for every command; each
    command uses the fields its table in docs/protocol.md lists. */
typedef struct {
    tern_cmd_t cmd;   //  the command
    uint16_t version; //  header protocol version (set by decode)
    uint64_t req_id;  //  request id chosen by the sender; 0 if none
    uint32_t fields;  //  TERN_F_* bits of optional fields present

    //  Session
    uint32_t proto_version;       //  HELLO/WELCOME/REPL_*: protocol version offered/chosen
    uint32_t node_id;             //  WELCOME/REPL_*: node id (0..1023)
    uint32_t heartbeat_ms;        //  HELLO/WELCOME: heartbeat interval
    uint32_t max_payload;         //  WELCOME: the node's payload limit
    char name[TERN_NAME_MAX + 1]; //  HELLO client name, ADMIN op name, REPL_HELLO store identity
    char dc[TERN_NAME_MAX + 1];   //  WELCOME/REPL_*: datacenter name

    //  Message
    char topic[TERN_TOPIC_MAX + 1];    //  topic (PUBLISH, DELIVER) or pattern (SUBSCRIBE)
    char group[TERN_NAME_MAX + 1];     //  SUBSCRIBE / REPL_ACKSTATE group; "" = ephemeral
    char producer[TERN_NAME_MAX + 1];  //  producer id; "" = no dedup
    char key[TERN_KEY_MAX + 1];        //  ordering key, optional
    char trace_id[TERN_TRACE_MAX + 1]; //  W3C traceparent, optional on PUBLISH
    char origin[TERN_NAME_MAX + 1];    //  DELIVER/REPL_RECORD: origin DC
    uint64_t producer_seq;             //  dedup sequence of the producer
    uint64_t msg_id;                   //  snowflake id (DELIVER, REPL_*)
    uint64_t seq;                      //  per-topic sequence on this node (DELIVER)
    uint64_t timestamp_ns;             //  broker receive time (DELIVER, REPL_RECORD)
    uint64_t expire_at_ns;             //  absolute expiry, 0 = never (DELIVER, REPL_RECORD)
    uint32_t ttl_ms;                   //  PUBLISH: explicit ttl (TERN_F_TTL)
    uint8_t ttl_class;                 //  PUBLISH: tern_ttl_class_t
    uint8_t priority;                  //  0..9, default 4
    bool resend; //  rs (TERN_F_RESEND): PUBLISH: the oldest unanswered publish of its session
                 //  to its partition, sent alone; HELLO: the session marks those (sticky
                 //  refusals in a cluster). docs/protocol.md, "Producer order"
    uint32_t delivery_count; //  DELIVER: 1 on first delivery

    //  Subscription and acks
    uint64_t sub_id;      //  subscription id (OK reply to SUBSCRIBE, DELIVER, ACK...)
    uint64_t tag;         //  DELIVER: per-subscription delivery tag; ACK/NACK/TERM
    uint32_t credit;      //  SUBSCRIBE initial credit / CREDIT added
    uint8_t start;        //  SUBSCRIBE: tern_start_t
    uint64_t start_value; //  SUBSCRIBE: seq or time for START_SEQ / START_TIME
    bool cumulative;      //  ACK: all tags <= tag of this subscription
    uint32_t delay_ms;    //  NACK: redeliver after this delay (TERN_F_DELAY)

    //  Errors and replication
    uint32_t code;                    //  ERROR code (tern_err_t); REPL_ACKSTATE op
    char reason[TERN_REASON_MAX + 1]; //  ERROR / TERM / REPL_ACKSTATE reason
    uint64_t position;                //  REPL_*: outbox position; CREPL_*: stream position
    uint32_t partition;               //  CREPL_*: partition (pt)
    uint64_t epoch;                   //  CREPL_*: the partition's leader epoch (ep)
    uint64_t outbox_pos;              //  CREPL_RECORD: its outbox position in pt (ob; 0 = none)

    //  Borrowed regions (see the ownership note at the top)
    const uint8_t *meta;    //  metadata: an encoded msgpack map of str->str
    size_t meta_size;       //  its size in bytes
    uint32_t meta_count;    //  its number of entries
    const uint8_t *acks;    //  PUBACK entries, encoded; use tern_frame_puback()
    uint32_t ack_count;     //  number of PUBACK entries
    const uint8_t *payload; //  frame 2, or NULL
    size_t payload_size;    //  its size
} tern_frame_t;

/*  Limits a decoder enforces beyond the fixed ones above. */
typedef struct {
    size_t max_payload; //  payload bytes (default TERN_PAYLOAD_MAX)
} tern_limits_t;

/*  Resets FRAME to an empty frame of command CMD (all fields zero, priority
    default). */
void tern_frame_init(tern_frame_t *frame, tern_cmd_t cmd);

/*  Decodes header frame HDR (HDR_SIZE bytes) and optional payload frame
    PAYLOAD (NULL if the ZeroMQ message had one frame) into OUT, validating
    every field against the limits (LIMITS may be NULL for the defaults).
    Returns TERN_OK or the specific TERN_E* code; on error OUT->cmd and
    OUT->req_id are still set when they could be read, so the caller can
    answer with an ERROR naming the request. Never reads outside the buffers.
    OUT borrows from HDR and PAYLOAD (see the top of this file). */
tern_err_t tern_frame_decode(tern_frame_t *out, const uint8_t *hdr, size_t hdr_size,
                             const uint8_t *payload, size_t payload_size,
                             const tern_limits_t *limits);

/*  Encodes the header of FRAME into BUF (CAP bytes; TERN_HEADER_MAX always
    suffices) and sets *LEN. The payload is not copied: send FRAME->payload as
    the second ZeroMQ frame when the command carries one. Validates like the
    decoder. Returns TERN_OK, TERN_ETOOBIG if BUF is too small, or the
    validation error. */
tern_err_t tern_frame_encode(const tern_frame_t *frame, uint8_t *buf, size_t cap, size_t *len);

/*  Encodes PUBACK entries ACKS[0..COUNT) as the header of a PUBACK frame with
    request id 0 into BUF. COUNT <= TERN_PUBACK_MAX. */
tern_err_t tern_frame_encode_puback(const tern_puback_t *acks, uint32_t count, uint8_t *buf,
                                    size_t cap, size_t *len);

/*  Reads PUBACK entry INDEX (< FRAME->ack_count) of a decoded PUBACK frame. */
tern_err_t tern_frame_puback(const tern_frame_t *frame, uint32_t index, tern_puback_t *out);

/*  CREPL_RECORDS' payload: entries [u32 big-endian header size][header]
    [u32 big-endian payload size][payload], one per inner frame, so that a
    leader ships a commit's records to a follower in one ZeroMQ message (one
    send, one wake-up and one allocation on each side instead of one per
    record). TERN_RECORDS_ENTRY_OVERHEAD bytes per entry besides its two parts. */
#define TERN_RECORDS_ENTRY_OVERHEAD 8

/*  Appends one entry (HDR, an encoded header, and PAYLOAD, may be NULL when
    PAYLOAD_SIZE is 0) at OUT, which has room for HDR_SIZE + PAYLOAD_SIZE +
    TERN_RECORDS_ENTRY_OVERHEAD bytes. Returns the bytes written. */
size_t tern_records_put(uint8_t *out, const uint8_t *hdr, size_t hdr_size, const uint8_t *payload,
                        size_t payload_size);

/*  Decodes the entry at *POS of a CREPL_RECORDS payload PAYLOAD[0..SIZE)
    into OUT (as tern_frame_decode, with LIMITS; OUT borrows from PAYLOAD) and
    advances *POS past it. Returns TERN_OK; TERN_ENOTFOUND when *POS is at the
    end; TERN_EMALFORMED when an entry's sizes run past the end; TERN_ECOMMAND
    when the entry is not a CREPL_RECORD or CREPL_TOPIC; or the decoder's
    error. After an error *POS is unchanged: stop reading this payload. */
tern_err_t tern_records_next(const uint8_t *payload, size_t size, size_t *pos,
                             const tern_limits_t *limits, tern_frame_t *out);

/*  True if the command carries a payload frame (PUBLISH, DELIVER, REPLY,
    REPL_RECORD, CREPL_SYNC, CREPL_RECORD). */
bool tern_cmd_has_payload(tern_cmd_t cmd);

/*  Static name of CMD, e.g. "PUBLISH" (never NULL). */
const char *tern_cmd_name(tern_cmd_t cmd);

/*  Grammar checks, exposed for the broker and the client. */
bool tern_topic_valid(const char *topic, size_t len);     //  [A-Za-z0-9_-]+ tokens joined by '.'
bool tern_pattern_valid(const char *pattern, size_t len); //  topic tokens, '*' tokens, final '>'
bool tern_pattern_match(const char *pattern, const char *topic);
bool tern_name_valid(const char *name, size_t len);   //  [A-Za-z0-9_.:-]{1,64}
bool tern_trace_valid(const char *trace, size_t len); //  W3C traceparent version 00

/*  Reason texts for ERROR frames and tern_last_reason(), shared by the broker
    and libtern so both name the problem and the limit in the same words
    (docs/protocol.md, "Error reasons"). Each writes a NUL-terminated text of
    at most CAP bytes into OUT and returns OUT. */
const char *tern_reason_topic(char *out, size_t cap, const char *topic, bool pattern);
const char *tern_reason_name(char *out, size_t cap, const char *what, const char *name);
const char *tern_reason_payload(char *out, size_t cap, uint64_t size, uint64_t max_payload);

/*  Metadata maps (msgpack map of str -> str, kept encoded). */
typedef struct {
    const char *key; //  borrowed, not NUL-terminated
    size_t key_len;
    const char *value; //  borrowed, not NUL-terminated
    size_t value_len;
} tern_kv_t;

/*  Encodes COUNT pairs into BUF as a metadata map; validates limits. */
tern_err_t tern_meta_encode(const tern_kv_t *kv, size_t count, uint8_t *buf, size_t cap,
                            size_t *len);

/*  Iterates an encoded metadata map: *POS starts at 0; returns true and fills
    *OUT (borrowing from META) while entries remain. The map must have been
    validated (by tern_frame_decode or tern_meta_validate). */
bool tern_meta_next(const uint8_t *meta, size_t meta_size, size_t *pos, tern_kv_t *out);

/*  Validates an encoded metadata map and returns its entry count in *COUNT. */
tern_err_t tern_meta_validate(const uint8_t *meta, size_t meta_size, uint32_t *count);

/*  Group-state payloads (CREPL_GROUP, CREPL_GSTATE). Encoders write at most
    CAP bytes into BUF and set *LEN: TERN_ETOOBIG when it does not fit.
    Decoders never trust the bytes: TERN_EMALFORMED for anything malformed.
    tern_gops_decode calls FN for each op (borrowed for the call), once
    the whole list decoded (a malformed one reaches FN not at all); it
    allocates nothing. tern_gstate_decode fills *OUT (free its arrays with
    tern_gstate_clear). tern_gnames_decode calls FN for each name (borrowed
    for the call), the same way. */
tern_err_t tern_gops_encode(const tern_gop_t *ops, size_t count, uint8_t *buf, size_t cap,
                            size_t *len);
tern_err_t tern_gops_decode(const uint8_t *data, size_t size,
                            void (*fn)(const tern_gop_t *op, void *arg), void *arg);
tern_err_t tern_gstate_encode(const tern_gstate_t *state, uint8_t *buf, size_t cap, size_t *len);
tern_err_t tern_gstate_decode(const uint8_t *data, size_t size, tern_gstate_t *out);
void tern_gstate_clear(tern_gstate_t *state);
tern_err_t tern_gnames_encode(const char *const *names, size_t count, uint8_t *buf, size_t cap,
                              size_t *len);
tern_err_t tern_gnames_decode(const uint8_t *data, size_t size,
                              void (*fn)(const char *name, void *arg), void *arg);

#endif

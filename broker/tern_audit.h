/*  tern_audit.h - the "audit" and "trace" admin operations: delivery
    accounting per group, and the life of one message, from the history the
    store keeps (tern_store_trace_scan, docs/storage.md "Trace events").

    Both are pure functions over a store reader (conn calls them inside one
    read transaction) that write the JSON reply; no actor state is touched.
    docs/protocol.md lists the reply fields.
*/
#ifndef TERN_AUDIT_H_INCLUDED
#define TERN_AUDIT_H_INCLUDED

#include "tern_config.h"
#include "tern_json.h"
#include "tern_store.h"
#include <stdint.h>

#define TERN_AUDIT_SCAN_MAX   4000000 //  events one audit reads at most ("truncated" after)
#define TERN_AUDIT_STUCK_MAX  20      //  stuck messages listed per group
#define TERN_AUDIT_GROUPS_MAX 256     //  groups of one topic in one audit

/*  Writes a JSON array with one object per group of TOPIC (only GROUP if not
    empty): topic, group, published, delivered (deliveries), acked, pending,
    redelivered (deliveries with a count above 1),
    dead, expired, reachability = acked / (published - expired),
    oldest_unacked_ms, gaps, stuck [...], truncated. Only messages stored at
    or after NOW_NS - SINCE_MS count (SINCE_MS 0 = all history). READER must
    be inside read_begin. Returns TERN_ENOTFOUND (no such topic or group) or a
    storage error; OUT is then unspecified. */
tern_err_t tern_audit_json(tern_store_reader_t *reader, const char *topic, const char *group,
                           uint64_t since_ms, uint64_t now_ns, tern_json_t *out);

/*  Writes the life of MSG_ID as one JSON object: msg_id, topic, seq,
    trace_id, origin, stored_at_ms, expire_at_ms, events [{event, at_ms,
    group, delivery_count, detail}], groups [{group, state, deliveries,
    redelivered}],
    outbox_position, replicas [{peer, confirmed, replicated_at_ms}] (one per
    CONFIG peer: has it confirmed the message, and when the confirmation that
    first covered it was committed, 0 if unknown; empty for a message that came
    from a peer).
    TERN_ENOTFOUND when no history is kept for it. */
tern_err_t tern_trace_json(tern_store_reader_t *reader, uint64_t msg_id, uint64_t now_ns,
                           const tern_config_t *config, tern_json_t *out);

/*  "stored", "delivered", ... for a tern_trace_type_t. */
const char *tern_trace_type_name(int type);

#endif

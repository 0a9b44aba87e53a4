/*  tern_admin.h - the admin operations: one table of names, arguments,
    permissions and the actor that answers each.

    A client's ADMIN frame names an operation (`nm`, e.g. "topic.create")
    and passes its arguments as metadata (docs/client.md). conn looks the
    name up here, checks the session's permission and the arguments the
    table asks for, parses them into a tern_admin_t (tern_work.h) and hands
    the request to the actor the table names; that actor switches on the
    tern_admin_op_t. Adding an operation touches the table (tern_admin.c),
    the actor that answers it, and ternctl: nothing else.
*/
#ifndef TERN_ADMIN_H_INCLUDED
#define TERN_ADMIN_H_INCLUDED

#include "tern_proto.h"
#include "tern_work.h"
#include <stdbool.h>
#include <stddef.h>

//  Every operation, in table order (tern_admin.c: s_ops).
typedef enum {
    TERN_ADMIN_STATUS = 0,
    TERN_ADMIN_TOPICS,
    TERN_ADMIN_TOPIC_INFO,
    TERN_ADMIN_TOPIC_CREATE,
    TERN_ADMIN_TOPIC_EDIT,
    TERN_ADMIN_TOPIC_DELETE,
    TERN_ADMIN_TOPIC_PURGE,
    TERN_ADMIN_GROUPS,
    TERN_ADMIN_GROUP_DELETE,
    TERN_ADMIN_GROUP_RESET,
    TERN_ADMIN_GROUP_SEEK,
    TERN_ADMIN_DLQ_LIST,
    TERN_ADMIN_DLQ_REPLAY,
    TERN_ADMIN_DLQ_PURGE,
    TERN_ADMIN_DLQ_GET,
    TERN_ADMIN_MSG_GET,
    TERN_ADMIN_MSG_VIEW,
    TERN_ADMIN_AUDIT,
    TERN_ADMIN_TRACE,
    TERN_ADMIN_PEERS,
    TERN_ADMIN_PEERS_PAUSE,
    TERN_ADMIN_PEERS_RESUME,
    TERN_ADMIN_CLUSTER,
    TERN_ADMIN_CLUSTER_HANDOVER,
    TERN_ADMIN_CLUSTER_VERIFY,
    TERN_ADMIN_OP_COUNT
} tern_admin_op_t;

//  Which actor answers an operation.
typedef enum {
    TERN_ADMIN_BY_CONN = 0, //  read-only, through conn's own store reader (cluster*: the view)
    TERN_ADMIN_BY_STORER,   //  topic writes: TERN_WORK_ADMIN to the storer
    TERN_ADMIN_BY_ROUTE,    //  group state: a TERN_EV_ADMIN event to route
    TERN_ADMIN_BY_REPL      //  replication links: TERN_WORK_REPL_ADMIN to repl
} tern_admin_actor_t;

//  The role right a session needs (tern_auth.h; docs/security.md).
typedef enum {
    TERN_ADMIN_RIGHT_ADMIN = 0 //  a role with `admin = true` (or no roles file)
} tern_admin_right_t;

//  Arguments conn checks and parses before handing the request on.
enum {
    TERN_ADMIN_ARG_TOPIC = 1,   //  `topic`: required, a valid topic name
    TERN_ADMIN_ARG_GROUP = 2,   //  `group`: required, a valid group name
    TERN_ADMIN_ARG_LIMITS = 4,  //  `max_age_ms`, `max_msgs`, `max_bytes` (optional)
    TERN_ADMIN_ARG_EDIT = 8,    //  limits not given keep the topic's current value
    TERN_ADMIN_ARG_TO = 16,     //  `to`: first, new, seq:N or time:DUR (optional)
    TERN_ADMIN_ARG_TO_REQ = 32, //  `to` required
    TERN_ADMIN_ARG_SEQ = 64     //  `seq`: a seq >= 1 (optional)
};

typedef struct {
    const char *name;         //  the ADMIN frame's `nm`
    tern_admin_op_t op;       //  its enum value
    unsigned args;            //  TERN_ADMIN_ARG_* bits
    tern_admin_right_t right; //  what the session's role must allow
    tern_admin_actor_t actor; //  who answers it
} tern_admin_desc_t;

/*  The operation called NAME, or NULL if there is none. Borrowed from a
    static table; valid for the life of the process. */
const tern_admin_desc_t *tern_admin_lookup(const char *name);

/*  The row of OP (which must be below TERN_ADMIN_OP_COUNT). */
const tern_admin_desc_t *tern_admin_desc(tern_admin_op_t op);

/*  The name of OP, "?" if out of range. */
const char *tern_admin_name(unsigned op);

/*  Copies the value of metadata KEY of FRAME into OUT (CAP bytes, NUL
    terminated, truncated if need be). False if the key is absent or its
    value did not fit. */
bool tern_admin_arg(const tern_frame_t *frame, const char *key, char *out, size_t cap);

/*  A decimal seq >= 1 into *SEQ. */
bool tern_admin_parse_seq(const char *text, uint64_t *seq);

/*  A position "first", "new", "seq:N" or "time:DUR" (DUR ago on this node's
    clock) into *START (tern_start_t) and *VALUE. */
bool tern_admin_parse_position(const char *text, uint8_t *start, uint64_t *value);

/*  Parses the optional arguments DESC lists (limits, to, seq) from FRAME
    into ADMIN (topic and group are conn's checks, done before). Returns
    TERN_OK, or TERN_EINVAL with REASON (CAP bytes) set. With
    TERN_ADMIN_ARG_EDIT, ADMIN's limits must hold the current values. */
tern_err_t tern_admin_parse(const tern_admin_desc_t *desc, const tern_frame_t *frame,
                            tern_admin_t *admin, char *reason, size_t cap);

#endif

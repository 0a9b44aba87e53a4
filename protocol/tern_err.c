/*  tern_err.c - names and descriptions of the tern_err_t codes (tern_err.h).

    The codes are shared by the broker, the client and the wire (ERROR frames
    carry them), so this table lives in protocol/, the one module everybody
    links. Both functions return static strings and are thread-safe. The
    reason texts that name a limit (tern_reason_*) live here for the same
    reason: the broker and libtern word them alike.
*/
#include "tern_err.h"
#include "tern_proto.h"
#include "tern_units.h"

#include <stddef.h>
#include <stdio.h>

typedef struct {
    int code;         //  the tern_err_t value
    const char *name; //  symbolic name, e.g. "TERN_EFULL"
    const char *text; //  one-line description
} s_err_entry_t;

static const s_err_entry_t s_errors[] = {
    {TERN_OK, "TERN_OK", "success"},
    {TERN_EMALFORMED, "TERN_EMALFORMED",
     "malformed frame: not msgpack, truncated or trailing bytes"},
    {TERN_EMAGIC, "TERN_EMAGIC", "frame does not start with the tern magic"},
    {TERN_EVERSION, "TERN_EVERSION", "protocol version not supported"},
    {TERN_ECOMMAND, "TERN_ECOMMAND", "unknown command"},
    {TERN_ETYPE, "TERN_ETYPE", "a field has the wrong type"},
    {TERN_EMISSING, "TERN_EMISSING", "a required field is missing"},
    {TERN_ETOOBIG, "TERN_ETOOBIG", "frame, payload or field over its limit"},
    {TERN_ETOPIC, "TERN_ETOPIC", "invalid topic name or pattern"},
    {TERN_ENAME, "TERN_ENAME", "invalid name (group, producer, dc, key or operation)"},
    {TERN_ETRACE, "TERN_ETRACE", "trace id is not a W3C traceparent"},
    {TERN_EMETA, "TERN_EMETA", "invalid metadata map"},
    {TERN_ERANGE, "TERN_ERANGE", "number outside its allowed range"},
    {TERN_EFRAMES, "TERN_EFRAMES", "wrong number of message frames"},
    {TERN_EINVAL, "TERN_EINVAL", "invalid argument"},
    {TERN_ENOTFOUND, "TERN_ENOTFOUND", "not found"},
    {TERN_EEXIST, "TERN_EEXIST", "already exists"},
    {TERN_ESTATE, "TERN_ESTATE", "not allowed in the current state"},
    {TERN_EDENIED, "TERN_EDENIED", "not authenticated or not authorized"},
    {TERN_ELIMIT, "TERN_ELIMIT", "a configured limit was reached"},
    {TERN_ENOTLEADER, "TERN_ENOTLEADER", "this node does not lead the partition"},
    {TERN_EFULL, "TERN_EFULL", "storage full"},
    {TERN_ECORRUPT, "TERN_ECORRUPT", "stored record failed its checksum"},
    {TERN_ESTORAGE, "TERN_ESTORAGE", "storage I/O error"},
    {TERN_EREPLICAS, "TERN_EREPLICAS", "not enough in-sync replicas: not acknowledged"},
    {TERN_ETIMEOUT, "TERN_ETIMEOUT", "operation timed out"},
    {TERN_ECLOSED, "TERN_ECLOSED", "connection or object is closed"},
    {TERN_ECLOCK, "TERN_ECLOCK", "clock went backwards beyond the allowed bound"},
    {TERN_ENOMEM, "TERN_ENOMEM", "out of memory"},
    {TERN_EBUSY, "TERN_EBUSY", "temporarily unable, retry later"},
    {TERN_ECONFIG, "TERN_ECONFIG", "bad configuration"},
    {TERN_EINTERNAL, "TERN_EINTERNAL", "internal error (a bug: please report)"},
    {TERN_ECONNREFUSED, "TERN_ECONNREFUSED", "connection refused: no broker listens there"},
};

static const s_err_entry_t *s_find(int err) {
    for (size_t i = 0; i < sizeof s_errors / sizeof s_errors[0]; i++) {
        if (s_errors[i].code == err) {
            return &s_errors[i];
        }
    }
    return NULL;
}

const char *tern_strerror(int err) {
    const s_err_entry_t *entry = s_find(err);
    return entry ? entry->text : "unknown error";
}

const char *tern_errname(int err) {
    const s_err_entry_t *entry = s_find(err);
    return entry ? entry->name : "TERN_E?";
}

//  ---------------------------------------------------------------------------
//  Reason texts (declared in tern_proto.h)

const char *tern_reason_topic(char *out, size_t cap, const char *topic, bool pattern) {
    //  The grammar of tern_topic_valid / tern_pattern_valid, in words.
    snprintf(out, cap,
             pattern ? "invalid pattern '%.*s': tokens of [A-Za-z0-9_-], '*' (one token) or a "
                       "final '>', joined by single dots, 1..%d bytes"
                     : "invalid topic '%.*s': tokens of [A-Za-z0-9_-] joined by single dots, "
                       "1..%d bytes",
             TERN_TOPIC_MAX / 2, topic ? topic : "", TERN_TOPIC_MAX);
    return out;
}

const char *tern_reason_name(char *out, size_t cap, const char *what, const char *name) {
    snprintf(out, cap, "invalid %s '%.*s': names are [A-Za-z0-9_.:-], 1..%d bytes", what,
             TERN_NAME_MAX + 8, name ? name : "", TERN_NAME_MAX);
    return out;
}

const char *tern_reason_payload(char *out, size_t cap, uint64_t size, uint64_t max_payload) {
    char limit[TERN_UNITS_BUF];
    snprintf(out, cap, "payload %llu B > max_payload %s", (unsigned long long)size,
             tern_units_format_size(max_payload, TERN_UNITS_EXACT_IEC, limit, sizeof limit));
    return out;
}

/*  tern_json_read.h - the one JSON reader of tern: ternctl's admin replies
    (tables and --json lines), tern-check's histories, and libtern's
    cluster map and gathered admin replies (client/tern_client_map.c).

    A DOM parser that keeps numbers as their original text (u64 ids stay
    exact) and each value's span in the input (so a caller can hand on an
    element as it was written); tern_json_write_value writes a parsed value
    back with the one JSON writer (tern_json.h). In protocol/ because
    tools/ and client/ both link it; it knows nothing of the wire. Out of
    memory ends the process (tern_alloc.h).
*/
#ifndef TERN_JSON_READ_H_INCLUDED
#define TERN_JSON_READ_H_INCLUDED

#include "tern_json.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    TERN_JSON_NULL,
    TERN_JSON_BOOL,
    TERN_JSON_NUMBER,
    TERN_JSON_STRING,
    TERN_JSON_ARRAY,
    TERN_JSON_OBJECT
} tern_json_kind_t;

typedef struct tern_json_value_t tern_json_value_t;
struct tern_json_value_t {
    const char *src;           //  the value's text in the parsed input (borrowed from it)
    size_t src_len;            //  its length
    tern_json_kind_t kind;     //  what this value is
    bool boolean;              //  TERN_JSON_BOOL
    char *text;                //  STRING: decoded, NUL-terminated; NUMBER: as written
    size_t text_len;           //  its length (strings may hold NUL)
    size_t count;              //  TERN_JSON_ARRAY / TERN_JSON_OBJECT: number of items
    char **keys;               //  TERN_JSON_OBJECT: decoded member names
    tern_json_value_t **items; //  TERN_JSON_ARRAY / TERN_JSON_OBJECT: values
};

/*  Parses TEXT (LEN bytes) as one JSON document (nesting up to 64 levels).
    Returns the value, or NULL if it is not valid JSON. Caller owns the
    result; free it with tern_json_value_destroy. The `src` spans of its
    values are borrowed from TEXT: valid while it is. */
tern_json_value_t *tern_json_parse(const char *text, size_t len);

/*  Parses the JSON value at the start of TEXT (LEN bytes, blanks first
    allowed) and ignores what follows it (the next of several JSON lines,
    say); *USED (may be NULL) gets the bytes it took, blanks after the
    value included. NULL if no valid value starts there. Ownership as for
    tern_json_parse. */
tern_json_value_t *tern_json_parse_first(const char *text, size_t len, size_t *used);

/*  Frees *SELF_P and all it holds; nulls it. Safe on NULL. */
void tern_json_value_destroy(tern_json_value_t **self_p);

/*  Member KEY of object SELF, or NULL. Borrowed from SELF. */
const tern_json_value_t *tern_json_get(const tern_json_value_t *self, const char *key);

/*  Member KEY of object SELF as an unsigned number, or 0 if it is missing
    or not a number. */
uint64_t tern_json_get_u64(const tern_json_value_t *self, const char *key);

/*  Appends VALUE compactly to OUT, after a separator unless OUT is empty or
    ends with '[', '{' or ':' (a value after tern_json_key). */
void tern_json_write_value(tern_json_t *out, const tern_json_value_t *value);

#endif

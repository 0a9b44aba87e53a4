/*  ternctl_json.h - the JSON reader ternctl prints admin replies with.

    ternctl receives admin replies as JSON documents and prints either one
    compact JSON object per line (--json) or aligned tables. libtern has no
    JSON on purpose (the reply is handed to the application as text), so the
    tool carries a DOM parser that keeps numbers as their original text (u64
    ids stay exact), and writes parsed values back with the one JSON writer
    of the tree (protocol/tern_json.h), which ternctl also builds its own
    output with.
*/
#ifndef TERNCTL_JSON_H_INCLUDED
#define TERNCTL_JSON_H_INCLUDED

#include "tern_json.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    JSON_NULL,
    JSON_BOOL,
    JSON_NUMBER,
    JSON_STRING,
    JSON_ARRAY,
    JSON_OBJECT
} json_kind_t;

typedef struct _json_t json_t;
struct _json_t {
    json_kind_t kind; //  what this value is
    bool boolean;     //  JSON_BOOL
    char *text;       //  JSON_STRING (decoded, NUL-terminated) or JSON_NUMBER (as written)
    size_t text_len;  //  its length (strings may hold NUL)
    size_t count;     //  JSON_ARRAY / JSON_OBJECT: number of items
    char **keys;      //  JSON_OBJECT: decoded member names
    json_t **items;   //  JSON_ARRAY / JSON_OBJECT: values
};

/*  Parses TEXT (LEN bytes) as one JSON document (nesting up to 64 levels).
    Returns the value, or NULL if it is not valid JSON. Caller owns the
    result; free it with json_destroy. */
json_t *json_parse(const char *text, size_t len);

void json_destroy(json_t **self_p);

/*  Member KEY of object SELF, or NULL. Borrowed from SELF. */
const json_t *json_get(const json_t *self, const char *key);

/*  Member KEY of object SELF as an unsigned number, or 0 if it is missing
    or not a number. */
uint64_t json_get_u64(const json_t *self, const char *key);

/*  Appends VALUE compactly to OUT, after a separator unless OUT is empty or
    ends with '[', '{' or ':' (a value after tern_json_key). */
void json_write(tern_json_t *out, const json_t *value);

#endif

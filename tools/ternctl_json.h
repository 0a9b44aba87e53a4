/*  ternctl_json.h - the small JSON reader and writer ternctl prints with.

    ternctl receives admin replies as JSON documents and prints either one
    compact JSON object per line (--json) or aligned tables; `sub` builds JSON
    from message fields. libtern has no JSON on purpose (the reply is handed
    to the application as text), so the tool carries its own: a DOM parser
    that keeps numbers as their original text (u64 ids stay exact), a writer
    with correct string escaping, a strict UTF-8 check and base64.
*/
#ifndef TERNCTL_JSON_H_INCLUDED
#define TERNCTL_JSON_H_INCLUDED

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

/*  A growable output buffer. */
typedef struct {
    char *data;     //  NUL-terminated text, owned
    size_t len;     //  bytes used
    size_t cap;     //  bytes allocated
    int depth;      //  open objects/arrays
    bool first[64]; //  per depth: no member written yet
} jbuf_t;

void jbuf_init(jbuf_t *b);
void jbuf_free(jbuf_t *b);
void jbuf_reset(jbuf_t *b);
void jbuf_raw(jbuf_t *b, const char *s, size_t len);
/*  Appends S (LEN bytes) as a quoted JSON string: '"', '\\' and control
    characters are escaped; other bytes are copied (callers pass UTF-8). */
void jbuf_string(jbuf_t *b, const char *s, size_t len);
void jbuf_begin(jbuf_t *b, char open);     //  '{' or '['
void jbuf_end(jbuf_t *b, char close);      //  '}' or ']'
void jbuf_key(jbuf_t *b, const char *key); //  writes [,]"key": inside an object
void jbuf_kstr(jbuf_t *b, const char *key, const char *value);
void jbuf_ku64(jbuf_t *b, const char *key, uint64_t value);
void jbuf_kbool(jbuf_t *b, const char *key, bool value);
/*  Writes VALUE compactly (as an array element or after jbuf_key). */
void jbuf_value(jbuf_t *b, const json_t *value);

/*  True if DATA (SIZE bytes) is valid UTF-8 (no overlongs, no surrogates,
    nothing above U+10FFFF). */
bool utf8_valid(const uint8_t *data, size_t size);

/*  Appends DATA (SIZE bytes) as standard base64 with padding. */
void jbuf_base64(jbuf_t *b, const uint8_t *data, size_t size);

#endif

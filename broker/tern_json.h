/*  tern_json.h - a tiny JSON writer for admin replies (REPLY payloads).

    Appends to a growable buffer; strings are escaped per RFC 8259. Used by
    conn and route to build the documents the contract lists.
*/
#ifndef TERN_JSON_H_INCLUDED
#define TERN_JSON_H_INCLUDED

#include <stddef.h>
#include <stdint.h>

typedef struct {
    char *data; //  NUL-terminated text (owned)
    size_t len; //  bytes used
    size_t cap; //  bytes allocated
} tern_json_t;

/*  Initialises an empty buffer (aborts on out of memory). */
void tern_json_init(tern_json_t *self);
void tern_json_free(tern_json_t *self);

/*  Appends raw text. */
void tern_json_raw(tern_json_t *self, const char *text);

/*  Appends TEXT as a quoted, escaped JSON string. */
void tern_json_str(tern_json_t *self, const char *text);

/*  Appends `"KEY":` then the value. A comma is written first unless the
    previous character opens an object or array. */
void tern_json_key_str(tern_json_t *self, const char *key, const char *value);
void tern_json_key_u64(tern_json_t *self, const char *key, uint64_t value);
void tern_json_key_bool(tern_json_t *self, const char *key, int value);

/*  Appends `"KEY":` and DATA (SIZE bytes, may hold NUL) as a JSON string
    when it is valid UTF-8, else `"KEY_b64":` and its standard base64 (the
    shape of `ternctl sub --json`). KEY must not need escaping. */
void tern_json_key_bytes(tern_json_t *self, const char *key, const uint8_t *data, size_t size);

/*  Appends a comma unless the buffer is empty or ends with '[' or '{'. */
void tern_json_sep(tern_json_t *self);

#endif

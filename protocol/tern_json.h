/*  tern_json.h - the one JSON writer of tern: admin replies, audit lines,
    /healthz (broker/) and ternctl's output (tools/).

    Appends to a growable, NUL-terminated buffer. A value written after
    another gets its comma from tern_json_sep (which the key_* calls use):
    a comma unless the buffer is empty or ends with '[' or '{', so callers
    open and close containers with tern_json_raw and need no depth count.
    Strings are escaped per RFC 8259 ('"', '\\', control characters, and DEL
    so that a terminal shows it), all other bytes are copied: callers pass
    UTF-8, or use tern_json_key_bytes, which writes what is not UTF-8 as
    base64. In protocol/ because broker/ and tools/ (through libtern) both
    link it; it knows nothing of the wire. Out of memory ends the process
    (tern_alloc.h). A tern_json_t is used by one thread at a time.
*/
#ifndef TERN_JSON_H_INCLUDED
#define TERN_JSON_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    char *data; //  NUL-terminated text (owned); may hold NULs written by tern_json_rawn
    size_t len; //  bytes used, without the NUL
    size_t cap; //  bytes allocated
} tern_json_t;

/*  Initialises SELF as an empty buffer ("", allocated). */
void tern_json_init(tern_json_t *self);

/*  Frees SELF's text; SELF may be initialised again. Safe twice. */
void tern_json_free(tern_json_t *self);

/*  Empties SELF, keeping its memory. */
void tern_json_reset(tern_json_t *self);

/*  Appends TEXT (NUL-terminated), or LEN bytes at DATA (which may hold
    NULs), as they are. */
void tern_json_raw(tern_json_t *self, const char *text);
void tern_json_rawn(tern_json_t *self, const char *data, size_t len);

/*  Appends TEXT (NUL-terminated), or LEN bytes at TEXT, as a quoted,
    escaped JSON string: \" \\ \n \r \t \b \f, and \u00XX for the other
    control characters and DEL. */
void tern_json_str(tern_json_t *self, const char *text);
void tern_json_strn(tern_json_t *self, const char *text, size_t len);

/*  Appends a comma unless the buffer is empty or ends with '[' or '{'. */
void tern_json_sep(tern_json_t *self);

/*  Appends the separator and `"KEY":`; the value follows. */
void tern_json_key(tern_json_t *self, const char *key);

/*  Appends the separator, `"KEY":` and the value. */
void tern_json_key_str(tern_json_t *self, const char *key, const char *value);
void tern_json_key_u64(tern_json_t *self, const char *key, uint64_t value);
void tern_json_key_bool(tern_json_t *self, const char *key, bool value);

/*  Appends the separator, then `"KEY":` and DATA (SIZE bytes, may hold NUL)
    as a JSON string when it is valid UTF-8, else `"KEY_b64":` and its
    standard base64 (the shape of `ternctl sub --json`). KEY must not need
    escaping. */
void tern_json_key_bytes(tern_json_t *self, const char *key, const uint8_t *data, size_t size);

/*  Appends DATA (SIZE bytes) as standard base64 with padding, unquoted. */
void tern_json_base64(tern_json_t *self, const uint8_t *data, size_t size);

/*  True if DATA (SIZE bytes) is valid UTF-8: no overlong forms, surrogates
    or code points above U+10FFFF. */
bool tern_json_utf8_valid(const uint8_t *data, size_t size);

#endif

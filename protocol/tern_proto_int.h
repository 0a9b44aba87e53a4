/*  tern_proto_int.h - what protocol/'s own files share (not installed).

    Encoding into a fixed buffer: msgpack-c's packer writes through
    tern_wbuf_write straight into the caller's buffer, so a frame is built
    once where it is sent from, with no heap buffer and no copy. A write
    that does not fit sets `overflow` and every later write fails.

    Decoding with tern_proto.c's cursor: bounds-checked reads of msgpack
    bytes in place, with no msgpack_zone and no heap, so a payload codec
    (tern_proto_group.c) decodes as the header codec does. A short read is
    TERN_EMALFORMED, a value of another type TERN_ETYPE, a negative integer
    TERN_ERANGE.
*/
#ifndef TERN_PROTO_INT_H_INCLUDED
#define TERN_PROTO_INT_H_INCLUDED

#include "tern_err.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint8_t *buf;  //  the caller's buffer
    size_t cap;    //  its capacity
    size_t len;    //  bytes written so far
    bool overflow; //  a write did not fit
} tern_wbuf_t;

//  msgpack_packer write callback over a tern_wbuf_t.
int tern_wbuf_write(void *data, const char *bytes, size_t len);

typedef struct {
    const uint8_t *p;   //  next byte
    const uint8_t *end; //  one past the last byte
} tern_rcur_t;

//  An unsigned integer (any msgpack integer encoding of a value >= 0).
tern_err_t tern_rcur_uint(tern_rcur_t *c, uint64_t *v);

//  A str; *S borrows its body from the bytes (not NUL-terminated).
tern_err_t tern_rcur_str(tern_rcur_t *c, const char **s, uint32_t *len);

//  An array header; its element count into *COUNT.
tern_err_t tern_rcur_array(tern_rcur_t *c, uint32_t *count);

#endif

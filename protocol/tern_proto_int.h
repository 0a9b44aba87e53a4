/*  tern_proto_int.h - what protocol/'s own files share (not installed).

    Encoding into a fixed buffer: msgpack-c's packer writes through
    tern_wbuf_write straight into the caller's buffer, so a frame is built
    once where it is sent from, with no heap buffer and no copy. A write
    that does not fit sets `overflow` and every later write fails.
*/
#ifndef TERN_PROTO_INT_H_INCLUDED
#define TERN_PROTO_INT_H_INCLUDED

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

#endif

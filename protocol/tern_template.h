/*  tern_template.h - header templates: a frame encoded once, refilled with new integers.

    Most frames a client sends in bulk repeat the one before but for a few
    integers: a publisher repeats a few topics with the same options, so two
    PUBLISH headers differ only in req_id and producer_seq; ACKs differ in
    req_id, sub_id and tag. A template is such a header encoded once by
    tern_frame_encode, plus where each of those integers sits; a header is
    then the template with the integers written in, in msgpack's shortest
    form as the codec writes them, instead of a full encode (libtern's
    publish and ack paths, docs/performance.md "Third pass"). The bytes are
    the codec's own: tests/unit/test_proto.c compares every templated header
    with tern_frame_encode's for a table of frames and values.

    A template is a plain value the caller owns (libtern keeps a few per
    thread); it allocates nothing and has no state beyond its bytes.
*/
#ifndef TERN_TEMPLATE_H_INCLUDED
#define TERN_TEMPLATE_H_INCLUDED

#include "tern_proto.h"

#include <string.h>

#define TERN_TEMPLATE_INTS 3   /* integers a template can leave open */
#define TERN_TEMPLATE_MAX  384 /* header bytes; a PUBLISH without key, trace or headers fits */
/*  Bytes a filled header can take: each open integer grows from 1 to 9. */
#define TERN_TEMPLATE_OUT_MAX (TERN_TEMPLATE_MAX + 8 * TERN_TEMPLATE_INTS)

typedef struct {
    size_t len;                        //  header size with every open integer = 1; 0 = not made
    size_t ints;                       //  integers left open
    size_t at[TERN_TEMPLATE_INTS];     //  offset of each one's byte in bytes, increasing
    uint8_t value[TERN_TEMPLATE_INTS]; //  for at[i], its index in the fill's VALUES
    uint8_t bytes[TERN_TEMPLATE_MAX];  //  the header with every open integer = 1
} tern_frame_template_t;

/*  Makes TPL the template of FRAME with the COUNT uint64_t members of
    tern_frame_t at byte offsets OPEN (offsetof(tern_frame_t, req_id), ...)
    left open; FRAME's values of those members are ignored. A member can be
    left open only if the codec writes it whatever its value, over the full
    uint64_t range (req_id; producer_seq with a producer; sub_id and tag of
    ACK, NACK, TERM, CREDIT...); the other fields are fixed as FRAME has them.
    Returns TERN_OK; TERN_EINVAL if COUNT is 0 or over TERN_TEMPLATE_INTS,
    an offset is not a uint64_t member or comes twice, or one is not always written
    (FRAME has another shape: encode it instead); TERN_ETOOBIG if the header
    is over TERN_TEMPLATE_MAX bytes; or the encoder's error for FRAME. On
    error TPL->len is 0. */
tern_err_t tern_frame_template_make(tern_frame_template_t *tpl, const tern_frame_t *frame,
                                    const size_t *open, size_t count);

/*  Writes V in msgpack's shortest unsigned form (the one msgpack_pack_uint64
    chooses) to OUT; returns its size, 1 to 9. */
static inline size_t tern_template_pack_uint(uint8_t *out, uint64_t v) {
    if (v < 128) {
        out[0] = (uint8_t)v; //  positive fixint
        return 1;
    }
    size_t n;
    if (v <= UINT8_MAX) {
        out[0] = 0xcc;
        n = 1;
    } else if (v <= UINT16_MAX) {
        out[0] = 0xcd;
        n = 2;
    } else if (v <= UINT32_MAX) {
        out[0] = 0xce;
        n = 4;
    } else {
        out[0] = 0xcf;
        n = 8;
    }
    for (size_t i = 0; i < n; i++) {
        out[n - i] = (uint8_t)(v >> (8 * i)); //  big-endian
    }
    return n + 1;
}

/*  Writes the header of TPL (made, len > 0) with the open members set to
    VALUES (in the order of tern_frame_template_make's OPEN) into OUT, which
    has room for TERN_TEMPLATE_OUT_MAX bytes. Returns the header's size: the
    bytes tern_frame_encode would write for the same frame. Inline because
    it runs once per publish and per ack in libtern: a call into another
    object would cost a few percent of an ack. */
static inline size_t tern_frame_template_fill(const tern_frame_template_t *tpl,
                                              const uint64_t *values, uint8_t *out) {
    size_t n = 0, from = 0;
    for (size_t i = 0; i < tpl->ints; i++) {
        size_t at = tpl->at[i];
        memcpy(out + n, tpl->bytes + from, at - from);
        n += at - from;
        n += tern_template_pack_uint(out + n, values[tpl->value[i]]);
        from = at + 1;
    }
    memcpy(out + n, tpl->bytes + from, tpl->len - from);
    return n + tpl->len - from;
}

#endif

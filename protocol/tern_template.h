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

#define TERN_TEMPLATE_INTS 3   /* integers a template can leave open */
#define TERN_TEMPLATE_MAX  384 /* header bytes; a PUBLISH without key, trace or headers fits */
/*  Bytes a filled header can take: each open integer grows from 1 to 9. */
#define TERN_TEMPLATE_OUT_MAX (TERN_TEMPLATE_MAX + 8 * TERN_TEMPLATE_INTS)

typedef struct {
    size_t len;                    //  header size with every open integer = 1; 0 = not made
    size_t ints;                   //  integers left open
    size_t at[TERN_TEMPLATE_INTS]; //  offset of each one's byte in bytes, increasing
    uint8_t
        value[TERN_TEMPLATE_INTS]; //  for at[i], the index into tern_frame_template_fill's VALUES
    uint8_t bytes[TERN_TEMPLATE_MAX]; //  the header with every open integer = 1
} tern_frame_template_t;

/*  Makes TPL the template of FRAME with the COUNT uint64_t members of
    tern_frame_t at byte offsets OPEN (offsetof(tern_frame_t, req_id), ...)
    left open; FRAME's values of those members are ignored. A member can be
    left open only if the codec writes it whatever its value, over the full
    uint64_t range (req_id; producer_seq with a producer; sub_id and tag of
    ACK, NACK, TERM, CREDIT...); the other fields are fixed as FRAME has them.
    Returns TERN_OK; TERN_EINVAL if COUNT is 0 or over TERN_TEMPLATE_INTS,
    an offset is not a uint64_t member, or one of them is not always written
    (FRAME has another shape: encode it instead); TERN_ETOOBIG if the header
    is over TERN_TEMPLATE_MAX bytes; or the encoder's error for FRAME. On
    error TPL->len is 0. */
tern_err_t tern_frame_template_make(tern_frame_template_t *tpl, const tern_frame_t *frame,
                                    const size_t *open, size_t count);

/*  Writes the header of TPL (made, len > 0) with the open members set to
    VALUES (in the order of tern_frame_template_make's OPEN) into OUT, which
    has room for TERN_TEMPLATE_OUT_MAX bytes. Returns the header's size: the
    bytes tern_frame_encode would write for the same frame. */
size_t tern_frame_template_fill(const tern_frame_template_t *tpl, const uint64_t *values,
                                uint8_t *out);

#endif

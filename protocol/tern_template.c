/*  tern_template.c - header templates: a frame encoded once, refilled with new integers.

    Part of the wire codec (protocol/), beside tern_proto.c, because it
    writes msgpack bytes: the integers are packed by hand, in the shortest
    unsigned form msgpack_pack_uint64 chooses, so a header is a few memcpy
    calls instead of a walk of the field table (the fill is inline, in
    tern_template.h, as it runs per message in libtern). A template is made by
    encoding the frame with tern_frame_encode and finding each open integer's
    byte by encoding it again with other values: the encoder stays the one
    authority on the header's layout, and a frame whose layout depends on
    those values is refused rather than templated wrongly.
*/
#include "tern_template.h"

#include <stddef.h>
#include <string.h>

//  The uint64_t members of tern_frame_t: the only ones a template can leave
//  open (the fill writes up to 64 bits).
static const size_t s_u64_members[] = {
    offsetof(tern_frame_t, req_id),       offsetof(tern_frame_t, producer_seq),
    offsetof(tern_frame_t, msg_id),       offsetof(tern_frame_t, seq),
    offsetof(tern_frame_t, timestamp_ns), offsetof(tern_frame_t, expire_at_ns),
    offsetof(tern_frame_t, sub_id),       offsetof(tern_frame_t, tag),
    offsetof(tern_frame_t, start_value),  offsetof(tern_frame_t, position),
};

static bool s_u64_member(size_t offset) {
    for (size_t i = 0; i < sizeof s_u64_members / sizeof s_u64_members[0]; i++) {
        if (s_u64_members[i] == offset) {
            return true;
        }
    }
    return false;
}

static void s_set(tern_frame_t *frame, size_t offset, uint64_t value) {
    memcpy((uint8_t *)frame + offset, &value, sizeof value);
}

//  Finds the byte of the member at OFFSET in BASE (LEN bytes, FRAME encoded
//  with every open member = 1): encodes FRAME with it set to 0 and to 2,
//  which must change that one byte only, and to UINT64_MAX, which must
//  grow the header by 8 bytes (so the codec writes it whatever its value).
//  Restores the member to 1. Returns true with its offset in *AT.
static bool s_find(tern_frame_t *frame, size_t offset, const uint8_t *base, size_t len,
                   size_t *at) {
    static const uint64_t probes[] = {0, 2, UINT64_MAX};
    uint8_t other[TERN_TEMPLATE_OUT_MAX];
    bool found = true;
    for (size_t p = 0; p < 3 && found; p++) {
        s_set(frame, offset, probes[p]);
        size_t len2 = 0;
        found = tern_frame_encode(frame, other, sizeof other, &len2) == TERN_OK;
        if (probes[p] == UINT64_MAX) {
            found = found && len2 == len + 8;
            break;
        }
        size_t diffs = 0;
        for (size_t k = 0; found && k < len; k++) {
            if (base[k] != other[k]) {
                diffs++;
                *at = k;
            }
        }
        found = found && len2 == len && diffs == 1 && base[*at] == 1;
    }
    s_set(frame, offset, 1);
    return found;
}

tern_err_t tern_frame_template_make(tern_frame_template_t *tpl, const tern_frame_t *frame,
                                    const size_t *open, size_t count) {
    if (!tpl) {
        return TERN_EINVAL;
    }
    tpl->len = 0;
    if (!frame || !open || count == 0 || count > TERN_TEMPLATE_INTS) {
        return TERN_EINVAL;
    }
    tern_frame_t f = *frame;
    for (size_t i = 0; i < count; i++) {
        if (!s_u64_member(open[i])) {
            return TERN_EINVAL;
        }
        s_set(&f, open[i], 1);
    }
    size_t len = 0;
    tern_err_t rc = tern_frame_encode(&f, tpl->bytes, sizeof tpl->bytes, &len);
    if (rc != TERN_OK) {
        return rc;
    }
    //  Each member's byte, kept in header order (insertion sort of at most
    //  TERN_TEMPLATE_INTS) with the index of its value.
    for (size_t i = 0; i < count; i++) {
        size_t at = 0, k = i;
        if (!s_find(&f, open[i], tpl->bytes, len, &at)) {
            return TERN_EINVAL;
        }
        for (; k > 0 && tpl->at[k - 1] >= at; k--) {
            if (tpl->at[k - 1] == at) {
                return TERN_EINVAL; //  the same member twice
            }
            tpl->at[k] = tpl->at[k - 1];
            tpl->value[k] = tpl->value[k - 1];
        }
        tpl->at[k] = at;
        tpl->value[k] = (uint8_t)i;
    }
    tpl->ints = count;
    tpl->len = len;
    return TERN_OK;
}

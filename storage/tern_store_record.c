/*  tern_store_record.c - the log record codec: one message as stored.

    A log record is a fixed little-endian header (tern_store_int.h, R_*),
    then the producer, key, trace id and origin strings, the metadata and the
    payload, with a CRC32C over everything after the CRC field. The log
    (tern_store_log.c) writes records with st_record_write into a value LMDB
    reserved (MDB_RESERVE: the payload is copied once, into the map, and
    summed in the same pass);
    readers, the history scan and tern_store_record_decode (the fuzz target's
    entry) parse them here. Pure: no transaction, no allocation.
*/
#include "tern_store_int.h"

//  Validates the header lengths of the record in V (and the CRC when
//  VERIFY), never reading outside V.
tern_err_t st_record_parse(const MDB_val *v, bool verify, st_record_t *rec) {
    const uint8_t *p = v->mv_data;
    if (v->mv_size < R_HEADER || p[R_VERSION] != R_FORMAT) {
        return TERN_ECORRUPT;
    }
    uint64_t total = R_HEADER;
    total += p[R_PRODUCER_LEN];
    total += p[R_KEY_LEN];
    total += p[R_TRACE_LEN];
    total += p[R_ORIGIN_LEN];
    total += s_le32_get(p + R_META_SIZE);
    total += s_le32_get(p + R_PAYLOAD_SIZE);
    if (total != v->mv_size || p[R_PRODUCER_LEN] > TERN_NAME_MAX || p[R_KEY_LEN] > TERN_KEY_MAX ||
        p[R_TRACE_LEN] > TERN_TRACE_MAX || p[R_ORIGIN_LEN] > TERN_NAME_MAX ||
        p[R_PRIORITY] > TERN_PRIORITY_MAX) {
        return TERN_ECORRUPT;
    }
    if (verify && tern_crc32c(0, p + 4, v->mv_size - 4) != s_le32_get(p + R_CRC)) {
        return TERN_ECORRUPT;
    }
    rec->base = p;
    rec->size = v->mv_size;
    rec->topic_id = s_le32_get(p + R_TOPIC);
    rec->priority = p[R_PRIORITY];
    rec->msg_id = s_le64_get(p + R_MSG_ID);
    rec->seq = s_le64_get(p + R_SEQ);
    rec->expire_at_ns = s_le64_get(p + R_EXPIRE);
    rec->timestamp_ns = s_le64_get(p + R_TS);
    rec->payload_size = s_le32_get(p + R_PAYLOAD_SIZE);
    return TERN_OK;
}

//  Copies a length-prefixed string of the record into a NUL-terminated field.
static const uint8_t *s_record_str(const uint8_t *at, size_t len, char *dst) {
    memcpy(dst, at, len);
    dst[len] = 0;
    return at + len;
}

//  Fills OUT, a DELIVER-shaped frame, from a parsed record (everything but the
//  topic name); strings are copied, metadata and payload borrow the record.
void st_record_frame(const st_record_t *rec, tern_frame_t *out) {
    const uint8_t *p = rec->base;
    memset(out, 0, sizeof *out);
    out->cmd = TERN_CMD_DELIVER;
    out->version = TERN_PROTO_VERSION;
    out->fields = s_le32_get(p + R_FIELDS);
    out->msg_id = rec->msg_id;
    out->seq = rec->seq;
    out->producer_seq = s_le64_get(p + R_PSEQ);
    out->timestamp_ns = rec->timestamp_ns;
    out->expire_at_ns = rec->expire_at_ns;
    out->priority = rec->priority;
    const uint8_t *at = p + R_HEADER;
    at = s_record_str(at, p[R_PRODUCER_LEN], out->producer);
    at = s_record_str(at, p[R_KEY_LEN], out->key);
    at = s_record_str(at, p[R_TRACE_LEN], out->trace_id);
    at = s_record_str(at, p[R_ORIGIN_LEN], out->origin);
    out->meta_count = s_le32_get(p + R_META_COUNT);
    out->meta_size = s_le32_get(p + R_META_SIZE);
    out->meta = out->meta_size ? at : NULL;
    at += out->meta_size;
    out->payload_size = rec->payload_size;
    out->payload = at;
}

//  The trace id and origin of a parsed record (borrowed, not terminated).
void st_record_trace(const st_record_t *rec, const char **trace_id, size_t *trlen,
                     const char **origin, size_t *olen) {
    const uint8_t *p = rec->base;
    const uint8_t *at = p + R_HEADER + p[R_PRODUCER_LEN] + p[R_KEY_LEN];
    *trace_id = (const char *)at;
    *trlen = p[R_TRACE_LEN];
    *origin = (const char *)at + p[R_TRACE_LEN];
    *olen = p[R_ORIGIN_LEN];
}
tern_err_t tern_store_record_decode(const uint8_t *data, size_t size, bool verify,
                                    uint32_t *topic_id, tern_frame_t *out) {
    MDB_val v = {size, (void *)data};
    st_record_t rec;
    tern_err_t err = data ? st_record_parse(&v, verify, &rec) : TERN_ECORRUPT;
    if (err != TERN_OK) {
        return err;
    }
    st_record_frame(&rec, out);
    *topic_id = rec.topic_id;
    return TERN_OK;
}

//  The size of MSG's record: header + strings + meta + payload.
size_t st_record_size(const tern_frame_t *msg, const st_lens_t *lens) {
    return R_HEADER + lens->producer + lens->key + lens->trace + lens->origin + msg->meta_size +
           msg->payload_size;
}

//  Writes MSG's record at P (st_record_size bytes, reserved by the caller)
//  as message SEQ of TOPIC_ID, CRC last.
void st_record_write(uint8_t *p, const tern_frame_t *msg, uint32_t topic_id, uint64_t seq,
                     const st_lens_t *lens) {
    p[R_VERSION] = R_FORMAT;
    p[R_PRIORITY] = msg->priority;
    p[R_RESERVED] = p[R_RESERVED + 1] = 0;
    s_le32_put(p + R_TOPIC, topic_id);
    s_le32_put(p + R_FIELDS, msg->fields);
    s_le64_put(p + R_MSG_ID, msg->msg_id);
    s_le64_put(p + R_SEQ, seq);
    s_le64_put(p + R_PSEQ, msg->producer_seq);
    s_le64_put(p + R_TS, msg->timestamp_ns);
    s_le64_put(p + R_EXPIRE, msg->expire_at_ns);
    p[R_PRODUCER_LEN] = (uint8_t)lens->producer;
    p[R_KEY_LEN] = (uint8_t)lens->key;
    p[R_TRACE_LEN] = (uint8_t)lens->trace;
    p[R_ORIGIN_LEN] = (uint8_t)lens->origin;
    s_le32_put(p + R_META_COUNT, msg->meta_count);
    s_le32_put(p + R_META_SIZE, (uint32_t)msg->meta_size);
    s_le32_put(p + R_PAYLOAD_SIZE, (uint32_t)msg->payload_size);
    uint8_t *at = p + R_HEADER;
    memcpy(at, msg->producer, lens->producer);
    at += lens->producer;
    memcpy(at, msg->key, lens->key);
    at += lens->key;
    memcpy(at, msg->trace_id, lens->trace);
    at += lens->trace;
    memcpy(at, msg->origin, lens->origin);
    at += lens->origin;
    if (msg->meta_size) {
        memcpy(at, msg->meta, msg->meta_size);
        at += msg->meta_size;
    }
    //  The payload (up to max_payload) is summed as it is copied: read once.
    uint32_t crc = tern_crc32c(0, p + 4, (size_t)(at - p) - 4);
    if (msg->payload_size) {
        crc = tern_crc32c_copy(crc, at, msg->payload, msg->payload_size);
    }
    s_le32_put(p + R_CRC, crc);
}

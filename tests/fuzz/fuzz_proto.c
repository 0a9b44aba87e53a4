/*  fuzz_proto.c - libFuzzer target for the wire codec (tern_frame_decode).

    Input layout: 2 bytes big-endian N, then the header frame, then the
    payload frame. Bit 15 of N set means "no payload frame" (a one-frame
    ZeroMQ message); the low 15 bits are the header length (clamped to what
    is there). Every frame that decodes must re-encode, decode again and give
    the same frame; anything else aborts. Linked with fuzz_replay.c
    (test_fuzz_proto), it replays the committed corpus as a unit test.
*/
#include "fuzz_check.h"
#include "tern_proto.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void s_same(const tern_frame_t *a, const tern_frame_t *b) {
    CHECK(a->cmd == b->cmd && a->req_id == b->req_id && a->version == b->version);
    CHECK(a->fields == b->fields);
    CHECK(a->proto_version == b->proto_version && a->node_id == b->node_id);
    CHECK(a->heartbeat_ms == b->heartbeat_ms && a->max_payload == b->max_payload);
    CHECK(strcmp(a->name, b->name) == 0 && strcmp(a->dc, b->dc) == 0);
    CHECK(strcmp(a->topic, b->topic) == 0 && strcmp(a->group, b->group) == 0);
    CHECK(strcmp(a->producer, b->producer) == 0 && strcmp(a->key, b->key) == 0);
    CHECK(strcmp(a->trace_id, b->trace_id) == 0 && strcmp(a->origin, b->origin) == 0);
    CHECK(a->producer_seq == b->producer_seq && a->msg_id == b->msg_id && a->seq == b->seq);
    CHECK(a->timestamp_ns == b->timestamp_ns && a->expire_at_ns == b->expire_at_ns);
    CHECK(a->ttl_ms == b->ttl_ms && a->ttl_class == b->ttl_class && a->priority == b->priority);
    CHECK(a->delivery_count == b->delivery_count && a->sub_id == b->sub_id && a->tag == b->tag);
    CHECK(a->credit == b->credit && a->start == b->start && a->start_value == b->start_value);
    CHECK(a->cumulative == b->cumulative && a->delay_ms == b->delay_ms && a->code == b->code);
    CHECK(strcmp(a->reason, b->reason) == 0 && a->position == b->position);
    CHECK(a->partition == b->partition && a->epoch == b->epoch);
    CHECK(a->meta_size == b->meta_size && a->meta_count == b->meta_count);
    CHECK(a->meta_size == 0 || memcmp(a->meta, b->meta, a->meta_size) == 0);
    CHECK(a->ack_count == b->ack_count);
    CHECK(a->ack_count == 0 || memcmp(a->acks, b->acks, a->ack_count * 29u) == 0);
    CHECK(a->payload == b->payload && a->payload_size == b->payload_size);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2) {
        return 0;
    }
    size_t n = ((size_t)data[0] << 8) | data[1];
    bool has_payload = (n & 0x8000) == 0;
    size_t hdr_len = n & 0x7fff;
    if (hdr_len > size - 2) {
        hdr_len = size - 2;
    }
    size_t payload_len = size - 2 - hdr_len;
    //  Exact-size copies, so the sanitizer sees any read past either frame.
    uint8_t *hdr = malloc(hdr_len ? hdr_len : 1);
    uint8_t *payload = malloc(payload_len ? payload_len : 1);
    CHECK(hdr && payload);
    memcpy(hdr, data + 2, hdr_len);
    memcpy(payload, data + 2 + hdr_len, payload_len);

    tern_frame_t f;
    tern_err_t rc = tern_frame_decode(&f, hdr, hdr_len, has_payload ? payload : NULL,
                                      has_payload ? payload_len : 0, NULL);
    CHECK(tern_errname(rc) != NULL);
    if (rc == TERN_OK) {
        static uint8_t out[TERN_HEADER_MAX];
        size_t out_len = 0;
        rc = tern_frame_encode(&f, out, sizeof out, &out_len);
        if (rc != TERN_OK) {
            fprintf(stderr, "re-encode of %s failed: %s\n", tern_cmd_name(f.cmd), tern_errname(rc));
        }
        CHECK(rc == TERN_OK);
        uint8_t *copy = malloc(out_len);
        CHECK(copy);
        memcpy(copy, out, out_len);
        tern_frame_t g;
        rc = tern_frame_decode(&g, copy, out_len, f.payload, f.payload_size, NULL);
        CHECK(rc == TERN_OK);
        s_same(&f, &g);
        //  Metadata iterates to its count; PUBACK entries read back.
        if (g.meta) {
            size_t pos = 0;
            tern_kv_t kv;
            uint32_t count = 0;
            while (tern_meta_next(g.meta, g.meta_size, &pos, &kv)) {
                CHECK(kv.key_len >= 1 && kv.key_len <= TERN_META_KEY_MAX);
                count++;
            }
            CHECK(count == g.meta_count);
        }
        for (uint32_t i = 0; i < g.ack_count; i++) {
            tern_puback_t ack;
            CHECK(tern_frame_puback(&g, i, &ack) == TERN_OK);
        }
        //  A topic that was valid for the command matches itself as a pattern.
        if (g.topic[0] && tern_topic_valid(g.topic, strlen(g.topic))) {
            CHECK(tern_pattern_match(g.topic, g.topic));
        }
        free(copy);
    }
    free(hdr);
    free(payload);
    return 0;
}

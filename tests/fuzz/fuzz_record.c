/*  fuzz_record.c - libFuzzer target for the stored-record decoder
    (tern_store_record_decode, the parser every LMDB read goes through).

    A record on disk is protected by its CRC32C, so random bytes almost never
    get past the check. Input layout: byte 0 is a flag byte, the rest is the
    record. Flag bit 0 set: the target first writes the right CRC32C into the
    record, so the fuzzer explores the parser behind the check. Properties:
    decoding with and without the CRC check agree when the CRC is right; a
    record that decodes stays inside its bytes (strings within their limits,
    metadata and payload inside the record, ending exactly at its end); and
    encoding it as a DELIVER, as route does with every stored message, either
    works or fails with a codec error (it never crashes). Linked with
    fuzz_replay.c (test_fuzz_record), it replays the committed corpus as a
    unit test.
*/
#include "fuzz_check.h"
#include "tern_proto.h"
#include "tern_store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_RECORD_HEADER 72 //  fixed header size (docs/storage.md)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) {
        return 0;
    }
    uint8_t flags = data[0];
    size_t len = size - 1;
    //  Exact-size copy, so the sanitizer sees any read past the record.
    uint8_t *rec = malloc(len ? len : 1);
    CHECK(rec);
    memcpy(rec, data + 1, len);
    if ((flags & 1) && len >= 4) {
        uint32_t crc = tern_crc32c(0, rec + 4, len - 4);
        rec[0] = (uint8_t)crc;
        rec[1] = (uint8_t)(crc >> 8);
        rec[2] = (uint8_t)(crc >> 16);
        rec[3] = (uint8_t)(crc >> 24);
    }
    tern_frame_t f, g;
    uint32_t topic_id = 0, topic_id2 = 0;
    tern_err_t rc = tern_store_record_decode(rec, len, false, &topic_id, &f);
    CHECK(rc == TERN_OK || rc == TERN_ECORRUPT);
    tern_err_t rc2 = tern_store_record_decode(rec, len, true, &topic_id2, &g);
    CHECK(rc2 == TERN_OK || rc2 == TERN_ECORRUPT);
    if (rc2 == TERN_OK) {
        CHECK(rc == TERN_OK); //  the CRC check only ever removes records
    }
    if ((flags & 1) && len >= 4) {
        CHECK(rc == rc2); //  with the right CRC both agree
    }
    if (rc == TERN_OK) {
        CHECK(len >= S_RECORD_HEADER);
        CHECK(strlen(f.producer) <= TERN_NAME_MAX && strlen(f.origin) <= TERN_NAME_MAX);
        CHECK(strlen(f.key) <= TERN_KEY_MAX && strlen(f.trace_id) <= TERN_TRACE_MAX);
        CHECK(f.priority <= TERN_PRIORITY_MAX);
        CHECK(f.payload >= rec + S_RECORD_HEADER && f.payload + f.payload_size == rec + len);
        if (f.meta) {
            CHECK(f.meta >= rec + S_RECORD_HEADER && f.meta + f.meta_size == f.payload);
        }
        if (rc2 == TERN_OK) {
            CHECK(topic_id == topic_id2 && f.msg_id == g.msg_id && f.seq == g.seq);
            CHECK(f.payload == g.payload && f.payload_size == g.payload_size);
        }
        //  What route does with a stored message: encode it as a DELIVER.
        strcpy(f.topic, "fuzz.topic");
        f.sub_id = 1;
        f.tag = 1;
        f.delivery_count = 1;
        static uint8_t out[TERN_HEADER_MAX];
        size_t out_len = 0;
        tern_err_t enc = tern_frame_encode(&f, out, sizeof out, &out_len);
        CHECK(tern_errname(enc) != NULL);
        if (enc == TERN_OK) {
            //  What the encoder accepted, the client's decoder accepts.
            uint8_t *copy = malloc(out_len);
            CHECK(copy);
            memcpy(copy, out, out_len);
            tern_frame_t h;
            tern_limits_t limits = {.max_payload = f.payload_size};
            CHECK(tern_frame_decode(&h, copy, out_len, f.payload, f.payload_size, &limits) ==
                  TERN_OK);
            CHECK(h.msg_id == f.msg_id && h.seq == f.seq && h.priority == f.priority);
            CHECK(h.meta_size == f.meta_size);
            free(copy);
        }
    }
    free(rec);
    return 0;
}

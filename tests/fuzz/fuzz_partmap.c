/*  fuzz_partmap.c - libFuzzer target for the partition record's text form
    (tern_partmap_record_decode, which parses every partition value read
    from etcd).

    Properties: decoding never crashes and answers TERN_OK or
    TERN_EMALFORMED; a record that decodes obeys the record invariants,
    encodes, and decodes again to the same record, whose text is then
    stable (encode(decode(encode(r))) == encode(r)). Linked with
    fuzz_replay.c (test_fuzz_partmap), it replays the committed corpus as a
    unit test.
*/
#include "fuzz_check.h"
#include "tern_partmap.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    //  Exact-size copy without a terminator: the sanitizer sees any read past it.
    char *text = malloc(size ? size : 1);
    CHECK(text);
    memcpy(text, data, size);
    tern_partmap_record_t rec, again;
    const char *why = NULL;
    tern_err_t rc = tern_partmap_record_decode(text, size, &rec, &why);
    CHECK(rc == TERN_OK || rc == TERN_EMALFORMED);
    CHECK(rc == TERN_OK || why != NULL);
    if (rc == TERN_OK) {
        CHECK(tern_partmap_record_check(&rec, NULL) == TERN_OK);
        char out[TERN_PARTMAP_TEXT_MAX], out2[TERN_PARTMAP_TEXT_MAX];
        CHECK(tern_partmap_record_encode(&rec, out, sizeof out) == TERN_OK);
        CHECK(tern_partmap_record_decode(out, strlen(out), &again, NULL) == TERN_OK);
        CHECK(tern_partmap_record_same(&rec, &again));
        CHECK(tern_partmap_record_encode(&again, out2, sizeof out2) == TERN_OK);
        CHECK(strcmp(out, out2) == 0);
    }
    free(text);
    return 0;
}

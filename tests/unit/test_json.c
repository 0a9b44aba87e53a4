/*  test_json.c - unit tests of the admin reply writer (tern_json), in
    particular tern_json_key_bytes: payloads and header values are written
    as JSON strings when they are valid UTF-8, else as base64.
*/
#include "tern_json.h"

#include <criterion/criterion.h>
#include <string.h>

//  OBJECT with one member written by tern_json_key_bytes.
static char *s_bytes(const char *data, size_t size) {
    tern_json_t json;
    tern_json_init(&json);
    tern_json_raw(&json, "{");
    tern_json_key_bytes(&json, "data", (const uint8_t *)data, size);
    tern_json_raw(&json, "}");
    return json.data; //  the caller frees it
}

Test(json, usage) {
    tern_json_t json;
    tern_json_init(&json);
    tern_json_raw(&json, "{");
    tern_json_key_str(&json, "topic", "orders");
    tern_json_key_u64(&json, "seq", 42);
    tern_json_key_bytes(&json, "data", (const uint8_t *)"hi", 2);
    tern_json_raw(&json, "}");
    cr_assert_str_eq(json.data, "{\"topic\":\"orders\",\"seq\":42,\"data\":\"hi\"}");
    tern_json_free(&json);
}

Test(json, bytes_utf8_is_a_string) {
    char *out = s_bytes("a\"b\\c\nd\0e", 9);
    cr_assert_str_eq(out, "{\"data\":\"a\\\"b\\\\c\\u000ad\\u0000e\"}");
    free(out);
    out = s_bytes("h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80", 15); //  é, €, 😀
    cr_assert_str_eq(out, "{\"data\":\"h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80\"}");
    free(out);
    out = s_bytes("", 0);
    cr_assert_str_eq(out, "{\"data\":\"\"}");
    free(out);
}

Test(json, bytes_not_utf8_is_base64) {
    struct {
        const char *data; //  input
        size_t size;      //  its length
        const char *want; //  the JSON written
    } cases[] = {
        {"\xff\xfe", 2, "{\"data_b64\":\"//4=\"}"},
        {"\xff", 1, "{\"data_b64\":\"/w==\"}"},
        {"ab\xff", 3, "{\"data_b64\":\"YWL/\"}"},
        {"\xc0\xaf", 2, "{\"data_b64\":\"wK8=\"}"},             //  overlong '/'
        {"\xed\xa0\x80", 3, "{\"data_b64\":\"7aCA\"}"},         //  a surrogate
        {"\xf4\x90\x80\x80", 4, "{\"data_b64\":\"9JCAgA==\"}"}, //  above U+10FFFF
        {"\xe2\x82", 2, "{\"data_b64\":\"4oI=\"}"},             //  truncated sequence
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *out = s_bytes(cases[i].data, cases[i].size);
        cr_assert_str_eq(out, cases[i].want, "case %zu", i);
        free(out);
    }
}

/*  test_json.c - unit tests of the one JSON writer (protocol/tern_json.c),
    which the broker's admin replies and audit lines and ternctl's output
    share: the comma rule, string escaping, tern_json_key_bytes (payloads
    and header values as JSON strings when they are valid UTF-8, else as
    base64), the UTF-8 check and base64; and of the one JSON reader
    (protocol/tern_json_read.c, ternctl's and libtern's): parsing, what it
    rejects, each value's span, and writing a parsed value back.
*/
#include "tern_json.h"
#include "tern_json_read.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

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

//  OBJECT with one member written by tern_json_key_bytes.
static char *s_bytes(const char *data, size_t size) {
    tern_json_t json;
    tern_json_init(&json);
    tern_json_raw(&json, "{");
    tern_json_key_bytes(&json, "data", (const uint8_t *)data, size);
    tern_json_raw(&json, "}");
    return json.data; //  the caller frees it
}

Test(json, bytes_utf8_is_a_string) {
    char *out = s_bytes("a\"b\\c\nd\0e", 9);
    cr_assert_str_eq(out, "{\"data\":\"a\\\"b\\\\c\\nd\\u0000e\"}");
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

static char *s_escaped(const char *s, size_t len) {
    tern_json_t json;
    tern_json_init(&json);
    tern_json_strn(&json, s, len);
    return json.data; //  the caller frees it
}

Test(json, string_escaping) {
    char *out = s_escaped("a\"b\\c\n\t\x01\x7f", 9);
    cr_assert_str_eq(out, "\"a\\\"b\\\\c\\n\\t\\u0001\\u007f\"");
    free(out);
    out = s_escaped("\r\b\f\x1f", 4);
    cr_assert_str_eq(out, "\"\\r\\b\\f\\u001f\"");
    free(out);
    out = s_escaped("caf\xc3\xa9", 5); //  UTF-8 passes through
    cr_assert_str_eq(out, "\"caf\xc3\xa9\"");
    free(out);
    out = s_escaped("a\0b", 3); //  embedded NUL
    cr_assert_str_eq(out, "\"a\\u0000b\"");
    free(out);
}

//  The comma comes from the last byte: none at the start of the buffer or
//  of a container, one before every later member or element.
Test(json, nested_objects_and_arrays) {
    tern_json_t json;
    tern_json_init(&json);
    tern_json_raw(&json, "{");
    tern_json_key_str(&json, "topic", "a.b");
    tern_json_key_u64(&json, "msg_id", UINT64_MAX);
    tern_json_key_bool(&json, "duplicate", false);
    tern_json_key(&json, "headers");
    tern_json_raw(&json, "{");
    tern_json_key_str(&json, "k", "v");
    tern_json_key_str(&json, "x", "y");
    tern_json_raw(&json, "}");
    tern_json_key(&json, "tags");
    tern_json_raw(&json, "[");
    for (int i = 0; i < 3; i++) {
        tern_json_sep(&json);
        tern_json_raw(&json, "{");
        tern_json_key_bool(&json, "ok", i == 1);
        tern_json_raw(&json, "}");
    }
    tern_json_raw(&json, "]");
    tern_json_key_str(&json, "data", "z");
    tern_json_raw(&json, "}");
    cr_assert_str_eq(json.data, "{\"topic\":\"a.b\",\"msg_id\":18446744073709551615,"
                                "\"duplicate\":false,\"headers\":{\"k\":\"v\",\"x\":\"y\"},"
                                "\"tags\":[{\"ok\":false},{\"ok\":true},{\"ok\":false}],"
                                "\"data\":\"z\"}");
    tern_json_free(&json);
}

//  The buffer grows past its first allocation, keeps NULs written raw,
//  empties on reset and can be used again after free.
Test(json, buffer_grows_resets_and_reuses) {
    tern_json_t json;
    tern_json_init(&json);
    cr_assert_str_eq(json.data, "");
    char big[1000];
    memset(big, 'x', sizeof big);
    tern_json_strn(&json, big, sizeof big);
    cr_assert_eq(json.len, sizeof big + 2);
    cr_assert_eq(json.data[json.len], 0);
    tern_json_reset(&json);
    cr_assert_eq(json.len, 0);
    cr_assert_str_eq(json.data, "");
    tern_json_rawn(&json, "a\0b", 3);
    cr_assert_eq(json.len, 3);
    cr_assert_eq(memcmp(json.data, "a\0b", 4), 0);
    tern_json_free(&json);
    cr_assert_null(json.data);
    tern_json_free(&json); //  safe twice
    tern_json_raw(&json, "{}");
    cr_assert_str_eq(json.data, "{}");
    tern_json_free(&json);
}

Test(json, utf8_and_base64) {
    cr_assert(tern_json_utf8_valid((const uint8_t *)"plain", 5));
    cr_assert(tern_json_utf8_valid((const uint8_t *)"\xe2\x82\xac", 3));
    cr_assert(tern_json_utf8_valid((const uint8_t *)"\xf0\x9f\x98\x80", 4));
    cr_assert_not(tern_json_utf8_valid((const uint8_t *)"\xc0\xaf", 2));     //  overlong
    cr_assert_not(tern_json_utf8_valid((const uint8_t *)"\xed\xa0\x80", 3)); //  surrogate
    cr_assert_not(tern_json_utf8_valid((const uint8_t *)"\xe2\x82", 2));     //  truncated
    cr_assert_not(tern_json_utf8_valid((const uint8_t *)"\xff", 1));
    const char *in[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    const char *out[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    for (size_t i = 0; i < 7; i++) {
        tern_json_t json;
        tern_json_init(&json);
        tern_json_base64(&json, (const uint8_t *)in[i], strlen(in[i]));
        cr_assert_str_eq(json.data, out[i]);
        tern_json_free(&json);
    }
}

//  ---------------------------------------------------------------------------
//  The reader (tern_json_read.c)

Test(json_read, parse_and_rewrite) {
    const char *text = " [ {\"topic\":\"a\\u00e9\\n\",\"msgs\":10,\"big\":18446744073709551615,"
                       "\"ok\":true,\"none\":null,\"f\":-1.5e3,\"arr\":[]} , {} ] ";
    tern_json_value_t *doc = tern_json_parse(text, strlen(text));
    cr_assert_not_null(doc);
    cr_assert_eq(doc->kind, TERN_JSON_ARRAY);
    cr_assert_eq(doc->count, 2);
    const tern_json_value_t *topic = tern_json_get(doc->items[0], "topic");
    cr_assert_str_eq(topic->text, "a\xc3\xa9\n");
    cr_assert_str_eq(tern_json_get(doc->items[0], "big")->text, "18446744073709551615");
    tern_json_t b;
    tern_json_init(&b);
    tern_json_write_value(&b, doc->items[0]);
    cr_assert_str_eq(b.data, "{\"topic\":\"a\xc3\xa9\\n\",\"msgs\":10,"
                             "\"big\":18446744073709551615,\"ok\":true,\"none\":null,"
                             "\"f\":-1.5e3,\"arr\":[]}");
    tern_json_free(&b);
    tern_json_value_destroy(&doc);
    cr_assert_null(doc);
}

Test(json_read, parse_rejects_invalid) {
    const char *bad[] = {"",
                         "{",
                         "[1,]",
                         "{\"a\" 1}",
                         "01",
                         "\"\\x\"",
                         "tru",
                         "[1] 2",
                         "\"\x01\"",
                         "{\"a\":}",
                         "\"\\ud800\"",
                         "1.",
                         "-",
                         "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["
                         "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["
                         "[[[]]]"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        tern_json_value_t *doc = tern_json_parse(bad[i], strlen(bad[i]));
        cr_assert_null(doc, "accepted '%s'", bad[i]);
    }
}

//  Each value's span is its text in the input, as written: libtern hands
//  on an element of a node's admin reply that way.
Test(json_read, spans_are_the_input_text) {
    const char *text = "[ {\"topic\": \"a\\u0041\" , \"n\":1} ,\t2 ]";
    tern_json_value_t *doc = tern_json_parse(text, strlen(text));
    cr_assert_not_null(doc);
    cr_assert_eq(doc->src, text);
    cr_assert_eq(doc->src_len, strlen(text));
    const tern_json_value_t *first = doc->items[0];
    cr_assert_eq(first->src_len, strlen("{\"topic\": \"a\\u0041\" , \"n\":1}"));
    cr_assert_eq(strncmp(first->src, "{\"topic\"", 8), 0);
    cr_assert_str_eq(tern_json_get(first, "topic")->text, "aA");
    cr_assert_eq(tern_json_get(first, "topic")->src_len, 9);
    cr_assert_eq(doc->items[1]->src_len, 1);
    cr_assert_eq(*doc->items[1]->src, '2');
    tern_json_value_destroy(&doc);
}

//  JSON lines: the first value is read, what follows it is left.
Test(json_read, parse_first_of_lines) {
    const char *text = " {\"seq\":1}\n{\"seq\":2}\n";
    size_t used = 0;
    tern_json_value_t *doc = tern_json_parse_first(text, strlen(text), &used);
    cr_assert_not_null(doc);
    cr_assert_eq(tern_json_get_u64(doc, "seq"), 1);
    cr_assert_eq(used, strlen(" {\"seq\":1}\n"));
    tern_json_value_destroy(&doc);
    doc = tern_json_parse_first(text + used, strlen(text + used), &used);
    cr_assert_eq(tern_json_get_u64(doc, "seq"), 2);
    cr_assert_eq(used, strlen("{\"seq\":2}\n"));
    tern_json_value_destroy(&doc);
    cr_assert_null(tern_json_parse(text, strlen(text)), "two values are not one document");
    cr_assert_null(tern_json_parse_first("{\"seq\":", 7, &used));
}

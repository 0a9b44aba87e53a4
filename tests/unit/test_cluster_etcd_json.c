/*  test_cluster_etcd_json.c - the gateway encoding under the etcd client:
    base64, prefix ranges, endpoint lists, and replies of every wrong shape
    refused rather than trusted (cluster/tern_etcd_json.c). The client itself
    is tested against real etcd in tests/integration/it_etcd.c.
*/
#include "tern_etcd_json.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

Test(etcd_json, usage_a_key_value_from_the_gateway) {
    //  What /v3/kv/range returns for foo = bar.
    const char *text = "{\"key\":\"Zm9v\",\"create_revision\":\"2\",\"mod_revision\":\"3\","
                       "\"version\":\"2\",\"value\":\"YmFy\",\"lease\":\"7\"}";
    json_t *obj = json_loads(text, 0, NULL);
    tern_etcd_kv_t kv;
    cr_assert(tern_etcd_kv_parse(obj, &kv));
    cr_assert_str_eq(kv.key, "foo");
    cr_assert_str_eq(kv.value, "bar");
    cr_assert_eq(kv.create_revision, 2);
    cr_assert_eq(kv.mod_revision, 3);
    cr_assert_eq(kv.version, 2);
    cr_assert_eq(kv.lease, 7);
    tern_etcd_kv_clear(&kv);
    cr_assert_null(kv.key);
    json_decref(obj);
}

Test(etcd_json, base64_round_trips_every_length) {
    unsigned char data[300];
    for (size_t i = 0; i < sizeof data; i++) {
        data[i] = (unsigned char)(i * 37 + 11);
    }
    for (size_t len = 0; len <= sizeof data; len++) {
        char *b64 = tern_etcd_b64(data, len);
        cr_assert_eq(strlen(b64), (len + 2) / 3 * 4);
        size_t size = 0;
        char *back = tern_etcd_unb64(b64, &size);
        cr_assert_not_null(back, "len %zu", len);
        cr_assert_eq(size, len);
        cr_assert_eq(memcmp(back, data, len), 0);
        cr_assert_eq(back[len], '\0');
        free(back);
        free(b64);
    }
    char *b64 = tern_etcd_b64("foo", 3);
    cr_assert_str_eq(b64, "Zm9v");
    free(b64);
    b64 = tern_etcd_b64("fo", 2);
    cr_assert_str_eq(b64, "Zm8=");
    free(b64);
}

Test(etcd_json, base64_refuses_what_is_not) {
    const char *bad[] = {"Zm9", "Zm9v!", "Zm=v", "=m9v", "Z===", "Zm9v\n", "Zm8=Zm8="};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        size_t size = 0;
        cr_assert_null(tern_etcd_unb64(bad[i], &size), "%s", bad[i]);
    }
}

Test(etcd_json, prefix_end_follows_etcds_rule) {
    struct {
        const char *prefix;
        const char *end; //  decoded range_end
        size_t size;     //  its length
    } cases[] = {
        {"foo", "fop", 3}, {"a/", "a0", 2},
        {"a\xff", "b", 1}, {"\xff\xff", "\0", 1}, //  no byte to increment: to the end
        {"", "\0", 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *b64 = tern_etcd_prefix_end(cases[i].prefix);
        size_t size = 0;
        char *end = tern_etcd_unb64(b64, &size);
        cr_assert_eq(size, cases[i].size, "case %zu", i);
        cr_assert_eq(memcmp(end, cases[i].end, size), 0, "case %zu", i);
        free(end);
        free(b64);
    }
}

Test(etcd_json, endpoint_lists) {
    char *urls[TERN_ETCD_ENDPOINTS_MAX];
    cr_assert_eq(tern_etcd_endpoints_parse("http://a:1,https://b:2/", urls), 2);
    cr_assert_str_eq(urls[0], "http://a:1");
    cr_assert_str_eq(urls[1], "https://b:2");
    free(urls[0]);
    free(urls[1]);
    const char *bad[] = {"",
                         NULL,
                         "a:1",
                         "http://a:1,",
                         "http://a:1,,http://b:2",
                         "http://",
                         "tcp://a:1",
                         "http://a:1,ftp://b"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_eq(tern_etcd_endpoints_parse(bad[i], urls), 0, "%s", bad[i]);
    }
    char many[1024] = "";
    for (int i = 0; i <= TERN_ETCD_ENDPOINTS_MAX; i++) {
        strcat(many, i ? ",http://h:1" : "http://h:1");
    }
    cr_assert_eq(tern_etcd_endpoints_parse(many, urls), 0);
}

Test(etcd_json, replies_of_the_wrong_shape_are_refused) {
    const char *bad[] = {
        "[]",
        "{}",                                             //  no key
        "{\"key\":\"\"}",                                 //  empty key
        "{\"key\":\"Zm9v\",\"value\":\"***\"}",           //  not base64
        "{\"key\":42}",                                   //  not a string
        "{\"key\":\"Zm9v\",\"mod_revision\":\"12x\"}",    //  not a number
        "{\"key\":\"Zm9v\",\"mod_revision\":\"\"}",       //  empty number
        "{\"key\":\"Zm9v\",\"version\":true}",            //  wrong type
        "{\"key\":\"Zm9v\",\"lease\":{\"a\":1}}",         //  wrong type
        "{\"key\":\"Zm9v\",\"create_revision\":[\"1\"]}", //  wrong type
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_t *obj = json_loads(bad[i], 0, NULL);
        tern_etcd_kv_t kv;
        cr_assert_not(tern_etcd_kv_parse(obj, &kv), "%s", bad[i]);
        cr_assert_null(kv.key);
        json_decref(obj);
    }
    cr_assert_not(tern_etcd_kv_parse(NULL, &(tern_etcd_kv_t){0}));
    int64_t out = -1;
    json_t *obj = json_loads("{\"n\":5,\"s\":\"-3\"}", 0, NULL);
    cr_assert(tern_etcd_json_i64(obj, "n", &out));
    cr_assert_eq(out, 5);
    cr_assert(tern_etcd_json_i64(obj, "s", &out));
    cr_assert_eq(out, -3);
    cr_assert(tern_etcd_json_i64(obj, "absent", &out));
    cr_assert_eq(out, 0);
    cr_assert_not(tern_etcd_json_i64(NULL, "n", &out));
    json_decref(obj);
}

Test(etcd_json, grpc_codes_map_to_tern_errors) {
    cr_assert_eq(tern_etcd_grpc_err(5, "etcdserver: requested lease not found"), TERN_ESTATE);
    cr_assert_eq(tern_etcd_grpc_err(11, "etcdserver: mvcc: required revision has been compacted"),
                 TERN_ERANGE);
    cr_assert_eq(tern_etcd_grpc_err(14, "etcdserver: no leader"), TERN_EBUSY);
    cr_assert_eq(tern_etcd_grpc_err(3, "etcdserver: request is too large"), TERN_ETOOBIG);
    cr_assert_eq(tern_etcd_grpc_err(8, "grpc: received message larger than max"), TERN_ETOOBIG);
    cr_assert_eq(tern_etcd_grpc_err(3, "etcdserver: key is not provided"), TERN_EINVAL);
    cr_assert_eq(tern_etcd_grpc_err(4, "context deadline exceeded"), TERN_ETIMEOUT);
    cr_assert_eq(tern_etcd_grpc_err(16, "etcdserver: invalid auth token"), TERN_EDENIED);
    cr_assert_eq(tern_etcd_grpc_err(99, "?"), TERN_EBUSY);
}

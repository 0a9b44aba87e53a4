/*  test_route.c - pure logic of the route actor: backoff and windows. */
#include "tern_json.h"
#include "tern_route_priv.h"
#include <criterion/criterion.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

Test(route, usage_backoff_doubles_then_caps) {
    cr_assert_eq(tern_route_backoff_ms(100, 3600000, 1), 100);
    cr_assert_eq(tern_route_backoff_ms(100, 3600000, 2), 200);
    cr_assert_eq(tern_route_backoff_ms(100, 3600000, 4), 800);
    cr_assert_eq(tern_route_backoff_ms(100, 1000, 5), 1000);
    cr_assert_eq(tern_route_backoff_ms(100, 1000, 0), 100);
    cr_assert_eq(tern_route_backoff_ms(100, UINT64_MAX, 200), UINT64_MAX);
}

Test(route, window) {
    cr_assert_eq(tern_route_window(0, 1000), 1000);
    cr_assert_eq(tern_route_window(10, 1000), 10);
    cr_assert_eq(tern_route_window(5000, 1000), 1000);
    cr_assert_eq(tern_route_window(0, 0), 1);
}

Test(route, json_escapes) {
    tern_json_t json;
    tern_json_init(&json);
    tern_json_raw(&json, "{");
    tern_json_key_str(&json, "a", "q\"b\\\n");
    tern_json_key_u64(&json, "n", 18446744073709551615ull);
    tern_json_raw(&json, "}");
    cr_assert_str_eq(json.data, "{\"a\":\"q\\\"b\\\\\\n\",\"n\":18446744073709551615}");
    tern_json_free(&json);
}

Test(route, u64_str_matches_printf) {
    const uint64_t values[] = {0, 9, 10, 99, 100, 12345678901234567890ull, UINT64_MAX};
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        char got[21], want[32];
        size_t len = tern_route_u64_str(values[i], got);
        snprintf(want, sizeof want, "%" PRIu64, values[i]);
        cr_assert_str_eq(got, want);
        cr_assert_eq(len, strlen(want));
    }
}

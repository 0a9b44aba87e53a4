/*  test_units.c - durations, sizes and times (protocol/tern_units.c): the
    one grammar of ternd's config, libtern's tern_parse_* and ternctl, its
    errors, and formatters whose EXACT (and EXACT_IEC) output parses back to
    the same value.
*/
#include "tern_units.h"

#include <criterion/criterion.h>
#include <string.h>

Test(units, usage) {
    uint64_t ms = 0, bytes = 0;
    const char *why = NULL;
    cr_assert_eq(tern_units_parse_duration("1m30s", &ms, &why), TERN_OK);
    cr_assert_eq(ms, 90000);
    cr_assert_null(why);
    cr_assert_eq(tern_units_parse_size("64KiB", &bytes, NULL), TERN_OK);
    cr_assert_eq(bytes, 65536);
    cr_assert_eq(tern_units_parse_duration("5x", &ms, &why), TERN_EINVAL);
    cr_assert_str_eq(why, "unknown unit (use ms, s, m, h, d or w)");
    char buf[TERN_UNITS_BUF];
    cr_assert_str_eq(tern_units_format_duration(9000000, TERN_UNITS_HUMAN, buf, sizeof buf),
                     "2h30m");
    cr_assert_str_eq(tern_units_format_size(10ULL << 30, TERN_UNITS_HUMAN, buf, sizeof buf),
                     "10 GiB");
    cr_assert_str_eq(tern_units_format_time(1796646834123ULL, buf, sizeof buf),
                     "2026-12-07T12:33:54.123Z");
}

Test(units, durations) {
    static const struct {
        const char *text; //  as written
        uint64_t ms;      //  what it means
    } good[] = {{"0", 0},
                {"250", 250},
                {"250ms", 250},
                {"500ms", 500},
                {"30s", 30000},
                {"5m", 300000},
                {"2h", 7200000},
                {"7d", 604800000},
                {"1w", 604800000},
                {"0s", 0},
                {"1m30s", 90000},
                {"2h30m", 9000000},
                {"1d12h", 129600000},
                {"1w1d1h1m1s1ms", 604800000ULL + 86400000 + 3600000 + 60000 + 1000 + 1},
                {"1.5s", 1500},
                {"0.5s", 500},
                {"1.5h", 5400000},
                {"0.001s", 1},
                {"1m30.25s", 90250},
                {"5sec", 5000},
                {"5min", 300000},
                {"18446744073709551615", UINT64_MAX},
                {"213503982334d", 213503982334ULL * 86400000}};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        uint64_t ms = 1;
        cr_assert_eq(tern_units_parse_duration(good[i].text, &ms, NULL), TERN_OK, "rejected \"%s\"",
                     good[i].text);
        cr_assert_eq(ms, good[i].ms, "\"%s\" gave %llu", good[i].text, (unsigned long long)ms);
    }
}

Test(units, duration_errors) {
    static const struct {
        const char *text; //  bad input
        const char *why;  //  the reason given
    } bad[] = {{"", "empty"},
               {"ms", "expected a number"},
               {"s", "expected a number"},
               {"-1", "expected a number"},
               {"-1s", "expected a number"},
               {"+5", "expected a number"},
               {" 5", "expected a number"},
               {"5 s", "unexpected character (no spaces or signs)"},
               {"5s ", "unexpected character (no spaces or signs)"},
               {"0x10", "unknown unit (use ms, s, m, h, d or w)"},
               {"5S", "unknown unit (use ms, s, m, h, d or w)"},
               {"5x", "unknown unit (use ms, s, m, h, d or w)"},
               {"5mss", "unknown unit (use ms, s, m, h, d or w)"},
               {"30s1m", "units must go from the largest to the smallest, each once"},
               {"1m1m", "units must go from the largest to the smallest, each once"},
               {"1m30", "missing unit after the last number"},
               {"1.5", "finer than 1 ms"},
               {"1.0005s", "finer than 1 ms"},
               {"1.5ms", "finer than 1 ms"},
               {"1.s", "expected digits after the decimal point"},
               {".5s", "expected a number"},
               {"1.1234567s", "more than 6 decimals"},
               {"18446744073709551616", "too large"},
               {"213503982335d", "too large"},
               {"5124095576031h", "too large"},
               {"99999999999999999999d", "too large"},
               {"213503982334d24h", "too large"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint64_t ms = 42;
        const char *why = NULL;
        cr_assert_eq(tern_units_parse_duration(bad[i].text, &ms, &why), TERN_EINVAL,
                     "accepted \"%s\"", bad[i].text);
        cr_assert_eq(ms, 42, "changed the output on \"%s\"", bad[i].text);
        cr_assert_str_eq(why, bad[i].why, "\"%s\"", bad[i].text);
    }
    uint64_t ms;
    cr_assert_eq(tern_units_parse_duration(NULL, &ms, NULL), TERN_EINVAL);
    cr_assert_eq(tern_units_parse_duration("1s", NULL, NULL), TERN_EINVAL);
}

Test(units, sizes) {
    static const struct {
        const char *text; //  as written
        uint64_t bytes;   //  what it means
    } good[] = {{"0", 0},
                {"512", 512},
                {"512b", 512},
                {"512 B", 512},
                {"64K", 65536},
                {"64k", 65536},
                {"64KiB", 65536},
                {"64 KiB", 65536},
                {"1M", 1048576},
                {"1m", 1048576},
                {"1MiB", 1048576},
                {"1.5M", 1572864},
                {"2G", 2ULL << 30},
                {"10 GiB", 10ULL << 30},
                {"1T", 1ULL << 40},
                {"16777215T", 16777215ULL << 40},
                {"64KB", 64000},
                {"1.5MB", 1500000},
                {"2gb", 2000000000ULL},
                {"1TB", 1000000000000ULL},
                {"1.1KiB", 1126}, //  1126.4, rounded down
                {"0.5K", 512}};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        uint64_t bytes = 1;
        cr_assert_eq(tern_units_parse_size(good[i].text, &bytes, NULL), TERN_OK, "rejected \"%s\"",
                     good[i].text);
        cr_assert_eq(bytes, good[i].bytes, "\"%s\" gave %llu", good[i].text,
                     (unsigned long long)bytes);
    }
}

Test(units, size_errors) {
    static const struct {
        const char *text; //  bad input
        const char *why;  //  the reason given
    } bad[] = {{"", "empty"},
               {"K", "expected a number"},
               {"-1", "expected a number"},
               {"+1", "expected a number"},
               {" 1", "expected a number"},
               {"1Q", "unknown unit (use B, K, M, G, T, KiB..TiB or KB..TB)"},
               {"1KK", "unknown unit (use B, K, M, G, T, KiB..TiB or KB..TB)"},
               {"1Ki", "unknown unit (use B, K, M, G, T, KiB..TiB or KB..TB)"},
               {"0x1", "unknown unit (use B, K, M, G, T, KiB..TiB or KB..TB)"},
               {"1M ", "unknown unit (use B, K, M, G, T, KiB..TiB or KB..TB)"},
               {"1  M", "unknown unit (use B, K, M, G, T, KiB..TiB or KB..TB)"},
               {"1 ", "unknown unit (use B, K, M, G, T, KiB..TiB or KB..TB)"},
               {"1.5", "a fraction of a byte"},
               {"1.5B", "a fraction of a byte"},
               {"16777216T", "too large"},
               {"17179869184G", "too large"},
               {"99999999999999999999", "too large"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint64_t bytes = 42;
        const char *why = NULL;
        cr_assert_eq(tern_units_parse_size(bad[i].text, &bytes, &why), TERN_EINVAL,
                     "accepted \"%s\"", bad[i].text);
        cr_assert_eq(bytes, 42);
        cr_assert_str_eq(why, bad[i].why, "\"%s\"", bad[i].text);
    }
    cr_assert_eq(tern_units_parse_size(NULL, NULL, NULL), TERN_EINVAL);
}

Test(units, format_duration) {
    static const struct {
        uint64_t ms;       //  input
        const char *exact; //  TERN_UNITS_EXACT
        const char *human; //  TERN_UNITS_HUMAN
    } cases[] = {{0, "0s", "0s"},
                 {1, "1ms", "1ms"},
                 {250, "250ms", "250ms"},
                 {1000, "1s", "1s"},
                 {1500, "1.5s", "1.5s"},
                 {12345, "12.345s", "12.345s"},
                 {1010, "1.01s", "1.01s"},
                 {90000, "1m30s", "1m30s"},
                 {90500, "1m30.5s", "1m30s"},
                 {3600000, "1h", "1h"},
                 {3630000, "1h30s", "1h"},
                 {9000000, "2h30m", "2h30m"},
                 {604800000, "7d", "7d"},
                 {90061001, "1d1h1m1.001s", "1d1h"},
                 {UINT64_MAX, "213503982334d14h25m51.615s", "213503982334d14h"}};
    char buf[TERN_UNITS_BUF];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cr_assert_str_eq(tern_units_format_duration(cases[i].ms, TERN_UNITS_EXACT, buf, sizeof buf),
                         cases[i].exact);
        cr_assert_str_eq(tern_units_format_duration(cases[i].ms, TERN_UNITS_HUMAN, buf, sizeof buf),
                         cases[i].human);
    }
    //  A short buffer is cut, never overrun.
    char small[4];
    cr_assert_str_eq(tern_units_format_duration(90061001, TERN_UNITS_EXACT, small, sizeof small),
                     "1d1");
}

Test(units, format_size) {
    static const struct {
        uint64_t bytes;    //  input
        const char *exact; //  TERN_UNITS_EXACT
        const char *iec;   //  TERN_UNITS_EXACT_IEC
        const char *human; //  TERN_UNITS_HUMAN
    } cases[] = {{0, "0", "0 B", "0 B"},
                 {512, "512", "512 B", "512 B"},
                 {1023, "1023", "1023 B", "1023 B"},
                 {1024, "1K", "1 KiB", "1 KiB"},
                 {1536, "1536", "1536 B", "1.5 KiB"},
                 {65536, "64K", "64 KiB", "64 KiB"},
                 {1000000, "1000000", "1000000 B", "976 KiB"},
                 {1234567, "1234567", "1234567 B", "1.17 MiB"},
                 {1048576, "1M", "1 MiB", "1 MiB"},
                 {1048576 + 1024, "1025K", "1025 KiB", "1 MiB"},
                 {10ULL << 30, "10G", "10 GiB", "10 GiB"},
                 {(1ULL << 40) * 3, "3T", "3 TiB", "3 TiB"},
                 {(1ULL << 40) * 2048, "2048T", "2048 TiB", "2048 TiB"},
                 {UINT64_MAX, "18446744073709551615", "18446744073709551615 B", "16777215 TiB"}};
    char buf[TERN_UNITS_BUF];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cr_assert_str_eq(tern_units_format_size(cases[i].bytes, TERN_UNITS_EXACT, buf, sizeof buf),
                         cases[i].exact);
        cr_assert_str_eq(
            tern_units_format_size(cases[i].bytes, TERN_UNITS_EXACT_IEC, buf, sizeof buf),
            cases[i].iec);
        cr_assert_str_eq(tern_units_format_size(cases[i].bytes, TERN_UNITS_HUMAN, buf, sizeof buf),
                         cases[i].human);
    }
    //  Durations have no IEC form: EXACT_IEC writes them as EXACT does.
    cr_assert_str_eq(tern_units_format_duration(90061001, TERN_UNITS_EXACT_IEC, buf, sizeof buf),
                     "1d1h1m1.001s");
}

Test(units, format_time) {
    char buf[TERN_UNITS_BUF];
    cr_assert_str_eq(tern_units_format_time(0, buf, sizeof buf), "1970-01-01T00:00:00.000Z");
    cr_assert_str_eq(tern_units_format_time(951782400007ULL, buf, sizeof buf),
                     "2000-02-29T00:00:00.007Z");
}

//  EXACT output parses back to the value it came from, for values across
//  every unit boundary; HUMAN sizes parse back too (rounded down).
Test(units, round_trips) {
    static const uint64_t values[] = {0,
                                      1,
                                      999,
                                      1000,
                                      1001,
                                      59999,
                                      60000,
                                      90500,
                                      3599999,
                                      3600000,
                                      86399999,
                                      86400000,
                                      604800001,
                                      1ULL << 20,
                                      1234567,
                                      1ULL << 40,
                                      UINT64_MAX / 1000,
                                      UINT64_MAX};
    char buf[TERN_UNITS_BUF];
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        uint64_t back = 0;
        tern_units_format_duration(values[i], TERN_UNITS_EXACT, buf, sizeof buf);
        cr_assert_eq(tern_units_parse_duration(buf, &back, NULL), TERN_OK, "\"%s\"", buf);
        cr_assert_eq(back, values[i], "%llu -> \"%s\" -> %llu", (unsigned long long)values[i], buf,
                     (unsigned long long)back);
        tern_units_format_duration(values[i], TERN_UNITS_HUMAN, buf, sizeof buf);
        cr_assert_eq(tern_units_parse_duration(buf, &back, NULL), TERN_OK, "\"%s\"", buf);
        cr_assert_leq(back, values[i], "\"%s\"", buf);
        tern_units_format_size(values[i], TERN_UNITS_EXACT, buf, sizeof buf);
        cr_assert_eq(tern_units_parse_size(buf, &back, NULL), TERN_OK, "\"%s\"", buf);
        cr_assert_eq(back, values[i], "\"%s\"", buf);
        tern_units_format_size(values[i], TERN_UNITS_EXACT_IEC, buf, sizeof buf);
        cr_assert_eq(tern_units_parse_size(buf, &back, NULL), TERN_OK, "\"%s\"", buf);
        cr_assert_eq(back, values[i], "\"%s\"", buf);
        tern_units_format_size(values[i], TERN_UNITS_HUMAN, buf, sizeof buf);
        cr_assert_eq(tern_units_parse_size(buf, &back, NULL), TERN_OK, "\"%s\"", buf);
        cr_assert_leq(back, values[i], "\"%s\"", buf);
    }
}

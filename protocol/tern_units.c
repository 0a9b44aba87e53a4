/*  tern_units.c - durations, sizes and times as people write and read them.

    One table of units per kind drives the parser; the formatters write only
    what the parser reads back. See tern_units.h for the grammar.
*/
#include "tern_units.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define S_SEC      1000ULL
#define S_MIN      (60 * S_SEC)
#define S_HOUR     (60 * S_MIN)
#define S_DAY      (24 * S_HOUR)
#define S_KIB      1024ULL
#define S_FRAC_MAX 6 //  decimals in a fraction: keeps fraction x unit inside 64 bits

typedef struct {
    const char *name; //  as written
    uint64_t factor;  //  its value in ms or bytes
} s_unit_t;

//  Durations: compared with case; "m" is minutes, so "M" is refused.
static const s_unit_t s_duration_units[] = {{"w", 7 * S_DAY}, {"d", S_DAY},   {"h", S_HOUR},
                                            {"m", S_MIN},     {"min", S_MIN}, {"s", S_SEC},
                                            {"sec", S_SEC},   {"ms", 1},      {NULL, 0}};

//  Sizes: compared without case. The single letters are powers of 1024
//  because configs have always read "64K" and "1M" that way.
static const s_unit_t s_size_units[] = {{"b", 1},
                                        {"k", S_KIB},
                                        {"m", S_KIB *S_KIB},
                                        {"g", S_KIB *S_KIB *S_KIB},
                                        {"t", S_KIB *S_KIB *S_KIB *S_KIB},
                                        {"kib", S_KIB},
                                        {"mib", S_KIB *S_KIB},
                                        {"gib", S_KIB *S_KIB *S_KIB},
                                        {"tib", S_KIB *S_KIB *S_KIB *S_KIB},
                                        {"kb", 1000ULL},
                                        {"mb", 1000ULL * 1000},
                                        {"gb", 1000ULL * 1000 * 1000},
                                        {"tb", 1000ULL * 1000 * 1000 * 1000},
                                        {NULL, 0}};

//  A number as written: whole part and an optional fraction FRAC / SCALE.
typedef struct {
    uint64_t whole; //  digits before the point
    uint64_t frac;  //  digits after it, as an integer
    uint64_t scale; //  10^(number of those digits); 1 when there are none
} s_number_t;

//  Reads digits[.digits] at *P. Returns NULL or the reason it cannot.
static const char *s_read_number(const char **p, s_number_t *n) {
    const char *at = *p;
    if (*at < '0' || *at > '9') {
        return "expected a number";
    }
    *n = (s_number_t){0, 0, 1};
    for (; *at >= '0' && *at <= '9'; at++) {
        unsigned digit = (unsigned)(*at - '0');
        if (n->whole > (UINT64_MAX - digit) / 10) {
            return "too large";
        }
        n->whole = n->whole * 10 + digit;
    }
    if (*at == '.') {
        at++;
        if (*at < '0' || *at > '9') {
            return "expected digits after the decimal point";
        }
        for (int count = 0; *at >= '0' && *at <= '9'; at++, count++) {
            if (count == S_FRAC_MAX) {
                return "more than 6 decimals";
            }
            n->frac = n->frac * 10 + (uint64_t)(*at - '0');
            n->scale *= 10;
        }
    }
    *p = at;
    return NULL;
}

//  *OUT += N x FACTOR; the fraction's remainder (finer than 1) goes to *REST.
static const char *s_add(const s_number_t *n, uint64_t factor, uint64_t *out, uint64_t *rest) {
    if (factor && n->whole > UINT64_MAX / factor) {
        return "too large";
    }
    uint64_t value = n->whole * factor;
    uint64_t part = n->frac * factor; //  below 10^6 x 2^40: no overflow
    value += part / n->scale;
    if (value < part / n->scale || *out > UINT64_MAX - value) {
        return "too large";
    }
    *out += value;
    *rest += part % n->scale;
    return NULL;
}

//  The unit of TABLE spelled by the LEN bytes at TEXT, or NULL.
static const s_unit_t *s_find_unit(const s_unit_t *table, const char *text, size_t len,
                                   bool nocase) {
    for (const s_unit_t *u = table; u->name; u++) {
        if (strlen(u->name) == len &&
            (nocase ? strncasecmp(u->name, text, len) : strncmp(u->name, text, len)) == 0) {
            return u;
        }
    }
    return NULL;
}

static const char *s_parse_duration(const char *p, uint64_t *ms) {
    if (!p || !*p) {
        return "empty";
    }
    uint64_t total = 0, rest = 0, last_factor = UINT64_MAX;
    while (*p) {
        if (last_factor != UINT64_MAX && (*p < '0' || *p > '9')) {
            return "unexpected character (no spaces or signs)";
        }
        s_number_t n;
        const char *why = s_read_number(&p, &n);
        if (why) {
            return why;
        }
        size_t len = strspn(p, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ");
        if (len == 0 && *p == 0 && last_factor == UINT64_MAX) {
            last_factor = 1; //  a bare number: milliseconds
        } else if (len == 0) {
            return *p ? "unexpected character (no spaces or signs)"
                      : "missing unit after the last number";
        } else {
            const s_unit_t *unit = s_find_unit(s_duration_units, p, len, false);
            if (!unit) {
                return "unknown unit (use ms, s, m, h, d or w)";
            }
            if (unit->factor >= last_factor) {
                return "units must go from the largest to the smallest, each once";
            }
            last_factor = unit->factor;
            p += len;
        }
        if ((why = s_add(&n, last_factor, &total, &rest)) != NULL) {
            return why;
        }
    }
    if (rest) {
        return "finer than 1 ms";
    }
    *ms = total;
    return NULL;
}

static const char *s_parse_size(const char *p, uint64_t *bytes) {
    if (!p || !*p) {
        return "empty";
    }
    s_number_t n;
    const char *why = s_read_number(&p, &n);
    if (why) {
        return why;
    }
    uint64_t factor = 1;
    if (*p) {
        p += *p == ' ';
        size_t len = strlen(p);
        const s_unit_t *unit = s_find_unit(s_size_units, p, len, true);
        if (!unit) {
            return "unknown unit (use B, K, M, G, T, KiB..TiB or KB..TB)";
        }
        factor = unit->factor;
    }
    uint64_t total = 0, rest = 0;
    if ((why = s_add(&n, factor, &total, &rest)) != NULL) {
        return why;
    }
    if (factor == 1 && n.frac) {
        return "a fraction of a byte";
    }
    *bytes = total;
    return NULL;
}

//  Ends a parse: on success (no REASON) stores VALUE in *OUT.
static tern_err_t s_finish(const char *reason, uint64_t value, uint64_t *out, const char **why) {
    if (why) {
        *why = reason;
    }
    if (reason) {
        return TERN_EINVAL;
    }
    *out = value;
    return TERN_OK;
}

tern_err_t tern_units_parse_duration(const char *text, uint64_t *ms, const char **why) {
    uint64_t value = 0;
    const char *reason = ms ? s_parse_duration(text, &value) : "no output";
    return s_finish(reason, value, ms, why);
}

tern_err_t tern_units_parse_size(const char *text, uint64_t *bytes, const char **why) {
    uint64_t value = 0;
    const char *reason = bytes ? s_parse_size(text, &value) : "no output";
    return s_finish(reason, value, bytes, why);
}

//  Writes COUNT NAME into BUF, with MILLIS (0..999) as a fraction of
//  COUNT, trailing zeros cut; returns the length written (or wanted).
static size_t s_write_part(char *buf, size_t len, uint64_t count, uint64_t millis,
                           const char *name) {
    int n;
    if (millis) {
        int digits = 3;
        for (; millis % 10 == 0; millis /= 10) {
            digits--;
        }
        n = snprintf(buf, len, "%llu.%0*llu%s", (unsigned long long)count, digits,
                     (unsigned long long)millis, name);
    } else {
        n = snprintf(buf, len, "%llu%s", (unsigned long long)count, name);
    }
    return n > 0 ? (size_t)n : 0;
}

char *tern_units_format_duration(uint64_t ms, tern_units_style_t style, char *buf, size_t len) {
    static const s_unit_t parts[] = {{"d", S_DAY}, {"h", S_HOUR}, {"m", S_MIN}, {"s", S_SEC}};
    if (!buf || len == 0) {
        return buf;
    }
    if (ms < S_SEC) {
        s_write_part(buf, len, ms, 0, ms ? "ms" : "s");
        return buf;
    }
    buf[0] = 0;
    size_t at = 0;
    int first = -1; //  the largest part written
    for (int i = 0; i < 4 && at < len; i++) {
        uint64_t count = ms / parts[i].factor;
        ms %= parts[i].factor;
        if (style == TERN_UNITS_HUMAN && first >= 0 && i > first + 1) {
            break;
        }
        //  Seconds carry the milliseconds, unless HUMAN already has a larger part.
        bool millis = i == 3 && ms && (style != TERN_UNITS_HUMAN || first < 0);
        if (count == 0 && !millis) {
            continue;
        }
        first = first < 0 ? i : first;
        at += s_write_part(buf + at, len - at, count, millis ? ms : 0, parts[i].name);
    }
    return buf;
}

char *tern_units_format_size(uint64_t bytes, tern_units_style_t style, char *buf, size_t len) {
    static const char *const names[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    if (!buf || len == 0) {
        return buf;
    }
    if (style != TERN_UNITS_HUMAN) {
        //  The largest unit that divides BYTES, so that no digit is lost:
        //  "64K" to be parsed back, "64 KiB" in a reason.
        static const char *const letters[] = {"", "K", "M", "G", "T"};
        bool iec = style == TERN_UNITS_EXACT_IEC;
        for (int unit = 4; unit > 0; unit--) {
            uint64_t factor = 1ULL << (10 * unit);
            if (bytes && bytes % factor == 0) {
                snprintf(buf, len, iec ? "%llu %s" : "%llu%s", (unsigned long long)(bytes / factor),
                         iec ? names[unit] : letters[unit]);
                return buf;
            }
        }
        snprintf(buf, len, iec ? "%llu B" : "%llu", (unsigned long long)bytes);
        return buf;
    }
    int unit = 0;
    while (unit < 4 && bytes >= (1ULL << (10 * (unit + 1)))) {
        unit++;
    }
    uint64_t factor = 1ULL << (10 * unit);
    uint64_t whole = bytes / factor;
    //  Three significant digits: 1.17, 11.7, 117 (and 1023 as it is).
    int decimals = unit == 0 || whole >= 100 ? 0 : whole >= 10 ? 1 : 2;
    uint64_t scale = decimals == 2 ? 100 : decimals == 1 ? 10 : 1;
    uint64_t frac = (bytes % factor) * scale / factor; //  below 2^40 x 100
    while (decimals > 0 && frac % 10 == 0) {
        frac /= 10;
        decimals--;
    }
    if (decimals) {
        snprintf(buf, len, "%llu.%0*llu %s", (unsigned long long)whole, decimals,
                 (unsigned long long)frac, names[unit]);
    } else {
        snprintf(buf, len, "%llu %s", (unsigned long long)whole, names[unit]);
    }
    return buf;
}

char *tern_units_format_time(uint64_t unix_ms, char *buf, size_t len) {
    if (!buf || len == 0) {
        return buf;
    }
    time_t secs = (time_t)(unix_ms / 1000);
    struct tm tm;
    if (!gmtime_r(&secs, &tm)) {
        snprintf(buf, len, "%llu", (unsigned long long)unix_ms);
        return buf;
    }
    snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03uZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (unsigned)(unix_ms % 1000));
    return buf;
}

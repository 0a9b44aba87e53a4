/*  tern_parse.c - parsing of durations and sizes for libtern's users.

    ternctl and applications take "30s" or "4k" from humans; the broker has
    its own config parser. Both accept the same units (docs/client.md).
*/
#include "tern.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

//  Splits TEXT into a non-negative integer and a unit suffix.
static tern_err_t s_split(const char *text, uint64_t *number, const char **unit) {
    if (!text || !isdigit((unsigned char)text[0])) {
        return TERN_EINVAL;
    }
    errno = 0;
    char *end = NULL;
    unsigned long long value = strtoull(text, &end, 10);
    if (errno || end == text) {
        return TERN_EINVAL;
    }
    *number = value;
    *unit = end;
    return TERN_OK;
}

static tern_err_t s_scale(uint64_t number, uint64_t factor, uint64_t *out) {
    if (factor && number > UINT64_MAX / factor) {
        return TERN_EINVAL;
    }
    *out = number * factor;
    return TERN_OK;
}

tern_err_t tern_parse_duration(const char *text, uint64_t *ms) {
    uint64_t number;
    const char *unit;
    if (!ms || s_split(text, &number, &unit)) {
        return TERN_EINVAL;
    }
    static const struct {
        const char *name;
        uint64_t factor;
    } units[] = {{"", 1},           {"ms", 1},          {"s", 1000},   {"m", 60000},
                 {"h", 3600000ull}, {"d", 86400000ull}, {"sec", 1000}, {"min", 60000}};
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (strcmp(unit, units[i].name) == 0) {
            return s_scale(number, units[i].factor, ms);
        }
    }
    return TERN_EINVAL;
}

tern_err_t tern_parse_size(const char *text, uint64_t *bytes) {
    uint64_t number;
    const char *unit;
    if (!bytes || s_split(text, &number, &unit)) {
        return TERN_EINVAL;
    }
    if (*unit == 0 || strcasecmp(unit, "b") == 0) {
        *bytes = number;
        return TERN_OK;
    }
    const char *powers = "kmgt";
    const char *at = strchr(powers, tolower((unsigned char)unit[0]));
    if (!at || unit[0] == 0) {
        return TERN_EINVAL;
    }
    const char *rest = unit + 1;
    if (*rest && strcasecmp(rest, "b") != 0 && strcasecmp(rest, "ib") != 0) {
        return TERN_EINVAL;
    }
    uint64_t factor = 1;
    for (const char *p = powers; p <= at; p++) {
        factor *= 1024;
    }
    return s_scale(number, factor, bytes);
}

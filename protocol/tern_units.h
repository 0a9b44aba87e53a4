/*  tern_units.h - durations, sizes and times as people write and read them.

    The one parser and formatter of units for every layer: ternd's config
    (broker/tern_config.c), libtern's public tern_parse_duration and
    tern_parse_size (client/tern_parse.c) and ternctl's human output. It
    lives in protocol/ because that is the one library all of them link;
    it knows nothing of the wire. Pure functions: no state, no allocation,
    thread-safe.

    Durations (milliseconds): a bare number is ms; otherwise one or more
    NUMBER UNIT parts from the largest unit to the smallest, each unit once:
    `500ms`, `30s`, `1m30s`, `2h30m`, `7d`, `1w`, `1.5s`. Units (case
    matters): ms; s (or sec); m (or min); h; d; w (7 d). A part may have a
    fraction of up to 6 decimals; the total must be a whole number of ms.

    Sizes (bytes): NUMBER [one space] [UNIT], case ignored: a bare number or
    B is bytes; K, M, G, T and KiB, MiB, GiB, TiB are powers of 1024; KB,
    MB, GB, TB are powers of 1000: `512`, `64K`, `64KiB`, `1.5MB`, `10 GiB`.
    A fraction (up to 6 decimals) is rounded down to whole bytes; a fraction
    of a byte is refused.
*/
#ifndef TERN_UNITS_H_INCLUDED
#define TERN_UNITS_H_INCLUDED

#include "tern_err.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

//  Big enough for any output of the formatters below.
#define TERN_UNITS_BUF 48

typedef enum {
    TERN_UNITS_EXACT,     //  the same value when parsed back: "1d1h1m1.001s", "64K", "1000000"
    TERN_UNITS_HUMAN,     //  for reading, rounded down: "1d1h", "1.18 MiB", "512 B"
    TERN_UNITS_EXACT_IEC, //  sizes only: exact, in IEC units, for reasons: "1 MiB", "1500 B"
} tern_units_style_t;

/*  Parses duration TEXT into *MS. Returns TERN_OK, or TERN_EINVAL with *MS
    unchanged and *WHY (when WHY is not NULL) a static phrase saying what is
    wrong ("unknown unit (use ms, s, m, h, d or w)", "too large"...). */
tern_err_t tern_units_parse_duration(const char *text, uint64_t *ms, const char **why);

/*  Parses size TEXT into *BYTES; errors as tern_units_parse_duration. */
tern_err_t tern_units_parse_size(const char *text, uint64_t *bytes, const char **why);

/*  Writes MS as a duration into BUF (LEN bytes, TERN_UNITS_BUF is enough)
    and returns BUF. EXACT: every unit from d down to s, ms as a fraction of
    the seconds, or Nms below 1 s ("7d", "2h30m", "1.5s", "250ms", "0s").
    HUMAN: the two largest parts of that ("1d1h"), rounded down. EXACT_IEC
    is EXACT here. */
char *tern_units_format_duration(uint64_t ms, tern_units_style_t style, char *buf, size_t len);

/*  Writes BYTES as a size into BUF and returns it. EXACT: the largest of
    T, G, M, K that divides BYTES, else bytes ("64K", "1G", "1000000").
    EXACT_IEC: the same choice with IEC names, for the reasons that name a
    limit ("64 KiB", "1 GiB", "1000000 B", "0 B"). HUMAN: three significant
    digits in B, KiB, MiB, GiB, TiB, rounded down ("512 B", "1.5 KiB",
    "10 GiB", "1.17 MiB"). */
char *tern_units_format_size(uint64_t bytes, tern_units_style_t style, char *buf, size_t len);

/*  Writes UNIX_MS (milliseconds since 1970, UTC) into BUF as an ISO 8601
    UTC date with milliseconds ("2026-12-07T12:33:54.123Z"); returns BUF. */
char *tern_units_format_time(uint64_t unix_ms, char *buf, size_t len);

#ifdef __cplusplus
}
#endif
#endif

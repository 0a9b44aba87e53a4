/*  tern_parse.c - libtern's public duration and size parsers.

    Thin wrappers over protocol/tern_units.c, the one parser that ternd's
    config and ternctl use too, so "1m30s" or "64KiB" means the same in a
    config file, on ternctl's command line and in an application.
*/
#include "tern.h"
#include "tern_units.h"

tern_err_t tern_parse_duration(const char *text, uint64_t *ms) {
    return tern_units_parse_duration(text, ms, NULL);
}

tern_err_t tern_parse_size(const char *text, uint64_t *bytes) {
    return tern_units_parse_size(text, bytes, NULL);
}

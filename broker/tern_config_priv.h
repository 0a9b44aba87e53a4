/*  tern_config_priv.h - the configuration's key table and helpers, shared by its files.

    Only broker/tern_config*.c include this. tern_config_keys.c holds the
    table and its lookups; tern_config.c parses a value into its field and
    checks the whole; tern_config_parse.c reads ZPL files and flags;
    tern_config_print.c writes --help, --print-config and the reference.
    Functions shared between them are prefixed k_; each file's own helpers
    stay static (s_).
*/
#ifndef TERN_CONFIG_PRIV_H_INCLUDED
#define TERN_CONFIG_PRIV_H_INCLUDED

#include "tern_config.h"
#include <czmq.h> //  CHECK_PRINTF
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef enum {
    S_STRING,   //  char[] field; check decides what is valid
    S_BOOL,     //  bool
    S_U32,      //  uint32_t within min..max
    S_DURATION, //  uint64_t ms within min..max
    S_SIZE,     //  uint64_t bytes within min..max
    S_ENUM,     //  an enum field (int-sized): index into choices
    S_PEERS     //  the peer list: repl/peers/NAME = ENDPOINT, --peer NAME=ENDPOINT
} k_type_t;

//  Checks a string value; on failure says what was expected.
typedef bool(k_check_fn)(const char *value, const char **expected);

typedef struct {
    const char *path;    //  ZPL path "section/name"
    const char *flag;    //  long flag, without the leading "--"
    const char *arg;     //  placeholder for the flag's value in --help ("" for bools)
    k_type_t type;       //  how the value is parsed and stored
    size_t offset;       //  field offset in tern_config_t
    size_t size;         //  field size (the buffer size for strings)
    const char *def;     //  default, as it would be written in a file
    uint64_t min;        //  smallest allowed number
    uint64_t max;        //  largest allowed number
    const char *choices; //  S_ENUM: "a|b|c", in the enum's order
    k_check_fn *check;   //  S_STRING: validity check (NULL = any text that fits)
    const char *help;    //  meaning, one sentence or two
} k_key_t;

//  The keys (tern_config_keys.c). Sections are contiguous (--print-config
//  writes them in this order).
extern const k_key_t k_keys[];
extern const size_t k_key_count;

//  tern_config_keys.c: lookups and descriptions.
const k_key_t *k_key_by_path(const char *path);
const k_key_t *k_key_by_flag(const char *flag, size_t len);
//  Returns a close key's path (or flag, if FLAGS), or NULL.
const char *k_suggest(const char *word, bool flags);
//  Keys whose value "off" (stored as "") turns the feature off.
bool k_off_allowed(const k_key_t *key);
void *k_field(tern_config_t *config, const k_key_t *key);
const void *k_cfield(const tern_config_t *config, const k_key_t *key);
//  Describes the accepted values of a numeric KEY into BUF.
const char *k_expected(const k_key_t *key, char *buf, size_t len);
//  Durations and sizes as the parser reads them back ("1m30s", "64K").
const char *k_format_duration(uint64_t ms, char *buf, size_t len);
const char *k_format_size(uint64_t bytes, char *buf, size_t len);
bool k_valid_name(const char *value, bool colon_ok);
//  A value --print-config can write back: printable, one line.
bool k_printable(const char *value);
bool k_check_endpoint(const char *value, const char **expected);

//  tern_config.c: values.
//  Formats the error line into ERRBUF; returns TERN_ECONFIG.
tern_err_t k_fail(char *errbuf, size_t errlen, const char *format, ...) CHECK_PRINTF(3);
//  Reads decimal digits at *TEXT (no sign, space or 0x) and advances it.
bool k_parse_u64(const char **text, uint64_t *value);
//  Adds or replaces peer NAME. WHERE says where it came from, for errors.
tern_err_t k_add_peer(tern_config_t *config, const char *name, const char *endpoints,
                      const char *where, char *errbuf, size_t errlen);
//  Parses VALUE into KEY's field. WHERE (" (in FILE)", " (from --flag)")
//  ends the error line.
tern_err_t k_apply(tern_config_t *config, const k_key_t *key, const char *value, const char *where,
                   char *errbuf, size_t errlen);

//  tern_config_print.c: --help.
void k_print_help(FILE *out);

#endif

/*  tern_config.c - ternd's configuration: one table of keys drives defaults,
    ZPL files, flags, --help, --print-config and the docs reference.

    ternd's main calls tern_config_defaults, then tern_config_parse_args (which
    loads `-c FILE` first and applies the flags over it), then hands the struct
    to the actors, read-only. Nothing here runs after start-up, so there is no
    threading to speak of; czmq's zconfig parses the ZPL, the rest is plain C.

    Precedence: embedded defaults < the ZPL file(s) given with -c (in the order
    given) < flags (in the order given). A bad file, an unknown key or flag and
    an out-of-range value are all errors with one line that names the key, the
    value and what was expected:
        config: storage/durability = "fast": expected one of fsync|batch|none
    Rules that span several keys are checked once everything is applied
    (tern_config_check), so a flag can repair what a file alone would break.
*/
#include "tern_config.h"
#include "tern_id.h"
#include "tern_version.h"

#include <assert.h>
#include <czmq.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum {
    S_STRING,   //  char[] field; check decides what is valid
    S_BOOL,     //  bool
    S_U32,      //  uint32_t within min..max
    S_DURATION, //  uint64_t ms within min..max
    S_SIZE,     //  uint64_t bytes within min..max
    S_ENUM,     //  an enum field (int-sized): index into choices
    S_PEERS     //  the peer list: repl/peers/NAME = ENDPOINT, --peer NAME=ENDPOINT
} s_type_t;

//  Checks a string value; on failure says what was expected.
typedef bool(s_check_fn)(const char *value, const char **expected);

typedef struct {
    const char *path;    //  ZPL path "section/name"
    const char *flag;    //  long flag, without the leading "--"
    const char *arg;     //  placeholder for the flag's value in --help ("" for bools)
    s_type_t type;       //  how the value is parsed and stored
    size_t offset;       //  field offset in tern_config_t
    size_t size;         //  field size (the buffer size for strings)
    const char *def;     //  default, as it would be written in a file
    uint64_t min;        //  smallest allowed number
    uint64_t max;        //  largest allowed number
    const char *choices; //  S_ENUM: "a|b|c", in the enum's order
    s_check_fn *check;   //  S_STRING: validity check (NULL = any text that fits)
    const char *help;    //  meaning, one sentence or two
} s_key_t;

#define S_FIELD(f) offsetof(tern_config_t, f), sizeof(((tern_config_t *)0)->f)
#define S_SEC      1000ULL
#define S_MIN      (60 * S_SEC)
#define S_HOUR     (60 * S_MIN)
#define S_DAY      (24 * S_HOUR)
#define S_KIB      1024ULL
#define S_MIB      (1024 * S_KIB)
#define S_GIB      (1024 * S_MIB)
#define S_TIB      (1024 * S_GIB)
#define S_FILE_MAX (1024 * 1024) //  a config file larger than this is a mistake

static s_check_fn s_check_name, s_check_path, s_check_endpoint, s_check_endpoint_or_off,
    s_check_http_addr, s_check_path_or_empty;

_Static_assert(sizeof(tern_durability_t) == sizeof(int), "S_ENUM stores an int");
_Static_assert(sizeof(tern_auth_mode_t) == sizeof(int), "S_ENUM stores an int");

//  The keys. Sections must stay contiguous (--print-config writes them in
//  this order). Defaults are parsed with the same code as user input.
static const s_key_t s_keys[] = {
    {"node/id", "node-id", "N", S_U32, S_FIELD(node_id), "0", 0, TERN_ID_NODE_MAX, NULL, NULL,
     "Node id, unique across every node of every DC (the replication handshake refuses a "
     "duplicate); it is part of every message id this node issues."},
    {"node/dc", "dc", "NAME", S_STRING, S_FIELD(dc), "dc1", 0, 0, NULL, s_check_name,
     "Name of this node's datacenter; records it originates carry it."},
    {"node/data", "data", "DIR", S_STRING, S_FIELD(data_dir), "./tern-data", 0, 0, NULL,
     s_check_path, "Data directory (the LMDB files); created if missing."},
    {"node/verbose", "verbose", "", S_BOOL, S_FIELD(verbose), "false", 0, 0, NULL, NULL,
     "Log more detail (also -v)."},
    {"node/clock_backwards_max", "clock-backwards-max", "DURATION", S_DURATION,
     S_FIELD(clock_backwards_max_ms), "1s", 0, 60 * S_SEC, NULL, NULL,
     "How long id generation waits out a wall clock that stepped backwards before it refuses "
     "publishes with TERN_ECLOCK."},

    {"server/listen", "listen", "ENDPOINT", S_STRING, S_FIELD(listen), "tcp://127.0.0.1:7600", 0, 0,
     NULL, s_check_endpoint, "ZeroMQ endpoint that clients connect to."},
    {"server/metrics", "metrics", "HOST:PORT", S_STRING, S_FIELD(metrics), "127.0.0.1:7609", 0, 0,
     NULL, s_check_http_addr,
     "HTTP address of the Prometheus /metrics and /healthz endpoint; \"off\" disables it."},
    {"server/metrics_series", "metrics-series", "N", S_U32, S_FIELD(metrics_series), "1000", 10,
     1000000, NULL, NULL,
     "Most per-topic and per-group label sets /metrics exports; past it new topics are counted "
     "as topic=\"other\"."},
    {"server/max_connections", "max-connections", "N", S_U32, S_FIELD(max_connections), "10000", 1,
     1000000, NULL, NULL, "Most client connections served at once."},
    {"server/max_payload", "max-payload", "SIZE", S_SIZE, S_FIELD(max_payload), "1M", 1,
     256 * S_MIB, NULL, NULL, "Largest message payload accepted from a publisher."},
    {"server/heartbeat", "heartbeat", "DURATION", S_DURATION, S_FIELD(heartbeat_ms), "15s", 100,
     S_HOUR, NULL, NULL, "Heartbeat interval offered to clients (and used by the broker)."},
    {"server/heartbeat_timeout", "heartbeat-timeout", "DURATION", S_DURATION,
     S_FIELD(heartbeat_timeout_ms), "45s", 200, 3 * S_HOUR, NULL, NULL,
     "Silence after which a session is dead and its in-flight messages return to their "
     "group; must be above server/heartbeat."},
    {"server/max_subscriptions", "max-subscriptions", "N", S_U32, S_FIELD(max_subscriptions),
     "1000", 1, 1000000, NULL, NULL,
     "Most subscriptions one connection may hold; one more is refused with TERN_ELIMIT. With "
     "delivery/max_inflight it bounds the messages in flight to one connection."},
    {"server/max_meta", "max-meta", "SIZE", S_SIZE, S_FIELD(max_meta), "64K", 0, 64 * S_KIB, NULL,
     NULL,
     "Largest encoded metadata map of a published message (the protocol's own ceiling is 32 "
     "entries of 64-byte keys and 1 KiB values); larger is refused with TERN_EMETA."},
    {"server/insecure", "insecure", "", S_BOOL, S_FIELD(insecure), "false", 0, 0, NULL, NULL,
     "Allow server/listen or repl/listen on a non-loopback address with auth/mode = none; "
     "without it ternd refuses to start that way (anyone reaching the port could publish, "
     "consume and administer)."},

    {"storage/durability", "durability", "MODE", S_ENUM, S_FIELD(durability), "fsync", 0, 0,
     "fsync|batch|none", NULL,
     "When a publish is acknowledged: fsync = after a synced commit, batch = after a commit "
     "whose meta page is flushed later, none = the OS decides (see Durability modes)."},
    {"storage/map_initial", "map-initial", "SIZE", S_SIZE, S_FIELD(map_initial), "64M", S_MIB,
     S_TIB * 1024, NULL, NULL, "Initial LMDB map size; the map grows in steps as data arrives."},
    {"storage/map_max", "map-max", "SIZE", S_SIZE, S_FIELD(map_max), "64G", S_MIB, S_TIB * 1024,
     NULL, NULL,
     "The map never grows past this; then publishes fail with TERN_EFULL until space is freed."},
    {"storage/batch_max", "batch-max", "N", S_U32, S_FIELD(batch_max), "4096", 1, 65536, NULL, NULL,
     "Most records committed in one LMDB transaction (one fsync)."},
    {"storage/dedup_window", "dedup-window", "DURATION", S_DURATION, S_FIELD(dedup_window_ms), "2m",
     S_SEC, 30 * S_DAY, NULL, NULL,
     "How long a (producer, seq) pair is remembered to drop a duplicate publish."},
    {"storage/dedup_max", "dedup-max", "N", S_U32, S_FIELD(dedup_max), "1024", 1, 1000000, NULL,
     NULL, "Dedup entries kept per producer, the newest ones."},
    {"storage/sweep_interval", "sweep-interval", "DURATION", S_DURATION, S_FIELD(sweep_interval_ms),
     "1s", 10, S_HOUR, NULL, NULL,
     "How often expired messages and dedup entries are swept from disk."},
    {"storage/max_topics", "max-topics", "N", S_U32, S_FIELD(max_topics), "100000", 1, 100000000,
     NULL, NULL, "Most topics the node stores; creating one more fails."},
    {"storage/trace_retention", "trace-retention", "DURATION", S_DURATION,
     S_FIELD(trace_retention_ms), "24h", 0, 365 * S_DAY, NULL, NULL,
     "How long each message's history (stored, delivered, acked...) is kept for ternctl audit "
     "and trace; 0 keeps none."},
    {"storage/max_readers", "max-readers", "N", S_U32, S_FIELD(max_readers), "126", 8, 65536, NULL,
     NULL, "LMDB reader slots (concurrent read transactions)."},

    {"delivery/ack_wait", "ack-wait", "DURATION", S_DURATION, S_FIELD(ack_wait_ms), "30s", 100,
     7 * S_DAY, NULL, NULL,
     "How long a delivered message may stay unacknowledged before it is "
     "redelivered."},
    {"delivery/max_deliver", "max-deliver", "N", S_U32, S_FIELD(max_deliver), "5", 1, 1000, NULL,
     NULL, "Deliveries of one message before it moves to its group's dead-letter queue."},
    {"delivery/backoff", "backoff", "DURATION", S_DURATION, S_FIELD(backoff_ms), "100ms", 1, S_HOUR,
     NULL, NULL, "Base redelivery delay: the n-th redelivery waits backoff x 2^(n-1)."},
    {"delivery/backoff_max", "backoff-max", "DURATION", S_DURATION, S_FIELD(backoff_max_ms), "1h",
     1, 7 * S_DAY, NULL, NULL, "Cap on the redelivery delay; must be at least delivery/backoff."},
    {"delivery/max_inflight", "max-inflight", "N", S_U32, S_FIELD(max_inflight), "1000", 1, 1000000,
     NULL, NULL,
     "Most unacknowledged messages per consumer (caps the credit a consumer may grant)."},

    {"ttl/instant", "ttl-instant", "DURATION", S_DURATION, S_FIELD(ttl_instant_ms), "30s", S_SEC,
     365 * S_DAY, NULL, NULL, "Lifetime of messages published with TTL class instant."},
    {"ttl/business", "ttl-business", "DURATION", S_DURATION, S_FIELD(ttl_business_ms), "2h", S_SEC,
     365 * S_DAY, NULL, NULL, "Lifetime of messages published with TTL class business."},
    {"ttl/sync", "ttl-sync", "DURATION", S_DURATION, S_FIELD(ttl_sync_ms), "7d", S_SEC, 365 * S_DAY,
     NULL, NULL, "Lifetime of messages published with TTL class sync."},

    {"repl/listen", "repl-listen", "ENDPOINT", S_STRING, S_FIELD(repl_listen), "off", 0, 0, NULL,
     s_check_endpoint_or_off,
     "ZeroMQ endpoint where peers connect for replication; \"off\" (or empty) accepts none."},
    {"repl/outbox_retention", "outbox-retention", "DURATION", S_DURATION,
     S_FIELD(outbox_retention_ms), "72h", S_MIN, 365 * S_DAY, NULL, NULL,
     "How long a locally originated record waits for every peer to confirm it; then it is "
     "dropped and counted as lost."},
    {"repl/peers", "peer", "NAME=ENDPOINT", S_PEERS, S_FIELD(peers), "", 0, 0, NULL, NULL,
     "A peer DC to replicate with: its name ([A-Za-z0-9_.-]) and replication endpoint. In a "
     "file, one line `NAME = ENDPOINT` per peer under `repl/peers`; the flag repeats and a "
     "known NAME gets the new endpoint."},

    {"auth/mode", "auth", "MODE", S_ENUM, S_FIELD(auth_mode), "none", 0, 0, "none|curve", NULL,
     "none = no authentication (loopback only unless server/insecure); curve = ZeroMQ CURVE "
     "on the client and replication endpoints, keys checked against auth/clients (see "
     "docs/security.md)."},
    {"auth/server_key", "auth-key", "FILE", S_STRING, S_FIELD(auth_server_key), "", 0, 0, NULL,
     s_check_path_or_empty,
     "This node's certificate (`ternctl keys gen`): FILE is the public half, FILE_secret the "
     "key pair; required with auth/mode = curve."},
    {"auth/clients", "auth-clients", "DIR", S_STRING, S_FIELD(auth_clients), "", 0, 0, NULL,
     s_check_path_or_empty,
     "Allow-list directory of public certificates of clients and peers; adding or deleting a "
     "file takes effect at the next connection. Required with auth/mode = curve."},
    {"auth/roles", "auth-roles", "FILE", S_STRING, S_FIELD(auth_roles), "", 0, 0, NULL,
     s_check_path_or_empty,
     "Roles file (ZPL): per role the topic patterns it may publish to and subscribe to, and "
     "admin; a key's role is the `role` of its certificate. Empty = every authenticated key "
     "may do everything."},
};
#define S_KEY_COUNT (sizeof(s_keys) / sizeof(s_keys[0]))

//  ---------------------------------------------------------------------
//  Errors

static tern_err_t s_fail(char *errbuf, size_t errlen, const char *format, ...) CHECK_PRINTF(3);

static tern_err_t s_fail(char *errbuf, size_t errlen, const char *format, ...) {
    if (errbuf && errlen > 0) {
        va_list args;
        va_start(args, format);
        vsnprintf(errbuf, errlen, format, args);
        va_end(args);
    }
    return TERN_ECONFIG;
}

//  ---------------------------------------------------------------------
//  Values

static bool s_parse_u64(const char **text, uint64_t *value) {
    const char *p = *text;
    if (*p < '0' || *p > '9') {
        return false; //  strtoull would accept spaces, signs and "0x"
    }
    uint64_t n = 0;
    for (; *p >= '0' && *p <= '9'; p++) {
        unsigned digit = (unsigned)(*p - '0');
        if (n > (UINT64_MAX - digit) / 10) {
            return false;
        }
        n = n * 10 + digit;
    }
    *text = p;
    *value = n;
    return true;
}

bool tern_config_parse_bool(const char *text, bool *value) {
    static const char *yes[] = {"true", "yes", "on", "1"};
    static const char *no[] = {"false", "no", "off", "0"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(text, yes[i]) == 0) {
            *value = true;
            return true;
        }
        if (strcasecmp(text, no[i]) == 0) {
            *value = false;
            return true;
        }
    }
    return false;
}

//  Durations and sizes as the parser reads them back ("1m30s", "64K").
static const char *s_format_duration(uint64_t ms, char *buf, size_t len) {
    return tern_units_format_duration(ms, TERN_UNITS_EXACT, buf, len);
}

static const char *s_format_size(uint64_t bytes, char *buf, size_t len) {
    return tern_units_format_size(bytes, TERN_UNITS_EXACT, buf, len);
}

//  ---------------------------------------------------------------------
//  String checks

static bool s_is_name_char(char c, bool colon_ok) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == '-' || (colon_ok && c == ':');
}

static bool s_valid_name(const char *value, bool colon_ok) {
    size_t len = strlen(value);
    if (len < 1 || len > 64) {
        return false;
    }
    for (const char *p = value; *p; p++) {
        if (!s_is_name_char(*p, colon_ok)) {
            return false;
        }
    }
    return true;
}

static bool s_check_name(const char *value, const char **expected) {
    *expected = "a name of 1-64 characters from [A-Za-z0-9_.:-]";
    return s_valid_name(value, true);
}

//  A value --print-config can write back: printable, one line, and not
//  containing both quote characters (ZPL has no escapes).
static bool s_printable(const char *value) {
    for (const char *p = value; *p; p++) {
        if ((unsigned char)*p < 0x20 || *p == 0x7f) {
            return false;
        }
    }
    return !(strchr(value, '"') && strchr(value, '\''));
}

static bool s_check_path_or_empty(const char *value, const char **expected) {
    *expected = "a path on one line (not containing both ' and \"), or empty";
    return s_printable(value);
}

static bool s_check_path(const char *value, const char **expected) {
    *expected = "a non-empty path on one line (not containing both ' and \")";
    return *value && s_printable(value);
}

static bool s_valid_port(const char *text, bool star_ok) {
    if (star_ok && streq(text, "*")) {
        return true;
    }
    uint64_t port;
    return s_parse_u64(&text, &port) && *text == 0 && port <= 65535;
}

static bool s_check_endpoint(const char *value, const char **expected) {
    *expected = "a ZeroMQ endpoint like tcp://HOST:PORT or ipc://PATH";
    for (const char *p = value; *p; p++) {
        if (*p <= ' ' || *p == '"' || *p == '\'' || *p == 0x7f) {
            return false;
        }
    }
    if (strncmp(value, "tcp://", 6) == 0) {
        const char *colon = strrchr(value + 6, ':');
        return colon && colon > value + 6 && s_valid_port(colon + 1, true);
    }
    if (strncmp(value, "ipc://", 6) == 0) {
        return value[6] != 0;
    }
    if (strncmp(value, "inproc://", 9) == 0) {
        return value[9] != 0;
    }
    return false;
}

static bool s_check_endpoint_or_off(const char *value, const char **expected) {
    if (*value == 0 || streq(value, "off")) {
        return true;
    }
    bool valid = s_check_endpoint(value, expected);
    *expected = "a ZeroMQ endpoint like tcp://HOST:PORT, or off";
    return valid;
}

static bool s_check_http_addr(const char *value, const char **expected) {
    *expected = "HOST:PORT (e.g. 127.0.0.1:7609), or off";
    if (*value == 0 || streq(value, "off")) {
        return true;
    }
    const char *colon = strrchr(value, ':');
    if (!colon || colon == value || !s_valid_port(colon + 1, false)) {
        return false;
    }
    for (const char *p = value; p < colon; p++) {
        if (*p <= ' ' || *p == '"' || *p == '\'' || *p == '/' || *p == 0x7f) {
            return false;
        }
    }
    return true;
}

//  ---------------------------------------------------------------------
//  The table

static const s_key_t *s_key_by_path(const char *path) {
    for (size_t i = 0; i < S_KEY_COUNT; i++) {
        if (streq(s_keys[i].path, path)) {
            return &s_keys[i];
        }
    }
    return NULL;
}

static const s_key_t *s_key_by_flag(const char *flag, size_t len) {
    for (size_t i = 0; i < S_KEY_COUNT; i++) {
        if (strlen(s_keys[i].flag) == len && strncmp(s_keys[i].flag, flag, len) == 0) {
            return &s_keys[i];
        }
    }
    return NULL;
}

//  Edit distance, to suggest a key for a typo.
static size_t s_distance(const char *a, const char *b) {
    size_t lb = strlen(b);
    if (lb > 63) {
        return 64;
    }
    size_t row[64];
    for (size_t j = 0; j <= lb; j++) {
        row[j] = j;
    }
    for (size_t i = 1; *a; a++, i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t best = diag + (*a != b[j - 1]);
            if (row[j] + 1 < best) {
                best = row[j] + 1;
            }
            if (row[j - 1] + 1 < best) {
                best = row[j - 1] + 1;
            }
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

//  Returns a close key's path (or flag, if FLAGS), or NULL.
static const char *s_suggest(const char *word, bool flags) {
    const char *best = NULL;
    size_t best_distance = 4;
    for (size_t i = 0; i < S_KEY_COUNT; i++) {
        const char *candidate = flags ? s_keys[i].flag : s_keys[i].path;
        size_t distance = s_distance(word, candidate);
        if (distance < best_distance) {
            best_distance = distance;
            best = candidate;
        }
    }
    return best;
}

//  Keys whose value "off" (stored as "") turns the feature off.
static bool s_off_allowed(const s_key_t *key) {
    return key->check == s_check_http_addr || key->check == s_check_endpoint_or_off;
}

static void *s_field(tern_config_t *config, const s_key_t *key) {
    return (char *)config + key->offset;
}

static const void *s_cfield(const tern_config_t *config, const s_key_t *key) {
    return (const char *)config + key->offset;
}

//  Describes the accepted values of a numeric KEY into BUF.
static const char *s_expected(const s_key_t *key, char *buf, size_t len) {
    char lo[32], hi[32];
    switch (key->type) {
        case S_U32:
            snprintf(buf, len, "an integer in %llu..%llu", (unsigned long long)key->min,
                     (unsigned long long)key->max);
            break;
        case S_DURATION:
            snprintf(buf, len, "a duration (ms, s, m, h, d, w; bare number = ms) in %s..%s",
                     s_format_duration(key->min, lo, sizeof lo),
                     s_format_duration(key->max, hi, sizeof hi));
            break;
        case S_SIZE:
            snprintf(buf, len, "a size (K, M, G, T, KiB, MB...; bare number = bytes) in %s..%s",
                     s_format_size(key->min, lo, sizeof lo),
                     s_format_size(key->max, hi, sizeof hi));
            break;
        case S_BOOL:
            snprintf(buf, len, "true or false");
            break;
        case S_ENUM:
            snprintf(buf, len, "one of %s", key->choices);
            break;
        default:
            snprintf(buf, len, "a valid value");
            break;
    }
    return buf;
}

//  Adds or replaces peer NAME. WHERE says where it came from, for errors.
static tern_err_t s_add_peer(tern_config_t *config, const char *name, const char *endpoint,
                             const char *where, char *errbuf, size_t errlen) {
    const char *expected;
    if (!s_valid_name(name, false)) {
        return s_fail(errbuf, errlen,
                      "config: repl/peers/%s: expected a peer name of 1-64 characters from "
                      "[A-Za-z0-9_.-]%s",
                      name, where);
    }
    if (!s_check_endpoint(endpoint, &expected) ||
        strlen(endpoint) >= sizeof(config->peers[0].endpoint)) {
        return s_fail(errbuf, errlen, "config: repl/peers/%s = \"%s\": expected %s%s", name,
                      endpoint, expected, where);
    }
    uint32_t index = 0;
    while (index < config->peer_count && !streq(config->peers[index].name, name)) {
        index++;
    }
    if (index == TERN_PEERS_MAX) {
        return s_fail(errbuf, errlen, "config: repl/peers/%s: expected at most %d peers%s", name,
                      TERN_PEERS_MAX, where);
    }
    snprintf(config->peers[index].name, sizeof(config->peers[index].name), "%s", name);
    snprintf(config->peers[index].endpoint, sizeof(config->peers[index].endpoint), "%s", endpoint);
    if (index == config->peer_count) {
        config->peer_count++;
    }
    return TERN_OK;
}

//  Parses VALUE into KEY's field. WHERE (" (in FILE)", " (from --flag)")
//  ends the error line.
static tern_err_t s_apply(tern_config_t *config, const s_key_t *key, const char *value,
                          const char *where, char *errbuf, size_t errlen) {
    void *field = s_field(config, key);
    char expected_buf[160];
    const char *expected = s_expected(key, expected_buf, sizeof expected_buf);
    uint64_t number = 0;
    const char *why = NULL; //  the unit parser's reason
    bool valid = false;
    switch (key->type) {
        case S_STRING:
            expected = "text";
            valid = key->check ? key->check(value, &expected) : s_printable(value);
            if (valid && strlen(value) >= key->size) {
                snprintf(expected_buf, sizeof expected_buf, "at most %zu bytes", key->size - 1);
                expected = expected_buf;
                valid = false;
            }
            if (valid) {
                //  "off" is stored as "" so the actors test one thing.
                bool off = s_off_allowed(key) && streq(value, "off");
                snprintf(field, key->size, "%s", off ? "" : value);
            }
            break;
        case S_BOOL:
            valid = tern_config_parse_bool(value, field);
            break;
        case S_U32: {
            const char *p = value;
            valid = s_parse_u64(&p, &number) && *p == 0 && number >= key->min && number <= key->max;
            if (valid) {
                *(uint32_t *)field = (uint32_t)number;
            }
            break;
        }
        case S_DURATION:
        case S_SIZE:
            valid = (key->type == S_DURATION
                         ? tern_units_parse_duration(value, &number, &why)
                         : tern_units_parse_size(value, &number, &why)) == TERN_OK &&
                    number >= key->min && number <= key->max;
            if (valid) {
                *(uint64_t *)field = number;
            } else if (why) {
                //  Say what the parser disliked after the accepted range.
                size_t used = strlen(expected_buf);
                snprintf(expected_buf + used, sizeof expected_buf - used, ": %s", why);
            }
            break;
        case S_ENUM: {
            const char *choice = key->choices;
            size_t len = strlen(value);
            for (int index = 0; *choice; index++) {
                size_t choice_len = strcspn(choice, "|");
                if (len > 0 && choice_len == len && strncmp(choice, value, len) == 0) {
                    memcpy(field, &index, sizeof index);
                    valid = true;
                    break;
                }
                choice += choice_len + (choice[choice_len] == '|');
            }
            break;
        }
        case S_PEERS: {
            //  Flag form NAME=ENDPOINT; the file form goes to s_add_peer.
            const char *equals = strchr(value, '=');
            char name[80];
            if (equals && equals > value && (size_t)(equals - value) < sizeof name) {
                snprintf(name, sizeof name, "%.*s", (int)(equals - value), value);
                return s_add_peer(config, name, equals + 1, where, errbuf, errlen);
            }
            expected = "NAME=ENDPOINT";
            break;
        }
    }
    if (!valid) {
        return s_fail(errbuf, errlen, "config: %s = \"%s\": expected %s%s", key->path, value,
                      expected, where);
    }
    return TERN_OK;
}

//  ---------------------------------------------------------------------
//  Defaults, checks, storage

void tern_config_defaults(tern_config_t *config) {
    memset(config, 0, sizeof(*config));
    for (size_t i = 0; i < S_KEY_COUNT; i++) {
        if (s_keys[i].type != S_PEERS) {
            tern_err_t rc = s_apply(config, &s_keys[i], s_keys[i].def, "", NULL, 0);
            assert(rc == TERN_OK); //  the table's own defaults are valid
            (void)rc;
        }
    }
}

tern_err_t tern_config_check(const tern_config_t *config, char *errbuf, size_t errlen) {
    char text[64], text2[64];
    //  Numeric ranges, for structs filled by code rather than by parsing.
    for (size_t i = 0; i < S_KEY_COUNT; i++) {
        const s_key_t *key = &s_keys[i];
        const void *field = s_cfield(config, key);
        uint64_t number;
        if (key->type == S_U32) {
            number = *(const uint32_t *)field;
            snprintf(text, sizeof text, "%llu", (unsigned long long)number);
        } else if (key->type == S_DURATION) {
            number = *(const uint64_t *)field;
            s_format_duration(number, text, sizeof text);
        } else if (key->type == S_SIZE) {
            number = *(const uint64_t *)field;
            s_format_size(number, text, sizeof text);
        } else if (key->type == S_STRING) {
            const char *expected;
            const char *value = field;
            if (memchr(value, 0, key->size) == NULL) {
                return s_fail(errbuf, errlen, "config: %s: not terminated", key->path);
            }
            if (key->check && !key->check(value, &expected)) {
                return s_fail(errbuf, errlen, "config: %s = \"%s\": expected %s", key->path, value,
                              expected);
            }
            continue;
        } else {
            continue;
        }
        if (number < key->min || number > key->max) {
            char expected[160];
            return s_fail(errbuf, errlen, "config: %s = \"%s\": expected %s", key->path, text,
                          s_expected(key, expected, sizeof expected));
        }
    }
    if ((unsigned)config->durability > TERN_DURABILITY_NONE) {
        return s_fail(errbuf, errlen, "config: storage/durability = %d: expected one of %s",
                      (int)config->durability, s_key_by_path("storage/durability")->choices);
    }
    //  Rules across keys.
    if (config->heartbeat_timeout_ms <= config->heartbeat_ms) {
        return s_fail(errbuf, errlen,
                      "config: server/heartbeat_timeout = \"%s\": expected more than "
                      "server/heartbeat (%s); 3 x heartbeat is usual",
                      s_format_duration(config->heartbeat_timeout_ms, text, sizeof text),
                      s_format_duration(config->heartbeat_ms, text2, sizeof text2));
    }
    if (config->backoff_max_ms < config->backoff_ms) {
        return s_fail(errbuf, errlen,
                      "config: delivery/backoff_max = \"%s\": expected at least "
                      "delivery/backoff (%s)",
                      s_format_duration(config->backoff_max_ms, text, sizeof text),
                      s_format_duration(config->backoff_ms, text2, sizeof text2));
    }
    if (config->map_max < config->map_initial) {
        return s_fail(errbuf, errlen,
                      "config: storage/map_max = \"%s\": expected at least storage/map_initial "
                      "(%s)",
                      s_format_size(config->map_max, text, sizeof text),
                      s_format_size(config->map_initial, text2, sizeof text2));
    }
    if (*config->repl_listen && streq(config->repl_listen, config->listen)) {
        return s_fail(errbuf, errlen,
                      "config: repl/listen = \"%s\": expected an endpoint other than "
                      "server/listen",
                      config->repl_listen);
    }
    if ((unsigned)config->auth_mode > TERN_AUTH_CURVE) {
        return s_fail(errbuf, errlen, "config: auth/mode = %d: expected one of none|curve",
                      (int)config->auth_mode);
    }
    if (config->auth_mode == TERN_AUTH_CURVE &&
        (!*config->auth_server_key || !*config->auth_clients)) {
        return s_fail(errbuf, errlen,
                      "config: auth/mode = curve: expected auth/server_key (this node's "
                      "certificate) and auth/clients (the allow-list directory)");
    }
    if (config->peer_count > TERN_PEERS_MAX) {
        return s_fail(errbuf, errlen, "config: repl/peers: %u peers, expected at most %d",
                      config->peer_count, TERN_PEERS_MAX);
    }
    for (uint32_t i = 0; i < config->peer_count; i++) {
        const tern_peer_config_t *peer = &config->peers[i];
        const char *expected;
        if (!memchr(peer->name, 0, sizeof peer->name) || !s_valid_name(peer->name, false)) {
            return s_fail(errbuf, errlen, "config: repl/peers: peer %u has an invalid name", i);
        }
        if (!memchr(peer->endpoint, 0, sizeof peer->endpoint) ||
            !s_check_endpoint(peer->endpoint, &expected)) {
            return s_fail(errbuf, errlen, "config: repl/peers/%s = \"%s\": expected %s", peer->name,
                          peer->endpoint, expected);
        }
        for (uint32_t j = 0; j < i; j++) {
            if (streq(config->peers[j].name, peer->name)) {
                return s_fail(errbuf, errlen, "config: repl/peers/%s: expected unique names",
                              peer->name);
            }
        }
    }
    return TERN_OK;
}

void tern_config_store(const tern_config_t *config, tern_store_config_t *out) {
    tern_store_config_defaults(out);
    out->dir = config->data_dir;
    out->map_initial = config->map_initial;
    out->map_max = config->map_max;
    out->durability = config->durability;
    out->dedup_window_ms = config->dedup_window_ms;
    out->dedup_max = config->dedup_max;
    out->outbox_retention_ms = config->outbox_retention_ms;
    out->max_topics = config->max_topics;
    out->max_readers = config->max_readers;
    out->trace_retention_ms = config->trace_retention_ms;
    //  A node without peers ships nothing: it keeps no outbox.
    out->outbox = config->peer_count > 0;
}

//  ---------------------------------------------------------------------
//  ZPL files

char *tern_config_read_file(const char *path, size_t max, char *why, size_t why_len) {
    char reason[64] = "";
    char *text = NULL;
    FILE *file = fopen(path, "r");
    if (!file) {
        snprintf(reason, sizeof reason, "%s", strerror(errno));
    } else {
        text = malloc(max + 1);
        size_t len = text ? fread(text, 1, max + 1, file) : 0;
        //  Every file we read is text: a NUL would silently end it early (a
        //  file of zeros, what a power cut can leave, would read as empty).
        const char *nul = text ? memchr(text, 0, len) : NULL;
        if (!text || ferror(file)) {
            snprintf(reason, sizeof reason, "read error");
        } else if (len > max) {
            snprintf(reason, sizeof reason, "too large");
        } else if (nul) {
            snprintf(reason, sizeof reason, "NUL byte at offset %zu (not a text file)",
                     (size_t)(nul - text));
        } else {
            text[len] = 0;
        }
        fclose(file);
    }
    if (reason[0]) {
        free(text);
        text = NULL;
    }
    if (why && why_len) {
        snprintf(why, why_len, "%s", reason);
    }
    return text;
}

static tern_err_t s_load_file(tern_config_t *config, const char *path, char *errbuf,
                              size_t errlen) {
    //  Read the file ourselves: zconfig_load leaks its zfile_t when the
    //  text does not parse (czmq 4.2.1), and this gives a precise error.
    char why[64];
    char *text = tern_config_read_file(path, S_FILE_MAX, why, sizeof why);
    if (!text) {
        return s_fail(errbuf, errlen, "config: cannot read \"%s\": %s%s", path, why,
                      streq(why, "too large") ? " (over 1 MiB)" : "");
    }
    zconfig_t *root = zconfig_str_load(text);
    free(text);
    if (!root) {
        //  czmq has logged the line and the reason.
        return s_fail(errbuf, errlen,
                      "config: \"%s\" is not valid ZPL (czmq's zconfig logged the line)", path);
    }
    char where[1100];
    snprintf(where, sizeof where, " (in %s)", path);
    tern_err_t rc = TERN_OK;
    for (zconfig_t *section = zconfig_child(root); section && rc == TERN_OK;
         section = zconfig_next(section)) {
        const char *section_name = zconfig_name(section);
        const char *section_value = zconfig_value(section);
        if (!zconfig_child(section)) {
            //  A top-level "name = value" or an empty section.
            char prefix[80];
            snprintf(prefix, sizeof prefix, "%s/", section_name);
            bool known = false;
            for (size_t i = 0; i < S_KEY_COUNT && !known; i++) {
                known = strncmp(s_keys[i].path, prefix, strlen(prefix)) == 0;
            }
            if (known && !(section_value && *section_value)) {
                continue;
            }
            const char *near = s_suggest(section_name, false);
            if (known) {
                rc = s_fail(errbuf, errlen,
                            "config: %s = \"%s\": expected a section without a value%s",
                            section_name, section_value, where);
            } else {
                rc = s_fail(errbuf, errlen, "config: unknown key \"%s\"%s%s%s%s", section_name,
                            near ? "; did you mean \"" : "", near ? near : "", near ? "\"?" : "",
                            where);
            }
            break;
        }
        if (section_value && *section_value) {
            rc = s_fail(errbuf, errlen, "config: %s = \"%s\": expected a section without a value%s",
                        section_name, section_value, where);
            break;
        }
        for (zconfig_t *item = zconfig_child(section); item && rc == TERN_OK;
             item = zconfig_next(item)) {
            char key_path[160];
            snprintf(key_path, sizeof key_path, "%s/%s", section_name, zconfig_name(item));
            const char *value = zconfig_value(item) ? zconfig_value(item) : "";
            const s_key_t *key = s_key_by_path(key_path);
            if (!key) {
                const char *near = s_suggest(key_path, false);
                rc = s_fail(errbuf, errlen, "config: unknown key \"%s\"%s%s%s%s", key_path,
                            near ? "; did you mean \"" : "", near ? near : "", near ? "\"?" : "",
                            where);
            } else if (key->type == S_PEERS) {
                if (*value) {
                    rc = s_fail(errbuf, errlen,
                                "config: repl/peers = \"%s\": expected a section of "
                                "NAME = ENDPOINT lines%s",
                                value, where);
                }
                for (zconfig_t *peer = zconfig_child(item); peer && rc == TERN_OK;
                     peer = zconfig_next(peer)) {
                    if (zconfig_child(peer)) {
                        rc = s_fail(errbuf, errlen,
                                    "config: repl/peers/%s: expected NAME = ENDPOINT, not a "
                                    "section%s",
                                    zconfig_name(peer), where);
                        break;
                    }
                    const char *endpoint = zconfig_value(peer) ? zconfig_value(peer) : "";
                    rc = s_add_peer(config, zconfig_name(peer), endpoint, where, errbuf, errlen);
                }
            } else if (zconfig_child(item)) {
                rc = s_fail(errbuf, errlen, "config: %s: expected a value, not a section%s",
                            key_path, where);
            } else {
                rc = s_apply(config, key, value, where, errbuf, errlen);
            }
        }
    }
    zconfig_destroy(&root);
    return rc;
}

tern_err_t tern_config_load(tern_config_t *config, const char *path, char *errbuf, size_t errlen) {
    tern_err_t rc = s_load_file(config, path, errbuf, errlen);
    return rc == TERN_OK ? tern_config_check(config, errbuf, errlen) : rc;
}

//  ---------------------------------------------------------------------
//  Output: ZPL, --help, the reference table

static void s_print_string(FILE *out, const char *value) {
    //  ZPL has no escapes: quote with the character the value lacks.
    char quote = strchr(value, '"') ? '\'' : '"';
    fprintf(out, "%c%s%c", quote, value, quote);
}

void tern_config_print(const tern_config_t *config, FILE *out) {
    fprintf(out, "#   ternd configuration (ZPL). Load it with: ternd -c FILE\n");
    const char *section = "";
    size_t section_len = 0;
    char text[64];
    for (size_t i = 0; i < S_KEY_COUNT; i++) {
        const s_key_t *key = &s_keys[i];
        const void *field = s_cfield(config, key);
        size_t len = strcspn(key->path, "/");
        if (len != section_len || strncmp(key->path, section, len) != 0) {
            fprintf(out, "%.*s\n", (int)len, key->path);
            section = key->path;
            section_len = len;
        }
        const char *name = key->path + len + 1;
        switch (key->type) {
            case S_STRING:
                fprintf(out, "    %s = ", name);
                if (s_off_allowed(key)) {
                    s_print_string(out, *(const char *)field ? field : "off");
                } else {
                    s_print_string(out, field);
                }
                fprintf(out, "\n");
                break;
            case S_BOOL:
                fprintf(out, "    %s = %s\n", name, *(const bool *)field ? "true" : "false");
                break;
            case S_U32:
                fprintf(out, "    %s = %u\n", name, *(const uint32_t *)field);
                break;
            case S_DURATION:
                fprintf(out, "    %s = %s\n", name,
                        s_format_duration(*(const uint64_t *)field, text, sizeof text));
                break;
            case S_SIZE:
                fprintf(out, "    %s = %s\n", name,
                        s_format_size(*(const uint64_t *)field, text, sizeof text));
                break;
            case S_ENUM: {
                int index;
                memcpy(&index, field, sizeof index);
                const char *choice = key->choices;
                for (int at = 0; at < index && *choice; at++) {
                    choice += strcspn(choice, "|") + (choice[strcspn(choice, "|")] == '|');
                }
                fprintf(out, "    %s = %.*s\n", name, (int)strcspn(choice, "|"), choice);
                break;
            }
            case S_PEERS:
                fprintf(out, "    %s\n", name);
                for (uint32_t p = 0; p < config->peer_count && p < TERN_PEERS_MAX; p++) {
                    fprintf(out, "        %s = ", config->peers[p].name);
                    s_print_string(out, config->peers[p].endpoint);
                    fprintf(out, "\n");
                }
                break;
        }
    }
}

//  Writes TEXT indented by INDENT, broken at spaces before column WIDTH.
static void s_print_wrapped(FILE *out, const char *text, int indent, int width) {
    while (*text) {
        int room = width - indent;
        int len = (int)strlen(text);
        if (len > room) {
            len = room;
            while (len > 0 && text[len] != ' ') {
                len--;
            }
            if (len == 0) {
                len = (int)strcspn(text, " "); //  one word longer than the line
            }
        }
        fprintf(out, "%*s%.*s\n", indent, "", len, text);
        text += len;
        while (*text == ' ') {
            text++;
        }
    }
}

static void s_print_help(FILE *out) {
    fprintf(out,
            "Usage: ternd [-c FILE] [OPTION]...\n"
            "ternd, the tern message broker node. It runs on its embedded defaults; a ZPL\n"
            "file given with -c (applied first, wherever it appears) and then the flags, in\n"
            "order, override them. Every file key has a flag: file key -> flag.\n\n"
            "  -c, --config FILE              load a ZPL configuration file\n"
            "  -v, --verbose                  same as --verbose=true\n"
            "  -h, --help                     print this help and exit\n"
            "      --version                  print the version and exit\n"
            "      --print-config             print the effective configuration as ZPL "
            "and exit\n"
            "      --config-reference         print every key as a Markdown table and exit\n\n");
    for (size_t i = 0; i < S_KEY_COUNT; i++) {
        const s_key_t *key = &s_keys[i];
        char flag[64];
        snprintf(flag, sizeof flag, "--%s%s%s", key->flag, *key->arg ? " " : "", key->arg);
        fprintf(out, "      %-30s %s", flag, key->path);
        if (key->type == S_PEERS) {
            fprintf(out, "/NAME (repeatable)\n");
        } else {
            fprintf(out, " (default %s%s%s)\n", *key->def ? "" : "\"", key->def,
                    *key->def ? "" : "\"");
        }
        s_print_wrapped(out, key->help, 10, 78);
    }
    fprintf(out, "\nDurations: 250ms, 30s, 5m, 2h, 7d (a bare number is ms). Sizes: 512, 64K, "
                 "1M, 2G, 1T\n(K = 1024; a bare number is bytes). Booleans: true/false, "
                 "yes/no, on/off, 1/0.\nA flag takes its value as --flag VALUE or "
                 "--flag=VALUE.\n");
}

void tern_config_reference(FILE *out) {
    fprintf(out, "| Key (ZPL) | Flag | Default | Meaning |\n");
    fprintf(out, "|---|---|---|---|\n");
    for (size_t i = 0; i < S_KEY_COUNT; i++) {
        const s_key_t *key = &s_keys[i];
        char expected[160] = "";
        if (key->type != S_STRING && key->type != S_PEERS) {
            s_expected(key, expected, sizeof expected);
        }
        fprintf(out, "| `%s%s` | `--%s%s%s` | %s%s%s | %s", key->path,
                key->type == S_PEERS ? "/NAME" : "", key->flag, *key->arg ? " " : "", key->arg,
                *key->def ? "`" : "", *key->def ? key->def : "(none)", *key->def ? "`" : "",
                key->help);
        if (*expected) {
            //  A bare | would end the table cell.
            fprintf(out, " Expects ");
            for (const char *p = expected; *p; p++) {
                if (*p == '|') {
                    fputc('\\', out);
                }
                fputc(*p, out);
            }
            fprintf(out, ".");
        }
        fprintf(out, " |\n");
    }
}

//  ---------------------------------------------------------------------
//  Command line

typedef enum {
    S_OPT_KEY,      //  a table key (KEY, VALUE)
    S_OPT_CONFIG,   //  -c FILE
    S_OPT_HELP,     //  -h, --help
    S_OPT_VERSION,  //  --version
    S_OPT_PRINT,    //  --print-config
    S_OPT_REFERENCE //  --config-reference
} s_opt_kind_t;

typedef struct {
    s_opt_kind_t kind;  //  what it is
    const s_key_t *key; //  S_OPT_KEY: the key
    const char *value;  //  its value (borrowed from argv)
    const char *flag;   //  the flag as given, for errors
} s_opt_t;

//  Reads the option at argv[*index] (and its value) and advances *index.
static tern_err_t s_next_opt(int argc, char **argv, int *index, s_opt_t *opt, char *errbuf,
                             size_t errlen) {
    const char *arg = argv[(*index)++];
    memset(opt, 0, sizeof(*opt));
    opt->flag = arg;
    const char *name;
    size_t name_len;
    const char *inline_value = NULL;
    if (strncmp(arg, "--", 2) == 0 && arg[2]) {
        name = arg + 2;
        const char *equals = strchr(name, '=');
        name_len = equals ? (size_t)(equals - name) : strlen(name);
        inline_value = equals ? equals + 1 : NULL;
    } else if (arg[0] == '-' && arg[1] && arg[1] != '-') {
        //  Short options: -c FILE, -cFILE, -v, -h.
        name = arg + 1;
        name_len = 1;
        inline_value = arg[2] ? arg + 2 : NULL;
    } else {
        return s_fail(errbuf, errlen,
                      "config: unexpected argument \"%s\": expected an option (see ternd "
                      "--help)",
                      arg);
    }
#define S_IS(word) (name_len == strlen(word) && strncmp(name, word, name_len) == 0)
    bool takes_value = true;
    if (S_IS("c") || S_IS("config")) {
        opt->kind = S_OPT_CONFIG;
    } else if (S_IS("h") || S_IS("help")) {
        opt->kind = S_OPT_HELP;
        takes_value = false;
    } else if (S_IS("version")) {
        opt->kind = S_OPT_VERSION;
        takes_value = false;
    } else if (S_IS("print-config")) {
        opt->kind = S_OPT_PRINT;
        takes_value = false;
    } else if (S_IS("config-reference")) {
        opt->kind = S_OPT_REFERENCE;
        takes_value = false;
    } else if (S_IS("v")) {
        opt->kind = S_OPT_KEY;
        opt->key = s_key_by_path("node/verbose");
        takes_value = false;
    } else if ((opt->key = s_key_by_flag(name, name_len)) != NULL) {
        opt->kind = S_OPT_KEY;
        takes_value = opt->key->type != S_BOOL;
    } else {
        char unknown[80];
        snprintf(unknown, sizeof unknown, "%.*s", (int)name_len, name);
        const char *near = name_len > 1 ? s_suggest(unknown, true) : NULL;
        return s_fail(errbuf, errlen, "config: unknown option \"%.*s\"%s%s%s (see ternd --help)",
                      (int)(name - arg + name_len), arg, near ? "; did you mean --" : "",
                      near ? near : "", near ? "?" : "");
    }
#undef S_IS
    if (takes_value) {
        if (inline_value) {
            opt->value = inline_value;
        } else if (*index < argc) {
            opt->value = argv[(*index)++];
        } else {
            return s_fail(errbuf, errlen, "config: option \"%s\" needs a value (%s)", arg,
                          opt->key ? opt->key->arg : "FILE");
        }
    } else if (opt->kind == S_OPT_KEY) {
        opt->value = inline_value ? inline_value : "true";
    } else if (inline_value) {
        return s_fail(errbuf, errlen, "config: option \"%s\" takes no value", arg);
    }
    return TERN_OK;
}

tern_err_t tern_config_parse_args(tern_config_t *config, int argc, char **argv, FILE *out,
                                  bool *exit_now, char *errbuf, size_t errlen) {
    *exit_now = false;
    s_opt_t opt;
    //  Pass 1: --help and --version win over everything; -c files load now.
    bool print = false;
    for (int index = 1; index < argc;) {
        tern_err_t rc = s_next_opt(argc, argv, &index, &opt, errbuf, errlen);
        if (rc == TERN_OK &&
            (opt.kind == S_OPT_HELP || opt.kind == S_OPT_VERSION || opt.kind == S_OPT_REFERENCE)) {
            if (opt.kind == S_OPT_HELP) {
                s_print_help(out);
            } else if (opt.kind == S_OPT_REFERENCE) {
                tern_config_reference(out);
            } else {
                fprintf(out, "ternd %d.%d.%d\n", TERN_VERSION_MAJOR, TERN_VERSION_MINOR,
                        TERN_VERSION_PATCH);
            }
            *exit_now = true;
            return TERN_OK;
        }
    }
    for (int index = 1; index < argc;) {
        tern_err_t rc = s_next_opt(argc, argv, &index, &opt, errbuf, errlen);
        if (rc != TERN_OK) {
            return rc;
        }
        if (opt.kind == S_OPT_CONFIG) {
            rc = s_load_file(config, opt.value, errbuf, errlen);
            if (rc != TERN_OK) {
                return rc;
            }
        }
        print |= opt.kind == S_OPT_PRINT;
    }
    //  Pass 2: the flags, in order.
    for (int index = 1; index < argc;) {
        tern_err_t rc = s_next_opt(argc, argv, &index, &opt, errbuf, errlen);
        if (rc == TERN_OK && opt.kind == S_OPT_KEY) {
            char where[96];
            snprintf(where, sizeof where, " (from --%s)", opt.key->flag);
            rc = s_apply(config, opt.key, opt.value, where, errbuf, errlen);
        }
        if (rc != TERN_OK) {
            return rc;
        }
    }
    tern_err_t rc = tern_config_check(config, errbuf, errlen);
    if (rc == TERN_OK && print) {
        tern_config_print(config, out);
        *exit_now = true;
    }
    return rc;
}

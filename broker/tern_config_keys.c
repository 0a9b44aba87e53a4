/*  tern_config_keys.c - the table of ternd's configuration keys.

    Every key once: its ZPL path, flag, type, field, default, range and help
    (k_keys), with the checks that string keys use and the lookups by path
    and flag (with a suggestion for a typo). tern_config.c parses values
    with it, tern_config_parse.c reads files and flags, tern_config_print.c
    writes --help, --print-config and the reference. Adding a key is a row
    here and a field in tern_config_t (docs/architecture.md).
*/
#include "tern_config_priv.h"
#include "tern_id.h"

#include <assert.h>
#include <czmq.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_FIELD(f) offsetof(tern_config_t, f), sizeof(((tern_config_t *)0)->f)
#define S_SEC      1000ULL
#define S_MIN      (60 * S_SEC)
#define S_HOUR     (60 * S_MIN)
#define S_DAY      (24 * S_HOUR)
#define S_KIB      1024ULL
#define S_MIB      (1024 * S_KIB)
#define S_GIB      (1024 * S_MIB)
#define S_TIB      (1024 * S_GIB)

static k_check_fn s_check_name, s_check_path, s_check_endpoint_or_off, s_check_http_addr,
    s_check_path_or_empty, s_check_etcd, s_check_name_or_empty, s_check_endpoint_or_empty;

_Static_assert(sizeof(tern_durability_t) == sizeof(int), "S_ENUM stores an int");
_Static_assert(sizeof(tern_auth_mode_t) == sizeof(int), "S_ENUM stores an int");

//  The keys. Sections must stay contiguous (--print-config writes them in
//  this order). Defaults are parsed with the same code as user input.
const k_key_t k_keys[] = {
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
     NULL, k_check_endpoint, "ZeroMQ endpoint that clients connect to."},
    {"server/advertise", "advertise", "ENDPOINT", S_STRING, S_FIELD(advertise), "", 0, 0, NULL,
     s_check_endpoint_or_empty,
     "The client endpoint other nodes of the cluster and clients are told to use for this node "
     "(a routable address when server/listen binds a wildcard); empty = server/listen."},
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
    {"storage/writemap", "writemap", "", S_BOOL, S_FIELD(writemap), "false", 0, 0, NULL, NULL,
     "LMDB writes its pages straight into the map (MDB_WRITEMAP), with the disk reserved for "
     "the whole map at start and before each growth, so a full disk refuses publishes with "
     "TERN_EFULL: less anonymous memory, more kernel CPU per message, and data.mdb takes the "
     "map's size on disk. Left off, with a log line, where the file system cannot reserve "
     "(see Write through the map)."},
    {"storage/batch_max", "batch-max", "N", S_U32, S_FIELD(batch_max), "4096", 1, 65536, NULL, NULL,
     "Most records committed in one LMDB transaction (one fsync)."},
    {"storage/batch_bytes", "batch-bytes", "SIZE", S_SIZE, S_FIELD(batch_bytes), "16M", 64 * S_KIB,
     S_GIB, NULL, NULL,
     "The storer stops adding work to a transaction once it holds this many bytes (records "
     "and delivery state); LMDB mallocs every page the transaction changes and keeps them, "
     "so this bounds that memory (docs/performance.md, Memory)."},
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
    {"repl/heartbeat", "repl-heartbeat", "DURATION", S_DURATION, S_FIELD(repl_heartbeat_ms), "1s",
     100, S_MIN, NULL, NULL,
     "Heartbeat interval of the links between DCs, both directions: a link silent for three "
     "heartbeats is dead (a cut or a dead peer DC is noticed in 2-3 heartbeats) and tries the "
     "peer's next endpoint. Set the same in every DC."},
    {"repl/outbox_retention", "outbox-retention", "DURATION", S_DURATION,
     S_FIELD(outbox_retention_ms), "72h", S_MIN, 365 * S_DAY, NULL, NULL,
     "How long a locally originated record waits for every peer to confirm it; then it is "
     "dropped and counted as lost."},
    {"repl/peers", "peer", "NAME=ENDPOINT[,ENDPOINT...]", S_PEERS, S_FIELD(peers), "", 0, 0, NULL,
     NULL,
     "A peer DC to replicate with: its name ([A-Za-z0-9_.-]) and the replication endpoints of "
     "its nodes (1 to 8, comma-separated, each once across all peers), tried in order: the "
     "link fails over to the next when one fails. In a file, one line `NAME = "
     "\"EP1,EP2\"` per peer under `repl/peers`; the flag repeats and a known NAME gets the "
     "new endpoints."},

    {"cluster/etcd", "etcd", "URL[,URL...]", S_STRING, S_FIELD(etcd), "off", 0, 0, NULL,
     s_check_etcd,
     "etcd members (http://HOST:PORT, comma-separated) of this DC's cluster; \"off\" runs a "
     "single node without etcd (the embedded default). See docs/cluster.md."},
    {"cluster/name", "cluster", "NAME", S_STRING, S_FIELD(cluster_name), "", 0, 0, NULL,
     s_check_name_or_empty,
     "Name of the cluster, the prefix of its keys in etcd (/tern/NAME/); empty = node/dc."},
    {"cluster/listen", "cluster-listen", "ENDPOINT", S_STRING, S_FIELD(cluster_listen), "off", 0, 0,
     NULL, s_check_endpoint_or_off,
     "ZeroMQ endpoint for replication between the nodes of this cluster; required with "
     "cluster/etcd."},
    {"cluster/partitions", "partitions", "N", S_U32, S_FIELD(partitions), "64", 1, 4096, NULL, NULL,
     "Partitions topics are hashed to; fixed when the cluster is created (a node started with "
     "another value against an existing cluster exits 1)."},
    {"cluster/replicas", "replicas", "R", S_U32, S_FIELD(replicas), "3", 1, 5, NULL, NULL,
     "Replicas of every partition, on distinct nodes."},
    {"cluster/min_insync", "min-insync", "M", S_U32, S_FIELD(min_insync), "2", 1, 5, NULL, NULL,
     "Fewest in-sync replicas (the leader included) with which a publish is acknowledged; "
     "below it publishes are refused, not stored, with TERN_EREPLICAS. At most cluster/replicas."},
    {"cluster/lease", "lease", "DURATION", S_DURATION, S_FIELD(lease_ms), "2s", S_SEC, S_MIN, NULL,
     NULL,
     "The node's etcd lease: a node silent this long is dead, and its partitions fail over. "
     "etcd rounds it up to whole seconds."},
    {"cluster/replace_after", "replace-after", "DURATION", S_DURATION, S_FIELD(replace_after_ms),
     "5m", S_SEC, 30 * S_DAY, NULL, NULL,
     "How long a replica's node may stay down before the controller places a new replica "
     "elsewhere to restore cluster/replicas."},
    {"cluster/ack_timeout", "ack-timeout", "DURATION", S_DURATION, S_FIELD(ack_timeout_ms), "5s",
     100, S_MIN, NULL, NULL,
     "Longest a stored publish waits for its in-sync replicas; then it gets TERN_ETIMEOUT "
     "(nothing acknowledged, outcome unknown: resend with the same producer seq)."},
    {"cluster/isr_lag", "isr-lag", "DURATION", S_DURATION, S_FIELD(isr_lag_ms), "4s", 100, S_HOUR,
     NULL, NULL,
     "A follower not caught up with its leader for this long leaves the in-sync set, so "
     "publishes stop waiting for it."},

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
const size_t k_key_count = sizeof k_keys / sizeof k_keys[0];

//  Durations and sizes as the parser reads them back ("1m30s", "64K").
const char *k_format_duration(uint64_t ms, char *buf, size_t len) {
    return tern_units_format_duration(ms, TERN_UNITS_EXACT, buf, len);
}

const char *k_format_size(uint64_t bytes, char *buf, size_t len) {
    return tern_units_format_size(bytes, TERN_UNITS_EXACT, buf, len);
}

//  ---------------------------------------------------------------------
//  String checks

static bool s_is_name_char(char c, bool colon_ok) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == '-' || (colon_ok && c == ':');
}

bool k_valid_name(const char *value, bool colon_ok) {
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
    return k_valid_name(value, true);
}

//  A value --print-config can write back: printable, one line, and not
//  containing both quote characters (ZPL has no escapes).
bool k_printable(const char *value) {
    for (const char *p = value; *p; p++) {
        if ((unsigned char)*p < 0x20 || *p == 0x7f) {
            return false;
        }
    }
    return !(strchr(value, '"') && strchr(value, '\''));
}

static bool s_check_path_or_empty(const char *value, const char **expected) {
    *expected = "a path on one line (not containing both ' and \"), or empty";
    return k_printable(value);
}

static bool s_check_path(const char *value, const char **expected) {
    *expected = "a non-empty path on one line (not containing both ' and \")";
    return *value && k_printable(value);
}

static bool s_valid_port(const char *text, bool star_ok) {
    if (star_ok && streq(text, "*")) {
        return true;
    }
    uint64_t port;
    return k_parse_u64(&text, &port) && *text == 0 && port <= 65535;
}

bool k_check_endpoint(const char *value, const char **expected) {
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
    bool valid = k_check_endpoint(value, expected);
    *expected = "a ZeroMQ endpoint like tcp://HOST:PORT, or off";
    return valid;
}

static bool s_check_endpoint_or_empty(const char *value, const char **expected) {
    if (*value == 0) {
        return true;
    }
    return k_check_endpoint(value, expected);
}

static bool s_check_name_or_empty(const char *value, const char **expected) {
    return *value == 0 || s_check_name(value, expected);
}

//  Comma-separated http:// or https:// URLs (the etcd client's own parser
//  decides the rest when ternd starts), or off.
static bool s_check_etcd(const char *value, const char **expected) {
    *expected = "etcd URLs like http://127.0.0.1:2379[,http://...], or off";
    if (*value == 0 || streq(value, "off")) {
        return true;
    }
    const char *p = value;
    while (*p) {
        if (strncmp(p, "http://", 7) != 0 && strncmp(p, "https://", 8) != 0) {
            return false;
        }
        const char *comma = strchr(p, ',');
        if (!comma) {
            break;
        }
        p = comma + 1;
    }
    return true;
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

const k_key_t *k_key_by_path(const char *path) {
    for (size_t i = 0; i < k_key_count; i++) {
        if (streq(k_keys[i].path, path)) {
            return &k_keys[i];
        }
    }
    return NULL;
}

const k_key_t *k_key_by_flag(const char *flag, size_t len) {
    for (size_t i = 0; i < k_key_count; i++) {
        if (strlen(k_keys[i].flag) == len && strncmp(k_keys[i].flag, flag, len) == 0) {
            return &k_keys[i];
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
const char *k_suggest(const char *word, bool flags) {
    const char *best = NULL;
    size_t best_distance = 4;
    for (size_t i = 0; i < k_key_count; i++) {
        const char *candidate = flags ? k_keys[i].flag : k_keys[i].path;
        size_t distance = s_distance(word, candidate);
        if (distance < best_distance) {
            best_distance = distance;
            best = candidate;
        }
    }
    return best;
}

//  Keys whose value "off" (stored as "") turns the feature off.
bool k_off_allowed(const k_key_t *key) {
    return key->check == s_check_http_addr || key->check == s_check_endpoint_or_off ||
           key->check == s_check_etcd;
}

void *k_field(tern_config_t *config, const k_key_t *key) {
    return (char *)config + key->offset;
}

const void *k_cfield(const tern_config_t *config, const k_key_t *key) {
    return (const char *)config + key->offset;
}

//  Describes the accepted values of a numeric KEY into BUF.
const char *k_expected(const k_key_t *key, char *buf, size_t len) {
    char lo[32], hi[32];
    switch (key->type) {
        case S_U32:
            snprintf(buf, len, "an integer in %llu..%llu", (unsigned long long)key->min,
                     (unsigned long long)key->max);
            break;
        case S_DURATION:
            snprintf(buf, len, "a duration (ms, s, m, h, d, w; bare number = ms) in %s..%s",
                     k_format_duration(key->min, lo, sizeof lo),
                     k_format_duration(key->max, hi, sizeof hi));
            break;
        case S_SIZE:
            snprintf(buf, len, "a size (K, M, G, T, KiB, MB...; bare number = bytes) in %s..%s",
                     k_format_size(key->min, lo, sizeof lo),
                     k_format_size(key->max, hi, sizeof hi));
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

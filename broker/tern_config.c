/*  tern_config.c - ternd's configuration: parsing values, defaults, checks.

    One table of keys (tern_config_keys.c) drives defaults, ZPL files and
    flags (tern_config_parse.c), --help, --print-config and the docs
    reference (tern_config_print.c); this file turns a key's text into its
    field (k_apply) and checks the result (tern_config_check). Shared over
    the private tern_config_priv.h.

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
#include "tern_config_priv.h"

#include <assert.h>
#include <czmq.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  ---------------------------------------------------------------------
//  Errors

tern_err_t k_fail(char *errbuf, size_t errlen, const char *format, ...) {
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

bool k_parse_u64(const char **text, uint64_t *value) {
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
//  Splits LIST ("EP1,EP2,...", blanks around the commas allowed) into
//  PEER's endpoints and its normalized list. False with WHY (what was
//  expected) when an entry is empty, not an endpoint, too long or repeated,
//  or there are more than TERN_PEER_ENDPOINTS_MAX.
static bool s_split_endpoints(const char *list, tern_peer_config_t *peer, char *why, size_t cap) {
    peer->endpoint_count = 0;
    const char *p = list;
    for (uint32_t n = 1;; n++) {
        p += strspn(p, " \t");
        size_t len = strcspn(p, ",");
        while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t')) {
            len--;
        }
        const char *expected = "a ZeroMQ endpoint like tcp://HOST:PORT or ipc://PATH";
        char one[TERN_PEER_ENDPOINT_MAX];
        bool fits = len < sizeof one;
        snprintf(one, sizeof one, "%.*s", (int)(fits ? len : 0), p);
        if (n > TERN_PEER_ENDPOINTS_MAX) {
            snprintf(why, cap, "at most %d endpoints", TERN_PEER_ENDPOINTS_MAX);
            return false;
        }
        if (!fits) {
            snprintf(why, cap, "endpoints of at most %d bytes", TERN_PEER_ENDPOINT_MAX - 1);
            return false;
        }
        if (!k_check_endpoint(one, &expected)) {
            snprintf(why, cap, "%s%s", expected, len == 0 ? " (an entry is empty)" : "");
            return false;
        }
        for (uint32_t i = 0; i < peer->endpoint_count; i++) {
            if (streq(peer->endpoints[i], one)) {
                snprintf(why, cap, "each endpoint once (%s is listed twice)", one);
                return false;
            }
        }
        snprintf(peer->endpoints[peer->endpoint_count++], TERN_PEER_ENDPOINT_MAX, "%s", one);
        p = strchr(p, ',');
        if (!p) {
            break;
        }
        p++;
    }
    //  The normalized list fits: every entry is shorter than its share.
    char *out = peer->endpoint;
    for (uint32_t i = 0; i < peer->endpoint_count; i++) {
        out += sprintf(out, "%s%s", i ? "," : "", peer->endpoints[i]);
    }
    return true;
}

//  Adds or replaces peer NAME with the endpoint list ENDPOINTS. WHERE says
//  where it came from, for errors.
tern_err_t k_add_peer(tern_config_t *config, const char *name, const char *endpoints,
                      const char *where, char *errbuf, size_t errlen) {
    if (!k_valid_name(name, false)) {
        return k_fail(errbuf, errlen,
                      "config: repl/peers/%s: expected a peer name of 1-64 characters from "
                      "[A-Za-z0-9_.-]%s",
                      name, where);
    }
    tern_peer_config_t parsed;
    char why[TERN_PEER_ENDPOINT_MAX + 64];
    if (!s_split_endpoints(endpoints, &parsed, why, sizeof why)) {
        return k_fail(errbuf, errlen, "config: repl/peers/%s = \"%s\": expected %s%s", name,
                      endpoints, why, where);
    }
    uint32_t index = 0;
    while (index < config->peer_count && !streq(config->peers[index].name, name)) {
        index++;
    }
    if (index == TERN_PEERS_MAX) {
        return k_fail(errbuf, errlen, "config: repl/peers/%s: expected at most %d peers%s", name,
                      TERN_PEERS_MAX, where);
    }
    snprintf(parsed.name, sizeof parsed.name, "%s", name);
    config->peers[index] = parsed;
    if (index == config->peer_count) {
        config->peer_count++;
    }
    return TERN_OK;
}

//  Parses VALUE into KEY's field. WHERE (" (in FILE)", " (from --flag)")
//  ends the error line.
tern_err_t k_apply(tern_config_t *config, const k_key_t *key, const char *value, const char *where,
                   char *errbuf, size_t errlen) {
    void *field = k_field(config, key);
    char expected_buf[160];
    const char *expected = k_expected(key, expected_buf, sizeof expected_buf);
    uint64_t number = 0;
    const char *why = NULL; //  the unit parser's reason
    bool valid = false;
    switch (key->type) {
        case S_STRING:
            expected = "text";
            valid = key->check ? key->check(value, &expected) : k_printable(value);
            if (valid && strlen(value) >= key->size) {
                snprintf(expected_buf, sizeof expected_buf, "at most %zu bytes", key->size - 1);
                expected = expected_buf;
                valid = false;
            }
            if (valid) {
                //  "off" is stored as "" so the actors test one thing.
                bool off = k_off_allowed(key) && streq(value, "off");
                snprintf(field, key->size, "%s", off ? "" : value);
            }
            break;
        case S_BOOL:
            valid = tern_config_parse_bool(value, field);
            break;
        case S_U32: {
            const char *p = value;
            valid = k_parse_u64(&p, &number) && *p == 0 && number >= key->min && number <= key->max;
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
            //  Flag form NAME=ENDPOINT[,ENDPOINT...]; the file form goes to k_add_peer.
            const char *equals = strchr(value, '=');
            char name[80];
            if (equals && equals > value && (size_t)(equals - value) < sizeof name) {
                snprintf(name, sizeof name, "%.*s", (int)(equals - value), value);
                return k_add_peer(config, name, equals + 1, where, errbuf, errlen);
            }
            expected = "NAME=ENDPOINT[,ENDPOINT...]";
            break;
        }
    }
    if (!valid) {
        return k_fail(errbuf, errlen, "config: %s = \"%s\": expected %s%s", key->path, value,
                      expected, where);
    }
    return TERN_OK;
}

//  ---------------------------------------------------------------------
//  Defaults, checks, storage

void tern_config_defaults(tern_config_t *config) {
    memset(config, 0, sizeof(*config));
    for (size_t i = 0; i < k_key_count; i++) {
        if (k_keys[i].type != S_PEERS) {
            tern_err_t rc = k_apply(config, &k_keys[i], k_keys[i].def, "", NULL, 0);
            assert(rc == TERN_OK); //  the table's own defaults are valid
            (void)rc;
        }
    }
}

//  Each key's field within its range (or check), for structs filled by code
//  rather than by parsing.
static tern_err_t s_check_keys(const tern_config_t *config, char *errbuf, size_t errlen) {
    char text[64];
    for (size_t i = 0; i < k_key_count; i++) {
        const k_key_t *key = &k_keys[i];
        const void *field = k_cfield(config, key);
        uint64_t number;
        if (key->type == S_U32) {
            number = *(const uint32_t *)field;
            snprintf(text, sizeof text, "%llu", (unsigned long long)number);
        } else if (key->type == S_DURATION) {
            number = *(const uint64_t *)field;
            k_format_duration(number, text, sizeof text);
        } else if (key->type == S_SIZE) {
            number = *(const uint64_t *)field;
            k_format_size(number, text, sizeof text);
        } else if (key->type == S_STRING) {
            const char *expected;
            const char *value = field;
            if (memchr(value, 0, key->size) == NULL) {
                return k_fail(errbuf, errlen, "config: %s: not terminated", key->path);
            }
            if (key->check && !key->check(value, &expected)) {
                return k_fail(errbuf, errlen, "config: %s = \"%s\": expected %s", key->path, value,
                              expected);
            }
            continue;
        } else {
            continue;
        }
        if (number < key->min || number > key->max) {
            char expected[160];
            return k_fail(errbuf, errlen, "config: %s = \"%s\": expected %s", key->path, text,
                          k_expected(key, expected, sizeof expected));
        }
    }
    return TERN_OK;
}

//  Rules across keys, and enums set by code.
static tern_err_t s_check_rules(const tern_config_t *config, char *errbuf, size_t errlen) {
    char text[64], text2[64];
    if ((unsigned)config->durability > TERN_DURABILITY_NONE) {
        return k_fail(errbuf, errlen, "config: storage/durability = %d: expected one of %s",
                      (int)config->durability, k_key_by_path("storage/durability")->choices);
    }
    if (config->heartbeat_timeout_ms <= config->heartbeat_ms) {
        return k_fail(errbuf, errlen,
                      "config: server/heartbeat_timeout = \"%s\": expected more than "
                      "server/heartbeat (%s); 3 x heartbeat is usual",
                      k_format_duration(config->heartbeat_timeout_ms, text, sizeof text),
                      k_format_duration(config->heartbeat_ms, text2, sizeof text2));
    }
    if (config->backoff_max_ms < config->backoff_ms) {
        return k_fail(errbuf, errlen,
                      "config: delivery/backoff_max = \"%s\": expected at least "
                      "delivery/backoff (%s)",
                      k_format_duration(config->backoff_max_ms, text, sizeof text),
                      k_format_duration(config->backoff_ms, text2, sizeof text2));
    }
    if (config->map_max < config->map_initial) {
        return k_fail(errbuf, errlen,
                      "config: storage/map_max = \"%s\": expected at least storage/map_initial "
                      "(%s)",
                      k_format_size(config->map_max, text, sizeof text),
                      k_format_size(config->map_initial, text2, sizeof text2));
    }
    if (*config->repl_listen && streq(config->repl_listen, config->listen)) {
        return k_fail(errbuf, errlen,
                      "config: repl/listen = \"%s\": expected an endpoint other than "
                      "server/listen",
                      config->repl_listen);
    }
    if ((unsigned)config->auth_mode > TERN_AUTH_CURVE) {
        return k_fail(errbuf, errlen, "config: auth/mode = %d: expected one of none|curve",
                      (int)config->auth_mode);
    }
    if (config->auth_mode == TERN_AUTH_CURVE &&
        (!*config->auth_server_key || !*config->auth_clients)) {
        return k_fail(errbuf, errlen,
                      "config: auth/mode = curve: expected auth/server_key (this node's "
                      "certificate) and auth/clients (the allow-list directory)");
    }
    return TERN_OK;
}

//  The peer list: at most TERN_PEERS_MAX, valid and unique names, valid
//  endpoints, each named by one peer only (a node is in one DC).
static tern_err_t s_check_peers(const tern_config_t *config, char *errbuf, size_t errlen) {
    if (config->peer_count > TERN_PEERS_MAX) {
        return k_fail(errbuf, errlen, "config: repl/peers: %u peers, expected at most %d",
                      config->peer_count, TERN_PEERS_MAX);
    }
    for (uint32_t i = 0; i < config->peer_count; i++) {
        const tern_peer_config_t *peer = &config->peers[i];
        tern_peer_config_t parsed;
        char why[TERN_PEER_ENDPOINT_MAX + 64];
        if (!memchr(peer->name, 0, sizeof peer->name) || !k_valid_name(peer->name, false)) {
            return k_fail(errbuf, errlen, "config: repl/peers: peer %u has an invalid name", i);
        }
        if (!memchr(peer->endpoint, 0, sizeof peer->endpoint)) {
            return k_fail(errbuf, errlen, "config: repl/peers/%s: endpoint list too long",
                          peer->name);
        }
        if (!s_split_endpoints(peer->endpoint, &parsed, why, sizeof why)) {
            return k_fail(errbuf, errlen, "config: repl/peers/%s = \"%s\": expected %s", peer->name,
                          peer->endpoint, why);
        }
        for (uint32_t j = 0; j < i; j++) {
            const tern_peer_config_t *other = &config->peers[j];
            if (streq(other->name, peer->name)) {
                return k_fail(errbuf, errlen, "config: repl/peers/%s: expected unique names",
                              peer->name);
            }
            for (uint32_t a = 0; a < parsed.endpoint_count; a++) {
                for (uint32_t b = 0; b < other->endpoint_count && b < TERN_PEER_ENDPOINTS_MAX;
                     b++) {
                    if (streq(parsed.endpoints[a], other->endpoints[b])) {
                        return k_fail(errbuf, errlen,
                                      "config: repl/peers/%s: endpoint %s is also peer %s's: "
                                      "expected each endpoint in one peer (a node is in one dc)",
                                      peer->name, parsed.endpoints[a], other->name);
                    }
                }
            }
        }
    }
    return TERN_OK;
}

//  True when ENDPOINT is tcp:// on a wildcard host (*, 0.0.0.0, ::) or a
//  wildcard port (*, 0): something to bind, never an address to hand out.
static bool s_endpoint_wildcard(const char *endpoint) {
    if (strncmp(endpoint, "tcp://", 6) != 0) {
        return false;
    }
    const char *host = endpoint + 6;
    const char *colon = strrchr(host, ':');
    size_t host_len = colon ? (size_t)(colon - host) : strlen(host);
    static const char *wild_hosts[] = {"*", "0.0.0.0", "[::]", "::", "[*]"};
    for (size_t i = 0; i < sizeof wild_hosts / sizeof wild_hosts[0]; i++) {
        if (host_len == strlen(wild_hosts[i]) && strncmp(host, wild_hosts[i], host_len) == 0) {
            return true;
        }
    }
    return colon && (streq(colon + 1, "*") || streq(colon + 1, "0"));
}

//  The cluster keys (docs/operations.md, "A clustered node"). Every rule
//  here guards something the other nodes or the clients would be told:
//  an endpoint they cannot reach, or an ISR rule that can never ack.
static tern_err_t s_check_cluster(const tern_config_t *config, char *errbuf, size_t errlen) {
    if (config->min_insync > config->replicas) {
        return k_fail(errbuf, errlen,
                      "config: cluster/min_insync = %u: expected at most cluster/replicas (%u), "
                      "or no publish could ever be acknowledged",
                      config->min_insync, config->replicas);
    }
    if (*config->advertise && s_endpoint_wildcard(config->advertise)) {
        return k_fail(errbuf, errlen,
                      "config: server/advertise = \"%s\": expected an address clients can "
                      "connect to, not a wildcard",
                      config->advertise);
    }
    if (!*config->etcd) {
        return TERN_OK;
    }
    //  Cross-DC replication from a clustered DC (docs/replication.md,
    //  "Clustered DCs"): repl/listen is written into the node's etcd key as
    //  it is, for the peer DCs to connect to, like cluster/listen.
    bool repl = *config->repl_listen && !streq(config->repl_listen, "off");
    if (repl && s_endpoint_wildcard(config->repl_listen)) {
        return k_fail(errbuf, errlen,
                      "config: repl/listen = \"%s\": expected an address the peer DCs can "
                      "connect to (a clustered node announces it), not a wildcard",
                      config->repl_listen);
    }
    if (repl && (streq(config->repl_listen, config->listen) ||
                 streq(config->repl_listen, config->cluster_listen))) {
        return k_fail(errbuf, errlen,
                      "config: repl/listen = \"%s\": expected an endpoint other than "
                      "server/listen and cluster/listen",
                      config->repl_listen);
    }
    if (!*config->cluster_listen) {
        return k_fail(errbuf, errlen,
                      "config: cluster/etcd is set: expected cluster/listen (--cluster-listen "
                      "ENDPOINT), the endpoint the other nodes replicate from");
    }
    if (streq(config->cluster_listen, config->listen)) {
        return k_fail(errbuf, errlen,
                      "config: cluster/listen = \"%s\": expected an endpoint other than "
                      "server/listen",
                      config->cluster_listen);
    }
    //  The node record in etcd announces cluster/listen as it is (there is
    //  no cluster advertise key), so it must be an address peers can reach.
    if (s_endpoint_wildcard(config->cluster_listen)) {
        return k_fail(errbuf, errlen,
                      "config: cluster/listen = \"%s\": expected an address the other nodes can "
                      "connect to (it is announced to them), not a wildcard",
                      config->cluster_listen);
    }
    if (!*config->advertise && s_endpoint_wildcard(config->listen)) {
        return k_fail(errbuf, errlen,
                      "config: server/listen = \"%s\" is a wildcard: a clustered node expects "
                      "server/advertise (--advertise ENDPOINT), the address clients are sent to",
                      config->listen);
    }
    return TERN_OK;
}

tern_err_t tern_config_check(const tern_config_t *config, char *errbuf, size_t errlen) {
    tern_err_t rc = s_check_keys(config, errbuf, errlen);
    if (rc == TERN_OK) {
        rc = s_check_rules(config, errbuf, errlen);
    }
    if (rc == TERN_OK) {
        rc = s_check_peers(config, errbuf, errlen);
    }
    if (rc == TERN_OK) {
        rc = s_check_cluster(config, errbuf, errlen);
    }
    return rc;
}

void tern_config_store(const tern_config_t *config, tern_store_config_t *out) {
    tern_store_config_defaults(out);
    out->dir = config->data_dir;
    out->map_initial = config->map_initial;
    out->map_max = config->map_max;
    out->durability = config->durability;
    out->writemap = config->writemap;
    out->dedup_window_ms = config->dedup_window_ms;
    out->dedup_max = config->dedup_max;
    out->outbox_retention_ms = config->outbox_retention_ms;
    out->max_topics = config->max_topics;
    out->max_readers = config->max_readers;
    out->trace_retention_ms = config->trace_retention_ms;
    //  A node without peers ships nothing: it keeps no outbox.
    out->outbox = config->peer_count > 0;
    //  A node of a clustered DC keeps its outbox per partition.
    out->partitions = config->etcd[0] ? config->partitions : 0;
}

/*  tern_config.h - ternd's configuration: embedded defaults, a ZPL file
    (czmq zconfig, `-c FILE`), then command-line flags, in that order.

    Every key, its default and its meaning is in docs/operations.md; the table
    in tern_config.c is the single source for parsing, --help and
    --print-config.
*/
#ifndef TERN_CONFIG_H_INCLUDED
#define TERN_CONFIG_H_INCLUDED

#include "tern_err.h"
#include "tern_peer.h" //  TERN_PEER_ENDPOINTS_MAX
#include "tern_store.h"
#include "tern_units.h" //  durations and sizes, for the config and admin requests
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define TERN_PEERS_MAX 32

/*  auth/mode: who may connect (docs/security.md). */
typedef enum {
    TERN_AUTH_NONE = 0, //  no authentication: only on loopback unless server/insecure
    TERN_AUTH_CURVE = 1 //  ZeroMQ CURVE, keys in the auth/clients allow-list
} tern_auth_mode_t;

#define TERN_PEER_ENDPOINT_MAX 256 //  bytes of one endpoint, with its NUL

/*  A peer DC: its name and the replication endpoints of its nodes, tried in
    this order (cluster/tern_peer.c rotates between them). The parser fills
    all three endpoint fields; a config built in code that sets only
    ENDPOINT (endpoint_count 0) is taken as that one endpoint. */
typedef struct {
    char name[65];                                                   //  peer name (its dc)
    char endpoint[TERN_PEER_ENDPOINTS_MAX * TERN_PEER_ENDPOINT_MAX]; //  "EP1,EP2,..." as printed
    uint32_t endpoint_count;                                         //  1..TERN_PEER_ENDPOINTS_MAX
    char endpoints[TERN_PEER_ENDPOINTS_MAX][TERN_PEER_ENDPOINT_MAX]; //  endpoint, split
} tern_peer_config_t;

typedef struct {
    //  node
    uint32_t node_id;                //  node/id         0
    char dc[65];                     //  node/dc         "dc1"
    char data_dir[1024];             //  node/data       "./tern-data"
    bool verbose;                    //  node/verbose    false
    uint64_t clock_backwards_max_ms; //  node/clock_backwards_max 1s (id generator bound)
    //  endpoints
    char listen[256];              //  server/listen   "tcp://127.0.0.1:7600"
    char metrics[256];             //  server/metrics  "127.0.0.1:7609"
    uint32_t metrics_series;       //  server/metrics_series 1000
    uint32_t max_connections;      //  server/max_connections 10000
    uint64_t max_payload;          //  server/max_payload 1M
    uint64_t heartbeat_ms;         //  server/heartbeat 15s
    uint64_t heartbeat_timeout_ms; //  server/heartbeat_timeout 45s
    //  storage
    tern_durability_t durability; //  storage/durability fsync
    uint64_t map_initial;         //  storage/map_initial 64M
    uint64_t map_max;             //  storage/map_max 64G
    bool writemap;                //  storage/writemap false
    uint32_t batch_max;           //  storage/batch_max 4096
    uint64_t batch_bytes;         //  storage/batch_bytes 16M
    uint64_t dedup_window_ms;     //  storage/dedup_window 2m
    uint32_t dedup_max;           //  storage/dedup_max 1024
    uint64_t sweep_interval_ms;   //  storage/sweep_interval 1s
    uint32_t max_topics;          //  storage/max_topics 100000
    uint32_t max_readers;         //  storage/max_readers 126
    uint64_t trace_retention_ms;  //  storage/trace_retention 24h
    //  delivery
    uint64_t ack_wait_ms;     //  delivery/ack_wait 30s
    uint32_t max_deliver;     //  delivery/max_deliver 5
    uint64_t backoff_ms;      //  delivery/backoff 100ms
    uint64_t backoff_max_ms;  //  delivery/backoff_max 1h
    uint32_t max_inflight;    //  delivery/max_inflight 1000
    uint64_t ttl_instant_ms;  //  ttl/instant 30s
    uint64_t ttl_business_ms; //  ttl/business 2h
    uint64_t ttl_sync_ms;     //  ttl/sync 7d
    //  replication
    char repl_listen[256];                    //  repl/listen     "" (off)
    uint64_t outbox_retention_ms;             //  repl/outbox_retention 72h
    uint64_t repl_heartbeat_ms;               //  repl/heartbeat 1s
    uint32_t peer_count;                      //  number of peers
    tern_peer_config_t peers[TERN_PEERS_MAX]; //  repl/peers/<name> = endpoint
    //  cluster inside the DC (docs/cluster.md); etcd "" = a single node
    char etcd[1024];           //  cluster/etcd          "" (off)
    char cluster_name[65];     //  cluster/name          "" = node/dc (the etcd key prefix)
    char advertise[256];       //  server/advertise      "" = server/listen
    char cluster_listen[256];  //  cluster/listen        "" (required with cluster/etcd)
    uint32_t partitions;       //  cluster/partitions    64
    uint32_t replicas;         //  cluster/replicas      3
    uint32_t min_insync;       //  cluster/min_insync    2
    uint64_t lease_ms;         //  cluster/lease         2s
    uint64_t replace_after_ms; //  cluster/replace_after 5m
    uint64_t ack_timeout_ms;   //  cluster/ack_timeout   5s: then TERN_ETIMEOUT
    uint64_t isr_lag_ms;       //  cluster/isr_lag       4s: a follower behind longer leaves the ISR
    //  security (docs/security.md)
    bool insecure;              //  server/insecure false: allow auth none off loopback
    uint32_t max_subscriptions; //  server/max_subscriptions 1000 per connection
    uint64_t max_meta;          //  server/max_meta 64K: metadata bytes per message
    tern_auth_mode_t auth_mode; //  auth/mode none
    char auth_server_key[1024]; //  auth/server_key "": this node's certificate
    char auth_clients[1024];    //  auth/clients "": allow-list directory
    char auth_roles[1024];      //  auth/roles "": roles file ("" = no restrictions)
} tern_config_t;

/*  Fills CONFIG with the embedded defaults. */
void tern_config_defaults(tern_config_t *config);

/*  Applies ZPL file PATH over CONFIG. On error returns TERN_ECONFIG and writes
    one line naming the key, the value and what was expected into ERRBUF. */
tern_err_t tern_config_load(tern_config_t *config, const char *path, char *errbuf, size_t errlen);

/*  Parses ARGV (ternd's command line) over CONFIG: `-c FILE` is applied first,
    then every flag in order. Sets *EXIT_NOW and writes to OUT for --help,
    --print-config and --version (--help and --version win over any error
    elsewhere on the line; --print-config prints only a valid config).
    `--flag VALUE` and `--flag=VALUE` both work. Returns TERN_ECONFIG with
    ERRBUF on error; the caller prints ERRBUF and exits non-zero. */
tern_err_t tern_config_parse_args(tern_config_t *config, int argc, char **argv, FILE *out,
                                  bool *exit_now, char *errbuf, size_t errlen);

/*  Writes CONFIG as ZPL (what --print-config prints; loadable with -c). */
void tern_config_print(const tern_config_t *config, FILE *out);

/*  Reads the whole text file PATH (at most MAX bytes) into a NUL-terminated
    string; caller owns the result. NULL if it cannot be opened or read, is
    larger than MAX ("too large") or holds a NUL byte ("NUL byte at offset
    N ..."); then WHY (if not NULL; WHY_LEN bytes, 64 is enough) says which,
    in a few words. Every file ternd reads goes through here. */
char *tern_config_read_file(const char *path, size_t max, char *why, size_t why_len);

/*  Parses true/yes/on/1 or false/no/off/0 (any case) into *VALUE. */
bool tern_config_parse_bool(const char *text, bool *value);

/*  Checks every key's range and the rules that span several keys
    (heartbeat_timeout > heartbeat,
    backoff_max >= backoff, map_max >= map_initial, unique peer names, every
    peer endpoint valid and named once across all peers, and
    with cluster/etcd: cluster/listen set and not server/listen, no
    repl/peers or repl/listen, no wildcard advertised address;
    min_insync <= replicas...).
    tern_config_load and tern_config_parse_args call it once everything is
    applied. Returns TERN_ECONFIG with one line in ERRBUF on error. */
tern_err_t tern_config_check(const tern_config_t *config, char *errbuf, size_t errlen);

/*  Writes the configuration reference (every key: ZPL path, flag, default,
    meaning) as a Markdown table; docs/operations.md holds a copy and
    test_config checks that the copy is current. */
void tern_config_reference(FILE *out);

/*  Fills the storage config from the node config. OUT->dir borrows
    CONFIG->data_dir: valid while CONFIG lives. */
void tern_config_store(const tern_config_t *config, tern_store_config_t *out);

#endif

/*  test_config.c - ternd's configuration (broker/tern_config.c): defaults,
    ZPL files, flags, errors, --help, --print-config. The duration and size
    grammar is protocol/tern_units.c's, tested in test_units.c.
*/
#include "tern_config.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef TERN_SOURCE_DIR
#define TERN_SOURCE_DIR "."
#endif

#define ARGC(argv) ((int)(sizeof(argv) / sizeof((argv)[0])))

static char s_errbuf[512];

//  Writes TEXT to a fresh temp file; returns its path (caller frees and unlinks).
static char *s_write_temp(const char *text) {
    char *path = strdup("/tmp/test_config_XXXXXX");
    cr_assert_not_null(path);
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    FILE *file = fdopen(fd, "w");
    cr_assert_not_null(file);
    fputs(text, file);
    fclose(file);
    return path;
}

//  Writes LEN bytes of DATA (NULs allowed) to a fresh temp file; returns its
//  path (caller frees and unlinks).
static char *s_write_temp_bytes(const void *data, size_t len) {
    char *path = strdup("/tmp/test_config_XXXXXX");
    cr_assert_not_null(path);
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, data, len), (ssize_t)len);
    close(fd);
    return path;
}

static void s_remove_temp(char **path_p) {
    unlink(*path_p);
    free(*path_p);
    *path_p = NULL;
}

//  Runs tern_config_parse_args on ARGV over CONFIG; output goes to *OUT_P
//  (caller frees) when OUT_P is not NULL.
static tern_err_t s_parse(tern_config_t *config, int argc, char **argv, char **out_p,
                          bool *exit_now) {
    char *text = NULL;
    size_t size = 0;
    FILE *out = open_memstream(&text, &size);
    cr_assert_not_null(out);
    bool exit_flag = false;
    s_errbuf[0] = 0;
    tern_err_t rc =
        tern_config_parse_args(config, argc, argv, out, &exit_flag, s_errbuf, sizeof s_errbuf);
    fclose(out);
    if (out_p) {
        *out_p = text;
    } else {
        free(text);
    }
    if (exit_now) {
        *exit_now = exit_flag;
    }
    return rc;
}

//  Parses ARGS (after "ternd", NULL-terminated, at most 8) over the defaults.
static tern_err_t s_parse_args(tern_config_t *config, const char *const *args) {
    char *argv[9] = {"ternd"};
    int argc = 1;
    while (argc < 9 && args[argc - 1]) {
        argv[argc] = (char *)args[argc - 1];
        argc++;
    }
    tern_config_defaults(config);
    return s_parse(config, argc, argv, NULL, NULL);
}

Test(config, usage) {
    //  ternd's main: defaults, then the command line (-c FILE first, then flags).
    tern_config_t config;
    tern_config_defaults(&config);
    char *argv[] = {"ternd", "--node-id", "7", "--durability=batch"};
    bool exit_now = true;
    char errbuf[256];
    cr_assert_eq(
        tern_config_parse_args(&config, ARGC(argv), argv, stdout, &exit_now, errbuf, sizeof errbuf),
        TERN_OK);
    cr_assert_not(exit_now);
    cr_assert_eq(config.node_id, 7);
    cr_assert_eq(config.durability, TERN_DURABILITY_BATCH);
    tern_store_config_t store;
    tern_config_store(&config, &store);
    cr_assert_eq(store.durability, TERN_DURABILITY_BATCH);
}

Test(config, defaults) {
    tern_config_t config;
    memset(&config, 0xAB, sizeof config);
    tern_config_defaults(&config);
    cr_assert_eq(config.node_id, 0);
    cr_assert_str_eq(config.dc, "dc1");
    cr_assert_str_eq(config.data_dir, "./tern-data");
    cr_assert_eq(config.verbose, false);
    cr_assert_eq(config.writemap, false);
    cr_assert_eq(config.clock_backwards_max_ms, 1000);
    cr_assert_str_eq(config.listen, "tcp://127.0.0.1:7600");
    cr_assert_str_eq(config.metrics, "127.0.0.1:7609");
    cr_assert_eq(config.max_connections, 10000);
    cr_assert_eq(config.max_payload, 1048576);
    cr_assert_eq(config.heartbeat_ms, 15000);
    cr_assert_eq(config.heartbeat_timeout_ms, 45000);
    cr_assert_eq(config.durability, TERN_DURABILITY_FSYNC);
    cr_assert_eq(config.map_initial, 64ULL << 20);
    cr_assert_eq(config.map_max, 64ULL << 30);
    cr_assert_eq(config.batch_max, 4096);
    cr_assert_eq(config.batch_bytes, 16ULL << 20);
    cr_assert_eq(config.dedup_window_ms, 120000);
    cr_assert_eq(config.dedup_max, 1024);
    cr_assert_eq(config.sweep_interval_ms, 1000);
    cr_assert_eq(config.max_topics, 100000);
    cr_assert_eq(config.max_readers, 126);
    cr_assert_eq(config.ack_wait_ms, 30000);
    cr_assert_eq(config.max_deliver, 5);
    cr_assert_eq(config.backoff_ms, 100);
    cr_assert_eq(config.backoff_max_ms, 3600000);
    cr_assert_eq(config.max_inflight, 1000);
    cr_assert_eq(config.ttl_instant_ms, 30000);
    cr_assert_eq(config.ttl_business_ms, 2 * 3600000);
    cr_assert_eq(config.ttl_sync_ms, 7ULL * 86400000);
    cr_assert_str_eq(config.repl_listen, "");
    cr_assert_eq(config.outbox_retention_ms, 72ULL * 3600000);
    cr_assert_eq(config.repl_heartbeat_ms, 1000);
    cr_assert_eq(config.peer_count, 0);
    cr_assert_eq(tern_config_check(&config, s_errbuf, sizeof s_errbuf), TERN_OK);

    //  No arguments at all: the embedded defaults, nothing printed.
    tern_config_t parsed;
    tern_config_defaults(&parsed);
    char *argv[] = {"ternd"};
    bool exit_now = true;
    char *out = NULL;
    cr_assert_eq(s_parse(&parsed, ARGC(argv), argv, &out, &exit_now), TERN_OK);
    cr_assert_not(exit_now);
    cr_assert_str_eq(out, "");
    free(out);
}

Test(config, zpl_file_with_peers) {
    char *path = s_write_temp("#   a two-DC node\n"
                              "node\n"
                              "    id = 12\n"
                              "    dc = \"eu-west.1\"\n"
                              "    data = \"/var/lib/tern x\"\n"
                              "    verbose = yes\n"
                              "server\n"
                              "    listen = tcp://0.0.0.0:7700   # all interfaces\n"
                              "    metrics = off\n"
                              "    max_payload = 4M\n"
                              "storage\n"
                              "    durability = none\n"
                              "    map_max = 1T\n"
                              "    dedup_window = 10m\n"
                              "delivery\n"
                              "    ack_wait = 1m\n"
                              "    max_deliver = 9\n"
                              "ttl\n"
                              "    sync = 30d\n"
                              "repl\n"
                              "    listen = \"tcp://*:7701\"\n"
                              "    outbox_retention = 7d\n"
                              "    peers\n"
                              "        us-east = \"tcp://10.1.0.5:7701\"\n"
                              "        ap_south.2 = tcp://[::1]:7701\n");
    tern_config_t config;
    tern_config_defaults(&config);
    cr_assert_eq(tern_config_load(&config, path, s_errbuf, sizeof s_errbuf), TERN_OK, "%s",
                 s_errbuf);
    cr_assert_eq(config.node_id, 12);
    cr_assert_str_eq(config.dc, "eu-west.1");
    cr_assert_str_eq(config.data_dir, "/var/lib/tern x");
    cr_assert(config.verbose);
    cr_assert_str_eq(config.listen, "tcp://0.0.0.0:7700");
    cr_assert_str_eq(config.metrics, "", "\"off\" disables metrics");
    cr_assert_eq(config.max_payload, 4ULL << 20);
    cr_assert_eq(config.durability, TERN_DURABILITY_NONE);
    cr_assert_eq(config.map_max, 1ULL << 40);
    cr_assert_eq(config.dedup_window_ms, 600000);
    cr_assert_eq(config.ack_wait_ms, 60000);
    cr_assert_eq(config.max_deliver, 9);
    cr_assert_eq(config.ttl_sync_ms, 30ULL * 86400000);
    cr_assert_str_eq(config.repl_listen, "tcp://*:7701");
    cr_assert_eq(config.outbox_retention_ms, 7ULL * 86400000);
    cr_assert_eq(config.peer_count, 2);
    cr_assert_str_eq(config.peers[0].name, "us-east");
    cr_assert_str_eq(config.peers[0].endpoint, "tcp://10.1.0.5:7701");
    cr_assert_str_eq(config.peers[1].name, "ap_south.2");
    cr_assert_str_eq(config.peers[1].endpoint, "tcp://[::1]:7701");
    //  Keys the file does not name keep their defaults.
    cr_assert_eq(config.heartbeat_ms, 15000);
    cr_assert_eq(config.map_initial, 64ULL << 20);
    s_remove_temp(&path);
}

Test(config, unknown_key_is_named) {
    char *path = s_write_temp("storage\n    durabilty = fsync\n");
    tern_config_t config;
    tern_config_defaults(&config);
    cr_assert_eq(tern_config_load(&config, path, s_errbuf, sizeof s_errbuf), TERN_ECONFIG);
    cr_assert(strstr(s_errbuf, "unknown key \"storage/durabilty\""), "%s", s_errbuf);
    cr_assert(strstr(s_errbuf, "did you mean \"storage/durability\""), "%s", s_errbuf);
    cr_assert(strstr(s_errbuf, path), "names the file: %s", s_errbuf);
    s_remove_temp(&path);

    path = s_write_temp("bogus\n    thing = 1\n");
    cr_assert_eq(tern_config_load(&config, path, s_errbuf, sizeof s_errbuf), TERN_ECONFIG);
    cr_assert(strstr(s_errbuf, "unknown key \"bogus/thing\""), "%s", s_errbuf);
    s_remove_temp(&path);

    path = s_write_temp("id = 3\n");
    cr_assert_eq(tern_config_load(&config, path, s_errbuf, sizeof s_errbuf), TERN_ECONFIG);
    cr_assert(strstr(s_errbuf, "unknown key \"id\""), "%s", s_errbuf);
    s_remove_temp(&path);

    //  A known key used as a section, and a section given a value.
    path = s_write_temp("node\n    id\n        x = 1\n");
    cr_assert_eq(tern_config_load(&config, path, s_errbuf, sizeof s_errbuf), TERN_ECONFIG);
    cr_assert(strstr(s_errbuf, "node/id"), "%s", s_errbuf);
    s_remove_temp(&path);
    path = s_write_temp("node = 5\n    id = 1\n");
    cr_assert_eq(tern_config_load(&config, path, s_errbuf, sizeof s_errbuf), TERN_ECONFIG);
    cr_assert(strstr(s_errbuf, "node = \"5\""), "%s", s_errbuf);
    s_remove_temp(&path);
}

Test(config, bad_value_names_key_value_expectation) {
    static const struct {
        const char *file;     //  ZPL text
        const char *expected; //  the error line starts with this
    } cases[] = {
        {"storage\n    durability = fast\n",
         "config: storage/durability = \"fast\": expected one of fsync|batch|none"},
        {"node\n    id = 1024\n", "config: node/id = \"1024\": expected an integer in 0..1023"},
        {"node\n    id = -1\n", "config: node/id = \"-1\": expected an integer in 0..1023"},
        {"node\n    dc = \"has space\"\n",
         "config: node/dc = \"has space\": expected a name of 1-64 characters"},
        {"node\n    dc = \"\"\n", "config: node/dc = \"\": expected a name"},
        {"delivery\n    max_deliver = 0\n",
         "config: delivery/max_deliver = \"0\": expected an integer in 1..1000"},
        {"delivery\n    ack_wait = 30x\n",
         "config: delivery/ack_wait = \"30x\": expected a duration (ms, s, m, h, d, w; bare "
         "number = ms) in 100ms..7d: unknown unit (use ms, s, m, h, d or w)"},
        {"storage\n    batch_bytes = 4K\n",
         "config: storage/batch_bytes = \"4K\": expected a size (K, M, G, T, KiB, MB...; bare "
         "number = bytes) in 64K..1G"},
        {"server\n    max_payload = 1G\n", "config: server/max_payload = \"1G\": expected a size "
                                           "(K, M, G, T, KiB, MB...; bare number = "
                                           "bytes) in 1..256M"},
        {"server\n    listen = \"127.0.0.1:7600\"\n",
         "config: server/listen = \"127.0.0.1:7600\": expected a ZeroMQ endpoint"},
        {"server\n    metrics = \"7609\"\n",
         "config: server/metrics = \"7609\": expected HOST:PORT"},
        {"node\n    verbose = maybe\n", "config: node/verbose = \"maybe\": expected true or false"},
        {"repl\n    peers\n        dc2 = \"nowhere\"\n",
         "config: repl/peers/dc2 = \"nowhere\": expected a ZeroMQ endpoint"},
        {"repl\n    peers = x\n", "config: repl/peers = \"x\": expected a section"},
        //  Rules across keys, checked after the whole file.
        {"server\n    heartbeat = 1m\n",
         "config: server/heartbeat_timeout = \"45s\": expected more than server/heartbeat (1m)"},
        {"delivery\n    backoff = 30m\n    backoff_max = 10m\n",
         "config: delivery/backoff_max = \"10m\": expected at least delivery/backoff (30m)"},
        {"storage\n    map_initial = 1G\n    map_max = 512M\n",
         "config: storage/map_max = \"512M\": expected at least storage/map_initial (1G)"},
        {"repl\n    listen = \"tcp://127.0.0.1:7600\"\n",
         "config: repl/listen = \"tcp://127.0.0.1:7600\": expected an endpoint other than "
         "server/listen"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *path = s_write_temp(cases[i].file);
        tern_config_t config;
        tern_config_defaults(&config);
        s_errbuf[0] = 0;
        cr_assert_eq(tern_config_load(&config, path, s_errbuf, sizeof s_errbuf), TERN_ECONFIG,
                     "accepted: %s", cases[i].file);
        cr_assert(strncmp(s_errbuf, cases[i].expected, strlen(cases[i].expected)) == 0,
                  "got      \"%s\"\nexpected \"%s...\"", s_errbuf, cases[i].expected);
        s_remove_temp(&path);
    }
}

Test(config, unreadable_and_malformed_files) {
    tern_config_t config;
    tern_config_defaults(&config);
    cr_assert_eq(tern_config_load(&config, "/nonexistent/tern.cfg", s_errbuf, sizeof s_errbuf),
                 TERN_ECONFIG);
    cr_assert(strstr(s_errbuf, "cannot read \"/nonexistent/tern.cfg\""), "%s", s_errbuf);
    char *path = s_write_temp("node\n  id = 3\n"); //  ZPL indents by 4
    cr_assert_eq(tern_config_load(&config, path, s_errbuf, sizeof s_errbuf), TERN_ECONFIG);
    cr_assert(strstr(s_errbuf, "is not valid ZPL"), "%s", s_errbuf);
    s_remove_temp(&path);
    //  An empty file changes nothing.
    path = s_write_temp("");
    cr_assert_eq(tern_config_load(&config, path, s_errbuf, sizeof s_errbuf), TERN_OK);
    cr_assert_eq(config.node_id, 0);
    s_remove_temp(&path);
}

Test(config, nul_bytes_refused_with_offset) {
    //  A file of zeros (what a power cut can leave) used to load as empty:
    //  ternd started on all defaults.
    static const char zeros[4096];
    char *path = s_write_temp_bytes(zeros, sizeof zeros);
    tern_config_t config;
    tern_config_defaults(&config);
    cr_assert_eq(tern_config_load(&config, path, s_errbuf, sizeof s_errbuf), TERN_ECONFIG);
    char want[128];
    snprintf(want, sizeof want, "config: cannot read \"%s\": NUL byte at offset 0", path);
    cr_assert(strstr(s_errbuf, want), "%s", s_errbuf);
    s_remove_temp(&path);
    //  Valid text, then a NUL: everything after it used to be ignored.
    static const char cut[] = "node\n    id = 3\n\0storage\n    durability = none\n";
    path = s_write_temp_bytes(cut, sizeof cut - 1);
    cr_assert_eq(tern_config_load(&config, path, s_errbuf, sizeof s_errbuf), TERN_ECONFIG);
    cr_assert(strstr(s_errbuf, "NUL byte at offset 16"), "%s", s_errbuf);
    char *argv[] = {"ternd", "-c", path};
    tern_config_defaults(&config);
    cr_assert_eq(s_parse(&config, ARGC(argv), argv, NULL, NULL), TERN_ECONFIG);
    cr_assert(strstr(s_errbuf, "NUL byte at offset 16"), "%s", s_errbuf);
    s_remove_temp(&path);
    //  The shared reader says the same to every caller.
    path = s_write_temp_bytes(cut, sizeof cut - 1);
    char why[64];
    cr_assert_null(tern_config_read_file(path, 1024, why, sizeof why));
    cr_assert_str_eq(why, "NUL byte at offset 16 (not a text file)");
    cr_assert_null(tern_config_read_file(path, 8, why, sizeof why));
    cr_assert_str_eq(why, "too large");
    s_remove_temp(&path);
    path = s_write_temp("node\n");
    char *text = tern_config_read_file(path, 1024, why, sizeof why);
    cr_assert_str_eq(text, "node\n");
    cr_assert_str_eq(why, "");
    free(text);
    s_remove_temp(&path);
}

//  A peer DC with several endpoints, from a flag and from a file; one
//  endpoint works as before; bad lists are refused naming what is wrong.
Test(config, peer_endpoint_lists) {
    tern_config_t config;
    const char *one[] = {"--peer", "dc2=tcp://h:1", NULL};
    cr_assert_eq(s_parse_args(&config, one), TERN_OK, "%s", s_errbuf);
    cr_assert_eq(config.peers[0].endpoint_count, 1u);
    cr_assert_str_eq(config.peers[0].endpoints[0], "tcp://h:1");
    cr_assert_str_eq(config.peers[0].endpoint, "tcp://h:1");
    const char *three[] = {"--peer", "dc2=tcp://h:1,tcp://h:2 , ipc:///tmp/x", NULL};
    cr_assert_eq(s_parse_args(&config, three), TERN_OK, "%s", s_errbuf);
    cr_assert_eq(config.peers[0].endpoint_count, 3u);
    cr_assert_str_eq(config.peers[0].endpoints[1], "tcp://h:2");
    cr_assert_str_eq(config.peers[0].endpoints[2], "ipc:///tmp/x");
    cr_assert_str_eq(config.peers[0].endpoint, "tcp://h:1,tcp://h:2,ipc:///tmp/x");
    //  The file form; a later flag replaces the whole list.
    char *path = s_write_temp("repl\n    peers\n        dc2 = \"tcp://f:1, tcp://f:2\"\n"
                              "        dc3 = tcp://g:1\n");
    char *argv[] = {"ternd", "-c", path, "--peer", "dc3=tcp://g:2,tcp://g:3"};
    tern_config_defaults(&config);
    cr_assert_eq(s_parse(&config, ARGC(argv), argv, NULL, NULL), TERN_OK, "%s", s_errbuf);
    s_remove_temp(&path);
    cr_assert_eq(config.peer_count, 2u);
    cr_assert_eq(config.peers[0].endpoint_count, 2u);
    cr_assert_str_eq(config.peers[0].endpoints[1], "tcp://f:2");
    cr_assert_eq(config.peers[1].endpoint_count, 2u);
    cr_assert_str_eq(config.peers[1].endpoints[0], "tcp://g:2");
    //  At most TERN_PEER_ENDPOINTS_MAX (8).
    const char *eight[] = {"--peer",
                           "d=tcp://h:1,tcp://h:2,tcp://h:3,tcp://h:4,tcp://h:5,"
                           "tcp://h:6,tcp://h:7,tcp://h:8",
                           NULL};
    cr_assert_eq(s_parse_args(&config, eight), TERN_OK, "%s", s_errbuf);
    cr_assert_eq(config.peers[0].endpoint_count, 8u);
    struct {
        const char *args[5];
        const char *expected;
    } cases[] = {
        {{"--peer", "dc2=", NULL},
         "config: repl/peers/dc2 = \"\": expected a ZeroMQ endpoint like tcp://HOST:PORT or "
         "ipc://PATH (an entry is empty) (from --peer)"},
        {{"--peer", "dc2=tcp://h:1,,tcp://h:2", NULL},
         "config: repl/peers/dc2 = \"tcp://h:1,,tcp://h:2\": expected a ZeroMQ endpoint like "
         "tcp://HOST:PORT or ipc://PATH (an entry is empty)"},
        {{"--peer", "dc2=tcp://h:1,", NULL}, "(an entry is empty)"},
        {{"--peer", "dc2=tcp://h:1,nowhere", NULL},
         "config: repl/peers/dc2 = \"tcp://h:1,nowhere\": expected a ZeroMQ endpoint"},
        {{"--peer", "dc2=tcp://h:1,tcp://h:2,tcp://h:1", NULL},
         "config: repl/peers/dc2 = \"tcp://h:1,tcp://h:2,tcp://h:1\": expected each endpoint "
         "once (tcp://h:1 is listed twice)"},
        {{"--peer", "dc2=tcp://h:1,tcp://h:2", "--peer", "dc3=tcp://h:3,tcp://h:2", NULL},
         "config: repl/peers/dc3: endpoint tcp://h:2 is also peer dc2's: expected each "
         "endpoint in one peer"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cr_assert_eq(s_parse_args(&config, cases[i].args), TERN_ECONFIG, "case %zu", i);
        cr_assert(strstr(s_errbuf, cases[i].expected), "case %zu: got \"%s\"\nexpected \"%s\"", i,
                  s_errbuf, cases[i].expected);
    }
    const char *nine[] = {"--peer",
                          "d=tcp://h:1,tcp://h:2,tcp://h:3,tcp://h:4,tcp://h:5,"
                          "tcp://h:6,tcp://h:7,tcp://h:8,tcp://h:9",
                          NULL};
    cr_assert_eq(s_parse_args(&config, nine), TERN_ECONFIG);
    cr_assert(strstr(s_errbuf, "expected at most 8 endpoints"), "%s", s_errbuf);
    char longer[400];
    snprintf(longer, sizeof longer, "d=tcp://h:1,tcp://%0300d:1", 0);
    const char *too_long[] = {"--peer", longer, NULL};
    cr_assert_eq(s_parse_args(&config, too_long), TERN_ECONFIG);
    cr_assert(strstr(s_errbuf, "expected endpoints of at most 255 bytes"), "%s", s_errbuf);
}

Test(config, flags_override_file_in_any_order) {
    char *path = s_write_temp("node\n    id = 3\n    dc = filedc\n"
                              "storage\n    durability = batch\n"
                              "repl\n    peers\n        dc2 = tcp://file:1\n");
    char *before[] = {"ternd", "--node-id", "5", "--durability", "none", "-c", path};
    char *after[] = {"ternd", "-c", path, "--node-id", "5", "--durability", "none"};
    char config_eq[64];
    snprintf(config_eq, sizeof config_eq, "--config=%s", path);
    char *long_form[] = {"ternd", "--node-id=5", config_eq, "--durability=none"};
    char **cases[] = {before, after, long_form};
    int counts[] = {ARGC(before), ARGC(after), ARGC(long_form)};
    for (int i = 0; i < 3; i++) {
        tern_config_t config;
        tern_config_defaults(&config);
        cr_assert_eq(s_parse(&config, counts[i], cases[i], NULL, NULL), TERN_OK, "%s", s_errbuf);
        cr_assert_eq(config.node_id, 5, "case %d", i);
        cr_assert_eq(config.durability, TERN_DURABILITY_NONE, "case %d", i);
        cr_assert_str_eq(config.dc, "filedc", "the file still applies (case %d)", i);
        cr_assert_eq(config.peer_count, 1);
    }
    //  Later flags win over earlier ones; --peer appends or replaces by name.
    char *peers[] = {"ternd",  "--peer",           "dc3=tcp://flag:3", "-c", path,
                     "--peer", "dc2=tcp://flag:2", "--node-id",        "1",  "--node-id=2"};
    tern_config_t config;
    tern_config_defaults(&config);
    cr_assert_eq(s_parse(&config, ARGC(peers), peers, NULL, NULL), TERN_OK, "%s", s_errbuf);
    cr_assert_eq(config.node_id, 2);
    cr_assert_eq(config.peer_count, 2);
    cr_assert_str_eq(config.peers[0].name, "dc2");
    cr_assert_str_eq(config.peers[0].endpoint, "tcp://flag:2");
    cr_assert_str_eq(config.peers[1].name, "dc3");
    cr_assert_str_eq(config.peers[1].endpoint, "tcp://flag:3");

    //  A flag can repair what the file alone breaks: checks run at the end.
    s_remove_temp(&path);
    path = s_write_temp("server\n    heartbeat = 1m\n");
    char *repair[] = {"ternd", "--heartbeat-timeout", "3m", "-c", path};
    tern_config_defaults(&config);
    cr_assert_eq(s_parse(&config, ARGC(repair), repair, NULL, NULL), TERN_OK, "%s", s_errbuf);
    cr_assert_eq(config.heartbeat_ms, 60000);
    cr_assert_eq(config.heartbeat_timeout_ms, 180000);
    s_remove_temp(&path);
}

Test(config, every_flag_form) {
    char *argv[] = {"ternd",
                    "--dc=dc-2:a",
                    "--data",
                    "/tmp/x",
                    "-v",
                    "--clock-backwards-max=250ms",
                    "--listen",
                    "tcp://127.0.0.1:9000",
                    "--metrics=off",
                    "--max-connections",
                    "77",
                    "--max-payload=512K",
                    "--heartbeat",
                    "2s",
                    "--heartbeat-timeout=6s",
                    "--map-initial",
                    "8M",
                    "--map-max=1G",
                    "--batch-max",
                    "64",
                    "--batch-bytes=256K",
                    "--dedup-window=30s",
                    "--dedup-max",
                    "10",
                    "--sweep-interval=100ms",
                    "--max-topics",
                    "50",
                    "--max-readers=200",
                    "--ack-wait",
                    "5s",
                    "--max-deliver=2",
                    "--backoff",
                    "10ms",
                    "--backoff-max=1m",
                    "--max-inflight",
                    "256",
                    "--ttl-instant=10s",
                    "--ttl-business",
                    "1h",
                    "--ttl-sync=2d",
                    "--repl-listen",
                    "tcp://127.0.0.1:9001",
                    "--outbox-retention=1d",
                    "--repl-heartbeat",
                    "300ms"};
    tern_config_t config;
    tern_config_defaults(&config);
    cr_assert_eq(s_parse(&config, ARGC(argv), argv, NULL, NULL), TERN_OK, "%s", s_errbuf);
    cr_assert_str_eq(config.dc, "dc-2:a");
    cr_assert_str_eq(config.data_dir, "/tmp/x");
    cr_assert(config.verbose);
    cr_assert_eq(config.clock_backwards_max_ms, 250);
    cr_assert_str_eq(config.listen, "tcp://127.0.0.1:9000");
    cr_assert_str_eq(config.metrics, "");
    cr_assert_eq(config.max_connections, 77);
    cr_assert_eq(config.max_payload, 512 * 1024);
    cr_assert_eq(config.heartbeat_ms, 2000);
    cr_assert_eq(config.heartbeat_timeout_ms, 6000);
    cr_assert_eq(config.map_initial, 8ULL << 20);
    cr_assert_eq(config.map_max, 1ULL << 30);
    cr_assert_eq(config.batch_max, 64);
    cr_assert_eq(config.batch_bytes, 256 * 1024);
    cr_assert_eq(config.dedup_window_ms, 30000);
    cr_assert_eq(config.dedup_max, 10);
    cr_assert_eq(config.sweep_interval_ms, 100);
    cr_assert_eq(config.max_topics, 50);
    cr_assert_eq(config.max_readers, 200);
    cr_assert_eq(config.ack_wait_ms, 5000);
    cr_assert_eq(config.max_deliver, 2);
    cr_assert_eq(config.backoff_ms, 10);
    cr_assert_eq(config.backoff_max_ms, 60000);
    cr_assert_eq(config.max_inflight, 256);
    cr_assert_eq(config.ttl_instant_ms, 10000);
    cr_assert_eq(config.ttl_business_ms, 3600000);
    cr_assert_eq(config.ttl_sync_ms, 2 * 86400000ULL);
    cr_assert_str_eq(config.repl_listen, "tcp://127.0.0.1:9001");
    cr_assert_eq(config.outbox_retention_ms, 86400000);
    cr_assert_eq(config.repl_heartbeat_ms, 300);

    //  Booleans: a bare flag sets true, --flag=VALUE sets either way.
    char *off[] = {"ternd", "--verbose", "--verbose=false"};
    cr_assert_eq(s_parse(&config, ARGC(off), off, NULL, NULL), TERN_OK, "%s", s_errbuf);
    cr_assert_not(config.verbose);
    //  --metrics with an empty value also disables it.
    char *empty[] = {"ternd", "--metrics="};
    tern_config_defaults(&config);
    cr_assert_eq(s_parse(&config, ARGC(empty), empty, NULL, NULL), TERN_OK, "%s", s_errbuf);
    cr_assert_str_eq(config.metrics, "");
    //  "off" means off only where the key says so.
    char *names[] = {"ternd", "--dc", "off", "--data=off", "--repl-listen=off"};
    tern_config_defaults(&config);
    cr_assert_eq(s_parse(&config, ARGC(names), names, NULL, NULL), TERN_OK, "%s", s_errbuf);
    cr_assert_str_eq(config.dc, "off");
    cr_assert_str_eq(config.data_dir, "off");
    cr_assert_str_eq(config.repl_listen, "");
}

Test(config, flag_errors) {
    static const struct {
        const char *args[4];  //  after "ternd"; NULL-terminated
        const char *expected; //  the error line starts with this
    } cases[] = {
        {{"--bogus", NULL}, "config: unknown option \"--bogus\""},
        {{"--max-delivr=3", NULL},
         "config: unknown option \"--max-delivr\"; did you mean --max-deliver?"},
        {{"-x", NULL}, "config: unknown option \"-x\""},
        {{"stray", NULL}, "config: unexpected argument \"stray\""},
        {{"--listen", NULL}, "config: option \"--listen\" needs a value (ENDPOINT)"},
        {{"-c", NULL}, "config: option \"-c\" needs a value (FILE)"},
        {{"--durability", "fast", NULL},
         "config: storage/durability = \"fast\": expected one of fsync|batch|none (from "
         "--durability)"},
        {{"--node-id=2000", NULL}, "config: node/id = \"2000\": expected an integer in 0..1023"},
        {{"--max-deliver", "0", NULL}, "config: delivery/max_deliver = \"0\""},
        {{"--repl-heartbeat", "50ms", NULL}, "config: repl/heartbeat = \"50ms\""},
        {{"--peer", "dc2", NULL},
         "config: repl/peers = \"dc2\": expected NAME=ENDPOINT[,ENDPOINT...]"},
        {{"--peer", "d:c=tcp://h:1", NULL}, "config: repl/peers/d:c: expected a peer name"},
        {{"--peer", "dc2=tcp://h", NULL}, "config: repl/peers/dc2 = \"tcp://h\": expected"},
        {{"--version=2", NULL}, "config: option \"--version=2\" takes no value"},
        {{"-c", "/nonexistent/file", NULL}, "config: cannot read \"/nonexistent/file\""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tern_config_t config;
        cr_assert_eq(s_parse_args(&config, cases[i].args), TERN_ECONFIG, "case %zu", i);
        cr_assert(strncmp(s_errbuf, cases[i].expected, strlen(cases[i].expected)) == 0,
                  "got      \"%s\"\nexpected \"%s...\"", s_errbuf, cases[i].expected);
    }
}

//  Every field, compared one by one.
static void s_assert_same(const tern_config_t *a, const tern_config_t *b) {
    cr_assert_eq(a->node_id, b->node_id);
    cr_assert_str_eq(a->dc, b->dc);
    cr_assert_str_eq(a->data_dir, b->data_dir);
    cr_assert_eq(a->verbose, b->verbose);
    cr_assert_eq(a->clock_backwards_max_ms, b->clock_backwards_max_ms);
    cr_assert_str_eq(a->listen, b->listen);
    cr_assert_str_eq(a->metrics, b->metrics);
    cr_assert_eq(a->max_connections, b->max_connections);
    cr_assert_eq(a->max_payload, b->max_payload);
    cr_assert_eq(a->heartbeat_ms, b->heartbeat_ms);
    cr_assert_eq(a->heartbeat_timeout_ms, b->heartbeat_timeout_ms);
    cr_assert_eq(a->durability, b->durability);
    cr_assert_eq(a->map_initial, b->map_initial);
    cr_assert_eq(a->map_max, b->map_max);
    cr_assert_eq(a->batch_max, b->batch_max);
    cr_assert_eq(a->batch_bytes, b->batch_bytes);
    cr_assert_eq(a->dedup_window_ms, b->dedup_window_ms);
    cr_assert_eq(a->dedup_max, b->dedup_max);
    cr_assert_eq(a->sweep_interval_ms, b->sweep_interval_ms);
    cr_assert_eq(a->max_topics, b->max_topics);
    cr_assert_eq(a->max_readers, b->max_readers);
    cr_assert_eq(a->ack_wait_ms, b->ack_wait_ms);
    cr_assert_eq(a->max_deliver, b->max_deliver);
    cr_assert_eq(a->backoff_ms, b->backoff_ms);
    cr_assert_eq(a->backoff_max_ms, b->backoff_max_ms);
    cr_assert_eq(a->max_inflight, b->max_inflight);
    cr_assert_eq(a->ttl_instant_ms, b->ttl_instant_ms);
    cr_assert_eq(a->ttl_business_ms, b->ttl_business_ms);
    cr_assert_eq(a->ttl_sync_ms, b->ttl_sync_ms);
    cr_assert_str_eq(a->repl_listen, b->repl_listen);
    cr_assert_eq(a->outbox_retention_ms, b->outbox_retention_ms);
    cr_assert_eq(a->repl_heartbeat_ms, b->repl_heartbeat_ms);
    cr_assert_eq(a->peer_count, b->peer_count);
    for (uint32_t i = 0; i < a->peer_count; i++) {
        cr_assert_str_eq(a->peers[i].name, b->peers[i].name);
        cr_assert_str_eq(a->peers[i].endpoint, b->peers[i].endpoint);
        cr_assert_eq(a->peers[i].endpoint_count, b->peers[i].endpoint_count);
        for (uint32_t e = 0; e < a->peers[i].endpoint_count; e++) {
            cr_assert_str_eq(a->peers[i].endpoints[e], b->peers[i].endpoints[e]);
        }
    }
}

static void s_round_trip(const tern_config_t *config) {
    //  Print, load the text into fresh defaults, compare.
    char *text = NULL;
    size_t size = 0;
    FILE *out = open_memstream(&text, &size);
    tern_config_print(config, out);
    fclose(out);
    char *path = s_write_temp(text);
    tern_config_t loaded;
    tern_config_defaults(&loaded);
    cr_assert_eq(tern_config_load(&loaded, path, s_errbuf, sizeof s_errbuf), TERN_OK, "%s\n%s",
                 s_errbuf, text);
    s_assert_same(config, &loaded);
    s_remove_temp(&path);
    free(text);
}

Test(config, print_config_round_trip) {
    tern_config_t config;
    tern_config_defaults(&config);
    s_round_trip(&config);

    //  Every field off its default, odd units, quotes in a path, peers.
    char *argv[] = {"ternd",
                    "--node-id=1023",
                    "--dc=x.y:z",
                    "--data=/tmp/it's here",
                    "--verbose",
                    "--clock-backwards-max=0",
                    "--listen=ipc:///tmp/tern.sock",
                    "--metrics=0.0.0.0:0",
                    "--max-connections=1",
                    "--max-payload=1025",
                    "--heartbeat=1500",
                    "--heartbeat-timeout=90m",
                    "--durability=batch",
                    "--map-initial=3M",
                    "--map-max=5T",
                    "--batch-max=65536",
                    "--batch-bytes=1G",
                    "--dedup-window=25h",
                    "--dedup-max=1000000",
                    "--sweep-interval=10",
                    "--max-topics=3",
                    "--max-readers=8",
                    "--ack-wait=7d",
                    "--max-deliver=1000",
                    "--backoff=1",
                    "--backoff-max=61s",
                    "--max-inflight=1",
                    "--ttl-instant=1s",
                    "--ttl-business=365d",
                    "--ttl-sync=100h",
                    "--repl-listen=tcp://*:*",
                    "--outbox-retention=1m",
                    "--peer=a=tcp://a:1, tcp://a:2",
                    "--peer=b-2=ipc:///tmp/b",
                    "--print-config"};
    tern_config_defaults(&config);
    char *printed = NULL;
    bool exit_now = false;
    cr_assert_eq(s_parse(&config, ARGC(argv), argv, &printed, &exit_now), TERN_OK, "%s", s_errbuf);
    cr_assert(exit_now, "--print-config exits");
    cr_assert(strstr(printed, "    durability = batch\n"), "%s", printed);
    cr_assert(strstr(printed, "    data = \"/tmp/it's here\"\n"), "%s", printed);
    cr_assert(strstr(printed, "        b-2 = \"ipc:///tmp/b\"\n"), "%s", printed);
    cr_assert(strstr(printed, "        a = \"tcp://a:1,tcp://a:2\"\n"), "%s", printed);
    s_round_trip(&config);

    //  What --print-config printed loads back with -c to the same config.
    char *path = s_write_temp(printed);
    char *reload[] = {"ternd", "-c", path};
    tern_config_t loaded;
    tern_config_defaults(&loaded);
    cr_assert_eq(s_parse(&loaded, ARGC(reload), reload, NULL, NULL), TERN_OK, "%s", s_errbuf);
    s_assert_same(&config, &loaded);
    s_remove_temp(&path);
    free(printed);

    //  Metrics and replication off print as "off" and read back as off.
    tern_config_defaults(&config);
    config.metrics[0] = 0;
    s_round_trip(&config);
}

Test(config, help_lists_every_flag) {
    static const char *flags[] = {"-c, --config FILE",
                                  "-v, --verbose",
                                  "--help",
                                  "--version",
                                  "--print-config",
                                  "--config-reference",
                                  "--node-id N",
                                  "--dc NAME",
                                  "--data DIR",
                                  "--verbose",
                                  "--clock-backwards-max DURATION",
                                  "--listen ENDPOINT",
                                  "--metrics HOST:PORT",
                                  "--max-connections N",
                                  "--max-payload SIZE",
                                  "--heartbeat DURATION",
                                  "--heartbeat-timeout DURATION",
                                  "--durability MODE",
                                  "--map-initial SIZE",
                                  "--map-max SIZE",
                                  "--batch-max N",
                                  "--batch-bytes SIZE",
                                  "--dedup-window DURATION",
                                  "--dedup-max N",
                                  "--sweep-interval DURATION",
                                  "--max-topics N",
                                  "--max-readers N",
                                  "--ack-wait DURATION",
                                  "--max-deliver N",
                                  "--backoff DURATION",
                                  "--backoff-max DURATION",
                                  "--max-inflight N",
                                  "--ttl-instant DURATION",
                                  "--ttl-business DURATION",
                                  "--ttl-sync DURATION",
                                  "--repl-listen ENDPOINT",
                                  "--outbox-retention DURATION",
                                  "--peer NAME=ENDPOINT[,ENDPOINT...]"};
    static const char *keys[] = {"node/id",
                                 "node/dc",
                                 "node/data",
                                 "node/verbose",
                                 "node/clock_backwards_max",
                                 "server/listen",
                                 "server/metrics",
                                 "server/max_connections",
                                 "server/max_payload",
                                 "server/heartbeat",
                                 "server/heartbeat_timeout",
                                 "storage/durability",
                                 "storage/map_initial",
                                 "storage/map_max",
                                 "storage/batch_max",
                                 "storage/batch_bytes",
                                 "storage/dedup_window",
                                 "storage/dedup_max",
                                 "storage/sweep_interval",
                                 "storage/max_topics",
                                 "storage/max_readers",
                                 "delivery/ack_wait",
                                 "delivery/max_deliver",
                                 "delivery/backoff",
                                 "delivery/backoff_max",
                                 "delivery/max_inflight",
                                 "ttl/instant",
                                 "ttl/business",
                                 "ttl/sync",
                                 "repl/listen",
                                 "repl/outbox_retention",
                                 "repl/peers"};
    //  --help wins even over a bad flag elsewhere on the line.
    char *argv[] = {"ternd", "--node-id=9999", "--help"};
    tern_config_t config;
    tern_config_defaults(&config);
    char *help = NULL;
    bool exit_now = false;
    cr_assert_eq(s_parse(&config, ARGC(argv), argv, &help, &exit_now), TERN_OK);
    cr_assert(exit_now);
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++) {
        cr_assert(strstr(help, flags[i]), "--help lacks \"%s\"", flags[i]);
    }
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        cr_assert(strstr(help, keys[i]), "--help lacks \"%s\"", keys[i]);
    }
    cr_assert(strstr(help, "(default fsync)"), "--help shows defaults");
    free(help);

    char *version[] = {"ternd", "--version"};
    char *text = NULL;
    cr_assert_eq(s_parse(&config, ARGC(version), version, &text, &exit_now), TERN_OK);
    cr_assert(exit_now);
    cr_assert_str_eq(text, "ternd 0.1.0\n");
    free(text);
}

Test(config, docs_reference_is_current) {
    //  docs/operations.md carries the reference table generated from the
    //  same key table; regenerate it when a key changes.
    char *table = NULL;
    size_t size = 0;
    FILE *out = open_memstream(&table, &size);
    tern_config_reference(out);
    fclose(out);
    cr_assert(strstr(table, "| `storage/durability` | `--durability MODE` | `fsync` |"), "%s",
              table);

    FILE *file = fopen(TERN_SOURCE_DIR "/docs/operations.md", "r");
    cr_assert_not_null(file, "cannot open docs/operations.md");
    char *doc = calloc(1, 1 << 20);
    size_t len = fread(doc, 1, (1 << 20) - 1, file);
    fclose(file);
    cr_assert_gt(len, 0);
    cr_assert(strstr(doc, table),
              "docs/operations.md does not contain the current reference table "
              "(regenerate it with ternd --config-reference):\n%s",
              table);

    //  ternd --config-reference prints the same table.
    char *argv[] = {"ternd", "--config-reference"};
    tern_config_t config;
    tern_config_defaults(&config);
    char *printed = NULL;
    bool exit_now = false;
    cr_assert_eq(s_parse(&config, ARGC(argv), argv, &printed, &exit_now), TERN_OK);
    cr_assert(exit_now);
    cr_assert_str_eq(printed, table);
    free(printed);
    free(doc);
    free(table);
}

Test(config, check_catches_code_built_configs) {
    tern_config_t config;
    tern_config_defaults(&config);
    config.node_id = 1024;
    cr_assert_eq(tern_config_check(&config, s_errbuf, sizeof s_errbuf), TERN_ECONFIG);
    cr_assert(strstr(s_errbuf, "node/id = \"1024\""), "%s", s_errbuf);
    tern_config_defaults(&config);
    config.peer_count = 2;
    strcpy(config.peers[0].name, "dc2");
    strcpy(config.peers[0].endpoint, "tcp://a:1");
    strcpy(config.peers[1].name, "dc2");
    strcpy(config.peers[1].endpoint, "tcp://b:1");
    cr_assert_eq(tern_config_check(&config, s_errbuf, sizeof s_errbuf), TERN_ECONFIG);
    cr_assert(strstr(s_errbuf, "repl/peers/dc2: expected unique names"), "%s", s_errbuf);
    tern_config_defaults(&config);
    config.durability = (tern_durability_t)7;
    cr_assert_eq(tern_config_check(&config, s_errbuf, sizeof s_errbuf), TERN_ECONFIG);
}

Test(config, store_mapping) {
    tern_config_t config;
    tern_config_defaults(&config);
    char *argv[] = {"ternd",
                    "--data=/tmp/somewhere",
                    "--map-initial=2M",
                    "--map-max=4G",
                    "--durability=none",
                    "--dedup-window=3m",
                    "--dedup-max=7",
                    "--outbox-retention=2h",
                    "--max-topics=9",
                    "--max-readers=33",
                    "--writemap"};
    cr_assert_eq(s_parse(&config, ARGC(argv), argv, NULL, NULL), TERN_OK, "%s", s_errbuf);
    tern_store_config_t store;
    memset(&store, 0xCD, sizeof store);
    tern_config_store(&config, &store);
    cr_assert(store.writemap);
    cr_assert_str_eq(store.dir, "/tmp/somewhere");
    cr_assert_eq(store.dir, config.data_dir, "borrowed from the config");
    cr_assert_eq(store.map_initial, 2ULL << 20);
    cr_assert_eq(store.map_max, 4ULL << 30);
    cr_assert_eq(store.durability, TERN_DURABILITY_NONE);
    cr_assert_eq(store.dedup_window_ms, 180000);
    cr_assert_eq(store.dedup_max, 7);
    cr_assert_eq(store.outbox_retention_ms, 7200000);
    cr_assert_eq(store.max_topics, 9);
    cr_assert_eq(store.max_readers, 33);
}

//  The cluster rules: each refused line names the key and says what to do,
//  and the same flags with the mistake repaired are accepted.
Test(config, cluster_rules) {
    static const struct {
        const char *args[8];  //  after "ternd"; NULL-terminated
        const char *expected; //  the error line starts with this; NULL = accepted
    } cases[] = {
        {{"--etcd=http://127.0.0.1:2379", "--cluster-listen=tcp://127.0.0.1:7601", NULL}, NULL},
        {{"--etcd=http://127.0.0.1:2379", NULL},
         "config: cluster/etcd is set: expected cluster/listen (--cluster-listen ENDPOINT)"},
        {{"--etcd=http://127.0.0.1:2379", "--cluster-listen=tcp://127.0.0.1:7600", NULL},
         "config: cluster/listen = \"tcp://127.0.0.1:7600\": expected an endpoint other than "
         "server/listen"},
        {{"--etcd=http://127.0.0.1:2379", "--cluster-listen=tcp://*:7601", NULL},
         "config: cluster/listen = \"tcp://*:7601\": expected an address the other nodes can "
         "connect to"},
        {{"--min-insync=3", "--replicas=2", NULL},
         "config: cluster/min_insync = 3: expected at most cluster/replicas (2)"},
        {{"--min-insync=3", "--replicas=3", NULL}, NULL},
        {{"--etcd=http://127.0.0.1:2379", "--cluster-listen=tcp://127.0.0.1:7601",
          "--peer=dc2=tcp://10.0.0.2:7700", "--repl-listen=tcp://127.0.0.1:7700", NULL},
         NULL},
        {{"--etcd=http://127.0.0.1:2379", "--cluster-listen=tcp://127.0.0.1:7601",
          "--repl-listen=tcp://*:7700", NULL},
         "config: repl/listen = \"tcp://*:7700\": expected an address the peer DCs can "
         "connect to"},
        {{"--etcd=http://127.0.0.1:2379", "--cluster-listen=tcp://127.0.0.1:7601",
          "--repl-listen=tcp://127.0.0.1:7601", NULL},
         "config: repl/listen = \"tcp://127.0.0.1:7601\": expected an endpoint other than "
         "server/listen and cluster/listen"},
        {{"--peer=dc2=tcp://10.0.0.2:7700", NULL}, NULL},
        {{"--advertise=tcp://*:7600", NULL},
         "config: server/advertise = \"tcp://*:7600\": expected an address clients can connect "
         "to, not a wildcard"},
        {{"--advertise=tcp://0.0.0.0:7600", NULL}, "config: server/advertise = \"tcp://0.0.0.0"},
        {{"--advertise=tcp://10.1.2.3:*", NULL}, "config: server/advertise = \"tcp://10.1.2.3:*"},
        {{"--etcd=http://127.0.0.1:2379", "--cluster-listen=tcp://127.0.0.1:7601",
          "--listen=tcp://*:7600", NULL},
         "config: server/listen = \"tcp://*:7600\" is a wildcard: a clustered node expects "
         "server/advertise"},
        {{"--etcd=http://127.0.0.1:2379", "--cluster-listen=tcp://10.1.2.3:7601",
          "--listen=tcp://0.0.0.0:7600", "--advertise=tcp://10.1.2.3:7600", NULL},
         NULL},
        //  A single node may bind a wildcard without advertising anything.
        {{"--listen=tcp://*:7600", "--insecure", NULL}, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tern_config_t config;
        tern_err_t rc = s_parse_args(&config, cases[i].args);
        if (!cases[i].expected) {
            cr_expect_eq(rc, TERN_OK, "case %zu: %s", i, s_errbuf);
            continue;
        }
        cr_expect_eq(rc, TERN_ECONFIG, "case %zu accepted", i);
        cr_expect(strncmp(s_errbuf, cases[i].expected, strlen(cases[i].expected)) == 0,
                  "case %zu: got \"%s\"", i, s_errbuf);
        cr_expect(strchr(s_errbuf, '\n') == NULL, "one line: %s", s_errbuf);
    }
    //  A struct built by code gets the same rules.
    tern_config_t config;
    tern_config_defaults(&config);
    snprintf(config.etcd, sizeof config.etcd, "http://127.0.0.1:2379");
    cr_assert_eq(tern_config_check(&config, s_errbuf, sizeof s_errbuf), TERN_ECONFIG);
    cr_assert(strstr(s_errbuf, "expected cluster/listen"), "%s", s_errbuf);
}

/*  it_ternctl_errors.c - what ternctl says when something is wrong.

    A new user's first hour: no broker running, a typo in the endpoint, a
    CURVE broker reached without a certificate, a bad topic, a payload or a
    topic count over its limit, a topic that does not exist. Each case runs
    real ternctl processes against real ternd processes (or against a port
    nobody listens on) and checks the exit code (1 failure, 2 usage error)
    and the exact message on stderr, in text mode and with --json (errors
    go to stderr the same way; stdout stays empty). libtern's side of the
    same contract (TERN_ECONNREFUSED, TERN_ENAME for an unknown admin op) is
    checked through the library, and `status` for what it shows.
*/
#include "harness.h"

#include <criterion/criterion.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define S_ARGS_MAX 16

TestSuite(ternctl_errors, .fini = it_teardown, .timeout = 120);

//  Runs `ternctl -s ENDPOINT [--json] ARG...` (NULL-terminated) with no
//  certificate in the environment.
static int s_ctl(it_result_t *r, const char *endpoint, bool json, const char *arg, ...) {
    char *argv[S_ARGS_MAX + 5];
    int n = 0;
    argv[n++] = (char *)it_ternctl_path();
    argv[n++] = "-s";
    argv[n++] = (char *)endpoint;
    if (json) {
        argv[n++] = "--json";
    }
    va_list ap;
    va_start(ap, arg);
    for (const char *a = arg; a && n < S_ARGS_MAX + 4; a = va_arg(ap, const char *)) {
        argv[n++] = (char *)a;
    }
    va_end(ap);
    argv[n] = NULL;
    return it_run(r, 20000, NULL, argv);
}

//  Asserts exit STATUS, stderr starting with WANT (its first line when
//  WHOLE_LINE) and nothing on stdout.
static void s_expect(it_result_t *r, int status, const char *want, bool whole_line,
                     const char *what) {
    cr_assert_eq(r->status, status, "%s: exit %d, want %d\nstderr: %s", what, r->status, status,
                 r->err);
    cr_assert_eq(strncmp(r->err, want, strlen(want)), 0, "%s: stderr\n%s\nwant\n%s", what, r->err,
                 want);
    if (whole_line) {
        cr_assert_eq(r->err[strlen(want)], '\n', "%s: more after the message: %s", what, r->err);
    }
    cr_assert_eq(r->out_len, 0, "%s: stdout: %s", what, r->out);
    it_result_free(r);
}

//  The endpoint of a loopback port nobody listens on (a broker never started).
static void s_free_endpoint(char *endpoint, size_t size) {
    it_broker_t *b = it_broker_new(0, NULL);
    cr_assert_not_null(b);
    snprintf(endpoint, size, "%s", b->endpoint);
    it_broker_destroy(&b);
}

Test(ternctl_errors, no_broker_fails_at_once) {
    char endpoint[64], want[160];
    s_free_endpoint(endpoint, sizeof endpoint);
    snprintf(want, sizeof want,
             "ternctl: cannot connect to %s: connection refused (is ternd running?)",
             endpoint + strlen("tcp://"));
    unsetenv("TERN_CERT");
    for (int json = 0; json <= 1; json++) {
        it_result_t r;
        s_ctl(&r, endpoint, json, "status", NULL);
        s_expect(&r, 1, want, true, "status");
        s_ctl(&r, endpoint, json, "pub", "it.t", "x", NULL);
        s_expect(&r, 1, want, true, "pub");
        s_ctl(&r, endpoint, json, "sub", "it.t", NULL);
        s_expect(&r, 1, want, true, "sub");
        s_ctl(&r, endpoint, json, "topic", "info", "it.t", NULL);
        s_expect(&r, 1, want, true, "topic info");
    }
    //  libtern: the dedicated code, with the endpoint in the reason.
    tern_client_t *client = tern_client_new(endpoint, NULL);
    cr_assert_not_null(client);
    cr_assert_eq(tern_client_wait_connected(client, 10000), TERN_ECONNREFUSED);
    cr_assert(strstr(tern_last_reason(), endpoint + strlen("tcp://")), "%s", tern_last_reason());
    tern_client_destroy(&client);
}

Test(ternctl_errors, malformed_endpoint_is_a_usage_error) {
    static const struct {
        const char *endpoint; //  -s ENDPOINT
        const char *message;  //  stderr's first line
    } cases[] = {
        {"bogus", "ternctl: invalid endpoint 'bogus': expected tcp://HOST:PORT"},
        {"tcp://127.0.0.1", "ternctl: invalid endpoint 'tcp://127.0.0.1': no port, expected "
                            "tcp://HOST:PORT"},
        {"http://127.0.0.1:7600", "ternctl: invalid endpoint 'http://127.0.0.1:7600': unknown "
                                  "transport, expected tcp://HOST:PORT"},
        {"tcp://127.0.0.1:70000", "ternctl: invalid endpoint 'tcp://127.0.0.1:70000': port "
                                  "'70000' is not 1..65535"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        for (int json = 0; json <= 1; json++) {
            it_result_t r;
            s_ctl(&r, cases[i].endpoint, json, "status", NULL);
            s_expect(&r, 2, cases[i].message, true, cases[i].endpoint);
            s_ctl(&r, cases[i].endpoint, json, "pub", "it.t", "x", NULL);
            s_expect(&r, 2, cases[i].message, true, cases[i].endpoint);
        }
    }
    //  libtern: NULL with the reason.
    cr_assert_null(tern_client_new("bogus", NULL));
    cr_assert_str_eq(tern_last_reason(), "invalid endpoint 'bogus': expected tcp://HOST:PORT");
}

Test(ternctl_errors, curve_broker_without_cert) {
    //  The keys live in the broker's temp root, removed with it.
    it_broker_t *b = it_adopt_broker(it_broker_new(0, NULL));
    cr_assert_not_null(b);
    char clients[300];
    snprintf(clients, sizeof clients, "%s/clients", b->root);
    cr_assert_eq(mkdir(clients, 0700), 0);
    it_keys_gen(b->root, "server", NULL, NULL);
    b->extra[b->extra_count++] = strdup("--auth=curve");
    cr_assert_gt(asprintf(&b->extra[b->extra_count++], "--auth-key=%s/server.key", b->root), 0);
    cr_assert_gt(asprintf(&b->extra[b->extra_count++], "--auth-clients=%s", clients), 0);
    cr_assert(it_broker_start(b));
    char want[200];
    snprintf(want, sizeof want,
             "ternctl: ternd at %s requires CURVE: pass --cert FILE and --server-key KEY "
             "(TERN_EDENIED)",
             b->endpoint + strlen("tcp://"));
    unsetenv("TERN_CERT");
    unsetenv("TERN_SERVER_KEY");
    for (int json = 0; json <= 1; json++) {
        it_result_t r;
        s_ctl(&r, b->endpoint, json, "status", NULL);
        s_expect(&r, 1, want, true, "status without --cert");
        s_ctl(&r, b->endpoint, json, "pub", "it.t", "x", NULL);
        s_expect(&r, 1, want, true, "pub without --cert");
    }
    tern_client_t *client = tern_client_new(b->endpoint, NULL);
    cr_assert_not_null(client);
    cr_assert_eq(tern_client_wait_connected(client, 10000), TERN_EDENIED);
    cr_assert(strstr(tern_last_reason(), "requires CURVE"), "%s", tern_last_reason());
    tern_client_destroy(&client);
}

Test(ternctl_errors, errors_name_the_problem_and_the_limit) {
    it_broker_t *b = it_start_broker("--max-topics=3", NULL);
    static const char *const grammar =
        "tokens of [A-Za-z0-9_-] joined by single dots, 1..200 bytes";
    char want[300];
    for (int json = 0; json <= 1; json++) {
        it_result_t r;
        //  A bad topic: the topic and its grammar; a usage error.
        snprintf(want, sizeof want, "ternctl: invalid topic 'a..b': %s", grammar);
        s_ctl(&r, b->endpoint, json, "topic", "info", "a..b", NULL);
        s_expect(&r, 2, want, true, "topic info a..b");
        s_ctl(&r, b->endpoint, json, "pub", "a..b", "x", NULL);
        s_expect(&r, 2, want, true, "pub a..b");
        s_ctl(&r, b->endpoint, json, "sub", "a.>.b", NULL);
        s_expect(&r, 2, "ternctl: invalid pattern 'a.>.b': tokens of [A-Za-z0-9_-], '*'", false,
                 "sub a.>.b");
        s_ctl(&r, b->endpoint, json, "dlq", "list", "it.t", "--group", "bad group", NULL);
        s_expect(&r, 2,
                 "ternctl: invalid group 'bad group': names are [A-Za-z0-9_.:-], 1..64 bytes", true,
                 "dlq list --group 'bad group'");
        //  A payload over max_payload: both numbers.
        s_ctl(&r, b->endpoint, json, "pub", "it.t", "--size", "2MiB", NULL);
        s_expect(&r, 1, "ternctl: payload 2097152 B > max_payload 1 MiB (TERN_ETOOBIG)", true,
                 "pub --size 2MiB");
        //  No such topic, by name, without internal op names.
        s_ctl(&r, b->endpoint, json, "topic", "info", "it.none", NULL);
        s_expect(&r, 1, "ternctl: no such topic 'it.none' (TERN_ENOTFOUND)", true, "topic info");
        s_ctl(&r, b->endpoint, json, "topic", "delete", "it.none", NULL);
        s_expect(&r, 1, "ternctl: no such topic 'it.none' (TERN_ENOTFOUND)", true, "topic delete");
        s_ctl(&r, b->endpoint, json, "groups", "it.none", NULL);
        s_expect(&r, 1, "ternctl: no such topic 'it.none' (TERN_ENOTFOUND)", true, "groups");
    }
    //  Which limit was reached: max_topics 3.
    it_pub(b, "it.t1", "x", 1);
    it_pub(b, "it.t2", "x", 1);
    it_pub(b, "it.t3", "x", 1);
    it_result_t r;
    s_ctl(&r, b->endpoint, false, "topic", "create", "it.t4", NULL);
    s_expect(&r, 1, "ternctl: max_topics 3 reached: topic 'it.t4' not created (TERN_ELIMIT)", true,
             "topic create over max_topics");
    s_ctl(&r, b->endpoint, false, "pub", "it.t4", "x", NULL);
    cr_assert_eq(r.status, 1, "pub over max_topics: exit %d", r.status);
    cr_assert(strstr(r.err, "max_topics 3 reached: topic 'it.t4' not created (TERN_ELIMIT)"), "%s",
              r.err);
    it_result_free(&r);
}

Test(ternctl_errors, broker_reasons_on_the_wire) {
    //  The broker's own ERROR reasons, seen by a raw client: a payload over
    //  max_payload (libtern would stop it before sending).
    it_broker_t *b = it_start_broker("--max-payload=1K", NULL);
    it_raw_t *raw = it_raw_new(b->endpoint);
    cr_assert_not_null(raw);
    cr_assert(it_raw_hello(raw, "it-reasons"));
    static uint8_t big[1500];
    tern_frame_t f;
    tern_frame_init(&f, TERN_CMD_PUBLISH);
    f.req_id = 7;
    snprintf(f.topic, sizeof f.topic, "it.big");
    f.fields |= TERN_F_TOPIC | TERN_F_PAYLOAD;
    f.payload = big;
    f.payload_size = sizeof big;
    cr_assert_eq(it_raw_send_frame(raw, &f), TERN_OK);
    tern_frame_t reply;
    cr_assert_eq(it_raw_recv_reply(raw, &reply, 5000), TERN_OK);
    cr_assert_eq(reply.cmd, TERN_CMD_ERROR);
    cr_assert_eq(reply.code, TERN_ETOOBIG);
    cr_assert_str_eq(reply.reason, "payload 1500 B > max_payload 1 KiB");
    it_raw_destroy(&raw);
}

Test(ternctl_errors, unknown_admin_op_is_a_bad_name) {
    //  tern.h documents TERN_ENAME for a bad op; the broker used to say
    //  TERN_ETOPIC because it checked the topic argument first.
    it_broker_t *b = it_start_broker(NULL);
    tern_client_t *client = tern_client_new(b->endpoint, NULL);
    cr_assert_not_null(client);
    char *json = NULL;
    cr_assert_eq(tern_admin(client, "no.such.op", NULL, 0, &json, 10000), TERN_ENAME);
    cr_assert_str_eq(tern_last_reason(), "unknown admin operation 'no.such.op'");
    cr_assert_null(json);
    tern_header_t args[] = {{"topic", "it.t"}};
    cr_assert_eq(tern_admin(client, "topic.frobnicate", args, 1, &json, 10000), TERN_ENAME);
    cr_assert_eq(tern_admin(client, "bad op!", NULL, 0, &json, 10000), TERN_ENAME);
    tern_client_destroy(&client);
}

//  Asserts that TEXT has the line "KEY<spaces>VALUE".
static void s_has_line(const char *text, const char *key, const char *value) {
    for (const char *line = text; line && *line;
         line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        size_t klen = strlen(key);
        if (strncmp(line, key, klen) == 0 && line[klen] == ' ') {
            const char *v = line + klen;
            while (*v == ' ') {
                v++;
            }
            size_t vlen = strlen(value);
            cr_assert(strncmp(v, value, vlen) == 0 && (v[vlen] == '\n' || !v[vlen]),
                      "%s: want '%s' in\n%s", key, value, text);
            return;
        }
    }
    cr_assert_fail("no '%s' line in\n%s", key, text);
}

Test(ternctl_errors, status_shows_where_and_how) {
    it_broker_t *b = it_start_broker("--durability=batch", NULL);
    char version[32], data_dir[PATH_MAX];
    snprintf(version, sizeof version, "%d.%d.%d", TERN_VERSION_MAJOR, TERN_VERSION_MINOR,
             TERN_VERSION_PATCH);
    cr_assert_not_null(realpath(b->data_dir, data_dir));
    it_result_t r;
    s_ctl(&r, b->endpoint, false, "status", NULL);
    it_assert_ok(&r, "status");
    s_has_line(r.out, "endpoint", b->endpoint);
    s_has_line(r.out, "data_dir", data_dir);
    s_has_line(r.out, "durability", "batch");
    s_has_line(r.out, "version", version);
    s_has_line(r.out, "role", "standalone");
    s_has_line(r.out, "peers", "0");
    it_result_free(&r);
    s_ctl(&r, b->endpoint, true, "status", NULL);
    it_assert_ok(&r, "status --json");
    char text[PATH_MAX];
    cr_assert(it_json_str(r.out, "endpoint", text, sizeof text) && !strcmp(text, b->endpoint));
    cr_assert(it_json_str(r.out, "data_dir", text, sizeof text) && !strcmp(text, data_dir));
    cr_assert(it_json_str(r.out, "durability", text, sizeof text) && !strcmp(text, "batch"));
    cr_assert(it_json_str(r.out, "version", text, sizeof text) && !strcmp(text, version));
    cr_assert(it_json_str(r.out, "role", text, sizeof text) && !strcmp(text, "standalone"));
    it_result_free(&r);
}

Test(ternctl_errors, status_of_a_replicated_node) {
    it_broker_t *nodes[2];
    it_mesh_start(2, NULL, NULL, nodes);
    it_result_t r;
    s_ctl(&r, nodes[0]->endpoint, false, "status", NULL);
    it_assert_ok(&r, "status");
    s_has_line(r.out, "role", "dc");
    s_has_line(r.out, "dc", nodes[0]->dc);
    s_has_line(r.out, "peers", "1");
    it_result_free(&r);
    s_ctl(&r, nodes[1]->endpoint, true, "status", NULL);
    it_assert_ok(&r, "status --json");
    int64_t peers = 0;
    char role[16];
    cr_assert(it_json_str(r.out, "role", role, sizeof role) && !strcmp(role, "dc"), "%s", r.out);
    cr_assert(it_json_int(r.out, "peers", &peers) && peers == 1, "%s", r.out);
    it_result_free(&r);
}

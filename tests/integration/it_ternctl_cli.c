/*  it_ternctl_cli.c - what ternctl prints for people and for scripts: `keys
    show`, `peers` (its table and pause/resume), `bench` cleaning up after
    itself, and empty lists saying so; exit codes and output in text mode and
    with --json, against real ternd processes.

    The house rule checked here: without --json every command prints
    `key  value` lines or a table (uppercase headings, no trailing spaces,
    human times); with --json one JSON object per line and nothing else.
*/
#include "harness.h"

#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  Asserts that OUT holds the line KEY, spaces, VALUE.
static void s_expect_kv(const char *out, const char *key, const char *value) {
    char *copy = strdup(out);
    char **lines;
    size_t n = it_split_lines(copy, &lines);
    bool found = false;
    for (size_t i = 0; i < n && !found; i++) {
        size_t k = strlen(key);
        const char *v = lines[i] + k;
        found =
            strncmp(lines[i], key, k) == 0 && *v == ' ' && strcmp(v + strspn(v, " "), value) == 0;
    }
    free(lines);
    free(copy);
    cr_expect(found, "no line '%s  %s' in:\n%s", key, value, out);
}

//  Asserts that no line of OUT ends in a space and none is JSON.
static void s_expect_text(const char *out, const char *what) {
    for (const char *line = out; *line;
         line += strcspn(line, "\n") + (line[strcspn(line, "\n")] != 0)) {
        size_t len = strcspn(line, "\n");
        cr_expect(len == 0 || line[len - 1] != ' ', "%s: trailing space in:\n%s", what, out);
        cr_expect(line[0] != '{' && line[0] != '[', "%s: JSON without --json:\n%s", what, out);
    }
}

//  ---------------------------------------------------------------------------
//  keys show

Test(cli, keys_show_name_role_secret, .fini = it_teardown, .timeout = 60) {
    char dir[] = "/tmp/it-keys-XXXXXX";
    cr_assert(mkdtemp(dir));
    it_result_t r;
    it_ctl_text(&r, NULL, 30000, NULL, "keys", "gen", "alice", "--dir", dir, "--role", "app", NULL);
    it_assert_ok(&r, "keys gen alice");
    char alice_key[64];
    snprintf(alice_key, sizeof alice_key, "%.40s", r.out);
    it_result_free(&r);
    it_ctl_text(&r, NULL, 30000, NULL, "keys", "gen", "bob", "--dir", dir, NULL);
    it_assert_ok(&r, "keys gen bob");
    it_result_free(&r);

    char pub[128], sec[128], bob[128];
    snprintf(pub, sizeof pub, "%s/alice.key", dir);
    snprintf(sec, sizeof sec, "%s/alice.key_secret", dir);
    snprintf(bob, sizeof bob, "%s/bob.key", dir);
    //  The public file: its name and role, and no secret, although the
    //  secret file sits beside it.
    it_ctl_text(&r, NULL, 30000, NULL, "keys", "show", pub, NULL);
    it_assert_ok(&r, "keys show alice.key");
    s_expect_text(r.out, "keys show");
    s_expect_kv(r.out, "name", "alice");
    s_expect_kv(r.out, "role", "app");
    s_expect_kv(r.out, "public_key", alice_key);
    s_expect_kv(r.out, "secret", "no");
    it_result_free(&r);
    it_ctl_text(&r, NULL, 30000, NULL, "keys", "show", sec, NULL);
    it_assert_ok(&r, "keys show alice.key_secret");
    s_expect_kv(r.out, "name", "alice");
    s_expect_kv(r.out, "secret", "yes");
    it_result_free(&r);
    //  No role in the certificate: the broker's default.
    it_ctl_text(&r, NULL, 30000, NULL, "keys", "show", bob, NULL);
    it_assert_ok(&r, "keys show bob.key");
    s_expect_kv(r.out, "name", "bob");
    s_expect_kv(r.out, "role", "default");
    it_result_free(&r);

    //  --json before or after the command: one object.
    const char *const orders[2][5] = {{"--json", "keys", "show", pub, NULL},
                                      {"keys", "show", pub, "--json", NULL}};
    for (int i = 0; i < 2; i++) {
        it_ctl_text(&r, NULL, 30000, NULL, orders[i][0], orders[i][1], orders[i][2], orders[i][3],
                    NULL);
        it_assert_ok(&r, "keys show --json");
        char **lines;
        size_t n = it_split_lines(r.out, &lines);
        cr_assert_eq(n, 1, "keys show --json printed %zu lines:\n%s", n, r.out);
        char text[64];
        bool secret = true;
        cr_expect(it_json_str(lines[0], "name", text, sizeof text) && strcmp(text, "alice") == 0,
                  "%s", lines[0]);
        cr_expect(it_json_str(lines[0], "role", text, sizeof text) && strcmp(text, "app") == 0,
                  "%s", lines[0]);
        cr_expect(it_json_str(lines[0], "public_key", text, sizeof text) &&
                      strcmp(text, alice_key) == 0,
                  "%s", lines[0]);
        cr_expect(it_json_bool(lines[0], "secret", &secret) && !secret, "%s", lines[0]);
        free(lines);
        it_result_free(&r);
    }

    //  Exit codes: 1 for a file that is not a certificate, 2 for usage.
    it_ctl_text(&r, NULL, 30000, NULL, "keys", "show", "/nonexistent/x.key", NULL);
    cr_expect_eq(r.status, 1, "missing file: exit %d\n%s", r.status, r.err);
    it_result_free(&r);
    it_ctl_text(&r, NULL, 30000, NULL, "keys", "show", NULL);
    cr_expect_eq(r.status, 2, "no FILE: exit %d\n%s", r.status, r.err);
    it_result_free(&r);
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_expect_eq(system(cmd), 0);
}

//  ---------------------------------------------------------------------------
//  peers

//  The link-state names of cluster/tern_peer.c, which metrics use too.
static bool s_state_known(const char *state) {
    static const char *const names[] = {"idle", "connecting", "live", "paused"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (strcmp(state, names[i]) == 0) {
            return true;
        }
    }
    return false;
}

Test(cli, peers_text_and_json, .fini = it_teardown, .timeout = 120) {
    it_broker_t *dcs[2];
    it_mesh_start(2, NULL, NULL, dcs);
    it_broker_t *a = dcs[0];
    it_result_t r;
    //  pause / resume: `key  value` lines, or one object with --json.
    it_ctl_text(&r, a, 30000, NULL, "peers", "pause", "dc2", NULL);
    it_assert_ok(&r, "peers pause dc2");
    s_expect_text(r.out, "peers pause");
    s_expect_kv(r.out, "dc", "dc2");
    s_expect_kv(r.out, "state", "paused");
    it_result_free(&r);

    //  The table: uppercase headings, human times, the paused link.
    it_ctl_text(&r, a, 30000, NULL, "peers", NULL);
    it_assert_ok(&r, "peers");
    s_expect_text(r.out, "peers");
    char **lines;
    size_t n = it_split_lines(r.out, &lines);
    cr_assert_eq(n, 2, "peers: a heading and one row, got:\n%s", r.out);
    char dc[32], node[32], state[32], lag_msgs[32], lag[32], seen[32], seen2[32];
    cr_assert_eq(
        sscanf(lines[0], "%31s %31s %31s %31s %31s %31s", dc, node, state, lag_msgs, lag, seen), 6,
        "%s", lines[0]);
    cr_expect_str_eq(dc, "DC");
    cr_expect_str_eq(state, "STATE");
    cr_expect_str_eq(seen, "LAST_SEEN");
    cr_expect(strstr(lines[0], "ENDPOINT"), "%s", lines[0]);
    int got = sscanf(lines[1], "%31s %31s %31s %31s %31s %31s %31s", dc, node, state, lag_msgs, lag,
                     seen, seen2);
    cr_assert_geq(got, 6, "%s", lines[1]);
    cr_expect_str_eq(dc, "dc2");
    cr_expect_str_eq(state, "paused");
    cr_expect(s_state_known(state), "unknown state %s", state);
    //  "3s ago" or "never", never a unix ms.
    cr_expect(strcmp(seen, "never") == 0 || strcmp(seen2, "ago") == 0, "last seen: %s", lines[1]);
    free(lines);
    it_result_free(&r);

    it_ctl(&r, a, 10000, "peers", "resume", "dc2", NULL);
    it_assert_ok(&r, "peers resume --json");
    n = it_split_lines(r.out, &lines);
    cr_assert_eq(n, 1, "%s", r.out);
    cr_expect(it_json_str(lines[0], "state", state, sizeof state) && s_state_known(state), "%s",
              lines[0]);
    free(lines);
    it_result_free(&r);

    //  --json peers: raw numbers for scripts.
    it_ctl(&r, a, 10000, "peers", NULL);
    it_assert_ok(&r, "peers --json");
    int64_t ms = -1;
    cr_expect(it_json_int(r.out, "last_seen_ms", &ms), "%s", r.out);
    cr_expect(it_json_str(r.out, "state", state, sizeof state) && s_state_known(state), "%s",
              r.out);
    it_result_free(&r);
}

//  Two links: one row each (the rows were once written without a comma
//  between them, so the table parsed nothing past the first).
Test(cli, peers_table_of_two_links, .fini = it_teardown, .timeout = 120) {
    it_broker_t *dcs[3];
    it_mesh_start(3, NULL, NULL, dcs);
    it_result_t r;
    it_ctl_text(&r, dcs[0], 30000, NULL, "peers", NULL);
    it_assert_ok(&r, "peers");
    char **lines;
    size_t n = it_split_lines(r.out, &lines);
    cr_assert_eq(n, 3, "peers: a heading and two rows, got:\n%s", r.out);
    cr_expect(strncmp(lines[1], "dc2 ", 4) == 0 || strncmp(lines[1], "dc3 ", 4) == 0, "%s",
              lines[1]);
    cr_expect(strncmp(lines[2], "dc2 ", 4) == 0 || strncmp(lines[2], "dc3 ", 4) == 0, "%s",
              lines[2]);
    cr_expect(strncmp(lines[1], lines[2], 4) != 0, "the same link twice:\n%s", r.out);
    free(lines);
    it_result_free(&r);
}

//  ---------------------------------------------------------------------------
//  Empty results

//  Runs `ternctl --json ARG...` on B and asserts that it printed nothing.
static void s_expect_json_empty(it_broker_t *b, const char *arg, ...) {
    it_result_t r;
    va_list ap;
    va_start(ap, arg);
    it_ctl_va(&r, b, 30000, NULL, true, arg, ap);
    va_end(ap);
    it_assert_ok(&r, arg);
    cr_expect_str_eq(r.out, "", "%s --json: %s", arg, r.out);
    it_result_free(&r);
}

Test(cli, empty_results_say_so, .fini = it_teardown, .timeout = 60) {
    it_broker_t *b = it_start_broker(NULL);
    it_result_t r;
    it_ctl_text(&r, b, 30000, NULL, "topics", NULL);
    it_assert_ok(&r, "topics");
    cr_expect_str_eq(r.out, "no topics\n");
    it_result_free(&r);
    s_expect_json_empty(b, "topics", NULL);
    it_ctl_text(&r, b, 30000, NULL, "peers", NULL);
    it_assert_ok(&r, "peers");
    cr_expect_str_eq(r.out, "no peers configured\n");
    it_result_free(&r);
    s_expect_json_empty(b, "peers", NULL);

    it_pub(b, "chat.room1", "hi {n}", 1);
    it_ctl_text(&r, b, 30000, NULL, "groups", "chat.room1", NULL);
    it_assert_ok(&r, "groups");
    cr_expect_str_eq(r.out, "no consumer groups on chat.room1\n");
    it_result_free(&r);
    s_expect_json_empty(b, "groups", "chat.room1", NULL);
    //  A group that acked its message has an empty DLQ.
    it_ctl(&r, b, 15000, "sub", "chat.room1", "--group", "g", "--count", "1", NULL);
    it_assert_ok(&r, "sub");
    it_result_free(&r);
    it_ctl_text(&r, b, 30000, NULL, "dlq", "list", "chat.room1", "--group", "g", NULL);
    it_assert_ok(&r, "dlq list");
    cr_expect_str_eq(r.out, "no messages in the DLQ of group g on chat.room1\n");
    it_result_free(&r);
    s_expect_json_empty(b, "dlq", "list", "chat.room1", "--group", "g", NULL);
}

//  ---------------------------------------------------------------------------
//  bench

//  True if `topics --json` on B lists TOPIC.
static bool s_has_topic(it_broker_t *b, const char *topic) {
    it_result_t r;
    it_ctl(&r, b, 10000, "topics", NULL);
    it_assert_ok(&r, "topics");
    char needle[160];
    snprintf(needle, sizeof needle, "\"topic\":\"%s\"", topic);
    bool found = strstr(r.out, needle) != NULL;
    it_result_free(&r);
    return found;
}

Test(cli, bench_removes_its_topics, .fini = it_teardown, .timeout = 120) {
    it_broker_t *b = it_start_broker(NULL);
    it_result_t r;
    it_ctl_text(&r, NULL, 30000, NULL, "bench", "--help", NULL);
    it_assert_ok(&r, "bench --help");
    cr_expect(strstr(r.out, "--keep"), "bench --help does not mention --keep");
    it_result_free(&r);

    //  A topic of the user's under the prefix stays; the ones bench made go.
    it_pub(b, "it.bench.0", "mine {n}", 2);
    it_ctl_text(&r, b, 30000, NULL, "bench", "pubsub", "--msgs", "40", "--topics", "2", "--prefix",
                "it.bench", "--quiet", NULL);
    it_assert_ok(&r, "bench pubsub");
    s_expect_text(r.out + strcspn(r.out, "\n"), "bench"); //  after the RESULT line
    s_expect_kv(r.out, "msgs", "40");
    it_result_free(&r);
    cr_expect(s_has_topic(b, "it.bench.0"), "bench deleted a topic it did not create");
    cr_expect(!s_has_topic(b, "it.bench.1"), "bench left it.bench.1 behind");

    //  --keep keeps them; --json prints one object and nothing else.
    it_ctl(&r, b, 60000, "bench", "pub", "--msgs", "20", "--prefix", "it.kept", "--keep", NULL);
    it_assert_ok(&r, "bench pub --keep");
    char **lines;
    size_t n = it_split_lines(r.out, &lines);
    cr_expect_eq(n, 1, "bench --json printed %zu lines:\n%s", n, r.out);
    int64_t msgs = 0;
    cr_expect(n >= 1 && it_json_int(lines[0], "msgs", &msgs) && msgs == 20, "%s", r.out);
    free(lines);
    it_result_free(&r);
    cr_expect(s_has_topic(b, "it.kept.0"), "--keep did not keep it.kept.0");
}

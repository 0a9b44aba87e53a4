/*  ternctl_peers.c - `ternctl peers`, `peers pause NAME`, `peers resume NAME`:
    the replication links of one node (see docs/replication.md).

    These admin operations go to the node's client endpoint like every other
    ternctl command (-s, default $TERN_SERVER, then tcp://127.0.0.1:7600);
    conn hands them to the repl actor. The replication endpoint
    (repl/listen) answers them too. The reply of `peers` is a JSON
    array with one object per peer (keys dc, node_id, endpoint, state,
    lag_msgs, lag_ms, last_seen_ms and counters); with --json each object is
    printed on its own line, otherwise as a table.
*/
#include "tern.h"
#include "ternctl_json.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_EXIT_USAGE 2

void ternctl_curve_options(tern_client_options_t *options); //  tools/ternctl_keys.c

const char *ternctl_peers_help =
    "NAME\n"
    "    ternctl peers - show and isolate the replication links of a node\n"
    "\n"
    "SYNOPSIS\n"
    "    ternctl [-s ENDPOINT] peers [--json]\n"
    "    ternctl [-s ENDPOINT] peers pause NAME\n"
    "    ternctl [-s ENDPOINT] peers resume NAME\n"
    "\n"
    "DESCRIPTION\n"
    "    Talks to the node's client endpoint (default $TERN_SERVER, then\n"
    "    tcp://127.0.0.1:7600; its replication endpoint answers too). Needs\n"
    "    the admin role with auth/mode = curve. Without replication `peers`\n"
    "    is empty and pause/resume fail with TERN_ENOTFOUND.\n"
    "    `peers` lists one line per peer DC: dc, node_id,\n"
    "    endpoint, state (idle, connecting, live, paused), lag_msgs (local\n"
    "    records the peer has not confirmed), lag_ms (age of the oldest of\n"
    "    them), last_seen_ms (unix ms of the last frame from it) and counters.\n"
    "    `pause NAME` closes the link to peer NAME in both directions and keeps\n"
    "    it closed; `resume NAME` reconnects at once. Records accumulate in the\n"
    "    outbox meanwhile (kept for repl/outbox_retention).\n";

static void s_line(jbuf_t *b) {
    fwrite(b->data, 1, b->len, stdout);
    fputc('\n', stdout);
}

static void s_cell(const json_t *obj, const char *key, int width) {
    const json_t *v = json_get(obj, key);
    jbuf_t b;
    jbuf_init(&b);
    if (v) {
        jbuf_value(&b, v);
    }
    char *text = b.data ? b.data : "";
    if (text[0] == '"') {
        size_t n = strlen(text);
        text[n - 1] = 0;
        text++;
    }
    printf("%-*s ", width, text);
    jbuf_free(&b);
}

int ternctl_peers_main(int argc, char **argv) {
    const char *server = getenv("TERN_SERVER");
    bool json = false;
    const char *words[3] = {NULL, NULL, NULL};
    int nwords = 0;
    uint64_t timeout = 5000;
    for (int i = 1; i < argc; i++) {
        const char *w = argv[i];
        if ((strcmp(w, "-s") == 0 || strcmp(w, "--server") == 0) && i + 1 < argc) {
            server = argv[++i];
        } else if (strncmp(w, "--server=", 9) == 0) {
            server = w + 9;
        } else if (strcmp(w, "--json") == 0) {
            json = true;
        } else if (strcmp(w, "--timeout") == 0 && i + 1 < argc) {
            if (tern_parse_duration(argv[++i], &timeout) != TERN_OK) {
                fprintf(stderr, "ternctl: peers: invalid --timeout '%s'\n", argv[i]);
                return S_EXIT_USAGE;
            }
        } else if (strcmp(w, "-h") == 0 || strcmp(w, "--help") == 0) {
            fputs(ternctl_peers_help, stdout);
            return 0;
        } else if (w[0] == '-') {
            fprintf(stderr, "ternctl: peers: unknown option '%s'\nTry 'ternctl peers --help'.\n",
                    w);
            return S_EXIT_USAGE;
        } else if (nwords < 3) {
            words[nwords++] = w;
        } else {
            fprintf(stderr, "ternctl: peers: too many arguments\n");
            return S_EXIT_USAGE;
        }
    }
    //  words[0] is "peers".
    const char *op = "peers";
    tern_header_t kv[1];
    size_t count = 0;
    if (nwords >= 2) {
        if (strcmp(words[1], "pause") == 0) {
            op = "peers.pause";
        } else if (strcmp(words[1], "resume") == 0) {
            op = "peers.resume";
        } else {
            fprintf(stderr, "ternctl: peers: unknown subcommand '%s'\n", words[1]);
            return S_EXIT_USAGE;
        }
        if (nwords != 3) {
            fprintf(stderr, "ternctl: peers %s: expected a peer NAME\n", words[1]);
            return S_EXIT_USAGE;
        }
        kv[0].key = "name";
        kv[0].value = words[2];
        count = 1;
    }
    if (!server || !*server) {
        server = TERN_DEFAULT_ENDPOINT;
    }
    tern_client_options_t options;
    tern_client_options_init(&options);
    options.name = "ternctl";
    options.timeout_ms = (uint32_t)timeout;
    options.heartbeat_ms = 2000;
    options.connect_timeout_ms = 2000;
    options.backoff_max_ms = 1000;
    ternctl_curve_options(&options);
    tern_client_t *client = tern_client_new(server, &options);
    if (!client) {
        fprintf(stderr, "ternctl: peers: invalid endpoint '%s'\n", server);
        return S_EXIT_USAGE;
    }
    char *reply = NULL;
    tern_err_t rc = tern_admin(client, op, kv, count, &reply, (int)timeout);
    bool connected = tern_client_connected(client);
    tern_client_destroy(&client);
    if (rc != TERN_OK) {
        const char *reason = tern_last_reason();
        fprintf(stderr, "ternctl: %s: %s%s%s\n", op,
                rc == TERN_ETIMEOUT && !connected ? "cannot reach the broker" : tern_strerror(rc),
                reason && *reason ? ": " : "", reason ? reason : "");
        return 1;
    }
    json_t *doc = json_parse(reply, strlen(reply));
    free(reply);
    if (!doc) {
        fprintf(stderr, "ternctl: %s: the reply is not JSON\n", op);
        return 1;
    }
    jbuf_t b;
    jbuf_init(&b);
    if (doc->kind == JSON_ARRAY && !json) {
        static const char *cols[] = {"dc",     "node_id",      "state",    "lag_msgs",
                                     "lag_ms", "last_seen_ms", "endpoint", NULL};
        for (int c = 0; cols[c]; c++) {
            printf("%-*s ", c == 6 ? 0 : 14, cols[c]);
        }
        printf("\n");
        for (size_t i = 0; i < doc->count; i++) {
            for (int c = 0; cols[c]; c++) {
                s_cell(doc->items[i], cols[c], c == 6 ? 0 : 14);
            }
            printf("\n");
        }
    } else if (doc->kind == JSON_ARRAY) {
        for (size_t i = 0; i < doc->count; i++) {
            jbuf_reset(&b);
            jbuf_value(&b, doc->items[i]);
            s_line(&b);
        }
    } else {
        jbuf_value(&b, doc);
        s_line(&b);
    }
    fflush(stdout);
    jbuf_free(&b);
    json_destroy(&doc);
    return 0;
}

/*  ternctl_peers.c - `ternctl peers`, `peers pause NAME`, `peers resume NAME`:
    the replication links of one node (see docs/replication.md).

    These admin operations go to the node's client endpoint like every other
    ternctl command (-s, default $TERN_SERVER, then tcp://127.0.0.1:7600);
    conn hands them to the repl actor. The replication endpoint
    (repl/listen) answers them too. The reply of `peers` is a JSON
    array with one object per peer (keys dc, node_id, endpoint, state,
    lag_msgs, lag_ms, last_seen_ms and counters); with --json each object is
    printed on its own line, otherwise as ternctl's table with human times
    and the endpoint in use.
    The states are tern_peer.c's names, which /metrics uses too.
*/
#include "tern.h"
#include "tern_units.h"
#include "ternctl.h"
#include "tern_json_read.h"
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *ternctl_peers_help =
    "NAME\n"
    "    ternctl peers - show and isolate the replication links of a node\n"
    "\n"
    "SYNOPSIS\n"
    "    ternctl [-s ENDPOINT] peers [--json]\n"
    "    ternctl [-s ENDPOINT] peers pause NAME [--json]\n"
    "    ternctl [-s ENDPOINT] peers resume NAME [--json]\n"
    "\n"
    "DESCRIPTION\n"
    "    Talks to the node's client endpoint (default $TERN_SERVER, then\n"
    "    tcp://127.0.0.1:7600; its replication endpoint answers too). Needs\n"
    "    the admin role with auth/mode = curve. Without replication `peers`\n"
    "    prints \"no peers configured\" and pause/resume fail with\n"
    "    TERN_ENOTFOUND.\n"
    "    `peers` prints a table, one row per peer DC: DC, NODE_ID, STATE (idle,\n"
    "    connecting, live, paused: the names of tern_repl_peer_state in\n"
    "    /metrics), LAG_MSGS (local records the peer has not confirmed), LAG\n"
    "    (age of the oldest of them), LAST_SEEN (\"3s ago\", or never),\n"
    "    ENDPOINT (the one of the peer's endpoints in use or tried next),\n"
    "    FAILOVERS (moves from one endpoint to the next) and LOCAL_NODE_ID:\n"
    "    this node ships to NODE_ID at ENDPOINT. With --json one object per\n"
    "    peer and line, raw numbers: dc, local_node_id, node_id (the node we\n"
    "    ship to), inbound_node_id (the node shipping to us), endpoint (as\n"
    "    configured), endpoints (the list), endpoint_in_use, state, lag_msgs,\n"
    "    lag_ms, last_seen_ms (unix ms), last_seen_age_ms, failures,\n"
    "    failovers, links and counters (docs/replication.md).\n"
    "    To a clustered peer DC the link ships to each node that leads one of\n"
    "    its partitions: the table then has one more row per such node under\n"
    "    the DC's row (DC indented: local node LOCAL_NODE_ID -> NODE_ID at\n"
    "    ENDPOINT, its STATE and the LAG it owes); --json has them in `links`\n"
    "    (local_node_id, node_id, endpoint, state, sent, lag_msgs, lag_ms; the\n"
    "    first one is the link's own connection).\n"
    "    `pause NAME` closes the link to peer NAME in both directions and keeps\n"
    "    it closed; `resume NAME` reconnects at once. Records accumulate in the\n"
    "    outbox meanwhile (kept for repl/outbox_retention). Both print dc,\n"
    "    state and paused as `key  value` lines, or one object with --json.\n"
    "\n"
    "EXIT STATUS\n"
    "    0 success, 1 failure (no such peer, broker unreachable), 2 usage error.\n";

//  MS for people: "850ms", "3s", "1m30s", "2d4h" (protocol/tern_units.c).
static void s_span(uint64_t ms, char *out, size_t cap) {
    tern_units_format_duration(ms, TERN_UNITS_HUMAN, out, cap);
}

//  The members KEYS (NULL-terminated) of OBJ that it has, as they are, to B.
static void s_copy(tern_json_t *b, const tern_json_value_t *obj, const char *const *keys) {
    for (int i = 0; keys[i]; i++) {
        const tern_json_value_t *v = tern_json_get(obj, keys[i]);
        if (v) {
            tern_json_key(b, keys[i]);
            tern_json_write_value(b, v);
        }
    }
}

//  The human form of one peer: times as spans ("3s ago", "never"), the
//  counters left to --json. Written as JSON so that the house table prints it.
static void s_human_peer(tern_json_t *b, const tern_json_value_t *peer) {
    static const char *const copied[] = {"dc",        "node_id",       "state", "lag_msgs",
                                         "failovers", "local_node_id", NULL};
    char lag[32], seen[48];
    s_span(tern_json_get_u64(peer, "lag_ms"), lag, sizeof lag);
    if (tern_json_get_u64(peer, "last_seen_ms") == 0) {
        snprintf(seen, sizeof seen, "never");
    } else {
        s_span(tern_json_get_u64(peer, "last_seen_age_ms"), seen, sizeof seen);
        strcat(seen, " ago");
    }
    tern_json_sep(b);
    tern_json_raw(b, "{");
    s_copy(b, peer, copied);
    tern_json_key_str(b, "lag", lag);
    tern_json_key_str(b, "last_seen", seen);
    //  The endpoint in use (a peer DC may list several), else as configured.
    const tern_json_value_t *endpoint = tern_json_get(peer, "endpoint_in_use");
    if (!endpoint) {
        endpoint = tern_json_get(peer, "endpoint");
    }
    if (endpoint) {
        tern_json_key(b, "endpoint");
        tern_json_write_value(b, endpoint);
    }
    tern_json_raw(b, "}");
}

//  One more row for a clustered peer DC: LINK, one connection of PEER's link
//  to a node that leads some of its partitions (local node -> that node,
//  its state and lag), under the DC's own row.
static void s_human_link(tern_json_t *b, const tern_json_value_t *peer,
                         const tern_json_value_t *link) {
    char lag[32];
    s_span(tern_json_get_u64(link, "lag_ms"), lag, sizeof lag);
    tern_json_sep(b);
    tern_json_raw(b, "{");
    const tern_json_value_t *dc = tern_json_get(peer, "dc");
    char name[96];
    snprintf(name, sizeof name, "  %s", dc && dc->kind == TERN_JSON_STRING ? dc->text : "?");
    tern_json_key_str(b, "dc", name);
    static const char *const copied[] = {"node_id",  "state",         "lag_msgs",
                                         "endpoint", "local_node_id", NULL};
    s_copy(b, link, copied);
    tern_json_key_str(b, "lag", lag);
    tern_json_key_str(b, "last_seen", "");
    tern_json_key_str(b, "failovers", "");
    tern_json_raw(b, "}");
}

//  Prints the reply DOC of `peers` (an array) or of pause/resume (an object).
static void s_print(const tern_json_value_t *doc, bool json) {
    static const char *const cols[] = {"dc",        "node_id",  "state",     "lag_msgs",      "lag",
                                       "last_seen", "endpoint", "failovers", "local_node_id", NULL};
    tern_json_t b;
    tern_json_init(&b);
    if (json) {
        ternctl_print_json(doc);
    } else if (doc->kind == TERN_JSON_OBJECT) {
        ternctl_print_object(doc);
    } else if (doc->kind == TERN_JSON_ARRAY && doc->count == 0) {
        printf("no peers configured\n");
    } else if (doc->kind == TERN_JSON_ARRAY) {
        tern_json_raw(&b, "[");
        for (size_t i = 0; i < doc->count; i++) {
            s_human_peer(&b, doc->items[i]);
            const tern_json_value_t *links = tern_json_get(doc->items[i], "links");
            //  A clustered peer DC: a row per partition leader we ship to.
            for (size_t k = 1; links && links->kind == TERN_JSON_ARRAY && k < links->count; k++) {
                s_human_link(&b, doc->items[i], links->items[k]);
            }
        }
        tern_json_raw(&b, "]");
        tern_json_value_t *rows = tern_json_parse(b.data, b.len);
        if (rows) {
            ternctl_print_table(rows, cols);
        } else {
            fprintf(stderr, "ternctl: peers: cannot lay out the reply as a table\n");
        }
        tern_json_value_destroy(&rows);
    }
    fflush(stdout);
    tern_json_free(&b);
}

int ternctl_peers_main(int argc, char **argv) {
    const char *server = NULL;
    bool json = false;
    const char *words[3] = {NULL, NULL, NULL};
    int nwords = 0;
    const char *timeout = NULL; //  --timeout text, checked here
    for (int i = 1; i < argc; i++) {
        const char *w = argv[i];
        if ((strcmp(w, "-s") == 0 || strcmp(w, "--server") == 0) && i + 1 < argc) {
            server = argv[++i];
        } else if (strncmp(w, "--server=", 9) == 0) {
            server = w + 9;
        } else if (strcmp(w, "--json") == 0) {
            json = true;
        } else if (strcmp(w, "--timeout") == 0 && i + 1 < argc) {
            uint64_t ms;
            timeout = argv[++i];
            if (tern_parse_duration(timeout, &ms) != TERN_OK) {
                fprintf(stderr, "ternctl: peers: invalid --timeout '%s'\n", argv[i]);
                return EXIT_USAGE;
            }
        } else if (strcmp(w, "-h") == 0 || strcmp(w, "--help") == 0) {
            fputs(ternctl_peers_help, stdout);
            return 0;
        } else if (w[0] == '-') {
            fprintf(stderr, "ternctl: peers: unknown option '%s'\nTry 'ternctl peers --help'.\n",
                    w);
            return EXIT_USAGE;
        } else if (nwords < 3) {
            words[nwords++] = w;
        } else {
            fprintf(stderr, "ternctl: peers: too many arguments\n");
            return EXIT_USAGE;
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
            return EXIT_USAGE;
        }
        if (nwords != 3) {
            fprintf(stderr, "ternctl: peers %s: expected a peer NAME\n", words[1]);
            return EXIT_USAGE;
        }
        kv[0].key = "name";
        kv[0].value = words[2];
        count = 1;
    }
    tern_json_value_t *doc = NULL;
    ternctl_args_t call = {.server = server, .timeout = timeout};
    int rc = ternctl_admin_call(&call, op, kv, count, NULL, &doc);
    if (rc != 0) {
        return rc;
    }
    s_print(doc, json);
    tern_json_value_destroy(&doc);
    return 0;
}

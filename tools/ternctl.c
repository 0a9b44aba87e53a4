/*  ternctl.c - the tern command line: status, pub/sub for humans, topics, groups, DLQ.

    ternctl is a thin shell over libtern (tern.h, plus protocol's
    tern_units.h for durations, sizes and times): every admin command is one tern_admin() call whose
   JSON reply is printed either as one JSON object per line (--json) or as aligned text; `pub` and
   `sub` use the publish window and a pull subscription. Its command line is a contract that outside
   tests depend on; docs/client.md is the reference. Exit status: 0 success, 1 failure (reason on
   stderr), 2 usage error.
*/
#include "tern.h"
#include "tern_units.h"
#include "ternctl_json.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define EXIT_USAGE 2

//  ---------------------------------------------------------------------------
//  Help texts (man-style)

static const char *s_help_main =
    "NAME\n"
    "    ternctl - administer a tern broker, publish and consume messages\n"
    "\n"
    "SYNOPSIS\n"
    "    ternctl [-s ENDPOINT] [--json] [--timeout DUR] COMMAND [ARGS...]\n"
    "    ternctl COMMAND --help\n"
    "\n"
    "COMMANDS\n"
    "    status                         node id, dc, version, uptime, topics, connections\n"
    "    pub TOPIC [DATA] [options]     publish messages (stdin lines without DATA)\n"
    "    sub TOPIC [options]            print messages as they arrive (--follow)\n"
    "    topics                         list topics\n"
    "    topic info|create|edit|delete|purge TOPIC [limits] [--force]\n"
    "    get TOPIC SEQ                  print one stored message (not consumed)\n"
    "    view TOPIC [--from W] [--count N]  print stored messages (not consumed)\n"
    "    groups TOPIC                   list the consumer groups of a topic\n"
    "    group delete|reset|seek TOPIC --group G [--to W]  manage one group\n"
    "    dlq list|get|replay|purge TOPIC --group G [--seq N]  a group's dead letters\n"
    "    bench pub|sub|pubsub|sync      measure the broker (ternctl bench --help)\n"
    "    audit TOPIC [--group G] [--since DUR]  delivery accounting per group\n"
    "    trace MSG_ID                   the life of one message\n"
    "    peers [pause|resume NAME]      replication links to the peer DCs\n"
    "    keys gen NAME | keys show FILE CURVE key pairs (ternctl keys --help)\n"
    "\n"
    "GLOBAL OPTIONS (accepted before or after the command)\n"
    "    -s, --server ENDPOINT  broker endpoint(s), comma-separated for failover;\n"
    "                           default $TERN_SERVER, then tcp://127.0.0.1:7600\n"
    "    --json                 print every result as one JSON object per line,\n"
    "                           numbers raw (ms, bytes, unix ms); without it\n"
    "                           durations, sizes, ISO 8601 UTC times, unlimited\n"
    "    --timeout DUR          how long to wait for the broker (admin: 5s;\n"
    "                           pub: 30s without progress; sub: 5s without a message)\n"
    "    --cert FILE            connect with CURVE using this certificate; default\n"
    "                           $TERN_CERT (needs --server-key too)\n"
    "    --server-key KEY       the broker's CURVE public key (Z85 or its .key file);\n"
    "                           default $TERN_SERVER_KEY\n"
    "    -h, --help             show help (for ternctl or for COMMAND)\n"
    "    --version              print the version and exit (without COMMAND)\n"
    "\n"
    "    DUR is e.g. 500ms, 30s, 1m30s, 1.5s, 2h, 7d, 1w (bare numbers are ms);\n"
    "    SIZE is e.g. 512, 64K or 64KiB (x1024), 1.5MB (x1000), 10GiB.\n"
    "\n"
    "EXIT STATUS\n"
    "    0 success, 1 failure (the reason is printed on stderr), 2 usage error.\n";

static const char *s_help_status =
    "NAME\n"
    "    ternctl status - show the broker node's status\n"
    "\n"
    "SYNOPSIS\n"
    "    ternctl [-s ENDPOINT] [--json] status\n"
    "\n"
    "DESCRIPTION\n"
    "    Prints where and how the node runs: node id, datacenter, version, the\n"
    "    endpoint it listens on, its data directory, its durability mode (fsync,\n"
    "    batch or none) and its role: standalone, or dc when it replicates with\n"
    "    peer DCs (peers: how many); then uptime, topic count, connection count,\n"
    "    storage bytes and counters. JSON keys: node_id, dc, version, endpoint,\n"
    "    data_dir, durability, role, peers, uptime_s, topics, connections,\n"
    "    storage_bytes, published, delivered, acked, auth, auth_refused,\n"
    "    auth_denied.\n"
    "\n"
    "EXIT STATUS\n"
    "    0 success, 1 broker unreachable or error (nothing listening at the\n"
    "    endpoint fails at once), 2 usage error (also a malformed endpoint).\n";

static const char *s_help_pub =
    "NAME\n"
    "    ternctl pub - publish messages to a topic\n"
    "\n"
    "SYNOPSIS\n"
    "    ternctl pub TOPIC [DATA] [--count N] [--producer ID] [--seq N]\n"
    "                [--ttl DUR | --class NAME] [--priority P] [--key K]\n"
    "                [--header K=V]... [--size BYTES] [--timeout DUR] [--quiet]\n"
    "\n"
    "DESCRIPTION\n"
    "    Publishes DATA --count times (default 1); `{n}` in DATA becomes the\n"
    "    message number 1..N. Without DATA, each line of stdin is one message\n"
    "    (up to --count lines when given; on a terminal pub says so, end with\n"
    "    Ctrl-D); with --size and no DATA, each message is BYTES random\n"
    "    characters. Prints one line per acknowledged message, in\n"
    "    acknowledgement order: \"seq=N msg_id=M\" (+ \" duplicate\"), or with\n"
    "    --json {\"topic\",\"msg_id\",\"seq\",\"duplicate\"}; then a summary on\n"
    "    stderr: \"published 100000 in 0.91 s (110k msg/s)\".\n"
    "    Messages carry a producer id (random per run unless --producer) and a\n"
    "    producer_seq (1, 2, ... or from --seq N): if the broker goes away, pub\n"
    "    reconnects and resends what is unacknowledged with the same sequence,\n"
    "    so the broker deduplicates it.\n"
    "\n"
    "    On failure pub says how many messages were acknowledged and prints\n"
    "    the exact --producer ID --seq N to resume from (the first message not\n"
    "    acknowledged). Resume with those: the broker remembers only the last\n"
    "    1024 seqs of each producer, for 2 min (storage/dedup_max and\n"
    "    storage/dedup_window), so re-running from the start, or with a new\n"
    "    producer id, stores every message again.\n"
    "\n"
    "OPTIONS\n"
    "    --count N        number of messages (with DATA or --size; default 1)\n"
    "    --producer ID    producer id for deduplication\n"
    "    --seq N          producer_seq of the first message (then N+1, ...)\n"
    "    --ttl DUR        time to live (e.g. 30s, 1h30m, 7d)\n"
    "    --class NAME     TTL class: instant, business or sync\n"
    "    --priority P     0..9 (default 4)\n"
    "    --key K          ordering key\n"
    "    --header K=V     metadata pair (repeatable)\n"
    "    --size BYTES     pad each message with random characters up to BYTES\n"
    "                     (e.g. 512, 64K, 1.5MB)\n"
    "    --timeout DUR    give up after DUR without any acknowledgement (30s)\n"
    "    --quiet          print nothing but errors (no line per message, no summary)\n"
    "\n"
    "EXIT STATUS\n"
    "    0 every message acknowledged; 1 a message was refused or the timeout\n"
    "    ran out; 2 usage error.\n";

static const char *s_help_sub =
    "NAME\n"
    "    ternctl sub - print messages delivered from a topic or pattern\n"
    "\n"
    "SYNOPSIS\n"
    "    ternctl sub TOPIC [--group G] [--from first|new|seq:N|time:DUR]\n"
    "                [--count N] [--timeout DUR | --follow] [--wait]\n"
    "                [--no-ack | --nack | --term]\n"
    "\n"
    "DESCRIPTION\n"
    "    Subscribes (durably with --group, else ephemerally) and prints each\n"
    "    delivered message as one line: \"[topic seq=N] data\", or with --json an\n"
    "    object with topic, seq, msg_id, producer, producer_seq, priority,\n"
    "    delivery_count, origin, timestamp_ns, key, trace_id, headers, and data\n"
    "    (valid UTF-8) or data_b64. Each message is acknowledged after printing.\n"
    "    TOPIC may use '*' (one token) and a final '>' (the rest).\n"
    "\n"
    "    Without --group, sub shows only messages published from now on (like\n"
    "    `nats sub`); --from first reads the topic from its oldest message.\n"
    "    A new --group starts at --from (default first); for a group that\n"
    "    exists --from is ignored (the group resumes where its acks left it)\n"
    "    and sub warns on stderr. A TOPIC that does not exist is an error\n"
    "    (\"no such topic\") unless --wait. (Both checks ask the broker an admin\n"
    "    question, so they are skipped with --cert, whose role may not allow it.)\n"
    "    Ctrl-C (SIGINT) or SIGTERM stops sub cleanly: what was printed is\n"
    "    acknowledged, the exit status is 0.\n"
    "\n"
    "OPTIONS\n"
    "    --group G        durable consumer group\n"
    "    --from WHERE     where a new group or an ephemeral subscription starts:\n"
    "                     first, new, seq:N, or time:DUR (messages from DUR ago);\n"
    "                     default first with --group, new without\n"
    "    --count N        exit after N messages\n"
    "    --timeout DUR    exit when nothing arrives for DUR (default 5s; 0 = never)\n"
    "    --follow         never exit for lack of messages: run until Ctrl-C\n"
    "    --wait           subscribe to a topic that does not exist yet and wait\n"
    "    --no-ack         do not acknowledge (the broker redelivers later)\n"
    "    --nack           negatively acknowledge each message (redelivered)\n"
    "    --term           terminate each message (moved to the dead-letter queue)\n"
    "\n"
    "EXIT STATUS\n"
    "    0 after N messages, the timeout, or Ctrl-C; 1 no such topic, broker\n"
    "    unreachable or subscription refused; 2 usage error.\n";

static const char *s_help_topics =
    "NAME\n"
    "    ternctl topics - list topics\n"
    "\n"
    "SYNOPSIS\n"
    "    ternctl [--json] topics\n"
    "\n"
    "DESCRIPTION\n"
    "    One row (or JSON object) per topic: topic, msgs, bytes, first_seq,\n"
    "    last_seq, max_age_ms, max_msgs, max_bytes, groups.\n"
    "\n"
    "EXIT STATUS\n"
    "    0 success, 1 failure, 2 usage error.\n";

static const char *s_help_topic =
    "NAME\n"
    "    ternctl topic - show, create, edit, delete or purge one topic\n"
    "\n"
    "SYNOPSIS\n"
    "    ternctl topic info TOPIC\n"
    "    ternctl topic create TOPIC [--max-age DUR] [--max-msgs N] [--max-bytes SIZE]\n"
    "    ternctl topic edit TOPIC [--max-age DUR] [--max-msgs N] [--max-bytes SIZE]\n"
    "    ternctl topic delete TOPIC [--force]\n"
    "    ternctl topic purge TOPIC [--progress] [--force]\n"
    "\n"
    "DESCRIPTION\n"
    "    info prints the topic object. create creates the topic with these\n"
    "    retention limits (0 or absent = unlimited) and prints it; it fails\n"
    "    (TERN_EEXIST, \"topic 'x' exists\") if the topic exists. edit changes\n"
    "    the limits given of an existing topic (the others stay) and prints it;\n"
    "    retention applies from the next publish or sweep. delete removes the\n"
    "    topic, its messages and groups ({\"topic\",\"deleted\",\"removed\"});\n"
    "    purge removes its messages ({\"topic\",\"purged\"}).\n"
    "    delete and purge ask for confirmation when stdin is a terminal, unless\n"
    "    --force; when stdin is not a terminal (scripts) they proceed without\n"
    "    asking. While purge waits for the broker it shows the elapsed time on\n"
    "    stderr (\"purging... 3.2 s\", then the count) when stderr is a\n"
    "    terminal and --json is not given, or with --progress; stdout is\n"
    "    unchanged. The broker does the purge as one operation, so this is\n"
    "    elapsed time, not a per-message count.\n"
    "\n"
    "EXIT STATUS\n"
    "    0 success, 1 failure (no such topic, topic exists, not confirmed),\n"
    "    2 usage error.\n";

static const char *s_help_get =
    "NAME\n"
    "    ternctl get, view - read stored messages without consuming them\n"
    "\n"
    "SYNOPSIS\n"
    "    ternctl [--json] get TOPIC SEQ\n"
    "    ternctl [--json] view TOPIC [--from first|seq:N|time:DUR] [--count N]\n"
    "\n"
    "DESCRIPTION\n"
    "    get prints message SEQ of TOPIC; view prints up to --count (default\n"
    "    10) messages from --from (default first; time:DUR = the first message\n"
    "    stored DUR ago or later), in seq order. Nothing is delivered or acked:\n"
    "    no group sees a difference. Text: one block per message, with seq,\n"
    "    msg_id, time (ISO 8601, UTC), expires, priority, trace_id, origin,\n"
    "    producer, key, headers and the payload (base64: prefix if not UTF-8).\n"
    "    --json: one object per message with topic, seq, msg_id, timestamp_ns,\n"
    "    expire_at_ns (0 = never), priority, trace_id, origin, producer,\n"
    "    producer_seq, key, size, headers, and data (UTF-8) or data_b64.\n"
    "\n"
    "EXIT STATUS\n"
    "    0 success, 1 failure (no such topic or message), 2 usage error.\n";

static const char *s_help_groups =
    "NAME\n"
    "    ternctl groups - list the consumer groups of a topic\n"
    "\n"
    "SYNOPSIS\n"
    "    ternctl [--json] groups TOPIC\n"
    "\n"
    "DESCRIPTION\n"
    "    One row per group: topic, group, pending, ack_floor, next_unacked, dead,\n"
    "    delivered, redelivered, acked, consumers.\n"
    "\n"
    "    ack_floor     the highest seq such that it and every seq below it are\n"
    "                  settled: acked, dead-lettered, expired, or before the\n"
    "                  group's start (JetStream's ack floor: an ack above an\n"
    "                  unacked seq does not move it). 0 = nothing settled yet.\n"
    "    next_unacked  the lowest seq not yet settled: still pending, or not yet\n"
    "                  delivered (ack_floor + 1).\n"
    "    pending       messages delivered and not yet acked (or waiting for\n"
    "                  redelivery).\n"
    "    delivered     every delivery to a consumer, redeliveries and deliveries\n"
    "                  after a DLQ replay included (the same number in audit,\n"
    "                  trace and /metrics).\n"
    "    redelivered   the deliveries whose delivery count was above 1 (a DLQ\n"
    "                  replay starts the count again).\n"
    "\n"
    "EXIT STATUS\n"
    "    0 success, 1 failure, 2 usage error.\n";

static const char *s_help_group =
    "NAME\n"
    "    ternctl group - delete, reset or move one consumer group\n"
    "\n"
    "SYNOPSIS\n"
    "    ternctl group delete TOPIC --group G [--force]\n"
    "    ternctl group reset TOPIC --group G [--to WHERE] [--force]\n"
    "    ternctl group seek TOPIC --group G --to first|new|seq:N|time:DUR\n"
    "\n"
    "DESCRIPTION\n"
    "    delete removes the group and all its state (pending, DLQ, counters);\n"
    "    it fails (TERN_EBUSY) while consumers are connected to the group.\n"
    "    reset forgets all delivery state (pending entries, acks, DLQ,\n"
    "    counters) and starts the group again at --to (default first: the\n"
    "    first stored message; the original --from of the group is not\n"
    "    stored). seek moves the group's position to --to: first, new (after\n"
    "    the last message), seq:N, or time:DUR (the first message stored DUR\n"
    "    ago or later); its pending entries are dropped, and delivery goes on\n"
    "    from the new position; the DLQ and counters stay. Connected consumers\n"
    "    stay subscribed through reset and seek: messages they hold unacked are\n"
    "    forgotten (their acks are refused) and they receive from the new\n"
    "    position. Prints {\"topic\",\"group\",\"deleted\"} or, for reset and\n"
    "    seek, {\"topic\",\"group\",\"next_seq\",\"dead\"}. delete and reset ask\n"
    "    for confirmation when stdin is a terminal, unless --force.\n"
    "\n"
    "EXIT STATUS\n"
    "    0 success, 1 failure (no such topic or group, consumers connected,\n"
    "    not confirmed), 2 usage error.\n";

static const char *s_help_dlq =
    "NAME\n"
    "    ternctl dlq - inspect, replay and purge a group's dead-letter queue\n"
    "\n"
    "SYNOPSIS\n"
    "    ternctl dlq list TOPIC --group G\n"
    "    ternctl dlq get TOPIC --group G --seq N\n"
    "    ternctl dlq replay TOPIC --group G [--seq N] [--progress]\n"
    "    ternctl dlq purge TOPIC --group G [--force]\n"
    "\n"
    "DESCRIPTION\n"
    "    list prints one row per dead letter: topic, group, seq, msg_id,\n"
    "    delivery_count, reason, dead_at_ms. get prints dead letter N with its\n"
    "    message (as `ternctl get`, plus delivery_count, reason, dead_at_ms).\n"
    "    replay puts them back for delivery to the group (with --seq only\n"
    "    message N) and prints {\"topic\",\"group\",\"replayed\"}. purge removes\n"
    "    every dead letter of the group (the messages stay in the topic) and\n"
    "    prints {\"topic\",\"group\",\"purged\"}; it asks for confirmation\n"
    "    when stdin is a terminal, unless --force. While replay waits it shows\n"
    "    the elapsed time on stderr (\"replaying... 3.2 s\", then the count)\n"
    "    when stderr is a terminal and --json is not given, or with\n"
    "    --progress; stdout is unchanged.\n"
    "\n"
    "EXIT STATUS\n"
    "    0 success, 1 failure (no such group, seq not in the DLQ, not\n"
    "    confirmed), 2 usage error.\n";

//  ---------------------------------------------------------------------------
//  Command line

typedef struct {
    const char *name; //  long option name without "--"
    bool has_arg;     //  takes a value
} s_opt_t;

#define MAX_POSITIONAL 8
#define MAX_HEADERS    32

typedef struct {
    const char *server;                     //  -s
    bool json;                              //  --json
    bool help;                              //  --help
    const char *timeout;                    //  --timeout text or NULL
    const char *values[24];                 //  per option of the command table: last value
    bool present[24];                       //  per option: seen
    const char *headers[MAX_HEADERS];       //  --header values, in order
    size_t header_count;                    //  how many
    const char *positional[MAX_POSITIONAL]; //  non-option words
    size_t positional_count;                //  how many
} s_args_t;

static const char *s_command = "ternctl"; //  for messages

static int s_usage(const char *fmt, const char *arg) {
    fprintf(stderr, "ternctl: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\nTry 'ternctl %s--help'.\n",
            strcmp(s_command, "ternctl") == 0 ? "" : s_command);
    return EXIT_USAGE;
}

//  Reports a failed call of WHAT with CODE and returns the exit status. The
//  reason libtern or the broker gave names the problem (and the limit), so
//  it is printed as is; bad input that only the broker could judge (a topic
//  or name outside the grammar) is a usage error.
static int s_fail(const char *what, int code) {
    const char *reason = tern_last_reason();
    bool has_reason = reason && reason[0];
    if (code == TERN_ECONNREFUSED && has_reason) {
        fprintf(stderr, "ternctl: %s (is ternd running?)\n", reason);
        return 1;
    }
    if ((code == TERN_ETOPIC || code == TERN_ENAME) && has_reason) {
        return s_usage("%s", reason);
    }
    const char *cert = getenv("TERN_CERT");
    if (code == TERN_EDENIED && has_reason && !(cert && cert[0])) {
        //  Without a certificate, only a CURVE broker denies anything.
        fprintf(stderr, "ternctl: %s: pass --cert FILE and --server-key KEY (%s)\n", reason,
                tern_errname(code));
        return 1;
    }
    if (has_reason) {
        fprintf(stderr, "ternctl: %s (%s)\n", reason, tern_errname(code));
    } else {
        fprintf(stderr, "ternctl: %s: %s (%s)\n", what, tern_strerror(code), tern_errname(code));
    }
    return 1;
}

//  tern_client_new refused the command line's endpoint or options: a usage
//  error, with libtern's reason.
static int s_client_usage(void) {
    return s_usage("%s", tern_last_reason());
}

//  Parses ARGV[0..ARGC) (the words after the command) against OPTS.
//  Returns 0 or EXIT_USAGE (message printed).
static int s_parse(int argc, char **argv, const s_opt_t *opts, s_args_t *args) {
    bool only_positional = false;
    for (int i = 0; i < argc; i++) {
        const char *word = argv[i];
        if (only_positional || word[0] != '-' || word[1] == 0) {
            if (args->positional_count == MAX_POSITIONAL) {
                return s_usage("too many arguments at '%s'", word);
            }
            args->positional[args->positional_count++] = word;
            continue;
        }
        if (strcmp(word, "--") == 0) {
            only_positional = true;
            continue;
        }
        //  Split "--name=value".
        char name[64];
        const char *value = NULL;
        const char *body = word[1] == '-' ? word + 2 : word + 1;
        const char *eq = strchr(body, '=');
        size_t len = eq ? (size_t)(eq - body) : strlen(body);
        if (len >= sizeof name) {
            return s_usage("unknown option '%s'", word);
        }
        memcpy(name, body, len);
        name[len] = 0;
        if (eq) {
            value = eq + 1;
        }
        if (word[1] != '-') {
            //  Short options: -s ENDPOINT, -h.
            if (strcmp(name, "s") == 0) {
                strcpy(name, "server");
            } else if (strcmp(name, "h") == 0) {
                strcpy(name, "help");
            } else {
                return s_usage("unknown option '%s'", word);
            }
        }
        bool global_arg = strcmp(name, "server") == 0 || strcmp(name, "timeout") == 0;
        bool global_flag = strcmp(name, "json") == 0 || strcmp(name, "help") == 0;
        int index = -1;
        for (int k = 0; opts && opts[k].name; k++) {
            if (strcmp(opts[k].name, name) == 0) {
                index = k;
            }
        }
        if (index < 0 && !global_arg && !global_flag) {
            return s_usage("unknown option '%s'", word);
        }
        bool has_arg = global_arg || (index >= 0 && opts[index].has_arg);
        if (has_arg && !value) {
            if (i + 1 >= argc) {
                return s_usage("option '%s' needs a value", word);
            }
            value = argv[++i];
        } else if (!has_arg && value) {
            return s_usage("option '%s' takes no value", word);
        }
        if (strcmp(name, "server") == 0) {
            args->server = value;
        } else if (strcmp(name, "timeout") == 0) {
            args->timeout = value;
        } else if (strcmp(name, "json") == 0) {
            args->json = true;
        } else if (strcmp(name, "help") == 0) {
            args->help = true;
        } else if (strcmp(name, "header") == 0) {
            if (args->header_count == MAX_HEADERS) {
                return s_usage("too many headers at '%s'", value);
            }
            args->headers[args->header_count++] = value;
        } else {
            args->values[index] = value;
            args->present[index] = true;
        }
    }
    return 0;
}

static int s_opt_index(const s_opt_t *opts, const char *name) {
    for (int k = 0; opts[k].name; k++) {
        if (strcmp(opts[k].name, name) == 0) {
            return k;
        }
    }
    return -1;
}

static const char *s_value(const s_args_t *args, const s_opt_t *opts, const char *name) {
    int k = s_opt_index(opts, name);
    return k >= 0 ? args->values[k] : NULL;
}

static bool s_flag(const s_args_t *args, const s_opt_t *opts, const char *name) {
    int k = s_opt_index(opts, name);
    return k >= 0 && args->present[k];
}

static bool s_parse_u64(const char *text, uint64_t *out) {
    if (!text || text[0] < '0' || text[0] > '9') {
        return false;
    }
    errno = 0;
    char *end;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno || *end) {
        return false;
    }
    *out = v;
    return true;
}

static const char *s_server(const s_args_t *args) {
    if (args->server && args->server[0]) {
        return args->server;
    }
    const char *env = getenv("TERN_SERVER");
    return env && env[0] ? env : TERN_DEFAULT_ENDPOINT;
}

//  Reads --timeout (or DEFAULT_MS); returns -1 on a bad value.
static int64_t s_timeout_ms(const s_args_t *args, int64_t default_ms) {
    if (!args->timeout) {
        return default_ms;
    }
    uint64_t ms;
    if (tern_parse_duration(args->timeout, &ms) != TERN_OK || ms > INT32_MAX) {
        return -1;
    }
    return (int64_t)ms;
}

//  Usage error for a bad value TEXT of --OPTION, with the parser's reason WHY.
static int s_bad_value(const char *option, const char *text, const char *why) {
    char format[256];
    snprintf(format, sizeof format, "invalid --%s '%%s'%s%s", option, why ? ": " : "",
             why ? why : "");
    return s_usage(format, text);
}

//  Usage error for the --timeout that s_timeout_ms refused.
static int s_bad_timeout(const s_args_t *args) {
    uint64_t ms;
    const char *why = NULL;
    if (tern_units_parse_duration(args->timeout, &ms, &why) == TERN_OK) {
        why = "at most 24d";
    }
    return s_bad_value("timeout", args->timeout, why);
}

static int64_t s_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void ternctl_curve_options(tern_client_options_t *options); //  tools/ternctl_keys.c

static tern_client_t *s_client(const s_args_t *args, int timeout_ms, const char *producer,
                               uint64_t seq_start) {
    tern_client_options_t options;
    tern_client_options_init(&options);
    options.name = "ternctl";
    options.timeout_ms = timeout_ms > 0 ? (uint32_t)timeout_ms : 1;
    options.heartbeat_ms = 2000;
    options.connect_timeout_ms = 2000;
    options.backoff_max_ms = 1000;
    options.producer_id = producer;
    if (seq_start) {
        options.producer_seq_start = seq_start;
    }
    ternctl_curve_options(&options);
    return tern_client_new(s_server(args), &options);
}

//  ---------------------------------------------------------------------------
//  Printing admin replies

static void s_print_line(tern_json_t *b) {
    fwrite(b->data, 1, b->len, stdout);
    fputc('\n', stdout);
    fflush(stdout);
}

//  How human output shows a number, by the name of its field (--json prints
//  the broker's raw number). The first matching pattern wins: "*x" matches a
//  suffix, "x*" a prefix, anything else the whole name.
typedef enum {
    S_SHOW_RAW,     //  as the broker sent it
    S_SHOW_MS,      //  a duration in ms: "1m30s"
    S_SHOW_SECONDS, //  a duration in s
    S_SHOW_BYTES,   //  a size: "10 GiB"
    S_SHOW_TIME_MS, //  a unix time in ms: ISO 8601 UTC, "-" for 0 (never)
    S_SHOW_TIME_NS  //  the same in ns
} s_show_t;

typedef struct {
    const char *pattern; //  field name, "*suffix" or "prefix*"
    s_show_t show;       //  how to show its value
    bool limit;          //  0 means no limit: shown as "unlimited"
} s_field_show_t;

static const s_field_show_t s_field_shows[] = {
    {"max_age_ms", S_SHOW_MS, true},    {"max_bytes", S_SHOW_BYTES, true},
    {"max_*", S_SHOW_RAW, true},        {"timestamp_ns", S_SHOW_TIME_NS, false},
    {"at_ms", S_SHOW_TIME_MS, false},   {"last_seen_ms", S_SHOW_TIME_MS, false},
    {"*_at_ms", S_SHOW_TIME_MS, false}, {"*_at_ns", S_SHOW_TIME_NS, false},
    {"ttl", S_SHOW_MS, false},          {"*_ms", S_SHOW_MS, false},
    {"*_s", S_SHOW_SECONDS, false},     {"bytes", S_SHOW_BYTES, false},
    {"*_bytes", S_SHOW_BYTES, false},   {NULL, S_SHOW_RAW, false}};

static const s_field_show_t *s_field_show(const char *key) {
    for (const s_field_show_t *f = s_field_shows; key && f->pattern; f++) {
        size_t klen = strlen(key), plen = strlen(f->pattern);
        bool match = f->pattern[0] == '*'
                         ? klen >= plen - 1 && strcmp(key + klen - (plen - 1), f->pattern + 1) == 0
                     : f->pattern[plen - 1] == '*' ? strncmp(key, f->pattern, plen - 1) == 0
                                                   : strcmp(key, f->pattern) == 0;
        if (match) {
            return f;
        }
    }
    return NULL;
}

//  Writes number V of field KEY for people into BUF; false to print it raw.
static bool s_human_number(const char *key, const json_t *v, char *buf, size_t len) {
    const s_field_show_t *f = s_field_show(key);
    uint64_t n;
    if (!f || !s_parse_u64(v->text, &n)) {
        return false; //  not a unit field, or not a plain integer
    }
    if (f->limit && n == 0) {
        snprintf(buf, len, "unlimited");
    } else if (f->show == S_SHOW_MS || f->show == S_SHOW_SECONDS) {
        uint64_t ms = f->show == S_SHOW_MS ? n : n > UINT64_MAX / 1000 ? UINT64_MAX : n * 1000;
        tern_units_format_duration(ms, TERN_UNITS_HUMAN, buf, len);
    } else if (f->show == S_SHOW_BYTES) {
        tern_units_format_size(n, TERN_UNITS_HUMAN, buf, len);
    } else if (f->show == S_SHOW_TIME_MS || f->show == S_SHOW_TIME_NS) {
        if (n == 0) {
            snprintf(buf, len, "-");
        } else {
            tern_units_format_time(f->show == S_SHOW_TIME_NS ? n / 1000000 : n, buf, len);
        }
    } else {
        return false;
    }
    return true;
}

//  Text of field KEY's value V for people ("-" for null, durations, sizes
//  and times in units, containers compact).
static char *s_cell(const char *key, const json_t *v) {
    tern_json_t b;
    tern_json_init(&b);
    char human[TERN_UNITS_BUF];
    if (!v || v->kind == JSON_NULL) {
        tern_json_raw(&b, "-");
    } else if (v->kind == JSON_STRING) {
        tern_json_rawn(&b, v->text, v->text_len);
    } else if (v->kind == JSON_NUMBER && s_human_number(key, v, human, sizeof human)) {
        tern_json_raw(&b, human);
    } else {
        json_write(&b, v);
    }
    return b.data;
}

//  The label of field KEY for people, into BUF: without the unit suffix
//  (_ms, _s, _ns) when its value is shown in units ("max_age", "dead_at").
static const char *s_label(const char *key, char *buf, size_t len) {
    const s_field_show_t *f = s_field_show(key);
    size_t n = strlen(key);
    const char *unit = strrchr(key, '_');
    if (f && f->show != S_SHOW_RAW && f->show != S_SHOW_BYTES && unit && unit != key &&
        (strcmp(unit, "_ms") == 0 || strcmp(unit, "_s") == 0 || strcmp(unit, "_ns") == 0)) {
        n = (size_t)(unit - key);
    }
    snprintf(buf, len, "%.*s", (int)n, key);
    return buf;
}

static void s_print_object_text(const json_t *obj) {
    size_t width = 0;
    char label[128];
    for (size_t i = 0; i < obj->count; i++) {
        size_t n = strlen(s_label(obj->keys[i], label, sizeof label));
        width = n > width ? n : width;
    }
    for (size_t i = 0; i < obj->count; i++) {
        char *cell = s_cell(obj->keys[i], obj->items[i]);
        printf("%-*s  %s\n", (int)width, s_label(obj->keys[i], label, sizeof label), cell);
        free(cell);
    }
    fflush(stdout);
}

//  An aligned table of the objects in ARRAY with COLUMNS (NULL-terminated;
//  NULL = the keys of the first element).
static void s_print_table(const json_t *array, const char *const *columns) {
    const char *auto_cols[64];
    if (!columns) {
        size_t n = 0;
        if (array->count && array->items[0]->kind == JSON_OBJECT) {
            for (; n < array->items[0]->count && n < 63; n++) {
                auto_cols[n] = array->items[0]->keys[n];
            }
        }
        auto_cols[n] = NULL;
        columns = auto_cols;
    }
    size_t ncols = 0;
    while (columns[ncols]) {
        ncols++;
    }
    if (ncols == 0) {
        return;
    }
    size_t rows = array->count;
    char **cells = calloc((rows + 1) * ncols, sizeof(char *));
    size_t *width = calloc(ncols, sizeof(size_t));
    if (!cells || !width) {
        fprintf(stderr, "ternctl: out of memory\n");
        exit(1);
    }
    for (size_t c = 0; c < ncols; c++) {
        char label[128];
        cells[c] = strdup(s_label(columns[c], label, sizeof label));
        for (char *p = cells[c]; p && *p; p++) {
            *p = (char)(*p >= 'a' && *p <= 'z' ? *p - 32 : *p);
        }
    }
    for (size_t r = 0; r < rows; r++) {
        for (size_t c = 0; c < ncols; c++) {
            cells[(r + 1) * ncols + c] = s_cell(columns[c], json_get(array->items[r], columns[c]));
        }
    }
    for (size_t i = 0; i < (rows + 1) * ncols; i++) {
        size_t n = cells[i] ? strlen(cells[i]) : 0;
        width[i % ncols] = n > width[i % ncols] ? n : width[i % ncols];
    }
    for (size_t r = 0; r <= rows; r++) {
        for (size_t c = 0; c < ncols; c++) {
            const char *cell = cells[r * ncols + c] ? cells[r * ncols + c] : "";
            if (c + 1 == ncols) {
                printf("%s\n", cell);
            } else {
                printf("%-*s  ", (int)width[c], cell);
            }
        }
    }
    fflush(stdout);
    for (size_t i = 0; i < (rows + 1) * ncols; i++) {
        free(cells[i]);
    }
    free(cells);
    free(width);
}

//  What an empty list prints in text mode instead of a bare heading, e.g.
//  "no topics"; set by s_admin_list for the one admin call a command makes.
static const char *s_empty_text;

//  ARRAY as a table, or s_empty_text when it has no rows.
static void s_print_rows(const json_t *array, const char *const *columns) {
    if (array->count == 0 && s_empty_text) {
        printf("%s\n", s_empty_text);
        fflush(stdout);
        return;
    }
    s_print_table(array, columns);
}

//  The house table and `key  value` lines for the commands in other files
//  (ternctl_peers.c).
void ternctl_print_table(const json_t *array, const char *const *columns) {
    s_print_table(array, columns);
}

void ternctl_print_object(const json_t *object) {
    s_print_object_text(object);
}

typedef struct s_progress_t s_progress_t;
static int s_admin_run(const s_args_t *args, const char *op, const tern_header_t *kv, size_t count,
                       const char *const *columns, s_progress_t *progress);

//  Progress line on stderr for a long admin op: the request is one op on
//  the broker, so this shows the elapsed time while the reply is awaited
//  ("purging... 3.2 s"), then the final count. Never on stdout.
struct s_progress_t {
    const char *verb; //  e.g. "purging"
    const char *key;  //  reply field holding the final count, e.g. "purged"
    bool tty;         //  stderr is a terminal: redraw one line in place
    int64_t start_ms; //  when the request went out
    atomic_bool done; //  set by the main thread when the reply arrived
    pthread_t thread; //  the printer
};

static void *s_progress_run(void *arg) {
    s_progress_t *self = arg;
    //  A terminal gets a redrawn line every 100 ms, anything else one line
    //  a second; nothing in the first 200 ms (a quick op prints only the
    //  final line). Polls every 20 ms so the command does not wait on it.
    int64_t step = self->tty ? 100 : 1000;
    int64_t next = self->tty ? 200 : 1000;
    while (!atomic_load(&self->done)) {
        int64_t elapsed = s_now_ms() - self->start_ms;
        if (elapsed >= next) {
            if (self->tty) {
                static const char spin[] = "|/-\\";
                fprintf(stderr, "\r%c %s... %.1f s\033[K", spin[(elapsed / 100) % 4], self->verb,
                        (double)elapsed / 1000.0);
            } else {
                fprintf(stderr, "%s... %.1f s\n", self->verb, (double)elapsed / 1000.0);
            }
            fflush(stderr);
            next = elapsed - elapsed % step + step;
        }
        struct timespec ts = {0, 20 * 1000000L};
        nanosleep(&ts, NULL);
    }
    return NULL;
}

//  Starts the progress line when P is not NULL and SHOW is true; returns P
//  or NULL (no progress line: nothing to stop).
static s_progress_t *s_progress_start(s_progress_t *p, bool show) {
    if (!p || !show) {
        return NULL;
    }
    p->tty = isatty(STDERR_FILENO);
    p->start_ms = s_now_ms();
    atomic_store(&p->done, false);
    if (pthread_create(&p->thread, NULL, s_progress_run, p) != 0) {
        return NULL; //  no progress line; the command itself still runs
    }
    return p;
}

//  Stops the line; prints "VERB... done: N KEY in T s" (N from DOC when it
//  has KEY) or "VERB... failed after T s".
static void s_progress_stop(s_progress_t *p, const json_t *doc) {
    if (!p) {
        return;
    }
    atomic_store(&p->done, true);
    pthread_join(p->thread, NULL);
    double secs = (double)(s_now_ms() - p->start_ms) / 1000.0;
    if (p->tty) {
        fprintf(stderr, "\r\033[K");
    }
    const json_t *n = doc && doc->kind == JSON_OBJECT ? json_get(doc, p->key) : NULL;
    if (n) {
        char *text = s_cell(p->key, n);
        fprintf(stderr, "%s... done: %s %s in %.1f s\n", p->verb, text ? text : "?", p->key, secs);
        free(text);
    } else if (doc) {
        fprintf(stderr, "%s... done in %.1f s\n", p->verb, secs);
    } else {
        fprintf(stderr, "%s... failed after %.1f s\n", p->verb, secs);
    }
    fflush(stderr);
}

//  Runs admin OP with ARGS and prints the reply; COLUMNS for arrays.
static int s_admin_print(const s_args_t *args, const char *op, const tern_header_t *kv,
                         size_t count, const char *const *columns) {
    return s_admin_run(args, op, kv, count, columns, NULL);
}

//  Runs admin OP with ARGS and parses the reply into *DOC (caller owns it),
//  with a progress line on stderr while the reply is awaited when PROGRESS
//  (verb and key filled in) is not NULL. Returns 0 or the exit status
//  (the reason printed on stderr).
static int s_admin_call(const s_args_t *args, const char *op, const tern_header_t *kv, size_t count,
                        s_progress_t *progress, json_t **doc) {
    int64_t timeout = s_timeout_ms(args, 5000);
    if (timeout < 0) {
        return s_usage("invalid --timeout '%s'", args->timeout);
    }
    tern_client_t *client = s_client(args, (int)timeout, NULL, 0);
    if (!client) {
        return s_client_usage();
    }
    char *reply = NULL;
    progress = s_progress_start(progress, progress != NULL);
    int rc = tern_admin(client, op, kv, count, &reply, (int)(timeout > 0 ? timeout : 1));
    if (rc != TERN_OK) {
        s_progress_stop(progress, NULL);
        char what[128];
        if (rc == TERN_ETIMEOUT && !tern_client_connected(client)) {
            snprintf(what, sizeof what, "%s: cannot reach %s", op, s_server(args));
        } else {
            snprintf(what, sizeof what, "%s", op);
        }
        tern_client_destroy(&client);
        return s_fail(what, rc);
    }
    tern_client_destroy(&client);
    *doc = json_parse(reply, strlen(reply));
    s_progress_stop(progress, *doc);
    if (!*doc) {
        fprintf(stderr, "ternctl: %s: the broker's reply is not JSON: %s\n", op, reply);
        free(reply);
        return 1;
    }
    free(reply);
    return 0;
}

//  Same as s_admin_print, with a progress line (see s_admin_call).
static int s_admin_run(const s_args_t *args, const char *op, const tern_header_t *kv, size_t count,
                       const char *const *columns, s_progress_t *progress) {
    json_t *doc = NULL;
    int rc = s_admin_call(args, op, kv, count, progress, &doc);
    if (rc) {
        return rc;
    }
    tern_json_t b;
    tern_json_init(&b);
    if (doc->kind == JSON_ARRAY) {
        if (args->json) {
            for (size_t i = 0; i < doc->count; i++) {
                tern_json_reset(&b);
                json_write(&b, doc->items[i]);
                s_print_line(&b);
            }
        } else {
            s_print_rows(doc, columns);
        }
    } else if (args->json || doc->kind != JSON_OBJECT) {
        json_write(&b, doc);
        s_print_line(&b);
    } else {
        s_print_object_text(doc);
    }
    tern_json_free(&b);
    json_destroy(&doc);
    return 0;
}

//  s_admin_print for a list whose empty reply prints EMPTY in text mode
//  (--json prints nothing for it, as for any empty list).
static int s_admin_list(const s_args_t *args, const char *op, const tern_header_t *kv, size_t count,
                        const char *const *columns, const char *empty) {
    s_empty_text = empty; //  borrowed for this call only
    int rc = s_admin_print(args, op, kv, count, columns);
    s_empty_text = NULL;
    return rc;
}

//  ---------------------------------------------------------------------------
//  Admin commands

static int s_cmd_status(const s_args_t *args) {
    if (args->positional_count) {
        return s_usage("status takes no arguments ('%s')", args->positional[0]);
    }
    return s_admin_print(args, "status", NULL, 0, NULL);
}

static const char *const s_topic_cols[] = {"topic",    "msgs",       "bytes",    "first_seq",
                                           "last_seq", "max_age_ms", "max_msgs", "max_bytes",
                                           "groups",   NULL};
static const char *const s_group_cols[] = {"topic",        "group",     "pending",   "ack_floor",
                                           "next_unacked", "dead",      "delivered", "redelivered",
                                           "acked",        "consumers", NULL};
static const char *const s_dlq_cols[] = {"topic",          "group",  "seq",        "msg_id",
                                         "delivery_count", "reason", "dead_at_ms", NULL};

static int s_cmd_topics(const s_args_t *args) {
    if (args->positional_count) {
        return s_usage("topics takes no arguments ('%s')", args->positional[0]);
    }
    return s_admin_list(args, "topics", NULL, 0, s_topic_cols, "no topics");
}

static const s_opt_t s_topic_opts[] = {{"max-age", true},   {"max-msgs", true}, {"max-bytes", true},
                                       {"progress", false}, {"force", false},   {NULL, false}};

//  Progress for a long admin op: on with --progress, or when stderr is a
//  terminal; off with --json unless --progress is given. Returns P or NULL.
static s_progress_t *s_progress_want(const s_args_t *args, bool flag, s_progress_t *p) {
    if (flag || (!args->json && isatty(STDERR_FILENO))) {
        return p;
    }
    return NULL;
}

//  Asks QUESTION on a terminal (stdin a tty) unless --force was given:
//  true to proceed. Not on a terminal (scripts, pipes), it proceeds.
static bool s_confirm(const s_args_t *args, const s_opt_t *opts, const char *question) {
    if (s_flag(args, opts, "force") || !isatty(STDIN_FILENO)) {
        return true;
    }
    fprintf(stderr, "%s [y/N] ", question);
    fflush(stderr);
    char line[16] = "";
    if (!fgets(line, sizeof line, stdin)) {
        line[0] = 0;
    }
    bool yes = strcmp(line, "y\n") == 0 || strcmp(line, "yes\n") == 0 || strcmp(line, "Y\n") == 0 ||
               strcmp(line, "YES\n") == 0;
    if (!yes) {
        fprintf(stderr,
                "ternctl: not confirmed; nothing done (use --force to skip the question)\n");
    }
    return yes;
}

//  The --max-age, --max-msgs, --max-bytes options as admin arguments
//  appended to KV at *COUNT (NUMBERS holds their text). Returns 0 or the
//  usage exit status.
static int s_topic_limits(const s_args_t *args, tern_header_t *kv, size_t *count,
                          char numbers[3][24]) {
    static const char *const opts[3] = {"max-age", "max-msgs", "max-bytes"};
    static const char *const keys[3] = {"max_age_ms", "max_msgs", "max_bytes"};
    for (int i = 0; i < 3; i++) {
        const char *text = s_value(args, s_topic_opts, opts[i]);
        uint64_t v;
        if (!text) {
            continue;
        }
        bool ok = i == 0   ? tern_parse_duration(text, &v) == TERN_OK
                  : i == 1 ? s_parse_u64(text, &v)
                           : tern_parse_size(text, &v) == TERN_OK;
        if (!ok) {
            char what[32];
            snprintf(what, sizeof what, "invalid --%s '%%s'", opts[i]);
            return s_usage(what, text);
        }
        snprintf(numbers[i], sizeof numbers[i], "%llu", (unsigned long long)v);
        kv[(*count)++] = (tern_header_t){keys[i], numbers[i]};
    }
    return 0;
}

static int s_cmd_topic(const s_args_t *args) {
    if (args->positional_count < 1) {
        return s_usage("topic needs a subcommand: %s", "info, create, edit, delete or purge");
    }
    const char *sub = args->positional[0];
    if (args->positional_count != 2) {
        return s_usage("topic %s needs exactly one TOPIC", sub);
    }
    const char *topic = args->positional[1];
    tern_header_t kv[4] = {{"topic", topic}};
    size_t count = 1;
    bool destroys = strcmp(sub, "delete") == 0 || strcmp(sub, "purge") == 0;
    if (s_flag(args, s_topic_opts, "progress") && strcmp(sub, "purge") != 0) {
        return s_usage("--progress applies only to 'topic purge', not '%s'", sub);
    }
    if (s_flag(args, s_topic_opts, "force") && !destroys) {
        return s_usage("--force applies only to 'topic delete' and 'topic purge', not '%s'", sub);
    }
    bool limits = s_flag(args, s_topic_opts, "max-age") || s_flag(args, s_topic_opts, "max-msgs") ||
                  s_flag(args, s_topic_opts, "max-bytes");
    char numbers[3][24];
    if (strcmp(sub, "create") == 0 || strcmp(sub, "edit") == 0) {
        if (strcmp(sub, "edit") == 0 && !limits) {
            return s_usage("topic edit needs a limit: %s", "--max-age, --max-msgs or --max-bytes");
        }
        int rc = s_topic_limits(args, kv, &count, numbers);
        return rc ? rc
                  : s_admin_print(args, strcmp(sub, "create") == 0 ? "topic.create" : "topic.edit",
                                  kv, count, NULL);
    }
    if (limits) {
        return s_usage("limits apply only to 'topic create' and 'topic edit', not '%s'", sub);
    }
    if (strcmp(sub, "info") == 0) {
        return s_admin_print(args, "topic.info", kv, count, NULL);
    }
    if (!destroys) {
        return s_usage("unknown topic subcommand '%s'", sub);
    }
    char question[400];
    snprintf(question, sizeof question, "%s topic '%s'%s?",
             strcmp(sub, "delete") == 0 ? "Delete" : "Purge", topic,
             strcmp(sub, "delete") == 0 ? ", its messages and its groups"
                                        : ": remove all its messages");
    if (!s_confirm(args, s_topic_opts, question)) {
        return 1;
    }
    if (strcmp(sub, "delete") == 0) {
        return s_admin_print(args, "topic.delete", kv, count, NULL);
    }
    s_progress_t progress = {.verb = "purging", .key = "purged"};
    return s_admin_run(args, "topic.purge", kv, count, NULL,
                       s_progress_want(args, s_flag(args, s_topic_opts, "progress"), &progress));
}

static int s_cmd_groups(const s_args_t *args) {
    if (args->positional_count != 1) {
        return s_usage("groups needs exactly one TOPIC%s", "");
    }
    tern_header_t kv[1] = {{"topic", args->positional[0]}};
    char empty[320];
    snprintf(empty, sizeof empty, "no consumer groups on %s", args->positional[0]);
    return s_admin_list(args, "groups", kv, 1, s_group_cols, empty);
}

//  The SUB of COMMAND (`group`, `dlq`) must be one of SUBS (NULL-terminated)
//  with one TOPIC and --group G: fills KV[0..2). Returns 0 or the usage
//  exit status.
static int s_group_args(const s_args_t *args, const s_opt_t *opts, const char *command,
                        const char *const *subs, tern_header_t *kv) {
    if (args->positional_count < 1) {
        return s_usage("%s needs a subcommand", command);
    }
    const char *sub = args->positional[0];
    bool known = false;
    for (size_t i = 0; subs[i]; i++) {
        known |= strcmp(subs[i], sub) == 0;
    }
    if (!known) {
        return s_usage("unknown subcommand '%s'", sub);
    }
    if (args->positional_count != 2) {
        return s_usage("%s needs exactly one TOPIC", sub);
    }
    const char *group = s_value(args, opts, "group");
    if (!group || !group[0]) {
        return s_usage("%s needs --group G", sub);
    }
    kv[0] = (tern_header_t){"topic", args->positional[1]};
    kv[1] = (tern_header_t){"group", group};
    return 0;
}

static const s_opt_t s_group_opts[] = {
    {"group", true}, {"to", true}, {"force", false}, {NULL, false}};

//  True if TEXT is a position: first, new (if NEW_OK), seq:N or time:DUR.
static bool s_position_valid(const char *text, bool new_ok) {
    uint64_t v;
    return strcmp(text, "first") == 0 || (new_ok && strcmp(text, "new") == 0) ||
           (strncmp(text, "seq:", 4) == 0 && s_parse_u64(text + 4, &v) && v > 0) ||
           (strncmp(text, "time:", 5) == 0 && tern_parse_duration(text + 5, &v) == TERN_OK);
}

static int s_cmd_group(const s_args_t *args) {
    static const char *const subs[] = {"delete", "reset", "seek", NULL};
    tern_header_t kv[3];
    int rc = s_group_args(args, s_group_opts, "group", subs, kv);
    if (rc) {
        return rc;
    }
    const char *sub = args->positional[0], *to = s_value(args, s_group_opts, "to");
    size_t count = 2;
    if (to) {
        if (strcmp(sub, "delete") == 0) {
            return s_usage("--to applies only to 'group reset' and 'group seek'%s", "");
        }
        if (!s_position_valid(to, true)) {
            return s_usage("invalid --to '%s' (first, new, seq:N or time:DUR)", to);
        }
        kv[count++] = (tern_header_t){"to", to};
    } else if (strcmp(sub, "seek") == 0) {
        return s_usage("group seek needs --to %s", "first|new|seq:N|time:DUR");
    }
    if (s_flag(args, s_group_opts, "force") && strcmp(sub, "seek") == 0) {
        return s_usage("--force applies only to 'group delete' and 'group reset'%s", "");
    }
    char question[400];
    snprintf(question, sizeof question, "%s group '%s' of topic '%s'%s?",
             strcmp(sub, "delete") == 0 ? "Delete" : "Reset", kv[1].value, kv[0].value,
             strcmp(sub, "delete") == 0 ? " and all its state"
                                        : ": forget its pending, acks and DLQ");
    if (strcmp(sub, "seek") != 0 && !s_confirm(args, s_group_opts, question)) {
        return 1;
    }
    char op[32];
    snprintf(op, sizeof op, "group.%s", sub);
    return s_admin_print(args, op, kv, count, NULL);
}

static const s_opt_t s_dlq_opts[] = {
    {"group", true}, {"progress", false}, {"seq", true}, {"force", false}, {NULL, false}};

static int s_print_messages(const s_args_t *args, const json_t *doc);

static int s_cmd_dlq(const s_args_t *args) {
    static const char *const subs[] = {"list", "get", "replay", "purge", NULL};
    tern_header_t kv[3];
    int rc = s_group_args(args, s_dlq_opts, "dlq", subs, kv);
    if (rc) {
        return rc;
    }
    const char *sub = args->positional[0], *seq = s_value(args, s_dlq_opts, "seq");
    uint64_t n;
    if (seq && !s_parse_u64(seq, &n)) {
        return s_usage("invalid --seq '%s'", seq);
    }
    if (seq && strcmp(sub, "get") != 0 && strcmp(sub, "replay") != 0) {
        return s_usage("--seq applies only to 'dlq get' and 'dlq replay', not '%s'", sub);
    }
    if (s_flag(args, s_dlq_opts, "progress") && strcmp(sub, "replay") != 0) {
        return s_usage("--progress applies only to 'dlq replay'%s", "");
    }
    if (s_flag(args, s_dlq_opts, "force") && strcmp(sub, "purge") != 0) {
        return s_usage("--force applies only to 'dlq purge'%s", "");
    }
    size_t count = 2;
    if (seq) {
        kv[count++] = (tern_header_t){"seq", seq};
    }
    if (strcmp(sub, "list") == 0) {
        char empty[640];
        snprintf(empty, sizeof empty, "no messages in the DLQ of group %s on %s", kv[1].value,
                 kv[0].value);
        return s_admin_list(args, "dlq.list", kv, count, s_dlq_cols, empty);
    }
    if (strcmp(sub, "get") == 0) {
        json_t *doc = NULL;
        if (!seq) {
            return s_usage("dlq get needs --seq N%s", "");
        }
        rc = s_admin_call(args, "dlq.get", kv, count, NULL, &doc);
        return rc ? rc : s_print_messages(args, doc);
    }
    if (strcmp(sub, "purge") == 0) {
        char question[400];
        snprintf(question, sizeof question, "Remove every dead letter of group '%s' of topic '%s'?",
                 kv[1].value, kv[0].value);
        return s_confirm(args, s_dlq_opts, question)
                   ? s_admin_print(args, "dlq.purge", kv, count, NULL)
                   : 1;
    }
    s_progress_t progress = {.verb = "replaying", .key = "replayed"};
    return s_admin_run(args, "dlq.replay", kv, count, NULL,
                       s_progress_want(args, s_flag(args, s_dlq_opts, "progress"), &progress));
}

//  ---------------------------------------------------------------------------
//  get, view: stored messages, not consumed

//  Unix ns NS as an ISO 8601 UTC time with milliseconds into BUF.
static const char *s_iso_time(uint64_t ns, char *buf, size_t cap) {
    return tern_units_format_time(ns / 1000000ull, buf, cap);
}

static uint64_t s_json_u64(const json_t *obj, const char *key) {
    const json_t *v = json_get(obj, key);
    return v && v->kind == JSON_NUMBER ? strtoull(v->text, NULL, 10) : 0;
}

static const char *s_json_text(const json_t *obj, const char *key) {
    const json_t *v = json_get(obj, key);
    return v && v->kind == JSON_STRING && v->text[0] ? v->text : "-";
}

//  One message object of msg.get / msg.view / dlq.get as a text block.
static void s_print_message_text(const json_t *m) {
    char when[48];
    printf("topic     %s\nseq       %llu\nmsg_id    %llu\n", s_json_text(m, "topic"),
           (unsigned long long)s_json_u64(m, "seq"), (unsigned long long)s_json_u64(m, "msg_id"));
    printf("time      %s\n", s_iso_time(s_json_u64(m, "timestamp_ns"), when, sizeof when));
    uint64_t expire = s_json_u64(m, "expire_at_ns");
    printf("expires   %s\n", expire ? s_iso_time(expire, when, sizeof when) : "never");
    printf("priority  %llu\ntrace_id  %s\norigin    %s\n",
           (unsigned long long)s_json_u64(m, "priority"), s_json_text(m, "trace_id"),
           s_json_text(m, "origin"));
    printf("producer  %s", s_json_text(m, "producer"));
    if (s_json_u64(m, "producer_seq")) {
        printf(" (seq %llu)", (unsigned long long)s_json_u64(m, "producer_seq"));
    }
    printf("\nkey       %s\n", s_json_text(m, "key"));
    if (json_get(m, "reason")) {
        printf("dead      %s after %llu deliveries, at %s\n", s_json_text(m, "reason"),
               (unsigned long long)s_json_u64(m, "delivery_count"),
               s_iso_time(s_json_u64(m, "dead_at_ms") * 1000000ull, when, sizeof when));
    }
    const json_t *headers = json_get(m, "headers");
    for (size_t i = 0; headers && headers->kind == JSON_OBJECT && i < headers->count; i++) {
        char *cell = s_cell(NULL, headers->items[i]);
        printf("header    %s: %s\n", headers->keys[i], cell);
        free(cell);
    }
    const json_t *data = json_get(m, "data");
    const json_t *b64 = json_get(m, "data_b64");
    printf("size      %llu B%s\n\n", (unsigned long long)s_json_u64(m, "size"),
           json_get(m, "truncated") ? " (only the start fits one reply: shown truncated)" : "");
    if (data && data->kind == JSON_STRING) {
        fwrite(data->text, 1, data->text_len, stdout);
    } else if (b64 && b64->kind == JSON_STRING) {
        printf("base64:%s", b64->text);
    }
    printf("\n");
}

//  Prints DOC (a message object or an array of them) and destroys it.
static int s_print_messages(const s_args_t *args, const json_t *doc) {
    size_t count = doc->kind == JSON_ARRAY ? doc->count : 1;
    tern_json_t b;
    tern_json_init(&b);
    for (size_t i = 0; i < count; i++) {
        const json_t *m = doc->kind == JSON_ARRAY ? doc->items[i] : doc;
        if (args->json) {
            tern_json_reset(&b);
            json_write(&b, m);
            s_print_line(&b);
        } else {
            printf("%s", i ? "\n" : "");
            s_print_message_text(m);
        }
    }
    fflush(stdout);
    tern_json_free(&b);
    json_t *owned = (json_t *)doc;
    json_destroy(&owned);
    return 0;
}

static int s_cmd_get(const s_args_t *args) {
    uint64_t seq;
    if (args->positional_count != 2) {
        return s_usage("get needs TOPIC and SEQ%s", "");
    }
    if (!s_parse_u64(args->positional[1], &seq) || seq == 0) {
        return s_usage("invalid SEQ '%s' (1 or more)", args->positional[1]);
    }
    tern_header_t kv[2] = {{"topic", args->positional[0]}, {"seq", args->positional[1]}};
    json_t *doc = NULL;
    int rc = s_admin_call(args, "msg.get", kv, 2, NULL, &doc);
    return rc ? rc : s_print_messages(args, doc);
}

static const s_opt_t s_view_opts[] = {{"from", true}, {"count", true}, {NULL, false}};

static int s_cmd_view(const s_args_t *args) {
    if (args->positional_count != 1) {
        return s_usage("view needs exactly one TOPIC%s", "");
    }
    const char *from = s_value(args, s_view_opts, "from");
    const char *text = s_value(args, s_view_opts, "count");
    uint64_t count = 10;
    if (text && (!s_parse_u64(text, &count) || count == 0)) {
        return s_usage("invalid --count '%s'", text);
    }
    if (from && !s_position_valid(from, false)) {
        return s_usage("invalid --from '%s' (first, seq:N or time:DUR)", from);
    }
    //  The broker answers at most 1000 messages (or ~4 MiB) per request: ask
    //  again from after the last one until COUNT are printed or none is left.
    char where[48], number[24];
    for (uint64_t printed = 0; printed < count;) {
        tern_header_t kv[3] = {{"topic", args->positional[0]}, {"count", number}, {"from", from}};
        snprintf(number, sizeof number, "%llu",
                 (unsigned long long)(count - printed < 1000 ? count - printed : 1000));
        json_t *doc = NULL;
        int rc = s_admin_call(args, "msg.view", kv, from ? 3 : 2, NULL, &doc);
        if (rc) {
            return rc;
        }
        size_t got = doc->kind == JSON_ARRAY ? doc->count : 0;
        if (got && printed && !args->json) {
            printf("\n");
        }
        uint64_t last = got ? s_json_u64(doc->items[got - 1], "seq") : 0;
        s_print_messages(args, doc);
        if (got == 0) {
            if (printed == 0 && !args->json) {
                printf("no messages on %s%s%s\n", args->positional[0], from ? " from " : "",
                       from ? from : "");
            }
            break;
        }
        printed += got;
        snprintf(where, sizeof where, "seq:%llu", (unsigned long long)last + 1);
        from = where;
    }
    return 0;
}

//  ---------------------------------------------------------------------------
//  pub

static const s_opt_t s_pub_opts[] = {{"count", true},  {"producer", true}, {"seq", true},
                                     {"ttl", true},    {"class", true},    {"priority", true},
                                     {"key", true},    {"size", true},     {"header", true},
                                     {"quiet", false}, {NULL, false}};

#define S_PUB_RING 65536 //  acks tracked past the floor: the largest window

typedef struct {
    const char *topic;            //  for the JSON lines
    bool json;                    //  --json
    bool quiet;                   //  --quiet: no line per message, no summary
    atomic_long acked;            //  completions with TERN_OK
    atomic_long failed;           //  completions with an error
    atomic_long duplicates;       //  acknowledged as already stored
    atomic_llong progress_ms;     //  time of the last completion
    atomic_bool closing;          //  giving up: do not report each unsent message
    uint64_t floor;               //  lowest producer_seq not acknowledged (I/O thread)
    uint8_t ring[S_PUB_RING / 8]; //  acked producer_seqs past FLOOR, bit seq % S_PUB_RING
} s_pub_state_t;

//  Records the ack of SEQ and moves the floor past every acked seq. The
//  window keeps every seq in flight within S_PUB_RING of the floor.
static void s_pub_mark(s_pub_state_t *state, uint64_t seq) {
    if (seq < state->floor || seq - state->floor >= S_PUB_RING) {
        return;
    }
    state->ring[(seq % S_PUB_RING) / 8] |= (uint8_t)(1u << (seq % 8));
    for (uint64_t f = state->floor; state->ring[(f % S_PUB_RING) / 8] & (1u << (f % 8));
         f = ++state->floor) {
        state->ring[(f % S_PUB_RING) / 8] &= (uint8_t) ~(1u << (f % 8));
    }
}

static void s_pub_done(const tern_pub_result_t *result, void *arg) {
    s_pub_state_t *state = arg;
    atomic_store(&state->progress_ms, s_now_ms());
    if (result->code != TERN_OK) {
        atomic_fetch_add(&state->failed, 1);
        if (atomic_load(&state->closing)) {
            return;
        }
        fprintf(stderr, "ternctl: pub: message with producer_seq %llu refused: %s (%s)\n",
                (unsigned long long)result->producer_seq,
                result->reason[0] ? result->reason : tern_strerror(result->code),
                tern_errname(result->code));
        return;
    }
    atomic_fetch_add(&state->acked, 1);
    atomic_fetch_add(&state->duplicates, result->duplicate ? 1 : 0);
    s_pub_mark(state, result->producer_seq);
    if (state->quiet) {
        return;
    }
    if (state->json) {
        tern_json_t b;
        tern_json_init(&b);
        tern_json_raw(&b, "{");
        tern_json_key_str(&b, "topic", state->topic);
        tern_json_key_u64(&b, "msg_id", result->msg_id);
        tern_json_key_u64(&b, "seq", result->seq);
        tern_json_key_bool(&b, "duplicate", result->duplicate);
        tern_json_raw(&b, "}");
        s_print_line(&b);
        tern_json_free(&b);
    } else {
        printf("seq=%llu msg_id=%llu%s\n", (unsigned long long)result->seq,
               (unsigned long long)result->msg_id, result->duplicate ? " duplicate" : "");
        fflush(stdout);
    }
}

//  Builds message number N: DATA with {n} replaced, padded to SIZE.
static void s_pub_payload(tern_json_t *b, const char *data, uint64_t n, uint64_t size) {
    tern_json_reset(b);
    char number[24];
    int nlen = snprintf(number, sizeof number, "%llu", (unsigned long long)n);
    for (const char *p = data; p && *p;) {
        const char *hit = strstr(p, "{n}");
        if (!hit) {
            tern_json_raw(b, p);
            break;
        }
        tern_json_rawn(b, p, (size_t)(hit - p));
        tern_json_rawn(b, number, (size_t)nlen);
        p = hit + 3;
    }
    static const char alphabet[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    char chunk[256];
    while (b->len < size) {
        uint8_t random[sizeof chunk];
        size_t want = size - b->len < sizeof chunk ? size - b->len : sizeof chunk;
        if (getrandom(random, want, 0) != (ssize_t)want) {
            memset(random, 0, want);
        }
        for (size_t i = 0; i < want; i++) {
            chunk[i] = alphabet[random[i] % (sizeof alphabet - 1)];
        }
        tern_json_rawn(b, chunk, want);
    }
}

//  What `pub` was asked to do, from its command line.
typedef struct {
    const char *topic;                  //  TOPIC
    const char *data;                   //  DATA, or NULL (stdin or --size)
    uint64_t count;                     //  --count (default 1)
    bool count_given;                   //  --count was given
    uint64_t seq;                       //  --seq, 0 = from 1
    uint64_t size;                      //  --size, 0 = none
    int64_t timeout;                    //  --timeout without progress, ms
    const char *producer;               //  --producer or NULL
    const char *server;                 //  the endpoint(s), for messages
    bool quiet;                         //  --quiet
    tern_pub_options_t msg;             //  the message options
    tern_header_t headers[MAX_HEADERS]; //  --header pairs
    char *keys[MAX_HEADERS];            //  their keys, owned
    size_t header_count;                //  how many
} s_pub_args_t;

static void s_pub_args_free(s_pub_args_t *p) {
    for (size_t i = 0; i < p->header_count; i++) {
        free(p->keys[i]);
    }
    p->header_count = 0;
}

//  The options of one message: --ttl, --class, --priority, --key, --header.
static int s_pub_parse_msg(const s_args_t *args, s_pub_args_t *p) {
    const s_opt_t *o = s_pub_opts;
    const char *text;
    const char *why = NULL;
    uint64_t v;
    if ((text = s_value(args, o, "ttl"))) {
        if (tern_units_parse_duration(text, &v, &why) != TERN_OK || v == 0 || v > UINT32_MAX) {
            return s_bad_value("ttl", text, why ? why : "from 1ms to 49d");
        }
        p->msg.ttl_ms = (uint32_t)v;
    }
    if ((text = s_value(args, o, "class"))) {
        static const char *const classes[] = {"instant", "business", "sync"};
        static const int values[] = {TERN_CLASS_INSTANT, TERN_CLASS_BUSINESS, TERN_CLASS_SYNC};
        if (p->msg.ttl_ms) {
            return s_usage("--ttl and --class exclude each other%s", "");
        }
        int found = -1;
        for (int i = 0; i < 3; i++) {
            found = strcmp(text, classes[i]) == 0 ? i : found;
        }
        if (found < 0) {
            return s_usage("invalid --class '%s' (instant, business or sync)", text);
        }
        p->msg.ttl_class = values[found];
    }
    if ((text = s_value(args, o, "priority"))) {
        if (!s_parse_u64(text, &v) || v > 9) {
            return s_usage("invalid --priority '%s' (0..9)", text);
        }
        p->msg.priority = (int)v;
    }
    p->msg.key = s_value(args, o, "key");
    for (size_t i = 0; i < args->header_count; i++) {
        const char *eq = strchr(args->headers[i], '=');
        if (!eq || eq == args->headers[i]) {
            return s_usage("invalid --header '%s' (K=V)", args->headers[i]);
        }
        p->keys[i] = strndup(args->headers[i], (size_t)(eq - args->headers[i]));
        p->headers[i] = (tern_header_t){p->keys[i], eq + 1};
        p->header_count++;
    }
    p->msg.headers = p->headers;
    p->msg.header_count = p->header_count;
    return 0;
}

//  Reads pub's command line into P. Returns 0 or EXIT_USAGE (printed).
static int s_pub_parse(const s_args_t *args, s_pub_args_t *p) {
    const s_opt_t *o = s_pub_opts;
    if (args->positional_count < 1 || args->positional_count > 2) {
        return s_usage("pub needs TOPIC and at most one DATA%s", "");
    }
    p->topic = args->positional[0];
    p->data = args->positional_count == 2 ? args->positional[1] : NULL;
    p->count = 1;
    const char *text;
    if ((text = s_value(args, o, "count")) && (!s_parse_u64(text, &p->count) || p->count == 0)) {
        return s_usage("invalid --count '%s'", text);
    }
    p->count_given = text != NULL;
    if ((text = s_value(args, o, "seq")) && (!s_parse_u64(text, &p->seq) || p->seq == 0)) {
        return s_usage("invalid --seq '%s' (1 or more)", text);
    }
    const char *why = NULL;
    if ((text = s_value(args, o, "size")) &&
        tern_units_parse_size(text, &p->size, &why) != TERN_OK) {
        return s_bad_value("size", text, why);
    }
    if (p->size > 64ull * 1024 * 1024) {
        return s_usage("--size '%s' is too large (64 MiB at most)", text);
    }
    p->timeout = s_timeout_ms(args, 30000);
    if (p->timeout < 0) {
        return s_bad_timeout(args);
    }
    p->producer = s_value(args, o, "producer");
    p->server = s_server(args);
    p->quiet = s_flag(args, o, "quiet");
    tern_pub_options_init(&p->msg);
    p->msg.topic = p->topic;
    return s_pub_parse_msg(args, p);
}

//  The run's outcome, filled by s_pub_send and s_pub_wait.
typedef struct {
    uint64_t sent;      //  messages handed to the client
    bool stopped;       //  sending stopped early (refused, or the timeout ran out)
    int rc;             //  exit status so far
    int64_t start_ms;   //  when the first message went out
    int64_t end_ms;     //  when the last acknowledgement came
    char producer[256]; //  the producer id used
} s_pub_run_t;

//  Publishes every message (DATA --count times, or stdin's lines).
static void s_pub_send(tern_client_t *client, s_pub_args_t *p, s_pub_state_t *state,
                       s_pub_run_t *run) {
    bool from_stdin = !p->data && p->size == 0;
    tern_json_t payload;
    tern_json_init(&payload);
    char *line = NULL;
    size_t line_cap = 0;
    for (uint64_t n = 1; !run->stopped; n++) {
        if (from_stdin) {
            ssize_t len = p->count_given && n > p->count ? -1 : getline(&line, &line_cap, stdin);
            if (len < 0) {
                break;
            }
            while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) {
                line[--len] = 0;
            }
            tern_json_reset(&payload);
            tern_json_rawn(&payload, line, (size_t)len);
        } else if (n > p->count) {
            break;
        } else {
            s_pub_payload(&payload, p->data, n, p->size);
        }
        p->msg.payload = payload.data;
        p->msg.size = payload.len;
        while (true) {
            int prc = tern_publish_async(client, &p->msg, s_pub_done, state);
            if (prc == TERN_OK) {
                run->sent++;
                break;
            }
            if (prc != TERN_EBUSY) {
                char what[64];
                snprintf(what, sizeof what, "pub: message %llu", (unsigned long long)n);
                run->rc = s_fail(what, prc);
                run->stopped = true;
                break;
            }
            if (p->timeout > 0 && s_now_ms() - atomic_load(&state->progress_ms) > p->timeout) {
                fprintf(stderr, "ternctl: pub: no acknowledgement from %s for %lld ms\n", p->server,
                        (long long)p->timeout);
                run->rc = 1;
                run->stopped = true;
                break;
            }
        }
    }
    free(line);
    tern_json_free(&payload);
}

//  Waits for the acknowledgements still due, restarting the clock on each.
static void s_pub_wait(tern_client_t *client, const s_pub_args_t *p, s_pub_state_t *state,
                       s_pub_run_t *run) {
    while (tern_client_inflight(client) > 0) {
        if (tern_flush(client, 100) == TERN_OK) {
            break;
        }
        if (p->timeout > 0 && s_now_ms() - atomic_load(&state->progress_ms) > p->timeout) {
            fprintf(stderr, "ternctl: pub: %zu message(s) not acknowledged by %s within %lld ms\n",
                    tern_client_inflight(client), p->server, (long long)p->timeout);
            run->rc = 1;
            break;
        }
    }
    run->end_ms = s_now_ms();
}

//  "110k" for 110123.4 messages a second.
static void s_pub_rate(double rate, char *buf, size_t len) {
    if (rate >= 1e6) {
        snprintf(buf, len, "%.1fM", rate / 1e6);
    } else if (rate >= 1e4) {
        snprintf(buf, len, "%.0fk", rate / 1e3);
    } else if (rate >= 1e3) {
        snprintf(buf, len, "%.1fk", rate / 1e3);
    } else {
        snprintf(buf, len, "%.0f", rate);
    }
}

//  The summary on stderr; on failure, what was acknowledged and how to go on.
static void s_pub_report(const s_pub_args_t *p, const s_pub_state_t *state,
                         const s_pub_run_t *run) {
    long acked = atomic_load(&state->acked);
    long dups = atomic_load(&state->duplicates);
    if (run->rc == 0) {
        if (!p->quiet) {
            double secs = (double)(run->end_ms - run->start_ms) / 1000.0;
            char rate[32];
            s_pub_rate(secs > 0 ? (double)acked / secs : (double)acked * 1000.0, rate, sizeof rate);
            fprintf(stderr,
                    secs < 0.1 ? "published %ld in %.3f s (%s msg/s)"
                               : "published %ld in %.2f s (%s msg/s)",
                    acked, secs, rate);
            fprintf(stderr, dups ? ", %ld duplicate(s) already stored\n" : "\n", dups);
        }
        return;
    }
    uint64_t first = p->seq ? p->seq : 1;
    unsigned long long next = (unsigned long long)(state->floor - first + 1);
    fprintf(stderr, "ternctl: pub: %ld of %llu sent message(s) acknowledged", acked,
            (unsigned long long)run->sent);
    fprintf(stderr, next > 1 ? ", all before message %llu\n" : "\n", next);
    fprintf(stderr,
            "ternctl: pub: resume from message %llu with: --producer %s --seq %llu\n"
            "ternctl: pub: (the broker drops a repeated seq only among a producer's last 1024\n"
            "ternctl: pub: and for 2 min: re-running from the start stores duplicates)\n",
            next, run->producer, (unsigned long long)state->floor);
}

static int s_cmd_pub(const s_args_t *args) {
    s_pub_args_t p = {0};
    int rc = s_pub_parse(args, &p);
    if (rc) {
        s_pub_args_free(&p);
        return rc;
    }
    tern_client_options_t options;
    tern_client_options_init(&options);
    options.name = "ternctl";
    options.heartbeat_ms = 2000;
    options.connect_timeout_ms = 2000;
    options.backoff_max_ms = 1000;
    options.producer_id = p.producer;
    options.producer_seq_start = p.seq ? p.seq : 1;
    options.publish_block_ms = 100;
    ternctl_curve_options(&options);
    tern_client_t *client = tern_client_new(s_server(args), &options);
    int crc =
        client ? tern_client_wait_connected(client, p.timeout > 0 ? (int)p.timeout : -1) : TERN_OK;
    if (!client || crc != TERN_OK) {
        s_pub_args_free(&p);
        tern_client_destroy(&client);
        char what[300];
        snprintf(what, sizeof what, "pub: cannot reach %s", s_server(args));
        return crc ? s_fail(what, crc) : s_client_usage();
    }
    static s_pub_state_t state; //  8 KiB of ack bits: not on the stack
    memset(&state, 0, sizeof state);
    state.topic = p.topic;
    state.json = args->json;
    state.quiet = p.quiet;
    state.floor = options.producer_seq_start;
    atomic_store(&state.progress_ms, s_now_ms());
    s_pub_run_t run = {.start_ms = s_now_ms()};
    snprintf(run.producer, sizeof run.producer, "%s", tern_client_producer(client));
    if (!p.data && p.size == 0 && isatty(STDIN_FILENO)) {
        fprintf(stderr, "reading messages from stdin, one per line; Ctrl-D to end\n");
    }
    s_pub_send(client, &p, &state, &run);
    s_pub_wait(client, &p, &state, &run);
    atomic_store(&state.closing, true);
    tern_client_destroy(&client); //  joins the I/O thread: STATE is final
    if (run.rc == 0 && atomic_load(&state.failed) > 0) {
        run.rc = 1;
    }
    s_pub_report(&p, &state, &run);
    s_pub_args_free(&p);
    return run.rc;
}

//  ---------------------------------------------------------------------------
//  sub

static const s_opt_t s_sub_opts[] = {{"group", true},   {"from", true},  {"count", true},
                                     {"no-ack", false}, {"nack", false}, {"term", false},
                                     {"follow", false}, {"wait", false}, {NULL, false}};

//  Set by SIGINT / SIGTERM: sub stops, acks what it printed, exits 0.
static volatile sig_atomic_t s_interrupted;

static void s_on_signal(int sig) {
    (void)sig;
    s_interrupted = 1;
}

static void s_print_message(const tern_message_t *msg, bool json, tern_json_t *b) {
    const uint8_t *data = tern_message_data(msg);
    size_t size = tern_message_size(msg);
    bool text = tern_json_utf8_valid(data, size);
    tern_json_reset(b);
    if (json) {
        tern_json_raw(b, "{");
        tern_json_key_str(b, "topic", tern_message_topic(msg));
        tern_json_key_u64(b, "seq", tern_message_seq(msg));
        tern_json_key_u64(b, "msg_id", tern_message_id(msg));
        tern_json_key_str(b, "producer", tern_message_producer(msg));
        tern_json_key_u64(b, "producer_seq", tern_message_producer_seq(msg));
        tern_json_key_u64(b, "priority", (uint64_t)tern_message_priority(msg));
        tern_json_key_u64(b, "delivery_count", tern_message_delivery_count(msg));
        tern_json_key_str(b, "origin", tern_message_origin(msg));
        tern_json_key_u64(b, "timestamp_ns", tern_message_timestamp_ns(msg));
        tern_json_key_str(b, "key", tern_message_key(msg));
        tern_json_key_str(b, "trace_id", tern_message_trace_id(msg));
        tern_json_key(b, "headers");
        tern_json_raw(b, "{");
        for (size_t i = 0; i < tern_message_header_count(msg); i++) {
            const char *key, *value;
            tern_message_header(msg, i, &key, &value);
            tern_json_key_str(b, key, value);
        }
        tern_json_raw(b, "}");
        tern_json_key_bytes(b, "data", data, size);
        tern_json_raw(b, "}");
    } else {
        char prefix[320];
        int n = snprintf(prefix, sizeof prefix, "[%s seq=%llu] ", tern_message_topic(msg),
                         (unsigned long long)tern_message_seq(msg));
        tern_json_rawn(b, prefix, (size_t)n);
        if (text) {
            tern_json_rawn(b, (const char *)data, size);
        } else {
            tern_json_raw(b, "base64:");
            tern_json_base64(b, data, size);
        }
    }
    s_print_line(b);
}

//  Reads --from into OPTIONS. Returns 0 or EXIT_USAGE (printed).
static int s_sub_from(const char *text, tern_sub_options_t *options) {
    uint64_t v;
    const char *why = NULL;
    if (strcmp(text, "first") == 0) {
        options->start = TERN_FROM_FIRST;
    } else if (strcmp(text, "new") == 0) {
        options->start = TERN_FROM_NEW;
    } else if (strncmp(text, "seq:", 4) == 0 && s_parse_u64(text + 4, &v)) {
        options->start = TERN_FROM_SEQ;
        options->start_value = v;
    } else if (strncmp(text, "time:", 5) == 0 &&
               tern_units_parse_duration(text + 5, &v, &why) == TERN_OK) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t now_ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
        uint64_t ago_ns = v > UINT64_MAX / 1000000ull ? UINT64_MAX : v * 1000000ull;
        options->start = TERN_FROM_TIME;
        options->start_value = ago_ns < now_ns ? now_ns - ago_ns : 1;
    } else {
        return s_bad_value("from", text, why ? why : "first, new, seq:N or time:DUR");
    }
    return 0;
}

//  Before subscribing to a plain topic: asks the broker for its groups, to
//  refuse a missing topic (unless --wait) and to warn that --from does not
//  move a group that exists. Returns 0 or 1 (printed). Not with a CURVE
//  certificate: the key's role may not allow admin queries, and each refused
//  one would count as an auth denial; a broker that refuses anyway skips both.
static int s_sub_check(const s_args_t *args, tern_client_t *client, const char *topic,
                       const tern_sub_options_t *options, int timeout_ms) {
    const s_opt_t *o = s_sub_opts;
    bool from = s_value(args, o, "from") != NULL;
    bool wait = s_flag(args, o, "wait");
    const char *cert = getenv("TERN_CERT");
    if (strpbrk(topic, "*>") || (wait && !(from && options->group)) || (cert && *cert)) {
        return 0; //  a pattern has no one topic to look at
    }
    char *reply = NULL;
    tern_header_t kv[1] = {{"topic", topic}};
    int rc = tern_admin(client, "groups", kv, 1, &reply, timeout_ms);
    if (rc == TERN_ETIMEOUT && !tern_client_connected(client)) {
        char what[320]; //  no second wait in tern_subscribe
        snprintf(what, sizeof what, "sub: cannot reach %s", s_server(args));
        return s_fail(what, rc);
    }
    if (rc == TERN_ENOTFOUND && !wait) {
        fprintf(stderr,
                "ternctl: sub: no such topic '%s' (--wait subscribes anyway and waits for it)\n",
                topic);
        return 1;
    }
    json_t *doc = rc == TERN_OK ? json_parse(reply, strlen(reply)) : NULL;
    for (size_t i = 0; from && options->group && doc && doc->kind == JSON_ARRAY && i < doc->count;
         i++) {
        const json_t *name = json_get(doc->items[i], "group");
        if (name && name->kind == JSON_STRING && strcmp(name->text, options->group) == 0) {
            fprintf(stderr,
                    "ternctl: sub: warning: group '%s' already exists on '%s'; --from is "
                    "ignored (it only places a new group)\n",
                    options->group, topic);
        }
    }
    json_destroy(&doc);
    free(reply);
    return 0;
}

//  Prints and settles messages until --count, the idle --timeout (never
//  with --follow or --timeout 0) or SIGINT / SIGTERM. Returns the exit code.
static int s_sub_loop(const s_args_t *args, tern_subscription_t *sub, uint64_t count,
                      int64_t timeout) {
    const s_opt_t *o = s_sub_opts;
    bool forever = timeout == 0 || s_flag(args, o, "follow");
    tern_json_t b;
    tern_json_init(&b);
    uint64_t received = 0;
    int64_t last_ms = s_now_ms();
    int rc = 0;
    while ((!count || received < count) && !s_interrupted) {
        //  Short waits, so that a signal is noticed within 200 ms.
        int64_t left = forever ? 200 : timeout - (s_now_ms() - last_ms);
        if (left <= 0) {
            break;
        }
        tern_message_t *msg = NULL;
        int nrc = tern_subscription_next(sub, (int)(left < 200 ? left : 200), &msg);
        if (nrc == TERN_ETIMEOUT) {
            continue;
        }
        if (nrc != TERN_OK) {
            rc = s_fail("sub", nrc);
            break;
        }
        s_print_message(msg, args->json, &b);
        if (s_flag(args, o, "nack")) {
            tern_message_nack(msg, -1);
        } else if (s_flag(args, o, "term")) {
            tern_message_term(msg, NULL);
        } else if (!s_flag(args, o, "no-ack")) {
            tern_message_ack(msg, false);
        }
        tern_message_destroy(&msg);
        received++;
        last_ms = s_now_ms();
    }
    tern_json_free(&b);
    return rc;
}

static int s_cmd_sub(const s_args_t *args) {
    const s_opt_t *o = s_sub_opts;
    if (args->positional_count != 1) {
        return s_usage("sub needs exactly one TOPIC%s", "");
    }
    const char *pattern = args->positional[0];
    tern_sub_options_t options;
    tern_sub_options_init(&options);
    options.group = s_value(args, o, "group");
    //  Like `nats sub`, a subscription without a group shows what comes next.
    options.start = options.group ? TERN_FROM_FIRST : TERN_FROM_NEW;
    uint64_t count = 0;
    const char *text;
    if ((text = s_value(args, o, "count")) && (!s_parse_u64(text, &count) || count == 0)) {
        return s_usage("invalid --count '%s'", text);
    }
    if ((text = s_value(args, o, "from")) && s_sub_from(text, &options) != 0) {
        return EXIT_USAGE;
    }
    int modes = s_flag(args, o, "no-ack") + s_flag(args, o, "nack") + s_flag(args, o, "term");
    if (modes > 1) {
        return s_usage("--no-ack, --nack and --term exclude each other%s", "");
    }
    if (count && count <= 1000) {
        options.credit = (uint32_t)count;
    }
    int64_t timeout = s_timeout_ms(args, 5000);
    if (timeout < 0) {
        return s_bad_timeout(args);
    }
    struct sigaction action = {.sa_handler = s_on_signal};
    sigemptyset(&action.sa_mask);
    sigaction(SIGINT, &action, NULL);
    sigaction(SIGTERM, &action, NULL);
    //  Connecting and subscribing get at least 5 s even with a short --timeout.
    int connect_ms = timeout > 5000 ? (int)timeout : 5000;
    tern_client_t *client = s_client(args, connect_ms, NULL, 0);
    if (!client) {
        return s_client_usage();
    }
    tern_subscription_t *sub = NULL;
    int rc = s_sub_check(args, client, pattern, &options, connect_ms);
    int src = rc ? TERN_OK : tern_subscribe(client, pattern, &options, NULL, NULL, &sub);
    if (src != TERN_OK) {
        char what[320];
        if (src == TERN_ETIMEOUT && !tern_client_connected(client)) {
            snprintf(what, sizeof what, "sub: cannot reach %s", s_server(args));
        } else {
            snprintf(what, sizeof what, "sub %s", pattern);
        }
        rc = s_fail(what, src);
    } else if (rc == 0) {
        rc = s_sub_loop(args, sub, count, timeout);
    }
    //  Destroy sends the queued acks, then BYE (the rest returns to the group).
    tern_client_destroy(&client);
    return rc;
}

//  ---------------------------------------------------------------------------
//  main

typedef struct {
    const char *name;                 //  command word
    int (*run)(const s_args_t *args); //  implementation
    const s_opt_t *opts;              //  its options
    const char *help;                 //  its manual
} s_command_t;

static const s_command_t s_commands[] = {{"status", s_cmd_status, NULL, NULL},
                                         {"pub", s_cmd_pub, s_pub_opts, NULL},
                                         {"sub", s_cmd_sub, s_sub_opts, NULL},
                                         {"topics", s_cmd_topics, NULL, NULL},
                                         {"topic", s_cmd_topic, s_topic_opts, NULL},
                                         {"groups", s_cmd_groups, NULL, NULL},
                                         {"group", s_cmd_group, s_group_opts, NULL},
                                         {"dlq", s_cmd_dlq, s_dlq_opts, NULL},
                                         {"get", s_cmd_get, NULL, NULL},
                                         {"view", s_cmd_view, s_view_opts, NULL},
                                         {NULL, NULL, NULL, NULL}};

extern const char *ternctl_peers_help; //  tools/ternctl_peers.c
extern const char *ternctl_keys_help;  //  tools/ternctl_keys.c

const char *ternctl_audit_help(const char *command); //  tools/ternctl_audit.c

static const char *s_help_for(const char *command) {
    if (strcmp(command, "audit") == 0 || strcmp(command, "trace") == 0) {
        return ternctl_audit_help(command);
    }
    if (strcmp(command, "status") == 0) {
        return s_help_status;
    }
    if (strcmp(command, "pub") == 0) {
        return s_help_pub;
    }
    if (strcmp(command, "sub") == 0) {
        return s_help_sub;
    }
    if (strcmp(command, "topics") == 0) {
        return s_help_topics;
    }
    if (strcmp(command, "topic") == 0) {
        return s_help_topic;
    }
    if (strcmp(command, "groups") == 0) {
        return s_help_groups;
    }
    if (strcmp(command, "dlq") == 0) {
        return s_help_dlq;
    }
    if (strcmp(command, "group") == 0) {
        return s_help_group;
    }
    if (strcmp(command, "get") == 0 || strcmp(command, "view") == 0) {
        return s_help_get;
    }
    if (strcmp(command, "peers") == 0) {
        return ternctl_peers_help;
    }
    if (strcmp(command, "keys") == 0) {
        return ternctl_keys_help;
    }
    return NULL;
}

int ternctl_bench_main(int argc, char **argv); //  tools/ternctl_bench.c
int ternctl_audit_main(int argc, char **argv); //  tools/ternctl_audit.c
int ternctl_trace_main(int argc, char **argv); //  tools/ternctl_audit.c
int ternctl_peers_main(int argc, char **argv); //  tools/ternctl_peers.c
int ternctl_keys_main(int argc, char **argv);  //  tools/ternctl_keys.c
int ternctl_keys_global(int argc, char **argv);

int main(int argc, char **argv) {
    argc = ternctl_keys_global(argc, argv); //  --cert, --server-key -> environment
    //  Find the command: the first word that is neither a global option nor
    //  the value of one.
    int at = -1;
    for (int i = 1; i < argc; i++) {
        const char *w = argv[i];
        if (strcmp(w, "-s") == 0 || strcmp(w, "--server") == 0 || strcmp(w, "--timeout") == 0) {
            i++;
            continue;
        }
        if (w[0] == '-') {
            continue;
        }
        at = i;
        break;
    }
    if (at < 0) {
        //  Only global options (or nothing).
        for (int i = 1; i < argc; i++) {
            if (strcmp(argv[i], "--version") == 0) {
                printf("ternctl %s\n", tern_version(NULL, NULL, NULL));
                return 0;
            }
        }
        s_args_t args = {0};
        argc--;
        argv++;
        if (s_parse(argc, argv, NULL, &args)) {
            return EXIT_USAGE;
        }
        if (args.help) {
            fputs(s_help_main, stdout);
            return 0;
        }
        fputs(s_help_main, stderr);
        return EXIT_USAGE;
    }
    const char *name = argv[at];
    if (strcmp(name, "bench") == 0) {
        return ternctl_bench_main(argc, argv);
    }
    if (strcmp(name, "audit") == 0) {
        return ternctl_audit_main(argc, argv);
    }
    if (strcmp(name, "trace") == 0) {
        return ternctl_trace_main(argc, argv);
    }
    if (strcmp(name, "peers") == 0) {
        return ternctl_peers_main(argc, argv);
    }
    if (strcmp(name, "keys") == 0) {
        return ternctl_keys_main(argc, argv);
    }
    if (strcmp(name, "help") == 0) {
        const char *help = at + 1 < argc ? s_help_for(argv[at + 1]) : s_help_main;
        if (!help) {
            s_command = "";
            return s_usage("unknown command '%s'", argv[at + 1]);
        }
        fputs(help, stdout);
        return 0;
    }
    const s_command_t *command = NULL;
    for (const s_command_t *c = s_commands; c->name; c++) {
        if (strcmp(c->name, name) == 0) {
            command = c;
        }
    }
    if (!command) {
        return s_usage("unknown command '%s'", name);
    }
    static char command_label[32];
    snprintf(command_label, sizeof command_label, "%s ", name);
    s_command = command_label;
    //  Parse everything except the command word itself.
    char **rest = malloc((size_t)argc * sizeof(char *));
    if (!rest) {
        return 1;
    }
    int rest_count = 0;
    for (int i = 1; i < argc; i++) {
        if (i != at) {
            rest[rest_count++] = argv[i];
        }
    }
    s_args_t args = {0};
    int rc = s_parse(rest_count, rest, command->opts, &args);
    free(rest);
    if (rc) {
        return rc;
    }
    if (args.help) {
        fputs(s_help_for(name), stdout);
        return 0;
    }
    return command->run(&args);
}

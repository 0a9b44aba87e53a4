/*  ternctl.c - the tern command line: status, pub/sub for humans, topics, groups, DLQ.

    ternctl is a thin shell over libtern (tern.h, plus protocol's
    tern_units.h for durations, sizes and times): every admin command is one tern_admin() call whose
   JSON reply is printed either as one JSON object per line (--json) or as aligned text; `pub` and
   `sub` use the publish window and a pull subscription. Its command line is a contract that outside
   tests depend on; docs/client.md is the reference. Exit status: 0 success, 1 failure (reason on
   stderr), 2 usage error.

   This file holds the help texts, the command table and main(); the shared
   command line and printing are in ternctl_cli.c (ternctl.h), and each
   command family in its own ternctl_<family>.c.
*/
#include "ternctl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  ---------------------------------------------------------------------------
//  Help texts (man-style)

static const char s_help_main[] =
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
    "    cluster [partitions|verify|handover]  the nodes and partitions of a cluster\n"
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

static const char s_help_status[] =
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

static const char s_help_pub[] =
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
    "    --json {\"topic\",\"msg_id\",\"seq\",\"duplicate\",\"producer_seq\"}; then a\n"
    "    summary on stderr: \"published 100000 in 0.91 s (110k msg/s)\".\n"
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

static const char s_help_sub[] =
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

static const char s_help_topics[] =
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

static const char s_help_topic[] =
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

static const char s_help_get[] =
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

static const char s_help_groups[] =
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

static const char s_help_group[] =
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

static const char s_help_dlq[] =
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

static const char s_help_cluster[] =
    "NAME\n"
    "    ternctl cluster - the nodes and partitions of a clustered DC\n"
    "\n"
    "SYNOPSIS\n"
    "    ternctl [-s ENDPOINT] [--json] cluster\n"
    "    ternctl [-s ENDPOINT] [--json] cluster partitions [--topic TOPIC]\n"
    "    ternctl [-s ENDPOINT] [--json] cluster verify\n"
    "    ternctl [-s ENDPOINT] cluster handover PARTITION --to NODE_ID\n"
    "\n"
    "DESCRIPTION\n"
    "    Any one node of the cluster answers; the others are found in its view\n"
    "    (docs/cluster.md). On a node without cluster/etcd every form fails:\n"
    "    \"not a cluster (cluster/etcd is not set)\".\n"
    "\n"
    "    cluster prints one row per node: node_id, dc, endpoint, state (up or\n"
    "    down), controller (true for the node that places partitions and fails\n"
    "    them over), leader_of and replica_of (how many partitions it leads and\n"
    "    holds a copy of).\n"
    "\n"
    "    cluster partitions prints one row per partition (with --topic only the\n"
    "    partition of TOPIC): partition, leader (node id, null without one),\n"
    "    epoch, replicas and isr (node ids; isr = the in-sync replicas), and\n"
    "    position, the leader's log position in its current epoch (each up\n"
    "    node is asked for the partitions it leads).\n"
    "\n"
    "    cluster verify asks every up replica of every partition for the topics\n"
    "    it holds and their last seq, then for a digest of each topic up to the\n"
    "    seq all replicas hold (records, message ids and dedup entries), and\n"
    "    compares them. One row per partition: partition, identical (true when\n"
    "    every digest matched), replicas (the nodes compared; a replica that is\n"
    "    down is named on stderr and skipped), position (the leader's), topics\n"
    "    (how many were compared) and differs (the topics whose copies differ).\n"
    "    Publishing while it runs is fine: only what every replica has is\n"
    "    compared.\n"
    "\n"
    "    cluster handover asks the cluster to make node NODE_ID the leader of\n"
    "    PARTITION; it must be a live in-sync replica (else TERN_EINVAL). The\n"
    "    change is asynchronous: watch it with cluster partitions. Prints\n"
    "    {\"partition\",\"to\",\"queued\"}.\n"
    "\n"
    "    The other commands also work given any node of a cluster: an operation\n"
    "    on one topic goes to the leader of its partition; topics lists every\n"
    "    topic once, as its leader holds it; trace asks every node.\n"
    "\n"
    "OPTIONS\n"
    "    --topic TOPIC    cluster partitions: only the partition of TOPIC\n"
    "    --to NODE_ID     cluster handover: the node to lead the partition\n"
    "\n"
    "EXIT STATUS\n"
    "    0 success; 1 failure (not a cluster, a node did not answer, or for\n"
    "    verify: some replicas differ); 2 usage error.\n";

//  ---------------------------------------------------------------------------
//  main

typedef struct {
    const char *name;                       //  command word
    int (*run)(const ternctl_args_t *args); //  implementation
    const ternctl_opt_t *opts;              //  its options
    const char *help;                       //  its manual
} s_command_t;

static const s_command_t s_commands[] = {
    {"status", ternctl_cmd_status, NULL, s_help_status},
    {"pub", ternctl_cmd_pub, ternctl_pub_opts, s_help_pub},
    {"sub", ternctl_cmd_sub, ternctl_sub_opts, s_help_sub},
    {"topics", ternctl_cmd_topics, NULL, s_help_topics},
    {"topic", ternctl_cmd_topic, ternctl_topic_opts, s_help_topic},
    {"groups", ternctl_cmd_groups, NULL, s_help_groups},
    {"group", ternctl_cmd_group, ternctl_group_opts, s_help_group},
    {"dlq", ternctl_cmd_dlq, ternctl_dlq_opts, s_help_dlq},
    {"get", ternctl_cmd_get, NULL, s_help_get},
    {"view", ternctl_cmd_view, ternctl_view_opts, s_help_get},
    {"cluster", ternctl_cmd_cluster, ternctl_cluster_opts, s_help_cluster},
    {NULL, NULL, NULL, NULL}};

static const char *s_help_for(const char *command) {
    if (strcmp(command, "audit") == 0 || strcmp(command, "trace") == 0) {
        return ternctl_audit_help(command);
    }
    if (strcmp(command, "peers") == 0) {
        return ternctl_peers_help;
    }
    if (strcmp(command, "keys") == 0) {
        return ternctl_keys_help;
    }
    for (const s_command_t *c = s_commands; c->name; c++) {
        if (strcmp(c->name, command) == 0) {
            return c->help;
        }
    }
    return NULL;
}

//  Commands that parse their own command line: they get the whole ARGV.
typedef struct {
    const char *name;                   //  command word
    int (*main)(int argc, char **argv); //  implementation
} s_argv_command_t;

static const s_argv_command_t s_argv_commands[] = {
    {"bench", ternctl_bench_main}, {"audit", ternctl_audit_main}, {"trace", ternctl_trace_main},
    {"peers", ternctl_peers_main}, {"keys", ternctl_keys_main},   {NULL, NULL}};

//  The index of the command word in ARGV: the first word that is neither a
//  global option nor the value of one; -1 if there is none.
static int s_command_at(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        const char *w = argv[i];
        if (strcmp(w, "-s") == 0 || strcmp(w, "--server") == 0 || strcmp(w, "--timeout") == 0) {
            i++;
            continue;
        }
        if (w[0] == '-') {
            continue;
        }
        return i;
    }
    return -1;
}

//  Only global options (or nothing): --version, --help, or the manual on
//  stderr as a usage error.
static int s_no_command(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--version") == 0) {
            printf("ternctl %s\n", tern_version(NULL, NULL, NULL));
            return 0;
        }
    }
    ternctl_args_t args = {0};
    argc--;
    argv++;
    if (ternctl_parse(argc, argv, NULL, &args)) {
        return EXIT_USAGE;
    }
    if (args.help) {
        fputs(s_help_main, stdout);
        return 0;
    }
    fputs(s_help_main, stderr);
    return EXIT_USAGE;
}

//  `ternctl help [COMMAND]`: COMMAND is ARGV[AT + 1] if there is one.
static int s_help_command(int argc, char **argv, int at) {
    const char *help = at + 1 < argc ? s_help_for(argv[at + 1]) : s_help_main;
    if (!help) {
        ternctl_command = "";
        return ternctl_usage("unknown command '%s'", argv[at + 1]);
    }
    fputs(help, stdout);
    return 0;
}

//  Names command NAME in messages (ternctl_usage's hint).
static void s_command_label(const char *name) {
    static char command_label[32];
    snprintf(command_label, sizeof command_label, "%s ", name);
    ternctl_command = command_label;
}

//  Parses every word of ARGV except the command word at AT against
//  COMMAND's options, then runs it (or prints its manual for --help).
static int s_run_command(const s_command_t *command, int argc, char **argv, int at) {
    s_command_label(command->name);
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
    ternctl_args_t args = {0};
    int rc = ternctl_parse(rest_count, rest, command->opts, &args);
    free(rest);
    if (rc) {
        return rc;
    }
    if (args.help) {
        fputs(s_help_for(command->name), stdout);
        return 0;
    }
    return command->run(&args);
}

int main(int argc, char **argv) {
    argc = ternctl_keys_global(argc, argv); //  --cert, --server-key -> environment
    int at = s_command_at(argc, argv);
    if (at < 0) {
        return s_no_command(argc, argv);
    }
    const char *name = argv[at];
    for (const s_argv_command_t *c = s_argv_commands; c->name; c++) {
        if (strcmp(c->name, name) == 0) {
            s_command_label(name);
            return c->main(argc, argv);
        }
    }
    if (strcmp(name, "help") == 0) {
        return s_help_command(argc, argv, at);
    }
    const s_command_t *command = NULL;
    for (const s_command_t *c = s_commands; c->name; c++) {
        if (strcmp(c->name, name) == 0) {
            command = c;
        }
    }
    if (!command) {
        return ternctl_usage("unknown command '%s'", name);
    }
    return s_run_command(command, argc, argv, at);
}

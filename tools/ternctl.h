/*  ternctl.h - what ternctl's command files share: the parsed command line,
    the admin runner and the house printing (private to tools/).

    ternctl.c holds main() and the command table; ternctl_cli.c the command
    line, client creation, admin calls and printing; each ternctl_<family>.c
    one command family (ternctl_cmd_<name>, its ternctl_<name>_opts). Every
    function returns 0 or the exit status: 1 failure (reason on stderr), 2
    usage error (EXIT_USAGE).
*/
#ifndef TERNCTL_H_INCLUDED
#define TERNCTL_H_INCLUDED

#include "tern.h"
#include "tern_json_read.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#define EXIT_USAGE 2

typedef struct {
    const char *name; //  long option name without "--"
    bool has_arg;     //  takes a value
} ternctl_opt_t;

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
} ternctl_args_t;

//  Progress line on stderr for a long admin op: the request is one op on
//  the broker, so this shows the elapsed time while the reply is awaited
//  ("purging... 3.2 s"), then the final count. Never on stdout.
typedef struct ternctl_progress_t {
    const char *verb; //  e.g. "purging"
    const char *key;  //  reply field holding the final count, e.g. "purged"
    bool tty;         //  stderr is a terminal: redraw one line in place
    int64_t start_ms; //  when the request went out
    atomic_bool done; //  set by the main thread when the reply arrived
    pthread_t thread; //  the printer
} ternctl_progress_t;

//  ---------------------------------------------------------------------------
//  Command line (ternctl_cli.c)

//  The command word for messages: "ternctl" or "CMD " (set by main).
extern const char *ternctl_command;

//  Prints "ternctl: FMT" (with ARG) and the --help hint; returns EXIT_USAGE.
int ternctl_usage(const char *fmt, const char *arg);
//  Reports a failed call of WHAT with CODE; returns the exit status.
int ternctl_fail(const char *what, int code);
//  tern_client_new refused the endpoint or options: a usage error.
int ternctl_client_usage(void);
//  Parses ARGV[0..ARGC) against OPTS into ARGS; 0 or EXIT_USAGE.
int ternctl_parse(int argc, char **argv, const ternctl_opt_t *opts, ternctl_args_t *args);
//  Last value of option NAME of OPTS, or NULL. Borrowed from argv.
const char *ternctl_value(const ternctl_args_t *args, const ternctl_opt_t *opts, const char *name);
//  True if option NAME of OPTS was given.
bool ternctl_flag(const ternctl_args_t *args, const ternctl_opt_t *opts, const char *name);
//  Parses a plain decimal TEXT into *OUT; false if it is not one.
bool ternctl_parse_u64(const char *text, uint64_t *out);
//  The endpoint: -s, else $TERN_SERVER, else the default. Borrowed.
const char *ternctl_server(const ternctl_args_t *args);
//  Reads --timeout (or DEFAULT_MS); returns -1 on a bad value.
int64_t ternctl_timeout_ms(const ternctl_args_t *args, int64_t default_ms);
//  Usage error for a bad value TEXT of --OPTION, with the parser's reason WHY.
int ternctl_bad_value(const char *option, const char *text, const char *why);
//  Usage error for the --timeout that ternctl_timeout_ms refused.
int ternctl_bad_timeout(const ternctl_args_t *args);
//  Monotonic clock in ms.
int64_t ternctl_now_ms(void);
//  A client for ARGS' endpoint; NULL when refused. Caller owns the result.
tern_client_t *ternctl_client(const ternctl_args_t *args, int timeout_ms, const char *producer,
                              uint64_t seq_start);
//  Asks QUESTION on a terminal unless --force (in OPTS): true to proceed.
bool ternctl_confirm(const ternctl_args_t *args, const ternctl_opt_t *opts, const char *question);
//  True if TEXT is a position: first, new (if NEW_OK), seq:N or time:DUR.
bool ternctl_position_valid(const char *text, bool new_ok);

//  ---------------------------------------------------------------------------
//  Printing and admin calls (ternctl_cli.c)

//  Writes B's text and a newline to stdout.
void ternctl_print_line(tern_json_t *b);
//  --json output of DOC: each element of an array on a line of its own,
//  any other value on one line.
void ternctl_print_json(const tern_json_value_t *doc);
//  Text of field KEY's value V for people; caller owns (free) the result.
char *ternctl_cell(const char *key, const tern_json_value_t *v);
//  An aligned table of the objects in ARRAY with COLUMNS (NULL-terminated;
//  NULL = the keys of the first element).
void ternctl_print_table(const tern_json_value_t *array, const char *const *columns);
//  OBJECT as aligned `key  value` lines.
void ternctl_print_object(const tern_json_value_t *object);
//  Runs admin OP with KV[0..COUNT) and prints the reply; COLUMNS for arrays.
int ternctl_admin_print(const ternctl_args_t *args, const char *op, const tern_header_t *kv,
                        size_t count, const char *const *columns);
//  Runs admin OP and parses the reply into *DOC (caller owns it), with
//  PROGRESS (or NULL) on stderr while the reply is awaited.
int ternctl_admin_call(const ternctl_args_t *args, const char *op, const tern_header_t *kv,
                       size_t count, ternctl_progress_t *progress, tern_json_value_t **doc);
//  Parses admin OP's REPLY into *DOC (caller owns it) and stops PROGRESS
//  (or NULL); 1 with the reason on stderr if it is not JSON. Takes
//  ownership of REPLY (freed).
int ternctl_admin_reply(const char *op, char *reply, ternctl_progress_t *progress,
                        tern_json_value_t **doc);
//  ternctl_admin_print with a progress line (see ternctl_admin_call).
int ternctl_admin_run(const ternctl_args_t *args, const char *op, const tern_header_t *kv,
                      size_t count, const char *const *columns, ternctl_progress_t *progress);
//  ternctl_admin_print for a list whose empty reply prints EMPTY in text mode.
int ternctl_admin_list(const ternctl_args_t *args, const char *op, const tern_header_t *kv,
                       size_t count, const char *const *columns, const char *empty);
//  P when a progress line is wanted (FLAG is --progress), else NULL.
ternctl_progress_t *ternctl_progress_want(const ternctl_args_t *args, bool flag,
                                          ternctl_progress_t *p);
//  Prints DOC (a message object or an array of them) and destroys it
//  (ternctl_msg.c).
int ternctl_print_messages(const ternctl_args_t *args, const tern_json_value_t *doc);

//  ---------------------------------------------------------------------------
//  Commands and their options (one file per family)

int ternctl_cmd_status(const ternctl_args_t *args); //  ternctl_topic.c
int ternctl_cmd_topics(const ternctl_args_t *args);
int ternctl_cmd_topic(const ternctl_args_t *args);
extern const ternctl_opt_t ternctl_topic_opts[];
int ternctl_cmd_groups(const ternctl_args_t *args); //  ternctl_group.c
int ternctl_cmd_group(const ternctl_args_t *args);
int ternctl_cmd_dlq(const ternctl_args_t *args);
extern const ternctl_opt_t ternctl_group_opts[];
extern const ternctl_opt_t ternctl_dlq_opts[];
int ternctl_cmd_get(const ternctl_args_t *args); //  ternctl_msg.c
int ternctl_cmd_view(const ternctl_args_t *args);
extern const ternctl_opt_t ternctl_view_opts[];
int ternctl_cmd_pub(const ternctl_args_t *args); //  ternctl_pub.c
extern const ternctl_opt_t ternctl_pub_opts[];
int ternctl_cmd_sub(const ternctl_args_t *args); //  ternctl_sub.c
extern const ternctl_opt_t ternctl_sub_opts[];

int ternctl_cmd_cluster(const ternctl_args_t *args); //  ternctl_cluster.c
extern const ternctl_opt_t ternctl_cluster_opts[];

//  Commands with their own parsers, whole argv in (other files).
int ternctl_bench_main(int argc, char **argv); //  ternctl_bench.c
int ternctl_audit_main(int argc, char **argv); //  ternctl_audit.c
int ternctl_trace_main(int argc, char **argv); //  ternctl_audit.c
int ternctl_peers_main(int argc, char **argv); //  ternctl_peers.c
int ternctl_keys_main(int argc, char **argv);  //  ternctl_keys.c
//  Takes --cert and --server-key out of ARGV into the environment; returns
//  the new ARGC (ternctl_keys.c).
int ternctl_keys_global(int argc, char **argv);
//  Fills OPTIONS' CURVE keys from the environment (ternctl_keys.c).
void ternctl_curve_options(tern_client_options_t *options);
const char *ternctl_audit_help(const char *command); //  ternctl_audit.c
extern const char *ternctl_peers_help;               //  ternctl_peers.c
extern const char *ternctl_keys_help;                //  ternctl_keys.c

#endif

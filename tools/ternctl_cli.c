/*  ternctl_cli.c - ternctl's command line, admin runner and printing.

    What every ternctl command shares: the option parser (global -s,
    --timeout, --json, --help plus each command's table), usage and failure
    messages with their exit status, client creation, the admin runner that
    makes one tern_admin() call and prints its JSON reply as JSON lines or as
    aligned text with human units, and the progress line of long admin ops.
*/
#include "tern_units.h"
#include "ternctl.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

const char *ternctl_command = "ternctl"; //  for messages

int ternctl_usage(const char *fmt, const char *arg) {
    fprintf(stderr, "ternctl: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\nTry 'ternctl %s--help'.\n",
            strcmp(ternctl_command, "ternctl") == 0 ? "" : ternctl_command);
    return EXIT_USAGE;
}

//  Reports a failed call of WHAT with CODE and returns the exit status. The
//  reason libtern or the broker gave names the problem (and the limit), so
//  it is printed as is; bad input that only the broker could judge (a topic
//  or name outside the grammar) is a usage error.
int ternctl_fail(const char *what, int code) {
    const char *reason = tern_last_reason();
    bool has_reason = reason && reason[0];
    if (code == TERN_ECONNREFUSED && has_reason) {
        fprintf(stderr, "ternctl: %s (is ternd running?)\n", reason);
        return 1;
    }
    if ((code == TERN_ETOPIC || code == TERN_ENAME) && has_reason) {
        return ternctl_usage("%s", reason);
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
int ternctl_client_usage(void) {
    return ternctl_usage("%s", tern_last_reason());
}

//  The long name of option WORD ("--name=value", "--name", "-s", "-h")
//  into NAME (CAP bytes), and its inline value into *VALUE (untouched
//  without "="). Returns 0, or -1 for a name that is too long or an unknown
//  short option.
static int s_option_name(const char *word, char *name, size_t cap, const char **value) {
    const char *body = word[1] == '-' ? word + 2 : word + 1;
    const char *eq = strchr(body, '=');
    size_t len = eq ? (size_t)(eq - body) : strlen(body);
    if (len >= cap) {
        return -1;
    }
    memcpy(name, body, len);
    name[len] = 0;
    if (eq) {
        *value = eq + 1;
    }
    if (word[1] != '-') {
        //  Short options: -s ENDPOINT, -h.
        if (strcmp(name, "s") == 0) {
            snprintf(name, cap, "server");
        } else if (strcmp(name, "h") == 0) {
            snprintf(name, cap, "help");
        } else {
            return -1;
        }
    }
    return 0;
}

//  Parses ARGV[0..ARGC) (the words after the command) against OPTS.
//  Returns 0 or EXIT_USAGE (message printed).
int ternctl_parse(int argc, char **argv, const ternctl_opt_t *opts, ternctl_args_t *args) {
    bool only_positional = false;
    for (int i = 0; i < argc; i++) {
        const char *word = argv[i];
        if (only_positional || word[0] != '-' || word[1] == 0) {
            if (args->positional_count == MAX_POSITIONAL) {
                return ternctl_usage("too many arguments at '%s'", word);
            }
            args->positional[args->positional_count++] = word;
            continue;
        }
        if (strcmp(word, "--") == 0) {
            only_positional = true;
            continue;
        }
        char name[64];
        const char *value = NULL;
        if (s_option_name(word, name, sizeof name, &value)) {
            return ternctl_usage("unknown option '%s'", word);
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
            return ternctl_usage("unknown option '%s'", word);
        }
        bool has_arg = global_arg || (index >= 0 && opts[index].has_arg);
        if (has_arg && !value) {
            if (i + 1 >= argc) {
                return ternctl_usage("option '%s' needs a value", word);
            }
            value = argv[++i];
        } else if (!has_arg && value) {
            return ternctl_usage("option '%s' takes no value", word);
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
                return ternctl_usage("too many headers at '%s'", value);
            }
            args->headers[args->header_count++] = value;
        } else {
            args->values[index] = value;
            args->present[index] = true;
        }
    }
    return 0;
}

static int s_opt_index(const ternctl_opt_t *opts, const char *name) {
    for (int k = 0; opts[k].name; k++) {
        if (strcmp(opts[k].name, name) == 0) {
            return k;
        }
    }
    return -1;
}

const char *ternctl_value(const ternctl_args_t *args, const ternctl_opt_t *opts, const char *name) {
    int k = s_opt_index(opts, name);
    return k >= 0 ? args->values[k] : NULL;
}

bool ternctl_flag(const ternctl_args_t *args, const ternctl_opt_t *opts, const char *name) {
    int k = s_opt_index(opts, name);
    return k >= 0 && args->present[k];
}

bool ternctl_parse_u64(const char *text, uint64_t *out) {
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

const char *ternctl_server(const ternctl_args_t *args) {
    if (args->server && args->server[0]) {
        return args->server;
    }
    const char *env = getenv("TERN_SERVER");
    return env && env[0] ? env : TERN_DEFAULT_ENDPOINT;
}

//  Reads --timeout (or DEFAULT_MS); returns -1 on a bad value.
int64_t ternctl_timeout_ms(const ternctl_args_t *args, int64_t default_ms) {
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
int ternctl_bad_value(const char *option, const char *text, const char *why) {
    char format[256];
    snprintf(format, sizeof format, "invalid --%s '%%s'%s%s", option, why ? ": " : "",
             why ? why : "");
    return ternctl_usage(format, text);
}

//  Usage error for the --timeout that ternctl_timeout_ms refused.
int ternctl_bad_timeout(const ternctl_args_t *args) {
    uint64_t ms;
    const char *why = NULL;
    if (tern_units_parse_duration(args->timeout, &ms, &why) == TERN_OK) {
        why = "at most 24d";
    }
    return ternctl_bad_value("timeout", args->timeout, why);
}

int64_t ternctl_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

tern_client_t *ternctl_client(const ternctl_args_t *args, int timeout_ms, const char *producer,
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
    return tern_client_new(ternctl_server(args), &options);
}

//  ---------------------------------------------------------------------------
//  Printing admin replies

void ternctl_print_line(tern_json_t *b) {
    fwrite(b->data, 1, b->len, stdout);
    fputc('\n', stdout);
    fflush(stdout);
}

void ternctl_print_json(const tern_json_value_t *doc) {
    bool array = doc->kind == TERN_JSON_ARRAY;
    tern_json_t b;
    tern_json_init(&b);
    for (size_t i = 0; i < (array ? doc->count : 1); i++) {
        tern_json_reset(&b);
        tern_json_write_value(&b, array ? doc->items[i] : doc);
        ternctl_print_line(&b);
    }
    tern_json_free(&b);
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
static bool s_human_number(const char *key, const tern_json_value_t *v, char *buf, size_t len) {
    const s_field_show_t *f = s_field_show(key);
    uint64_t n;
    if (!f || !ternctl_parse_u64(v->text, &n)) {
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
char *ternctl_cell(const char *key, const tern_json_value_t *v) {
    tern_json_t b;
    tern_json_init(&b);
    char human[TERN_UNITS_BUF];
    if (!v || v->kind == TERN_JSON_NULL) {
        tern_json_raw(&b, "-");
    } else if (v->kind == TERN_JSON_STRING) {
        tern_json_rawn(&b, v->text, v->text_len);
    } else if (v->kind == TERN_JSON_NUMBER && s_human_number(key, v, human, sizeof human)) {
        tern_json_raw(&b, human);
    } else {
        tern_json_write_value(&b, v);
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

void ternctl_print_object(const tern_json_value_t *obj) {
    size_t width = 0;
    char label[128];
    for (size_t i = 0; i < obj->count; i++) {
        size_t n = strlen(s_label(obj->keys[i], label, sizeof label));
        width = n > width ? n : width;
    }
    for (size_t i = 0; i < obj->count; i++) {
        char *cell = ternctl_cell(obj->keys[i], obj->items[i]);
        printf("%-*s  %s\n", (int)width, s_label(obj->keys[i], label, sizeof label), cell);
        free(cell);
    }
    fflush(stdout);
}

//  An aligned table of the objects in ARRAY with COLUMNS (NULL-terminated;
//  NULL = the keys of the first element).
void ternctl_print_table(const tern_json_value_t *array, const char *const *columns) {
    const char *auto_cols[64];
    if (!columns) {
        size_t n = 0;
        if (array->count && array->items[0]->kind == TERN_JSON_OBJECT) {
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
            cells[(r + 1) * ncols + c] =
                ternctl_cell(columns[c], tern_json_get(array->items[r], columns[c]));
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
//  "no topics"; set by ternctl_admin_list for the one admin call a command makes.
static const char *s_empty_text;

//  ARRAY as a table, or s_empty_text when it has no rows.
static void s_print_rows(const tern_json_value_t *array, const char *const *columns) {
    if (array->count == 0 && s_empty_text) {
        printf("%s\n", s_empty_text);
        fflush(stdout);
        return;
    }
    ternctl_print_table(array, columns);
}

static void *s_progress_run(void *arg) {
    ternctl_progress_t *self = arg;
    //  A terminal gets a redrawn line every 100 ms, anything else one line
    //  a second; nothing in the first 200 ms (a quick op prints only the
    //  final line). Polls every 20 ms so the command does not wait on it.
    int64_t step = self->tty ? 100 : 1000;
    int64_t next = self->tty ? 200 : 1000;
    while (!atomic_load(&self->done)) {
        int64_t elapsed = ternctl_now_ms() - self->start_ms;
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
static ternctl_progress_t *s_progress_start(ternctl_progress_t *p, bool show) {
    if (!p || !show) {
        return NULL;
    }
    p->tty = isatty(STDERR_FILENO);
    p->start_ms = ternctl_now_ms();
    atomic_store(&p->done, false);
    if (pthread_create(&p->thread, NULL, s_progress_run, p) != 0) {
        return NULL; //  no progress line; the command itself still runs
    }
    return p;
}

//  Stops the line; prints "VERB... done: N KEY in T s" (N from DOC when it
//  has KEY) or "VERB... failed after T s".
static void s_progress_stop(ternctl_progress_t *p, const tern_json_value_t *doc) {
    if (!p) {
        return;
    }
    atomic_store(&p->done, true);
    pthread_join(p->thread, NULL);
    double secs = (double)(ternctl_now_ms() - p->start_ms) / 1000.0;
    if (p->tty) {
        fprintf(stderr, "\r\033[K");
    }
    const tern_json_value_t *n =
        doc && doc->kind == TERN_JSON_OBJECT ? tern_json_get(doc, p->key) : NULL;
    if (n) {
        char *text = ternctl_cell(p->key, n);
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
int ternctl_admin_print(const ternctl_args_t *args, const char *op, const tern_header_t *kv,
                        size_t count, const char *const *columns) {
    return ternctl_admin_run(args, op, kv, count, columns, NULL);
}

//  Runs admin OP with ARGS and parses the reply into *DOC (caller owns it),
//  with a progress line on stderr while the reply is awaited when PROGRESS
//  (verb and key filled in) is not NULL. Returns 0 or the exit status
//  (the reason printed on stderr).
int ternctl_admin_call(const ternctl_args_t *args, const char *op, const tern_header_t *kv,
                       size_t count, ternctl_progress_t *progress, tern_json_value_t **doc) {
    int64_t timeout = ternctl_timeout_ms(args, 5000);
    if (timeout < 0) {
        return ternctl_usage("invalid --timeout '%s'", args->timeout);
    }
    //  In a cluster, libtern sends it where it belongs (tern.h, tern_admin).
    tern_client_t *client = ternctl_client(args, (int)timeout, NULL, 0);
    if (!client) {
        return ternctl_client_usage();
    }
    char *reply = NULL;
    progress = s_progress_start(progress, progress != NULL);
    int rc = tern_admin(client, op, kv, count, &reply, (int)(timeout > 0 ? timeout : 1));
    if (rc != TERN_OK) {
        s_progress_stop(progress, NULL);
        char what[128];
        if (rc == TERN_ETIMEOUT && !tern_client_connected(client)) {
            snprintf(what, sizeof what, "%s: cannot reach %s", op, ternctl_server(args));
        } else {
            snprintf(what, sizeof what, "%s", op);
        }
        tern_client_destroy(&client);
        return ternctl_fail(what, rc);
    }
    tern_client_destroy(&client);
    return ternctl_admin_reply(op, reply, progress, doc);
}

int ternctl_admin_reply(const char *op, char *reply, ternctl_progress_t *progress,
                        tern_json_value_t **doc) {
    *doc = tern_json_parse(reply, strlen(reply));
    s_progress_stop(progress, *doc);
    if (!*doc) {
        fprintf(stderr, "ternctl: %s: the broker's reply is not JSON: %s\n", op, reply);
        free(reply);
        return 1;
    }
    free(reply);
    return 0;
}

//  Same as ternctl_admin_print, with a progress line (see ternctl_admin_call).
int ternctl_admin_run(const ternctl_args_t *args, const char *op, const tern_header_t *kv,
                      size_t count, const char *const *columns, ternctl_progress_t *progress) {
    tern_json_value_t *doc = NULL;
    int rc = ternctl_admin_call(args, op, kv, count, progress, &doc);
    if (rc) {
        return rc;
    }
    if (args->json || (doc->kind != TERN_JSON_ARRAY && doc->kind != TERN_JSON_OBJECT)) {
        ternctl_print_json(doc);
    } else if (doc->kind == TERN_JSON_ARRAY) {
        s_print_rows(doc, columns);
    } else {
        ternctl_print_object(doc);
    }
    tern_json_value_destroy(&doc);
    return 0;
}

//  ternctl_admin_print for a list whose empty reply prints EMPTY in text mode
//  (--json prints nothing for it, as for any empty list).
int ternctl_admin_list(const ternctl_args_t *args, const char *op, const tern_header_t *kv,
                       size_t count, const char *const *columns, const char *empty) {
    s_empty_text = empty; //  borrowed for this call only
    int rc = ternctl_admin_print(args, op, kv, count, columns);
    s_empty_text = NULL;
    return rc;
}

//  Progress for a long admin op: on with --progress, or when stderr is a
//  terminal; off with --json unless --progress is given. Returns P or NULL.
ternctl_progress_t *ternctl_progress_want(const ternctl_args_t *args, bool flag,
                                          ternctl_progress_t *p) {
    if (flag || (!args->json && isatty(STDERR_FILENO))) {
        return p;
    }
    return NULL;
}

//  Asks QUESTION on a terminal (stdin a tty) unless --force was given:
//  true to proceed. Not on a terminal (scripts, pipes), it proceeds.
bool ternctl_confirm(const ternctl_args_t *args, const ternctl_opt_t *opts, const char *question) {
    if (ternctl_flag(args, opts, "force") || !isatty(STDIN_FILENO)) {
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

//  True if TEXT is a position: first, new (if NEW_OK), seq:N or time:DUR.
bool ternctl_position_valid(const char *text, bool new_ok) {
    uint64_t v;
    return strcmp(text, "first") == 0 || (new_ok && strcmp(text, "new") == 0) ||
           (strncmp(text, "seq:", 4) == 0 && ternctl_parse_u64(text + 4, &v) && v > 0) ||
           (strncmp(text, "time:", 5) == 0 && tern_parse_duration(text + 5, &v) == TERN_OK);
}

/*  harness.h - the integration-test harness: real ternd processes on free
    loopback ports, ternctl runs with captured output, a raw ZeroMQ client for
    garbage frames, and a small JSON field extractor.

    Every integration suite (tests/integration/it_*.c) drives real processes
    through this file. Each process started here is registered by PID and is
    killed (SIGKILL, by that PID only) by it_teardown(), by an atexit() hook of
    the test process, and by PR_SET_PDEATHSIG if the test process dies: no test
    leaves a broker behind, even when an assertion fails. Temp directories live
    under /tmp and are removed when their broker is destroyed.
*/
#ifndef TERN_IT_HARNESS_H_INCLUDED
#define TERN_IT_HARNESS_H_INCLUDED

#include "tern.h" //  libtern, which the tests drive
#include "tern_proto.h"
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define IT_EXTRA_MAX 32 /* extra ternd arguments */

/*  One broker: a temp root holding data/ and ternd.log, a fixed port. */
typedef struct {
    pid_t pid;                 //  running ternd, or 0
    bool paused;               //  SIGSTOPped
    int port;                  //  loopback TCP port, fixed across restarts
    char endpoint[64];         //  tcp://127.0.0.1:PORT
    char root[256];            //  temp root (mkdtemp), removed at destroy
    char data_dir[300];        //  ROOT/data, passed as --data
    char log_path[300];        //  ROOT/ternd.log, ternd's stderr (appended)
    long log_offset;           //  where the current run's log starts
    uint32_t node_id;          //  --node-id
    char dc[32];               //  --dc
    char repl_ep[64];          //  --repl-listen of it_mesh_start, else ""
    char *extra[IT_EXTRA_MAX]; //  extra arguments, owned copies
    int extra_count;           //  number of extra arguments
    int starts;                //  how many times it was started
} it_broker_t;

/*  Creates a broker description (temp dir, free port) with node id NODE_ID,
    dc "dc1" and the NULL-terminated extra ternd arguments EXTRA (may be NULL).
    Does not start it. Caller owns the result; destroy with it_broker_destroy. */
it_broker_t *it_broker_new(uint32_t node_id, const char *const *extra);

/*  Starts ternd on the broker's dir and port and waits (10 s at most) until it
    is ready ("ready on" in its log, or `ternctl status` succeeds). Returns
    false, with the log dumped on stderr, if it exited or timed out. */
bool it_broker_start(it_broker_t *self);

/*  The two halves of it_broker_start, for brokers that must all be running
    before any is ready (a cluster's nodes): spawn only (false if the fork
    failed), then wait up to TIMEOUT_MS for readiness. */
bool it_broker_spawn(it_broker_t *self);
bool it_broker_wait_ready(it_broker_t *self, int timeout_ms);

/*  SIGTERM, then waits up to TIMEOUT_MS for the exit (then SIGKILL). Returns
    the exit code, or -SIGNAL if it died of a signal, or -1000 if it had to be
    killed. */
int it_broker_stop(it_broker_t *self, int timeout_ms);

/*  SIGKILL and reap. Safe if not running. */
void it_broker_kill(it_broker_t *self);

/*  SIGSTOP / SIGCONT. */
void it_broker_pause(it_broker_t *self);
void it_broker_resume(it_broker_t *self);

/*  True if ternd is still running (reaps it if it exited; *STATUS_P, when not
    NULL, gets the raw wait status then). */
bool it_broker_alive(it_broker_t *self, int *status_p);

/*  Writes the current run's log (or the whole log if WHOLE) to stderr. */
void it_broker_dump_log(it_broker_t *self, bool whole);

/*  A libtern client of B with OPTIONS (NULL: the defaults), connected:
    asserts that it was made and connected within 10 s. */
tern_client_t *it_client(it_broker_t *b, const tern_client_options_t *options);

/*  True if the current run's log holds NEEDLE. */
bool it_broker_logged(it_broker_t *self, const char *needle);

/*  RssAnon of PID in KiB (heap and stacks, not the LMDB file mapping), from
    /proc/PID/status; -1 if unreadable. */
long it_rss_anon_kb(pid_t pid);

/*  Kills ternd if running, removes the temp dir, frees, nulls *SELF_P. */
void it_broker_destroy(it_broker_t **self_p);

/*  Convenience for suites: new + start with cr_assert; the broker is
    remembered and destroyed by it_teardown(). EXTRA is NULL-terminated. */
it_broker_t *it_start_broker(const char *extra, ...);

/*  N brokers dc1..dcN (node ids 1..N) replicating in a full mesh: each one
    listens for replication on a free loopback port (its repl_ep) and has a
    --peer for every other one, plus the NULL-terminated flags COMMON (for all;
    may be NULL) and EACH[i] (for broker i; EACH or EACH[i] may be NULL).
    Adopts them (it_teardown stops them), starts them and fills OUT[0..N-1]. */
void it_mesh_start(int n, const char *const *common, const char *const *const *each,
                   it_broker_t **out);

/*  Remembers B (from it_broker_new) so that it_teardown() stops and destroys
    it; returns B. */
it_broker_t *it_adopt_broker(it_broker_t *b);

/*  Criterion .fini hook: stops every broker from it_start_broker (SIGTERM,
    expecting exit 0 unless it was killed on purpose), kills spawned ternctl
    processes, removes temp dirs. */
void it_teardown(void);

/*  The result of one ternctl run. */
typedef struct {
    int status;     //  exit code, or -SIGNAL, or -1000 on timeout
    bool timed_out; //  killed by the harness after the timeout
    char *out;      //  stdout, NUL-terminated, owned
    size_t out_len; //  its length
    char *err;      //  stderr, NUL-terminated, owned
    size_t err_len; //  its length
} it_result_t;

/*  Runs ARGV (argv[0] = program path) with STDIN_DATA (may be NULL:
    /dev/null) and captures everything; kills it by PID after TIMEOUT_MS.
    Returns R->status. */
int it_run(it_result_t *r, int timeout_ms, const char *stdin_data, char *const argv[]);

/*  Runs `ternctl -s ENDPOINT --json ARG...` (NULL-terminated) against B. */
int it_ctl(it_result_t *r, it_broker_t *b, int timeout_ms, const char *arg, ...);

/*  Runs `ternctl -s ENDPOINTS --json ARGS...` (ARGS NULL-terminated):
    ENDPOINTS is a comma-separated list, e.g. every node of a cluster
    (libtern follows the partition leaders). */
int it_ctl_at(it_result_t *r, const char *endpoints, int timeout_ms, const char *const *args);

/*  `ternctl pub TOPIC DATA --count COUNT` against B ({n} in DATA is the
    message number); asserts that it succeeded with one ack per message. */
void it_pub(it_broker_t *b, const char *topic, const char *data, int count);

/*  Queues COUNT publishes to TOPIC on CLIENT with tern_publish_async, the
    payload of message I being PREFIX followed by I in four digits, each
    completing with DONE(ARG) (may be NULL); asserts that each was queued.
    The caller flushes. */
void it_pub_async(tern_client_t *client, const char *topic, const char *prefix, int count,
                  tern_pub_fn *done, void *arg);

/*  The msg_ids acknowledged to publishers, as a test gathers them. */
typedef struct {
    int64_t *ids; //  msg_ids in the order added, owned
    size_t count; //  used
    size_t cap;   //  allocated
} it_acks_t;

/*  Adds the msg_id of every line of OUT (`ternctl --json pub` output) to
    ACKS; returns how many lines had one. */
size_t it_acks_add(it_acks_t *acks, const char *out);

/*  Frees ACKS' ids and empties it. */
void it_acks_free(it_acks_t *acks);

/*  qsort/bsearch order of int64_t msg_ids. */
int it_cmp_i64(const void *a, const void *b);

/*  The message count of TOPIC on B (`ternctl topic info`), or -1. */
int64_t it_topic_msgs(it_broker_t *b, const char *topic);

/*  Same as it_ctl with the stdin contents given. */
int it_ctl_in(it_result_t *r, it_broker_t *b, int timeout_ms, const char *stdin_data,
              const char *arg, ...);

/*  `ternctl [-s ENDPOINT] ARG...` in text mode (without --json, as a person
    types it), with STDIN_DATA (may be NULL); B may be NULL (no broker). */
int it_ctl_text(it_result_t *r, it_broker_t *b, int timeout_ms, const char *stdin_data,
                const char *arg, ...);

/*  The va_list form of both: `ternctl [-s ENDPOINT] [--json] ARG...`. */
int it_ctl_va(it_result_t *r, it_broker_t *b, int timeout_ms, const char *stdin_data, bool json,
              const char *arg, va_list ap);

void it_result_free(it_result_t *r);

/*  Path of ternctl / ternd. */
const char *it_ternctl_path(void);
const char *it_ternd_path(void);

/*  A ternctl running in the background, stdout and stderr to files. */
typedef struct {
    pid_t pid;          //  the process, 0 once reaped
    int status;         //  exit code / -SIGNAL once reaped
    char out_path[320]; //  stdout file
    char err_path[320]; //  stderr file
    int in_fd;          //  write end of its stdin pipe, or -1
} it_proc_t;

/*  Starts `ternctl -s ENDPOINT --json ARG...` (NULL-terminated) in the
    background with output files in B's root. Caller owns the result. */
it_proc_t *it_ctl_spawn(it_broker_t *b, const char *arg, ...);

/*  Same, with its stdin a pipe: feed it with it_proc_write, end it with
    it_proc_close_stdin. */
it_proc_t *it_ctl_spawn_piped(it_broker_t *b, const char *arg, ...);

/*  Writes TEXT to its stdin pipe; false if the pipe is closed. */
bool it_proc_write(it_proc_t *self, const char *text);

/*  Closes its stdin pipe (EOF for the process). */
void it_proc_close_stdin(it_proc_t *self);

/*  Waits up to TIMEOUT_MS for the exit (then SIGKILL). Returns the exit code,
    -SIGNAL, or -1000 when it had to be killed. */
int it_proc_wait(it_proc_t *self, int timeout_ms);

/*  True while running (reaps it otherwise). */
bool it_proc_running(it_proc_t *self);

/*  Sends SIG to the process (by its PID) if it is running. */
void it_proc_signal(it_proc_t *self, int sig);

/*  Its stdout / stderr so far; caller frees. */
char *it_proc_out(it_proc_t *self);
char *it_proc_err(it_proc_t *self);

/*  Number of complete lines in its stdout so far. */
size_t it_proc_lines(it_proc_t *self);

/*  Waits up to TIMEOUT_MS, or until it exits, for N complete lines on its
    stdout; true if they came. */
bool it_proc_wait_lines(it_proc_t *self, size_t n, int timeout_ms);

/*  Kills it if running, frees, nulls *SELF_P. */
void it_proc_destroy(it_proc_t **self_p);

/*  Reads a whole file; caller frees; NULL if unreadable. */
char *it_read_file(const char *path, size_t *len_p);

/*  Splits TEXT in place at newlines; returns the non-empty lines in *LINES
    (caller frees the array only). */
size_t it_split_lines(char *text, char ***lines);

/*  JSON access to the members of one object: the object at OBJ's first
    '{', read with protocol/'s JSON reader (tern_json_read.h; what follows
    the object, such as the next JSON line, is ignored; the object itself
    must be valid JSON). it_json_raw's *VAL is the member's text in OBJ. */
bool it_json_raw(const char *obj, const char *key, const char **val, size_t *len);
bool it_json_int(const char *obj, const char *key, int64_t *out);
/*  The integer member KEY of OBJ; fails the test if there is none. */
int64_t it_json_field(const char *obj, const char *key);
bool it_json_str(const char *obj, const char *key, char *buf, size_t cap);
bool it_json_bool(const char *obj, const char *key, bool *out);
/*  The string value unescaped into a new buffer (caller frees), *LEN_P its
    length; NULL if absent or not a string. */
char *it_json_strdup(const char *obj, const char *key, size_t *len_p);

/*  The line of GROUP in `ternctl --json groups TOPIC` against B, copied into
    LINE (CAP bytes); asserts that ternctl succeeded; false if GROUP is not
    listed. */
bool it_group_line(it_broker_t *b, const char *topic, const char *group, char *line, size_t cap);

/*  Integer KEY of GROUP's line in OUT (`ternctl --json groups` output, split
    in place), or -1 if GROUP or KEY is missing. */
int64_t it_group_field(char *out, const char *group, const char *key);

/*  Polls GROUP's line (it_group_line, asserting it is listed) until its
    integer KEY is WANT or TIMEOUT_MS passes; returns the last value read
    and leaves the last line in LINE. */
int64_t it_group_wait(it_broker_t *b, const char *topic, const char *group, const char *key,
                      int64_t want, int timeout_ms, char *line, size_t cap);

/*  One delivered message as printed by `ternctl --json sub`. */
typedef struct {
    char topic[256];        //  topic
    int64_t seq;            //  per-topic sequence
    int64_t msg_id;         //  snowflake id
    char producer[80];      //  producer id ("" if none)
    int64_t producer_seq;   //  producer sequence
    int64_t priority;       //  0..9
    int64_t delivery_count; //  1 on first delivery
    int64_t timestamp_ns;   //  broker time
    char origin[80];        //  origin dc
    char key[160];          //  ordering key
    char trace_id[80];      //  W3C traceparent
    char *data;             //  payload (from data, or decoded data_b64), owned
    size_t data_len;        //  its length
    char *headers;          //  the raw headers object text, owned, or NULL
} it_msg_t;

/*  Parses every line of OUT as a delivered message; returns the count and an
    array in *MSGS (free with it_msgs_free). Lines that do not parse are
    skipped. */
size_t it_parse_msgs(const char *out, it_msg_t **msgs);
void it_msgs_free(it_msg_t *msgs, size_t count);

/*  The msg_ids of the messages in OUT (`ternctl --json sub` output), sorted
    into *IDS_P (caller frees; never NULL); returns how many. */
size_t it_parse_msg_ids(const char *out, int64_t **ids_p);

/*  A raw ZeroMQ DEALER on a broker, for protocol-level tests. */
typedef struct {
    void *ctx;                    //  zmq context, owned
    void *sock;                   //  DEALER, owned
    uint8_t hdr[TERN_HEADER_MAX]; //  last received header frame
    size_t hdr_size;              //  its size
    uint8_t *payload;             //  last received payload frame, owned
    size_t payload_size;          //  its size
    bool has_payload;             //  the last message had a second frame
    uint64_t next_req;            //  next request id
} it_raw_t;

it_raw_t *it_raw_new(const char *endpoint);
void it_raw_destroy(it_raw_t **self_p);

/*  Sends a header frame and, if PAYLOAD is not NULL, a payload frame. */
bool it_raw_send(it_raw_t *self, const void *hdr, size_t hdr_size, const void *payload,
                 size_t payload_size);

/*  Sends any number of frames (PARTS[i] of SIZES[i] bytes). */
bool it_raw_send_parts(it_raw_t *self, const void *const *parts, const size_t *sizes, size_t count);

/*  Encodes FRAME and sends it (with FRAME->payload as frame 2 when the
    command carries one). Returns the encoder's error. */
tern_err_t it_raw_send_frame(it_raw_t *self, const tern_frame_t *frame);
/*  Fills F as a peer DC's REPL_RECORD at outbox position POS: MSG_ID,
    TOPIC, ORIGIN (the sender's DC), payload "x", timestamp now. */
void it_repl_record(tern_frame_t *f, uint64_t pos, uint64_t msg_id, const char *topic,
                    const char *origin);

/*  Receives one message, decodes into OUT (borrowing from SELF until the next
    receive). Returns TERN_ETIMEOUT after TIMEOUT_MS, else the decode result. */
tern_err_t it_raw_recv(it_raw_t *self, tern_frame_t *out, int timeout_ms);

/*  Receives until a frame that is not a HEARTBEAT arrives (or the time runs
    out: TERN_ETIMEOUT). */
tern_err_t it_raw_recv_reply(it_raw_t *self, tern_frame_t *out, int timeout_ms);

/*  Sends HELLO and waits for WELCOME. */
bool it_raw_hello(it_raw_t *self, const char *name);

/*  Asserts that a ternctl run succeeded, showing its output otherwise. */
#define it_assert_ok(r, what)                                                                      \
    cr_assert_eq((r)->status, 0, "%s: exit %d%s\nstdout:\n%s\nstderr:\n%s", (what), (r)->status,   \
                 (r)->timed_out ? " (timed out)" : "", (r)->out, (r)->err)

/*  `ternctl keys gen NAME --dir DIR [--role ROLE]` (ROLE may be NULL),
    asserted to succeed; its output (the public key line) in *R if R is not
    NULL (the caller frees it), else freed. */
void it_keys_gen(const char *dir, const char *name, const char *role, it_result_t *r);

/*  GET PATH from 127.0.0.1:PORT over HTTP/1.0 (the metrics endpoint).
    Returns the status code (or -1 if unreachable) and the body in *BODY
    (caller frees; NULL on failure). */
int it_http_get(int port, const char *path, char **body);

/*  The value of sample NAME (with its labels, e.g. `x{topic="t"}`) in a
    Prometheus text document DOC; -1 if absent. */
double it_prom_sample(const char *doc, const char *name);

/*  Small helpers. */
int64_t it_now_ms(void);
void it_sleep_ms(int ms);

#endif

/*  test_client.c - unit tests of libtern (client/) and ternctl's helpers (tools/).

    What needs no broker is tested directly: option defaults, argument
    validation, parsing of durations and sizes, reconnect backoff bounds,
    timeouts and close semantics against a port that accepts TCP but never
    answers, and the refusal of a port nobody listens on.
    The "live" suite starts a real ternd from the build tree on a free
    loopback port when one was built, and is skipped otherwise.
*/
#include <criterion/criterion.h>

#include "tern.h"
#include "test_port.h"
#include "../../client/tern_backoff.h"
#include "tern_json_read.h"
#include "test_dir.h"
#include "test_threads.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

//  ---------------------------------------------------------------------------
//  Helpers

static int64_t s_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

//  Writes the endpoint of a loopback port that accepts TCP connections (the
//  kernel's backlog) but never says a word: a broker that does not answer,
//  unlike a port nobody listens on, which refuses at once. The socket stays
//  open until the test process ends.
static void s_silent_endpoint(char *endpoint, size_t size) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert(fd >= 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(bind(fd, (struct sockaddr *)&addr, sizeof addr), 0);
    cr_assert_eq(listen(fd, 64), 0);
    socklen_t len = sizeof addr;
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&addr, &len), 0);
    snprintf(endpoint, size, "tcp://127.0.0.1:%d", ntohs(addr.sin_port));
}

//  The endpoint of a loopback port nobody listens on.
static void s_refused_endpoint(char *endpoint, size_t size) {
    snprintf(endpoint, size, "tcp://127.0.0.1:%d", test_port());
}

static tern_client_t *s_dead_client(int timeout_ms) {
    char endpoint[64];
    s_silent_endpoint(endpoint, sizeof endpoint);
    tern_client_options_t options;
    tern_client_options_init(&options);
    options.timeout_ms = (uint32_t)timeout_ms;
    options.connect_timeout_ms = 200;
    tern_client_t *client = tern_client_new(endpoint, &options);
    cr_assert_not_null(client);
    return client;
}

//  ---------------------------------------------------------------------------
//  Usage without a broker

Test(client, usage_example) {
    //  A client connects in the background; calls validate at once.
    tern_client_t *client = s_dead_client(300);
    tern_pub_options_t msg;
    tern_pub_options_init(&msg);
    msg.topic = "orders.created";
    msg.payload = "hello";
    msg.size = 5;
    //  The broker never answers: the publish is queued, then completed as closed.
    cr_assert_eq(tern_publish_async(client, &msg, NULL, NULL), TERN_OK);
    cr_assert_eq(tern_client_inflight(client), 1);
    cr_assert_eq(tern_flush(client, 100), TERN_ETIMEOUT);
    cr_assert_not(tern_client_connected(client));
    tern_client_destroy(&client);
    cr_assert_null(client);
    tern_client_destroy(&client); //  idempotent
}

Test(client, options_defaults) {
    tern_client_options_t options;
    memset(&options, 0xff, sizeof options);
    tern_client_options_init(&options);
    cr_assert_eq(options.window, 256);
    cr_assert_eq(options.publish_block_ms, -1);
    cr_assert(options.idempotent);
    cr_assert_eq(options.producer_seq_start, 1);
    cr_assert_eq(options.backoff_min_ms, 100);
    cr_assert_eq(options.backoff_max_ms, 5000);
    cr_assert_null(options.producer_id);
    tern_pub_options_t pub;
    tern_pub_options_init(&pub);
    cr_assert_eq(pub.priority, 4);
    cr_assert_eq(pub.producer_seq, 0);
    tern_sub_options_t sub;
    tern_sub_options_init(&sub);
    cr_assert_eq(sub.start, TERN_FROM_FIRST);
    cr_assert_eq(sub.credit, 0);
}

Test(client, new_rejects_bad_arguments) {
    tern_client_options_t options;
    tern_client_options_init(&options);
    cr_assert_null(tern_client_new("", NULL));
    cr_assert_null(tern_client_new(" , ", NULL));
    options.window = 0;
    cr_assert_null(tern_client_new("tcp://127.0.0.1:1", &options));
    tern_client_options_init(&options);
    options.producer_id = "bad producer id";
    cr_assert_null(tern_client_new("tcp://127.0.0.1:1", &options));
    options.producer_id = "svc-a:7";
    tern_client_t *client = tern_client_new("tcp://127.0.0.1:1,tcp://127.0.0.1:2", &options);
    cr_assert_not_null(client);
    cr_assert_str_eq(tern_client_producer(client), "svc-a:7");
    tern_client_destroy(&client);
}

Test(client, random_producer_ids_differ) {
    tern_client_t *a = s_dead_client(100);
    tern_client_t *b = s_dead_client(100);
    cr_assert_str_neq(tern_client_producer(a), tern_client_producer(b));
    cr_assert_eq(strncmp(tern_client_producer(a), "p-", 2), 0);
    tern_client_destroy(&a);
    tern_client_destroy(&b);
}

Test(client, publish_validation) {
    tern_client_t *client = s_dead_client(100);
    tern_pub_options_t msg;
    tern_pub_options_init(&msg);
    cr_assert_eq(tern_publish_async(client, &msg, NULL, NULL), TERN_EINVAL); //  no topic
    msg.topic = "bad..topic";
    cr_assert_eq(tern_publish_async(client, &msg, NULL, NULL), TERN_ETOPIC);
    cr_assert(strstr(tern_last_reason(), "invalid topic 'bad..topic': tokens of [A-Za-z0-9_-]"),
              "%s", tern_last_reason());
    msg.topic = "a.*";
    cr_assert_eq(tern_publish_async(client, &msg, NULL, NULL), TERN_ETOPIC);
    msg.topic = "ok";
    msg.priority = 10;
    cr_assert_eq(tern_publish_async(client, &msg, NULL, NULL), TERN_EINVAL);
    msg.priority = 4;
    msg.trace_id = "not-a-traceparent";
    cr_assert_eq(tern_publish_async(client, &msg, NULL, NULL), TERN_ETRACE);
    msg.trace_id = NULL;
    msg.ttl_class = 7;
    cr_assert_eq(tern_publish_async(client, &msg, NULL, NULL), TERN_EINVAL);
    msg.ttl_class = TERN_CLASS_SYNC;
    static char big[TERN_DEFAULT_WINDOW * 4096 + 1];
    msg.payload = big;
    msg.size = sizeof big; //  over the 1 MiB default max payload
    cr_assert_eq(tern_publish_async(client, &msg, NULL, NULL), TERN_ETOOBIG);
    cr_assert_str_eq(tern_last_reason(), "payload 1048577 B > max_payload 1 MiB");
    msg.size = 0;
    tern_header_t headers[] = {{"", "empty key"}};
    msg.headers = headers;
    msg.header_count = 1;
    cr_assert_neq(tern_publish_async(client, &msg, NULL, NULL), TERN_OK);
    cr_assert_eq(tern_client_inflight(client), 0);
    tern_client_destroy(&client);
}

static void s_count_closed(const tern_pub_result_t *result, void *arg) {
    if (result->code == TERN_ECLOSED) {
        atomic_fetch_add((atomic_int *)arg, 1);
    }
}

Test(client, window_full_and_close_completes) {
    char endpoint[64];
    s_silent_endpoint(endpoint, sizeof endpoint);
    tern_client_options_t options;
    tern_client_options_init(&options);
    options.window = 3;
    options.publish_block_ms = 0;
    tern_client_t *client = tern_client_new(endpoint, &options);
    tern_pub_options_t msg;
    tern_pub_options_init(&msg);
    msg.topic = "t";
    atomic_int closed = 0;
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(tern_publish_async(client, &msg, s_count_closed, &closed), TERN_OK);
    }
    cr_assert_eq(tern_publish_async(client, &msg, s_count_closed, &closed), TERN_EBUSY);
    tern_client_destroy(&client);
    //  Every accepted publish completes exactly once, here with TERN_ECLOSED.
    cr_assert_eq(atomic_load(&closed), 3);
}

Test(client, window_blocks_for_publish_block_ms) {
    tern_client_options_t options;
    tern_client_options_init(&options);
    options.window = 1;
    options.publish_block_ms = 200;
    char endpoint[64];
    s_silent_endpoint(endpoint, sizeof endpoint);
    tern_client_t *client = tern_client_new(endpoint, &options);
    tern_pub_options_t msg;
    tern_pub_options_init(&msg);
    msg.topic = "t";
    cr_assert_eq(tern_publish_async(client, &msg, NULL, NULL), TERN_OK);
    int64_t start = s_ms();
    cr_assert_eq(tern_publish_async(client, &msg, NULL, NULL), TERN_EBUSY);
    int64_t waited = s_ms() - start;
    cr_assert(waited >= 190 && waited < 2000, "waited %lld ms", (long long)waited);
    tern_client_destroy(&client);
}

Test(client, sync_calls_time_out) {
    tern_client_t *client = s_dead_client(300);
    int64_t start = s_ms();
    cr_assert_eq(tern_client_wait_connected(client, 200), TERN_ETIMEOUT);
    cr_assert(s_ms() - start >= 190);
    char *json = (char *)"sentinel";
    cr_assert_eq(tern_admin(client, "status", NULL, 0, &json, 200), TERN_ETIMEOUT);
    cr_assert_null(json);
    cr_assert_eq(tern_admin(client, "bad op!", NULL, 0, &json, 200), TERN_ENAME);
    tern_pub_options_t msg;
    tern_pub_options_init(&msg);
    msg.topic = "t";
    tern_pub_result_t result;
    cr_assert_eq(tern_publish(client, &msg, 200, &result), TERN_ETIMEOUT);
    tern_subscription_t *sub = NULL;
    cr_assert_eq(tern_subscribe(client, "t.>", NULL, NULL, NULL, &sub), TERN_ETIMEOUT);
    cr_assert_null(sub);
    cr_assert_eq(tern_subscribe(client, "t.>.x", NULL, NULL, NULL, &sub), TERN_ETOPIC);
    tern_sub_options_t options;
    tern_sub_options_init(&options);
    options.group = "bad group";
    cr_assert_eq(tern_subscribe(client, "t", &options, NULL, NULL, &sub), TERN_ENAME);
    tern_client_destroy(&client);
}

Test(client, new_returns_null_with_reason) {
    //  A bad endpoint or option: NULL at once, errno EINVAL, and the reason.
    static const struct {
        const char *endpoints; //  given to tern_client_new
        const char *reason;    //  expected in tern_last_reason()
    } cases[] = {
        {"bogus", "invalid endpoint 'bogus': expected tcp://HOST:PORT"},
        {"tcp://127.0.0.1", "invalid endpoint 'tcp://127.0.0.1': no port"},
        {"http://127.0.0.1:7600", "invalid endpoint 'http://127.0.0.1:7600': unknown transport"},
        {"tcp://127.0.0.1:99999", "port '99999' is not 1..65535"},
        {"tcp://127.0.0.1:x1", "port 'x1' is not 1..65535"},
        {"tcp://127.0.0.1:7600,127.0.0.1:7601", "invalid endpoint '127.0.0.1:7601'"},
        {" , ", "no endpoint given"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        errno = 0;
        cr_assert_null(tern_client_new(cases[i].endpoints, NULL), "%s", cases[i].endpoints);
        cr_assert_eq(errno, EINVAL, "%s", cases[i].endpoints);
        cr_assert(strstr(tern_last_reason(), cases[i].reason), "%s: reason '%s'",
                  cases[i].endpoints, tern_last_reason());
    }
    tern_client_options_t options;
    tern_client_options_init(&options);
    options.window = 0;
    cr_assert_null(tern_client_new("tcp://127.0.0.1:7600", &options));
    cr_assert_str_eq(tern_last_reason(), "window 0 is not 1..65536");
    tern_client_options_init(&options);
    options.producer_id = "bad id";
    cr_assert_null(tern_client_new("tcp://127.0.0.1:7600", &options));
    cr_assert(strstr(tern_last_reason(), "invalid producer_id 'bad id'"), "%s", tern_last_reason());
    //  Other transports ZeroMQ knows pass; success clears the reason.
    tern_client_t *client = tern_client_new("ipc:///tmp/tern-test.sock", NULL);
    cr_assert_not_null(client);
    cr_assert_str_eq(tern_last_reason(), "");
    tern_client_destroy(&client);
}

Test(client, refused_connect_fails_at_once) {
    //  Nobody listens: before any session, every call that needs the broker
    //  fails with TERN_ECONNREFUSED naming the endpoint, instead of waiting
    //  for its timeout (10 s here).
    char endpoint[64], want[128];
    s_refused_endpoint(endpoint, sizeof endpoint);
    snprintf(want, sizeof want, "cannot connect to %s: connection refused", endpoint + 6);
    tern_client_options_t options;
    tern_client_options_init(&options);
    options.timeout_ms = 10000;
    tern_client_t *client = tern_client_new(endpoint, &options);
    cr_assert_not_null(client);
    cr_assert_eq(tern_client_wait_connected(client, 10000), TERN_ECONNREFUSED);
    cr_assert_str_eq(tern_last_reason(), want);
    char *json = NULL;
    cr_assert_eq(tern_admin(client, "status", NULL, 0, &json, 0), TERN_ECONNREFUSED);
    cr_assert_null(json);
    cr_assert_str_eq(tern_last_reason(), want);
    tern_pub_options_t msg;
    tern_pub_options_init(&msg);
    msg.topic = "t";
    tern_pub_result_t result;
    cr_assert_eq(tern_publish(client, &msg, 0, &result), TERN_ECONNREFUSED);
    cr_assert_eq(tern_publish_async(client, &msg, NULL, NULL), TERN_ECONNREFUSED);
    cr_assert_eq(tern_client_inflight(client), 0);
    tern_subscription_t *sub = NULL;
    cr_assert_eq(tern_subscribe(client, "t", NULL, NULL, NULL, &sub), TERN_ECONNREFUSED);
    cr_assert_null(sub);
    //  Bad input is still reported as such.
    msg.topic = "a..b";
    cr_assert_eq(tern_publish_async(client, &msg, NULL, NULL), TERN_ETOPIC);
    cr_assert_str_eq(tern_errname(TERN_ECONNREFUSED), "TERN_ECONNREFUSED");
    tern_client_destroy(&client);
}

static void s_count_refused(const tern_pub_result_t *result, void *arg) {
    if (result->code == TERN_ECONNREFUSED && strstr(result->reason, "connection refused")) {
        atomic_fetch_add((atomic_int *)arg, 1);
    }
}

Test(client, refused_by_every_endpoint) {
    //  With failover, only a refusal by every endpoint counts; publishes
    //  queued before it complete with it (and its reason).
    char a[64], b[64], endpoints[160];
    s_refused_endpoint(a, sizeof a);
    s_refused_endpoint(b, sizeof b);
    snprintf(endpoints, sizeof endpoints, "%s,%s", a, b);
    //  The move to the second endpoint waits at least half of backoff_min_ms:
    //  time enough for the three publishes to be queued before the refusal.
    tern_client_options_t options;
    tern_client_options_init(&options);
    options.backoff_min_ms = 1000;
    tern_client_t *client = tern_client_new(endpoints, &options);
    cr_assert_not_null(client);
    tern_pub_options_t msg;
    tern_pub_options_init(&msg);
    msg.topic = "t";
    atomic_int refused = 0;
    int queued = 0;
    for (int i = 0; i < 3; i++) {
        queued += tern_publish_async(client, &msg, s_count_refused, &refused) == TERN_OK;
    }
    cr_assert_eq(queued, 3); //  else the count below proves nothing
    cr_assert_eq(tern_client_wait_connected(client, 10000), TERN_ECONNREFUSED);
    char want[160];
    snprintf(want, sizeof want, "cannot connect to %s, %s: connection refused", a + 6, b + 6);
    cr_assert_str_eq(tern_last_reason(), want);
    cr_assert_eq(tern_flush(client, 10000), TERN_OK);
    cr_assert_eq(atomic_load(&refused), queued);
    tern_client_destroy(&client);
}

Test(client, parse_duration) {
    uint64_t ms;
    cr_assert_eq(tern_parse_duration("250ms", &ms), TERN_OK);
    cr_assert_eq(ms, 250);
    cr_assert_eq(tern_parse_duration("30s", &ms), TERN_OK);
    cr_assert_eq(ms, 30000);
    cr_assert_eq(tern_parse_duration("5m", &ms), TERN_OK);
    cr_assert_eq(ms, 300000);
    cr_assert_eq(tern_parse_duration("2h", &ms), TERN_OK);
    cr_assert_eq(ms, 7200000);
    cr_assert_eq(tern_parse_duration("7d", &ms), TERN_OK);
    cr_assert_eq(ms, 604800000);
    cr_assert_eq(tern_parse_duration("1500", &ms), TERN_OK);
    cr_assert_eq(ms, 1500);
    cr_assert_eq(tern_parse_duration("", &ms), TERN_EINVAL);
    cr_assert_eq(tern_parse_duration("-1s", &ms), TERN_EINVAL);
    cr_assert_eq(tern_parse_duration("5x", &ms), TERN_EINVAL);
    cr_assert_eq(tern_parse_duration("s", &ms), TERN_EINVAL);
    cr_assert_eq(tern_parse_duration("99999999999999999999d", &ms), TERN_EINVAL);
}

Test(client, parse_size) {
    uint64_t bytes;
    cr_assert_eq(tern_parse_size("512", &bytes), TERN_OK);
    cr_assert_eq(bytes, 512);
    cr_assert_eq(tern_parse_size("4k", &bytes), TERN_OK);
    cr_assert_eq(bytes, 4096);
    cr_assert_eq(tern_parse_size("1MiB", &bytes), TERN_OK);
    cr_assert_eq(bytes, 1048576);
    cr_assert_eq(tern_parse_size("2G", &bytes), TERN_OK);
    cr_assert_eq(bytes, 2147483648ull);
    cr_assert_eq(tern_parse_size("1q", &bytes), TERN_EINVAL);
    cr_assert_eq(tern_parse_size("k", &bytes), TERN_EINVAL);
}

Test(client, backoff_jitter_bounds) {
    uint64_t rng = tern_rand_seed();
    cr_assert_neq(rng, 0);
    for (uint32_t attempt = 0; attempt < 40; attempt++) {
        uint64_t full = 100;
        for (uint32_t i = 0; i < attempt && full < 5000; i++) {
            full *= 2;
        }
        full = full > 5000 ? 5000 : full;
        uint32_t lo = UINT32_MAX, hi = 0;
        for (int k = 0; k < 2000; k++) {
            uint32_t d = tern_backoff_delay(attempt, 100, 5000, &rng);
            cr_assert(d >= full / 2 && d <= full, "attempt %u: %u not in [%llu, %llu]", attempt, d,
                      (unsigned long long)full / 2, (unsigned long long)full);
            lo = d < lo ? d : lo;
            hi = d > hi ? d : hi;
        }
        //  Jittered: the values spread over most of the range.
        cr_assert(hi - lo > (full / 2) / 2, "attempt %u: spread %u", attempt, hi - lo);
    }
}

//  ---------------------------------------------------------------------------
//  Against a real ternd (skipped when it was not built)

static pid_t s_ternd_pid;
static const char *s_heartbeat = "15s";         //  ternd --heartbeat
static const char *s_heartbeat_timeout = "45s"; //  ternd --heartbeat-timeout
static void s_spawn_ternd(void);
static void s_wait_listening(void);
static char s_endpoint[64];
static char s_data_dir[TEST_DIR_MAX];

static void s_start_ternd(void) {
    char ternd[512];
    snprintf(ternd, sizeof ternd, "%s/ternd", TERN_BIN_DIR);
    if (access(ternd, X_OK) != 0) {
        cr_skip_test("no ternd in %s", TERN_BIN_DIR);
    }
    cr_assert_not_null(test_dir_make(s_data_dir, "test_client"));
    snprintf(s_endpoint, sizeof s_endpoint, "tcp://127.0.0.1:%d", test_port());
    s_spawn_ternd();
}

//  Stops the running ternd at once, as a crash would.
static void s_kill_ternd(void) {
    kill(s_ternd_pid, SIGKILL);
    waitpid(s_ternd_pid, NULL, 0);
    s_ternd_pid = 0;
}

static void s_spawn_ternd(void) {
    char ternd[512];
    snprintf(ternd, sizeof ternd, "%s/ternd", TERN_BIN_DIR);
    s_ternd_pid = fork();
    cr_assert(s_ternd_pid >= 0);
    if (s_ternd_pid == 0) {
        freopen("/dev/null", "w", stderr);
        execl(ternd, "ternd", "--data", s_data_dir, "--listen", s_endpoint, "--metrics", "off",
              "--heartbeat", s_heartbeat, "--heartbeat-timeout", s_heartbeat_timeout, (char *)NULL);
        _exit(127);
    }
    s_wait_listening();
}

//  Waits until ternd accepts connections on s_endpoint: a client started
//  before that would be refused at once (TERN_ECONNREFUSED).
static void s_wait_listening(void) {
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    addr.sin_port = htons((uint16_t)atoi(strrchr(s_endpoint, ':') + 1));
    for (int i = 0; i < 1000; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        bool up = connect(fd, (struct sockaddr *)&addr, sizeof addr) == 0;
        close(fd);
        if (up) {
            return;
        }
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
    }
    cr_assert_fail("ternd does not listen on %s", s_endpoint);
}

static void s_stop_ternd(void) {
    if (s_ternd_pid > 0) {
        kill(s_ternd_pid, SIGKILL);
        waitpid(s_ternd_pid, NULL, 0);
        s_ternd_pid = 0;
        cr_assert_eq(test_dir_remove(s_data_dir), 0);
    }
}

static tern_client_t *s_live_client(void) {
    tern_client_t *client = tern_client_new(s_endpoint, NULL);
    cr_assert_not_null(client);
    cr_assert_eq(tern_client_wait_connected(client, 5000), TERN_OK);
    return client;
}

//  A connected client that retries a lost broker at least every BACKOFF_MAX_MS.
static tern_client_t *s_live_client_backoff(uint32_t backoff_max_ms) {
    tern_client_options_t options;
    tern_client_options_init(&options);
    options.backoff_max_ms = backoff_max_ms;
    tern_client_t *client = tern_client_new(s_endpoint, &options);
    cr_assert_not_null(client);
    cr_assert_eq(tern_client_wait_connected(client, 5000), TERN_OK);
    return client;
}

TestSuite(live, .init = s_start_ternd, .fini = s_stop_ternd, .timeout = 60);

Test(live, publish_subscribe_ack) {
    tern_client_t *client = s_live_client();
    uint32_t node_id = 99;
    char dc[32];
    cr_assert_eq(tern_client_session(client, &node_id, dc, sizeof dc, NULL, 0), TERN_OK);
    cr_assert_eq(node_id, 0);
    cr_assert_str_eq(dc, "dc1");

    tern_header_t headers[] = {{"k1", "v1"}, {"k2", ""}};
    tern_pub_options_t msg;
    tern_pub_options_init(&msg);
    msg.topic = "unit.rt";
    msg.payload = "\x00\x01payload";
    msg.size = 9;
    msg.priority = 7;
    msg.key = "K";
    msg.headers = headers;
    msg.header_count = 2;
    tern_pub_result_t result;
    cr_assert_eq(tern_publish(client, &msg, 5000, &result), TERN_OK);
    cr_assert_eq(result.seq, 1);
    cr_assert_neq(result.msg_id, 0);
    cr_assert_not(result.duplicate);
    cr_assert_eq(result.producer_seq, 1);

    tern_sub_options_t options;
    tern_sub_options_init(&options);
    options.group = "g";
    tern_subscription_t *sub = NULL;
    cr_assert_eq(tern_subscribe(client, "unit.*", &options, NULL, NULL, &sub), TERN_OK);
    cr_assert_neq(tern_subscription_id(sub), 0);
    tern_message_t *got = NULL;
    cr_assert_eq(tern_subscription_next(sub, 5000, &got), TERN_OK);
    cr_assert_eq(tern_message_id(got), result.msg_id);
    cr_assert_eq(tern_message_seq(got), 1);
    cr_assert_str_eq(tern_message_topic(got), "unit.rt");
    cr_assert_eq(tern_message_priority(got), 7);
    cr_assert_eq(tern_message_delivery_count(got), 1);
    cr_assert_str_eq(tern_message_key(got), "K");
    cr_assert_str_eq(tern_message_producer(got), tern_client_producer(client));
    cr_assert_eq(tern_message_producer_seq(got), 1);
    cr_assert_eq(tern_message_size(got), 9);
    cr_assert_eq(memcmp(tern_message_data(got), "\x00\x01payload", 9), 0);
    cr_assert_eq(tern_message_header_count(got), 2);
    cr_assert_str_eq(tern_message_header_get(got, "k1"), "v1");
    cr_assert_str_eq(tern_message_header_get(got, "k2"), "");
    cr_assert_null(tern_message_header_get(got, "k3"));
    cr_assert_eq(strlen(tern_message_trace_id(got)), 55); //  broker-generated traceparent
    cr_assert_neq(tern_message_timestamp_ns(got), 0);
    cr_assert_eq(tern_message_ack(got, false), TERN_OK);
    cr_assert_eq(tern_message_ack(got, false), TERN_ESTATE); //  already settled
    tern_message_destroy(&got);
    cr_assert_eq(tern_subscription_next(sub, 200, &got), TERN_ETIMEOUT);

    char *json = NULL;
    cr_assert_eq(tern_admin(client, "status", NULL, 0, &json, 5000), TERN_OK);
    cr_assert_not_null(strstr(json, "\"node_id\":0"), "%s", json);
    free(json);
    tern_header_t args[] = {{"topic", "unit.none"}};
    cr_assert_eq(tern_admin(client, "topic.info", args, 1, &json, 5000), TERN_ENOTFOUND);
    cr_assert_null(json);
    cr_assert_eq(tern_unsubscribe(&sub), TERN_OK);
    cr_assert_null(sub);
    tern_client_destroy(&client);
}

Test(live, explicit_producer_seq_is_deduplicated) {
    tern_client_options_t options;
    tern_client_options_init(&options);
    options.producer_id = "unit-producer";
    tern_client_t *client = tern_client_new(s_endpoint, &options);
    tern_pub_options_t msg;
    tern_pub_options_init(&msg);
    msg.topic = "unit.dedup";
    msg.payload = "x";
    msg.size = 1;
    msg.producer_seq = 42;
    tern_pub_result_t first, second;
    cr_assert_eq(tern_publish(client, &msg, 5000, &first), TERN_OK);
    cr_assert_eq(tern_publish(client, &msg, 5000, &second), TERN_OK);
    cr_assert_not(first.duplicate);
    cr_assert(second.duplicate);
    cr_assert_eq(second.msg_id, first.msg_id);
    tern_client_destroy(&client);
}

Test(live, failover_to_second_endpoint) {
    char endpoints[160];
    snprintf(endpoints, sizeof endpoints, "tcp://127.0.0.1:%d,%s", test_port(), s_endpoint);
    tern_client_options_t options;
    tern_client_options_init(&options);
    options.connect_timeout_ms = 300;
    tern_client_t *client = tern_client_new(endpoints, &options);
    cr_assert_eq(tern_client_wait_connected(client, 5000), TERN_OK);
    char used[64];
    tern_client_session(client, NULL, NULL, 0, used, sizeof used);
    cr_assert_str_eq(used, s_endpoint);
    tern_client_destroy(&client);
}

static atomic_int s_acked;

static void s_count_ok(const tern_pub_result_t *result, void *arg) {
    (void)arg;
    if (result->code == TERN_OK) {
        atomic_fetch_add(&s_acked, 1);
    }
}

Test(live, async_window_and_flush) {
    tern_client_t *client = s_live_client();
    tern_pub_options_t msg;
    tern_pub_options_init(&msg);
    msg.topic = "unit.async";
    char body[100] = {0};
    msg.payload = body;
    msg.size = sizeof body;
    atomic_store(&s_acked, 0);
    for (int i = 0; i < 2000; i++) {
        cr_assert_eq(tern_publish_async(client, &msg, s_count_ok, NULL), TERN_OK);
        cr_assert_leq(tern_client_inflight(client), 256);
    }
    cr_assert_eq(tern_flush(client, 20000), TERN_OK);
    cr_assert_eq(atomic_load(&s_acked), 2000);
    cr_assert_eq(tern_client_inflight(client), 0);
    tern_client_destroy(&client);
}

static atomic_int s_dups;

static void s_count_ok_dup(const tern_pub_result_t *result, void *arg) {
    (void)arg;
    if (result->code == TERN_OK) {
        atomic_fetch_add(&s_acked, 1);
        if (result->duplicate) {
            atomic_fetch_add(&s_dups, 1);
        }
    }
}

Test(live, reconnect_resends_without_duplicates) {
    tern_client_options_t options;
    tern_client_options_init(&options);
    options.producer_id = "unit-reconnect";
    options.backoff_max_ms = 500;
    tern_client_t *client = tern_client_new(s_endpoint, &options);
    cr_assert_eq(tern_client_wait_connected(client, 5000), TERN_OK);
    tern_pub_options_t msg;
    tern_pub_options_init(&msg);
    msg.topic = "unit.reconnect";
    char body[100] = {0};
    msg.payload = body;
    msg.size = sizeof body;
    atomic_store(&s_acked, 0);
    atomic_store(&s_dups, 0);
    const int total = 4000;
    for (int i = 0; i < total; i++) {
        if (i == total / 2) {
            //  The broker dies with a full window in flight and comes back.
            s_kill_ternd();
            s_spawn_ternd();
        }
        cr_assert_eq(tern_publish_async(client, &msg, s_count_ok_dup, NULL), TERN_OK);
    }
    cr_assert_eq(tern_flush(client, 30000), TERN_OK);
    cr_assert_eq(atomic_load(&s_acked), total);
    char *json = NULL;
    tern_header_t args[] = {{"topic", "unit.reconnect"}};
    cr_assert_eq(tern_admin(client, "topic.info", args, 1, &json, 5000), TERN_OK);
    tern_json_value_t *info = tern_json_parse(json, strlen(json));
    cr_assert_not_null(info, "%s", json);
    //  Every message stored exactly once, whatever was resent.
    cr_assert_str_eq(tern_json_get(info, "msgs")->text, "4000", "%s", json);
    cr_assert_str_eq(tern_json_get(info, "last_seq")->text, "4000", "%s", json);
    tern_json_value_destroy(&info);
    free(json);
    tern_client_destroy(&client);
}

typedef struct {
    atomic_int seen;       //  deliveries
    atomic_uint max_count; //  highest delivery count seen
} s_cb_state_t;

//  Runs on the I/O thread: nack the first delivery, ack the redelivery.
static void s_on_message(tern_message_t *msg, void *arg) {
    s_cb_state_t *state = arg;
    atomic_fetch_add(&state->seen, 1);
    uint32_t count = tern_message_delivery_count(msg);
    if (count > atomic_load(&state->max_count)) {
        atomic_store(&state->max_count, count);
    }
    if (count == 1) {
        tern_message_nack(msg, 0);
    } else {
        tern_message_ack(msg, true);
    }
    tern_message_destroy(&msg);
}

//  MSG set up as a publish of the one-byte payload "x" to TOPIC.
static void s_one_byte_msg(tern_pub_options_t *msg, const char *topic) {
    tern_pub_options_init(msg);
    msg->topic = topic;
    msg->payload = "x";
    msg->size = 1;
}

Test(live, callback_subscription_nack_redelivers) {
    tern_client_t *client = s_live_client();
    tern_pub_options_t msg;
    s_one_byte_msg(&msg, "unit.cb");
    cr_assert_eq(tern_publish(client, &msg, 5000, NULL), TERN_OK);
    s_cb_state_t state = {0};
    tern_sub_options_t options;
    tern_sub_options_init(&options);
    options.group = "cb";
    options.credit = 4;
    tern_subscription_t *sub = NULL;
    cr_assert_eq(tern_subscribe(client, "unit.cb", &options, s_on_message, &state, &sub), TERN_OK);
    tern_message_t *none = NULL;
    cr_assert_eq(tern_subscription_next(sub, 0, &none), TERN_EINVAL); //  not a pull sub
    cr_assert_eq(tern_subscription_credit(sub, 0), TERN_EINVAL);
    cr_assert_eq(tern_subscription_credit(sub, 2), TERN_OK);
    for (int i = 0; i < 100 && atomic_load(&state.seen) < 2; i++) {
        usleep(50 * 1000);
    }
    cr_assert_eq(atomic_load(&state.seen), 2);
    cr_assert_eq(atomic_load(&state.max_count), 2);
    tern_client_destroy(&client);
}

//  A sync publish on an idle client wakes libtern's I/O thread once (for
//  the PUBACK) and its caller once: the caller sends on the socket itself
//  while the I/O thread sleeps in its poll, and is woken after the mutex is
//  released (docs/performance.md, "Hops of a lone message"). Before, each
//  slept about twice per publish (the I/O thread was woken to send; the
//  caller, woken under the mutex, slept on it again).
Test(live, sync_publish_wakes_each_thread_once) {
    tern_client_t *client = s_live_client();
    tern_pub_options_t msg;
    s_one_byte_msg(&msg, "unit.wakes");
    for (int i = 0; i < 20; i++) { //  the session settles (heartbeat timers, templates)
        cr_assert_eq(tern_publish(client, &msg, 5000, NULL), TERN_OK);
    }
    const long n = 400;
    long io0 = test_thread_sleeps(0, "tern-io"), me0 = test_thread_sleeps(0, NULL);
    for (long i = 0; i < n; i++) {
        cr_assert_eq(tern_publish(client, &msg, 5000, NULL), TERN_OK);
    }
    long io = test_thread_sleeps(0, "tern-io") - io0, me = test_thread_sleeps(0, NULL) - me0;
    cr_assert_lt(io, n * 3 / 2, "I/O thread slept %ld times for %ld sync publishes", io, n);
    cr_assert_lt(me, n * 3 / 2, "caller slept %ld times for %ld sync publishes", me, n);
    tern_client_destroy(&client);
}

//  What s_on_ordered saw of each of S_ORDER_THREADS topics.
#define S_ORDER_THREADS 4
#define S_ORDER_MSGS    300
typedef struct {
    atomic_int delivered;             //  deliveries, all topics
    atomic_int out_of_order;          //  deliveries not the next of their topic
    atomic_int next[S_ORDER_THREADS]; //  next payload index expected per topic
    tern_client_t *client;            //  the client publishing and consuming
} s_order_t;

//  Runs on the I/O thread while other threads publish on the same client.
static void s_on_ordered(tern_message_t *msg, void *arg) {
    s_order_t *order = arg;
    int topic = -1, index = -1;
    sscanf(tern_message_topic(msg), "unit.order.%d", &topic);
    sscanf((const char *)tern_message_data(msg), "%d", &index);
    if (topic < 0 || topic >= S_ORDER_THREADS || index != atomic_load(&order->next[topic])) {
        atomic_fetch_add(&order->out_of_order, 1);
    } else {
        atomic_fetch_add(&order->next[topic], 1);
    }
    atomic_fetch_add(&order->delivered, 1);
    tern_message_ack(msg, false);
    tern_message_destroy(&msg);
}

//  One thread's publishes to its own topic, sync and async in turn.
static void *s_publish_mixed(void *arg) {
    s_order_t *order = arg;
    static atomic_int next_thread;
    int t = atomic_fetch_add(&next_thread, 1) % S_ORDER_THREADS;
    char topic[32], body[16];
    snprintf(topic, sizeof topic, "unit.order.%d", t);
    tern_pub_options_t msg;
    tern_pub_options_init(&msg);
    msg.topic = topic;
    msg.payload = body;
    for (int i = 0; i < S_ORDER_MSGS; i++) {
        msg.size = (size_t)snprintf(body, sizeof body, "%d", i) + 1;
        tern_err_t rc = i % 3 ? tern_publish_async(order->client, &msg, NULL, NULL)
                              : tern_publish(order->client, &msg, 10000, NULL);
        if (rc != TERN_OK) {
            return (void *)1;
        }
    }
    return NULL;
}

//  Publishes that a caller sends itself and those the I/O thread sends keep
//  each thread's order, and deliveries to the same client while callers
//  send on its socket all arrive: 4 threads mix sync and async publishes
//  on one client that consumes the topics at the same time.
Test(live, sync_and_async_publishes_keep_order_across_threads) {
    s_order_t order = {0};
    order.client = s_live_client();
    tern_sub_options_t options;
    tern_sub_options_init(&options);
    options.group = "order";
    tern_subscription_t *sub = NULL;
    cr_assert_eq(tern_subscribe(order.client, "unit.order.*", &options, s_on_ordered, &order, &sub),
                 TERN_OK);
    pthread_t threads[S_ORDER_THREADS];
    for (int t = 0; t < S_ORDER_THREADS; t++) {
        cr_assert_eq(pthread_create(&threads[t], NULL, s_publish_mixed, &order), 0);
    }
    for (int t = 0; t < S_ORDER_THREADS; t++) {
        void *failed = NULL;
        pthread_join(threads[t], &failed);
        cr_assert_null(failed, "a publish failed");
    }
    cr_assert_eq(tern_flush(order.client, 20000), TERN_OK);
    const int total = S_ORDER_THREADS * S_ORDER_MSGS;
    for (int i = 0; i < 600 && atomic_load(&order.delivered) < total; i++) {
        usleep(50 * 1000);
    }
    cr_assert_eq(atomic_load(&order.delivered), total);
    cr_assert_eq(atomic_load(&order.out_of_order), 0);
    tern_client_destroy(&order.client);
}

Test(live, short_broker_heartbeat_keeps_idle_session) {
    //  A broker with a 1 s session timeout; the client's own interval is 15 s.
    s_kill_ternd();
    s_heartbeat = "200ms";
    s_heartbeat_timeout = "1s";
    s_spawn_ternd();
    tern_client_t *client = s_live_client();
    tern_pub_options_t msg;
    tern_pub_options_init(&msg);
    msg.topic = "unit.idle";
    msg.payload = "x";
    msg.size = 1;
    cr_assert_eq(tern_publish(client, &msg, 5000, NULL), TERN_OK);
    tern_subscription_t *sub = NULL;
    cr_assert_eq(tern_subscribe(client, "unit.idle", NULL, NULL, NULL, &sub), TERN_OK);
    tern_message_t *got = NULL;
    cr_assert_eq(tern_subscription_next(sub, 5000, &got), TERN_OK);
    usleep(2500 * 1000); //  idle for 2.5 broker timeouts
    //  Still the same session: the delivery can be acked, and nothing was
    //  replayed by a re-subscription.
    cr_assert_eq(tern_message_ack(got, false), TERN_OK);
    tern_message_destroy(&got);
    cr_assert_eq(tern_subscription_next(sub, 300, &got), TERN_ETIMEOUT);
    tern_client_destroy(&client);
    s_heartbeat = "15s";
    s_heartbeat_timeout = "45s";
}

Test(live, ephemeral_subscription_resumes_after_last_seq) {
    tern_client_t *client = s_live_client_backoff(300);
    tern_pub_options_t msg;
    tern_pub_options_init(&msg);
    msg.topic = "unit.eph";
    msg.payload = "x";
    msg.size = 1;
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(tern_publish(client, &msg, 5000, NULL), TERN_OK);
    }
    tern_subscription_t *sub = NULL;
    cr_assert_eq(tern_subscribe(client, "unit.eph", NULL, NULL, NULL, &sub), TERN_OK);
    for (uint64_t seq = 1; seq <= 3; seq++) {
        tern_message_t *got = NULL;
        cr_assert_eq(tern_subscription_next(sub, 5000, &got), TERN_OK);
        cr_assert_eq(tern_message_seq(got), seq);
        tern_message_ack(got, false);
        tern_message_destroy(&got);
    }
    s_kill_ternd();
    s_spawn_ternd();
    cr_assert_eq(tern_publish(client, &msg, 10000, NULL), TERN_OK); //  waits for the session
    tern_message_t *got = NULL;
    cr_assert_eq(tern_subscription_next(sub, 5000, &got), TERN_OK);
    cr_assert_eq(tern_message_seq(got), 4, "replayed seq %llu",
                 (unsigned long long)tern_message_seq(got));
    tern_message_destroy(&got);
    tern_client_destroy(&client);
}

Test(live, refused_only_before_the_first_session) {
    //  Once a session was up, a broker that goes away is retried as before:
    //  calls wait (here until their timeout), and the client reconnects.
    tern_client_t *client = s_live_client_backoff(200);
    s_kill_ternd();
    char *json = NULL;
    cr_assert_eq(tern_admin(client, "status", NULL, 0, &json, 500), TERN_ETIMEOUT);
    s_spawn_ternd();
    cr_assert_eq(tern_admin(client, "status", NULL, 0, &json, 10000), TERN_OK);
    free(json);
    tern_client_destroy(&client);
}

Test(live, admin_errors_name_the_problem) {
    tern_client_t *client = s_live_client();
    char *json = NULL;
    //  An operation the broker does not know is a bad name (as tern.h says).
    cr_assert_eq(tern_admin(client, "no.such.op", NULL, 0, &json, 0), TERN_ENAME);
    cr_assert_str_eq(tern_last_reason(), "unknown admin operation 'no.such.op'");
    tern_header_t missing[] = {{"topic", "unit.none"}};
    cr_assert_eq(tern_admin(client, "topic.info", missing, 1, &json, 0), TERN_ENOTFOUND);
    cr_assert_str_eq(tern_last_reason(), "no such topic 'unit.none'");
    tern_header_t bad[] = {{"topic", "a..b"}};
    cr_assert_eq(tern_admin(client, "topic.info", bad, 1, &json, 0), TERN_ETOPIC);
    cr_assert(strstr(tern_last_reason(), "invalid topic 'a..b'"), "%s", tern_last_reason());
    cr_assert_null(json);
    //  status says where and how the node runs.
    cr_assert_eq(tern_admin(client, "status", NULL, 0, &json, 0), TERN_OK);
    char version[32], want[128];
    snprintf(version, sizeof version, "\"version\":\"%d.%d.%d\"", TERN_VERSION_MAJOR,
             TERN_VERSION_MINOR, TERN_VERSION_PATCH);
    snprintf(want, sizeof want, "\"endpoint\":\"%s\"", s_endpoint);
    cr_assert(strstr(json, version) && strstr(json, want), "%s", json);
    cr_assert(strstr(json, "\"durability\":\"fsync\"") && strstr(json, "\"role\":\"standalone\""),
              "%s", json);
    cr_assert(strstr(json, "\"data_dir\":\"/tmp/tern-test_client-"), "%s", json);
    free(json);
    tern_client_destroy(&client);
}

typedef struct {
    tern_client_t *client;     //  the client
    const char *op;            //  operation
    const tern_header_t *args; //  its arguments
    size_t count;              //  how many
    tern_err_t rc;             //  its result
    char reason[320];          //  tern_last_reason of the call
} s_admin_call_t;

static void *s_admin_thread(void *arg) {
    s_admin_call_t *call = arg;
    char *json = NULL;
    call->rc = tern_admin(call->client, call->op, call->args, call->count, &json, 20000);
    snprintf(call->reason, sizeof call->reason, "%s", tern_last_reason());
    free(json);
    return NULL;
}

Test(live, admin_write_never_sent_twice) {
    //  Requests sent to a broker that stops answering and dies: after the
    //  reconnect a read is sent again, a write (which may have run) is not:
    //  it fails with TERN_ETIMEOUT, outcome unknown.
    tern_client_t *client = s_live_client_backoff(200);
    tern_header_t args[] = {{"topic", "unit.once"}};
    char *json = NULL;
    cr_assert_eq(tern_admin(client, "topic.create", args, 1, &json, 5000), TERN_OK);
    free(json);
    kill(s_ternd_pid, SIGSTOP);
    s_admin_call_t calls[2] = {{client, "topic.purge", args, 1, TERN_OK, ""},
                               {client, "topic.info", args, 1, TERN_OK, ""}};
    pthread_t threads[2];
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(pthread_create(&threads[i], NULL, s_admin_thread, &calls[i]), 0);
    }
    struct timespec ts = {0, 300 * 1000000L}; //  both sent, unanswered
    nanosleep(&ts, NULL);
    s_kill_ternd();
    s_spawn_ternd();
    for (int i = 0; i < 2; i++) {
        pthread_join(threads[i], NULL);
    }
    cr_assert_eq(calls[0].rc, TERN_ETIMEOUT, "%s (%s)", tern_strerror(calls[0].rc),
                 calls[0].reason);
    cr_assert(strstr(calls[0].reason, "outcome is unknown"), "%s", calls[0].reason);
    cr_assert_eq(calls[1].rc, TERN_OK, "%s (%s)", tern_strerror(calls[1].rc), calls[1].reason);
    tern_client_destroy(&client);
}

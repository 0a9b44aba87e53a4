/*  it_etcd.c - the etcd client (cluster/tern_etcd.c, tern_etcd_watch.c)
    against real etcd servers: keys, compare-and-swap, leases, watches,
    failover across members, and clear errors when etcd is gone.

    Each test starts its own etcd (etcd_harness.h) on free loopback ports
    and stops it by PID.
*/
#include "etcd_harness.h"
#include "harness.h"
#include "tern_etcd.h"
#include "test_port.h"

#include <criterion/criterion.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

static it_etcd_t *s_etcd;

static void s_start_one(void) {
    s_etcd = it_etcd_new(1);
    cr_assert_not_null(s_etcd, "etcd did not start");
}

static void s_start_three(void) {
    s_etcd = it_etcd_new(3);
    cr_assert_not_null(s_etcd, "a 3-member etcd did not start");
}

static void s_stop(void) {
    it_etcd_destroy(&s_etcd);
}

TestSuite(etcd, .init = s_start_one, .fini = s_stop, .timeout = 120);
TestSuite(etcd3, .init = s_start_three, .fini = s_stop, .timeout = 180);

static tern_etcd_t *s_client(const char *endpoints, int timeout_ms) {
    tern_etcd_t *etcd = tern_etcd_new(endpoints, timeout_ms);
    cr_assert_not_null(etcd);
    return etcd;
}

//  The one pair stored at KEY (asserted present) in *KV; caller destroys
//  the returned set.
static tern_etcd_kvs_t *s_get_one(tern_etcd_t *etcd, const char *key) {
    tern_etcd_kvs_t *kvs = NULL;
    tern_err_t err = tern_etcd_get(etcd, key, false, &kvs);
    cr_assert_eq(err, TERN_OK, "get %s: %s: %s", key, tern_errname(err), tern_etcd_reason(etcd));
    cr_assert_eq(kvs->count, 1, "get %s: %zu pairs", key, kvs->count);
    return kvs;
}

//  Number of keys under PREFIX (or at KEY when !PREFIX) now.
static size_t s_count(tern_etcd_t *etcd, const char *key, bool prefix) {
    tern_etcd_kvs_t *kvs = NULL;
    tern_err_t err = tern_etcd_get(etcd, key, prefix, &kvs);
    cr_assert_eq(err, TERN_OK, "get %s: %s", key, tern_etcd_reason(etcd));
    size_t count = kvs->count;
    tern_etcd_kvs_destroy(&kvs);
    return count;
}

//  The next event within 15 s that is not DOWN or UP (asserted to come).
static tern_etcd_event_t *s_next_change(tern_etcd_watch_t *watch) {
    int64_t deadline = it_now_ms() + 15000;
    while (it_now_ms() < deadline) {
        tern_etcd_event_t *event = tern_etcd_watch_wait(watch, 500);
        if (event && (event->type == TERN_ETCD_EV_DOWN || event->type == TERN_ETCD_EV_UP)) {
            tern_etcd_event_destroy(&event);
            continue;
        }
        if (event) {
            return event;
        }
    }
    cr_assert_fail("no watch event within 15 s");
    return NULL;
}

static void s_expect_event(tern_etcd_watch_t *watch, tern_etcd_event_type_t type, const char *key,
                           const char *value, int64_t revision) {
    tern_etcd_event_t *event = s_next_change(watch);
    cr_assert_eq(event->type, type, "event on %s: type %d, want %d", event->kv.key, event->type,
                 type);
    cr_assert_str_eq(event->kv.key, key);
    cr_assert_str_eq(event->kv.value, value);
    cr_assert_eq(event->kv.mod_revision, revision, "%s: revision %lld, want %lld", key,
                 (long long)event->kv.mod_revision, (long long)revision);
    tern_etcd_event_destroy(&event);
}

//  ---------------------------------------------------------------------------
//  Keys

Test(etcd, usage_put_get_prefix_delete) {
    //  A client on the member list, 3 s per call.
    tern_etcd_t *etcd = s_client(s_etcd->endpoints, 3000);
    int64_t rev_a = 0, rev_b = 0;
    cr_assert_eq(tern_etcd_put(etcd, "tern/a", "1", 1, 0, &rev_a), TERN_OK, "%s",
                 tern_etcd_reason(etcd));
    cr_assert_eq(tern_etcd_put(etcd, "tern/b", "two", 3, 0, &rev_b), TERN_OK);
    cr_assert_eq(tern_etcd_put(etcd, "ternx", "outside", 7, 0, NULL), TERN_OK);
    cr_assert_gt(rev_b, rev_a);
    cr_assert_str_eq(tern_etcd_reason(etcd), "");

    //  One key: its value and revisions.
    tern_etcd_kvs_t *kvs = s_get_one(etcd, "tern/a");
    cr_assert_str_eq(kvs->kvs[0].key, "tern/a");
    cr_assert_str_eq(kvs->kvs[0].value, "1");
    cr_assert_eq(kvs->kvs[0].create_revision, rev_a);
    cr_assert_eq(kvs->kvs[0].mod_revision, rev_a);
    cr_assert_eq(kvs->kvs[0].version, 1);
    cr_assert_eq(kvs->kvs[0].lease, 0);
    cr_assert_geq(kvs->revision, rev_b + 1);
    tern_etcd_kvs_destroy(&kvs);

    //  A prefix: both keys in key order, not "ternx".
    cr_assert_eq(tern_etcd_get(etcd, "tern/", true, &kvs), TERN_OK);
    cr_assert_eq(kvs->count, 2);
    cr_assert_str_eq(kvs->kvs[0].key, "tern/a");
    cr_assert_str_eq(kvs->kvs[1].key, "tern/b");
    cr_assert_str_eq(kvs->kvs[1].value, "two");
    tern_etcd_kvs_destroy(&kvs);
    cr_assert_eq(s_count(etcd, "tern/none", false), 0);
    cr_assert_eq(s_count(etcd, "", true), 3); //  the whole keyspace

    //  Bytes, NULs included, round-trip; an overwrite bumps the version.
    int64_t rev = 0;
    cr_assert_eq(tern_etcd_put(etcd, "tern/a", "x\0y\xff", 4, 0, &rev), TERN_OK);
    kvs = s_get_one(etcd, "tern/a");
    cr_assert_eq(kvs->kvs[0].value_size, 4);
    cr_assert_eq(memcmp(kvs->kvs[0].value, "x\0y\xff", 4), 0);
    cr_assert_eq(kvs->kvs[0].create_revision, rev_a);
    cr_assert_eq(kvs->kvs[0].mod_revision, rev);
    cr_assert_eq(kvs->kvs[0].version, 2);
    tern_etcd_kvs_destroy(&kvs);

    //  Deletes: one key, then nothing, then a prefix.
    int64_t deleted = -1;
    cr_assert_eq(tern_etcd_delete(etcd, "tern/a", false, &deleted, &rev), TERN_OK);
    cr_assert_eq(deleted, 1);
    cr_assert_eq(s_count(etcd, "tern/a", false), 0);
    cr_assert_eq(tern_etcd_delete(etcd, "tern/a", false, &deleted, NULL), TERN_OK);
    cr_assert_eq(deleted, 0);
    cr_assert_eq(tern_etcd_delete(etcd, "tern/", true, &deleted, NULL), TERN_OK);
    cr_assert_eq(deleted, 1);
    cr_assert_eq(s_count(etcd, "tern/", true), 0);
    cr_assert_eq(s_count(etcd, "ternx", false), 1);
    tern_etcd_destroy(&etcd);
    tern_etcd_destroy(&etcd); //  idempotent
    cr_assert_null(etcd);
}

Test(etcd, bad_arguments_and_refusals) {
    cr_assert_null(tern_etcd_new("", 1000));
    cr_assert_null(tern_etcd_new(NULL, 1000));
    cr_assert_null(tern_etcd_new("127.0.0.1:2379", 1000));
    cr_assert_null(tern_etcd_new("http://127.0.0.1:2379,ftp://x", 1000));
    cr_assert_null(tern_etcd_new(s_etcd->endpoints, 0));
    cr_assert_null(tern_etcd_watch_new(s_etcd->endpoints, "p/", 0));
    cr_assert_null(tern_etcd_watch_new("nope", "p/", 1));

    tern_etcd_t *etcd = s_client(s_etcd->endpoints, 3000);
    tern_etcd_kvs_t *kvs = NULL;
    cr_assert_eq(tern_etcd_get(etcd, "", false, &kvs), TERN_EINVAL);
    cr_assert_null(kvs);
    cr_assert_eq(tern_etcd_put(etcd, "", "v", 1, 0, NULL), TERN_EINVAL);
    cr_assert_eq(tern_etcd_delete(etcd, "", false, NULL, NULL), TERN_EINVAL);
    int64_t lease = 0;
    cr_assert_eq(tern_etcd_lease_grant(etcd, 0, &lease, NULL), TERN_EINVAL);
    bool won = true;
    tern_etcd_compare_t bad = {.key = NULL, .target = TERN_ETCD_MOD};
    cr_assert_eq(tern_etcd_txn(etcd, &bad, 1, NULL, 0, &won, NULL), TERN_EINVAL);
    cr_assert_not(won);

    //  etcd's own refusals: a value over its request limit (1.5 MiB), one
    //  over its gRPC message limit (2 MiB).
    size_t sizes[] = {1600u << 10, 2u << 20};
    for (int i = 0; i < 2; i++) {
        char *value = calloc(1, sizes[i]);
        tern_err_t err = tern_etcd_put(etcd, "big", value, sizes[i], 0, NULL);
        cr_assert_eq(err, TERN_ETOOBIG, "%s: %s", tern_errname(err), tern_etcd_reason(etcd));
        free(value);
    }
    tern_etcd_destroy(&etcd);
}

//  ---------------------------------------------------------------------------
//  Compare-and-swap

Test(etcd, cas_on_mod_create_value_lease) {
    tern_etcd_t *a = s_client(s_etcd->endpoints, 3000);
    tern_etcd_t *b = s_client(s_etcd->endpoints, 3000);
    int64_t rev0 = 0;
    cr_assert_eq(tern_etcd_put(a, "cas/k", "v0", 2, 0, &rev0), TERN_OK);

    //  Both read rev0; both write "if still rev0": the first wins, the
    //  second's revision is stale and it changes nothing.
    tern_etcd_compare_t cmp = {.key = "cas/k", .target = TERN_ETCD_MOD, .revision = rev0};
    tern_etcd_op_t put_a = {.key = "cas/k", .value = "A", .value_size = 1};
    tern_etcd_op_t put_b = {.key = "cas/k", .value = "B", .value_size = 1};
    bool won = false;
    int64_t rev_a = 0, rev_b = 0;
    cr_assert_eq(tern_etcd_txn(a, &cmp, 1, &put_a, 1, &won, &rev_a), TERN_OK, "%s",
                 tern_etcd_reason(a));
    cr_assert(won);
    cr_assert_gt(rev_a, rev0);
    cr_assert_eq(tern_etcd_txn(b, &cmp, 1, &put_b, 1, &won, &rev_b), TERN_OK);
    cr_assert_not(won);
    cr_assert_eq(rev_b, rev_a, "a failed txn reports the current revision");
    tern_etcd_kvs_t *kvs = s_get_one(b, "cas/k");
    cr_assert_str_eq(kvs->kvs[0].value, "A");
    cr_assert_eq(kvs->kvs[0].mod_revision, rev_a, "the epoch is the revision of the write");
    tern_etcd_kvs_destroy(&kvs);

    //  Create-if-absent: CREATE == 0 fails on an existing key, wins once on
    //  a new one.
    tern_etcd_compare_t absent = {.key = "cas/k", .target = TERN_ETCD_CREATE, .revision = 0};
    cr_assert_eq(tern_etcd_txn(a, &absent, 1, &put_a, 1, &won, NULL), TERN_OK);
    cr_assert_not(won);
    absent.key = "cas/new";
    tern_etcd_op_t put_new = {.key = "cas/new", .value = "n", .value_size = 1};
    cr_assert_eq(tern_etcd_txn(a, &absent, 1, &put_new, 1, &won, NULL), TERN_OK);
    cr_assert(won);
    cr_assert_eq(tern_etcd_txn(b, &absent, 1, &put_new, 1, &won, NULL), TERN_OK);
    cr_assert_not(won);

    //  Value compare, then a delete of both keys in one transaction.
    tern_etcd_compare_t is_b = {
        .key = "cas/k", .target = TERN_ETCD_VALUE, .value = "B", .value_size = 1};
    tern_etcd_op_t del_all = {.remove = true, .key = "cas/", .prefix = true};
    cr_assert_eq(tern_etcd_txn(a, &is_b, 1, &del_all, 1, &won, NULL), TERN_OK);
    cr_assert_not(won);
    tern_etcd_compare_t is_a = is_b;
    is_a.value = "A";
    cr_assert_eq(tern_etcd_txn(a, &is_a, 1, &del_all, 1, &won, NULL), TERN_OK);
    cr_assert(won);
    cr_assert_eq(s_count(a, "cas/", true), 0);

    //  Lease compare: a key held by our lease.
    int64_t lease = 0;
    cr_assert_eq(tern_etcd_lease_grant(a, 30, &lease, NULL), TERN_OK);
    cr_assert_eq(tern_etcd_put(a, "cas/held", "me", 2, lease, NULL), TERN_OK);
    tern_etcd_compare_t ours = {.key = "cas/held", .target = TERN_ETCD_LEASE, .revision = lease};
    tern_etcd_compare_t theirs = ours;
    theirs.revision = lease + 1;
    tern_etcd_op_t touch = {
        .key = "cas/held", .value = "still me", .value_size = 8, .lease = lease};
    cr_assert_eq(tern_etcd_txn(b, &theirs, 1, &touch, 1, &won, NULL), TERN_OK);
    cr_assert_not(won);
    cr_assert_eq(tern_etcd_txn(b, &ours, 1, &touch, 1, &won, NULL), TERN_OK);
    cr_assert(won);
    tern_etcd_destroy(&a);
    tern_etcd_destroy(&b);
}

typedef struct {
    const char *endpoints; //  etcd
    const char *name;      //  value this racer writes
    int rounds;            //  keys raced for
    atomic_int *gate;      //  round both racers may start
    bool won[32];          //  per round: this racer's txn succeeded
    tern_err_t err;        //  first error, if any
} s_racer_t;

static void *s_race(void *arg) {
    s_racer_t *r = arg;
    tern_etcd_t *etcd = tern_etcd_new(r->endpoints, 5000);
    for (int round = 0; round < r->rounds && etcd; round++) {
        while (atomic_load(r->gate) < round) {
            it_sleep_ms(1);
        }
        char key[32];
        snprintf(key, sizeof key, "race/%d", round);
        tern_etcd_compare_t absent = {.key = key, .target = TERN_ETCD_CREATE, .revision = 0};
        tern_etcd_op_t claim = {.key = key, .value = r->name, .value_size = strlen(r->name)};
        tern_err_t err = tern_etcd_txn(etcd, &absent, 1, &claim, 1, &r->won[round], NULL);
        if (err != TERN_OK && r->err == TERN_OK) {
            r->err = err;
        }
    }
    tern_etcd_destroy(&etcd);
    return NULL;
}

Test(etcd, two_clients_race_exactly_one_wins) {
    atomic_int gate = -1;
    s_racer_t racers[2] = {
        {.endpoints = s_etcd->endpoints, .name = "one", .rounds = 20, .gate = &gate},
        {.endpoints = s_etcd->endpoints, .name = "two", .rounds = 20, .gate = &gate},
    };
    pthread_t threads[2];
    for (int i = 0; i < 2; i++) {
        pthread_create(&threads[i], NULL, s_race, &racers[i]);
    }
    tern_etcd_t *etcd = s_client(s_etcd->endpoints, 3000);
    for (int round = 0; round < 20; round++) {
        atomic_store(&gate, round);
        char key[32];
        snprintf(key, sizeof key, "race/%d", round);
        while (s_count(etcd, key, false) == 0) {
            it_sleep_ms(1);
        }
    }
    for (int i = 0; i < 2; i++) {
        pthread_join(threads[i], NULL);
        cr_assert_eq(racers[i].err, TERN_OK, "racer %d: %s", i, tern_errname(racers[i].err));
    }
    for (int round = 0; round < 20; round++) {
        cr_assert_neq(racers[0].won[round], racers[1].won[round], "round %d: one winner", round);
        char key[32];
        snprintf(key, sizeof key, "race/%d", round);
        tern_etcd_kvs_t *kvs = s_get_one(etcd, key);
        cr_assert_str_eq(kvs->kvs[0].value, racers[0].won[round] ? "one" : "two");
        tern_etcd_kvs_destroy(&kvs);
    }
    tern_etcd_destroy(&etcd);
}

//  ---------------------------------------------------------------------------
//  Leases

Test(etcd, lease_keepalive_lapse_and_revoke) {
    tern_etcd_t *etcd = s_client(s_etcd->endpoints, 3000);
    int64_t lease = 0, ttl = 0;
    cr_assert_eq(tern_etcd_lease_grant(etcd, 2, &lease, &ttl), TERN_OK, "%s",
                 tern_etcd_reason(etcd));
    cr_assert_neq(lease, 0);
    cr_assert_geq(ttl, 2);
    cr_assert_eq(tern_etcd_put(etcd, "lease/k", "v", 1, lease, NULL), TERN_OK);
    tern_etcd_kvs_t *kvs = s_get_one(etcd, "lease/k");
    cr_assert_eq(kvs->kvs[0].lease, lease);
    tern_etcd_kvs_destroy(&kvs);

    //  Kept alive for more than twice the TTL: the key stays.
    int64_t until = it_now_ms() + 3 * ttl * 1000;
    while (it_now_ms() < until) {
        int64_t left = 0;
        cr_assert_eq(tern_etcd_lease_keepalive(etcd, lease, &left), TERN_OK, "%s",
                     tern_etcd_reason(etcd));
        cr_assert_gt(left, 0);
        cr_assert_eq(s_count(etcd, "lease/k", false), 1, "the key went while kept alive");
        it_sleep_ms(300);
    }

    //  Left alone, the lease lapses and takes the key with it.
    int64_t deadline = it_now_ms() + 20000;
    while (s_count(etcd, "lease/k", false) == 1 && it_now_ms() < deadline) {
        it_sleep_ms(100);
    }
    cr_assert_eq(s_count(etcd, "lease/k", false), 0, "the key outlived its lease");
    cr_assert_eq(tern_etcd_lease_keepalive(etcd, lease, &ttl), TERN_ESTATE);
    cr_assert_eq(ttl, 0);
    cr_assert(strstr(tern_etcd_reason(etcd), "gone"), "%s", tern_etcd_reason(etcd));
    cr_assert_eq(tern_etcd_put(etcd, "lease/k", "v", 1, lease, NULL), TERN_ESTATE);
    cr_assert_eq(tern_etcd_lease_revoke(etcd, lease), TERN_ESTATE);

    //  Revoke takes the keys at once.
    cr_assert_eq(tern_etcd_lease_grant(etcd, 60, &lease, NULL), TERN_OK);
    cr_assert_eq(tern_etcd_put(etcd, "lease/a", "1", 1, lease, NULL), TERN_OK);
    cr_assert_eq(tern_etcd_put(etcd, "lease/b", "2", 1, lease, NULL), TERN_OK);
    cr_assert_eq(s_count(etcd, "lease/", true), 2);
    cr_assert_eq(tern_etcd_lease_revoke(etcd, lease), TERN_OK, "%s", tern_etcd_reason(etcd));
    cr_assert_eq(s_count(etcd, "lease/", true), 0);
    cr_assert_eq(tern_etcd_lease_keepalive(etcd, lease, NULL), TERN_ESTATE);
    tern_etcd_destroy(&etcd);
}

//  ---------------------------------------------------------------------------
//  Watches

Test(etcd, watch_sees_puts_and_deletes_in_order) {
    tern_etcd_t *etcd = s_client(s_etcd->endpoints, 3000);
    int64_t rev0 = 0, r1 = 0, r2 = 0, r3 = 0, r4 = 0;
    cr_assert_eq(tern_etcd_put(etcd, "w/0", "before", 6, 0, &rev0), TERN_OK);
    tern_etcd_watch_t *watch = tern_etcd_watch_new(s_etcd->endpoints, "w/", rev0 + 1);
    cr_assert_not_null(watch);
    //  Nothing yet: the fd is not readable, next returns NULL at once.
    struct pollfd pfd = {.fd = tern_etcd_watch_fd(watch), .events = POLLIN};
    cr_assert_eq(poll(&pfd, 1, 200), 0);
    cr_assert_null(tern_etcd_watch_next(watch));

    cr_assert_eq(tern_etcd_put(etcd, "w/a", "1", 1, 0, &r1), TERN_OK);
    cr_assert_eq(tern_etcd_put(etcd, "w/b", "2", 1, 0, &r2), TERN_OK);
    cr_assert_eq(tern_etcd_delete(etcd, "w/a", false, NULL, &r3), TERN_OK);
    cr_assert_eq(tern_etcd_put(etcd, "wx", "outside", 7, 0, NULL), TERN_OK);
    cr_assert_eq(tern_etcd_put(etcd, "w/b", "3", 1, 0, &r4), TERN_OK);

    cr_assert_eq(poll(&pfd, 1, 10000), 1, "the fd wakes the reader");
    s_expect_event(watch, TERN_ETCD_EV_PUT, "w/a", "1", r1);
    s_expect_event(watch, TERN_ETCD_EV_PUT, "w/b", "2", r2);
    s_expect_event(watch, TERN_ETCD_EV_DELETE, "w/a", "", r3);
    s_expect_event(watch, TERN_ETCD_EV_PUT, "w/b", "3", r4);
    cr_assert_null(tern_etcd_watch_wait(watch, 300), "nothing outside the prefix");
    tern_etcd_watch_destroy(&watch);

    //  From an older revision, history is replayed.
    watch = tern_etcd_watch_new(s_etcd->endpoints, "w/", rev0);
    s_expect_event(watch, TERN_ETCD_EV_PUT, "w/0", "before", rev0);
    s_expect_event(watch, TERN_ETCD_EV_PUT, "w/a", "1", r1);
    tern_etcd_watch_destroy(&watch); //  with undelivered events
    tern_etcd_watch_destroy(&watch);
    tern_etcd_destroy(&etcd);
}

Test(etcd, watch_from_a_compacted_revision_says_so) {
    tern_etcd_t *etcd = s_client(s_etcd->endpoints, 3000);
    int64_t rev = 0;
    for (int i = 0; i < 5; i++) {
        cr_assert_eq(tern_etcd_put(etcd, "c/k", "v", 1, 0, &rev), TERN_OK);
    }
    char at[32];
    snprintf(at, sizeof at, "%lld", (long long)rev);
    cr_assert_eq(it_etcdctl(s_etcd, "compact", at, NULL), 0);
    tern_etcd_watch_t *watch = tern_etcd_watch_new(s_etcd->endpoints, "c/", 1);
    tern_etcd_event_t *event = s_next_change(watch);
    cr_assert_eq(event->type, TERN_ETCD_EV_COMPACTED);
    cr_assert_eq(event->kv.mod_revision, rev);
    tern_etcd_event_destroy(&event);
    cr_assert_null(tern_etcd_watch_wait(watch, 300), "COMPACTED is the last event");
    tern_etcd_watch_destroy(&watch);
    tern_etcd_destroy(&etcd);
}

//  ---------------------------------------------------------------------------
//  Failover and etcd trouble

Test(etcd, dead_first_endpoint_then_live_one) {
    char endpoints[256];
    snprintf(endpoints, sizeof endpoints, "http://127.0.0.1:%d,%s", test_port(), s_etcd->url[0]);
    tern_etcd_t *etcd = s_client(endpoints, 3000);
    cr_assert_eq(tern_etcd_put(etcd, "f/k", "v", 1, 0, NULL), TERN_OK, "%s",
                 tern_etcd_reason(etcd));
    cr_assert_str_eq(tern_etcd_endpoint(etcd), s_etcd->url[0]);
    cr_assert_eq(s_count(etcd, "f/k", false), 1);
    tern_etcd_destroy(&etcd);
}

Test(etcd, stopped_or_paused_etcd_gives_clear_errors) {
    tern_etcd_t *etcd = s_client(s_etcd->endpoints, 1000);
    int64_t lease = 0;
    cr_assert_eq(tern_etcd_lease_grant(etcd, 30, &lease, NULL), TERN_OK);
    tern_etcd_watch_t *watch = tern_etcd_watch_new(s_etcd->endpoints, "s/", 1);
    it_sleep_ms(300); //  let the stream connect

    it_etcd_stop(s_etcd);
    tern_etcd_kvs_t *kvs = NULL;
    bool won = true;
    tern_etcd_compare_t cmp = {.key = "s/k", .target = TERN_ETCD_CREATE};
    tern_etcd_op_t op = {.key = "s/k", .value = "v", .value_size = 1};
    cr_assert_eq(tern_etcd_put(etcd, "s/k", "v", 1, 0, NULL), TERN_ECLOSED);
    cr_assert(strstr(tern_etcd_reason(etcd), s_etcd->url[0]), "%s", tern_etcd_reason(etcd));
    cr_assert_eq(tern_etcd_get(etcd, "s/k", false, &kvs), TERN_ECLOSED);
    cr_assert_null(kvs);
    cr_assert_eq(tern_etcd_txn(etcd, &cmp, 1, &op, 1, &won, NULL), TERN_ECLOSED);
    cr_assert_not(won);
    cr_assert_eq(tern_etcd_lease_keepalive(etcd, lease, NULL), TERN_ECLOSED);
    tern_etcd_event_t *event = tern_etcd_watch_wait(watch, 10000);
    cr_assert_not_null(event);
    cr_assert_eq(event->type, TERN_ETCD_EV_DOWN);
    cr_assert_not_null(event->reason);
    tern_etcd_event_destroy(&event);

    //  Back: the same client and watch carry on.
    cr_assert(it_etcd_start_member(s_etcd, 0));
    int64_t rev = 0;
    cr_assert_eq(tern_etcd_put(etcd, "s/k", "v", 1, 0, &rev), TERN_OK, "%s",
                 tern_etcd_reason(etcd));
    cr_assert_eq(tern_etcd_lease_keepalive(etcd, lease, NULL), TERN_OK);
    s_expect_event(watch, TERN_ETCD_EV_PUT, "s/k", "v", rev);

    //  Paused (accepts connections, never answers): a timeout, not a hang.
    it_etcd_pause_member(s_etcd, 0);
    tern_err_t err = tern_etcd_get(etcd, "s/k", false, &kvs);
    cr_assert_eq(err, TERN_ETIMEOUT, "%s: %s", tern_errname(err), tern_etcd_reason(etcd));
    cr_assert_eq(tern_etcd_txn(etcd, &cmp, 1, &op, 1, &won, NULL), TERN_ETIMEOUT);
    cr_assert(strstr(tern_etcd_reason(etcd), "unknown"), "%s", tern_etcd_reason(etcd));
    it_etcd_resume_member(s_etcd, 0);
    cr_assert_eq(s_count(etcd, "s/k", false), 1);
    tern_etcd_watch_destroy(&watch);
    tern_etcd_destroy(&etcd);
}

Test(etcd3, fails_over_when_the_leading_member_is_killed) {
    //  The member that leads raft goes, and it is the one the client and the
    //  watch talk to: the others elect a new leader and the client moves.
    int lead = it_etcd_leader(s_etcd);
    cr_assert_geq(lead, 0, "no member leads");
    char endpoints[256];
    snprintf(endpoints, sizeof endpoints, "%s,%s,%s", s_etcd->url[lead],
             s_etcd->url[(lead + 1) % 3], s_etcd->url[(lead + 2) % 3]);
    //  10 s per call: requests caught by the election wait for etcd's own
    //  timeout on one member while the client tries the next.
    tern_etcd_t *etcd = s_client(endpoints, 10000);
    int64_t rev0 = 0;
    cr_assert_eq(tern_etcd_put(etcd, "f/0", "a", 1, 0, &rev0), TERN_OK, "%s",
                 tern_etcd_reason(etcd));
    cr_assert_str_eq(tern_etcd_endpoint(etcd), s_etcd->url[lead]);
    int64_t lease = 0;
    cr_assert_eq(tern_etcd_lease_grant(etcd, 10, &lease, NULL), TERN_OK);
    //  The watch streams from the first member too.
    tern_etcd_watch_t *watch = tern_etcd_watch_new(endpoints, "f/", rev0 + 1);
    int64_t r1 = 0, r2 = 0;
    cr_assert_eq(tern_etcd_put(etcd, "f/1", "b", 1, 0, &r1), TERN_OK);
    s_expect_event(watch, TERN_ETCD_EV_PUT, "f/1", "b", r1);

    it_etcd_kill_member(s_etcd, lead);
    cr_assert_eq(tern_etcd_put(etcd, "f/2", "c", 1, lease, &r2), TERN_OK, "%s",
                 tern_etcd_reason(etcd));
    cr_assert_str_neq(tern_etcd_endpoint(etcd), s_etcd->url[lead]);
    cr_assert_eq(s_count(etcd, "f/", true), 3);
    cr_assert_eq(tern_etcd_lease_keepalive(etcd, lease, NULL), TERN_OK, "%s",
                 tern_etcd_reason(etcd));
    bool won = false;
    tern_etcd_compare_t cmp = {.key = "f/2", .target = TERN_ETCD_MOD, .revision = r2};
    tern_etcd_op_t op = {.key = "f/2", .value = "d", .value_size = 1};
    int64_t r3 = 0;
    cr_assert_eq(tern_etcd_txn(etcd, &cmp, 1, &op, 1, &won, &r3), TERN_OK);
    cr_assert(won);

    //  The watch went DOWN, resumed on another member, and lost nothing.
    tern_etcd_event_t *event = tern_etcd_watch_wait(watch, 15000);
    cr_assert_not_null(event);
    cr_assert_eq(event->type, TERN_ETCD_EV_DOWN);
    tern_etcd_event_destroy(&event);
    event = tern_etcd_watch_wait(watch, 15000);
    cr_assert_not_null(event);
    cr_assert_eq(event->type, TERN_ETCD_EV_UP);
    tern_etcd_event_destroy(&event);
    s_expect_event(watch, TERN_ETCD_EV_PUT, "f/2", "c", r2);
    s_expect_event(watch, TERN_ETCD_EV_PUT, "f/2", "d", r3);
    cr_assert_null(tern_etcd_watch_wait(watch, 300), "no event twice");
    tern_etcd_watch_destroy(&watch);
    tern_etcd_destroy(&etcd);
}

typedef struct {
    tern_etcd_t *etcd; //  client on the last member
    tern_err_t err;    //  the put's result
} s_put_t;

static void *s_put_after(void *arg) {
    s_put_t *put = arg;
    put->err = tern_etcd_put(put->etcd, "q/k", "after", 5, 0, NULL);
    return NULL;
}

Test(etcd3, without_quorum_no_leader_at_once_then_rides_through_election) {
    tern_etcd_t *etcd = s_client(s_etcd->url[2], 3000);
    cr_assert_eq(tern_etcd_put(etcd, "q/k", "v", 1, 0, NULL), TERN_OK, "%s",
                 tern_etcd_reason(etcd));
    it_etcd_kill_member(s_etcd, 0);
    it_etcd_kill_member(s_etcd, 1);
    //  Once the last member sees it has no leader, it says so (require-leader
    //  metadata) rather than holding the request until etcd's own timeout.
    int64_t deadline = it_now_ms() + 20000;
    tern_err_t err = TERN_OK;
    while (it_now_ms() < deadline) {
        err = tern_etcd_put(etcd, "q/k", "w", 1, 0, NULL);
        cr_assert(err == TERN_OK || err == TERN_EBUSY || err == TERN_ETIMEOUT, "%s: %s",
                  tern_errname(err), tern_etcd_reason(etcd));
        if (err == TERN_EBUSY) {
            break;
        }
        it_sleep_ms(200);
    }
    cr_assert_eq(err, TERN_EBUSY, "%s: %s", tern_errname(err), tern_etcd_reason(etcd));
    cr_assert(strstr(tern_etcd_reason(etcd), "no leader"), "%s", tern_etcd_reason(etcd));
    tern_etcd_kvs_t *kvs = NULL;
    cr_assert_eq(tern_etcd_get(etcd, "q/k", false, &kvs), TERN_EBUSY, "no stale read");
    tern_etcd_destroy(&etcd);

    //  A call made while there is no leader rides through the election
    //  that follows a member's return, within its deadline.
    //  (The put runs on a thread: etcd members must be started from the
    //  main thread, as they die with the thread that forked them.)
    s_put_t put = {.etcd = s_client(s_etcd->url[2], 30000), .err = TERN_EINTERNAL};
    pthread_t putter;
    pthread_create(&putter, NULL, s_put_after, &put);
    it_sleep_ms(500); //  the put is under way, meeting "no leader"
    cr_assert(it_etcd_start_member(s_etcd, 0));
    pthread_join(putter, NULL);
    etcd = put.etcd;
    cr_assert_eq(put.err, TERN_OK, "%s: %s", tern_errname(put.err), tern_etcd_reason(etcd));
    kvs = s_get_one(etcd, "q/k");
    cr_assert_str_eq(kvs->kvs[0].value, "after");
    tern_etcd_kvs_destroy(&kvs);
    tern_etcd_destroy(&etcd);
}

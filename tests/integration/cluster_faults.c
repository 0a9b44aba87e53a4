/*  cluster_faults.c - the fault runs of the cluster fault tests (see the
    .h): producers, the consumer group, the history and tern-check.

    TERN_FAULT_LOGS=1 prints every node's log (its last 8 KB) before the
    freeze.
*/
#include "cluster_faults.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define S_PUB_TIMEOUT_MS 5000 //  > cluster/ack_timeout: a refusal comes before it
#define S_GROUP          "fault-g"
#define S_STALE          50 //  publishes queued to the stopped leader

const char *const it_fault_flags[] = {
    "--lease", "1s", "--ack-timeout", "2s", "--isr-lag", "1s", "--dedup-window", "10m", NULL};

//  it_fault_flags with the lease, ack_timeout and isr_lag the long runs may set
//  instead (TERN_CHAOS_LEASE, TERN_CHAOS_ACK_TIMEOUT, TERN_CHAOS_ISR_LAG;
//  tools/chaos/leader-kills.sh's profiles), so a failover can be timed
//  under the profile it documents.
static const char *const *s_run_flags(const char **flags) {
    const char *lease = getenv("TERN_CHAOS_LEASE");
    const char *ack = getenv("TERN_CHAOS_ACK_TIMEOUT");
    const char *lag = getenv("TERN_CHAOS_ISR_LAG");
    int k = 0;
    for (; it_fault_flags[k]; k++) {
        flags[k] = it_fault_flags[k];
    }
    flags[k] = NULL;
    flags[1] = lease && *lease ? lease : flags[1];
    flags[3] = ack && *ack ? ack : flags[3];
    flags[5] = lag && *lag ? lag : flags[5];
    return flags;
}

static it_fault_run_t *s_running; //  the test's run while its producers run

//  A client for P, trying node P->first's endpoint first.
static tern_client_t *s_connect(it_fault_producer_t *p, const char *name) {
    char eps[IT_CLUSTER_NODES_MAX * 64];
    it_cluster_endpoints_from(p->run->cl, p->first, eps, sizeof eps);
    tern_client_options_t options;
    tern_client_options_init(&options);
    options.name = name;
    options.producer_id = p->producer;
    options.window = 64;
    options.connect_timeout_ms = 1000;
    options.backoff_min_ms = 50;
    options.backoff_max_ms = 300;
    return tern_client_new(eps, &options);
}

//  After a failure: the node an ENOTLEADER reason names ("... led by node N
//  at ENDPOINT"), the same node after TERN_EREPLICAS (it leads, its
//  replicas lag), else the next node.
static void s_next_first(it_fault_producer_t *p, tern_err_t rc, const char *reason) {
    if (rc == TERN_EREPLICAS) {
        return;
    }
    const char *at = rc == TERN_ENOTLEADER && reason ? strstr(reason, "led by node ") : NULL;
    if (at != NULL) {
        int node = atoi(at + 12);
        if (node >= 0 && node < p->run->cl->count) {
            p->first = node;
            return;
        }
    }
    p->first = (p->first + 1) % p->run->cl->count;
}

static void s_record_publish(it_fault_producer_t *p, const char *client, uint64_t pseq,
                             tern_err_t rc, const tern_pub_result_t *res) {
    if (rc == TERN_OK) {
        fprintf(p->run->hist,
                "{\"ev\":\"publish\",\"client\":\"%s\",\"producer\":\"%s\",\"producer_seq\":%llu,"
                "\"topic\":\"%s\",\"outcome\":\"ok\",\"msg_id\":%llu,\"seq\":%llu,"
                "\"duplicate\":%s}\n",
                client, p->producer, (unsigned long long)pseq, p->topic,
                (unsigned long long)res->msg_id, (unsigned long long)res->seq,
                res->duplicate ? "true" : "false");
    } else {
        fprintf(p->run->hist,
                "{\"ev\":\"publish\",\"client\":\"%s\",\"producer\":\"%s\",\"producer_seq\":%llu,"
                "\"topic\":\"%s\",\"outcome\":\"err\",\"code\":%d}\n",
                client, p->producer, (unsigned long long)pseq, p->topic, (int)rc);
    }
}

//  Publishes producer_seq 1, 2, ... one at a time; a failed one is sent
//  again (same producer_seq) on a fresh client until it is acknowledged.
static void *s_producer_main(void *arg) {
    it_fault_producer_t *p = arg;
    tern_client_t *client = NULL;
    p->next_seq = 1;
    while (!atomic_load(&p->run->stop)) {
        if (client == NULL && (client = s_connect(p, p->producer)) == NULL) {
            it_sleep_ms(100);
            continue;
        }
        char data[64];
        snprintf(data, sizeof data, "%s-%llu", p->producer, (unsigned long long)p->next_seq);
        tern_pub_options_t msg;
        tern_pub_options_init(&msg);
        msg.topic = p->topic;
        msg.payload = data;
        msg.size = strlen(data);
        msg.producer_seq = p->next_seq;
        tern_pub_result_t res;
        memset(&res, 0, sizeof res);
        tern_err_t rc = tern_publish(client, &msg, S_PUB_TIMEOUT_MS, &res);
        s_record_publish(p, p->producer, p->next_seq, rc, &res);
        if (rc == TERN_OK) {
            p->next_seq++;
            atomic_store(&p->last_ack, it_now_ms());
            p->last_code = TERN_OK;
            atomic_fetch_add(&p->acked, 1);
            continue;
        }
        atomic_fetch_add(&p->errors, 1);
        if (rc != p->last_code) {
            //  Each change of error is worth a line: it tells a failing
            //  run what the producer was told.
            fprintf(stderr, "it_cluster_fault: %s seq %llu: %s: %s\n", p->producer,
                    (unsigned long long)p->next_seq, tern_errname(rc),
                    res.reason && res.reason[0] ? res.reason : tern_last_reason());
            p->last_code = rc;
        }
        if (rc == TERN_ENOTLEADER || rc == TERN_EREPLICAS) {
            atomic_fetch_add(&p->clear, 1);
        }
        s_next_first(p, rc, res.reason);
        tern_client_destroy(&client);
        it_sleep_ms(50);
    }
    tern_client_destroy(&client);
    return NULL;
}

it_fault_run_t *it_fault_run_start(int etcd_members, bool cuts) {
    //  Static, not on the test's stack: a failed assertion leaves the test
    //  function while the producers still use it (it_fault_fini stops them).
    static it_fault_run_t the_run;
    it_fault_run_t *run = &the_run;
    memset(run, 0, sizeof *run);
    const char *flags[sizeof it_fault_flags / sizeof it_fault_flags[0]];
    run->cl = it_cluster_new(IT_FAULT_NODES, etcd_members, IT_FAULT_PARTITIONS, s_run_flags(flags));
    cr_assert(run->cl, "cannot set up the cluster");
    cr_assert(!cuts || it_cluster_enable_cuts(run->cl), "cannot enable link cuts");
    cr_assert(it_cluster_start(run->cl, 60000), "the cluster did not start");
    cr_assert(test_dir_make(run->dir, "fault"), "temp dir");
    snprintf(run->path, sizeof run->path, "%.*s/history.jsonl", TEST_DIR_MAX, run->dir);
    run->hist = fopen(run->path, "w");
    cr_assert(run->hist, "cannot write %s", run->path);
    setvbuf(run->hist, NULL, _IOLBF, 0);
    for (int i = 0; i < IT_FAULT_PRODUCERS; i++) {
        it_fault_producer_t *p = &run->prod[i];
        p->run = run;
        p->partition = (uint32_t)i;
        snprintf(p->producer, sizeof p->producer, "FP%d-%d", i, (int)getpid());
        it_cluster_topic_for(run->cl, p->partition, "fault", p->topic, sizeof p->topic);
        p->first = it_cluster_leader(run->cl, p->partition);
        cr_assert_eq(pthread_create(&p->thread, NULL, s_producer_main, p), 0);
    }
    s_running = run;
    return run;
}

bool it_fault_progress(it_fault_run_t *run, unsigned long long want, int timeout_ms) {
    unsigned long long base[IT_FAULT_PRODUCERS];
    for (int i = 0; i < IT_FAULT_PRODUCERS; i++) {
        base[i] = atomic_load(&run->prod[i].acked);
    }
    int64_t deadline = it_now_ms() + timeout_ms;
    for (int i = 0; i < IT_FAULT_PRODUCERS; i++) {
        it_fault_producer_t *p = &run->prod[i];
        while (atomic_load(&p->acked) < base[i] + want) {
            if (it_now_ms() >= deadline) {
                fprintf(stderr,
                        "it_cluster_fault: producer %s: %llu acks (%llu errors) since the wait "
                        "began, %llu wanted\n",
                        p->producer, atomic_load(&p->acked) - base[i], atomic_load(&p->errors),
                        want);
                return false;
            }
            it_sleep_ms(10);
        }
    }
    return true;
}

static void s_stop_producers(it_fault_run_t *run) {
    atomic_store(&run->stop, true);
    s_running = NULL;
    for (int i = 0; i < IT_FAULT_PRODUCERS; i++) {
        pthread_join(run->prod[i].thread, NULL);
        fprintf(stderr, "it_cluster_fault: producer %s: %llu acked, %llu failed (%llu clear)\n",
                run->prod[i].producer, atomic_load(&run->prod[i].acked),
                atomic_load(&run->prod[i].errors), atomic_load(&run->prod[i].clear));
    }
}

//  One delivery: a deliver line, the ack, an ack line once it was sent.
static void s_on_delivery(it_fault_run_t *run, tern_message_t *msg) {
    unsigned long long msg_id = tern_message_id(msg);
    fprintf(run->hist,
            "{\"ev\":\"deliver\",\"group\":\"" S_GROUP "\",\"consumer\":\"fault-c\","
            "\"topic\":\"%s\",\"msg_id\":%llu,\"seq\":%llu,\"delivery_count\":%u,"
            "\"producer\":\"%s\",\"producer_seq\":%llu}\n",
            tern_message_topic(msg), msg_id, (unsigned long long)tern_message_seq(msg),
            tern_message_delivery_count(msg), tern_message_producer(msg),
            (unsigned long long)tern_message_producer_seq(msg));
    if (tern_message_ack(msg, false) == TERN_OK) {
        fprintf(run->hist, "{\"ev\":\"ack\",\"group\":\"" S_GROUP "\",\"msg_id\":%llu}\n", msg_id);
    }
}

//  Consumes P's topic as group S_GROUP from its leader until every
//  acknowledged producer_seq was delivered (or 30 s: tern-check then names
//  what was not).
static void s_consume(it_fault_run_t *run, it_fault_producer_t *p) {
    tern_partmap_record_t rec;
    cr_assert(it_cluster_wait_leader(run->cl, p->partition, -1, 0, 30000, &rec),
              "partition %u has no leader to consume from", p->partition);
    fprintf(run->hist, "{\"ev\":\"group\",\"group\":\"" S_GROUP "\",\"topic\":\"%s\"}\n", p->topic);
    p->first = (int)rec.leader;
    tern_client_t *client = s_connect(p, "fault-c");
    cr_assert(client, "consumer client: %s", tern_last_reason());
    tern_sub_options_t options;
    tern_sub_options_init(&options);
    options.group = S_GROUP;
    options.start = TERN_FROM_FIRST;
    tern_subscription_t *sub = NULL;
    cr_assert_eq(tern_subscribe(client, p->topic, &options, NULL, NULL, &sub), TERN_OK,
                 "subscribe %s: %s", p->topic, tern_last_reason());
    size_t want = (size_t)(p->next_seq - 1), distinct = 0;
    bool *seen = calloc(want + 1, 1);
    int64_t deadline = it_now_ms() + 30000;
    while (distinct < want && it_now_ms() < deadline) {
        tern_message_t *msg = NULL;
        if (tern_subscription_next(sub, 500, &msg) != TERN_OK) {
            continue;
        }
        uint64_t pseq = tern_message_producer_seq(msg);
        if (strcmp(tern_message_producer(msg), p->producer) == 0 && pseq >= 1 && pseq <= want &&
            !seen[pseq]) {
            seen[pseq] = true;
            distinct++;
        }
        s_on_delivery(run, msg);
        tern_message_destroy(&msg);
    }
    fprintf(stderr, "it_cluster_fault: %s: %zu of %zu delivered\n", p->topic, distinct, want);
    free(seen);
    tern_client_destroy(&client);
}

//  Runs tern-check on the history with --min-logs 2 (min_insync is 2: every
//  acknowledged message is on two ISR copies at least, and the test must
//  look at that many) and, when REFUSED, --refused-code TERN_EREPLICAS;
//  returns its exit status, its output on stderr.
static int s_tern_check(it_fault_run_t *run, bool refused) {
    char bin[512];
    snprintf(bin, sizeof bin, "%s/tern-check", TERN_BIN_DIR);
    char *argv[10] = {bin, "--limit", "20", "--min-logs", "2"};
    int argc = 5;
    if (refused) {
        argv[argc++] = "--refused-code";
        argv[argc++] = "TERN_EREPLICAS";
    }
    argv[argc++] = run->path;
    argv[argc] = NULL;
    it_result_t r;
    int rc = it_run(&r, 120000, NULL, argv);
    fprintf(stderr, "%s%s", r.out, r.err);
    it_result_free(&r);
    return rc;
}

//  The checker on rules (a), (b), (c), (e): nothing acknowledged lost,
//  stored twice, reordered or undelivered.
static void s_check(it_fault_run_t *run) {
    int rc = s_tern_check(run, false);
    cr_assert_eq(rc, 0,
                 "tern-check found violations of (a), (b), (c) or (e) (history %s kept, the "
                 "nodes' logs beside it)",
                 run->path);
}

void it_fault_check_refusals(it_fault_run_t *run) {
    int rc = s_tern_check(run, true);
    cr_assert_eq(rc, 0,
                 "a publish refused with TERN_EREPLICAS was kept: stored, delivered or later "
                 "acknowledged as a duplicate (rule d; history %s kept)",
                 run->path);
    test_dir_remove(run->dir);
}

//  `ternctl cluster verify` on a live node: the replicas of every
//  partition must hold identical copies (digests of records, msg_ids and
//  dedup entries) up to the seq all of them hold. Returns its exit code;
//  asserted after the checker ran, so that a difference comes with the
//  checker's account of the records.
static int s_verify(it_fault_run_t *run) {
    int node = it_cluster_leader(run->cl, 0);
    it_result_t r;
    int rc = it_ctl(&r, run->cl->node[node >= 0 ? node : 0], 60000, "cluster", "verify", NULL);
    fprintf(stderr, "it_cluster_fault: ternctl cluster verify: exit %d\n%s%s", rc, r.out, r.err);
    it_result_free(&r);
    return rc;
}

void it_fault_run_finish(it_fault_run_t *run) {
    cr_assert(it_fault_progress(run, 5, IT_FAULT_RESUME_MS),
              "publishing did not resume after the fault");
    s_stop_producers(run);
    for (int i = 0; i < IT_FAULT_PRODUCERS; i++) {
        s_consume(run, &run->prod[i]);
    }
    tern_partmap_record_t isr[IT_FAULT_PRODUCERS];
    for (int i = 0; i < IT_FAULT_PRODUCERS; i++) {
        //  Not asserted: a replica that never rejoins is still checked as
        //  far as the ISR goes, and the wait prints the record.
        it_cluster_wait_isr_full(run->cl, run->prod[i].partition, 15000, &isr[i]);
    }
    int verify = s_verify(run);
    //  Kept beside the history, which a failing test keeps.
    it_cluster_keep_logs(run->cl, run->dir);
    if (getenv("TERN_FAULT_LOGS")) {
        it_cluster_dump_logs(run->cl);
    }
    for (int i = 0; i < run->cl->count; i++) {
        it_cluster_kill_node(run->cl, i);
    }
    for (int i = 0; i < IT_FAULT_PRODUCERS; i++) {
        cr_assert(isr[i].nisr > 0, "partition %u: no ISR read", run->prod[i].partition);
        for (uint32_t k = 0; k < isr[i].nisr; k++) {
            int node = (int)isr[i].isr[k];
            char name[16];
            snprintf(name, sizeof name, "n%d", node);
            it_cluster_dump_stored(run->hist, run->cl->node[node], NULL, name, run->prod[i].topic);
        }
    }
    fflush(run->hist);
    s_check(run);
    fclose(run->hist);
    cr_assert_eq(verify, 0,
                 "ternctl cluster verify: the replicas differ (its rows above; the nodes' logs "
                 "in %s; the checker found the records in agreement)",
                 run->dir);
    it_cluster_destroy(&run->cl);
}

void it_fault_fini(void) {
    if (s_running) {
        s_stop_producers(s_running);
    }
    it_cluster_teardown();
}

it_raw_t *it_fault_stale_new(it_fault_run_t *run, int victim, it_fault_producer_t *stale) {
    memset(stale, 0, sizeof *stale);
    stale->run = run;
    snprintf(stale->producer, sizeof stale->producer, "STALE-%d", (int)getpid());
    snprintf(stale->topic, sizeof stale->topic, "%s", run->prod[0].topic);
    it_raw_t *raw = it_raw_new(run->cl->node[victim]->endpoint);
    cr_assert(raw && it_raw_hello(raw, "stale"), "no session with node %d", victim);
    return raw;
}

void it_fault_stale_send(it_raw_t *raw, const it_fault_producer_t *stale) {
    for (uint64_t seq = 1; seq <= S_STALE; seq++) {
        tern_frame_t f;
        tern_frame_init(&f, TERN_CMD_PUBLISH);
        f.req_id = seq;
        snprintf(f.topic, sizeof f.topic, "%s", stale->topic);
        snprintf(f.producer, sizeof f.producer, "%s", stale->producer);
        f.producer_seq = seq;
        f.fields |= TERN_F_TOPIC | TERN_F_PAYLOAD | TERN_F_PRODUCER;
        f.payload = (const uint8_t *)"stale";
        f.payload_size = 5;
        cr_assert_eq(it_raw_send_frame(raw, &f), TERN_OK);
    }
}

int it_fault_stale_answers(it_raw_t *raw, it_fault_producer_t *stale, int timeout_ms) {
    int ok = 0, answered = 0;
    int64_t deadline = it_now_ms() + timeout_ms;
    while (answered < S_STALE && it_now_ms() < deadline) {
        tern_frame_t reply;
        if (it_raw_recv_reply(raw, &reply, 500) != TERN_OK) {
            continue;
        }
        if (reply.cmd == TERN_CMD_ERROR && reply.req_id >= 1 && reply.req_id <= S_STALE) {
            s_record_publish(stale, "stale", reply.req_id, (tern_err_t)reply.code, NULL);
            fprintf(stderr, "it_cluster_fault: stale publish %llu: %s: %s\n",
                    (unsigned long long)reply.req_id, tern_errname((int)reply.code), reply.reason);
            answered++;
        }
        for (uint32_t k = 0; reply.cmd == TERN_CMD_PUBACK && k < reply.ack_count; k++) {
            tern_puback_t ack;
            if (tern_frame_puback(&reply, k, &ack) != TERN_OK) {
                continue;
            }
            tern_pub_result_t res = {.code = (tern_err_t)ack.code,
                                     .msg_id = ack.msg_id,
                                     .seq = ack.seq,
                                     .duplicate = ack.duplicate};
            s_record_publish(stale, "stale", ack.req_id, res.code, &res);
            ok += ack.code == TERN_OK;
            answered++;
        }
    }
    fprintf(stderr, "it_cluster_fault: the deposed leader answered %d of %d, %d acknowledged\n",
            answered, S_STALE, ok);
    return ok;
}

void it_fault_leader_cut_from_followers(void) {
    it_fault_run_t *run = it_fault_run_start(1, true);
    cr_assert(it_fault_progress(run, 20, IT_FAULT_RESUME_MS), "no load before the cut");
    tern_partmap_record_t rec;
    cr_assert(it_cluster_wait_leader(run->cl, 0, -1, 0, 30000, &rec));
    int victim = (int)rec.leader;
    int ports[IT_CLUSTER_NODES_MAX];
    for (int i = 0; i < run->cl->count; i++) {
        ports[i] = it_cluster_listen_port(run->cl, i);
    }
    it_fault_producer_t *p = &run->prod[0];
    cr_assert(it_cluster_cut(run->cl, victim, ports, (size_t)run->cl->count));
    //  Counted once the cut holds (it_cluster_cut returns then).
    unsigned long long before = atomic_load(&p->acked);
    //  Long enough for the ISR to shrink and for many refusals.
    it_sleep_ms(5000);
    unsigned long long during = atomic_load(&p->acked) - before;
    cr_assert(it_cluster_record(run->cl, 0, &rec, false));
    fprintf(stderr,
            "it_cluster_fault: during the cut: partition 0 led by %u, ISR of %u, %llu acks\n",
            rec.leader, rec.nisr, during);
    cr_assert(it_cluster_cut(run->cl, victim, NULL, 0), "cannot heal");
    cr_assert(it_cluster_wait_isr_full(run->cl, 0, 30000, &rec),
              "the followers did not rejoin partition 0 after the heal");
    it_fault_run_finish(run);
    //  The publish in flight at the cut may have been confirmed before it.
    cr_assert_leq(during, 1,
                  "node %d acknowledged %llu publishes of partition 0 with no follower reachable",
                  victim, during);
    it_fault_check_refusals(run);
}

void it_fault_leader_cut_from_etcd(void) {
    it_fault_run_t *run = it_fault_run_start(1, true);
    cr_assert(it_fault_progress(run, 20, IT_FAULT_RESUME_MS), "no load before the cut");
    tern_partmap_record_t rec;
    cr_assert(it_cluster_wait_leader(run->cl, 0, -1, 0, 30000, &rec));
    int victim = (int)rec.leader;
    static it_fault_producer_t stale;
    it_raw_t *raw = it_fault_stale_new(run, victim, &stale);
    int etcd_port = run->cl->etcd->client_port[0];
    cr_assert(it_cluster_cut(run->cl, victim, &etcd_port, 1));
    cr_assert(it_cluster_wait_leader(run->cl, 0, victim, rec.epoch, 30000, &rec),
              "no new leader while node %d cannot reach etcd", victim);
    cr_assert(it_fault_progress(run, 10, IT_FAULT_RESUME_MS),
              "publishing did not move to the new leader");
    it_fault_stale_send(raw, &stale);
    int deposed_acks = it_fault_stale_answers(raw, &stale, 10000);
    it_raw_destroy(&raw);
    cr_assert(it_cluster_cut(run->cl, victim, NULL, 0), "cannot heal");
    cr_assert(it_cluster_node_running(run->cl, victim), "node %d died without etcd", victim);
    cr_assert(it_cluster_wait_isr_full(run->cl, 0, 30000, &rec),
              "node %d did not rejoin partition 0 after the heal", victim);
    it_fault_run_finish(run);
    cr_assert_eq(deposed_acks, 0,
                 "node %d acknowledged %d publishes after it lost partition 0 (epoch %llu began)",
                 victim, deposed_acks, (unsigned long long)rec.epoch);
    it_fault_check_refusals(run);
}

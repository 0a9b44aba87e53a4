/*  it_xdc_order.c - the order of a partition's stream when another DC's
    records and local publishes land in the same topic at once (issue 14/15;
    drill dc_cut_off, docs/replication.md "Clustered DCs").

    A clustered leader gives its followers its publishes and the records it
    receives from a peer DC in two hand-offs of the storer. When both were
    in one commit, the followers got a topic's records out of seq order, the
    lower seq failed there (TERN_ESTATE) and stayed a hole after the
    catch-up: `ternctl cluster verify` differed. Here dc2 holds a backlog
    for dc1 behind a paused link; the link resumes while dc1 publishes
    stream to the same topic, so the inbound records land between local ones.
    Asserted: the DCs converge and `cluster verify` passes in both.
*/
#include "xdc_harness.h"
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_BACKLOG 1000    //  per batch, dc2's records waiting for the link
#define S_BATCHES 3       //  batches of them
#define S_LOCAL   "10000" //  dc1's publishes meanwhile
#define S_CUTS    3       //  cuts (each a chance of the interleaving)

static const char *const s_topics[] = {"xo.t"};

static it_xdc_t *s_current; //  destroyed by s_teardown if a test fails

static void s_teardown(void) {
    it_xdc_destroy(&s_current);
    it_teardown();
}

TestSuite(xdc_order, .fini = s_teardown, .timeout = 600);

//  How many times the nodes of DC D logged a failed apply of their
//  partition's stream (each one restarts the catch-up).
static int s_failed_applies(it_xdc_t *x, int d) {
    int n = 0;
    for (int i = 0; i < x->dc[d].count; i++) {
        char *text = it_read_file(x->dc[d].node[i]->log_path, NULL);
        for (const char *p = text; p && (p = strstr(p, " failed (TERN_")); p++) {
            n++;
        }
        free(text);
    }
    return n;
}

//  One cut: the link paused both ways while dc2 builds its backlog, then
//  resumed while dc1's leader of the topic takes a pipelined stream of
//  publishes (many per commit) as producer dc1-bgC. Those are not in the
//  history: this test checks the replicas, not the checker's rules.
static void s_cut(it_xdc_t *x, int c, uint64_t *seq2) {
    it_xdc_peers(x, 0, "pause", "dc2");
    it_xdc_peers(x, 1, "pause", "dc1");
    for (int k = 0; k < S_BATCHES; k++) {
        cr_assert_eq(it_xdc_pub(x, 1, s_topics[0], "dc2-p", seq2, S_BACKLOG), S_BACKLOG);
    }
    int lead = it_xdc_leader_of(x, 0, s_topics[0]);
    cr_assert_geq(lead, 0);
    char producer[16];
    snprintf(producer, sizeof producer, "dc1-bg%d", c);
    it_proc_t *pub = it_ctl_spawn(x->dc[0].node[lead], "pub", s_topics[0], "m{n}", "--count",
                                  S_LOCAL, "--producer", producer, "--timeout", "30s", NULL);
    cr_assert(it_proc_wait_lines(pub, 100, 30000), "dc1's publishes did not start");
    it_xdc_peers(x, 1, "resume", "dc1");
    it_xdc_peers(x, 0, "resume", "dc2");
    cr_assert_eq(it_proc_wait(pub, 120000), 0, "ternctl pub in dc1: %s", it_proc_err(pub));
    it_proc_destroy(&pub);
}

Test(xdc_order, inbound_records_between_local_publishes) {
    s_current = it_xdc_new(2, 3, 1, 1, NULL);
    it_xdc_t *x = s_current;
    it_xdc_start(x);
    //  Pipelined: the backlog is quick to build.
    setenv("TERN_XDC_PIPELINED", "1", 1);
    uint64_t seq2 = 1;
    for (int c = 0; c < S_CUTS; c++) {
        s_cut(x, c, &seq2);
    }
    cr_assert_geq(it_xdc_converge(x, s_topics, 1, 120000), 0, "the DCs did not converge");
    for (int d = 0; d < 2; d++) {
        cr_expect_eq(s_failed_applies(x, d), 0, "a follower of %s failed to apply its stream",
                     x->dc[d].name);
        cr_assert_eq(it_xdc_verify(x, d, 30000), 0, "the replicas of %s differ", x->dc[d].name);
    }
    it_xdc_destroy(&s_current);
}

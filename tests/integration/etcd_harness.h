/*  etcd_harness.h - real etcd servers for the cluster tests.

    A test that needs etcd starts its own: one member, or three forming one
    cluster (for tests that kill members), on free loopback ports from
    test_port(), with data dirs under one temp root. Every member is started
    by fork/exec of Debian's `etcd` and stopped by its PID: by
    it_etcd_destroy, by an atexit() hook if a test ends early, and by
    PR_SET_PDEATHSIG if the test process dies. That signal follows the
    thread that forked, so start members from the test's main thread. The root (data dirs and each
    member's log, ROOT/mN.log) is removed at destroy.
*/
#ifndef TERN_IT_ETCD_HARNESS_H_INCLUDED
#define TERN_IT_ETCD_HARNESS_H_INCLUDED

#include "test_dir.h"
#include <stdbool.h>
#include <sys/types.h>

#define IT_ETCD_MEMBERS_MAX 3

typedef struct {
    int members;                              //  1 or 3
    pid_t pid[IT_ETCD_MEMBERS_MAX];           //  running member, or 0
    int client_port[IT_ETCD_MEMBERS_MAX];     //  its client port
    int peer_port[IT_ETCD_MEMBERS_MAX];       //  its peer port
    char host[16];                            //  address every member listens on
    char url[IT_ETCD_MEMBERS_MAX][64];        //  http://HOST:CLIENT_PORT
    char root[TEST_DIR_MAX];                  //  temp root (test_dir_make), removed at destroy
    char endpoints[IT_ETCD_MEMBERS_MAX * 64]; //  every url, comma-separated
    char cluster[IT_ETCD_MEMBERS_MAX * 80];   //  --initial-cluster value
} it_etcd_t;

/*  Describes an etcd of MEMBERS (1..3) members on free ports and starts
    every member, waiting (20 s at most) until the cluster serves (its
    /health says true on every member). Returns NULL, with the members' logs
    on stderr, if it did not come up. Caller owns the result. */
it_etcd_t *it_etcd_new(int members);

/*  Same, listening on HOST instead of 127.0.0.1 (an address of the network
    namespace the calling thread is in: netns_harness.h). */
it_etcd_t *it_etcd_new_on(int members, const char *host);

/*  Starts member I again (same dir and ports) and waits until it serves.
    False (log on stderr) if it does not. */
bool it_etcd_start_member(it_etcd_t *self, int i);

/*  The index of the member that leads the cluster now (asked of each
    running member's /v3/maintenance/status), or -1 if none says it leads. */
int it_etcd_leader(it_etcd_t *self);

/*  SIGKILL of member I by PID, and reap. Safe if not running. */
void it_etcd_kill_member(it_etcd_t *self, int i);

/*  SIGSTOP of member I (returns once it is stopped) / SIGCONT. */
void it_etcd_pause_member(it_etcd_t *self, int i);
void it_etcd_resume_member(it_etcd_t *self, int i);

/*  SIGTERM to every member, waits for them (then SIGKILL). */
void it_etcd_stop(it_etcd_t *self);

/*  Runs `etcdctl --endpoints URLS ARG...` (NULL-terminated) and returns its
    exit code (-1 if it could not run). Output goes to ROOT/etcdctl.log. */
int it_etcdctl(it_etcd_t *self, const char *arg, ...);

/*  `etcdctl snapshot save PATH` against member I alone (a snapshot is
    one member's). False if it failed (etcdctl's output in
    ROOT/etcdctl.log). */
bool it_etcd_snapshot_save(it_etcd_t *self, int i, const char *path);

/*  Disaster recovery from the snapshot at PATH, as an operator does it:
    stops every member, moves each data dir aside, `etcdctl snapshot
    restore` into a fresh one per member (same names, peer URLs and
    cluster), starts every member and waits until they serve. False (logs
    on stderr) if a step failed. */
bool it_etcd_restore(it_etcd_t *self, const char *path);

/*  Writes member I's log to stderr. */
void it_etcd_dump_log(it_etcd_t *self, int i);

/*  Stops every member, removes the root, frees, nulls *SELF_P. */
void it_etcd_destroy(it_etcd_t **self_p);

#endif

/*  etcd_harness.c - real etcd servers for the cluster tests (see the .h).

    Members are registered by PID in a small table; an atexit() hook kills
    whatever is still in it, so a failed assertion leaves no etcd behind.
*/
#include "etcd_harness.h"
#include "harness.h"
#include "test_dir.h"
#include "test_port.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#define S_READY_MS 20000
#define S_PIDS_MAX 64

static pid_t s_pids[S_PIDS_MAX]; //  every etcd member and etcdctl running
static bool s_hooked;            //  atexit hook installed

static void s_kill_all(void) {
    for (int i = 0; i < S_PIDS_MAX; i++) {
        if (s_pids[i] > 0) {
            kill(s_pids[i], SIGKILL);
            waitpid(s_pids[i], NULL, 0);
            s_pids[i] = 0;
        }
    }
}

static void s_track(pid_t pid, bool add) {
    if (!s_hooked) {
        atexit(s_kill_all);
        s_hooked = true;
    }
    for (int i = 0; i < S_PIDS_MAX; i++) {
        if (add ? s_pids[i] == 0 : s_pids[i] == pid) {
            s_pids[i] = add ? pid : 0;
            return;
        }
    }
}

//  Runs ARGV (found on PATH) with stdout and stderr appended to LOG; the
//  child dies with the test process.
static pid_t s_exec(char *const argv[], const char *log) {
    pid_t parent = getpid();
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) {
            _exit(127);
        }
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        int null = open("/dev/null", O_RDONLY);
        dup2(null, 0);
        dup2(fd, 1);
        dup2(fd, 2);
        for (int other = 3; other < 1024; other++) {
            close(other);
        }
        setenv("ETCDCTL_API", "3", 1);
        execvp(argv[0], argv);
        fprintf(stderr, "etcd_harness: exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    if (pid > 0) {
        s_track(pid, true);
    }
    return pid;
}

//  Reaps PID within TIMEOUT_MS after SIG, SIGKILL past it.
static void s_end(pid_t *pid_p, int sig, int timeout_ms) {
    if (*pid_p <= 0) {
        return;
    }
    kill(*pid_p, sig);
    int64_t deadline = it_now_ms() + timeout_ms;
    while (waitpid(*pid_p, NULL, WNOHANG) == 0) {
        if (it_now_ms() >= deadline) {
            kill(*pid_p, SIGKILL);
            waitpid(*pid_p, NULL, 0);
            break;
        }
        it_sleep_ms(10);
    }
    s_track(*pid_p, false);
    *pid_p = 0;
}

typedef struct {
    char text[1024]; //  the reply so far (cut at its size), NUL-terminated
    size_t size;     //  its length
} s_reply_t;

static size_t s_keep(char *data, size_t size, size_t nmemb, void *arg) {
    s_reply_t *reply = arg;
    size_t bytes = size * nmemb;
    size_t room = sizeof reply->text - 1 - reply->size;
    size_t take = bytes < room ? bytes : room;
    memcpy(reply->text + reply->size, data, take);
    reply->size += take;
    reply->text[reply->size] = '\0';
    return bytes;
}

//  GETs (POST_BODY NULL) or POSTs URL + PATH into *REPLY; false on failure.
static bool s_fetch(const char *url, const char *path, const char *post_body, s_reply_t *reply) {
    char full[128];
    snprintf(full, sizeof full, "%s%s", url, path);
    reply->size = 0;
    reply->text[0] = '\0';
    CURL *curl = curl_easy_init();
    curl_easy_setopt(curl, CURLOPT_URL, full);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 1000L);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, s_keep);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, reply);
    if (post_body) {
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, post_body);
    }
    bool ok = curl_easy_perform(curl) == CURLE_OK;
    curl_easy_cleanup(curl);
    return ok;
}

//  True if URL/health answers {"health":"true"}.
static bool s_healthy(const char *url) {
    s_reply_t reply;
    return s_fetch(url, "/health", NULL, &reply) && strstr(reply.text, "\"true\"") != NULL;
}

int it_etcd_leader(it_etcd_t *self) {
    for (int i = 0; i < self->members; i++) {
        s_reply_t reply;
        const char *header = NULL;
        size_t header_len = 0;
        char member[32], leader[32];
        if (self->pid[i] > 0 && s_fetch(self->url[i], "/v3/maintenance/status", "{}", &reply) &&
            it_json_raw(reply.text, "header", &header, &header_len) &&
            it_json_str(header, "member_id", member, sizeof member) &&
            it_json_str(reply.text, "leader", leader, sizeof leader) &&
            strcmp(member, leader) == 0) {
            return i;
        }
    }
    return -1;
}

static bool s_spawn_member(it_etcd_t *self, int i) {
    char name[16], dir[300], log[300], peer[64];
    snprintf(name, sizeof name, "m%d", i);
    snprintf(dir, sizeof dir, "%s/m%d", self->root, i);
    snprintf(log, sizeof log, "%s/m%d.log", self->root, i);
    snprintf(peer, sizeof peer, "http://%s:%d", self->host, self->peer_port[i]);
    char *argv[] = {"etcd",        "--name",
                    name,          "--data-dir",
                    dir,           "--listen-client-urls",
                    self->url[i],  "--advertise-client-urls",
                    self->url[i],  "--listen-peer-urls",
                    peer,          "--initial-advertise-peer-urls",
                    peer,          "--initial-cluster",
                    self->cluster, "--initial-cluster-state",
                    "new",         "--logger",
                    "zap",         "--log-outputs",
                    "stderr",      NULL,
                    NULL,          NULL,
                    NULL,          NULL,
                    NULL};
    size_t k = sizeof argv / sizeof argv[0] - 6;
    //  Pre-vote, as docs/cluster.md asks of every etcd (3.4 has it off): a
    //  member cut off from the others (or the last one left) would
    //  otherwise campaign to ever higher terms and, once back, depose the
    //  leader the others elected: about 3 s without service after quorum
    //  returns instead of about one election timeout. TERN_ETCD_PRE_VOTE=0
    //  leaves it off, to measure that.
    const char *pre_vote = getenv("TERN_ETCD_PRE_VOTE");
    if (!pre_vote || strcmp(pre_vote, "0") != 0) {
        argv[k++] = "--pre-vote";
    }
    //  The fast profile's etcd timing (docs/cluster.md) for the long runs
    //  (tools/chaos/leader-kills.sh): etcd's minimum lease TTL follows it.
    const char *election = getenv("TERN_ETCD_ELECTION_MS");
    const char *heartbeat = getenv("TERN_ETCD_HEARTBEAT_MS");
    if (election && *election && heartbeat && *heartbeat) {
        argv[k++] = "--election-timeout";
        argv[k++] = (char *)election;
        argv[k++] = "--heartbeat-interval";
        argv[k] = (char *)heartbeat;
    }
    self->pid[i] = s_exec(argv, log);
    return self->pid[i] > 0;
}

//  Waits until every running member is healthy.
static bool s_wait_ready(it_etcd_t *self) {
    int64_t deadline = it_now_ms() + S_READY_MS;
    for (int i = 0; i < self->members; i++) {
        while (self->pid[i] > 0 && !s_healthy(self->url[i])) {
            if (waitpid(self->pid[i], NULL, WNOHANG) == self->pid[i] || it_now_ms() >= deadline) {
                fprintf(stderr, "etcd_harness: member %d did not come up\n", i);
                it_etcd_dump_log(self, i);
                return false;
            }
            it_sleep_ms(50);
        }
    }
    return true;
}

it_etcd_t *it_etcd_new(int members) {
    return it_etcd_new_on(members, "127.0.0.1");
}

it_etcd_t *it_etcd_new_on(int members, const char *host) {
    if (members < 1 || members > IT_ETCD_MEMBERS_MAX) {
        return NULL;
    }
    it_etcd_t *self = calloc(1, sizeof *self);
    self->members = members;
    snprintf(self->host, sizeof self->host, "%s", host);
    if (test_dir_make(self->root, "etcd") == NULL) {
        free(self);
        return NULL;
    }
    for (int i = 0; i < members; i++) {
        self->client_port[i] = test_port();
        self->peer_port[i] = test_port();
        snprintf(self->url[i], sizeof self->url[i], "http://%s:%d", self->host,
                 self->client_port[i]);
        size_t used = strlen(self->endpoints);
        snprintf(self->endpoints + used, sizeof self->endpoints - used, "%s%s", i ? "," : "",
                 self->url[i]);
        used = strlen(self->cluster);
        snprintf(self->cluster + used, sizeof self->cluster - used, "%sm%d=http://%s:%d",
                 i ? "," : "", i, self->host, self->peer_port[i]);
    }
    bool ok = true;
    for (int i = 0; i < members && ok; i++) {
        ok = s_spawn_member(self, i);
    }
    if (!ok || !s_wait_ready(self)) {
        it_etcd_destroy(&self);
    }
    return self;
}

bool it_etcd_start_member(it_etcd_t *self, int i) {
    if (self->pid[i] > 0) {
        return true;
    }
    return s_spawn_member(self, i) && s_wait_ready(self);
}

void it_etcd_kill_member(it_etcd_t *self, int i) {
    s_end(&self->pid[i], SIGKILL, 5000);
}

//  True once PID's state in /proc is 'T' (stopped).
static bool s_stopped(pid_t pid) {
    char path[64], stat[512] = "";
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return false;
    }
    size_t n = fread(stat, 1, sizeof stat - 1, f);
    fclose(f);
    stat[n] = '\0';
    const char *paren = strrchr(stat, ')'); //  the name may hold spaces
    return paren && paren[1] == ' ' && paren[2] == 'T';
}

void it_etcd_pause_member(it_etcd_t *self, int i) {
    if (self->pid[i] > 0) {
        kill(self->pid[i], SIGSTOP);
        int64_t deadline = it_now_ms() + 2000;
        while (!s_stopped(self->pid[i]) && it_now_ms() < deadline) {
            it_sleep_ms(5);
        }
    }
}

void it_etcd_resume_member(it_etcd_t *self, int i) {
    if (self->pid[i] > 0) {
        kill(self->pid[i], SIGCONT);
    }
}

void it_etcd_stop(it_etcd_t *self) {
    for (int i = 0; i < self->members; i++) {
        it_etcd_resume_member(self, i); //  a stopped process ignores SIGTERM
        s_end(&self->pid[i], SIGTERM, 10000);
    }
}

//  Runs ARGV (NULL-terminated) with its output in ROOT/etcdctl.log; its
//  exit code, -1 if it could not run.
static int s_etcdctl_run(it_etcd_t *self, char **argv) {
    char log[300];
    snprintf(log, sizeof log, "%s/etcdctl.log", self->root);
    pid_t pid = s_exec(argv, log);
    int status = 0;
    if (pid <= 0 || waitpid(pid, &status, 0) != pid) {
        return -1;
    }
    s_track(pid, false);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int it_etcdctl(it_etcd_t *self, const char *arg, ...) {
    char *argv[32] = {"etcdctl", "--endpoints", self->endpoints};
    int argc = 3;
    va_list args;
    va_start(args, arg);
    for (const char *a = arg; a != NULL && argc < 31; a = va_arg(args, const char *)) {
        argv[argc++] = (char *)a;
    }
    va_end(args);
    argv[argc] = NULL;
    return s_etcdctl_run(self, argv);
}

bool it_etcd_snapshot_save(it_etcd_t *self, int i, const char *path) {
    char *argv[] = {"etcdctl", "--endpoints", self->url[i], "snapshot", "save", (char *)path, NULL};
    return s_etcdctl_run(self, argv) == 0;
}

bool it_etcd_restore(it_etcd_t *self, const char *path) {
    it_etcd_stop(self);
    for (int i = 0; i < self->members; i++) {
        char name[16], dir[300], aside[320], peer[64];
        snprintf(name, sizeof name, "m%d", i);
        snprintf(dir, sizeof dir, "%s/m%d", self->root, i);
        snprintf(aside, sizeof aside, "%s/m%d.lost", self->root, i);
        snprintf(peer, sizeof peer, "http://%s:%d", self->host, self->peer_port[i]);
        if (rename(dir, aside) != 0) {
            fprintf(stderr, "etcd_harness: cannot move %s aside: %s\n", dir, strerror(errno));
            return false;
        }
        char *argv[] = {"etcdctl",
                        "snapshot",
                        "restore",
                        (char *)path,
                        "--name",
                        name,
                        "--data-dir",
                        dir,
                        "--initial-cluster",
                        self->cluster,
                        "--initial-advertise-peer-urls",
                        peer,
                        NULL};
        if (s_etcdctl_run(self, argv) != 0) {
            fprintf(stderr, "etcd_harness: snapshot restore of member %d failed (%s/etcdctl.log)\n",
                    i, self->root);
            return false;
        }
    }
    for (int i = 0; i < self->members; i++) {
        if (!s_spawn_member(self, i)) {
            return false;
        }
    }
    return s_wait_ready(self);
}

void it_etcd_dump_log(it_etcd_t *self, int i) {
    char log[300];
    snprintf(log, sizeof log, "%s/m%d.log", self->root, i);
    char *text = it_read_file(log, NULL);
    fprintf(stderr, "---- etcd member %d log (%s) ----\n%s\n", i, log, text ? text : "");
    free(text);
}

void it_etcd_destroy(it_etcd_t **self_p) {
    if (self_p == NULL || *self_p == NULL) {
        return;
    }
    it_etcd_t *self = *self_p;
    for (int i = 0; i < self->members; i++) {
        it_etcd_resume_member(self, i);
        it_etcd_kill_member(self, i);
    }
    test_dir_remove(self->root);
    free(self);
    *self_p = NULL;
}

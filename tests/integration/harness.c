/*  harness.c - real ternd and ternctl processes for the integration tests.

    See harness.h. Processes are started with fork/execv and tracked by PID in
    a small registry; teardown (Criterion .fini), atexit() and
    PR_SET_PDEATHSIG each make sure none outlives its test. Nothing here uses
    a shell: arguments go straight to execv.
*/
#include "harness.h"
#include "tern_json_read.h"
#include "test_port.h"

#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#ifndef TERN_BIN_DIR
#define TERN_BIN_DIR "."
#endif

#define IT_ARGS_MAX    128 /* arguments of one ternctl run */
#define IT_PIDS_MAX    256 /* registry size */
#define IT_BROKERS_MAX 8   /* brokers remembered for it_teardown */
#define IT_READY_MS    10000
#define IT_KILLED      (-1000)

//  ---------------------------------------------------------------------
//  PID registry: every process we start, killed by PID at teardown/exit.

static pid_t s_pids[IT_PIDS_MAX];
static bool s_atexit_done;
static it_broker_t *s_brokers[IT_BROKERS_MAX];
static it_proc_t *s_procs[IT_PIDS_MAX];

static void s_kill_all(void) {
    for (int i = 0; i < IT_PIDS_MAX; i++) {
        if (s_pids[i] > 0) {
            kill(s_pids[i], SIGKILL);
            waitpid(s_pids[i], NULL, 0);
            s_pids[i] = 0;
        }
    }
}

static void s_register(pid_t pid) {
    if (!s_atexit_done) {
        atexit(s_kill_all);
        s_atexit_done = true;
    }
    for (int i = 0; i < IT_PIDS_MAX; i++) {
        if (s_pids[i] == 0) {
            s_pids[i] = pid;
            return;
        }
    }
}

static void s_unregister(pid_t pid) {
    for (int i = 0; i < IT_PIDS_MAX; i++) {
        if (s_pids[i] == pid) {
            s_pids[i] = 0;
        }
    }
}

//  Converts a wait status into: exit code, or -signal.
static int s_status(int wstatus) {
    if (WIFEXITED(wstatus)) {
        return WEXITSTATUS(wstatus);
    }
    if (WIFSIGNALED(wstatus)) {
        return -WTERMSIG(wstatus);
    }
    return -999;
}

int64_t it_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void it_sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
    }
}

const char *it_ternctl_path(void) {
    return TERN_BIN_DIR "/ternctl";
}

const char *it_ternd_path(void) {
    return TERN_BIN_DIR "/ternd";
}

void it_keys_gen(const char *dir, const char *name, const char *role, it_result_t *r) {
    char *argv[] = {
        (char *)it_ternctl_path(), "keys",       "gen", (char *)name, "--dir", (char *)dir,
        role ? "--role" : NULL,    (char *)role, NULL};
    it_result_t own;
    it_result_t *res = r ? r : &own;
    it_run(res, 10000, NULL, argv);
    it_assert_ok(res, "keys gen");
    if (!r) {
        it_result_free(&own);
    }
}

//  Waits for PID up to TIMEOUT_MS; returns true and *WSTATUS if it exited.
static bool s_wait_pid(pid_t pid, int timeout_ms, int *wstatus) {
    int64_t deadline = it_now_ms() + timeout_ms;
    while (true) {
        pid_t rc = waitpid(pid, wstatus, WNOHANG);
        if (rc == pid) {
            return true;
        }
        if (rc == -1 && errno != EINTR) {
            *wstatus = 0;
            return true; //  not our child any more
        }
        if (it_now_ms() >= deadline) {
            return false;
        }
        it_sleep_ms(5);
    }
}

//  fork + execv with stdin/stdout/stderr redirected to the given fds (-1 =
//  /dev/null). The child dies with us (PR_SET_PDEATHSIG).
static pid_t s_spawn(char *const argv[], int in_fd, int out_fd, int err_fd) {
    pid_t parent = getpid();
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        return -1;
    }
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) {
            _exit(127);
        }
        int devnull = open("/dev/null", O_RDWR);
        dup2(in_fd >= 0 ? in_fd : devnull, 0);
        dup2(out_fd >= 0 ? out_fd : devnull, 1);
        dup2(err_fd >= 0 ? err_fd : devnull, 2);
        //  Close everything else (zmq sockets of the test process included).
        for (int fd = 3; fd < 1024; fd++) {
            close(fd);
        }
        //  Tests choose their endpoint explicitly; never inherit one.
        unsetenv("TERN_SERVER");
        execv(argv[0], argv);
        fprintf(stderr, "harness: execv %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    s_register(pid);
    return pid;
}

//  ---------------------------------------------------------------------
//  Brokers

it_broker_t *it_broker_new(uint32_t node_id, const char *const *extra) {
    it_broker_t *self = calloc(1, sizeof *self);
    if (!self) {
        return NULL;
    }
    snprintf(self->root, sizeof self->root, "/tmp/tern-it-XXXXXX");
    if (!mkdtemp(self->root)) {
        free(self);
        return NULL;
    }
    snprintf(self->data_dir, sizeof self->data_dir, "%s/data", self->root);
    snprintf(self->log_path, sizeof self->log_path, "%s/ternd.log", self->root);
    mkdir(self->data_dir, 0700);
    self->port = test_port();
    snprintf(self->endpoint, sizeof self->endpoint, "tcp://127.0.0.1:%d", self->port);
    self->node_id = node_id;
    snprintf(self->dc, sizeof self->dc, "dc1");
    for (int i = 0; extra && extra[i] && i < IT_EXTRA_MAX; i++) {
        self->extra[self->extra_count++] = strdup(extra[i]);
    }
    return self;
}

static long s_file_size(const char *path) {
    struct stat st;
    if (stat(path, &st) != 0) {
        return 0;
    }
    return (long)st.st_size;
}

void it_broker_dump_log(it_broker_t *self, bool whole) {
    size_t len = 0;
    char *text = it_read_file(self->log_path, &len);
    if (!text) {
        fprintf(stderr, "harness: no log at %s\n", self->log_path);
        return;
    }
    size_t from = whole || self->log_offset > (long)len ? 0 : (size_t)self->log_offset;
    //  Keep the dump readable: the last 8 KB at most.
    if (len - from > 8192) {
        from = len - 8192;
    }
    fprintf(stderr, "---- ternd log (%s, port %d) ----\n%s\n---- end of log ----\n", self->log_path,
            self->port, text + from);
    free(text);
}

tern_client_t *it_client(it_broker_t *b, const tern_client_options_t *options) {
    tern_client_t *client = tern_client_new(b->endpoint, options);
    cr_assert(client, "tern_client_new %s: %s", b->endpoint, tern_last_reason());
    tern_err_t rc = tern_client_wait_connected(client, 10000);
    cr_assert_eq(rc, TERN_OK, "connect to %s: %s (%s)", b->endpoint, tern_errname(rc),
                 tern_last_reason());
    return client;
}

bool it_broker_logged(it_broker_t *self, const char *needle) {
    size_t len = 0;
    char *text = it_read_file(self->log_path, &len);
    if (!text) {
        return false;
    }
    bool found = (size_t)self->log_offset <= len && strstr(text + self->log_offset, needle) != NULL;
    free(text);
    return found;
}

long it_rss_anon_kb(pid_t pid) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    char *text = it_read_file(path, NULL);
    long kb = -1;
    const char *at = text ? strstr(text, "RssAnon:") : NULL;
    if (at) {
        kb = strtol(at + strlen("RssAnon:"), NULL, 10);
    }
    free(text);
    return kb;
}

bool it_broker_start(it_broker_t *self) {
    if (self->pid > 0) {
        return true;
    }
    return it_broker_spawn(self) && it_broker_wait_ready(self, IT_READY_MS);
}

bool it_broker_spawn(it_broker_t *self) {
    if (self->pid > 0) {
        return true;
    }
    char node[16];
    snprintf(node, sizeof node, "%u", self->node_id);
    char *argv[IT_EXTRA_MAX + 16];
    int argc = 0;
    argv[argc++] = (char *)it_ternd_path();
    argv[argc++] = "--data";
    argv[argc++] = self->data_dir;
    argv[argc++] = "--listen";
    argv[argc++] = self->endpoint;
    argv[argc++] = "--metrics";
    argv[argc++] = "off";
    argv[argc++] = "--node-id";
    argv[argc++] = node;
    argv[argc++] = "--dc";
    argv[argc++] = self->dc;
    for (int i = 0; i < self->extra_count; i++) {
        argv[argc++] = self->extra[i];
    }
    argv[argc] = NULL;

    int log_fd = open(self->log_path, O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (log_fd < 0) {
        return false;
    }
    self->log_offset = s_file_size(self->log_path);
    dprintf(log_fd, "==== harness: start #%d of ternd on %s ====\n", self->starts + 1,
            self->endpoint);
    self->pid = s_spawn(argv, -1, log_fd, log_fd);
    close(log_fd);
    if (self->pid <= 0) {
        self->pid = 0;
        return false;
    }
    self->starts++;
    self->paused = false;
    return true;
}

bool it_broker_wait_ready(it_broker_t *self, int timeout_ms) {
    int64_t deadline = it_now_ms() + timeout_ms;
    int64_t next_status = it_now_ms() + 500;
    while (it_now_ms() < deadline) {
        int wstatus = 0;
        if (!it_broker_alive(self, &wstatus)) {
            fprintf(stderr, "harness: ternd exited during startup (status %d)\n",
                    s_status(wstatus));
            it_broker_dump_log(self, false);
            return false;
        }
        if (it_broker_logged(self, "ready on")) {
            return true;
        }
        if (it_now_ms() >= next_status) {
            //  Fallback when the ready line is worded differently.
            it_result_t r;
            int rc = it_ctl(&r, self, 1000, "status", NULL);
            it_result_free(&r);
            if (rc == 0) {
                return true;
            }
            next_status = it_now_ms() + 500;
        }
        it_sleep_ms(10);
    }
    fprintf(stderr, "harness: ternd not ready after %d ms\n", timeout_ms);
    it_broker_dump_log(self, false);
    return false;
}

bool it_broker_alive(it_broker_t *self, int *status_p) {
    if (self->pid <= 0) {
        return false;
    }
    int wstatus = 0;
    if (!s_wait_pid(self->pid, 0, &wstatus)) {
        return true;
    }
    s_unregister(self->pid);
    self->pid = 0;
    if (status_p) {
        *status_p = wstatus;
    }
    return false;
}

int it_broker_stop(it_broker_t *self, int timeout_ms) {
    if (self->pid <= 0) {
        return IT_KILLED;
    }
    pid_t pid = self->pid;
    kill(pid, SIGTERM);
    if (self->paused) {
        kill(pid, SIGCONT);
        self->paused = false;
    }
    int wstatus = 0;
    int result;
    if (s_wait_pid(pid, timeout_ms, &wstatus)) {
        result = s_status(wstatus);
    } else {
        fprintf(stderr, "harness: ternd %d ignored SIGTERM for %d ms: killing it\n", (int)pid,
                timeout_ms);
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        result = IT_KILLED;
    }
    s_unregister(pid);
    self->pid = 0;
    return result;
}

void it_broker_kill(it_broker_t *self) {
    if (self->pid <= 0) {
        return;
    }
    kill(self->pid, SIGKILL);
    waitpid(self->pid, NULL, 0);
    s_unregister(self->pid);
    self->pid = 0;
    self->paused = false;
}

void it_broker_pause(it_broker_t *self) {
    if (self->pid > 0) {
        kill(self->pid, SIGSTOP);
        self->paused = true;
    }
}

void it_broker_resume(it_broker_t *self) {
    if (self->pid > 0) {
        kill(self->pid, SIGCONT);
        self->paused = false;
    }
}

static int s_rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

void it_broker_destroy(it_broker_t **self_p) {
    if (!self_p || !*self_p) {
        return;
    }
    it_broker_t *self = *self_p;
    it_broker_kill(self);
    if (self->root[0] && strncmp(self->root, "/tmp/tern-it-", 13) == 0) {
        nftw(self->root, s_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    }
    for (int i = 0; i < self->extra_count; i++) {
        free(self->extra[i]);
    }
    free(self);
    *self_p = NULL;
}

it_broker_t *it_adopt_broker(it_broker_t *b) {
    for (int i = 0; i < IT_BROKERS_MAX; i++) {
        if (!s_brokers[i]) {
            s_brokers[i] = b;
            break;
        }
    }
    return b;
}

it_broker_t *it_start_broker(const char *extra, ...) {
    const char *args[IT_EXTRA_MAX + 1];
    int n = 0;
    va_list ap;
    va_start(ap, extra);
    for (const char *a = extra; a && n < IT_EXTRA_MAX; a = va_arg(ap, const char *)) {
        args[n++] = a;
    }
    va_end(ap);
    args[n] = NULL;
    it_broker_t *b = it_broker_new(0, args);
    cr_assert(b, "harness: cannot create a broker dir");
    it_adopt_broker(b);
    cr_assert(it_broker_start(b), "ternd did not start (see its log above)");
    return b;
}

void it_mesh_start(int n, const char *const *common, const char *const *const *each,
                   it_broker_t **out) {
    cr_assert(n >= 2 && n <= 8, "harness: a mesh of %d", n);
    char eps[8][64];
    for (int i = 0; i < n; i++) {
        snprintf(eps[i], sizeof eps[i], "tcp://127.0.0.1:%d", test_port());
    }
    for (int i = 0; i < n; i++) {
        char peers[8][96];
        const char *args[IT_EXTRA_MAX + 1];
        int k = 0;
        args[k++] = "--repl-listen";
        args[k++] = eps[i];
        for (int j = 0; j < n; j++) {
            if (j != i) {
                snprintf(peers[j], sizeof peers[j], "dc%d=%.63s", j + 1, eps[j]);
                args[k++] = "--peer";
                args[k++] = peers[j];
            }
        }
        for (const char *const *a = common; a && *a && k < IT_EXTRA_MAX; a++) {
            args[k++] = *a;
        }
        for (const char *const *a = each ? each[i] : NULL; a && *a && k < IT_EXTRA_MAX; a++) {
            args[k++] = *a;
        }
        args[k] = NULL;
        it_broker_t *b = it_broker_new((uint32_t)(i + 1), args);
        cr_assert(b, "harness: cannot create a broker dir");
        snprintf(b->dc, sizeof b->dc, "dc%d", i + 1);
        snprintf(b->repl_ep, sizeof b->repl_ep, "%s", eps[i]);
        out[i] = it_adopt_broker(b);
    }
    for (int i = 0; i < n; i++) {
        cr_assert(it_broker_start(out[i]), "dc%d did not start (see its log above)", i + 1);
    }
}

void it_teardown(void) {
    for (int i = 0; i < IT_PIDS_MAX; i++) {
        if (s_procs[i]) {
            it_proc_destroy(&s_procs[i]);
        }
    }
    for (int i = 0; i < IT_BROKERS_MAX; i++) {
        it_broker_t *b = s_brokers[i];
        if (!b) {
            continue;
        }
        s_brokers[i] = NULL;
        if (b->pid > 0) {
            int wstatus = 0;
            bool alive = it_broker_alive(b, &wstatus);
            if (!alive) {
                fprintf(stderr, "harness: ternd had died before teardown (status %d)\n",
                        s_status(wstatus));
                it_broker_dump_log(b, false);
                cr_expect(false, "ternd died during the test (status %d)", s_status(wstatus));
            } else {
                int rc = it_broker_stop(b, 5000);
                if (rc != 0) {
                    it_broker_dump_log(b, false);
                }
                cr_expect_eq(rc, 0, "ternd did not exit 0 on SIGTERM at teardown (got %d)", rc);
            }
        }
        it_broker_destroy(&b);
    }
    s_kill_all();
}

//  ---------------------------------------------------------------------
//  Running ternctl

char *it_read_file(const char *path, size_t *len_p) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        return NULL;
    }
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    while (buf) {
        if (len + 4096 + 1 > cap) {
            cap *= 2;
            char *nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
        }
        size_t n = fread(buf + len, 1, cap - len - 1, f);
        if (n == 0) {
            break;
        }
        len += n;
    }
    fclose(f);
    if (buf) {
        buf[len] = 0;
    }
    if (len_p) {
        *len_p = len;
    }
    return buf;
}

static void s_append(char **buf, size_t *len, size_t *cap, const char *data, size_t n) {
    if (*len + n + 1 > *cap) {
        size_t ncap = *cap ? *cap : 4096;
        while (*len + n + 1 > ncap) {
            ncap *= 2;
        }
        char *nb = realloc(*buf, ncap);
        if (!nb) {
            return;
        }
        *buf = nb;
        *cap = ncap;
    }
    memcpy(*buf + *len, data, n);
    *len += n;
    (*buf)[*len] = 0;
}

int it_run(it_result_t *r, int timeout_ms, const char *stdin_data, char *const argv[]) {
    memset(r, 0, sizeof *r);
    size_t out_cap = 0, err_cap = 0;
    s_append(&r->out, &r->out_len, &out_cap, "", 0);
    s_append(&r->err, &r->err_len, &err_cap, "", 0);

    int in_fd = -1;
    if (stdin_data) {
        char path[] = "/tmp/tern-it-stdin-XXXXXX";
        in_fd = mkstemp(path);
        if (in_fd >= 0) {
            unlink(path);
            size_t left = strlen(stdin_data);
            const char *p = stdin_data;
            while (left > 0) {
                ssize_t n = write(in_fd, p, left);
                if (n <= 0) {
                    break;
                }
                p += n;
                left -= (size_t)n;
            }
            lseek(in_fd, 0, SEEK_SET);
        }
    }
    int out_pipe[2], err_pipe[2];
    if (pipe(out_pipe) != 0 || pipe(err_pipe) != 0) {
        r->status = -999;
        return r->status;
    }
    pid_t pid = s_spawn(argv, in_fd, out_pipe[1], err_pipe[1]);
    close(out_pipe[1]);
    close(err_pipe[1]);
    if (in_fd >= 0) {
        close(in_fd);
    }
    if (pid <= 0) {
        close(out_pipe[0]);
        close(err_pipe[0]);
        r->status = -999;
        return r->status;
    }
    int64_t deadline = it_now_ms() + timeout_ms;
    bool out_open = true, err_open = true;
    while (out_open || err_open) {
        int64_t left = deadline - it_now_ms();
        if (left <= 0) {
            r->timed_out = true;
            break;
        }
        struct pollfd pfd[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
        int n = poll(pfd, 2, (int)(left > 100 ? 100 : left));
        if (n < 0 && errno != EINTR) {
            break;
        }
        char buf[8192];
        for (int i = 0; i < 2; i++) {
            bool *open_p = i == 0 ? &out_open : &err_open;
            if (!*open_p || !(pfd[i].revents & (POLLIN | POLLHUP | POLLERR))) {
                continue;
            }
            ssize_t got = read(pfd[i].fd, buf, sizeof buf);
            if (got <= 0) {
                *open_p = false;
            } else if (i == 0) {
                s_append(&r->out, &r->out_len, &out_cap, buf, (size_t)got);
            } else {
                s_append(&r->err, &r->err_len, &err_cap, buf, (size_t)got);
            }
        }
    }
    close(out_pipe[0]);
    close(err_pipe[0]);
    int wstatus = 0;
    int64_t left = deadline - it_now_ms();
    if (r->timed_out || !s_wait_pid(pid, left > 0 ? (int)left : 0, &wstatus)) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        r->timed_out = true;
        r->status = IT_KILLED;
    } else {
        r->status = s_status(wstatus);
    }
    s_unregister(pid);
    return r->status;
}

int it_ctl_va(it_result_t *r, it_broker_t *b, int timeout_ms, const char *stdin_data, bool json,
              const char *arg, va_list ap) {
    char *argv[IT_ARGS_MAX];
    int argc = 0;
    argv[argc++] = (char *)it_ternctl_path();
    if (b) {
        argv[argc++] = "-s";
        argv[argc++] = b->endpoint;
    }
    if (json) {
        argv[argc++] = "--json";
    }
    for (const char *a = arg; a && argc < IT_ARGS_MAX - 1; a = va_arg(ap, const char *)) {
        argv[argc++] = (char *)a;
    }
    argv[argc] = NULL;
    return it_run(r, timeout_ms, stdin_data, argv);
}

int it_ctl_at(it_result_t *r, const char *endpoints, int timeout_ms, const char *const *args) {
    char *argv[IT_ARGS_MAX] = {(char *)it_ternctl_path(), "-s", (char *)endpoints, "--json"};
    int argc = 4;
    for (size_t k = 0; args[k] && argc < IT_ARGS_MAX - 1; k++) {
        argv[argc++] = (char *)args[k];
    }
    argv[argc] = NULL;
    return it_run(r, timeout_ms, NULL, argv);
}

int it_ctl(it_result_t *r, it_broker_t *b, int timeout_ms, const char *arg, ...) {
    va_list ap;
    va_start(ap, arg);
    int rc = it_ctl_va(r, b, timeout_ms, NULL, true, arg, ap);
    va_end(ap);
    return rc;
}

int it_ctl_in(it_result_t *r, it_broker_t *b, int timeout_ms, const char *stdin_data,
              const char *arg, ...) {
    va_list ap;
    va_start(ap, arg);
    int rc = it_ctl_va(r, b, timeout_ms, stdin_data, true, arg, ap);
    va_end(ap);
    return rc;
}

int it_ctl_text(it_result_t *r, it_broker_t *b, int timeout_ms, const char *stdin_data,
                const char *arg, ...) {
    va_list ap;
    va_start(ap, arg);
    int rc = it_ctl_va(r, b, timeout_ms, stdin_data, false, arg, ap);
    va_end(ap);
    return rc;
}

void it_pub(it_broker_t *b, const char *topic, const char *data, int count) {
    char n[16];
    snprintf(n, sizeof n, "%d", count);
    it_result_t r;
    it_ctl(&r, b, 30000, "pub", topic, data, "--count", n, NULL);
    it_assert_ok(&r, "ternctl pub");
    char **lines;
    size_t got = it_split_lines(r.out, &lines);
    cr_assert_eq(got, (size_t)count, "pub printed %zu acks, want %d", got, count);
    free(lines);
    it_result_free(&r);
}

void it_pub_async(tern_client_t *client, const char *topic, const char *prefix, int count,
                  tern_pub_fn *done, void *arg) {
    for (int i = 0; i < count; i++) {
        char payload[64];
        snprintf(payload, sizeof payload, "%s%04d", prefix, i);
        tern_pub_options_t msg;
        tern_pub_options_init(&msg);
        msg.topic = topic;
        msg.payload = payload;
        msg.size = strlen(payload);
        tern_err_t rc = tern_publish_async(client, &msg, done, arg);
        cr_assert_eq(rc, TERN_OK, "publish %d to %s: %s", i, topic, tern_last_reason());
    }
}

size_t it_acks_add(it_acks_t *acks, const char *out) {
    char *copy = strdup(out);
    char **lines;
    size_t n = it_split_lines(copy, &lines), added = 0;
    for (size_t i = 0; i < n; i++) {
        int64_t id;
        if (it_json_int(lines[i], "msg_id", &id)) {
            if (acks->count == acks->cap) {
                acks->cap = acks->cap ? acks->cap * 2 : 4096;
                acks->ids = realloc(acks->ids, acks->cap * sizeof *acks->ids);
            }
            acks->ids[acks->count++] = id;
            added++;
        }
    }
    free(lines);
    free(copy);
    return added;
}

void it_acks_free(it_acks_t *acks) {
    free(acks->ids);
    memset(acks, 0, sizeof *acks);
}

int it_cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

int64_t it_topic_msgs(it_broker_t *b, const char *topic) {
    it_result_t r;
    int64_t msgs = -1;
    if (it_ctl(&r, b, 5000, "topic", "info", topic, NULL) == 0) {
        it_json_int(r.out, "msgs", &msgs);
    }
    it_result_free(&r);
    return msgs;
}

void it_result_free(it_result_t *r) {
    free(r->out);
    free(r->err);
    r->out = r->err = NULL;
}

//  ---------------------------------------------------------------------
//  Background ternctl

static it_proc_t *s_ctl_spawn_va(it_broker_t *b, bool piped, const char *arg, va_list ap) {
    static int counter;
    it_proc_t *self = calloc(1, sizeof *self);
    if (!self) {
        return NULL;
    }
    self->in_fd = -1;
    counter++;
    snprintf(self->out_path, sizeof self->out_path, "%s/proc-%d-%d.out", b->root, (int)getpid(),
             counter);
    snprintf(self->err_path, sizeof self->err_path, "%s/proc-%d-%d.err", b->root, (int)getpid(),
             counter);
    char *argv[IT_ARGS_MAX];
    int argc = 0;
    argv[argc++] = (char *)it_ternctl_path();
    argv[argc++] = "-s";
    argv[argc++] = b->endpoint;
    argv[argc++] = "--json";
    for (const char *a = arg; a && argc < IT_ARGS_MAX - 1; a = va_arg(ap, const char *)) {
        argv[argc++] = (char *)a;
    }
    argv[argc] = NULL;
    int in_pipe[2] = {-1, -1};
    if (piped) {
        //  A dead reader must fail our write, not kill the test.
        signal(SIGPIPE, SIG_IGN);
        if (pipe(in_pipe) != 0) {
            free(self);
            return NULL;
        }
    }
    int out_fd = open(self->out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int err_fd = open(self->err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    self->pid = s_spawn(argv, in_pipe[0], out_fd, err_fd);
    if (out_fd >= 0) {
        close(out_fd);
    }
    if (err_fd >= 0) {
        close(err_fd);
    }
    if (in_pipe[0] >= 0) {
        close(in_pipe[0]);
    }
    self->in_fd = in_pipe[1];
    if (self->pid <= 0) {
        if (self->in_fd >= 0) {
            close(self->in_fd);
        }
        free(self);
        return NULL;
    }
    for (int i = 0; i < IT_PIDS_MAX; i++) {
        if (!s_procs[i]) {
            s_procs[i] = self;
            break;
        }
    }
    return self;
}

it_proc_t *it_ctl_spawn(it_broker_t *b, const char *arg, ...) {
    va_list ap;
    va_start(ap, arg);
    it_proc_t *self = s_ctl_spawn_va(b, false, arg, ap);
    va_end(ap);
    return self;
}

it_proc_t *it_ctl_spawn_piped(it_broker_t *b, const char *arg, ...) {
    va_list ap;
    va_start(ap, arg);
    it_proc_t *self = s_ctl_spawn_va(b, true, arg, ap);
    va_end(ap);
    return self;
}

bool it_proc_write(it_proc_t *self, const char *text) {
    if (self->in_fd < 0) {
        return false;
    }
    size_t left = strlen(text);
    while (left > 0) {
        ssize_t n = write(self->in_fd, text, left);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return false;
        }
        text += n;
        left -= (size_t)n;
    }
    return true;
}

void it_proc_close_stdin(it_proc_t *self) {
    if (self->in_fd >= 0) {
        close(self->in_fd);
        self->in_fd = -1;
    }
}

bool it_proc_running(it_proc_t *self) {
    if (self->pid <= 0) {
        return false;
    }
    int wstatus = 0;
    if (!s_wait_pid(self->pid, 0, &wstatus)) {
        return true;
    }
    s_unregister(self->pid);
    self->pid = 0;
    self->status = s_status(wstatus);
    return false;
}

int it_proc_wait(it_proc_t *self, int timeout_ms) {
    if (self->pid <= 0) {
        return self->status;
    }
    int wstatus = 0;
    if (s_wait_pid(self->pid, timeout_ms, &wstatus)) {
        self->status = s_status(wstatus);
    } else {
        kill(self->pid, SIGKILL);
        waitpid(self->pid, NULL, 0);
        self->status = IT_KILLED;
    }
    s_unregister(self->pid);
    self->pid = 0;
    return self->status;
}

void it_proc_signal(it_proc_t *self, int sig) {
    if (it_proc_running(self)) {
        kill(self->pid, sig);
    }
}

char *it_proc_out(it_proc_t *self) {
    char *text = it_read_file(self->out_path, NULL);
    return text ? text : strdup("");
}

char *it_proc_err(it_proc_t *self) {
    char *text = it_read_file(self->err_path, NULL);
    return text ? text : strdup("");
}

size_t it_proc_lines(it_proc_t *self) {
    char *text = it_proc_out(self);
    size_t n = 0;
    for (char *p = text; p && *p; p++) {
        if (*p == '\n') {
            n++;
        }
    }
    free(text);
    return n;
}

bool it_proc_wait_lines(it_proc_t *self, size_t n, int timeout_ms) {
    int64_t deadline = it_now_ms() + timeout_ms;
    while (it_proc_lines(self) < n && it_now_ms() < deadline && it_proc_running(self)) {
        it_sleep_ms(10);
    }
    return it_proc_lines(self) >= n;
}

void it_proc_destroy(it_proc_t **self_p) {
    if (!self_p || !*self_p) {
        return;
    }
    it_proc_t *self = *self_p;
    it_proc_close_stdin(self);
    if (self->pid > 0) {
        kill(self->pid, SIGKILL);
        waitpid(self->pid, NULL, 0);
        s_unregister(self->pid);
    }
    for (int i = 0; i < IT_PIDS_MAX; i++) {
        if (s_procs[i] == self) {
            s_procs[i] = NULL;
        }
    }
    free(self);
    *self_p = NULL;
}

//  ---------------------------------------------------------------------
//  Lines and JSON

size_t it_split_lines(char *text, char ***lines) {
    size_t count = 0, cap = 16;
    char **arr = malloc(cap * sizeof *arr);
    char *p = text;
    while (p && *p && arr) {
        char *nl = strchr(p, '\n');
        if (nl) {
            *nl = 0;
        }
        if (*p) {
            if (count == cap) {
                cap *= 2;
                char **na = realloc(arr, cap * sizeof *arr);
                if (!na) {
                    break;
                }
                arr = na;
            }
            arr[count++] = p;
        }
        p = nl ? nl + 1 : NULL;
    }
    *lines = arr;
    return count;
}

//  The JSON object at OBJ's first '{' (what follows it ignored), or NULL
//  if there is none or it is not JSON. Its spans point into OBJ.
static tern_json_value_t *s_json_object(const char *obj) {
    const char *p = obj ? strchr(obj, '{') : NULL;
    return p ? tern_json_parse_first(p, strlen(p), NULL) : NULL;
}

bool it_json_raw(const char *obj, const char *key, const char **val, size_t *len) {
    tern_json_value_t *doc = s_json_object(obj);
    const tern_json_value_t *v = tern_json_get(doc, key);
    if (v) {
        *val = v->src;
        *len = v->src_len;
    }
    tern_json_value_destroy(&doc);
    return v != NULL;
}

bool it_json_int(const char *obj, const char *key, int64_t *out) {
    const char *v;
    size_t len;
    if (!it_json_raw(obj, key, &v, &len)) {
        return false;
    }
    if (*v == '"') { //  tolerate numbers sent as strings
        v++;
    }
    char *end = NULL;
    errno = 0;
    long long n = strtoll(v, &end, 10);
    if (end == v || errno) {
        //  u64 beyond int64: keep the bits
        errno = 0;
        unsigned long long u = strtoull(v, &end, 10);
        if (end == v || errno) {
            return false;
        }
        n = (long long)u;
    }
    *out = (int64_t)n;
    return true;
}

int64_t it_json_field(const char *obj, const char *key) {
    int64_t v = -1;
    cr_assert(it_json_int(obj, key, &v), "no integer '%s' in %s", key, obj);
    return v;
}

bool it_json_bool(const char *obj, const char *key, bool *out) {
    const char *v;
    size_t len;
    if (!it_json_raw(obj, key, &v, &len)) {
        return false;
    }
    if (len >= 4 && strncmp(v, "true", 4) == 0) {
        *out = true;
        return true;
    }
    if (len >= 5 && strncmp(v, "false", 5) == 0) {
        *out = false;
        return true;
    }
    return false;
}

char *it_json_strdup(const char *obj, const char *key, size_t *len_p) {
    tern_json_value_t *doc = s_json_object(obj);
    const tern_json_value_t *v = tern_json_get(doc, key);
    char *out = NULL;
    if (v && v->kind == TERN_JSON_STRING) {
        out = malloc(v->text_len + 1);
        cr_assert_not_null(out);
        memcpy(out, v->text, v->text_len + 1);
        if (len_p) {
            *len_p = v->text_len;
        }
    }
    tern_json_value_destroy(&doc);
    return out;
}

bool it_json_str(const char *obj, const char *key, char *buf, size_t cap) {
    size_t len = 0;
    char *s = it_json_strdup(obj, key, &len);
    if (!s) {
        return false;
    }
    snprintf(buf, cap, "%s", s);
    free(s);
    return true;
}

static size_t s_base64_decode(const char *in, size_t len, char *out) {
    static const char *alphabet =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    uint32_t acc = 0;
    int bits = 0;
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        const char *pos = strchr(alphabet, in[i]);
        if (!pos || !in[i]) {
            continue; //  padding, newlines
        }
        acc = (acc << 6) | (uint32_t)(pos - alphabet);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[n++] = (char)((acc >> bits) & 0xFF);
        }
    }
    return n;
}

size_t it_parse_msgs(const char *out, it_msg_t **msgs) {
    char *copy = strdup(out ? out : "");
    char **lines = NULL;
    size_t nlines = it_split_lines(copy, &lines);
    it_msg_t *arr = calloc(nlines ? nlines : 1, sizeof *arr);
    size_t n = 0;
    for (size_t i = 0; i < nlines && arr; i++) {
        const char *l = lines[i];
        it_msg_t *m = &arr[n];
        memset(m, 0, sizeof *m);
        if (!it_json_int(l, "seq", &m->seq)) {
            continue;
        }
        it_json_str(l, "topic", m->topic, sizeof m->topic);
        it_json_int(l, "msg_id", &m->msg_id);
        it_json_str(l, "producer", m->producer, sizeof m->producer);
        it_json_int(l, "producer_seq", &m->producer_seq);
        it_json_int(l, "priority", &m->priority);
        it_json_int(l, "delivery_count", &m->delivery_count);
        it_json_int(l, "timestamp_ns", &m->timestamp_ns);
        it_json_str(l, "origin", m->origin, sizeof m->origin);
        it_json_str(l, "key", m->key, sizeof m->key);
        it_json_str(l, "trace_id", m->trace_id, sizeof m->trace_id);
        m->data = it_json_strdup(l, "data", &m->data_len);
        if (!m->data) {
            size_t blen = 0;
            char *b64 = it_json_strdup(l, "data_b64", &blen);
            if (b64) {
                m->data = malloc(blen + 1);
                m->data_len = s_base64_decode(b64, blen, m->data);
                m->data[m->data_len] = 0;
                free(b64);
            }
        }
        const char *hv;
        size_t hlen;
        if (it_json_raw(l, "headers", &hv, &hlen)) {
            m->headers = strndup(hv, hlen);
        }
        n++;
    }
    free(lines);
    free(copy);
    *msgs = arr;
    return n;
}

void it_msgs_free(it_msg_t *msgs, size_t count) {
    for (size_t i = 0; msgs && i < count; i++) {
        free(msgs[i].data);
        free(msgs[i].headers);
    }
    free(msgs);
}

size_t it_parse_msg_ids(const char *out, int64_t **ids_p) {
    it_msg_t *msgs = NULL;
    size_t n = it_parse_msgs(out, &msgs);
    int64_t *ids = malloc((n + 1) * sizeof *ids);
    for (size_t i = 0; i < n; i++) {
        ids[i] = msgs[i].msg_id;
    }
    it_msgs_free(msgs, n);
    qsort(ids, n, sizeof *ids, it_cmp_i64);
    *ids_p = ids;
    return n;
}

//  ---------------------------------------------------------------------
//  Raw ZeroMQ client

it_raw_t *it_raw_new(const char *endpoint) {
    it_raw_t *self = calloc(1, sizeof *self);
    if (!self) {
        return NULL;
    }
    self->ctx = zmq_ctx_new();
    self->sock = self->ctx ? zmq_socket(self->ctx, ZMQ_DEALER) : NULL;
    int linger = 0;
    if (!self->sock || zmq_setsockopt(self->sock, ZMQ_LINGER, &linger, sizeof linger) != 0 ||
        zmq_connect(self->sock, endpoint) != 0) {
        it_raw_destroy(&self);
        return NULL;
    }
    self->next_req = 1;
    return self;
}

void it_raw_destroy(it_raw_t **self_p) {
    if (!self_p || !*self_p) {
        return;
    }
    it_raw_t *self = *self_p;
    if (self->sock) {
        zmq_close(self->sock);
    }
    if (self->ctx) {
        zmq_ctx_term(self->ctx);
    }
    free(self->payload);
    free(self);
    *self_p = NULL;
}

bool it_raw_send_parts(it_raw_t *self, const void *const *parts, const size_t *sizes,
                       size_t count) {
    for (size_t i = 0; i < count; i++) {
        int flags = i + 1 < count ? ZMQ_SNDMORE : 0;
        if (zmq_send(self->sock, parts[i], sizes[i], flags) < 0) {
            return false;
        }
    }
    return true;
}

bool it_raw_send(it_raw_t *self, const void *hdr, size_t hdr_size, const void *payload,
                 size_t payload_size) {
    const void *parts[2] = {hdr, payload};
    size_t sizes[2] = {hdr_size, payload_size};
    return it_raw_send_parts(self, parts, sizes, payload ? 2 : 1);
}

void it_repl_record(tern_frame_t *f, uint64_t pos, uint64_t msg_id, const char *topic,
                    const char *origin) {
    tern_frame_init(f, TERN_CMD_REPL_RECORD);
    f->position = pos;
    f->msg_id = msg_id;
    snprintf(f->topic, sizeof f->topic, "%s", topic);
    snprintf(f->origin, sizeof f->origin, "%s", origin);
    f->fields |= TERN_F_TOPIC | TERN_F_ORIGIN;
    f->timestamp_ns = (uint64_t)it_now_ms() * 1000000ull;
    f->payload = (const uint8_t *)"x";
    f->payload_size = 1;
}

tern_err_t it_raw_send_frame(it_raw_t *self, const tern_frame_t *frame) {
    static uint8_t buf[TERN_HEADER_MAX];
    size_t len = 0;
    tern_err_t rc = tern_frame_encode(frame, buf, sizeof buf, &len);
    if (rc != TERN_OK) {
        return rc;
    }
    const void *payload = NULL;
    if (tern_cmd_has_payload(frame->cmd)) {
        payload = frame->payload ? (const void *)frame->payload : (const void *)"";
    }
    return it_raw_send(self, buf, len, payload, frame->payload_size) ? TERN_OK : TERN_ECLOSED;
}

tern_err_t it_raw_recv(it_raw_t *self, tern_frame_t *out, int timeout_ms) {
    zmq_pollitem_t item = {self->sock, 0, ZMQ_POLLIN, 0};
    if (zmq_poll(&item, 1, timeout_ms) <= 0 || !(item.revents & ZMQ_POLLIN)) {
        return TERN_ETIMEOUT;
    }
    self->has_payload = false;
    self->payload_size = 0;
    int part = 0;
    while (true) {
        zmq_msg_t msg;
        zmq_msg_init(&msg);
        if (zmq_msg_recv(&msg, self->sock, 0) < 0) {
            zmq_msg_close(&msg);
            return TERN_ECLOSED;
        }
        size_t size = zmq_msg_size(&msg);
        if (part == 0) {
            self->hdr_size = size < sizeof self->hdr ? size : sizeof self->hdr;
            memcpy(self->hdr, zmq_msg_data(&msg), self->hdr_size);
        } else if (part == 1) {
            free(self->payload);
            self->payload = malloc(size ? size : 1);
            if (self->payload) {
                memcpy(self->payload, zmq_msg_data(&msg), size);
                self->payload_size = size;
            }
            self->has_payload = true;
        }
        int more = zmq_msg_more(&msg);
        zmq_msg_close(&msg);
        part++;
        if (!more) {
            break;
        }
    }
    tern_limits_t limits = {.max_payload = 64u * 1024 * 1024};
    return tern_frame_decode(out, self->hdr, self->hdr_size,
                             self->has_payload ? self->payload : NULL, self->payload_size, &limits);
}

tern_err_t it_raw_recv_reply(it_raw_t *self, tern_frame_t *out, int timeout_ms) {
    int64_t deadline = it_now_ms() + timeout_ms;
    while (true) {
        int64_t left = deadline - it_now_ms();
        if (left <= 0) {
            return TERN_ETIMEOUT;
        }
        tern_err_t rc = it_raw_recv(self, out, (int)left);
        if (rc == TERN_ETIMEOUT) {
            return rc;
        }
        if (rc == TERN_OK && out->cmd == TERN_CMD_HEARTBEAT) {
            continue;
        }
        return rc;
    }
}

bool it_raw_hello(it_raw_t *self, const char *name) {
    tern_frame_t f;
    tern_frame_init(&f, TERN_CMD_HELLO);
    f.req_id = self->next_req++;
    f.proto_version = TERN_PROTO_VERSION;
    f.heartbeat_ms = 15000;
    snprintf(f.name, sizeof f.name, "%s", name);
    f.fields |= TERN_F_NAME;
    if (it_raw_send_frame(self, &f) != TERN_OK) {
        return false;
    }
    tern_frame_t reply;
    if (it_raw_recv_reply(self, &reply, 5000) != TERN_OK) {
        return false;
    }
    return reply.cmd == TERN_CMD_WELCOME;
}

int it_http_get(int port, const char *path, char **body) {
    *body = NULL;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) {
        return -1;
    }
    struct timeval tv = {.tv_sec = 10};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
        close(fd);
        return -1;
    }
    char req[256];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", path);
    if (write(fd, req, (size_t)n) != n) {
        close(fd);
        return -1;
    }
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    cr_assert(buf);
    for (;;) {
        if (len + 4096 > cap) {
            cap *= 2;
            buf = realloc(buf, cap);
            cr_assert(buf);
        }
        ssize_t got = read(fd, buf + len, cap - len - 1);
        if (got <= 0) {
            break;
        }
        len += (size_t)got;
    }
    close(fd);
    buf[len] = 0;
    int status = -1;
    if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1) {
        free(buf);
        return -1;
    }
    char *sep = strstr(buf, "\r\n\r\n");
    *body = strdup(sep ? sep + 4 : "");
    free(buf);
    return status;
}

double it_prom_sample(const char *doc, const char *name) {
    size_t n = strlen(name);
    for (const char *line = doc; line && *line;
         line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        if (strncmp(line, name, n) == 0 && line[n] == ' ') {
            return strtod(line + n + 1, NULL);
        }
    }
    return -1;
}

bool it_group_line(it_broker_t *b, const char *topic, const char *group, char *line, size_t cap) {
    it_result_t r;
    it_ctl(&r, b, 10000, "groups", topic, NULL);
    it_assert_ok(&r, "ternctl groups");
    char **lines;
    size_t n = it_split_lines(r.out, &lines);
    bool found = false;
    for (size_t i = 0; i < n && !found; i++) {
        char g[TERN_NAME_MAX + 1];
        if (it_json_str(lines[i], "group", g, sizeof g) && strcmp(g, group) == 0) {
            snprintf(line, cap, "%s", lines[i]);
            found = true;
        }
    }
    free(lines);
    it_result_free(&r);
    return found;
}

int64_t it_group_field(char *out, const char *group, const char *key) {
    char **lines;
    size_t n = it_split_lines(out, &lines);
    int64_t v = -1;
    for (size_t i = 0; i < n; i++) {
        char g[TERN_NAME_MAX + 1];
        if (it_json_str(lines[i], "group", g, sizeof g) && strcmp(g, group) == 0) {
            it_json_int(lines[i], key, &v);
            break;
        }
    }
    free(lines);
    return v;
}

int64_t it_group_wait(it_broker_t *b, const char *topic, const char *group, const char *key,
                      int64_t want, int timeout_ms, char *line, size_t cap) {
    int64_t deadline = it_now_ms() + timeout_ms;
    while (true) {
        cr_assert(it_group_line(b, topic, group, line, cap), "group %s not listed", group);
        int64_t v = it_json_field(line, key);
        if (v == want || it_now_ms() > deadline) {
            return v;
        }
        it_sleep_ms(50);
    }
}

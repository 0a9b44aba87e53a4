/*  netns_harness.c - network namespaces for real splits (see the .h).

    Everything goes through `ip` (iproute2), run by PID with its output
    captured (harness.c's it_run); only setns is called directly, because it
    acts on the calling thread. No shell, no iptables.
*/
#include "netns_harness.h"
#include "harness.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define S_IP_TIMEOUT_MS 10000
#define S_ARGS_MAX      16

//  The ip binary, or NULL.
static const char *s_ip_path(void) {
    static const char *const paths[] = {"/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        if (access(paths[i], X_OK) == 0) {
            return paths[i];
        }
    }
    return NULL;
}

//  Runs `ip ARG...` (NULL-terminated AP) with STDIN_DATA (may be NULL);
//  true if it exited 0. Otherwise its stderr goes into WHY (may be NULL).
static bool s_ip_va(char *why, size_t cap, const char *stdin_data, const char *arg, va_list ap) {
    const char *ip = s_ip_path();
    if (ip == NULL) {
        if (why) {
            snprintf(why, cap, "no iproute2 `ip` binary");
        }
        return false;
    }
    char *argv[S_ARGS_MAX + 2] = {(char *)ip};
    int argc = 1;
    for (const char *a = arg; a && argc < S_ARGS_MAX; a = va_arg(ap, const char *)) {
        argv[argc++] = (char *)a;
    }
    argv[argc] = NULL;
    it_result_t r;
    int rc = it_run(&r, S_IP_TIMEOUT_MS, stdin_data, argv);
    if (rc != 0 && why) {
        size_t used = (size_t)snprintf(why, cap, "`ip");
        for (int i = 1; i < argc && used < cap; i++) {
            used += (size_t)snprintf(why + used, cap - used, " %s", argv[i]);
        }
        if (used < cap) {
            snprintf(why + used, cap - used, "` exit %d: %s", rc, r.err ? r.err : "");
        }
    }
    it_result_free(&r);
    return rc == 0;
}

//  Runs `ip ARG...` (NULL-terminated); see s_ip_va.
static bool s_ip(char *why, size_t cap, const char *arg, ...) {
    va_list ap;
    va_start(ap, arg);
    bool ok = s_ip_va(why, cap, NULL, arg, ap);
    va_end(ap);
    return ok;
}

//  Runs `ip ARG...` (NULL-terminated) reading commands from STDIN_DATA.
static bool s_ip_in(char *why, size_t cap, const char *stdin_data, const char *arg, ...) {
    va_list ap;
    va_start(ap, arg);
    bool ok = s_ip_va(why, cap, stdin_data, arg, ap);
    va_end(ap);
    return ok;
}

//  Host H: its namespace with lo up, a veth vH in the switch (on the
//  bridge, up) whose peer eth0 is in H with its address.
static bool s_make_host(it_netns_t *self, int h, char *why, size_t cap) {
    char veth[16], cidr[24];
    snprintf(veth, sizeof veth, "v%d", h);
    snprintf(cidr, sizeof cidr, "%s/24", self->addr[h]);
    const char *ns = self->name[h];
    if (!s_ip(why, cap, "netns", "add", ns, NULL)) {
        return false;
    }
    self->made[h] = true;
    return s_ip(why, cap, "-n", ns, "link", "set", "lo", "up", NULL) &&
           s_ip(why, cap, "-n", self->sw, "link", "add", veth, "type", "veth", "peer", "name",
                "eth0", "netns", ns, NULL) &&
           s_ip(why, cap, "-n", self->sw, "link", "set", veth, "master", "br0", NULL) &&
           s_ip(why, cap, "-n", self->sw, "link", "set", veth, "up", NULL) &&
           s_ip(why, cap, "-n", ns, "addr", "add", cidr, "dev", "eth0", NULL) &&
           s_ip(why, cap, "-n", ns, "link", "set", "eth0", "up", NULL);
}

//  True when process PID exists and is not a zombie (kill(0) is not enough:
//  it succeeds on a zombie and fails on another user's live process).
static bool s_pid_alive(int pid) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f) {
        return false;
    }
    char line[512];
    bool alive = fgets(line, sizeof line, f) != NULL;
    fclose(f);
    const char *end = alive ? strrchr(line, ')') : NULL; //  the name may hold ") "
    return end && end[1] == ' ' && end[2] != 'Z';
}

//  Deletes the tern-PID-* namespaces of test processes that are gone: a test
//  killed by its timeout never runs its .fini, and its namespaces would stay
//  until the next boot.
static void s_sweep_stale(void) {
    DIR *dir = opendir("/run/netns");
    if (!dir) {
        return;
    }
    struct dirent *entry;
    while ((entry = readdir(dir)) != NULL) {
        int pid = 0;
        int used = 0;
        if (sscanf(entry->d_name, "tern-%d-%n", &pid, &used) == 1 && used > 0 && pid > 0 &&
            !s_pid_alive(pid)) {
            char why[256];
            s_ip(why, sizeof why, "netns", "del", entry->d_name, NULL);
        }
    }
    closedir(dir);
}

it_netns_t *it_netns_new(int hosts, char *why, size_t cap) {
    if (hosts < 1 || hosts > IT_NETNS_HOSTS_MAX) {
        snprintf(why, cap, "%d hosts", hosts);
        return NULL;
    }
    s_sweep_stale();
    it_netns_t *self = calloc(1, sizeof *self);
    self->hosts = hosts;
    self->current = -1;
    int pid = (int)getpid();
    self->subnet = 1 + pid % 250;
    snprintf(self->sw, sizeof self->sw, "tern-%d-sw", pid);
    for (int h = 0; h < hosts; h++) {
        snprintf(self->name[h], sizeof self->name[h], "tern-%d-h%d", pid, h);
        snprintf(self->addr[h], sizeof self->addr[h], "10.77.%d.%d", self->subnet, 10 + h);
    }
    self->home_fd = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    bool ok = self->home_fd >= 0;
    if (!ok) {
        snprintf(why, cap, "open /proc/self/ns/net: %s", strerror(errno));
    }
    ok = ok && s_ip(why, cap, "netns", "add", self->sw, NULL);
    self->made[IT_NETNS_HOSTS_MAX] = ok;
    ok = ok && s_ip(why, cap, "-n", self->sw, "link", "add", "br0", "type", "bridge", NULL) &&
         s_ip(why, cap, "-n", self->sw, "link", "set", "br0", "up", NULL);
    for (int h = 0; h < hosts && ok; h++) {
        ok = s_make_host(self, h, why, cap);
    }
    if (!ok) {
        it_netns_destroy(&self);
    }
    return self;
}

const char *it_netns_addr(const it_netns_t *self, int h) {
    return self->addr[h];
}

bool it_netns_enter(it_netns_t *self, int h) {
    int fd = self->home_fd;
    char path[64];
    if (h >= 0) {
        snprintf(path, sizeof path, "/var/run/netns/%s", self->name[h]);
        fd = open(path, O_RDONLY | O_CLOEXEC);
    }
    bool ok = fd >= 0 && setns(fd, CLONE_NEWNET) == 0;
    if (!ok) {
        fprintf(stderr, "netns_harness: cannot enter host %d: %s\n", h, strerror(errno));
    } else {
        self->current = h;
    }
    if (h >= 0 && fd >= 0) {
        close(fd);
    }
    return ok;
}

bool it_netns_blackhole(it_netns_t *self, int a, const int *to, size_t count, bool add) {
    //  One `ip -batch` for all of them: a cut of many hosts lands within a
    //  few ms in each namespace, not one exec per route.
    char cmds[IT_NETNS_HOSTS_MAX * 48] = "";
    size_t used = 0;
    for (size_t k = 0; k < count && k < IT_NETNS_HOSTS_MAX; k++) {
        used += (size_t)snprintf(cmds + used, sizeof cmds - used, "route %s blackhole %s/32\n",
                                 add ? "add" : "del", self->addr[to[k]]);
    }
    char why[512] = "";
    bool ok = s_ip_in(why, sizeof why, cmds, "-n", self->name[a], "-batch", "-", NULL);
    if (!ok) {
        fprintf(stderr, "netns_harness: %s\n", why);
    }
    return ok;
}

bool it_netns_cut(it_netns_t *self, int a, int b) {
    bool ok = it_netns_blackhole(self, a, &b, 1, true);
    return it_netns_blackhole(self, b, &a, 1, true) && ok;
}

bool it_netns_heal(it_netns_t *self, int a, int b) {
    bool ok = it_netns_blackhole(self, a, &b, 1, false);
    return it_netns_blackhole(self, b, &a, 1, false) && ok;
}

void it_netns_destroy(it_netns_t **self_p) {
    if (self_p == NULL || *self_p == NULL) {
        return;
    }
    it_netns_t *self = *self_p;
    if (self->home_fd >= 0) {
        if (self->current != -1) {
            it_netns_enter(self, -1);
        }
        close(self->home_fd);
    }
    //  Deleting a namespace deletes the veth ends in it, and with them
    //  their peers in the switch.
    for (int h = 0; h < self->hosts; h++) {
        if (self->made[h]) {
            s_ip(NULL, 0, "netns", "del", self->name[h], NULL);
        }
    }
    if (self->made[IT_NETNS_HOSTS_MAX]) {
        s_ip(NULL, 0, "netns", "del", self->sw, NULL);
    }
    free(self);
    *self_p = NULL;
}

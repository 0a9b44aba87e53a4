/*  cut_shim.c - an LD_PRELOAD library that cuts chosen TCP links of one
    process, for the network-partition fault tests (it_cluster_fault.c).

    The host the tests run on has neither iptables nor tc actions, and the
    tests run without a network namespace of their own, so a partition is
    made inside the processes instead: cluster_harness.c starts ternd with
    this library preloaded and TERN_CUT_DIR set. While the file
    TERN_CUT_DIR/<pid> lists TCP ports (decimal, whitespace-separated), every
    send() and recv() of this process on a socket whose local or peer port
    is listed is a black hole: send reports the bytes as sent and drops
    them, recv drains what arrived and reports EAGAIN. Connections stay up
    and silent, as behind a firewall that drops packets. An empty or
    missing file heals. libzmq and libcurl (ternd's in-DC links and its etcd
    client) both do their TCP I/O with send() and recv().

    The file is re-read at most every 20 ms. Only a test tool: it is built
    beside the tests and never installed.
*/
#ifndef _GNU_SOURCE
#define _GNU_SOURCE //  RTLD_NEXT
#endif
#include <dlfcn.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define S_PORTS_MAX 32
#define S_RELOAD_NS 20000000LL

static pthread_mutex_t s_lock = PTHREAD_MUTEX_INITIALIZER;
static int s_ports[S_PORTS_MAX]; //  ports cut now
static int s_count;              //  how many
static long long s_loaded_ns;    //  when the file was last read

static long long s_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

//  Reads TERN_CUT_DIR/<pid>; called with s_lock held.
static void s_reload(void) {
    s_count = 0;
    const char *dir = getenv("TERN_CUT_DIR");
    if (dir == NULL) {
        return;
    }
    char path[512];
    snprintf(path, sizeof path, "%s/%d", dir, (int)getpid());
    FILE *file = fopen(path, "r");
    if (file == NULL) {
        return;
    }
    int port;
    while (s_count < S_PORTS_MAX && fscanf(file, "%d", &port) == 1) {
        s_ports[s_count++] = port;
    }
    fclose(file);
}

//  FD's local (or PEER) TCP port, -1 if it has none.
static int s_port(int fd, bool peer) {
    struct sockaddr_storage addr;
    socklen_t len = sizeof addr;
    int rc = peer ? getpeername(fd, (struct sockaddr *)&addr, &len)
                  : getsockname(fd, (struct sockaddr *)&addr, &len);
    if (rc != 0) {
        return -1;
    }
    if (addr.ss_family == AF_INET) {
        return ntohs(((struct sockaddr_in *)&addr)->sin_port);
    }
    if (addr.ss_family == AF_INET6) {
        return ntohs(((struct sockaddr_in6 *)&addr)->sin6_port);
    }
    return -1;
}

//  True while FD's link is cut.
static bool s_cut(int fd) {
    int ports[S_PORTS_MAX];
    pthread_mutex_lock(&s_lock);
    long long now = s_now_ns();
    if (now - s_loaded_ns > S_RELOAD_NS) {
        s_reload();
        s_loaded_ns = now;
    }
    int count = s_count;
    memcpy(ports, s_ports, sizeof ports);
    pthread_mutex_unlock(&s_lock);
    if (count == 0) {
        return false;
    }
    int local = s_port(fd, false), peer = s_port(fd, true);
    for (int i = 0; i < count; i++) {
        if (ports[i] > 0 && (ports[i] == local || ports[i] == peer)) {
            return true;
        }
    }
    return false;
}

ssize_t send(int fd, const void *buf, size_t len, int flags) {
    static ssize_t (*real)(int, const void *, size_t, int);
    if (real == NULL) {
        *(void **)&real = dlsym(RTLD_NEXT, "send");
    }
    if (s_cut(fd)) {
        return (ssize_t)len;
    }
    return real(fd, buf, len, flags);
}

ssize_t recv(int fd, void *buf, size_t len, int flags) {
    static ssize_t (*real)(int, void *, size_t, int);
    if (real == NULL) {
        *(void **)&real = dlsym(RTLD_NEXT, "recv");
    }
    ssize_t n = real(fd, buf, len, flags);
    if (n > 0 && s_cut(fd)) {
        errno = EAGAIN;
        return -1;
    }
    return n;
}

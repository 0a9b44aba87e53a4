/*  zmq_guard.c - an LD_PRELOAD shim that aborts when two threads use one
    ZeroMQ socket at the same time.

    A ZeroMQ socket is not thread-safe; libtern lets a publishing caller use
    its DEALER while the I/O thread is parked (docs/client.md, "Threading
    model"). This shim wraps the zmq_* calls that take a socket: each marks
    the socket as used by the calling thread for the duration of the call,
    and a call that finds it marked by another thread prints both and
    aborts (a core file then shows both stacks). Built and run by
    socket-guard.sh; not part of the build. A reused socket address keeps
    its slot; the table holds 4096 sockets.
*/
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <zmq.h>

#define S_SLOTS 4096

static _Atomic(void *) s_socket[S_SLOTS];     //  open addressing by address
static _Atomic long s_user[S_SLOTS];          //  thread id inside a call, 0 none
static _Atomic(const char *) s_call[S_SLOTS]; //  that call's name
static _Atomic long s_calls;                  //  calls checked

static int s_slot(void *socket) {
    uintptr_t hash = ((uintptr_t)socket >> 4) % S_SLOTS;
    for (int i = 0; i < S_SLOTS; i++) {
        int at = (int)((hash + (uintptr_t)i) % S_SLOTS);
        void *expected = NULL;
        if (atomic_compare_exchange_strong(&s_socket[at], &expected, socket) ||
            expected == socket) {
            return at;
        }
    }
    fprintf(stderr, "zmq_guard: more than %d sockets\n", S_SLOTS);
    abort();
}

//  Marks SOCKET as used by this thread in CALL; aborts if another thread is
//  inside a call on it. Returns the slot for s_leave (-1 for NULL).
static int s_enter(void *socket, const char *call) {
    if (!socket) {
        return -1;
    }
    atomic_fetch_add(&s_calls, 1);
    int at = s_slot(socket);
    long me = syscall(SYS_gettid), other = 0;
    if (!atomic_compare_exchange_strong(&s_user[at], &other, me)) {
        fprintf(stderr, "zmq_guard: socket %p: thread %ld in %s while thread %ld is in %s\n",
                socket, me, call, other, atomic_load(&s_call[at]));
        abort();
    }
    atomic_store(&s_call[at], call);
    return at;
}

static void s_leave(int at) {
    if (at >= 0) {
        atomic_store(&s_user[at], 0);
    }
}

//  Defines NAME(PARAMS) calling the real NAME(ARGS) between s_enter and s_leave.
#define S_WRAP(name, socket, params, args)                                                         \
    int name params {                                                                              \
        static __typeof__(name) *real;                                                             \
        if (!real) {                                                                               \
            real = (__typeof__(name) *)dlsym(RTLD_NEXT, #name);                                    \
        }                                                                                          \
        int at = s_enter(socket, #name);                                                           \
        int rc = real args;                                                                        \
        s_leave(at);                                                                               \
        return rc;                                                                                 \
    }

S_WRAP(zmq_msg_recv, s, (zmq_msg_t * m, void *s, int f), (m, s, f))
S_WRAP(zmq_msg_send, s, (zmq_msg_t * m, void *s, int f), (m, s, f))
S_WRAP(zmq_send, s, (void *s, const void *b, size_t n, int f), (s, b, n, f))
S_WRAP(zmq_recv, s, (void *s, void *b, size_t n, int f), (s, b, n, f))
S_WRAP(zmq_getsockopt, s, (void *s, int o, void *v, size_t *n), (s, o, v, n))
S_WRAP(zmq_setsockopt, s, (void *s, int o, const void *v, size_t n), (s, o, v, n))
S_WRAP(zmq_connect, s, (void *s, const char *e), (s, e))
S_WRAP(zmq_socket_monitor, s, (void *s, const char *e, int m), (s, e, m))
S_WRAP(zmq_close, s, (void *s), (s))

//  With ZMQ_GUARD_REPORT set, each process says how many calls it checked.
__attribute__((destructor)) static void s_report(void) {
    if (getenv("ZMQ_GUARD_REPORT")) {
        fprintf(stderr, "zmq_guard: pid %d: %ld socket calls, no overlap\n", (int)getpid(),
                atomic_load(&s_calls));
    }
}

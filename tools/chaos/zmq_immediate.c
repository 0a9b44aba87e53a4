/*  zmq_immediate.c - libzmq alone: a DEALER with ZMQ_IMMEDIATE aborts when
    its peer goes away while it reads a backlog of two-frame messages.

    Why libtern's DEALER is not ZMQ_IMMEDIATE (docs/client.md, "Threading
    model"), and what the crepl follower's DEALER (broker/tern_crepl_follow.c)
    still risks. With ZMQ_IMMEDIATE, libzmq 4.3 answers the dropped TCP
    connection with a hiccup command that makes the socket end its pipe at
    once (socket_base_t::hiccuped). The socket processes commands inside a
    receive once every 100 receives (inbound_poll_rate); when that receive
    is a message's second frame, its pipe is gone under the half-read
    message: `Assertion failed: !_more (src/fq.cpp:112)`. One thread, no
    misuse. Setting ZMQ_IMMEDIATE back to 0 after zmq_connect is no way out:
    the DEALER then asserts in socket_base_t::xhiccuped (socket_base.cpp:1673).

    usage: zmq_immediate [ROUNDS]   (socket-guard.sh's directory: cc
           zmq_immediate.c -lzmq -lpthread). Each mode runs in a child:
           "immediate" is expected to die of SIGABRT (the assertion) or to
           see a payload never come (the pipe ended and no new one came; a
           blocking receive would wait for good) within a few rounds,
           "plain" (no ZMQ_IMMEDIATE) to read every message whole.
*/
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zmq.h>

#define S_MESSAGES 20000 //  two-frame messages the peer sends per round

static int s_port;

//  The peer: a ROUTER that sends S_MESSAGES [header][payload] messages to
//  the first DEALER that greets it, then closes at once.
static void *s_peer(void *arg) {
    (void)arg;
    void *ctx = zmq_ctx_new();
    void *router = zmq_socket(ctx, ZMQ_ROUTER);
    int zero = 0, hwm = 1000000;
    zmq_setsockopt(router, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(router, ZMQ_SNDHWM, &hwm, sizeof hwm);
    char endpoint[64], id[256], hello[16], payload[100];
    snprintf(endpoint, sizeof endpoint, "tcp://127.0.0.1:%d", s_port);
    if (zmq_bind(router, endpoint) != 0) {
        exit(2);
    }
    int id_len = zmq_recv(router, id, sizeof id, 0);
    zmq_recv(router, hello, sizeof hello, 0);
    memset(payload, 'p', sizeof payload);
    for (int i = 0; i < S_MESSAGES; i++) {
        zmq_send(router, id, (size_t)id_len, ZMQ_SNDMORE);
        zmq_send(router, "hdr", 3, ZMQ_SNDMORE);
        zmq_send(router, payload, sizeof payload, 0);
    }
    usleep(20000);
    zmq_close(router);
    zmq_ctx_term(ctx);
    return NULL;
}

//  Reads like libtern's I/O thread: ZMQ_EVENTS once it was idle, then
//  headers with ZMQ_DONTWAIT and each payload right after, slowly, until
//  the socket stays empty. Returns the messages read; *TORN counts payloads
//  that never came (the receive timed out: the pipe ended under them).
static long s_drain(void *dealer, long *torn) {
    long got = 0;
    int idle = 0;
    bool waiting = true;
    while (idle < 200) {
        if (waiting) {
            int events = 0;
            size_t len = sizeof events;
            zmq_getsockopt(dealer, ZMQ_EVENTS, &events, &len);
            if (!(events & ZMQ_POLLIN)) {
                idle++;
                usleep(1000);
                continue;
            }
            waiting = false;
        }
        zmq_msg_t hdr, payload;
        zmq_msg_init(&hdr);
        if (zmq_msg_recv(&hdr, dealer, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&hdr);
            waiting = true;
            continue;
        }
        idle = 0;
        zmq_msg_init(&payload);
        if (zmq_msg_more(&hdr) && zmq_msg_recv(&payload, dealer, 0) < 0) {
            (*torn)++;
        }
        zmq_msg_close(&payload);
        zmq_msg_close(&hdr);
        got++;
        usleep(20); //  a slow reader: the peer is gone while it drains
    }
    return got;
}

//  ROUNDS rounds against a fresh peer each; exits 0 if no message was torn.
static void s_rounds(int rounds, int immediate) {
    bool failed = false;
    for (int round = 0; round < rounds; round++) {
        void *ctx = zmq_ctx_new();
        void *dealer = zmq_socket(ctx, ZMQ_DEALER);
        int zero = 0, ivl = 100, timeout = 1000;
        zmq_setsockopt(dealer, ZMQ_IMMEDIATE, &immediate, sizeof immediate);
        zmq_setsockopt(dealer, ZMQ_LINGER, &zero, sizeof zero);
        zmq_setsockopt(dealer, ZMQ_RECONNECT_IVL, &ivl, sizeof ivl);
        zmq_setsockopt(dealer, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
        pthread_t peer;
        pthread_create(&peer, NULL, s_peer, NULL);
        usleep(50000);
        char endpoint[64];
        snprintf(endpoint, sizeof endpoint, "tcp://127.0.0.1:%d", s_port);
        zmq_connect(dealer, endpoint);
        while (zmq_send(dealer, "hi", 2, ZMQ_DONTWAIT) < 0) {
            usleep(1000);
        }
        long torn = 0, got = s_drain(dealer, &torn);
        pthread_join(peer, NULL);
        printf("  round %d: %ld of %d messages read, %ld torn\n", round + 1, got, S_MESSAGES, torn);
        failed |= torn > 0;
        fflush(stdout);
        zmq_close(dealer);
        zmq_ctx_term(ctx);
    }
    exit(failed ? 1 : 0);
}

int main(int argc, char **argv) {
    int rounds = argc > 1 ? atoi(argv[1]) : 5;
    s_port = 20000 + getpid() % 20000;
    const char *modes[2] = {"immediate", "plain"};
    for (int immediate = 1; immediate >= 0; immediate--) {
        printf("%s:\n", modes[1 - immediate]);
        fflush(stdout);
        pid_t child = fork();
        if (child == 0) {
            s_rounds(rounds, immediate);
        }
        int status = 0;
        waitpid(child, &status, 0);
        printf("%s: %s\n", modes[1 - immediate],
               WIFSIGNALED(status)   ? strsignal(WTERMSIG(status))
               : WEXITSTATUS(status) ? "torn messages (the payload never came)"
                                     : "every message read whole");
    }
    return 0;
}

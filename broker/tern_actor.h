/*  tern_actor.h - the poll loop every ternd actor runs.

    Each actor (conn, storer, route, repl) is a zactor_fn that sets up its
    sockets, signals ready, then runs this loop until $TERM: wait on the pipe
    and the actor's raw libzmq sockets with zmq_poll (raw libzmq, not czmq's
    zloop: the hot path pays nothing per message, docs/performance.md), call
    the handler of each readable socket (handlers drain their socket in
    batches), then the actor's `after` hook (timers, flushes). The actor
    says how long to wait with its `prepare` hook, which may also add
    sockets for this turn only (repl's peer DEALERs come and go).

        tern_loop_t loop;
        //  s_prepare returns the timeout (ms, -1 = none); s_after runs
        //  timers and flushes, every turn.
        tern_loop_init(&loop, pipe, self, s_prepare, s_after);
        tern_loop_reader(&loop, inbox, s_on_inbox, NULL);
        zsock_signal(pipe, 0);
        tern_loop_run(&loop);

    Not thread safe: the loop belongs to the actor's thread. No allocation.
*/
#ifndef TERN_ACTOR_H_INCLUDED
#define TERN_ACTOR_H_INCLUDED

#include "tern_config.h"
#include "tern_work.h"
#include <czmq.h>
#include <stdbool.h>
#include <zmq.h>

#define TERN_LOOP_SOCKETS_MAX (8 + TERN_PEERS_MAX) //  readers per loop, the pipe included

typedef struct tern_loop_t tern_loop_t;

//  A readable socket's handler: ACTOR is the loop's actor state, ARG the
//  reader's own argument.
typedef void(tern_loop_fn)(void *actor, void *arg);
//  Before each poll: returns the longest wait in ms (-1: until a socket is
//  readable); may add this turn's extra readers (tern_loop_reader).
typedef long(tern_loop_prepare_fn)(tern_loop_t *loop, void *actor);
//  After each turn's handlers (whether or not a socket was readable).
typedef void(tern_loop_after_fn)(void *actor);

struct tern_loop_t {
    zsock_t *pipe;                                 //  the zactor pipe (borrowed)
    void *actor;                                   //  passed to every hook (borrowed)
    tern_loop_prepare_fn *prepare;                 //  may be NULL: wait without limit
    tern_loop_after_fn *after;                     //  may be NULL
    bool stop_at_once;                             //  $TERM skips the rest of the turn
    size_t fixed;                                  //  readers kept every turn
    size_t count;                                  //  readers this turn (items[0] = pipe)
    zmq_pollitem_t items[TERN_LOOP_SOCKETS_MAX];   //  what zmq_poll waits on
    tern_loop_fn *handlers[TERN_LOOP_SOCKETS_MAX]; //  by item (NULL for the pipe)
    void *args[TERN_LOOP_SOCKETS_MAX];             //  by item
};

/*  Prepares LOOP on PIPE for ACTOR (both borrowed for the loop's life) with
    hooks PREPARE and AFTER (either may be NULL). */
void tern_loop_init(tern_loop_t *self, zsock_t *pipe, void *actor, tern_loop_prepare_fn *prepare,
                    tern_loop_after_fn *after);

/*  Calls HANDLER(actor, ARG) when raw libzmq socket SOCKET is readable, in
    the order readers were added. Readers added before tern_loop_run stay;
    those the prepare hook adds last one turn. Returns -1 when the loop is
    full (TERN_LOOP_SOCKETS_MAX), else 0. */
int tern_loop_reader(tern_loop_t *self, void *socket, tern_loop_fn *handler, void *arg);

/*  Runs until $TERM (or the pipe's end) arrives: the turn it arrives in is
    finished (handlers and after) unless stop_at_once is set. Returns 0, or
    -1 if zmq_poll failed (not EINTR). */
int tern_loop_run(tern_loop_t *self);

/*  For prepare hooks: ms from now until DEADLINE_MS (unix ms), 0 if past. */
long tern_loop_wait_until(uint64_t deadline_ms);

/*  For an actor that could not start: signals 1 on PIPE, then waits for the
    $TERM zactor_destroy still sends. */
void tern_actor_fail(zsock_t *pipe);

#endif

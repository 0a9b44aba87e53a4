/*  tern_peer.h - the state machine of one outbound replication link.

    A node keeps one link per peer DC: a DEALER to the peer's replication
    ROUTER over which it ships its outbox. This class holds only the link's
    state, timers and backoff; it owns no socket and reads no clock, so it is
    unit-tested without either (tests/unit/test_cluster_peer.c). The broker's
    repl actor (broker/tern_repl.c) feeds it events with the current time and
    carries out the actions it returns (open the socket and send REPL_HELLO,
    close the socket, start streaming).

    A peer DC may be reachable at several endpoints (its nodes, or the
    addresses one node may have moved between). The link tries them in the
    configured order and rotates: when an attempt fails (no WELCOME in time,
    refused, or a live link falls silent) the next attempt goes at once to
    the next endpoint. Reconnect backoff applies per full round of endpoints
    without success: 1 s, 2 s, 5 s, then every 5 s; a link that reached
    LIVE starts again at 1 s when a whole round fails after it is lost. With
    one endpoint this is the plain backoff after every failure. The
    transition table is at the top of tern_peer.c.
*/
#ifndef TERN_PEER_H_INCLUDED
#define TERN_PEER_H_INCLUDED

#include <stdbool.h>
#include <stdint.h>

#define TERN_PEER_ENDPOINTS_MAX 8 //  endpoints of one peer DC (--peer NAME=EP1,EP2,...)

typedef struct tern_peer_t tern_peer_t;

typedef enum {
    TERN_PEER_IDLE = 0,   //  no socket; waiting for the retry time
    TERN_PEER_HELLO = 1,  //  socket open, REPL_HELLO sent, waiting for REPL_WELCOME
    TERN_PEER_LIVE = 2,   //  handshake done: streaming the outbox
    TERN_PEER_PAUSED = 3, //  isolated by the operator: no socket until resumed
    TERN_PEER_STATES_
} tern_peer_state_t;

typedef enum {
    TERN_PEER_TICK = 0,    //  time passed (the caller calls this at least at the deadline)
    TERN_PEER_WELCOME = 1, //  REPL_WELCOME received
    TERN_PEER_REFUSED = 2, //  ERROR received (version, duplicate id, unknown DC, paused...)
    TERN_PEER_FRAME = 3,   //  any other frame received from the peer: it is alive
    TERN_PEER_PAUSE = 4,   //  operator: isolate the link
    TERN_PEER_RESUME = 5,  //  operator: reconnect now
    TERN_PEER_WAKE = 6,    //  the peer showed up inbound (its HELLO): retry now if idle
    TERN_PEER_EVENTS_
} tern_peer_event_t;

/*  Actions (bits) the caller must carry out, in this order: CLOSE, CONNECT,
    STREAM. */
#define TERN_PEER_A_CLOSE   1u //  close the socket (drop what is queued on it)
#define TERN_PEER_A_CONNECT 2u //  open a fresh socket and send REPL_HELLO
#define TERN_PEER_A_STREAM  4u //  start streaming from the position in the WELCOME

typedef struct {
    uint32_t handshake_ms; //  HELLO without WELCOME for this long fails (default 3000)
    uint32_t dead_ms;      //  LIVE link silent for this long is dead (default 3000)
} tern_peer_timing_t;

/*  Creates a link in IDLE over ENDPOINTS endpoints (1..TERN_PEER_ENDPOINTS_MAX;
    0 is taken as 1, more as the maximum) whose first attempt, to endpoint 0,
    is due at NOW_MS. TIMING may be NULL for the defaults. Caller owns the
    result. Returns NULL only on out of memory. */
tern_peer_t *tern_peer_new(const tern_peer_timing_t *timing, uint32_t endpoints, uint64_t now_ms);

/*  Safe on NULL; nulls *SELF_P. */
void tern_peer_destroy(tern_peer_t **self_p);

/*  Feeds EVENT at NOW_MS; returns the actions (TERN_PEER_A_* bits). */
unsigned tern_peer_event(tern_peer_t *self, tern_peer_event_t event, uint64_t now_ms);

/*  Current state. */
tern_peer_state_t tern_peer_state(const tern_peer_t *self);

/*  Static name of a state: "idle", "connecting", "live", "paused". */
const char *tern_peer_state_name(tern_peer_state_t state);

/*  Unix ms at which the caller must send TICK next (UINT64_MAX: never, i.e.
    PAUSED). */
uint64_t tern_peer_deadline(const tern_peer_t *self);

/*  Consecutive failed rounds of endpoints since the link was last LIVE
    (with one endpoint: failed attempts). */
uint32_t tern_peer_failures(const tern_peer_t *self);

/*  Index of the endpoint the current (or, when IDLE, the next) attempt goes
    to: the caller connects to this one on TERN_PEER_A_CONNECT. */
uint32_t tern_peer_endpoint(const tern_peer_t *self);

/*  Times the link moved on from one endpoint to another (all time). */
uint64_t tern_peer_failovers(const tern_peer_t *self);

/*  Unix ms of the last frame received from the peer (0: never). */
uint64_t tern_peer_last_seen(const tern_peer_t *self);

/*  The delay before attempt number FAILURES + 1 after FAILURES failures
    (FAILURES >= 1): 1000, 5000, then 30000 ms. */
uint64_t tern_peer_backoff_ms(uint32_t failures);

#endif
